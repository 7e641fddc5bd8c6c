package resize

import (
	"errors"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProbeDevice reads the head of the block device (or image file) at path and
// parses its superblock. Errors are *os.PathError naming the device.
//
// The read goes through the page cache on purpose: ext4 keeps its live
// superblock in the block device's page cache, so a mounted ext4 reads back
// current, including a size just changed by an online resize.
func ProbeDevice(path string) (Probe, error) {
	f, err := os.Open(path)
	if err != nil {
		return Probe{}, err
	}
	defer f.Close()
	head := make([]byte, HeadSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Probe{}, err
	}
	p, err := ParseSuperblock(head[:n])
	if err != nil {
		return Probe{}, &os.PathError{Op: "probe filesystem on", Path: path, Err: err}
	}
	return p, nil
}

// deviceSize returns the size in bytes of the block device at path.
func deviceSize(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var size uint64
	if _, err := ioctl(int(f.Fd()), unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, &os.PathError{Op: "read size of", Path: path, Err: os.NewSyscallError("ioctl BLKGETSIZE64", err)}
	}
	return size, nil
}
