package partition

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Write replaces whatever is on devPath with the GPT of l. The user has
// consented to lose the whole disk, so it first zeroes the disk's first and
// last MiB (old MBR, GPT, md and filesystem signatures) and the first and
// last MiB of every new partition (stale superblocks that blkid would
// otherwise report inside them, md 0.90/1.0 ones sitting at the end). It
// writes the backup GPT before the primary, so a valid primary means a
// complete table, fsyncs, and makes the kernel load the new partitions:
// BLKRRPART, or, when some old partition is still open (EBUSY) or the
// device does not scan partitions (EINVAL), BLKPG adds. It then checks
// sysfs shows exactly l's partitions.
//
// Before writing anything it deletes (BLKPG) the kernel's old partitions
// that differ from l, so an old partition still in use stops Write with the
// disk untouched; one that l keeps with the same extent may stay open.
//
// devPath may also be a regular image file, which gets the same bytes and
// no kernel notification.
func Write(devPath string, l Layout) error {
	hold, err := WriteHeld(devPath, l)
	if hold != nil {
		hold.Close()
	}
	return err
}

// WriteHeld is Write that keeps the disk locked against udev until the
// caller closes the returned file (nil for an image file or on error).
//
// Closing a disk that was open for writing makes udev synthesize a change
// event, and for a whole disk systemd-udevd then rereads its partition
// table (BLKRRPART) unless it can not take the disk's exclusive BSD lock.
// That reread deletes and re-adds every partition: a partition handed to md
// in between is gone under md ("disappeared during recovery", seen in the
// Debian VM). So the lock moves, before the writable descriptor closes,
// to a read-only one (whose close udev ignores), and the caller closes
// that once the new partition is in use, when the kernel refuses a reread
// anyway.
func WriteHeld(devPath string, l Layout) (io.Closer, error) {
	f, err := write(devPath, l)
	if f == nil { // never a nil *os.File inside a non-nil io.Closer
		return nil, err
	}
	return f, nil
}

func write(devPath string, l Layout) (*os.File, error) {
	primary, backup, backupOff, err := Encode(l)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", devPath, err)
	}
	fi, err := os.Stat(devPath)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", devPath, err)
	}
	isBlock := fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	if !isBlock && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("partition %s: not a block device or image file (%v)", devPath, fi.Mode())
	}
	flags := os.O_RDWR
	if isBlock {
		// An exclusive open fails while the disk or any of its
		// partitions is mounted, used as swap or held by md/dm: the
		// kernel's own last check that we are not writing under a user.
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(devPath, flags, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("partition %s: the disk or one of its partitions is in use (mounted, swap, or held by md, dm or LVM); stop using it and retry: %w", devPath, err)
		}
		return nil, fmt.Errorf("partition %s: %w", devPath, err)
	}
	defer f.Close()

	size := uint64(fi.Size())
	var sysDir string
	if isBlock {
		if sysDir, size, err = checkWholeDisk(f, devPath, l.SectorSize); err != nil {
			return nil, err
		}
	}
	if size != l.Bytes() {
		return nil, fmt.Errorf("partition %s: device is %d bytes but the layout was planned for %d bytes; plan again for this device", devPath, size, l.Bytes())
	}

	// udev takes a shared BSD lock on a whole disk while it probes it and
	// skips disks someone holds exclusively, so holding this lock keeps
	// blkid from opening the old partitions (which would make BLKRRPART
	// fail with EBUSY) and from probing a half-written table.
	if err := lockDisk(f); err != nil {
		return nil, fmt.Errorf("partition %s: lock the disk against udev: %w", devPath, err)
	}

	if isBlock {
		if err := dropStale(int(f.Fd()), sysDir, wantExtents(l)); err != nil {
			return nil, fmt.Errorf("partition %s: nothing was written: %w", devPath, err)
		}
	}

	ss := uint64(l.SectorSize)
	for _, r := range wipeRegions(l) {
		if err := zero(f, r[0], r[1]); err != nil {
			return nil, fmt.Errorf("partition %s: wipe old signatures at byte %d: %w", devPath, r[0], err)
		}
	}
	if _, err := f.WriteAt(backup, int64(backupOff)); err != nil {
		return nil, fmt.Errorf("partition %s: write backup GPT at LBA %d: %w", devPath, backupOff/ss, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("partition %s: flush backup GPT: %w", devPath, err)
	}
	if _, err := f.WriteAt(primary, 0); err != nil {
		return nil, fmt.Errorf("partition %s: write primary GPT: %w", devPath, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("partition %s: flush primary GPT: %w", devPath, err)
	}
	if !isBlock {
		return nil, nil
	}
	if err := tellKernel(f, sysDir, l); err != nil {
		return nil, fmt.Errorf("partition %s: the new GPT is on disk but the kernel does not see it: %w", devPath, err)
	}
	// Move the lock to a read-only descriptor before f (open for
	// writing) closes; see WriteHeld.
	ro, err := os.Open(devPath)
	if err != nil {
		return nil, fmt.Errorf("partition %s: reopen to keep the lock: %w", devPath, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		ro.Close()
		return nil, fmt.Errorf("partition %s: %w", devPath, os.NewSyscallError("flock", err))
	}
	if err := lockDisk(ro); err != nil {
		ro.Close()
		return nil, fmt.Errorf("partition %s: lock the disk against udev: %w", devPath, err)
	}
	return ro, nil
}

// checkWholeDisk returns the sysfs directory and size of the block device
// open as f, and refuses partitions and a sector size other than planned.
func checkWholeDisk(f *os.File, devPath string, planned uint32) (sysDir string, size uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", 0, fmt.Errorf("partition %s: %w", devPath, os.NewSyscallError("fstat", err))
	}
	sysDir = fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if _, err := os.Stat(filepath.Join(sysDir, "partition")); err == nil {
		return "", 0, fmt.Errorf("partition %s: it is a partition, not a whole disk; give the disk itself", devPath)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return "", 0, fmt.Errorf("partition %s: %w", devPath, os.NewSyscallError("ioctl BLKGETSIZE64", e))
	}
	lss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return "", 0, fmt.Errorf("partition %s: %w", devPath, os.NewSyscallError("ioctl BLKSSZGET", err))
	}
	if uint32(lss) != planned {
		return "", 0, fmt.Errorf("partition %s: device has %d-byte logical sectors but the layout was planned for %d; plan again for this device", devPath, lss, planned)
	}
	return sysDir, size, nil
}

func lockDisk(f *os.File) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wipeRegions lists [offset, length] byte ranges Write zeroes.
func wipeRegions(l Layout) [][2]uint64 {
	size := l.Bytes()
	n := min(uint64(mib), size)
	r := [][2]uint64{{0, n}, {size - n, n}}
	for _, p := range l.Parts {
		off, plen := p.Start*uint64(l.SectorSize), p.Sectors*uint64(l.SectorSize)
		n := min(uint64(mib), plen)
		r = append(r, [2]uint64{off, n})
		if plen > n {
			r = append(r, [2]uint64{off + plen - n, n})
		}
	}
	return r
}

func zero(f *os.File, off, n uint64) error {
	buf := make([]byte, min(n, mib))
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := f.WriteAt(buf[:k], int64(off)); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// extent is a partition as sysfs shows it, in 512-byte units whatever the
// logical sector size.
type extent struct{ start, size uint64 }

func wantExtents(l Layout) map[int]extent {
	m := make(map[int]extent)
	k := uint64(l.SectorSize) / 512
	for _, p := range l.Parts {
		m[p.Number] = extent{p.Start * k, p.Sectors * k}
	}
	return m
}

// kernelExtents reads the partitions the kernel has for the disk at sysDir.
func kernelExtents(sysDir string) (map[int]extent, error) {
	ents, err := os.ReadDir(sysDir)
	if err != nil {
		return nil, err
	}
	m := make(map[int]extent)
	for _, e := range ents {
		d := filepath.Join(sysDir, e.Name())
		num, err := readSysUint(filepath.Join(d, "partition"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		start, err := readSysUint(filepath.Join(d, "start"))
		if err != nil {
			return nil, err
		}
		size, err := readSysUint(filepath.Join(d, "size"))
		if err != nil {
			return nil, err
		}
		m[int(num)] = extent{start, size}
	}
	return m, nil
}

func readSysUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

func tellKernel(f *os.File, sysDir string, l Layout) error {
	want := wantExtents(l)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0)
	switch {
	case e == 0:
		if got, err := kernelExtents(sysDir); err == nil && maps.Equal(got, want) {
			return nil
		}
	case e == unix.EBUSY || e == unix.EINVAL:
		// EBUSY: an old partition is open. EINVAL: the driver does
		// not scan partitions (a loop device without
		// LO_FLAGS_PARTSCAN). BLKPG can still change what is not in
		// use, partition by partition.
	default:
		return os.NewSyscallError("ioctl BLKRRPART", e)
	}
	if err := blkpgSync(int(f.Fd()), sysDir, want); err != nil {
		return err
	}
	got, err := kernelExtents(sysDir)
	if err != nil {
		return err
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("after BLKPG the kernel has partitions %v, want %v; reboot to load the new table", got, want)
	}
	return nil
}

// dropStale deletes the kernel's partitions of the disk before anything is
// written. One that is open cannot be deleted: if the new layout has it with
// the same extent it stays, otherwise dropStale puts back what it deleted
// and fails, so Write stops with the disk and the kernel's view untouched
// instead of leaving a table the kernel cannot load. Deleting the rest now,
// rather than leaving it to BLKRRPART, also drops their page caches, which
// could otherwise show blkid the signatures Write is about to wipe.
func dropStale(fd int, sysDir string, want map[int]extent) error {
	have, err := kernelExtents(sysDir)
	if err != nil {
		return err
	}
	nums := make([]int, 0, len(have))
	for n := range have {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	var deleted []int
	for _, n := range nums {
		err := blkpg(fd, unix.BLKPG_DEL_PARTITION, n, 0, 0)
		if err == nil {
			deleted = append(deleted, n)
			continue
		}
		if w, ok := want[n]; ok && w == have[n] && errors.Is(err, unix.EBUSY) {
			continue
		}
		for _, d := range deleted {
			_ = blkpg(fd, unix.BLKPG_ADD_PARTITION, d, int64(have[d].start*512), int64(have[d].size*512))
		}
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("old partition %d is in use (mounted, swap, open by a program, or held by md, dm or LVM); stop using it and retry: %w", n, err)
		}
		return fmt.Errorf("delete old partition %d: %w", n, err)
	}
	return nil
}

// blkpgSync makes the kernel's partitions equal want partition by
// partition: those whose extent already matches stay (they may be open).
func blkpgSync(fd int, sysDir string, want map[int]extent) error {
	if err := dropStale(fd, sysDir, want); err != nil {
		return err
	}
	have, err := kernelExtents(sysDir)
	if err != nil {
		return err
	}
	nums := make([]int, 0, len(want))
	for n := range want {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		if _, ok := have[n]; ok {
			continue
		}
		w := want[n]
		if err := blkpg(fd, unix.BLKPG_ADD_PARTITION, n, int64(w.start*512), int64(w.size*512)); err != nil {
			return fmt.Errorf("add partition %d: %w", n, err)
		}
	}
	return nil
}

func blkpg(fd int, op int32, pno int, start, length int64) error {
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(pno)}
	a := unix.BlkpgIoctlArg{Op: op, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKPG, uintptr(unsafe.Pointer(&a)))
	runtime.KeepAlive(&p)
	if e != 0 {
		name := "BLKPG_ADD_PARTITION"
		if op == unix.BLKPG_DEL_PARTITION {
			name = "BLKPG_DEL_PARTITION"
		}
		return os.NewSyscallError("ioctl "+name, e)
	}
	return nil
}
