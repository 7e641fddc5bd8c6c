package overlay

import (
	"github.com/livemigrate/livemigrate/internal/procfs"

	"fmt"
	"strconv"
	"strings"
)

// Usage is how full a snapshot's COW store is. Sectors are 512 bytes.
type Usage struct {
	UsedSectors     uint64 // sectors allocated in the COW, metadata included
	TotalSectors    uint64 // size of the COW device
	MetadataSectors uint64 // part of UsedSectors that is exception metadata

	// The kernel reports these instead of numbers. An Invalid snapshot
	// fails all I/O; an Overflow one (PO store) still reads but refuses
	// writes; both mean the live leg is lost.
	Invalid     bool
	Overflow    bool
	MergeFailed bool
	Unknown     bool // the store cannot report usage

	// zram only, from mm_stat: what the COW costs in RAM, which for zram
	// is less than UsedSectors suggests.
	OrigDataBytes  uint64
	ComprDataBytes uint64
	MemUsedBytes   uint64
}

// Failed reports whether the snapshot can no longer take writes.
func (u Usage) Failed() bool { return u.Invalid || u.Overflow || u.MergeFailed }

// FreeSectors is the room left in the COW.
func (u Usage) FreeSectors() uint64 {
	if u.UsedSectors >= u.TotalSectors {
		return 0
	}
	return u.TotalSectors - u.UsedSectors
}

// UsedFraction is UsedSectors/TotalSectors in [0,1]; a failed snapshot
// counts as full so callers watching a threshold react to it.
func (u Usage) UsedFraction() float64 {
	if u.Failed() {
		return 1
	}
	if u.TotalSectors == 0 {
		return 0
	}
	f := float64(u.UsedSectors) / float64(u.TotalSectors)
	return min(f, 1)
}

// ParseSnapshotStatus parses the status line of a dm snapshot target (what
// DM_TABLE_STATUS returns without DM_STATUS_TABLE_FLAG): either
// "<allocated>/<total> <metadata>" in sectors, or one of the words the
// kernel prints instead ("Invalid", "Overflow", "Merge failed", "Unknown").
func ParseSnapshotStatus(s string) (Usage, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "Invalid":
		return Usage{Invalid: true}, nil
	case "Overflow":
		return Usage{Overflow: true}, nil
	case "Merge failed":
		return Usage{MergeFailed: true}, nil
	case "Unknown":
		return Usage{Unknown: true}, nil
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return Usage{}, fmt.Errorf("snapshot status %q: want \"used/total metadata\"", s)
	}
	used, total, ok := strings.Cut(f[0], "/")
	if !ok {
		return Usage{}, fmt.Errorf("snapshot status %q: want \"used/total metadata\"", s)
	}
	var u Usage
	var err error
	if u.UsedSectors, err = strconv.ParseUint(used, 10, 64); err != nil {
		return Usage{}, fmt.Errorf("snapshot status %q: used sectors: %w", s, err)
	}
	if u.TotalSectors, err = strconv.ParseUint(total, 10, 64); err != nil {
		return Usage{}, fmt.Errorf("snapshot status %q: total sectors: %w", s, err)
	}
	if u.MetadataSectors, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return Usage{}, fmt.Errorf("snapshot status %q: metadata sectors: %w", s, err)
	}
	return u, nil
}

// ParseSnapshotTable parses the parameters of a snapshot target as the
// kernel reports them ("7:1 7:2 P 8", "7:1 7:2 PO 8", optionally followed by
// a feature count and features) or as a user writes them with device paths.
// chunk is in sectors. Persistent stores are "P" or "PO", transient "N".
func ParseSnapshotTable(s string) (origin, cow string, persistent bool, chunk uint64, err error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return "", "", false, 0, fmt.Errorf("snapshot table %q: want \"<origin> <cow> <P|PO|N> <chunk sectors>\"", s)
	}
	switch strings.ToUpper(f[2]) {
	case "P", "PO":
		persistent = true
	case "N":
	default:
		return "", "", false, 0, fmt.Errorf("snapshot table %q: store type %q is not P, PO or N", s, f[2])
	}
	chunk, err = strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return "", "", false, 0, fmt.Errorf("snapshot table %q: chunk size: %w", s, err)
	}
	if len(f) > 4 {
		n, err := strconv.ParseUint(f[4], 10, 32)
		if err != nil || uint64(len(f)-5) != n {
			return "", "", false, 0, fmt.Errorf("snapshot table %q: feature arguments do not match their count", s)
		}
	}
	return f[0], f[1], persistent, chunk, nil
}

// Mount is one line of /proc/self/mountinfo.
type Mount = procfs.Mount

// ZramMMStat is /sys/block/zramN/mm_stat (Documentation/admin-guide/
// blockdev/zram.rst). Columns newer than the running kernel stay zero.
type ZramMMStat struct {
	OrigDataSize   uint64 // bytes stored, uncompressed
	ComprDataSize  uint64 // bytes stored, compressed
	MemUsedTotal   uint64 // RAM the device uses, allocator overhead included
	MemLimit       uint64
	MemUsedMax     uint64
	SamePages      uint64
	PagesCompacted uint64
	HugePages      uint64
	HugePagesSince uint64
}

// ParseZramMMStat parses mm_stat; the first three columns are required
// because they are what COW accounting needs.
func ParseZramMMStat(s string) (ZramMMStat, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return ZramMMStat{}, fmt.Errorf("zram mm_stat %q: want at least 3 columns", s)
	}
	var st ZramMMStat
	dst := []*uint64{&st.OrigDataSize, &st.ComprDataSize, &st.MemUsedTotal, &st.MemLimit,
		&st.MemUsedMax, &st.SamePages, &st.PagesCompacted, &st.HugePages, &st.HugePagesSince}
	for i, v := range f {
		if i >= len(dst) {
			break
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return ZramMMStat{}, fmt.Errorf("zram mm_stat %q: column %d: %w", s, i+1, err)
		}
		*dst[i] = n
	}
	return st, nil
}
