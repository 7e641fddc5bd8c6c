package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	bar "github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/dustin/go-humanize"
	"github.com/muesli/termenv"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// progress is the screen of a run, from the confirmation to its end: the
// plan's steps as the engine's events mark them, md's copy, and the
// question before the run is stopped.
type progress struct {
	c          *common
	sys        *engine.System
	plan       *engine.Plan
	run        Migration // nil until Start answered
	steps      map[engine.StepKind]stepState
	stepNote   map[engine.StepKind]string // the last progress message of a step without a bar
	prog       *engine.Progress
	bar        bar.Model
	started    *engine.Event // first event, for elapsed time
	last       *engine.Event
	warning    string
	noReturn   bool // the irreversible step has started
	asking     bool // "stop the migration?" is shown
	aborting   bool
	note       string
	runSpeed   engine.Speed
	speedAsked engine.Speed // a toggle not yet confirmed by the engine
	recovering bool
	keys       progressKeys
}

type progressKeys struct{ Toggle, Abort, KeepWaiting, Quit, Stop key.Binding }

type stepState int

const (
	stepTodo stepState = iota
	stepRunning
	stepDone
	stepFailed
)

func newProgress(c *common, sys *engine.System, plan *engine.Plan) progress {
	b := bar.New(bar.WithoutPercentage(), bar.WithColorProfile(c.th.profile),
		bar.WithFillCharacters(c.th.full, c.th.empty), bar.WithSolidFill("12"), bar.WithWidth(40))
	if c.th.profile == termenv.Ascii {
		b.FullColor, b.EmptyColor = "", ""
	}
	return progress{c: c, sys: sys, plan: plan, runSpeed: plan.Speed, bar: b,
		steps: map[engine.StepKind]stepState{}, stepNote: map[engine.StepKind]string{},
		keys: progressKeys{
			Toggle:      key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "fast/gentle")),
			Abort:       key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "abort")),
			KeepWaiting: key.NewBinding(key.WithKeys("esc", "w"), key.WithHelp("esc", "keep waiting")),
			Quit:        quitKey(), // as ctrl+c
			Stop:        interruptKey("stop"),
		}}
}

// startedRun is Start's answer: the run under way. An abort asked for
// before it came is passed on now.
func (m progress) startedRun(run Migration) progress {
	m.run = run
	if m.aborting {
		m.run.Cancel()
	}
	return m
}

// stop is what ctrl+c does during a run: before the point of no return it
// asks, and asked again it aborts; after it, it says why the run goes on.
func (m progress) stop() progress {
	switch {
	case m.aborting:
		m.note = "Already stopping: " + m.plan.Target + " is being taken out of the array."
	case m.noReturn:
		m.note = "Past the point of no return: / already lives on " + m.plan.Target + ". The migration finishes by itself; stopping now would leave a half state."
	case m.asking:
		return m.abort()
	default:
		m.asking = true
	}
	return m
}

// interrupted is stop without the question, for a signal: the run is
// aborted unless it is past the point of no return.
func (m progress) interrupted() progress {
	if !m.noReturn && !m.aborting {
		return m.abort()
	}
	return m
}

func (m progress) abort() progress {
	m.asking = false
	m.aborting = true
	m.note = "Stopping: taking " + m.plan.Target + " out of the array again; the live session stays as it is."
	if m.run != nil {
		m.run.Cancel()
	}
	return m
}

// event folds one engine event into the screen.
func (m progress) event(e engine.Event) progress {
	if m.started == nil {
		m.started = &e
	}
	m.last = &e
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

func (m progress) mark(s stepState) string {
	switch s {
	case stepRunning:
		return m.c.th.current.Render(m.c.th.markRun)
	case stepDone:
		return m.c.th.good.Render(m.c.th.markDone)
	case stepFailed:
		return m.c.th.bad.Render(m.c.th.markFail)
	}
	return m.c.th.dim.Render(m.c.th.markTodo)
}

func (m progress) view() ([]string, bindings) {
	p := m.plan
	title := "Installing onto " + p.Target
	if m.started != nil && m.last != nil {
		el := "elapsed " + duration(m.last.Time.Sub(m.started.Time))
		title = m.c.th.title.Render(title) + strings.Repeat(" ", max(m.c.width-ansi.StringWidth(title)-len(el), 1)) + el
	} else {
		title = m.c.th.title.Render(title)
	}
	b := []string{title, ""}
	for _, s := range p.Steps {
		st := m.steps[s.Kind]
		suffix := ""
		if s.Irreversible {
			suffix = "  <- point of no return"
		}
		room := m.c.width - 4 - len(suffix)
		t := ansi.Truncate(s.Title, room, "…") + suffix
		if st == stepTodo {
			t = m.c.th.dim.Render(t)
		}
		b = append(b, m.mark(st)+" "+t)
		if s.Kind == engine.StepRecover && (st == stepRunning || (st != stepTodo && m.prog != nil)) {
			b = append(b, m.recoveryLines()...)
		}
		if n := m.stepNote[s.Kind]; n != "" && st == stepRunning {
			b = append(b, "    "+ansi.Truncate(n, m.c.width-4, "…"))
		}
	}
	b = append(b, "")
	if cow := m.cowLine(); cow != "" {
		b = append(b, m.c.para(cow)...)
	}
	switch {
	case m.asking:
		b = append(b, m.c.th.warn.Render("Stop the migration?"))
		b = append(b, m.choice("a", "abort: take "+p.Target+" out of the array again; the live session stays exactly as it was")...)
		b = append(b, m.choice("esc", "keep waiting: md goes on copying")...)
		return b, bindings{m.keys.Abort, m.keys.KeepWaiting, withHelp(m.keys.Stop, "abort")}
	case m.note != "":
		b = append(b, m.c.para(m.c.th.warn.Render(m.note))...)
	case !m.noReturn:
		b = append(b, m.c.para("You can keep using this session meanwhile: your writes go to both copies.")...)
	default:
		b = append(b, m.c.para("/ now lives on "+p.Target+"; finishing up.")...)
	}
	if m.warning != "" {
		b = append(b, m.c.para(m.c.th.warn.Render("warning: "+m.warning))...)
	}
	keys := bindings{}
	if m.recovering && m.run != nil && !m.aborting {
		keys = append(keys, m.keys.Toggle)
	}
	stop := m.keys.Stop
	if m.noReturn {
		stop = withHelp(stop, "why it goes on")
	}
	return b, append(keys, stop)
}

// recoveryLines draw md's copy: a bar, amounts, speed and time left.
func (m progress) recoveryLines() []string {
	pr := m.prog
	if pr == nil {
		return []string{"    waiting for md to start copying..."}
	}
	bar := m.bar
	bar.Width = min(m.c.width-24, 50)
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
func (m progress) cowLine() string {
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

func (m progress) update(msg tea.Msg) (progress, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case m.asking && key.Matches(k, m.keys.Abort):
		return m.abort(), nil
	case m.asking && key.Matches(k, m.keys.KeepWaiting):
		m.asking = false
	case key.Matches(k, m.keys.Toggle) && m.recovering && m.run != nil && !m.aborting && m.speedAsked == "":
		m.speedAsked = other(m.runSpeed)
		m.run.SetSpeed(m.speedAsked)
	case key.Matches(k, m.keys.Quit):
		return m.stop(), nil
	}
	return m, nil
}

// choice is one answer to a question: its key, then the text, wrapped
// under itself.
func (m progress) choice(k, text string) []string {
	var out []string
	for i, l := range wrap(text, m.c.width-7) {
		if i == 0 {
			out = append(out, "  "+m.c.th.strong.Render(fmt.Sprintf("%-4s", k))+" "+l)
		} else {
			out = append(out, "       "+l)
		}
	}
	return out
}
