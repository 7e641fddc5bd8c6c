package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// target is the screen that chooses the disk or partition to install onto,
// from the candidates the engine listed; refused ones show why.
type target struct {
	c      *common
	sys    *engine.System
	rows   []row
	cursor int
	keys   targetKeys
}

type targetKeys struct{ Up, Down, Choose, Back, Rescan, Quit key.Binding }

func newTarget(c *common, sys *engine.System, cands []engine.Candidate) target {
	m := target{c: c, sys: sys, rows: buildRows(cands), keys: targetKeys{
		Up:     key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("up/k", "up")),
		Down:   key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("down/j", "down")),
		Choose: enterKey("choose"),
		Back:   backKey(),
		Rescan: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rescan")),
		Quit:   quitKey(),
	}}
	m.cursor = m.firstUsable()
	return m
}

// row is one disk or partition on the target screen.
type row struct {
	c     engine.Candidate
	depth int
}

func buildRows(cands []engine.Candidate) []row {
	var out []row
	for _, c := range cands {
		out = append(out, row{c: c})
		for _, p := range c.Children {
			out = append(out, row{c: p, depth: 1})
		}
	}
	return out
}

func (m target) firstUsable() int {
	for i, r := range m.rows {
		if r.c.Usable() {
			return i
		}
	}
	return -1
}

// move goes to the next usable row in direction d; refused rows are skipped.
func (m target) move(d int) int {
	for i := m.cursor + d; i >= 0 && i < len(m.rows); i += d {
		if m.rows[i].c.Usable() {
			return i
		}
	}
	return m.cursor
}

// contents says what is on a device now.
func contents(c engine.Candidate) string {
	var parts []string
	if c.FS != nil {
		s := string(c.FS.Type)
		if c.FS.Label != "" {
			s += fmt.Sprintf(" %q", c.FS.Label)
		}
		parts = append(parts, s)
	}
	if c.Info != nil && len(c.Info.Partitions) > 0 {
		parts = append(parts, "partitions "+strings.Join(c.Info.Partitions, ", "))
	}
	if len(parts) == 0 {
		return "no filesystem found"
	}
	return strings.Join(parts, "; ")
}

func (m target) rowLines(i int) []string {
	r := m.rows[i]
	in := r.c.Info
	size, desc := "?", ""
	if in != nil {
		size = humanize.IBytes(in.SizeBytes)
		var d []string
		if r.depth == 0 {
			if in.Model != "" {
				d = append(d, in.Model)
			}
			if in.Transport != "" {
				d = append(d, in.Transport)
			}
			if in.Removable {
				d = append(d, "removable")
			}
		}
		desc = strings.Join(d, ", ")
	}
	what := contents(r.c)
	if desc != "" {
		what = desc + "; " + what
	}
	mark := "  "
	if i == m.cursor {
		mark = m.c.th.cursor + " "
	}
	name := strings.Repeat("  ", r.depth) + r.c.Path
	line := fmt.Sprintf("%s%-14s %9s  %s", mark, name, size, what)
	if !r.c.Usable() {
		reason := "cannot be used: " + r.c.Refusal.Reason
		out := []string{m.c.th.dim.Render(line)}
		for _, l := range wrap(strings.Repeat(" ", 6+2*r.depth)+reason, m.c.width) {
			out = append(out, m.c.th.dim.Render(l))
		}
		return out
	}
	if i == m.cursor {
		return []string{m.c.th.current.Render(line)}
	}
	return []string{line}
}

func (m target) view() ([]string, bindings) {
	var head []string
	need := ""
	if m.sys.Array != nil {
		need = fmt.Sprintf(" It must hold at least %s (the live root).", humanize.IBytes(m.sys.Array.SizeBytes))
	} else if m.sys.Mirror != nil {
		need = fmt.Sprintf(" It must hold at least %s (the live root).", humanize.IBytes(m.sys.Mirror.SizeBytes))
	}
	head = append(head, m.c.th.title.Render("Choose the disk or partition to install onto"))
	head = append(head, m.c.para("Everything on it will be destroyed."+need)...)
	head = append(head, "")
	keys := bindings{m.keys.Up, m.keys.Down, m.keys.Choose, m.keys.Back, m.keys.Rescan, m.keys.Quit}
	if len(m.rows) == 0 {
		return append(head, "No disks found. Plug one in and press r."), keys
	}
	// Every row, with the cursor's kept in sight.
	var lines []string
	at := 0
	for i := range m.rows {
		if i == m.cursor {
			at = len(lines)
		}
		lines = append(lines, m.rowLines(i)...)
	}
	room := m.c.bodyHeight() - len(head) - 2
	off := 0
	if at >= room {
		off = at - room + 2
	}
	if off+room > len(lines) {
		off = max(len(lines)-room, 0)
	}
	end := min(off+room, len(lines))
	body := append(head, lines[off:end]...)
	if m.cursor < 0 {
		body = append(body, "", m.c.th.bad.Render("No disk or partition can take this system; the reasons are listed."))
	} else if end < len(lines) || off > 0 {
		body = append(body, "", m.c.th.dim.Render(fmt.Sprintf("(%d more lines; move to see them)", len(lines)-(end-off))))
	}
	return body, keys
}

func (m target) update(msg tea.Msg) (target, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Up):
		m.cursor = m.move(-1)
	case key.Matches(k, m.keys.Down):
		m.cursor = m.move(1)
	case key.Matches(k, m.keys.Back):
		return m, send(goMsg(stOverview))
	case key.Matches(k, m.keys.Rescan):
		return m, send(rescanMsg{})
	case key.Matches(k, m.keys.Quit):
		return m, send(quitMsg{})
	case key.Matches(k, m.keys.Choose):
		if m.cursor >= 0 && m.cursor < len(m.rows) {
			return m, send(chosenMsg(m.rows[m.cursor].c))
		}
	}
	return m, nil
}
