package partition

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadTable decodes the GPT of the whole disk (or image file) at path, read
// only. A disk without a valid GPT answers an error.
func ReadTable(path string) (Layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return Layout{}, fmt.Errorf("read the partition table of %s: %w", path, err)
	}
	defer f.Close()
	return ReadTableFile(f, path)
}

// ReadTableFile is ReadTable on a device or image already open as f.
func ReadTableFile(f *os.File, path string) (Layout, error) {
	fi, err := f.Stat()
	if err != nil {
		return Layout{}, fmt.Errorf("read the partition table of %s: %w", path, err)
	}
	size, ss := uint64(fi.Size()), uint32(512)
	if fi.Mode()&os.ModeDevice != 0 {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
			return Layout{}, fmt.Errorf("read the partition table of %s: %w", path, os.NewSyscallError("ioctl BLKGETSIZE64", e))
		}
		lss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil {
			return Layout{}, fmt.Errorf("read the partition table of %s: %w", path, os.NewSyscallError("ioctl BLKSSZGET", err))
		}
		ss = uint32(lss)
	}
	l, err := Decode(f, ss, size/uint64(ss))
	if err != nil {
		return Layout{}, fmt.Errorf("read the partition table of %s: %w", path, err)
	}
	return l, nil
}

// InstallLayout reports whether l is the table a whole-disk install writes
// (PlanInstall): exactly a BIOS boot partition, an ESP and livemigrate's
// root, in that order. It returns the numbers of the ESP and the root.
// A continued migration uses it to know which mode the interrupted run
// was in from the disk itself, never from how the user names the device
// now.
func InstallLayout(l Layout) (esp, root int, ok bool) {
	if len(l.Parts) != 3 {
		return 0, 0, false
	}
	p1, ok1 := l.Part(1)
	p2, ok2 := l.Part(2)
	p3, ok3 := l.Part(3)
	if !ok1 || !ok2 || !ok3 || p1.Type != TypeBIOSBoot || p2.Type != TypeESP ||
		p3.Type != rootType(runtime.GOARCH) || p3.Name != installRootName {
		return 0, 0, false
	}
	return 2, 3, true
}
