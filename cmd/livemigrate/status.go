package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/engine"
)

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[--json]", "Show where / lives: the md array, its legs and their states, recovery\nprogress (or the run-time mirror and its copy), the live stack under the live leg, its copy-on-write usage and the\nRAM it holds. Reads only; safe to run at any time, also during a migration.")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "livemigrate status: unexpected argument %q\n", fs.Arg(0))
		return engine.ExitUsage
	}
	sys, err := engine.Observer{Root: "/"}.Observe()
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate status: %v\n", err)
		return engine.ExitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sys); err != nil {
			return engine.ExitFailure
		}
	} else {
		fmt.Fprint(stdout, renderStatus(sys))
	}
	if sys.NotLive != "" && (sys.FileRoot == nil || engine.MethodNamed(engine.MethodCopy).Applies(sys) != nil) {
		return engine.ExitNotLive
	}
	return 0
}

// renderFinished says how the copy method's finishing service ended, on
// a system it switched to.
func renderFinished(b *strings.Builder) {
	raw, err := os.ReadFile(engine.FinishFile)
	if err != nil {
		return
	}
	var fr engine.FinishResult
	if json.Unmarshal(raw, &fr) != nil {
		return
	}
	if fr.Code == 0 {
		fmt.Fprintf(b, "Migrated:   the copy method switched to this system and finished it (%s)\n", engine.FinishFile)
		return
	}
	fmt.Fprintf(b, "Migrated:   the copy method switched here, but its last steps failed (exit %d): %s; fix the reason and run 'livemigrate finish'\n", fr.Code, fr.Error)
}

// renderFileRoot shows a file-based live root: what the copy method
// copies, what it releases, whether it can switch.
func renderFileRoot(b *strings.Builder, s *engine.System) {
	fr := s.FileRoot
	fmt.Fprintf(b, "Root:       / is %s (%s), a file-based live root: the copy method's\n", fr.Source, fr.FSType)
	if u := s.FileUsage; u != nil {
		fmt.Fprintf(b, "Holds:      %s in %d names\n", humanize.IBytes(u.Bytes), u.Entries)
	}
	if l := fr.Layers; l != nil {
		for i, d := range l.Lower {
			fmt.Fprintf(b, "Layer %d:    %s (read-only)\n", i+1, d)
		}
		if l.Upper != "" {
			fmt.Fprintf(b, "Changes:    %s (the session's, in %s)\n", l.Upper, fr.UpperMount)
		}
	}
	for _, m := range fr.Live {
		what := m.Source
		if m.BackingFile != "" {
			what += " <- " + m.BackingFile
		}
		fmt.Fprintf(b, "Mounted:    %s: %s, %s\n", m.MountPoint, m.Role, what)
	}
	if r := engine.MethodNamed(engine.MethodCopy).Applies(s); r != nil {
		fmt.Fprintf(b, "Cannot migrate: %s\n", r.Reason)
	} else {
		fmt.Fprintf(b, "Switch:     soft-reboot (systemd); the session's programs restart on the target\n")
	}
	if s.CopyStaging != "" {
		fmt.Fprintf(b, "Earlier run: %s is mounted on %s (a copy stopped before the switch)\n", s.CopyStaging, engine.CopyStaging)
	}
	fmt.Fprintf(b, "Memory:     %s available of %s\n", humanize.IBytes(s.MemAvail), humanize.IBytes(s.MemTotal))
}

func renderStatus(s *engine.System) string {
	var b strings.Builder
	if s.Mirror != nil {
		renderMirror(&b, s)
		renderStack(&b, s)
		fmt.Fprintf(&b, "Memory:     %s available of %s\n", humanize.IBytes(s.MemAvail), humanize.IBytes(s.MemTotal))
		return b.String()
	}
	if s.FileRoot != nil {
		renderFileRoot(&b, s)
		return b.String()
	}
	if s.Array == nil {
		fmt.Fprintf(&b, "Root:       / is %s (%s)\n", s.RootSource, s.RootFSType)
		fmt.Fprintf(&b, "Not a livemigrate root: %s\n", s.NotLive)
		renderFinished(&b)
		return b.String()
	}
	a := s.Array
	fsdesc := s.RootFSType
	if s.RootFS != nil {
		fsdesc = fmt.Sprintf("%s %s, UUID %s", s.RootFS.Type, humanize.IBytes(s.RootFS.Size), s.RootFS.UUID)
	}
	health := "healthy"
	if a.Degraded > 0 {
		health = fmt.Sprintf("degraded (%d of %d slots empty)", a.Degraded, a.RaidDisks)
	}
	fmt.Fprintf(&b, "Root:       / on %s (%s)\n", a.Path, fsdesc)
	fmt.Fprintf(&b, "Array:      %s, metadata %s, %s, %s\n", a.Level, a.Metadata, humanize.IBytes(a.SizeBytes), health)
	if s.NotLive != "" {
		fmt.Fprintf(&b, "Not a livemigrate root: %s\n", s.NotLive)
	}
	fmt.Fprintf(&b, "Legs:\n")
	for i, m := range a.Members {
		role := "target"
		if s.LiveLeg != nil && m.Name == s.LiveLeg.Name {
			role = "live leg"
			if s.Stack != nil {
				role += " (" + s.Stack.DMName + ")"
			}
		}
		slot := "-"
		if m.Slot >= 0 {
			slot = fmt.Sprint(m.Slot)
		}
		fmt.Fprintf(&b, "  slot %-2s %-8s %-20s %-12s %s\n", slot, m.Name, role, memberState(s, i), humanize.IBytes(m.SizeKiB*1024))
	}
	if c := a.Copied(); c != nil && a.Recovering() {
		fmt.Fprintf(&b, "Recovery:   %s %.1f%% (%s of %s) at %s/s\n", a.SyncAction, 100*c.Fraction(),
			humanize.IBytes(c.Done*512), humanize.IBytes(c.Total*512), humanize.IBytes(a.SyncSpeedKBs*1000))
	}
	if s.Stack != nil {
		renderStack(&b, s)
	} else if s.LiveLeg == nil {
		fmt.Fprintf(&b, "Live stack: none (released, or / was already migrated)\n")
	}
	fmt.Fprintf(&b, "Memory:     %s available of %s\n", humanize.IBytes(s.MemAvail), humanize.IBytes(s.MemTotal))
	return b.String()
}

// renderMirror describes a root on a live dm snapshot with no md above it,
// or on the run-time mirror (engine.MethodMirror).
func renderMirror(b *strings.Builder, s *engine.System) {
	m := s.Mirror
	fsdesc := s.RootFSType
	if s.RootFS != nil {
		fsdesc = fmt.Sprintf("%s %s, UUID %s", s.RootFS.Type, humanize.IBytes(s.RootFS.Size), s.RootFS.UUID)
	}
	fmt.Fprintf(b, "Root:       / on %s (%s)\n", m.Path, fsdesc)
	tgt := "?"
	if m.Target != nil {
		tgt = "/dev/" + m.Target.Name
	}
	switch m.State {
	case engine.MirrorFresh:
		fmt.Fprintf(b, "Device:     %s (%s), the live snapshot, %s; no boot hook: livemigrate migrates it with a run-time mirror (%s)\n", m.DMName, m.Name, humanize.IBytes(m.SizeBytes), engine.MethodMirror)
	case engine.MirrorCopying:
		fmt.Fprintf(b, "Device:     %s (%s), a dm-mirror of the live snapshot (%s) onto %s, %s\n", m.DMName, m.Name, dmmirror.SrcName, tgt, humanize.IBytes(m.SizeBytes))
		if st := m.Status; st != nil {
			state := "copying"
			if st.InSync() {
				state = "in sync"
			} else if len(st.Failed()) > 0 {
				state = "a leg FAILED"
			}
			fmt.Fprintf(b, "Copy:       %s, %.1f%% (%s of %s, %d of %d regions of %s), legs %s\n", state, 100*float64(st.InSyncRegions)/float64(max(st.Regions, 1)),
				humanize.IBytes(m.CopiedBytes()), humanize.IBytes(m.SizeBytes), st.InSyncRegions, st.Regions, humanize.IBytes(m.RegionSectors*512), st.Health)
		}
	case engine.MirrorSwitched:
		left := "the live snapshot is gone"
		if m.Src != nil {
			left = "the live snapshot " + dmmirror.SrcName + " is still there"
		}
		fmt.Fprintf(b, "Device:     %s (%s), a linear map of %s: / lives on %s (migrated; a plain partition from the next boot); %s\n", m.DMName, m.Name, tgt, tgt, left)
	}
}

// renderStack describes the live stack.
func renderStack(b *strings.Builder, s *engine.System) {
	if st := s.Stack; st != nil {
		fmt.Fprintf(b, "Live stack:\n")
		fmt.Fprintf(b, "  snapshot  %s (%s), chunk %s\n", st.DMName, st.Snapshot.Name, humanize.IBytes(st.ChunkSectors*512))
		fmt.Fprintf(b, "  origin    %s <- %s\n", st.Origin.Name, st.OriginFile)
		for i, sib := range st.Siblings {
			fmt.Fprintf(b, "  also      %s (%s) over %s\n", st.SiblingNames[i], sib.Name, st.OriginLoop.Name)
		}
		if st.SquashfsMount != "" {
			fmt.Fprintf(b, "  squashfs  %s (%s <- %s)\n", st.SquashfsMount, st.SquashfsLoop.Name, st.SquashfsFile)
		}
		if st.MediumMount != "" {
			kind := ""
			if st.MediumIsCD {
				kind = ", CD"
			}
			fmt.Fprintf(b, "  medium    /dev/%s on %s (%s%s)\n", st.Medium.Name, st.MediumMount, st.MediumFSType, kind)
		}
		cow := fmt.Sprintf("%s (%s) <- %s", st.COW.Name, st.COWKind, st.COWBacking)
		if st.COWFSType != "" {
			cow += " on " + st.COWFSType
		}
		if s.COW != nil {
			u := s.COW
			cow += fmt.Sprintf(": %s used of %s (%.1f%%)", humanize.IBytes(u.UsedSectors*512), humanize.IBytes(u.TotalSectors*512), 100*u.UsedFraction())
			if u.ComprDataBytes > 0 {
				cow += fmt.Sprintf(", zram %s compressed to %s (ratio %.2f, %s of RAM)", humanize.IBytes(u.OrigDataBytes), humanize.IBytes(u.ComprDataBytes),
					float64(u.OrigDataBytes)/float64(u.ComprDataBytes), humanize.IBytes(u.MemUsedBytes))
			}
			if u.Failed() {
				cow += " -- SNAPSHOT INVALID OR OVERFLOWED"
			}
		} else if s.COWError != "" {
			cow += ": usage unknown (" + s.COWError + ")"
		}
		fmt.Fprintf(b, "  COW       %s\n", cow)
		if free, ok := engine.COWHeadroom(s); ok {
			fmt.Fprintf(b, "  headroom  %s more can be written before the snapshot overflows\n", humanize.IBytes(free))
		}
	}
}

// memberState describes the i-th leg of s's array.
func memberState(s *engine.System, i int) string {
	a, m := s.Array, s.Array.Members[i]
	switch {
	case m.Faulty():
		return "faulty"
	case m.InSync():
		return "in sync"
	case m.Rebuilding() && a.Copied() != nil:
		return fmt.Sprintf("copying %.1f%%", 100*a.Copied().Fraction())
	case m.Rebuilding():
		return "waiting to copy"
	}
	return strings.Join(m.States, ",")
}
