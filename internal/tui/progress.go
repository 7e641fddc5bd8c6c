package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// event folds one engine event into the model.
func (m Model) event(e engine.Event) Model {
	ev := eventMsg(e)
	if m.started == nil {
		m.started = &ev
	}
	m.last = &ev
	switch e.Type {
	case engine.EvStepStart:
		m.steps[e.Step] = stepRunning
		m.recovering = e.Step == engine.StepRecover
		for _, s := range m.plan.Steps {
			if s.Kind == e.Step && s.Irreversible {
				m.noReturn = true
				m.asking = false
			}
		}
	case engine.EvStepDone:
		m.steps[e.Step] = stepDone
		if e.Step == engine.StepRecover {
			m.recovering = false
			m.speedAsked = ""
		}
	case engine.EvStepFailed:
		m.steps[e.Step] = stepFailed
		m.recovering = false
	case engine.EvProgress:
		if e.Progress != nil && e.Step == engine.StepRecover {
			m.prog = e.Progress
		}
	case engine.EvInfo:
		if e.Message != "" {
			m.stepNote[e.Step] = e.Message
		}
	case engine.EvSpeed:
		m.runSpeed = e.Speed
		m.speedAsked = ""
	case engine.EvWarning:
		m.warning = e.Message
	}
	return m
}

func (m Model) mark(s stepState) string {
	switch s {
	case stepRunning:
		return m.th.current.Render(m.th.markRun)
	case stepDone:
		return m.th.good.Render(m.th.markDone)
	case stepFailed:
		return m.th.bad.Render(m.th.markFail)
	}
	return m.th.dim.Render(m.th.markTodo)
}

func (m Model) viewProgress() ([]string, bindings) {
	p := m.plan
	title := "Installing onto " + p.Target
	if m.started != nil && m.last != nil {
		el := "elapsed " + duration(m.last.Time.Sub(m.started.Time))
		title = m.th.title.Render(title) + strings.Repeat(" ", max(m.width-ansi.StringWidth(title)-len(el), 1)) + el
	} else {
		title = m.th.title.Render(title)
	}
	b := []string{title, ""}
	for _, s := range p.Steps {
		st := m.steps[s.Kind]
		suffix := ""
		if s.Irreversible {
			suffix = "  <- point of no return"
		}
		room := m.width - 4 - len(suffix)
		t := ansi.Truncate(s.Title, room, "…") + suffix
		if st == stepTodo {
			t = m.th.dim.Render(t)
		}
		b = append(b, m.mark(st)+" "+t)
		if s.Kind == engine.StepRecover && (st == stepRunning || (st != stepTodo && m.prog != nil)) {
			b = append(b, m.recoveryLines()...)
		}
		if n := m.stepNote[s.Kind]; n != "" && st == stepRunning {
			b = append(b, "    "+ansi.Truncate(n, m.width-4, "…"))
		}
	}
	b = append(b, "")
	if cow := m.cowLine(); cow != "" {
		b = append(b, m.para(cow)...)
	}
	switch {
	case m.asking:
		b = append(b, m.th.warn.Render("Stop the migration?"))
		b = append(b, m.choice("a", "abort: take "+p.Target+" out of the array again; the live session stays exactly as it was")...)
		b = append(b, m.choice("esc", "keep waiting: md goes on copying")...)
		return b, bindings{m.keys.Abort, m.keys.KeepWaiting, withHelp(m.keys.Interrupt, "abort")}
	case m.note != "":
		b = append(b, m.para(m.th.warn.Render(m.note))...)
	case !m.noReturn:
		b = append(b, m.para("You can keep using this session meanwhile: your writes go to both copies.")...)
	default:
		b = append(b, m.para("/ now lives on "+p.Target+"; finishing up.")...)
	}
	if m.warning != "" {
		b = append(b, m.para(m.th.warn.Render("warning: "+m.warning))...)
	}
	keys := bindings{}
	if m.recovering && m.run != nil && !m.aborting {
		keys = append(keys, m.keys.Toggle)
	}
	stop := "stop"
	if m.noReturn {
		stop = "why it goes on"
	}
	return b, append(keys, withHelp(m.keys.Interrupt, stop))
}

// recoveryLines draw md's copy: a bar, amounts, speed and time left.
func (m Model) recoveryLines() []string {
	pr := m.prog
	if pr == nil {
		return []string{"    waiting for md to start copying..."}
	}
	bar := m.bar
	bar.Width = min(m.width-24, 50)
	line := fmt.Sprintf("    %s %5.1f%%  %s of %s", bar.ViewAs(pr.Percent/100), pr.Percent, humanize.IBytes(pr.DoneBytes), humanize.IBytes(pr.TotalBytes))
	var info []string
	if pr.SpeedBps > 0 && pr.Percent < 100 {
		info = append(info, humanize.IBytes(pr.SpeedBps)+"/s")
	}
	if pr.ETASeconds > 0 && pr.Percent < 100 {
		info = append(info, "about "+duration(time.Duration(pr.ETASeconds*float64(time.Second)))+" left")
	}
	sp := "speed " + string(m.runSpeed)
	if m.speedAsked != "" {
		sp += " (switching to " + string(m.speedAsked) + ")"
	} else if m.recovering && m.run != nil {
		sp += " (f: " + string(other(m.runSpeed)) + ")"
	}
	info = append(info, sp)
	return []string{line, "    " + strings.Join(info, ", ")}
}

func other(s engine.Speed) engine.Speed {
	if s == engine.SpeedGentle {
		return engine.SpeedFast
	}
	return engine.SpeedGentle
}

// cowLine says how full the live snapshot's copy-on-write store is and how
// much more the session may write, which matters until the live leg goes.
func (m Model) cowLine() string {
	if m.prog == nil || m.prog.COW == nil || m.noReturn {
		return ""
	}
	c := m.prog.COW
	s := fmt.Sprintf("Copy-on-write: %s used of %s", humanize.IBytes(c.UsedBytes), humanize.IBytes(c.TotalBytes))
	free := uint64(0)
	if c.TotalBytes > c.UsedBytes {
		free = c.TotalBytes - c.UsedBytes
	}
	// The plan's headroom was bounded by free RAM; what the session wrote
	// since then comes off it.
	if h := m.plan.COWFreeBytes; h > 0 && m.sys != nil && m.sys.COW != nil {
		grown := int64(c.UsedBytes) - int64(m.sys.COW.UsedSectors*512)
		if est := int64(h) - max(grown, 0); est >= 0 && uint64(est) < free {
			free = uint64(est)
		}
	}
	s += fmt.Sprintf("; room for about %s more", humanize.IBytes(free))
	if m.plan.COWNeedBytes > 0 {
		s += fmt.Sprintf(" (the copy needs %s)", humanize.IBytes(m.plan.COWNeedBytes))
	}
	return s + "."
}

func (m Model) updateProgress(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case m.asking && key.Matches(k, m.keys.Abort):
		return m.abort()
	case m.asking && key.Matches(k, m.keys.KeepWaiting):
		m.asking = false
	case key.Matches(k, m.keys.Toggle) && m.recovering && m.run != nil && !m.aborting && m.speedAsked == "":
		m.speedAsked = other(m.runSpeed)
		m.run.SetSpeed(m.speedAsked)
	case key.Matches(k, m.keys.Quit):
		return m.ctrlC()
	}
	return m, nil
}

// choice is one answer to a question: its key, then the text, wrapped
// under itself.
func (m Model) choice(k, text string) []string {
	var out []string
	for i, l := range wrap(text, m.width-7) {
		if i == 0 {
			out = append(out, "  "+m.th.strong.Render(fmt.Sprintf("%-4s", k))+" "+l)
		} else {
			out = append(out, "       "+l)
		}
	}
	return out
}
