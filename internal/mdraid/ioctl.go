package mdraid

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The md driver's ioctl ABI (include/uapi/linux/raid/md_u.h). The numbers
// are derived from the structure sizes with the usual _IOC encoding so a
// reader can check them against the header; ioctl_test.go pins them.

const mdMajor = 9

type arrayInfo struct { // mdu_array_info_t
	MajorVersion  int32
	MinorVersion  int32
	PatchVersion  int32
	Ctime         uint32
	Level         int32
	Size          int32 // KiB; 0 lets the kernel take the smallest leg, which keeps us clear of the 4 TiB int limit
	NrDisks       int32
	RaidDisks     int32
	MdMinor       int32
	NotPersistent int32
	Utime         uint32
	State         int32
	ActiveDisks   int32
	WorkingDisks  int32
	FailedDisks   int32
	SpareDisks    int32
	Layout        int32
	ChunkSize     int32
}

type diskInfo struct { // mdu_disk_info_t
	Number   int32
	Major    int32
	Minor    int32
	RaidDisk int32
	State    int32
}

type param struct { // mdu_param_t
	Personality int32
	ChunkSize   int32
	MaxFault    int32
}

const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | mdMajor<<8 | nr
}

var (
	ioGetArrayInfo = ioc(iocRead, 0x11, unsafe.Sizeof(arrayInfo{}))
	ioGetDiskInfo  = ioc(iocRead, 0x12, unsafe.Sizeof(diskInfo{}))
	ioAddNewDisk   = ioc(iocWrite, 0x21, unsafe.Sizeof(diskInfo{}))
	ioHotRemove    = ioc(iocNone, 0x22, 0)
	ioSetArrayInfo = ioc(iocWrite, 0x23, unsafe.Sizeof(arrayInfo{}))
	ioHotAdd       = ioc(iocNone, 0x28, 0)
	ioSetFaulty    = ioc(iocNone, 0x29, 0)
	ioRunArray     = ioc(iocWrite, 0x30, unsafe.Sizeof(param{}))
	ioStopArray    = ioc(iocNone, 0x32, 0)
)

// Disk state bits (md_p.h).
const (
	diskFaulty = 0
	diskActive = 1
	diskSync   = 2
)

const (
	levelRAID1 = 1
	sbClean    = 0 // MD_SB_CLEAN bit of mdu_array_info_t.state
)

// sysIoctl is the ioctl system call (tests replace it).
var sysIoctl = func(fd, req, arg uintptr) unix.Errno {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
	return e
}

// ioctl issues an md ioctl, again while it answers EINTR. md's ioctl takes
// the array's lock interruptibly before it does anything (mddev_lock), and
// a signal meanwhile fails it with EINTR, which the kernel does not restart;
// Go's runtime signals its threads (SIGURG, to preempt goroutines), so this
// happens to a healthy call: HOT_REMOVE_DISK answered "interrupted system
// call" in the VM's TestKernelMigrateCycle (2026-12-02). Nothing was done
// then, so asking again is safe.
func ioctl(f *os.File, req, arg uintptr) error {
	for {
		e := sysIoctl(f.Fd(), req, arg)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func ioctlPtr(f *os.File, req uintptr, arg unsafe.Pointer) error {
	return ioctl(f, req, uintptr(arg))
}

func ioctlVal(f *os.File, req uintptr, arg uintptr) error {
	return ioctl(f, req, arg)
}

// encodeDev is the kernel's new_encode_dev, which md's HOT_* ioctls decode
// from their integer argument.
func encodeDev(major, minor uint32) uintptr {
	return uintptr(minor&0xff | major<<8 | (minor&^0xff)<<12)
}

func ioctlName(req uintptr) string {
	switch req {
	case ioGetArrayInfo:
		return "GET_ARRAY_INFO"
	case ioGetDiskInfo:
		return "GET_DISK_INFO"
	case ioAddNewDisk:
		return "ADD_NEW_DISK"
	case ioHotRemove:
		return "HOT_REMOVE_DISK"
	case ioSetArrayInfo:
		return "SET_ARRAY_INFO"
	case ioHotAdd:
		return "HOT_ADD_DISK"
	case ioSetFaulty:
		return "SET_DISK_FAULTY"
	case ioRunArray:
		return "RUN_ARRAY"
	case ioStopArray:
		return "STOP_ARRAY"
	}
	return fmt.Sprintf("ioctl %#x", req)
}
