package tui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// options is the screen that collects the request for the chosen target:
// whole disk or partition, the set-up (hostname, the live user's password)
// and the copy speed. What it collects is checked by the engine's
// Preflight; only that the password was typed the same twice is checked
// here, because that is part of typing it.
type options struct {
	c        *common
	chosen   *engine.Candidate
	speed    engine.Speed
	finalize bool
	hostname textinput.Model
	password [2]textinput.Model // the live user's new password, typed twice
	focus    int                // optLayout ... optSpeed
	rawDisk  bool
	note     string // a refusal from Preflight, or the passwords differ
	busy     bool   // Preflight is under way
	keys     optionKeys
}

type optionKeys struct{ FocusNext, FocusPrev, Change, Review, Back, Quit key.Binding }

func newOptions(c *common) options {
	field := func(limit int) textinput.Model {
		f := textinput.New()
		f.Prompt = ""
		f.CharLimit = limit
		f.Width = 30
		f.TextStyle = c.th.input
		f.PlaceholderStyle = c.th.dim
		f.Cursor.Style = c.r.NewStyle().Reverse(true)
		f.Cursor.TextStyle = c.th.input
		f.Cursor.SetMode(cursor.CursorStatic)
		return f
	}
	m := options{c: c, speed: engine.SpeedFast, finalize: true, hostname: field(63), keys: optionKeys{
		FocusNext: key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next")),
		FocusPrev: key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "back up")),
		Change:    key.NewBinding(key.WithKeys("left", "right", " "), key.WithHelp("space", "change")),
		Review:    enterKey("review"),
		Back:      backKey(),
		Quit:      quitKey(),
	}}
	m.hostname.Placeholder = "keep the live one"
	for i := range m.password {
		m.password[i] = field(128)
		m.password[i].EchoMode = textinput.EchoPassword
		m.password[i].EchoCharacter = '*'
	}
	m.password[0].Placeholder = "none: keep the account locked"
	return m
}

// forTarget shows the options for c, keeping what was chosen for another
// target before.
func (m options) forTarget(c engine.Candidate) options {
	m.chosen = &c
	m.note = ""
	m.focus = optLayout
	return m
}

// checked ends the wait for Preflight; err is its refusal, if any.
func (m options) checked(err error) options {
	m.busy = false
	if err != nil {
		m.note = refusalNote(err)
	}
	return m
}

// refusalNote says why Preflight refused the request. The hostname's
// refusal names the command line's flag; here it is the field above.
func refusalNote(err error) string {
	var rf *engine.Refusal
	if errors.As(err, &rf) && rf.Device == "" && strings.HasPrefix(rf.Reason, "--hostname ") {
		return strings.TrimPrefix(rf.Error(), "--")
	}
	return err.Error()
}

// The options screen's fields, in focus order.
const (
	optLayout = iota
	optBoot
	optHost
	optPass  // the live user's new password
	optPass2 // the same again
	optSpeed
)

// textField is the text field behind option f, nil for the others. The
// text fields all belong to "make it boot on its own"; keys other than
// moving, enter and esc are typed into them.
func (m *options) textField(f int) *textinput.Model {
	switch f {
	case optHost:
		return &m.hostname
	case optPass:
		return &m.password[0]
	case optPass2:
		return &m.password[1]
	}
	return nil
}

func (m options) radio(on bool) string {
	if on {
		return "(*)"
	}
	return "( )"
}

func (m options) check(on bool) string {
	if on {
		return "[x]"
	}
	return "[ ]"
}

// focused marks the field that keys go to.
func (m options) focused(f int, s string) string {
	if m.focus == f {
		return m.c.th.current.Render(m.c.th.cursor + " " + s)
	}
	return "  " + s
}

func (m options) view() ([]string, bindings) {
	c := m.chosen
	in := c.Info
	b := []string{m.c.th.title.Render("Options for " + c.Path)}
	desc := humanize.IBytes(in.SizeBytes)
	if in.Model != "" {
		desc += ", " + in.Model
	}
	b = append(b, m.c.para(fmt.Sprintf("Target: %s (%s), now holding: %s.", c.Path, desc, contents(*c)))...)
	b = append(b, "")

	b = append(b, m.c.th.strong.Render("Install onto"))
	if in.IsPartition {
		b = append(b, m.focused(optLayout, m.radio(true)+" the partition "+c.Path+"; the disk's partition table stays"))
	} else {
		b = append(b, m.focused(optLayout, m.radio(!m.rawDisk)+" the whole disk, partitioned for booting (GPT: BIOS boot, EFI, root)"))
		b = append(b, "  "+m.radio(m.rawDisk)+" the bare disk: one filesystem, no partition table (cannot boot alone)")
	}
	b = append(b, "")

	b = append(b, m.c.th.strong.Render("Set up"))
	b = append(b, m.focused(optBoot, m.check(m.finalize)+" make it boot on its own: fstab, GRUB, initramfs, new machine-id"))
	host, pw, pw2 := m.hostname.View(), m.password[0].View(), m.password[1].View()
	if !m.finalize {
		host = m.c.th.dim.Render("(kept: nothing is set up)")
		pw, pw2 = m.c.th.dim.Render("(kept: nothing is set up)"), ""
	}
	b = append(b, m.focused(optHost, "    hostname:      "+host))
	b = append(b, m.focused(optPass, "    user password: "+pw))
	b = append(b, m.focused(optPass2, "    again:         "+pw2))
	b = append(b, "")

	b = append(b, m.c.th.strong.Render("Copy speed")+" (you can switch while md copies)")
	line := func(s engine.Speed, text string) string {
		return m.radio(m.speed == s) + " " + fmt.Sprintf("%-7s", s) + " " + text
	}
	b = append(b, m.focused(optSpeed, line(engine.SpeedFast, "full speed; the desktop may feel slower")))
	b = append(b, "  "+line(engine.SpeedGentle, "md yields to your other disk activity"))
	if m.busy {
		b = append(b, "", "Checking "+c.Path+"...")
	}
	if m.note != "" {
		b = append(b, "")
		b = append(b, m.c.th.bad.Render("Cannot go on:"))
		b = append(b, m.c.para(m.note)...)
	}
	keys := bindings{m.keys.FocusNext, m.keys.FocusPrev}
	typing := m.textField(m.focus) != nil
	if !typing {
		keys = append(keys, m.keys.Change)
	}
	keys = append(keys, m.keys.Review, m.keys.Back)
	if !typing {
		keys = append(keys, m.keys.Quit)
	}
	return b, keys
}

// setFocus moves the focus to field f, or past it in direction dir (+1 or
// -1) while f is a text field and "make it boot on its own" is off.
func (m options) setFocus(f, dir int) (options, tea.Cmd) {
	for !m.finalize && m.textField(f) != nil {
		f += dir
	}
	m.focus = max(optLayout, min(f, optSpeed))
	var cmd tea.Cmd
	for _, g := range []int{optHost, optPass, optPass2} {
		if g == m.focus {
			cmd = m.textField(g).Focus()
		} else {
			m.textField(g).Blur()
		}
	}
	return m, cmd
}

func (m options) update(msg tea.Msg) (options, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || m.busy {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.FocusNext):
		if m.focus == optSpeed {
			return m, nil
		}
		return m.setFocus(m.focus+1, +1)
	case key.Matches(k, m.keys.FocusPrev):
		if m.focus == optLayout {
			return m, nil
		}
		return m.setFocus(m.focus-1, -1)
	case key.Matches(k, m.keys.Back):
		m, _ = m.setFocus(optLayout, +1)
		return m, send(goMsg(stTarget))
	case key.Matches(k, m.keys.Review):
		return m.request()
	case m.textField(m.focus) != nil:
		in := m.textField(m.focus)
		var cmd tea.Cmd
		*in, cmd = in.Update(msg)
		return m, cmd
	case key.Matches(k, m.keys.Change) && m.focus == optLayout && !m.chosen.Info.IsPartition:
		m.rawDisk = !m.rawDisk
	case key.Matches(k, m.keys.Change) && m.focus == optBoot:
		m.finalize = !m.finalize
	case key.Matches(k, m.keys.Change) && m.focus == optSpeed:
		m.speed = other(m.speed)
	case key.Matches(k, m.keys.Quit):
		return m, send(quitMsg{})
	}
	return m, nil
}

// request hands what the screen collected to the top model, which asks
// Preflight; the screen waits for the answer.
func (m options) request() (options, tea.Cmd) {
	pw := m.password[0].Value()
	if m.finalize && pw != m.password[1].Value() {
		m.note = "the two passwords differ: type the same one in both fields (or leave both empty to keep the account locked)"
		m.password[0].Reset()
		m.password[1].Reset()
		return m.setFocus(optPass, +1)
	}
	m.busy, m.note = true, ""
	req := engine.Request{Target: m.chosen.Path, Speed: m.speed, NoFinalize: !m.finalize, RawDisk: m.rawDisk && !m.chosen.Info.IsPartition}
	if m.finalize {
		req.Hostname, req.Password = strings.TrimSpace(m.hostname.Value()), pw
	}
	return m, send(requestMsg(req))
}
