package dmmirror

import (
	"errors"
	"fmt"
	"strings"

	devmapper "github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/overlay"
)

// State is where a run-time mirror stands, as the kernel's tables show it.
type State int

const (
	// Untouched: live is its snapshot and no SrcName exists.
	Untouched State = iota
	// Copying: live is a mirror of SrcName onto the target.
	Copying
	// Switched: live is a linear map of the target; SrcName may be left.
	Switched
	// Leftover: live is its snapshot again, SrcName is still there (an
	// abort or a refused insert that did not get to remove it).
	Leftover
	// Midway: live is suspended, between two tables: Settle finishes it.
	Midway
)

func (s State) String() string {
	switch s {
	case Untouched:
		return "untouched"
	case Copying:
		return "copying"
	case Switched:
		return "switched"
	case Leftover:
		return "leftover"
	case Midway:
		return "midway"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Classify tells the state from live's table type (its active table), its
// suspension, and whether SrcName exists. It is pure.
func Classify(liveType string, liveSuspended, srcExists bool) (State, error) {
	if liveSuspended {
		return Midway, nil
	}
	switch liveType {
	case "snapshot":
		if srcExists {
			return Leftover, nil
		}
		return Untouched, nil
	case "mirror":
		if !srcExists {
			return 0, errors.New("live is a mirror but " + SrcName + " is missing")
		}
		return Copying, nil
	case "linear":
		return Switched, nil
	}
	return 0, fmt.Errorf("live is a %q device, not a snapshot, mirror or linear map", liveType)
}

// Find reads the mirror under live from the kernel: the state, and (unless
// Untouched) the Mirror to go on with. The snapshot table comes from
// SrcName while it exists, else from live itself.
func Find(live string) (*Mirror, State, error) {
	info, err := devmapper.InfoByName(live)
	if err != nil {
		return nil, 0, fmt.Errorf("dm device %s: %w", live, err)
	}
	m := &Mirror{Live: live, LiveDev: devOf(info.DevNo, live)}
	q := overlay.KernelQuerier{}
	ts, err := q.DMTable(m.LiveDev)
	if err != nil {
		return nil, 0, err
	}
	if len(ts) != 1 {
		return nil, 0, fmt.Errorf("%s has %d targets (%s)", live, len(ts), describe(ts))
	}
	sinfo, serr := devmapper.InfoByName(SrcName)
	srcExists := serr == nil
	if srcExists {
		if sinfo.UUID != UUIDPrefix+live {
			return nil, 0, fmt.Errorf("a dm device %s exists with UUID %q, not livemigrate's for %s: leave it to whoever made it", SrcName, sinfo.UUID, live)
		}
		m.Src = devOf(sinfo.DevNo, SrcName)
		if sts, err := q.DMTable(m.Src); err == nil && len(sts) == 1 && sts[0].Type == "snapshot" {
			m.Snapshot = sts[0]
		} else if its, err := overlay.InactiveTable(m.Src); err == nil && len(its) == 1 && its[0].Type == "snapshot" {
			m.Snapshot = its[0]
		}
	}
	st, err := Classify(ts[0].Type, info.Flags&unix.DM_SUSPEND_FLAG != 0, srcExists)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", live, err)
	}
	switch ts[0].Type {
	case "snapshot":
		if m.Snapshot.Type == "" {
			m.Snapshot = ts[0]
		}
		m.Sectors = ts[0].Length
	case "mirror":
		t, err := ParseMirrorTable(ts[0].Params)
		if err != nil {
			return nil, 0, err
		}
		if len(t.Legs) != 2 || t.Legs[0] != majmin(m.Src) {
			return nil, 0, fmt.Errorf("%s mirrors %s, not %s onto one target", live, strings.Join(t.Legs, " and "), SrcName)
		}
		ma, mi, _ := parseMajMin(t.Legs[1])
		m.Target = overlay.Dev{Major: ma, Minor: mi}
		m.Sectors, m.RegionSectors = ts[0].Length, t.RegionSectors
	case "linear":
		f := strings.Fields(ts[0].Params)
		if len(f) == 2 {
			ma, mi, _ := parseMajMin(f[0])
			m.Target = overlay.Dev{Major: ma, Minor: mi}
		}
		m.Sectors = ts[0].Length
	}
	return m, st, nil
}

// Settle finishes what a crash interrupted, so that the state is one of
// Untouched, Copying or Switched again:
//   - live suspended with a mirror loaded and the snapshot handed over to
//     SrcName: resume live (the insert's last step);
//   - live suspended and SrcName never took the snapshot: drop live's
//     inactive table and resume it on its own snapshot;
//   - live suspended with the snapshot loaded back (an abort): resume it;
//   - live suspended with a linear map loaded: resume it only if the
//     mirror is in sync, else drop the linear map first;
//   - SrcName left beside a snapshot or linear live: remove it, and from a
//     snapshot live the mirror table an insert killed before its suspend
//     left loaded (inactive) in live, which holds SrcName open. SrcName
//     then never held the exceptions: it was never resumed while live was
//     suspended.
func Settle(live string) (State, error) {
	m, st, err := Find(live)
	if err != nil {
		return 0, err
	}
	if st == Midway {
		if err := m.settleSuspended(); err != nil {
			return Midway, err
		}
		if m, st, err = Find(live); err != nil {
			return 0, err
		}
	}
	if (st == Leftover || st == Switched) && m.Src.Major != 0 {
		if st == Leftover {
			if err := m.clearInsertTable(); err != nil {
				return st, err
			}
		}
		if err := m.removeSrc(); err != nil {
			return st, err
		}
		if st == Leftover {
			st = Untouched
		}
	}
	return st, nil
}

func (m *Mirror) settleSuspended() error {
	inactive, err := overlay.InactiveTable(m.LiveDev)
	if err != nil {
		return err
	}
	srcActive := false
	if m.Src.Major != 0 {
		if si, err := devmapper.InfoByName(SrcName); err == nil {
			srcActive = si.Flags&unix.DM_ACTIVE_PRESENT_FLAG != 0
		}
	}
	next := ""
	if len(inactive) == 1 {
		next = inactive[0].Type
	}
	clear := false
	switch next {
	case "mirror":
		clear = !srcActive
	case "linear":
		st, err := m.Status()
		clear = err != nil || !st.InSync()
	case "snapshot":
		// An abort stopped between its two suspensions: the snapshot goes
		// back only from a suspended SrcName.
		if srcActive {
			if err := suspendIfNeeded(SrcName); err != nil {
				return err
			}
		}
	case "":
	default:
		clear = true
	}
	unlock, err := lockMemory()
	if err != nil {
		return err
	}
	defer unlock()
	if clear && next == "mirror" {
		// The insert stopped before the handover.
		return resumeWithoutSrc(m.Live)
	}
	if clear {
		if err := overlay.ClearTable(m.Live); err != nil {
			return err
		}
	}
	if err := devmapper.Resume(m.Live); err != nil {
		return fmt.Errorf("resume %s: %w", m.Live, err)
	}
	return nil
}

// clearInsertTable drops the table an interrupted insert left loaded
// (inactive) in a live that still runs on its snapshot: a mirror whose
// first leg is SrcName. Any other inactive table is somebody else's.
func (m *Mirror) clearInsertTable() error {
	inactive, err := overlay.InactiveTable(m.LiveDev)
	if err != nil {
		return err
	}
	if len(inactive) == 0 {
		return nil
	}
	if len(inactive) == 1 && inactive[0].Type == "mirror" {
		if t, err := ParseMirrorTable(inactive[0].Params); err == nil && len(t.Legs) == 2 && t.Legs[0] == majmin(m.Src) {
			if err := overlay.ClearTable(m.Live); err != nil {
				return fmt.Errorf("clear the table an interrupted insert left loaded in %s: %w", m.Live, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s has a table loaded that is not live (%s): something else is changing it", m.Live, describe(inactive))
}
