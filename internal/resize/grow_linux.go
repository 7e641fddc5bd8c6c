package resize

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Result reports a growth. Sizes are bytes. For btrfs they are the size of
// the grown device's share of the filesystem, which for the single-device
// filesystems this tool migrates is the whole filesystem.
type Result struct {
	Type             FSType
	OldSize, NewSize uint64
}

// Grown reports whether the filesystem changed size.
func (r Result) Grown() bool { return r.NewSize != r.OldSize }

// Plan checks everything Grow checks and returns what Grow would do (NewSize
// is the size it would reach), without changing anything.
func Plan(mountpoint, device string) (Result, error) {
	j, err := prepare(mountpoint, device)
	if err != nil {
		return Result{}, err
	}
	defer j.dir.Close()
	return j.res, nil
}

// Grow grows the filesystem mounted at mountpoint, which lives on device, to
// fill device, online. Everything that can be checked is checked before the
// kernel is asked, so an error before the ioctl leaves the filesystem as it
// was. If the filesystem already fills the device, Grow returns a Result with
// OldSize == NewSize and no error.
func Grow(mountpoint, device string) (Result, error) {
	j, err := prepare(mountpoint, device)
	if err != nil {
		return Result{}, err
	}
	defer j.dir.Close()
	if !j.res.Grown() {
		return j.res, nil
	}
	newSize, err := j.apply()
	if err != nil {
		return Result{Type: j.res.Type, OldSize: j.res.OldSize, NewSize: j.res.OldSize}, err
	}
	return Result{Type: j.res.Type, OldSize: j.res.OldSize, NewSize: newSize}, nil
}

// job is a checked growth, ready to apply.
type job struct {
	mountpoint, device string
	probe              Probe
	dir                *os.File // the mountpoint; the resize ioctls act on the filesystem of the open file
	devSize            uint64
	res                Result                 // planned
	apply              func() (uint64, error) // returns the size reached
}

func (j *job) errorf(format string, a ...any) error {
	return fmt.Errorf("grow %s on %s (mounted at %s): %w", j.probe.Type, j.device, j.mountpoint,
		fmt.Errorf(format, a...))
}

func prepare(mountpoint, device string) (*job, error) {
	p, err := ProbeDevice(device)
	if err != nil {
		return nil, fmt.Errorf("grow filesystem on %s (mounted at %s): %w", device, mountpoint, err)
	}
	j := &job{mountpoint: mountpoint, device: device, probe: p}
	if err := Supported(p.Type); err != nil {
		return nil, fmt.Errorf("grow filesystem on %s (mounted at %s): %w", device, mountpoint, err)
	}
	j.dir, err = os.OpenFile(mountpoint, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, j.errorf("%w", err)
	}
	if err := j.check(); err != nil {
		j.dir.Close()
		return nil, err
	}
	switch p.Type {
	case Ext2, Ext3, Ext4:
		err = j.planExt()
	case XFS:
		err = j.planXFS()
	case Btrfs:
		err = j.planBtrfs()
	}
	if err == nil && j.res.Grown() {
		err = j.checkCapability()
	}
	if err != nil {
		j.dir.Close()
		return nil, err
	}
	return j, nil
}

// Capabilities the kernel demands for each resize ioctl (ext4_resize_begin,
// xfs_growfs_data, btrfs_ioctl_resize). Root in a container often lacks
// CAP_SYS_RESOURCE; saying so beats relaying a bare EPERM.
var needCap = map[FSType]struct {
	bit  uint
	name string
}{
	Ext2:  {unix.CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
	Ext3:  {unix.CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
	Ext4:  {unix.CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
	XFS:   {unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
	Btrfs: {unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
}

func (j *job) checkCapability() error {
	c := needCap[j.probe.Type]
	ok, err := hasCapability(c.bit)
	if err != nil {
		return j.errorf("capget: %w", err)
	}
	if !ok {
		return j.errorf("the kernel requires %s to grow %s and this process lacks it; "+
			"run livemigrate as root outside any restricted container", c.name, j.probe.Type)
	}
	return nil
}

func hasCapability(bit uint) (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3 uses two 32-bit words
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, err
	}
	return data[bit/32].Effective&(1<<(bit%32)) != 0, nil
}

var superMagic = map[FSType]int64{
	Ext2:  unix.EXT4_SUPER_MAGIC, // ext2, ext3 and ext4 share the magic
	Ext3:  unix.EXT4_SUPER_MAGIC,
	Ext4:  unix.EXT4_SUPER_MAGIC,
	XFS:   unix.XFS_SUPER_MAGIC,
	Btrfs: unix.BTRFS_SUPER_MAGIC,
}

// check makes sure the mountpoint really is the filesystem found on the
// device: growing one filesystem to the size of another device would be the
// worst kind of half state.
func (j *job) check() error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(j.dir.Fd()), &sfs); err != nil {
		return j.errorf("statfs: %w", err)
	}
	if int64(sfs.Type) != superMagic[j.probe.Type] {
		return j.errorf("the filesystem mounted there is not %s (statfs type %#x); pass the mountpoint of %s",
			j.probe.Type, sfs.Type, j.device)
	}
	if sfs.Flags&unix.ST_RDONLY != 0 {
		return j.errorf("mounted read-only; remount it read-write (mount -o remount,rw %s) and retry", j.mountpoint)
	}
	var dst unix.Stat_t
	if err := unix.Stat(j.device, &dst); err != nil {
		return j.errorf("%w", &os.PathError{Op: "stat", Path: j.device, Err: err})
	}
	if dst.Mode&unix.S_IFMT != unix.S_IFBLK {
		return j.errorf("%s is not a block device", j.device)
	}
	// btrfs reports an anonymous st_dev; its membership is checked by devid.
	if j.probe.Type != Btrfs {
		var mst unix.Stat_t
		if err := unix.Fstat(int(j.dir.Fd()), &mst); err != nil {
			return j.errorf("stat: %w", err)
		}
		if mst.Dev != dst.Rdev {
			return j.errorf("the filesystem mounted there is on device %d:%d, not on %s (%d:%d)",
				unix.Major(mst.Dev), unix.Minor(mst.Dev), j.device, unix.Major(dst.Rdev), unix.Minor(dst.Rdev))
		}
	}
	size, err := deviceSize(j.device)
	if err != nil {
		return j.errorf("%w", err)
	}
	j.devSize = size
	return nil
}

// shrinkError is returned when the device is smaller than the filesystem:
// usually the array has not been grown yet, and growing "down" would be a
// shrink, which none of these filesystems can do online.
func (j *job) shrinkError(fsBytes uint64) error {
	return j.errorf("device is %d bytes, smaller than the filesystem (%d bytes); grow the device first", j.devSize, fsBytes)
}

func (j *job) planExt() error {
	p := j.probe
	f := p.Ext.Features
	bs := uint64(p.BlockSize)
	oldBlocks, newBlocks := p.Blocks, j.devSize/bs
	j.res = Result{Type: p.Type, OldSize: oldBlocks * bs, NewSize: oldBlocks * bs}
	switch {
	case newBlocks < oldBlocks:
		return j.shrinkError(oldBlocks * bs)
	case newBlocks == oldBlocks:
		return nil
	}
	if f.SparseSuper2() {
		return j.errorf("%w with sparse_super2, which the kernel refuses to resize online; "+
			"the migration itself is complete, grow it offline later with resize2fs %s", ErrUnsupported, j.device)
	}
	// s_blocks_count is 32 bits unless the 64bit feature is on (16 TiB with
	// 4 KiB blocks).
	if !f.Is64Bit() && newBlocks > math.MaxUint32 {
		return j.errorf("%w: without the 64bit feature it can address at most %d blocks (%d bytes), the device has %d; "+
			"the migration itself is complete; to use the whole disk, unmount and run resize2fs -b %s (adds 64bit), then resize2fs %s",
			ErrTooLarge, uint64(math.MaxUint32), uint64(math.MaxUint32)*bs, newBlocks, j.device, j.device)
	}
	// s_inodes_count is 32 bits whatever the features; the kernel refuses a
	// growth that would overflow it, so say why before asking.
	groups := (newBlocks - uint64(p.Ext.FirstDataBlock) + uint64(p.Ext.BlocksPerGroup) - 1) / uint64(p.Ext.BlocksPerGroup)
	if hi, lo := bits.Mul64(groups, uint64(p.Ext.InodesPerGroup)); hi != 0 || lo > math.MaxUint32 {
		return j.errorf("%w: %d groups of %d inodes would overflow the 32-bit inode count; "+
			"the migration itself is complete; grow it to a smaller size with resize2fs %s SIZE",
			ErrTooLarge, groups, p.Ext.InodesPerGroup, j.device)
	}
	j.res.NewSize = newBlocks * bs
	j.apply = func() (uint64, error) {
		n := newBlocks
		if _, err := ioctl(int(j.dir.Fd()), ext4IocResizeFS, unsafe.Pointer(&n)); err != nil {
			hint := ""
			if errors.Is(err, unix.ENOTTY) {
				hint = "; the driver that mounted it cannot resize online (the old ext2 driver?): " +
					"mount it with -t ext4, which serves ext2 and ext3 too, or grow it offline with resize2fs " + j.device
			}
			return 0, j.errorf("from %d to %d blocks: EXT4_IOC_RESIZE_FS: %w (see dmesg)%s", oldBlocks, newBlocks, err, hint)
		}
		after, err := ProbeDevice(j.device)
		if err != nil {
			return 0, j.errorf("resized, but reading the new size back failed: %w", err)
		}
		return after.Size, nil
	}
	return nil
}

// xfsMinAGBlocks is XFS_MIN_AG_BLOCKS: the kernel drops a new last
// allocation group smaller than this, so a growth that would only add such a
// runt adds nothing.
const xfsMinAGBlocks = 64

func (j *job) xfsGeometry() (xfsGeomV1, error) {
	var g xfsGeomV1
	if _, err := ioctl(int(j.dir.Fd()), xfsIocFSGeometryV1, unsafe.Pointer(&g)); err != nil {
		return g, j.errorf("XFS_IOC_FSGEOMETRY_V1: %w", err)
	}
	if g.Blocksize == 0 || g.Agblocks == 0 {
		return g, j.errorf("XFS_IOC_FSGEOMETRY_V1 returned block size %d, %d blocks per AG", g.Blocksize, g.Agblocks)
	}
	return g, nil
}

func (j *job) planXFS() error {
	// The geometry, not the on-disk superblock: XFS writes its superblock
	// back lazily, the kernel's copy is the truth.
	g, err := j.xfsGeometry()
	if err != nil {
		return err
	}
	bs := uint64(g.Blocksize)
	oldBlocks, newBlocks := g.Datablocks, j.devSize/bs
	j.res = Result{Type: XFS, OldSize: oldBlocks * bs, NewSize: oldBlocks * bs}
	if newBlocks < oldBlocks {
		return j.shrinkError(oldBlocks * bs)
	}
	if tail := newBlocks % uint64(g.Agblocks); tail != 0 && tail < xfsMinAGBlocks {
		newBlocks -= tail
	}
	if newBlocks <= oldBlocks {
		return nil
	}
	j.res.NewSize = newBlocks * bs
	j.apply = func() (uint64, error) {
		// imaxpct is passed back unchanged; growfs would otherwise set it.
		in := xfsGrowfsData{Newblocks: newBlocks, Imaxpct: g.Imaxpct}
		if _, err := ioctl(int(j.dir.Fd()), xfsIocFSGrowFSData, unsafe.Pointer(&in)); err != nil {
			return 0, j.errorf("from %d to %d blocks: XFS_IOC_FSGROWFSDATA: %w (see dmesg)", oldBlocks, newBlocks, err)
		}
		after, err := j.xfsGeometry()
		if err != nil {
			return 0, err
		}
		return after.Datablocks * uint64(after.Blocksize), nil
	}
	return nil
}

func (j *job) btrfsDevInfo(devid uint64) (btrfsDevInfoArgs, error) {
	a := btrfsDevInfoArgs{DevID: devid}
	if _, err := ioctl(int(j.dir.Fd()), btrfsIocDevInfo, unsafe.Pointer(&a)); err != nil {
		return a, j.errorf("BTRFS_IOC_DEV_INFO for devid %d: %w", devid, err)
	}
	return a, nil
}

func (j *job) planBtrfs() error {
	var fi btrfsFSInfoArgs
	if _, err := ioctl(int(j.dir.Fd()), btrfsIocFSInfo, unsafe.Pointer(&fi)); err != nil {
		return j.errorf("BTRFS_IOC_FS_INFO: %w", err)
	}
	if got := formatUUID(fi.FSID[:]); got != j.probe.UUID {
		return j.errorf("the btrfs mounted there is %s, the one on the device is %s; pass the mountpoint of %s",
			got, j.probe.UUID, j.device)
	}
	// The device's own superblock names its devid, which holds even when
	// the path btrfs recorded at mount time has since been renamed.
	devid := j.probe.Btrfs.DevID
	di, err := j.btrfsDevInfo(devid)
	if err != nil {
		return err
	}
	if path := cString(di.Path[:]); path != "" {
		var rec, dev unix.Stat_t
		if unix.Stat(path, &rec) == nil && unix.Stat(j.device, &dev) == nil && rec.Rdev != dev.Rdev {
			return j.errorf("btrfs devid %d is %s, which is not %s", devid, path, j.device)
		}
	}
	sector := uint64(fi.Sectorsize)
	if sector == 0 {
		sector = uint64(j.probe.BlockSize)
	}
	oldSize, newSize := di.TotalBytes, j.devSize/sector*sector
	j.res = Result{Type: Btrfs, OldSize: oldSize, NewSize: oldSize}
	switch {
	case newSize < oldSize:
		return j.shrinkError(oldSize)
	case newSize == oldSize:
		return nil
	}
	j.res.NewSize = newSize
	j.apply = func() (uint64, error) {
		var a btrfsVolArgs
		copy(a.Name[:], strconv.FormatUint(devid, 10)+":max")
		r, err := ioctl(int(j.dir.Fd()), btrfsIocResize, unsafe.Pointer(&a))
		if err == nil && r != 0 {
			err = btrfsErr(r)
		}
		if err != nil {
			return 0, j.errorf("devid %d from %d to %d bytes: BTRFS_IOC_RESIZE %q: %w (see dmesg)",
				devid, oldSize, newSize, string(bytes.TrimRight(a.Name[:], "\x00")), err)
		}
		after, err := j.btrfsDevInfo(devid)
		if err != nil {
			return 0, err
		}
		return after.TotalBytes, nil
	}
	return nil
}

// btrfsErr explains the positive codes (enum btrfs_err_code) btrfs ioctls
// return instead of an errno.
func btrfsErr(code uintptr) error {
	if code == 8 { // BTRFS_ERROR_DEV_EXCL_RUN_IN_PROGRESS
		return errors.New("another exclusive operation (balance, device add/remove/replace, resize) is running; wait for it and retry")
	}
	return fmt.Errorf("btrfs error code %d", code)
}
