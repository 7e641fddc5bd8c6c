package resize

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests grow real filesystems on loop devices with the host kernel.
// They need root, /dev/loop-control and the mkfs/fsck tools, and skip with
// the reason when any is missing.

type growCase struct {
	name        string
	fstype      string // for mount(2)
	want        FSType
	mkfs        []string // image path appended
	fsck        []string // image path appended; must exit 0 on a clean fs
	oldMiB      int64
	newMiB      int64
	alreadyFull bool
}

var growCases = []growCase{
	{name: "ext4", fstype: "ext4", want: Ext4, mkfs: []string{"mkfs.ext4", "-q", "-F"},
		fsck: []string{"e2fsck", "-fn"}, oldMiB: 64, newMiB: 256},
	// No resize_inode and no 64bit: the kernel has no reserved GDT blocks to
	// grow into and must switch to meta_bg online (1 KiB blocks, so 64 MiB
	// to 1 GiB crosses several descriptor blocks).
	{name: "ext4-no-resize-inode-32bit", fstype: "ext4", want: Ext4,
		mkfs: []string{"mkfs.ext4", "-q", "-F", "-b", "1024", "-O", "^resize_inode,^64bit"},
		fsck: []string{"e2fsck", "-fn"}, oldMiB: 64, newMiB: 1024},
	{name: "ext3", fstype: "ext3", want: Ext3, mkfs: []string{"mkfs.ext3", "-q", "-F"},
		fsck: []string{"e2fsck", "-fn"}, oldMiB: 32, newMiB: 128},
	{name: "ext2", fstype: "ext2", want: Ext2, mkfs: []string{"mkfs.ext2", "-q", "-F"},
		fsck: []string{"e2fsck", "-fn"}, oldMiB: 32, newMiB: 128},
	{name: "xfs", fstype: "xfs", want: XFS, mkfs: []string{"mkfs.xfs", "-q", "-f"},
		fsck: []string{"xfs_repair", "-n"}, oldMiB: 300, newMiB: 700},
	{name: "btrfs", fstype: "btrfs", want: Btrfs, mkfs: []string{"mkfs.btrfs", "-q", "-f"},
		fsck: []string{"btrfs", "check"}, oldMiB: 128, newMiB: 512},
	{name: "ext4-already-full", fstype: "ext4", want: Ext4, mkfs: []string{"mkfs.ext4", "-q", "-F"},
		fsck: []string{"e2fsck", "-fn"}, oldMiB: 64, newMiB: 64, alreadyFull: true},
}

func requireLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices and mount")
	}
	f, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("loop devices unusable: %v", err)
	}
	f.Close()
}

// loopDev is a loop device attached to a backing file.
type loopDev struct {
	path string
	f    *os.File
}

func attachLoop(t *testing.T, backing string) *loopDev {
	t.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("loop devices unusable: %v", err)
	}
	defer ctl.Close()
	bf, err := os.OpenFile(backing, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	// Another process may take the free device between GET_FREE and
	// CONFIGURE; try again then.
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Skipf("LOOP_CTL_GET_FREE: %v", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		lf, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := unix.LoopConfig{Fd: uint32(bf.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
			lf.Close()
			if errors.Is(err, unix.EBUSY) {
				continue
			}
			t.Fatalf("LOOP_CONFIGURE %s on %s: %v", backing, path, err)
		}
		l := &loopDev{path: path, f: lf}
		t.Cleanup(func() { l.detach(t) })
		return l
	}
	t.Fatal("no free loop device after 10 tries")
	return nil
}

func (l *loopDev) detach(t *testing.T) {
	if l.f == nil {
		return
	}
	if err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		t.Errorf("LOOP_CLR_FD %s: %v", l.path, err)
	}
	l.f.Close()
	l.f = nil
}

func (l *loopDev) setCapacity(t *testing.T) {
	t.Helper()
	if err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		t.Fatalf("LOOP_SET_CAPACITY %s: %v", l.path, err)
	}
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func statfsBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return s.Blocks * uint64(s.Bsize)
}

func TestGrowLoop(t *testing.T) {
	requireLoop(t)
	start := time.Now()
	for _, c := range growCases {
		t.Run(c.name, func(t *testing.T) { testGrow(t, c) })
	}
	t.Logf("all filesystems in %v", time.Since(start).Round(time.Millisecond))
}

func testGrow(t *testing.T, c growCase) {
	for _, tool := range []string{c.mkfs[0], c.fsck[0]} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, c.name+".img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, c.oldMiB<<20); err != nil {
		t.Fatal(err)
	}
	run(t, append(c.mkfs, img)...)

	loop := attachLoop(t, img)
	if err := unix.Mount(loop.path, mnt, c.fstype, 0, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			t.Skipf("kernel has no %s: %v", c.fstype, err)
		}
		t.Fatalf("mount %s on %s: %v", loop.path, mnt, err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)

	data := make([]byte, 1<<20)
	rand.Read(data)
	keep := filepath.Join(mnt, "keep")
	if err := os.WriteFile(keep, data, 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	before := statfsBytes(t, mnt)

	if !c.alreadyFull {
		if err := os.Truncate(img, c.newMiB<<20); err != nil {
			t.Fatal(err)
		}
		loop.setCapacity(t)
	}

	if ok, _ := hasCapability(needCap[c.want].bit); !ok && !c.alreadyFull {
		// Grow must refuse before touching anything, and say why.
		_, err := Grow(mnt, loop.path)
		if err == nil || !strings.Contains(err.Error(), needCap[c.want].name) {
			t.Fatalf("Grow without %s: %v", needCap[c.want].name, err)
		}
		if p, err := ProbeDevice(loop.path); err != nil || p.Size != uint64(c.oldMiB<<20) {
			t.Fatalf("filesystem changed after a refused Grow: %+v, %v", p, err)
		}
		t.Skipf("refused as it should be, but growing needs %s (this process lacks it): %v", needCap[c.want].name, err)
	}
	plan, err := Plan(mnt, loop.path)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	res, err := Grow(mnt, loop.path)
	if err != nil {
		t.Fatalf("Grow: %v", err)
	}
	t.Logf("%s: %d -> %d bytes (planned %d); statfs %d -> %d", res.Type, res.OldSize, res.NewSize, plan.NewSize,
		before, statfsBytes(t, mnt))
	if res.Type != c.want || res.NewSize != plan.NewSize || res.OldSize != plan.OldSize {
		t.Errorf("Grow = %+v, Plan said %+v", res, plan)
	}
	if c.alreadyFull {
		if res.Grown() || res.OldSize == 0 {
			t.Errorf("filesystem already filled the device, but Grow = %+v", res)
		}
	} else {
		if max := uint64(c.newMiB << 20); res.NewSize > max || res.NewSize < max-max/100 {
			t.Errorf("new size %d, want close to the device size %d", res.NewSize, max)
		}
		if after := statfsBytes(t, mnt); after < before+(res.NewSize-res.OldSize)/2 {
			t.Errorf("statfs says %d bytes after growing, %d before: not grown", after, before)
		}
		// A second call finds nothing left to do.
		again, err := Grow(mnt, loop.path)
		if err != nil || again.Grown() || again.NewSize != res.NewSize {
			t.Errorf("second Grow = %+v, %v; want a no-op at %d", again, err, res.NewSize)
		}
		// The new space is usable.
		if err := os.WriteFile(filepath.Join(mnt, "new"), make([]byte, 8<<20), 0o644); err != nil {
			t.Errorf("writing into the grown filesystem: %v", err)
		}
	}
	got, err := os.ReadFile(keep)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("file written before growing changed (err %v)", err)
	}

	unmount()
	loop.detach(t)
	run(t, append(c.fsck, img)...)
}

// TestGrowRefusesWrongDevice: the mountpoint's filesystem must be the one on
// the device, or nothing is touched.
func TestGrowRefusesWrongDevice(t *testing.T) {
	requireLoop(t)
	for _, tool := range []string{"mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	var loops []*loopDev
	for _, name := range []string{"a", "b"} {
		img := filepath.Join(dir, name+".img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 32<<20); err != nil {
			t.Fatal(err)
		}
		run(t, "mkfs.ext4", "-q", "-F", img)
		loops = append(loops, attachLoop(t, img))
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(loops[0].path, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, 0) })
	_, err := Grow(mnt, loops[1].path)
	if err == nil || !strings.Contains(err.Error(), "not on "+loops[1].path) {
		t.Errorf("Grow on the wrong device: %v", err)
	}
	t.Log(err)

	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount ro: %v", err)
	}
	if _, err := Grow(mnt, loops[0].path); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Grow on a read-only mount: %v", err)
	} else {
		t.Log(err)
	}
}
