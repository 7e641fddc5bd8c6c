package partition

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests write GPTs to loop devices and check what the host kernel
// makes of them. They need root and /dev/loop-control, and skip otherwise.

type loopDev struct {
	path string
	name string // loopN, as in /sys/block
	f    *os.File
}

// attachLoop attaches a sparse file of size bytes as a loop device with
// the given logical sector size, with kernel partition scanning or without.
func attachLoop(t *testing.T, size uint64, sectorSize uint32, partscan bool) *loopDev {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices")
	}
	backing, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer backing.Close()
	if err := backing.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("loop devices unusable: %v", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: sectorSize}
	if partscan {
		cfg.Info.Flags = unix.LO_FLAGS_PARTSCAN
	}
	// Other tests on this host attach loops too: a free device can be
	// taken between LOOP_CTL_GET_FREE and LOOP_CONFIGURE.
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Skipf("LOOP_CTL_GET_FREE: %v", err)
		}
		l := &loopDev{path: fmt.Sprintf("/dev/loop%d", n), name: fmt.Sprintf("loop%d", n)}
		if l.f, err = os.OpenFile(l.path, os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		err = unix.IoctlLoopConfigure(int(l.f.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			l.f.Close()
			continue
		}
		if err != nil {
			l.f.Close()
			t.Skipf("LOOP_CONFIGURE %s: %v", l.path, err)
		}
		t.Cleanup(func() {
			if err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
				t.Errorf("detach %s: %v", l.path, err)
			}
			l.f.Close()
		})
		return l
	}
	t.Fatal("no free loop device after 10 tries")
	return nil
}

// sysParts reads /sys/block/loopN/loopNpK/{start,size} for every partition
// the kernel has.
func (l *loopDev) sysParts(t *testing.T) map[int]extent {
	t.Helper()
	m, err := kernelExtents(filepath.Join("/sys/block", l.name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (l *loopDev) decode(t *testing.T, want Layout) {
	t.Helper()
	got, err := Decode(l.f, want.SectorSize, want.DiskSectors)
	if err != nil {
		t.Fatalf("decode %s: %v", l.path, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}

func TestKernelWrite(t *testing.T) {
	for _, tc := range []struct {
		ss       uint32
		partscan bool
	}{{512, true}, {4096, true}, {512, false}} {
		t.Run(fmt.Sprintf("%d/partscan=%v", tc.ss, tc.partscan), func(t *testing.T) {
			loop := attachLoop(t, 300*mib, tc.ss, tc.partscan)
			l, err := PlanInstall(300*mib, tc.ss, 16*mib, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(loop.path, l); err != nil {
				t.Fatal(err)
			}
			// sysfs counts 512-byte units whatever the sector size.
			k := uint64(tc.ss) / 512
			for _, p := range l.Parts {
				dir := fmt.Sprintf("/sys/block/%s/%sp%d", loop.name, loop.name, p.Number)
				start, err1 := readSysUint(dir + "/start")
				size, err2 := readSysUint(dir + "/size")
				if err := errors.Join(err1, err2); err != nil || start != p.Start*k || size != p.Sectors*k {
					t.Errorf("%s: start %d size %d (%v), want %d %d", dir, start, size, err, p.Start*k, p.Sectors*k)
				}
			}
			if n := len(loop.sysParts(t)); n != 3 {
				t.Errorf("kernel has %d partitions, want 3", n)
			}
			if err := WaitForPartition(PartitionPath(loop.path, 3), 5*time.Second); err != nil {
				t.Error(err)
			}
			if !tc.partscan {
				// Write got here through BLKPG: the driver refuses to scan.
				if _, _, e := unix.Syscall(unix.SYS_IOCTL, loop.f.Fd(), unix.BLKRRPART, 0); e != unix.EINVAL {
					t.Errorf("BLKRRPART without LO_FLAGS_PARTSCAN: %v, want EINVAL", e)
				}
			}
			loop.decode(t, l)
			referee(t, loop.path, l)
		})
	}
}

// TestKernelBusy changes the table while an old partition is open, which
// makes BLKRRPART fail with EBUSY, and checks the BLKPG fallback keeps the
// open partition, replaces the others, and refuses to move an open one.
func TestKernelBusy(t *testing.T) {
	loop := attachLoop(t, 300*mib, 512, true)
	l, err := PlanInstall(300*mib, 512, 16*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(loop.path, l); err != nil {
		t.Fatal(err)
	}
	p2 := PartitionPath(loop.path, 2)
	if err := WaitForPartition(p2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(p2)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, loop.f.Fd(), unix.BLKRRPART, 0); e != unix.EBUSY {
		t.Fatalf("BLKRRPART with %s open: %v, want EBUSY", p2, e)
	}

	// Shrink the root by 2 MiB and put a new partition 4 in the gap.
	l2 := l
	l2.Parts = append([]Part(nil), l.Parts...)
	l2.Parts[2].Sectors -= 2 * mib / 512
	l2.Parts = append(l2.Parts, Part{Number: 4, Name: "data", Type: TypeLinuxData, GUID: GUID{4}, Start: l2.Parts[2].End() + 1 + mib/512, Sectors: mib / 512})
	if err := Write(loop.path, l2); err != nil {
		t.Fatal(err)
	}
	if got, want := loop.sysParts(t), wantExtents(l2); !reflect.DeepEqual(got, want) {
		t.Errorf("kernel has %v, want %v", got, want)
	}
	loop.decode(t, l2)

	// Now partition 2 itself has to move, after 1 which is dropped
	// first and must come back when 2 refuses.
	l3 := l2
	l3.Parts = append([]Part(nil), l2.Parts...)
	l3.Parts[0].Sectors -= 1
	l3.Parts[1].Sectors -= mib / 512
	err = Write(loop.path, l3)
	if err == nil || !strings.Contains(err.Error(), "nothing was written: old partition 2 is in use") || !strings.Contains(err.Error(), loop.path) {
		t.Errorf("moving open partition 2: %v", err)
	}
	loop.decode(t, l2)
	if got, want := loop.sysParts(t), wantExtents(l2); !reflect.DeepEqual(got, want) {
		t.Errorf("after the refusal the kernel has %v, want %v", got, want)
	}
}

func TestKernelRefuses(t *testing.T) {
	loop := attachLoop(t, 300*mib, 512, true)
	l, err := PlanInstall(300*mib, 512, 16*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(loop.path, l); err != nil {
		t.Fatal(err)
	}
	p1 := PartitionPath(loop.path, 1)
	if err := WaitForPartition(p1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := Write(p1, l); err == nil || !strings.Contains(err.Error(), "not a whole disk") {
		t.Errorf("partition as target: %v", err)
	}
	other, _ := PlanInstall(280*mib, 512, 16*mib, nil)
	if err := Write(loop.path, other); err == nil || !strings.Contains(err.Error(), "plan again") {
		t.Errorf("size mismatch: %v", err)
	}
	four, _ := PlanInstall(300*mib, 4096, 16*mib, nil)
	if err := Write(loop.path, four); err == nil || !strings.Contains(err.Error(), "512-byte logical sectors") {
		t.Errorf("sector size mismatch: %v", err)
	}

	// An exclusive holder (as a mount or md would be) keeps Write off
	// the disk before anything is written.
	fd, err := unix.Open(p1, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := make([]byte, 4096)
	loop.f.ReadAt(before, 0)
	err = Write(loop.path, l)
	unix.Close(fd)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("with %s held exclusively: %v", p1, err)
	}
	after := make([]byte, 4096)
	loop.f.ReadAt(after, 0)
	if !bytes.Equal(before, after) {
		t.Error("refused Write changed the disk")
	}

	if err := WaitForPartition(PartitionPath(loop.path, 9), 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no device node after") {
		t.Errorf("missing partition: %v", err)
	}
}
