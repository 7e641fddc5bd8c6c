package overlay

import "fmt"

// COWUsage measures the snapshot's COW: the dm status gives sectors used of
// the COW device; for zram, mm_stat adds what that costs in RAM. q may be
// nil to use h's Querier.
func COWUsage(q Querier, h Host, s *Stack) (Usage, error) {
	if q == nil {
		q = h.querier()
	}
	ts, err := q.DMStatus(s.Snapshot)
	if err != nil {
		return Usage{}, fmt.Errorf("COW usage of %s (%s): %w", s.DMName, s.Snapshot, err)
	}
	if len(ts) != 1 || ts[0].Type != "snapshot" {
		return Usage{}, fmt.Errorf("COW usage of %s (%s): not a single snapshot target (%s)", s.DMName, s.Snapshot, describeTargets(ts))
	}
	u, err := ParseSnapshotStatus(ts[0].Params)
	if err != nil {
		return Usage{}, fmt.Errorf("COW usage of %s (%s): %w", s.DMName, s.Snapshot, err)
	}
	if s.COWKind == COWZram {
		raw, err := h.readFile("/sys/class/block/" + s.COW.Name + "/mm_stat")
		if err != nil {
			return u, fmt.Errorf("COW usage of %s: zram %s: %w", s.DMName, s.COW, err)
		}
		st, err := ParseZramMMStat(raw)
		if err != nil {
			return u, fmt.Errorf("COW usage of %s: zram %s: %w", s.DMName, s.COW, err)
		}
		u.OrigDataBytes, u.ComprDataBytes, u.MemUsedBytes = st.OrigDataSize, st.ComprDataSize, st.MemUsedTotal
	}
	return u, nil
}

// ramBytes is how much RAM the COW holds, which is what releasing it gives
// back: zram's own count, the allocated sectors of a file on a RAM
// filesystem (a deleted file's filesystem is unknown but in practice the
// initramfs root, so it counts), nothing for a disk.
func ramBytes(s *Stack, u Usage) uint64 {
	switch s.COWKind {
	case COWZram:
		return u.MemUsedBytes
	case COWDeletedFile:
		if s.COWFSType == "" || ramFS(s.COWFSType) {
			return u.UsedSectors * 512
		}
	case COWFile:
		if ramFS(s.COWFSType) {
			return u.UsedSectors * 512
		}
	}
	return 0
}
