package overlay

import (
	"fmt"
	"path"
	"strings"
)

// COWKind says where the snapshot's copy-on-write data lives, which decides
// what releasing it gives back and how.
type COWKind string

const (
	COWFile        COWKind = "file"         // loop over a file that still has a name
	COWDeletedFile COWKind = "deleted-file" // loop over an unlinked file (dracut's /overlay after switch_root)
	COWZram        COWKind = "zram"
	COWBlock       COWKind = "block" // a real block device: releasing frees no RAM
)

// Stack is the live stack under the live leg, as found by Discover.
type Stack struct {
	Snapshot Dev // live-rw
	DMName   string

	Origin       Dev    // what the snapshot reads from: the loop, or a dm device over it
	OriginDMName string // dm name of Origin when it is a dm device (live-ro), else ""
	OriginFile   string // backing file of OriginLoop, e.g. /run/initramfs/squashfs/LiveOS/rootfs.img
	OriginLoop   Dev
	Siblings     []Dev    // other dm devices over OriginLoop (live-base), removed on release
	SiblingNames []string // their dm names, index-aligned with Siblings

	COW          Dev
	COWKind      COWKind
	COWBacking   string    // backing file as the kernel shows it, or the zram name
	COWFSType    string    // filesystem holding the backing file, "" if unknown
	COWInode     uint64    // inode of the backing file, 0 if unknown; guards its deletion
	COWBackingMM [2]uint32 // st_dev (major, minor) of the backing file, from the loop; zero if unknown

	SquashfsMount string // "" when rootfs.img lies directly on the medium
	SquashfsLoop  Dev
	SquashfsFile  string // the squashfs.img the SquashfsLoop reads

	// RAMImage is set when the image the stack reads (squashfs.img or
	// rootfs.img) was copied into RAM (rd.live.ram): deleting it after its
	// loop is gone gives that memory back. MediumMount is then usually "".
	RAMImage string

	MediumMount  string // e.g. /run/initramfs/live; "" when not mounted or in RAM
	MediumFSType string
	Medium       Dev // sr0, sdb1, vda, or the loop of an ISO file
	MediumDisk   Dev // whole disk holding Medium (sdb for sdb1; for an ISO loop, the disk holding the ISO file)
	MediumIsCD   bool
	MediumFile   string // the ISO file when Medium is a loop, else ""

	ChunkSectors uint64
	Persistent   bool
}

// IsLiveLeg reports whether the md member leg is a dm snapshot, i.e. the
// live leg rather than a target disk. Errors count as "no".
func IsLiveLeg(h Host, leg Dev) bool {
	leg, err := h.resolve(leg)
	if err != nil || !h.exists("/sys/class/block/"+leg.Name+"/dm") {
		return false
	}
	ts, err := h.querier().DMTable(leg)
	return err == nil && len(ts) == 1 && ts[0].Type == "snapshot"
}

// Discover follows the stack down from leg (an md member; Name or
// Major:Minor is enough): the snapshot's table gives origin and COW, sysfs
// gives the loops' files and the dm devices sharing the origin, mountinfo
// gives the squashfs and the medium.
func Discover(h Host, leg Dev) (*Stack, error) {
	q := h.querier()
	leg, err := h.resolve(leg)
	if err != nil {
		return nil, fmt.Errorf("discover live stack: %w", err)
	}
	s := &Stack{Snapshot: leg}
	if s.DMName, err = h.dmName(leg); err != nil {
		return nil, fmt.Errorf("discover live stack: %s is not a device-mapper device (%w); the root array's live leg should be the dm snapshot live-rw", leg, err)
	}
	ts, err := q.DMTable(leg)
	if err != nil {
		return nil, fmt.Errorf("discover live stack: read table of %s (%s): %w", s.DMName, leg, err)
	}
	if len(ts) != 1 || ts[0].Type != "snapshot" {
		return nil, fmt.Errorf("discover live stack: %s (%s) is not a single dm snapshot (table %s); livemigrate only knows the dmsquash-live layout", s.DMName, leg, describeTargets(ts))
	}
	originNum, cowNum, persistent, chunk, err := ParseSnapshotTable(ts[0].Params)
	if err != nil {
		return nil, fmt.Errorf("discover live stack: %s: %w", s.DMName, err)
	}
	s.Persistent, s.ChunkSectors = persistent, chunk

	if err := discoverOrigin(h, s, originNum); err != nil {
		return nil, err
	}
	if err := discoverCOW(h, s, cowNum); err != nil {
		return nil, err
	}
	ms, err := h.mounts()
	if err != nil {
		return nil, fmt.Errorf("discover live stack: read mountinfo: %w", err)
	}
	if err := discoverMedium(h, s, ms); err != nil {
		return nil, err
	}
	if s.COWKind == COWFile || s.COWKind == COWDeletedFile {
		s.COWFSType = cowFSType(s, ms)
	}
	return s, nil
}

func describeTargets(ts []Target) string {
	if len(ts) == 0 {
		return "empty"
	}
	var b []string
	for _, t := range ts {
		b = append(b, fmt.Sprintf("%q", fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params)))
	}
	return strings.Join(b, ", ")
}

func discoverOrigin(h Host, s *Stack, num string) error {
	origin, err := h.devByNumber(num)
	if err != nil {
		return fmt.Errorf("discover live stack: origin of %s: %w", s.DMName, err)
	}
	s.Origin = origin
	loop := origin
	// dracut's readonly overlay puts another snapshot (live-ro) between the
	// loop and live-rw: walk down single-slave dm devices to the loop.
	for depth := 0; loop.isDM() && depth < 4; depth++ {
		if depth == 0 {
			s.OriginDMName, _ = h.dmName(loop)
		}
		sl, err := h.slaves(loop)
		if err != nil {
			return fmt.Errorf("discover live stack: slaves of %s: %w", loop, err)
		}
		var next string
		for _, n := range sl {
			if strings.HasPrefix(n, "loop") && (next == "" || !strings.HasPrefix(next, "loop")) {
				next = n
			}
		}
		if next == "" && len(sl) == 1 {
			next = sl[0]
		}
		if next == "" {
			return fmt.Errorf("discover live stack: origin %s of %s sits on %v, not on one loop device", loop, s.DMName, sl)
		}
		if loop, err = h.resolve(Dev{Name: next}); err != nil {
			return fmt.Errorf("discover live stack: %w", err)
		}
	}
	if !loop.isLoop() {
		return fmt.Errorf("discover live stack: origin of %s is %s, not a loop over LiveOS/rootfs.img", s.DMName, loop)
	}
	s.OriginLoop = loop
	if s.OriginFile, err = h.loopBacking(loop); err != nil || s.OriginFile == "" {
		return fmt.Errorf("discover live stack: backing file of origin %s: not bound (%v)", loop, err)
	}
	holders, err := h.holders(loop)
	if err != nil {
		return fmt.Errorf("discover live stack: holders of %s: %w", loop, err)
	}
	for _, n := range holders {
		if n == s.Snapshot.Name || n == s.Origin.Name || !strings.HasPrefix(n, "dm-") {
			continue
		}
		d, err := h.resolve(Dev{Name: n})
		if err != nil {
			return fmt.Errorf("discover live stack: holder %s of %s: %w", n, loop, err)
		}
		name, _ := h.dmName(d)
		s.Siblings = append(s.Siblings, d)
		s.SiblingNames = append(s.SiblingNames, name)
	}
	return nil
}

func discoverCOW(h Host, s *Stack, num string) error {
	cow, err := h.devByNumber(num)
	if err != nil {
		return fmt.Errorf("discover live stack: COW of %s: %w", s.DMName, err)
	}
	s.COW = cow
	switch {
	case cow.isLoop():
		b, err := h.loopBacking(cow)
		if err != nil || b == "" {
			return fmt.Errorf("discover live stack: backing file of COW %s: not bound (%v)", cow, err)
		}
		s.COWBacking = b
		s.COWKind = COWFile
		if strings.HasSuffix(b, deletedSuffix) {
			s.COWKind = COWDeletedFile
		}
		// Only the loop ioctl knows which inode the loop reads; without it
		// Release will not delete a file it cannot prove is the COW.
		if st, err := h.querier().LoopStatus(cow); err == nil {
			s.COWInode = st.BackingInode
			s.COWBackingMM = [2]uint32{st.BackingMajor, st.BackingMinor}
		}
	case cow.isZram() || h.exists("/sys/class/block/"+cow.Name+"/mm_stat"):
		s.COWKind = COWZram
		s.COWBacking = cow.Name
	default:
		s.COWKind = COWBlock
		s.COWBacking = cow.Path
	}
	return nil
}

// cowFSType prefers the backing file's st_dev (from the loop) over its path:
// an unlinked file or one outside our root has a path that means nothing
// here. Without st_dev, a deleted file's path is not trusted at all.
func cowFSType(s *Stack, ms []Mount) string {
	if s.COWInode != 0 {
		if m, ok := mountByDev(ms, s.COWBackingMM[0], s.COWBackingMM[1], ""); ok {
			return m.FSType
		}
		return ""
	}
	if s.COWKind == COWDeletedFile {
		return ""
	}
	if m, ok := mountFor(ms, s.COWBacking); ok {
		return m.FSType
	}
	return ""
}

// discoverMedium walks up from rootfs.img: the mount holding it is either a
// squashfs on a loop (whose file then sits on the medium) or the medium.
func discoverMedium(h Host, s *Stack, ms []Mount) error {
	file := strings.TrimSuffix(s.OriginFile, deletedSuffix)
	m, ok := mountFor(ms, file)
	// The path the loop shows may no longer lead to the file: dracut
	// lazily unmounts its squashfs once the origin loop holds rootfs.img,
	// and the path then falls through to /run. The loop itself still knows
	// which device its file lives on.
	if st, err := h.querier().LoopStatus(s.OriginLoop); err == nil && (st.BackingMajor != 0 || st.BackingMinor != 0) &&
		(!ok || m.Major != st.BackingMajor || m.Minor != st.BackingMinor) {
		d, err := h.resolve(Dev{Major: st.BackingMajor, Minor: st.BackingMinor})
		if err == nil && d.isLoop() {
			s.SquashfsLoop = d // a squashfs with no mount left
			b, err := h.loopBacking(d)
			if err != nil || b == "" {
				return fmt.Errorf("discover live stack: backing file of squashfs loop %s: not bound (%v)", d, err)
			}
			s.SquashfsFile = b
			file = strings.TrimSuffix(b, deletedSuffix)
			if m, ok = backingMount(h, ms, d, file); !ok || ramFS(m.FSType) || m.MountPoint == "/" {
				if ok && ramFS(m.FSType) {
					s.RAMImage = file
				}
				return nil
			}
			return setMedium(h, s, ms, m)
		}
	}
	if !ok {
		return nil // the origin file is outside our view; nothing more to release
	}
	if m.FSType == "squashfs" || m.FSType == "erofs" {
		// The container of rootfs.img: squashfs, or EROFS (lorax's
		// erofs-ext4 image type; dracut 106 mounts either).
		d, err := h.resolve(Dev{Major: m.Major, Minor: m.Minor})
		if err != nil {
			return fmt.Errorf("discover live stack: device of squashfs mount %s: %w", m.MountPoint, err)
		}
		if !d.isLoop() {
			// squashfs straight on a partition: that partition is the medium.
			return setMedium(h, s, ms, m)
		}
		s.SquashfsMount = m.MountPoint
		s.SquashfsLoop = d
		b, err := h.loopBacking(d)
		if err != nil || b == "" {
			return fmt.Errorf("discover live stack: backing file of squashfs loop %s: not bound (%v)", d, err)
		}
		s.SquashfsFile = b
		file = strings.TrimSuffix(b, deletedSuffix)
		if m, ok = backingMount(h, ms, d, file); !ok {
			return nil
		}
	}
	if ramFS(m.FSType) || m.MountPoint == "/" {
		// rd.live.ram copied the image into RAM, or the image sits on the
		// root itself: there is no medium mount to release, and / or /run
		// must never be unmounted.
		if ramFS(m.FSType) {
			s.RAMImage = file
		}
		return nil
	}
	return setMedium(h, s, ms, m)
}

// backingMount is the mount holding loop d's backing file: the one the
// file's path leads to, unless the loop says the file lives on another
// device. The path can mislead: on Debian 13's dracut (106) the squashfs
// loop shows "/LiveOS/squashfs.img", a path inside the medium's mount
// that here leads to /, while LOOP_GET_STATUS64 says the file is on sr0.
// Then the first mount of that device is the one, and none when no mount
// shows it.
func backingMount(h Host, ms []Mount, d Dev, file string) (Mount, bool) {
	m, ok := mountFor(ms, file)
	st, err := h.querier().LoopStatus(d)
	if err != nil || (st.BackingMajor == 0 && st.BackingMinor == 0) || (ok && m.Major == st.BackingMajor && m.Minor == st.BackingMinor) {
		return m, ok
	}
	for _, c := range ms {
		if c.Major == st.BackingMajor && c.Minor == st.BackingMinor {
			return c, true
		}
	}
	return Mount{}, false
}

func setMedium(h Host, s *Stack, ms []Mount, m Mount) error {
	s.MediumMount = m.MountPoint
	s.MediumFSType = m.FSType
	d, err := h.resolve(Dev{Major: m.Major, Minor: m.Minor})
	if err != nil {
		return fmt.Errorf("discover live stack: device of medium mount %s: %w", m.MountPoint, err)
	}
	s.Medium = d
	s.MediumIsCD = h.isCD(d)
	s.MediumDisk, err = h.wholeDisk(d)
	if err != nil {
		return fmt.Errorf("discover live stack: %w", err)
	}
	if !d.isLoop() {
		return nil
	}
	// An ISO file on a loop (iso-scan): the disk that matters for "is the
	// target the medium" is the one holding the ISO file.
	b, err := h.loopBacking(d)
	if err != nil || b == "" {
		return nil
	}
	s.MediumFile = b
	if im, ok := mountFor(ms, strings.TrimSuffix(b, deletedSuffix)); ok && !ramFS(im.FSType) {
		if id, err := h.resolve(Dev{Major: im.Major, Minor: im.Minor}); err == nil {
			if wd, err := h.wholeDisk(id); err == nil {
				s.MediumDisk = wd
			}
		}
	}
	return nil
}

// Devices lists every block device of the stack, top first, for "does the
// target overlap the live system" checks.
func (s *Stack) Devices() []Dev {
	var out []Dev
	add := func(d Dev) {
		if !d.IsZero() {
			out = append(out, d)
		}
	}
	add(s.Snapshot)
	if s.Origin != s.OriginLoop {
		add(s.Origin)
	}
	add(s.OriginLoop)
	for _, d := range s.Siblings {
		add(d)
	}
	add(s.COW)
	add(s.SquashfsLoop)
	add(s.Medium)
	if s.MediumDisk != s.Medium {
		add(s.MediumDisk)
	}
	return out
}

// Describe is a one-line human summary, e.g. for logs and --dry-run.
func (s *Stack) Describe() string {
	parts := []string{fmt.Sprintf("%s (%s) = snapshot of %s", s.DMName, s.Snapshot, s.OriginLoop)}
	if s.OriginFile != "" {
		parts[0] += " [" + s.OriginFile + "]"
	}
	parts = append(parts, fmt.Sprintf("COW %s %s %q", s.COW, s.COWKind, s.COWBacking))
	if len(s.SiblingNames) > 0 {
		parts = append(parts, "also over the origin: "+strings.Join(s.SiblingNames, ", "))
	}
	if s.SquashfsMount != "" {
		parts = append(parts, fmt.Sprintf("squashfs %s on %s", s.SquashfsMount, s.SquashfsLoop))
	}
	if s.MediumMount != "" {
		kind := ""
		if s.MediumIsCD {
			kind = " (CD)"
		}
		parts = append(parts, fmt.Sprintf("medium %s on %s%s", s.MediumMount, s.Medium, kind))
	}
	if s.RAMImage != "" {
		parts = append(parts, "image copied to RAM: "+path.Clean(s.RAMImage))
	}
	return strings.Join(parts, "; ")
}
