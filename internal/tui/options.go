package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/finalize"
)

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
func (m *Model) textField(f int) *textinput.Model {
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

func (m Model) radio(on bool) string {
	if on {
		return "(*)"
	}
	return "( )"
}

func (m Model) check(on bool) string {
	if on {
		return "[x]"
	}
	return "[ ]"
}

// focused marks the field that keys go to.
func (m Model) focused(f int, s string) string {
	if m.focus == f {
		return m.th.current.Render(m.th.cursor + " " + s)
	}
	return "  " + s
}

func (m Model) viewOptions() ([]string, bindings) {
	c := m.chosen
	in := c.Info
	b := []string{m.th.title.Render("Options for " + c.Path)}
	desc := humanize.IBytes(in.SizeBytes)
	if in.Model != "" {
		desc += ", " + in.Model
	}
	b = append(b, m.para(fmt.Sprintf("Target: %s (%s), now holding: %s.", c.Path, desc, contents(*c)))...)
	b = append(b, "")

	b = append(b, m.th.strong.Render("Install onto"))
	if in.IsPartition {
		b = append(b, m.focused(optLayout, m.radio(true)+" the partition "+c.Path+"; the disk's partition table stays"))
	} else {
		b = append(b, m.focused(optLayout, m.radio(!m.rawDisk)+" the whole disk, partitioned for booting (GPT: BIOS boot, EFI, root)"))
		b = append(b, "  "+m.radio(m.rawDisk)+" the bare disk: one filesystem, no partition table (cannot boot alone)")
	}
	b = append(b, "")

	b = append(b, m.th.strong.Render("Set up"))
	b = append(b, m.focused(optBoot, m.check(m.finalize)+" make it boot on its own: fstab, GRUB, initramfs, new machine-id"))
	host, pw, pw2 := m.hostname.View(), m.password[0].View(), m.password[1].View()
	if !m.finalize {
		host = m.th.dim.Render("(kept: nothing is set up)")
		pw, pw2 = m.th.dim.Render("(kept: nothing is set up)"), ""
	}
	b = append(b, m.focused(optHost, "    hostname:      "+host))
	b = append(b, m.focused(optPass, "    user password: "+pw))
	b = append(b, m.focused(optPass2, "    again:         "+pw2))
	b = append(b, "")

	b = append(b, m.th.strong.Render("Copy speed")+" (you can switch while md copies)")
	line := func(s engine.Speed, text string) string {
		return m.radio(m.speed == s) + " " + fmt.Sprintf("%-7s", s) + " " + text
	}
	b = append(b, m.focused(optSpeed, line(engine.SpeedFast, "full speed; the desktop may feel slower")))
	b = append(b, "  "+line(engine.SpeedGentle, "md yields to your other disk activity"))
	if m.busy {
		b = append(b, "", "Checking "+c.Path+"...")
	}
	if m.optNote != "" {
		b = append(b, "")
		b = append(b, m.th.bad.Render("Cannot go on:"))
		b = append(b, m.para(m.optNote)...)
	}
	keys := bindings{m.keys.FocusNext, m.keys.FocusPrev}
	typing := m.textField(m.focus) != nil
	if !typing {
		keys = append(keys, m.keys.Speed)
	}
	keys = append(keys, withHelp(m.keys.Next, "review"), m.keys.Back)
	if !typing {
		keys = append(keys, m.keys.Quit)
	}
	return b, keys
}

// setFocus moves the focus to field f, or past it in direction dir (+1 or
// -1) while f is a text field and "make it boot on its own" is off.
func (m Model) setFocus(f, dir int) (Model, tea.Cmd) {
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

func (m Model) updateOptions(msg tea.Msg) (tea.Model, tea.Cmd) {
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
		m.state = stTarget
		return m, nil
	case key.Matches(k, m.keys.Next):
		host := strings.TrimSpace(m.hostname.Value())
		if m.finalize && host != "" && !finalize.ValidHostname(host) {
			m.optNote = fmt.Sprintf("hostname %q: use letters, digits and hyphens, at most 63 characters", host)
			return m, nil
		}
		pw := m.password[0].Value()
		if m.finalize && pw != m.password[1].Value() {
			m.optNote = "the two passwords differ: type the same one in both fields (or leave both empty to keep the account locked)"
			m.password[0].Reset()
			m.password[1].Reset()
			return m.setFocus(optPass, +1)
		}
		m.busy, m.optNote = true, ""
		req := engine.Request{Target: m.chosen.Path, Speed: m.speed, NoFinalize: !m.finalize, RawDisk: m.rawDisk && !m.chosen.Info.IsPartition}
		if m.finalize {
			req.Hostname, req.Password = host, pw
		}
		m.req = req
		eng, sys := m.eng, m.sys
		return m, func() tea.Msg {
			p, err := eng.Preflight(sys, req)
			return plannedMsg{plan: p, err: err}
		}
	case m.textField(m.focus) != nil:
		in := m.textField(m.focus)
		var cmd tea.Cmd
		*in, cmd = in.Update(msg)
		return m, cmd
	case key.Matches(k, m.keys.Speed) && m.focus == optLayout && !m.chosen.Info.IsPartition:
		m.rawDisk = !m.rawDisk
	case key.Matches(k, m.keys.Speed) && m.focus == optBoot:
		m.finalize = !m.finalize
	case key.Matches(k, m.keys.Speed) && m.focus == optSpeed:
		m.speed = other(m.speed)
	case key.Matches(k, m.keys.Quit):
		return m.quitBefore()
	}
	return m, nil
}
