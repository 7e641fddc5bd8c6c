package dmmirror

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds of the region size, in 512-byte sectors: the unit dm-mirror copies
// and tracks, one region at a time. Small regions copy slowly (in the VM,
// 512 KiB regions copied at a third of the source's read speed, 4 MiB ones
// at four fifths); a write to a region being copied waits for that region,
// so they stay bounded. RegionSectors picks one per size.
const (
	MinRegionSectors = 8192  // 4 MiB
	MaxRegionSectors = 32768 // 16 MiB
)

// RegionSectors is the region size for a mirror of sectors: the smallest
// power of two between MinRegionSectors and MaxRegionSectors that cuts it
// into at most 4096 regions.
func RegionSectors(sectors uint64) uint64 {
	r := uint64(MinRegionSectors)
	for r < MaxRegionSectors && sectors > 4096*r {
		r *= 2
	}
	return r
}

// MirrorParams is the parameter string of a dm "mirror" target with an
// in-memory (core) log whose regions start out of sync, so dm-mirror copies
// leg 0 (src) onto leg 1 (dst), both as major:minor, offset 0. No features:
// without handle_errors a failed leg is marked dead and writes go on.
func MirrorParams(src, dst string, regionSectors uint64) (string, error) {
	if regionSectors < 2 || regionSectors&(regionSectors-1) != 0 {
		return "", fmt.Errorf("mirror region of %d sectors: not a power of two", regionSectors)
	}
	for _, d := range []string{src, dst} {
		if _, _, err := parseMajMin(d); err != nil {
			return "", fmt.Errorf("mirror leg %q: %w", d, err)
		}
	}
	return fmt.Sprintf("core 1 %d 2 %s 0 %s 0", regionSectors, src, dst), nil
}

// MirrorTable is a parsed "mirror" table line (DM_STATUS_TABLE_FLAG).
type MirrorTable struct {
	LogType       string
	RegionSectors uint64
	Legs          []string // major:minor
	Offsets       []uint64
	Features      []string
}

// ParseMirrorTable parses a mirror table line: "<log type> <#log args>
// <log args> <#legs> (<dev> <offset>)... [<#features> <features>...]".
// For core and disk logs the region size is the first log argument after
// the log device (disk) or the first one (core).
func ParseMirrorTable(params string) (MirrorTable, error) {
	f := strings.Fields(params)
	var t MirrorTable
	bad := func(why string) (MirrorTable, error) {
		return MirrorTable{}, fmt.Errorf("mirror table %q: %s", params, why)
	}
	if len(f) < 2 {
		return bad("too short")
	}
	t.LogType = f[0]
	nlog, err := count(f[1])
	if err != nil || 2+nlog > len(f) {
		return bad("bad log argument count")
	}
	logArgs := f[2 : 2+nlog]
	regionAt := 0
	if t.LogType == "disk" || t.LogType == "userspace" {
		regionAt = 1
	}
	if len(logArgs) > regionAt {
		if t.RegionSectors, err = strconv.ParseUint(logArgs[regionAt], 10, 64); err != nil {
			return bad("bad region size")
		}
	}
	i := 2 + nlog
	if i >= len(f) {
		return bad("no leg count")
	}
	nlegs, err := count(f[i])
	if err != nil || nlegs < 1 || i+1+2*nlegs > len(f) {
		return bad("bad leg count")
	}
	for k := 0; k < nlegs; k++ {
		dev, off := f[i+1+2*k], f[i+2+2*k]
		o, err := strconv.ParseUint(off, 10, 64)
		if err != nil {
			return bad("bad leg offset " + off)
		}
		t.Legs = append(t.Legs, dev)
		t.Offsets = append(t.Offsets, o)
	}
	i += 1 + 2*nlegs
	if i < len(f) {
		nf, err := count(f[i])
		if err != nil || i+1+nf != len(f) {
			return bad("bad feature count")
		}
		t.Features = f[i+1:]
	}
	return t, nil
}

// Health of one leg, as dm-mirror's status spells it.
const (
	LegAlive        = 'A'
	LegDead         = 'D' // a write failed
	LegSyncFailed   = 'S' // the copy onto it failed
	LegReadFailed   = 'R'
	LegFlushFailed  = 'F'
	LegUnclassified = 'U'
)

// Status is a parsed "mirror" status line.
type Status struct {
	Legs          []string // major:minor
	InSyncRegions uint64
	Regions       uint64
	Health        string // one character per leg
	LogType       string
}

// ParseStatus parses a mirror status line: "<#legs> <dev>... <in sync>/<total>
// <#health args> <health chars> <#log status args> <log status>...", e.g.
// "2 253:4 7:5 12/128 1 AA 1 core".
func ParseStatus(params string) (Status, error) {
	f := strings.Fields(params)
	bad := func(why string) (Status, error) {
		return Status{}, fmt.Errorf("mirror status %q: %s", params, why)
	}
	if len(f) < 1 {
		return bad("empty")
	}
	n, err := count(f[0])
	if err != nil || n < 1 || len(f) < 1+n+3 {
		return bad("bad leg count")
	}
	var s Status
	s.Legs = append(s.Legs, f[1:1+n]...)
	a, b, ok := strings.Cut(f[1+n], "/")
	if !ok {
		return bad("no in-sync/total regions")
	}
	if s.InSyncRegions, err = strconv.ParseUint(a, 10, 64); err != nil {
		return bad("bad in-sync count")
	}
	if s.Regions, err = strconv.ParseUint(b, 10, 64); err != nil || s.InSyncRegions > s.Regions {
		return bad("bad region count")
	}
	nh, err := count(f[2+n])
	if err != nil || nh != 1 || len(f) < 4+n {
		return bad("bad health count")
	}
	s.Health = f[3+n]
	if len(s.Health) != n {
		return bad("health does not name every leg")
	}
	for _, c := range s.Health {
		if !strings.ContainsRune("ADSRFU", c) {
			return bad("unknown health " + string(c))
		}
	}
	if len(f) > 5+n {
		s.LogType = f[5+n]
	}
	return s, nil
}

// InSync reports whether every region is copied and every leg alive: the
// only state in which the target holds everything the snapshot does.
func (s Status) InSync() bool {
	return s.Regions > 0 && s.InSyncRegions == s.Regions && strings.Trim(s.Health, "A") == ""
}

// Failed returns the legs that are not alive, by index, or nil.
func (s Status) Failed() []int {
	var out []int
	for i, c := range s.Health {
		if c != LegAlive {
			out = append(out, i)
		}
	}
	return out
}

// Copied is how much is in sync, in sectors, capped at total.
func (s Status) Copied(regionSectors, total uint64) uint64 {
	c := s.InSyncRegions * regionSectors
	return min(c, total)
}

func count(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<16 {
		return 0, errors.New("bad count " + s)
	}
	return n, nil
}

func parseMajMin(s string) (uint32, uint32, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, errors.New("not major:minor")
	}
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("not major:minor")
	}
	return uint32(ma), uint32(mi), nil
}
