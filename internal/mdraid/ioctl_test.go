package mdraid

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The request numbers as md_u.h defines them on x86_64 and arm64; a wrong
// structure size would change them.
func TestIoctlNumbers(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"GET_ARRAY_INFO", ioGetArrayInfo, 0x80480911},
		{"GET_DISK_INFO", ioGetDiskInfo, 0x80140912},
		{"ADD_NEW_DISK", ioAddNewDisk, 0x40140921},
		{"HOT_REMOVE_DISK", ioHotRemove, 0x922},
		{"SET_ARRAY_INFO", ioSetArrayInfo, 0x40480923},
		{"HOT_ADD_DISK", ioHotAdd, 0x928},
		{"SET_DISK_FAULTY", ioSetFaulty, 0x929},
		{"RUN_ARRAY", ioRunArray, 0x400c0930},
		{"STOP_ARRAY", ioStopArray, 0x932},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestEncodeDev(t *testing.T) {
	// new_encode_dev: minor low byte, major, then minor's high bits.
	for _, tt := range []struct {
		maj, min uint32
		want     uintptr
	}{
		{7, 2, 0x702},
		{253, 1, 0xfd01},
		{259, 300, 0x2c | 259<<8 | 0x100<<12},
	} {
		if got := encodeDev(tt.maj, tt.min); got != tt.want {
			t.Errorf("encodeDev(%d,%d) = %#x, want %#x", tt.maj, tt.min, got, tt.want)
		}
	}
}

// An md ioctl that answers EINTR (its array lock was interrupted by a
// signal, before it did anything) is asked again; any other error is
// returned as it is, after one call.
func TestIoctlRetriesEINTR(t *testing.T) {
	saved := sysIoctl
	t.Cleanup(func() { sysIoctl = saved })
	for _, tt := range []struct {
		name    string
		answers []unix.Errno
		want    error
		calls   int
	}{
		{"ok", []unix.Errno{0}, nil, 1},
		{"eintr-twice", []unix.Errno{unix.EINTR, unix.EINTR, 0}, nil, 3},
		{"ebusy", []unix.Errno{unix.EBUSY}, unix.EBUSY, 1},
		{"eintr-then-ebusy", []unix.Errno{unix.EINTR, unix.EBUSY}, unix.EBUSY, 2},
	} {
		calls := 0
		sysIoctl = func(fd, req, arg uintptr) unix.Errno {
			e := tt.answers[calls]
			calls++
			return e
		}
		err := ioctlVal(os.Stdin, ioHotRemove, 0)
		if err != tt.want || calls != tt.calls {
			t.Errorf("%s: err %v after %d calls, want %v after %d", tt.name, err, calls, tt.want, tt.calls)
		}
	}
}
