package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// review is the screen that shows the engine's plan and asks for the
// device name before anything is changed.
type review struct {
	c        *common
	plan     *engine.Plan
	input    textinput.Model
	scroll   int
	mismatch string
	changed  bool // the plan was made again because the system changed
	keys     reviewKeys
}

type reviewKeys struct {
	scrollKeys
	Start, Back, Quit key.Binding
}

func newReview(c *common) review {
	in := textinput.New()
	in.Prompt = "> "
	in.CharLimit = 128
	in.Width = 40
	in.TextStyle = c.th.input
	in.Cursor.Style = c.r.NewStyle().Reverse(true)
	in.Cursor.TextStyle = c.th.input
	in.Cursor.SetMode(cursor.CursorStatic)
	return review{c: c, input: in, keys: reviewKeys{scrollKeys: newScrollKeys(),
		Start: enterKey("start"), Back: backKey(), Quit: interruptKey("quit")}}
}

// show asks for the confirmation of a new plan, from its top.
func (m review) show(p *engine.Plan) (review, tea.Cmd) {
	m.scroll = 0
	m.mismatch = ""
	m.changed = false
	return m.ask(p)
}

// replanned asks again for p, which Start made because the system changed
// after the confirmation.
func (m review) replanned(p *engine.Plan) (review, tea.Cmd) {
	m.changed = true
	return m.ask(p)
}

func (m review) ask(p *engine.Plan) (review, tea.Cmd) {
	m.plan = p
	m.input.Reset()
	return m, m.input.Focus()
}

// footer is the confirmation under the plan.
func (m review) footer() []string {
	var f []string
	f = append(f, "")
	dev := confirmName(m.plan)
	f = append(f, wrap(m.c.th.bad.Render(fmt.Sprintf("Everything on %s will be destroyed.", dev))+" Type "+m.c.th.strong.Render(dev)+" and press enter to start:", m.c.width)...)
	f = append(f, m.input.View())
	if m.mismatch != "" {
		f = append(f, m.c.para(m.mismatch)...)
	}
	return f
}

func (m review) view() ([]string, bindings) {
	var head []string
	if m.changed {
		head = append(head, m.c.para(m.c.th.warn.Render("The system changed since the plan was made; this is the new plan."))...)
	}
	plan := wrap(m.plan.Render(), m.c.width)
	foot := m.footer()
	room := m.c.bodyHeight() - len(head) - len(foot)
	keys := bindings{m.keys.Start, m.keys.Back, m.keys.Quit}
	plan, scrolls := m.c.window(plan, room, m.scroll)
	if scrolls {
		keys = append(bindings{m.keys.Up, m.keys.Down}, keys...)
	}
	body := append(head, plan...)
	return append(body, foot...), keys
}

func (m review) update(msg tea.Msg) (review, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Back):
		m.input.Blur()
		return m, send(goMsg(stOptions))
	case key.Matches(k, m.keys.Up):
		m.scroll = max(m.scroll-1, 0)
		return m, nil
	case key.Matches(k, m.keys.Down):
		m.scroll++
		return m, nil
	case key.Matches(k, m.keys.Start):
		typed := strings.TrimSpace(m.input.Value())
		if want := confirmName(m.plan); typed != want {
			m.mismatch = fmt.Sprintf("You typed %q, not %q: nothing was changed. Type the device name exactly, or press esc to go back.", typed, want)
			m.input.Reset()
			return m, nil
		}
		m.input.Blur()
		m.mismatch = ""
		return m, send(confirmedMsg{plan: m.plan})
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// confirmName is the device the user typed a name for and whose contents
// go: the whole disk in whole-disk mode, else the target.
func confirmName(p *engine.Plan) string {
	if p.Disk != "" {
		return p.Disk
	}
	return p.Target
}
