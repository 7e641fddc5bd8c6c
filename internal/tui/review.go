package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// reviewFooter is the confirmation under the plan.
func (m Model) reviewFooter() []string {
	p := m.plan
	var f []string
	f = append(f, "")
	dev := confirmName(p)
	f = append(f, wrap(m.th.bad.Render(fmt.Sprintf("Everything on %s will be destroyed.", dev))+" Type "+m.th.strong.Render(dev)+" and press enter to start:", m.width)...)
	f = append(f, m.input.View())
	if m.mismatch != "" {
		f = append(f, m.para(m.mismatch)...)
	}
	return f
}

func (m Model) viewReview() ([]string, bindings) {
	var head []string
	if m.changed {
		head = append(head, m.para(m.th.warn.Render("The system changed since the plan was made; this is the new plan."))...)
	}
	plan := wrap(m.plan.Render(), m.width)
	foot := m.reviewFooter()
	room := m.bodyHeight() - len(head) - len(foot)
	keys := bindings{withHelp(m.keys.Confirm, "start"), m.keys.Back, withHelp(m.keys.Interrupt, "quit")}
	plan, scrolls := m.window(plan, room)
	if scrolls {
		keys = append(bindings{m.keys.PageUp, m.keys.PageDn}, keys...)
	}
	body := append(head, plan...)
	return append(body, foot...), keys
}

func (m Model) updateReview(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	if m.busy {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Back):
		m.input.Blur()
		m.state = stOptions
		return m, nil
	case k.Type == tea.KeyPgUp || k.Type == tea.KeyUp:
		m.scroll = max(m.scroll-1, 0)
		return m, nil
	case k.Type == tea.KeyPgDown || k.Type == tea.KeyDown:
		m.scroll++
		return m, nil
	case key.Matches(k, m.keys.Confirm):
		typed := strings.TrimSpace(m.input.Value())
		if want := confirmName(m.plan); typed != want {
			m.mismatch = fmt.Sprintf("You typed %q, not %q: nothing was changed. Type the device name exactly, or press esc to go back.", typed, want)
			m.input.Reset()
			return m, nil
		}
		return m.start()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// start hands the plan to the engine and switches to the progress screen;
// the engine's events arrive through m.events.
func (m Model) start() (tea.Model, tea.Cmd) {
	m.input.Blur()
	m.mismatch = ""
	m.state = stProgress
	m.busy = true
	m.runSpeed = m.plan.Speed
	m.steps = map[engine.StepKind]stepState{}
	m.stepNote = map[engine.StepKind]string{}
	eng, req, plan, ch, gone := m.eng, m.req, m.plan, m.events, m.gone
	send := func(msg tea.Msg) {
		select {
		case ch <- msg:
		case <-gone:
		}
	}
	startCmd := func() tea.Msg {
		run, err := eng.Start(req, plan, func(e engine.Event) { send(eventMsg(e)) })
		if err != nil {
			send(listenStop{}) // release m.listen(): no event will come
		} else {
			go func() {
				res, err := run.Wait()
				send(finishedMsg{res: res, err: err})
			}()
		}
		return startedMsg{run: run, err: err}
	}
	return m, tea.Batch(startCmd, m.listen())
}

// confirmName is the device the user typed a name for and whose contents
// go: the whole disk in whole-disk mode, else the target.
func confirmName(p *engine.Plan) string {
	if p.Disk != "" {
		return p.Disk
	}
	return p.Target
}
