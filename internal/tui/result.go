package tui

import (
	"errors"
	"fmt"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// result is the last screen: the migration done, or what failed (also a
// failure to look at the system, or a refusal by Start) and what to do.
// A finalize report or a long error may not fit: it scrolls.
type result struct {
	c       *common
	sys     *engine.System
	plan    *engine.Plan // nil when no plan was made
	res     *engine.Result
	err     error  // nil: done
	warning string // the run's last warning
	scroll  int
	keys    resultKeys
}

type resultKeys struct {
	scrollKeys
	Quit, Enter key.Binding
}

func newResult(c *common, sys *engine.System, plan *engine.Plan, res *engine.Result, err error, warning string) result {
	return result{c: c, sys: sys, plan: plan, res: res, err: err, warning: warning,
		keys: resultKeys{scrollKeys: newScrollKeys(), Quit: quitKey(), Enter: enterKey("quit")}}
}

// lines is the whole screen, also printed when the wizard has closed.
func (m result) lines() []string {
	if m.err != nil {
		return m.failed()
	}
	return m.done()
}

func (m result) view() ([]string, bindings) {
	keys := bindings{m.keys.Quit}
	body, scrolls := m.c.window(m.lines(), m.c.bodyHeight(), m.scroll)
	if scrolls {
		keys = append(bindings{m.keys.Up, m.keys.Down}, keys...)
	}
	return body, keys
}

func (m result) update(msg tea.Msg) (result, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Quit) || key.Matches(k, m.keys.Enter):
		return m, tea.Quit
	case key.Matches(k, m.keys.Up):
		m.scroll = max(m.scroll-1, 0)
	case key.Matches(k, m.keys.Down):
		// Not past the last window, so pgup answers at once.
		m.scroll = min(m.scroll+1, max(len(m.lines())-m.c.bodyHeight()+1, 0))
	}
	return m, nil
}

func (m result) done() []string {
	p, r := m.plan, m.res
	b := []string{m.c.th.good.Render("Done: / now lives on " + p.Target + ".")}
	if r != nil {
		if r.RecoveredBytes > 0 {
			b = append(b, m.c.para(fmt.Sprintf("  Copied %s in %s (%s/s).", humanize.IBytes(r.RecoveredBytes), duration(secs(r.RecoverySeconds)), humanize.IBytes(uint64(r.RecoveryBps))))...)
		}
		if r.FS != nil && r.FS.Grown() {
			b = append(b, m.c.para(fmt.Sprintf("  The %s filesystem grew from %s to %s.", r.FS.Type, humanize.IBytes(r.FS.OldSize), humanize.IBytes(r.FS.NewSize)))...)
		}
	}
	b = append(b, "")
	b = append(b, m.c.th.strong.Render("Freed"))
	if r != nil && r.Release != nil {
		rel := r.Release
		b = append(b, m.c.para(fmt.Sprintf("  The live stack is gone: %s of RAM is available again (the session's changes held %s).", signedMiB(rel.MemGained()), humanize.IBytes(rel.COWBytesFreed)))...)
		if rel.Ejected {
			b = append(b, m.c.para("  The disc was ejected: take it away.")...)
		} else {
			b = append(b, m.c.para("  The live medium is no longer used: you can remove it.")...)
		}
	} else {
		b = append(b, m.c.para("  The live stack was left in place; 'livemigrate release' frees it.")...)
	}
	b = append(b, "")
	b = append(b, m.c.th.strong.Render("Next boot"))
	if f := p.Finalize; f != nil {
		b = append(b, m.c.para(fmt.Sprintf("  %s boots on its own (GRUB on %s) as an installed system: a plain %s filesystem, no md, no live layer. Remove the live medium and reboot when you like.", p.Target, f.Disk, fsName(p.FSType)))...)
		if r != nil {
			for _, fr := range r.Finalize {
				b = append(b, m.c.para("    - "+fr.Title+": "+fr.Message)...)
			}
		}
	} else {
		b = append(b, m.c.para(fmt.Sprintf("  %s holds a plain %s filesystem: no md, no live layer. Nothing was set up to boot it (you chose so); boot it with this on the kernel command line:", p.Target, fsName(p.FSType)))...)
		uuid := "<the UUID shown by 'livemigrate status'>"
		if m.sys != nil && m.sys.RootFS != nil && m.sys.RootFS.UUID != "" {
			uuid = m.sys.RootFS.UUID
		}
		b = append(b, "    "+m.c.th.strong.Render("root=UUID="+uuid))
	}
	b = append(b, "")
	b = append(b, m.c.para("You can keep working in this session: it already runs from the disk.")...)
	return b
}

func fsName(t string) string {
	if t == "" {
		return "root"
	}
	return t
}

func signedMiB(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// failed says what failed, what state the system is in, and what the user
// can do.
func (m result) failed() []string {
	var b []string
	var re *engine.RunError
	var rf *engine.Refusal
	code := engine.ExitCode(m.err)
	switch {
	case errors.As(m.err, &re):
		head := "The migration failed."
		switch {
		case re.Code == engine.ExitInterrupted:
			head = "Stopped. Nothing was changed."
		case re.Code == engine.ExitArrayBroken:
			head = "The migration failed, and the live session can no longer save files."
		case re.Code == engine.ExitGrowFailed || re.Code == engine.ExitReleaseFailed || re.Code == engine.ExitFinalizeFailed:
			head = "Migrated, but not everything went through."
		}
		b = append(b, m.c.th.bad.Render(head), "")
		step := string(re.Step)
		if m.plan != nil {
			for i, s := range m.plan.Steps {
				if s.Kind == re.Step {
					step = fmt.Sprintf("%d. %s", i+1, s.Title)
				}
			}
		}
		b = append(b, m.field("Step", step)...)
		b = append(b, m.field("What failed", fmt.Sprint(re.Err))...)
		b = append(b, m.field("State now", re.State)...)
	case errors.As(m.err, &rf):
		b = append(b, m.c.th.bad.Render("livemigrate cannot go on."), "")
		what := rf.Reason
		if rf.Device != "" {
			what = rf.Device + " " + what
		}
		b = append(b, m.field("Why", what)...)
		b = append(b, m.field("State now", "nothing was changed")...)
		if rf.Hint != "" {
			b = append(b, m.field("What to do", rf.Hint)...)
		}
	default:
		b = append(b, m.c.th.bad.Render("Something went wrong."), "")
		b = append(b, m.field("What failed", fmt.Sprint(m.err))...)
	}
	if adv := advice(code, m.plan); adv != "" {
		b = append(b, m.field("What to do", adv)...)
	}
	if m.warning != "" {
		b = append(b, m.field("Last warning", m.warning)...)
	}
	b = append(b, "", fmt.Sprintf("Exit code %d (see livemigrate(8)).", code))
	return b
}

func (m result) field(k, v string) []string {
	var out []string
	for i, l := range wrap(v, m.c.width-14) {
		if i == 0 {
			out = append(out, m.c.th.strong.Render(fmt.Sprintf("%-13s", k))+" "+l)
		} else {
			out = append(out, "              "+l)
		}
	}
	return out
}

// advice is what the user can do after a run ended with code.
func advice(code int, p *engine.Plan) string {
	tgt := "the target"
	if p != nil {
		tgt = p.Target
	}
	switch code {
	case engine.ExitInterrupted:
		return "Nothing to undo. Run livemigrate again when you are ready."
	case engine.ExitAborted:
		return "Your live session runs as before. Check " + tgt + " (dmesg shows disk errors), then try again or choose another disk."
	case engine.ExitArrayBroken:
		return "Writes to / fail from now on. Copy what you need to a USB stick or over the network, then reboot the live medium; check " + tgt + " (dmesg shows disk errors) before trying again."
	case engine.ExitGrowFailed:
		return "/ is on " + tgt + " at its old size; grow it by hand (resize2fs, xfs_growfs or btrfs filesystem resize max /)."
	case engine.ExitReleaseFailed:
		return "Close what uses the live medium (a shell in /run/initramfs, a file manager), then run 'livemigrate release'."
	case engine.ExitFinalizeFailed:
		return "/ is on " + tgt + ", but it may not boot on its own yet. Fix what the step names, then run 'livemigrate migrate --target " + tgt + "' again: it finishes the setup."
	case engine.ExitLocked:
		return "Wait for the other livemigrate to finish; 'livemigrate status' shows how far it got."
	case engine.ExitFailure:
		return "Read the state above; 'livemigrate status' shows where / lives. If the process was stopped, running livemigrate again continues from what the kernel shows."
	}
	return ""
}
