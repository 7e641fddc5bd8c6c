package mdraid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// Member is one leg of an array as the kernel sees it in
// /sys/block/mdN/md/dev-NAME.
type Member struct {
	Name          string   `json:"name"` // kernel name of the component: dm-1, vdb, sdb2
	Major         uint32   `json:"major"`
	Minor         uint32   `json:"minor"`
	Slot          int      `json:"slot"`   // raid slot, -1 when it has none (spare, faulty)
	States        []string `json:"states"` // in_sync, faulty, spare, write_mostly, blocked...
	SizeKiB       uint64   `json:"size_kib"`
	RecoveryStart uint64   `json:"recovery_start,omitempty"` // sectors already rebuilt onto this leg while recovering
	// Gone: the device under this member has disappeared (its number is
	// unknown); only RemoveByName can take it out.
	Gone bool `json:"gone,omitempty"`
}

// Has reports whether the kernel lists state s for the member.
func (m Member) Has(s string) bool {
	for _, x := range m.States {
		if x == s {
			return true
		}
	}
	return false
}

// InSync: the member holds a full, current copy.
func (m Member) InSync() bool { return m.Has("in_sync") && !m.Has("faulty") }

// Faulty: md has failed the member; it still holds a slot in sysfs until removed.
func (m Member) Faulty() bool { return m.Has("faulty") }

// Rebuilding: the member has a slot but md is still copying onto it.
func (m Member) Rebuilding() bool { return m.Slot >= 0 && !m.Has("in_sync") && !m.Has("faulty") }

// Progress is sync_completed: sectors done out of sectors to do.
type Progress struct {
	Done  uint64 `json:"done_sectors"`
	Total uint64 `json:"total_sectors"`
}

// Fraction is Done/Total in [0,1].
func (p Progress) Fraction() float64 {
	if p.Total == 0 {
		return 0
	}
	return float64(p.Done) / float64(p.Total)
}

// SpeedLimit is a sync_speed_min/max value. Local is true when the array has
// its own value rather than following /proc/sys/dev/raid.
type SpeedLimit struct {
	KBs   uint64 `json:"kb_per_s"`
	Local bool   `json:"local"`
}

// Array is a snapshot of an md array's state, read from sysfs.
type Array struct {
	Name          string    `json:"name"` // md127
	Path          string    `json:"path"` // /dev/md127
	Major         uint32    `json:"major"`
	Minor         uint32    `json:"minor"`
	Level         string    `json:"level"`
	Metadata      string    `json:"metadata"` // "none" for build-mode arrays
	RaidDisks     int       `json:"raid_disks"`
	ArrayState    string    `json:"array_state"`
	ComponentKiB  uint64    `json:"component_size_kib"`
	SizeBytes     uint64    `json:"size_bytes"`
	Degraded      int       `json:"degraded"`
	SyncAction    string    `json:"sync_action"`
	SyncCompleted *Progress `json:"sync_completed,omitempty"` // nil when md says "none"
	// Position is the sync's progress as /proc/mdstat shows it: what md
	// has asked of the legs less what is still in flight. md moves
	// sync_completed only at checkpoints (each sixteenth of the array, or
	// a sync limit), which on a large disk is minutes apart; Copied picks
	// the finer of the two. Nil when Sys has no Proc or mdstat shows none.
	Position     *Progress  `json:"position,omitempty"`
	SyncSpeedKBs uint64     `json:"sync_speed_kb_per_s"`
	SpeedMin     SpeedLimit `json:"sync_speed_min"`
	SpeedMax     SpeedLimit `json:"sync_speed_max"`
	Members      []Member   `json:"members"`
}

// Member returns the member with kernel name name.
func (a *Array) Member(name string) (Member, bool) {
	for _, m := range a.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// MemberByDev returns the member with the given device number.
func (a *Array) MemberByDev(major, minor uint32) (Member, bool) {
	for _, m := range a.Members {
		if m.Major == major && m.Minor == minor {
			return m, true
		}
	}
	return Member{}, false
}

// Copied is how far md's sync has come: Position when it is known and not
// behind sync_completed, else sync_completed (nil when neither is known).
func (a *Array) Copied() *Progress {
	if a.Position != nil && (a.SyncCompleted == nil || a.Position.Done >= a.SyncCompleted.Done) {
		return a.Position
	}
	return a.SyncCompleted
}

// Recovering reports whether md is copying onto a leg right now.
func (a *Array) Recovering() bool {
	return a.SyncAction == "recover" || a.SyncAction == "resync"
}

// Sys reads md state below a sysfs root ("/sys" in production, a fake tree
// in tests).
type Sys struct {
	Root string // the directory that plays /sys
	// Proc plays /proc, for mdstat's finer progress ("" leaves Position
	// unread).
	Proc string
}

func (s Sys) mdDir(name string) string { return filepath.Join(s.Root, "block", name, "md") }

// ErrNotArray is returned when a block device has no md directory.
var ErrNotArray = errors.New("not an md array")

// Read returns the state of array name (md127).
func (s Sys) Read(name string) (*Array, error) {
	dir := s.mdDir(name)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read md state of %s: %w", name, ErrNotArray)
		}
		return nil, fmt.Errorf("read md state of %s: %w", name, err)
	}
	a := &Array{Name: name, Path: "/dev/" + name}
	var err error
	rd := func(file string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = readTrim(filepath.Join(dir, file))
		return v
	}
	if maj, min, e := readDevNumber(filepath.Join(s.Root, "block", name, "dev")); e == nil {
		a.Major, a.Minor = maj, min
	}
	a.Level = rd("level")
	a.Metadata = rd("metadata_version")
	a.ArrayState = rd("array_state")
	rdisks := rd("raid_disks")
	comp := rd("component_size")
	if err != nil {
		return nil, fmt.Errorf("read md state of %s: %w", name, err)
	}
	if a.RaidDisks, err = parseRaidDisks(rdisks); err != nil {
		return nil, fmt.Errorf("read md state of %s: raid_disks: %w", name, err)
	}
	if comp != "" {
		if a.ComponentKiB, err = strconv.ParseUint(comp, 10, 64); err != nil {
			return nil, fmt.Errorf("read md state of %s: component_size %q: %w", name, comp, err)
		}
	}
	if sz, e := readTrim(filepath.Join(s.Root, "block", name, "size")); e == nil {
		if n, e := strconv.ParseUint(sz, 10, 64); e == nil {
			a.SizeBytes = n * 512
		}
	}
	// The sync files exist only once a personality runs; an inactive array
	// simply lacks them.
	opt := func(file string) string {
		v, _ := readTrim(filepath.Join(dir, file))
		return v
	}
	if v := opt("degraded"); v != "" {
		a.Degraded, _ = strconv.Atoi(v)
	}
	a.SyncAction = opt("sync_action")
	if v := opt("sync_completed"); v != "" {
		if p, err := ParseSyncCompleted(v); err == nil {
			a.SyncCompleted = p
		}
	}
	if s.Proc != "" && a.SyncCompleted != nil {
		if b, err := os.ReadFile(filepath.Join(s.Proc, "mdstat")); err == nil {
			a.Position = ParseMdstatProgress(string(b), name)
		}
	}
	if v := opt("sync_speed"); v != "" {
		a.SyncSpeedKBs, _ = strconv.ParseUint(v, 10, 64)
	}
	if v := opt("sync_speed_min"); v != "" {
		a.SpeedMin, _ = ParseSpeedLimit(v)
	}
	if v := opt("sync_speed_max"); v != "" {
		a.SpeedMax, _ = ParseSpeedLimit(v)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read md state of %s: %w", name, err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "dev-") {
			continue
		}
		mdir := filepath.Join(dir, e.Name())
		m, err := readMember(mdir)
		if detached(mdir, m, err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read md state of %s: %w", name, err)
		}
		a.Members = append(a.Members, m)
	}
	sort.Slice(a.Members, func(i, j int) bool {
		si, sj := a.Members[i].Slot, a.Members[j].Slot
		if si < 0 {
			si = 1 << 30
		}
		if sj < 0 {
			sj = 1 << 30
		}
		if si != sj {
			return si < sj
		}
		return a.Members[i].Name < a.Members[j].Name
	})
	return a, nil
}

// detached reports whether a member Read listed has left the array while
// it was being read. md unbinds a removed rdev (HOT_REMOVE_DISK returns)
// and deletes its sysfs directory later, from a workqueue; in between its
// attribute files answer ENODEV (the rdev has no array any more) while the
// directory lingers, and then ENOENT once it is going. Both were seen under
// load: "dev-dm-0/state: no such file or directory" in CI, and
// "dev-dm-1/state: no such device" on an mdadm-built md7. Such a leg is no
// longer a member; whatever was read of it is dropped. A state file missing
// from a directory that stays is a broken tree, and still an error.
func detached(mdir string, m Member, err error) bool {
	if err != nil && errors.Is(err, unix.ENODEV) {
		return true
	}
	if (err != nil && errors.Is(err, os.ErrNotExist)) || m.Gone {
		if _, e := os.Stat(mdir); errors.Is(e, os.ErrNotExist) {
			return true
		}
	}
	return false
}

func readMember(dir string) (Member, error) {
	m := Member{Name: strings.TrimPrefix(filepath.Base(dir), "dev-"), Slot: -1}
	state, err := readTrim(filepath.Join(dir, "state"))
	if err != nil {
		return m, err
	}
	m.States = ParseStates(state)
	if v, err := readTrim(filepath.Join(dir, "slot")); err == nil {
		m.Slot, err = ParseSlot(v)
		if err != nil {
			return m, fmt.Errorf("%s slot: %w", m.Name, err)
		}
	}
	if v, err := readTrim(filepath.Join(dir, "size")); err == nil {
		m.SizeKiB, _ = strconv.ParseUint(v, 10, 64)
	}
	if m.SizeKiB == 0 {
		// A leg hot-added to a build-mode array shows size 0 until md
		// next sizes its members; the device's own size is what md will use.
		if v, err := readTrim(filepath.Join(dir, "block", "size")); err == nil {
			sectors, _ := strconv.ParseUint(v, 10, 64)
			m.SizeKiB = sectors / 2
		}
	}
	if v, err := readTrim(filepath.Join(dir, "recovery_start")); err == nil && v != "none" {
		m.RecoveryStart, _ = strconv.ParseUint(v, 10, 64)
	}
	// dev-X/block is a link to the component's sysfs directory. It
	// dangles once the device is gone (a hot-unplugged disk): md still
	// lists the member, faulty, until it is removed.
	if maj, min, err := readDevNumber(filepath.Join(dir, "block", "dev")); err == nil {
		m.Major, m.Minor = maj, min
	} else if errors.Is(err, os.ErrNotExist) {
		m.Gone = true
	} else {
		return m, fmt.Errorf("%s device number: %w", m.Name, err)
	}
	return m, nil
}

// readFile is os.ReadFile; tests replace it to play kernel answers that a
// file tree cannot (ENODEV from a detached member's attributes).
var readFile = os.ReadFile

func readTrim(path string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readDevNumber(path string) (uint32, uint32, error) {
	v, err := readTrim(path)
	if err != nil {
		return 0, 0, err
	}
	return ParseDevNumber(v)
}

// ParseDevNumber parses "MAJ:MIN" as found in sysfs dev files.
func ParseDevNumber(s string) (uint32, uint32, error) { return procfs.ParseDevNumber(s) }

// ParseSyncCompleted parses md's sync_completed: "none", or "DONE / TOTAL"
// in sectors. "delayed" and "pending" are reported as zero progress.
func ParseSyncCompleted(s string) (*Progress, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "none":
		return nil, nil
	case "delayed", "pending":
		return &Progress{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return nil, fmt.Errorf("sync_completed %q: want \"done / total\"", s)
	}
	done, err := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("sync_completed %q: %w", s, err)
	}
	total, err := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("sync_completed %q: %w", s, err)
	}
	if done > total {
		return nil, fmt.Errorf("sync_completed %q: done exceeds total", s)
	}
	return &Progress{Done: done, Total: total}, nil
}

// mdstatProgress is a sync's progress line in /proc/mdstat:
// "recovery = 12.5% (32768/262144)", in KiB.
var mdstatProgress = regexp.MustCompile(`(?:recovery|resync|reshape|check|repair) *= *[0-9.]+% *\(([0-9]+)/([0-9]+)\)`)

// ParseMdstatProgress finds array name's (md127) sync progress in the text
// of /proc/mdstat, in sectors; nil when its block shows none.
func ParseMdstatProgress(mdstat, name string) *Progress {
	var block []string
	for _, l := range strings.Split(mdstat, "\n") {
		if block == nil {
			if strings.HasPrefix(l, name+" :") {
				block = []string{l}
			}
			continue
		}
		if strings.TrimSpace(l) == "" {
			break
		}
		block = append(block, l)
	}
	m := mdstatProgress.FindStringSubmatch(strings.Join(block, "\n"))
	if m == nil {
		return nil
	}
	done, err1 := strconv.ParseUint(m[1], 10, 64)
	total, err2 := strconv.ParseUint(m[2], 10, 64)
	if err1 != nil || err2 != nil || done > total {
		return nil
	}
	return &Progress{Done: done * 2, Total: total * 2}
}

// ParseSpeedLimit parses sync_speed_min/max: "1000 (system)" or "200000 (local)".
func ParseSpeedLimit(s string) (SpeedLimit, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return SpeedLimit{}, fmt.Errorf("speed limit %q: empty", s)
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return SpeedLimit{}, fmt.Errorf("speed limit %q: %w", s, err)
	}
	l := SpeedLimit{KBs: n}
	if len(f) > 1 {
		switch f[1] {
		case "(local)":
			l.Local = true
		case "(system)":
		default:
			return SpeedLimit{}, fmt.Errorf("speed limit %q: unknown origin %q", s, f[1])
		}
	}
	return l, nil
}

// ParseStates splits a dev-*/state value ("in_sync,write_mostly").
func ParseStates(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		out = append(out, f)
	}
	return out
}

// ParseSlot parses dev-*/slot: a number or "none".
func ParseSlot(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("slot %q: want a number or none", s)
	}
	return n, nil
}

func parseRaidDisks(s string) (int, error) {
	// During a reshape md shows "2 (1)"; the first number is the target.
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, nil
	}
	return strconv.Atoi(f[0])
}
