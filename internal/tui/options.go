package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
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
	optSpeed
)

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
	host := m.hostname.View()
	if !m.finalize {
		host = m.th.dim.Render("(kept: nothing is set up)")
	}
	b = append(b, m.focused(optHost, "    hostname: "+host))
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
	if m.focus != optHost {
		keys = append(keys, m.keys.Speed)
	}
	keys = append(keys, withHelp(m.keys.Next, "review"), m.keys.Back)
	if m.focus != optHost {
		keys = append(keys, m.keys.Quit)
	}
	return b, keys
}

func (m Model) setFocus(f int) (Model, tea.Cmd) {
	if f == optHost && !m.finalize {
		f = optSpeed
	}
	m.focus = f
	if f == optHost {
		return m, m.hostname.Focus()
	}
	m.hostname.Blur()
	return m, nil
}

func (m Model) updateOptions(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || m.busy {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.FocusNext):
		return m.setFocus(min(m.focus+1, optSpeed))
	case key.Matches(k, m.keys.FocusPrev):
		f := m.focus - 1
		if f == optHost && !m.finalize {
			f = optBoot
		}
		return m.setFocus(max(f, optLayout))
	case key.Matches(k, m.keys.Back):
		m.hostname.Blur()
		m.state = stTarget
		return m, nil
	case key.Matches(k, m.keys.Next):
		host := strings.TrimSpace(m.hostname.Value())
		if m.finalize && host != "" && !finalize.ValidHostname(host) {
			m.optNote = fmt.Sprintf("hostname %q: use letters, digits and hyphens, at most 63 characters", host)
			return m, nil
		}
		m.busy, m.optNote = true, ""
		req := engine.Request{Target: m.chosen.Path, Speed: m.speed, NoFinalize: !m.finalize, RawDisk: m.rawDisk && !m.chosen.Info.IsPartition}
		if m.finalize {
			req.Hostname = host
		}
		m.req = req
		eng, sys := m.eng, m.sys
		return m, func() tea.Msg {
			p, err := eng.Preflight(sys, req)
			return plannedMsg{plan: p, err: err}
		}
	case m.focus == optHost:
		var cmd tea.Cmd
		m.hostname, cmd = m.hostname.Update(msg)
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
