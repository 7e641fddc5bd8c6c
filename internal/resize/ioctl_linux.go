package resize

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// golang.org/x/sys/unix has none of the filesystem resize ioctls, so they are
// built here the way <asm-generic/ioctl.h> builds them. That encoding holds on
// amd64, arm64, riscv64 and the other asm-generic architectures; powerpc, mips
// and sparc differ and are not targets. Sizes come from Go mirrors of the C
// structs, so a layout mistake changes the number and the kernel answers
// ENOTTY instead of reading a wrong struct. ioctl_linux_test.go pins the
// numbers against values printed by a C program compiled with the kernel UAPI
// headers (linux/btrfs.h) and xfslibs-dev's xfs/xfs_fs.h.
const (
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | typ<<8 | nr
}

// xfsGeomV1 mirrors struct xfs_fsop_geom_v1. Version 1 is understood by every
// kernel with XFS and carries all that growth needs (blocksize, agblocks,
// imaxpct, datablocks); the newer versions only append fields.
//
// Neither this nor xfsGrowfsData spells out C's tail padding: Go pads a
// struct ending in a uint32 after a uint64 exactly as C does (to 112 and 16
// bytes on 64-bit, not at all on i386), and the ioctl number follows.
type xfsGeomV1 struct {
	Blocksize    uint32
	Rtextsize    uint32
	Agblocks     uint32
	Agcount      uint32
	Logblocks    uint32
	Sectsize     uint32
	Inodesize    uint32
	Imaxpct      uint32
	Datablocks   uint64
	Rtblocks     uint64
	Rtextents    uint64
	Logstart     uint64
	UUID         [16]byte
	Sunit        uint32
	Swidth       uint32
	Version      int32
	Flags        uint32
	Logsectsize  uint32
	Rtsectsize   uint32
	Dirblocksize uint32
}

// xfsGrowfsData mirrors struct xfs_growfs_data.
type xfsGrowfsData struct {
	Newblocks uint64
	Imaxpct   uint32
}

// btrfsVolArgs mirrors struct btrfs_ioctl_vol_args.
type btrfsVolArgs struct {
	Fd   int64
	Name [4088]byte
}

// btrfsFSInfoArgs mirrors struct btrfs_ioctl_fs_info_args.
type btrfsFSInfoArgs struct {
	MaxID          uint64
	NumDevices     uint64
	FSID           [16]byte
	Nodesize       uint32
	Sectorsize     uint32
	CloneAlignment uint32
	CsumType       uint16
	CsumSize       uint16
	Flags          uint64
	Generation     uint64
	MetadataUUID   [16]byte
	_              [944]byte
}

// btrfsDevInfoArgs mirrors struct btrfs_ioctl_dev_info_args.
type btrfsDevInfoArgs struct {
	DevID      uint64
	UUID       [16]byte
	BytesUsed  uint64
	TotalBytes uint64
	_          [379]uint64
	Path       [1024]byte
}

var (
	ext4IocResizeFS    = ioc(iocWrite, 'f', 16, 8)
	xfsIocFSGeometryV1 = ioc(iocRead, 'X', 100, unsafe.Sizeof(xfsGeomV1{}))
	xfsIocFSGrowFSData = ioc(iocWrite, 'X', 110, unsafe.Sizeof(xfsGrowfsData{}))
	btrfsIocResize     = ioc(iocWrite, 0x94, 3, unsafe.Sizeof(btrfsVolArgs{}))
	btrfsIocDevInfo    = ioc(iocRead|iocWrite, 0x94, 30, unsafe.Sizeof(btrfsDevInfoArgs{}))
	btrfsIocFSInfo     = ioc(iocRead, 0x94, 31, unsafe.Sizeof(btrfsFSInfoArgs{}))
)

// ioctl returns the syscall's value as well as its errno because btrfs
// reports some failures as positive return values.
func ioctl(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}
