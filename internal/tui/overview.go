package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// overview is the first screen: what livemigrate does and the live stack it
// found, or why it cannot run here.
type overview struct {
	c    *common
	sys  *engine.System
	keys overviewKeys
}

type overviewKeys struct{ Next, Quit key.Binding }

func newOverview(c *common, sys *engine.System) overview {
	return overview{c: c, sys: sys, keys: overviewKeys{Next: enterKey("choose a disk"), Quit: quitKey()}}
}

const about = "livemigrate installs this live system onto a disk without a reboot, " +
	"keeping everything you did in the session. The running root is an md " +
	"mirror whose only leg is the live snapshot (the image on the medium plus " +
	"your changes in RAM). livemigrate adds your disk as the second leg, md " +
	"copies the system onto it while you keep working, then the live leg is " +
	"dropped, the filesystem grows to fill the disk, and the medium and the " +
	"RAM are released."

func (m overview) view() ([]string, bindings) {
	s := m.sys
	if s.NotLive != "" {
		var b []string
		b = append(b, m.c.th.bad.Render("This system cannot be installed with livemigrate."), "")
		b = append(b, m.c.para("Why: "+s.NotLive+".")...)
		b = append(b, "")
		b = append(b, m.c.para("livemigrate works on a live session whose boot hook made / an md mirror of the live snapshot. 'livemigrate status' shows what / is on.")...)
		b = append(b, "")
		b = append(b, m.c.para("What to do: boot a live medium whose initrd has the livemigrate hook (see docs/user-guide.md), or install with your distribution's installer.")...)
		return b, bindings{m.keys.Quit}
	}
	b := m.c.para(about)
	b = append(b, "")
	b = append(b, m.systemLines()...)
	return b, bindings{m.keys.Next, m.keys.Quit}
}

// systemLines describes the root, the live stack and memory.
func (m overview) systemLines() []string {
	s := m.sys
	var b []string
	field := func(k, v string) {
		for i, l := range wrap(v, m.c.width-12) {
			if i == 0 {
				b = append(b, m.c.th.strong.Render(fmt.Sprintf("%-11s", k))+" "+l)
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
	if mr := s.Mirror; mr != nil {
		root = fmt.Sprintf("/ on %s (%s)", mr.Path, humanize.IBytes(mr.SizeBytes))
		if s.RootFS != nil {
			root = fmt.Sprintf("/ on %s (%s, %s)", mr.Path, s.RootFS.Type, humanize.IBytes(mr.SizeBytes))
		}
	}
	field("Root", root)
	if mr := s.Mirror; mr != nil {
		how := "no livemigrate boot hook: a mirror is put under it while it runs (" + engine.MethodMirror + ")"
		if mr.State == engine.MirrorCopying && mr.Target != nil {
			how = "a mirror of the live snapshot onto /dev/" + mr.Target.Name + " is copying"
		}
		field("How", how)
	}
	if st := s.Stack; st != nil {
		leg := st.DMName + " (" + st.Snapshot.Name + "), snapshot of " + st.OriginLoop.Name
		if st.OriginFile != "" {
			leg += " <- " + st.OriginFile
		}
		if s.LiveLeg == nil && s.Mirror == nil {
			leg += "; no longer in the array"
		}
		label := "Live leg"
		if s.Mirror != nil {
			label = "Live root"
		}
		field(label, leg)
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

func (m overview) update(msg tea.Msg) (overview, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		return m, send(quitMsg{})
	case key.Matches(k, m.keys.Next) && m.sys.NotLive == "":
		return m, send(goMsg(stTarget))
	}
	return m, nil
}
