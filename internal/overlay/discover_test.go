package overlay

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func checkStack(t *testing.T, got, want *Stack) {
	t.Helper()
	gv, wv := reflect.ValueOf(*got), reflect.ValueOf(*want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("Stack.%s = %+v, want %+v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
}

func TestDiscoverDracutCD(t *testing.T) {
	tr, q := dracutTree(t)
	h := tr.host(q)

	leg, err := FindLiveLeg(h, "md127")
	if err != nil {
		t.Fatal(err)
	}
	if leg != dev("dm-1", 253, 1, "/dev/mapper/live-rw") {
		t.Errorf("FindLiveLeg = %+v", leg)
	}
	// The lead may pass only the number, as found in md's sysfs.
	s, err := Discover(h, Dev{Major: 253, Minor: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkStack(t, s, &Stack{
		Snapshot:      dev("dm-1", 253, 1, "/dev/mapper/live-rw"),
		DMName:        "live-rw",
		Origin:        dev("loop1", 7, 1, "/dev/loop1"),
		OriginFile:    rootfsImg,
		OriginLoop:    dev("loop1", 7, 1, "/dev/loop1"),
		Siblings:      []Dev{dev("dm-0", 253, 0, "/dev/mapper/live-base")},
		SiblingNames:  []string{"live-base"},
		COW:           dev("loop2", 7, 2, "/dev/loop2"),
		COWKind:       COWDeletedFile,
		COWBacking:    "/overlay (deleted)",
		SquashfsMount: "/run/initramfs/squashfs",
		SquashfsLoop:  dev("loop0", 7, 0, "/dev/loop0"),
		SquashfsFile:  squashfsImg,
		MediumMount:   "/run/initramfs/live",
		MediumFSType:  "iso9660",
		Medium:        dev("sr0", 11, 0, "/dev/sr0"),
		MediumDisk:    dev("sr0", 11, 0, "/dev/sr0"),
		MediumIsCD:    true,
		ChunkSectors:  8,
		Persistent:    true,
	})
	if !IsLiveLeg(h, Dev{Name: "dm-1"}) || IsLiveLeg(h, Dev{Name: "dm-0"}) || IsLiveLeg(h, Dev{Name: "loop1"}) {
		t.Error("IsLiveLeg: want only dm-1")
	}
	if got := s.Describe(); !strings.Contains(got, "live-rw (dm-1) = snapshot of loop1") || !strings.Contains(got, "medium /run/initramfs/live on sr0 (CD)") {
		t.Errorf("Describe = %q", got)
	}
	if n := len(s.Devices()); n != 6 {
		t.Errorf("Devices = %v, want 6 devices", s.Devices())
	}

	u, err := COWUsage(nil, h, s)
	if err != nil {
		t.Fatal(err)
	}
	if u != (Usage{UsedSectors: 1024, TotalSectors: 67108864, MetadataSectors: 16}) {
		t.Errorf("COWUsage = %+v", u)
	}
}

func TestDiscoverZram(t *testing.T) {
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", squashfsImg)
	tr.loop("loop1", "7:1", rootfsImg)
	z := tr.dev("zram0", "252:0", "virtual/block")
	tr.write(z+"/mm_stat", "524288 131072 196608 0 200000 3 0 0 0\n")
	tr.write(z+"/disksize", "4294967296\n")
	tr.dm("dm-0", "253:0", "live-rw", "loop1", "zram0")
	cd := tr.dev("sr0", "11:0", "pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block")
	tr.write(cd+"/device/type", "5\n")
	tr.write("/proc/self/mountinfo", mountRoot+mountCD+mountSq)
	q.snapshot("dm-0", "7:1 252:0 N 8", "1024/8388608 0")

	h := tr.host(q)
	s, err := Discover(h, Dev{Name: "dm-0"})
	if err != nil {
		t.Fatal(err)
	}
	if s.COWKind != COWZram || s.COWBacking != "zram0" || s.COW != dev("zram0", 252, 0, "/dev/zram0") || s.Persistent || len(s.Siblings) != 0 {
		t.Errorf("zram stack: %+v", s)
	}
	u, err := COWUsage(q, h, s)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{UsedSectors: 1024, TotalSectors: 8388608, OrigDataBytes: 524288, ComprDataBytes: 131072, MemUsedBytes: 196608}
	if u != want {
		t.Errorf("COWUsage = %+v, want %+v", u, want)
	}
}

// usbTree: USB stick partition sdb1 holding the squashfs, COW in a named
// file on tmpfs /run (so the loop ioctl can tell its inode).
func usbTree(t *testing.T) (*tree, *fakeQuerier) {
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", squashfsImg)
	tr.loop("loop1", "7:1", rootfsImg)
	tr.loop("loop2", "7:2", "/run/initramfs/overlay.img")
	tr.dm("dm-0", "253:0", "live-base", "loop1")
	tr.dm("dm-1", "253:1", "live-rw", "loop1", "loop2")
	usb := "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block"
	tr.dev("sdb", "8:16", usb)
	tr.dev("sdb1", "8:17", usb+"/sdb")
	tr.write("/run/initramfs/overlay.img", "cow")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(tr.root, "/run/initramfs/overlay.img"), &st); err != nil {
		t.Fatal(err)
	}
	q.loops["loop2"] = LoopStatus{BackingMajor: 0, BackingMinor: 25, BackingInode: st.Ino}
	tr.write("/proc/self/mountinfo", mountRoot+
		"30 25 8:17 / /run/initramfs/live ro,relatime shared:13 - vfat /dev/sdb1 ro,fmask=0022\n"+mountSq)
	tr.write("/proc/meminfo", "MemAvailable:    1000000 kB\n")
	q.tables["dm-0"] = []Target{{Length: 2097152, Type: "linear", Params: "7:1 0"}}
	q.snapshot("dm-1", "7:1 7:2 PO 8", "2048/4194304 16")
	return tr, q
}

func TestDiscoverUSBPartition(t *testing.T) {
	tr, q := usbTree(t)
	s, err := Discover(tr.host(q), Dev{Name: "/dev/dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Medium != dev("sdb1", 8, 17, "/dev/sdb1") || s.MediumDisk != dev("sdb", 8, 16, "/dev/sdb") || s.MediumIsCD || s.MediumFSType != "vfat" {
		t.Errorf("medium: %+v / %+v cd=%v fs=%q", s.Medium, s.MediumDisk, s.MediumIsCD, s.MediumFSType)
	}
	if s.COWKind != COWFile || s.COWFSType != "tmpfs" || s.COWInode == 0 || s.COWBacking != "/run/initramfs/overlay.img" {
		t.Errorf("COW: kind %s fs %q inode %d backing %q", s.COWKind, s.COWFSType, s.COWInode, s.COWBacking)
	}
}

func TestDiscoverRAMCopyAndISO(t *testing.T) {
	// rd.live.ram: the squashfs image was copied to /run, nothing else mounted.
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", "/run/initramfs/squashed.img")
	tr.loop("loop1", "7:1", rootfsImg)
	tr.loop("loop2", "7:2", "/overlay (deleted)")
	tr.dm("dm-1", "253:1", "live-rw", "loop1", "loop2")
	tr.write("/proc/self/mountinfo", mountRoot+mountSq)
	q.snapshot("dm-1", "7:1 7:2 P 8", "8/16 0")
	s, err := Discover(tr.host(q), Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.RAMImage != "/run/initramfs/squashed.img" || s.MediumMount != "" || !s.Medium.IsZero() {
		t.Errorf("RAM copy: RAMImage %q medium %q %+v", s.RAMImage, s.MediumMount, s.Medium)
	}

	// iso-scan: the ISO file on a USB partition, looped and mounted as the medium.
	tr = newTree(t)
	tr.loop("loop0", "7:0", squashfsImg)
	tr.loop("loop1", "7:1", rootfsImg)
	tr.loop("loop2", "7:2", "/overlay (deleted)")
	tr.loop("loop3", "7:3", "/run/initramfs/isoscan/live.iso")
	tr.dm("dm-1", "253:1", "live-rw", "loop1", "loop2")
	usb := "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block"
	tr.dev("sdc", "8:32", usb)
	tr.dev("sdc1", "8:33", usb+"/sdc")
	tr.write("/proc/self/mountinfo", mountRoot+
		"29 25 8:33 / /run/initramfs/isoscan ro - ext4 /dev/sdc1 ro\n"+
		"30 25 7:3 / /run/initramfs/live ro - iso9660 /dev/loop3 ro\n"+mountSq)
	s, err = Discover(tr.host(q), Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Medium.Name != "loop3" || s.MediumFile != "/run/initramfs/isoscan/live.iso" || s.MediumDisk.Name != "sdc" || s.MediumIsCD {
		t.Errorf("ISO: medium %+v file %q disk %+v", s.Medium, s.MediumFile, s.MediumDisk)
	}
}

func TestDiscoverErrors(t *testing.T) {
	tr, q := dracutTree(t)
	h := tr.host(q)
	for _, tc := range []struct {
		leg  Dev
		want string
	}{
		{Dev{Name: "loop1"}, "not a device-mapper device"},
		{Dev{Name: "dm-0"}, "not a single dm snapshot"},
		{Dev{Name: "sdz"}, "sdz"},
		{Dev{Major: 8, Minor: 99}, "8:99"},
	} {
		_, err := Discover(h, tc.leg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Discover(%+v) = %v, want error containing %q", tc.leg, err, tc.want)
		}
	}
	q.tables["dm-1"] = []Target{{Type: "snapshot", Params: "7:9 7:2 P 8"}}
	if _, err := Discover(h, Dev{Name: "dm-1"}); err == nil || !strings.Contains(err.Error(), "origin of live-rw") {
		t.Errorf("Discover with a missing origin: %v", err)
	}
	if _, err := FindLiveLeg(h, "md9"); err == nil {
		t.Error("FindLiveLeg of a missing array: no error")
	}
	_ = os.Remove(filepath.Join(tr.root, "/proc/self/mountinfo"))
	q.snapshot("dm-1", "7:1 7:2 PO 8", "1/2 0")
	if _, err := Discover(h, Dev{Name: "dm-1"}); err == nil || !strings.Contains(err.Error(), "mountinfo") {
		t.Errorf("Discover without mountinfo: %v", err)
	}
}

// dracut lazily unmounts /run/initramfs/squashfs once loop1 holds
// rootfs.img: the path in loop1's backing_file then falls through to /run,
// and only LOOP_GET_STATUS64's device number leads to the squashfs loop.
func TestDiscoverLazySquashfs(t *testing.T) {
	tr, q := dracutTree(t)
	tr.write("/proc/self/mountinfo", mountRoot+mountCD)
	q.loops["loop1"] = LoopStatus{BackingMajor: 7, BackingMinor: 0, BackingInode: 12}
	h := tr.host(q)
	s, err := Discover(h, Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.SquashfsMount != "" || s.SquashfsLoop.Name != "loop0" || s.SquashfsFile != squashfsImg || s.RAMImage != "" {
		t.Errorf("squashfs = %q %+v %q, RAM image %q", s.SquashfsMount, s.SquashfsLoop, s.SquashfsFile, s.RAMImage)
	}
	if s.MediumMount != "/run/initramfs/live" || s.Medium.Name != "sr0" || !s.MediumIsCD {
		t.Errorf("medium = %q %+v %v", s.MediumMount, s.Medium, s.MediumIsCD)
	}
	a := &fakeActuator{tr: tr}
	tr.dropFromArray("dm-1")
	rep, err := Release(h, a, s, ReleaseOptions{Eject: true})
	if err != nil {
		t.Fatalf("release: %v (%+v)", err, rep.Steps)
	}
	want := "detach loop0 (squashfs, backing " + squashfsImg + ", already unmounted)"
	found := false
	for _, st := range rep.Steps {
		if st.What == want && st.Result == StepDone {
			found = true
		}
	}
	if !found || !rep.Ejected {
		t.Errorf("steps = %+v, ejected %v", rep.Steps, rep.Ejected)
	}
}

// Debian 13's dracut (106): the squashfs loop's backing_file reads
// "/LiveOS/squashfs.img", a path inside the medium's mount that leads to
// / here; LOOP_GET_STATUS64 says the file is on sr0, so the medium is
// found by that device, and released and ejected.
func TestDiscoverSquashfsPathInsideMedium(t *testing.T) {
	tr, q := dracutTree(t)
	tr.write("/proc/self/mountinfo", mountRoot+mountCD)
	tr.write("/sys/block/loop0/loop/backing_file", "/LiveOS/squashfs.img")
	q.loops["loop1"] = LoopStatus{BackingMajor: 7, BackingMinor: 0, BackingInode: 12}
	q.loops["loop0"] = LoopStatus{BackingMajor: 11, BackingMinor: 0, BackingInode: 40}
	h := tr.host(q)
	s, err := Discover(h, Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.SquashfsLoop.Name != "loop0" || s.SquashfsFile != "/LiveOS/squashfs.img" {
		t.Errorf("squashfs = %+v %q", s.SquashfsLoop, s.SquashfsFile)
	}
	if s.MediumMount != "/run/initramfs/live" || s.Medium.Name != "sr0" || !s.MediumIsCD {
		t.Fatalf("medium = %q %+v %v", s.MediumMount, s.Medium, s.MediumIsCD)
	}
	// Without the loop's word for it, the path leads to / and no medium is
	// released (never /).
	delete(q.loops, "loop0")
	s, err = Discover(tr.host(q), Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.MediumMount != "" {
		t.Errorf("medium from the path alone = %q", s.MediumMount)
	}
	// A backing device no mount shows: no medium either.
	q.loops["loop0"] = LoopStatus{BackingMajor: 8, BackingMinor: 16, BackingInode: 40}
	if s, err = Discover(tr.host(q), Dev{Name: "dm-1"}); err != nil || s.MediumMount != "" {
		t.Errorf("medium on an unmounted device = %q (%v)", s.MediumMount, err)
	}
}

// rootfs.img in an EROFS container (lorax's erofs-ext4) is found and
// released like one in squashfs.
func TestDiscoverEROFSContainer(t *testing.T) {
	tr, q := dracutTree(t)
	tr.write("/proc/self/mountinfo", mountRoot+mountCD+strings.Replace(mountSq, " - squashfs /dev/loop0 ro,errors=continue", " - erofs /dev/loop0 ro,user_xattr,acl,cache_strategy=readaround", 1))
	s, err := Discover(tr.host(q), Dev{Major: 253, Minor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.SquashfsMount != "/run/initramfs/squashfs" || s.SquashfsLoop.Name != "loop0" || s.SquashfsFile != squashfsImg || s.MediumMount != "/run/initramfs/live" || !s.MediumIsCD {
		t.Errorf("EROFS container: %+v", s)
	}
}
