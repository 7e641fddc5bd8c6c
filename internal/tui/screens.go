package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

var crumbs = []struct {
	name string
	of   []state
}{
	{"Overview", []state{stLoading, stOverview}},
	{"Target", []state{stTarget}},
	{"Options", []state{stOptions}},
	{"Review", []state{stReview}},
	{"Progress", []state{stProgress}},
	{"Done", []state{stDone, stError}},
}

// header names the wizard and shows where the user is.
func (m Model) header() string {
	var parts []string
	cur := ""
	for _, c := range crumbs {
		here := false
		for _, s := range c.of {
			here = here || s == m.state
		}
		if here {
			cur = c.name
			parts = append(parts, m.th.current.Render("["+c.name+"]"))
		} else {
			parts = append(parts, m.th.dim.Render(c.name))
		}
	}
	full := m.th.title.Render("livemigrate") + "  " + strings.Join(parts, " "+m.th.sep+" ")
	if m.width >= 72 {
		return full
	}
	return m.th.title.Render("livemigrate") + ": " + cur
}

func (m Model) para(s string) []string { return wrap(s, m.width) }

func (m Model) viewLoading() ([]string, bindings) {
	return []string{"Looking at the running system..."}, bindings{m.keys.Interrupt}
}

// --- Overview ---------------------------------------------------------------

const about = "livemigrate installs this live system onto a disk without a reboot, " +
	"keeping everything you did in the session. The running root is an md " +
	"mirror whose only leg is the live snapshot (the image on the medium plus " +
	"your changes in RAM). livemigrate adds your disk as the second leg, md " +
	"copies the system onto it while you keep working, then the live leg is " +
	"dropped, the filesystem grows to fill the disk, and the medium and the " +
	"RAM are released."

func (m Model) viewOverview() ([]string, bindings) {
	s := m.sys
	if s.NotLive != "" {
		var b []string
		b = append(b, m.th.bad.Render("This system cannot be installed with livemigrate."), "")
		b = append(b, m.para("Why: "+s.NotLive+".")...)
		b = append(b, "")
		b = append(b, m.para("livemigrate works on a live session whose boot hook made / an md mirror of the live snapshot. 'livemigrate status' shows what / is on.")...)
		b = append(b, "")
		b = append(b, m.para("What to do: boot a live medium whose initrd has the livemigrate hook (see docs/user-guide.md), or install with your distribution's installer.")...)
		return b, bindings{m.keys.Quit}
	}
	b := m.para(about)
	b = append(b, "")
	b = append(b, m.systemLines()...)
	keys := bindings{withHelp(m.keys.Next, "choose a disk"), m.keys.Quit}
	return b, keys
}

// systemLines describes the root, the live stack and memory.
func (m Model) systemLines() []string {
	s := m.sys
	var b []string
	field := func(k, v string) {
		for i, l := range wrap(v, m.width-12) {
			if i == 0 {
				b = append(b, m.th.strong.Render(fmt.Sprintf("%-11s", k))+" "+l)
			} else {
				b = append(b, strings.Repeat(" ", 12)+l)
			}
		}
	}
	root := "/ on " + s.RootSource
	if s.Array != nil {
		root = fmt.Sprintf("/ on %s (%s)", s.Array.Path, humanize.IBytes(s.Array.SizeBytes))
		if s.RootFS != nil {
			root = fmt.Sprintf("/ on %s (%s, %s)", s.Array.Path, s.RootFS.Type, humanize.IBytes(s.Array.SizeBytes))
		}
	}
	field("Root", root)
	if st := s.Stack; st != nil {
		leg := st.DMName + " (" + st.Snapshot.Name + "), snapshot of " + st.OriginLoop.Name
		if st.OriginFile != "" {
			leg += " <- " + st.OriginFile
		}
		if s.LiveLeg == nil {
			leg += "; no longer in the array"
		}
		field("Live leg", leg)
		if st.MediumMount != "" {
			med := "/dev/" + st.Medium.Name + " on " + st.MediumMount
			if st.MediumIsCD {
				med += " (CD)"
			}
			field("Medium", med)
		}
		if u := s.COW; u != nil {
			where := "in RAM"
			if st.COWKind == "block" {
				where = "on " + st.COW.Name
			}
			field("Changes", fmt.Sprintf("%s %s (COW %s, %s, %.1f%% of %s)", humanize.IBytes(u.UsedSectors*512), where, st.COW.Name, st.COWKind,
				100*float64(u.UsedSectors)/float64(max(u.TotalSectors, 1)), humanize.IBytes(u.TotalSectors*512)))
		} else if s.COWError != "" {
			field("Changes", "unknown: "+s.COWError)
		}
		if free, ok := engine.COWHeadroom(s); ok {
			field("Headroom", humanize.IBytes(free)+" more can be written before the live snapshot is full")
		}
	}
	if s.MemTotal > 0 {
		field("Memory", fmt.Sprintf("%s available of %s", humanize.IBytes(s.MemAvail), humanize.IBytes(s.MemTotal)))
	}
	return b
}

func (m Model) updateOverview(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		if m.sys.NotLive != "" {
			return m, tea.Quit
		}
		return m.quitBefore()
	case key.Matches(k, m.keys.Next) && m.sys.NotLive == "":
		m.state = stTarget
	}
	return m, nil
}
