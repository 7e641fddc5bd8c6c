package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func discoverT(t *testing.T, tr *tree, q *fakeQuerier, leg string) (Host, *Stack) {
	t.Helper()
	h := tr.host(q)
	s, err := Discover(h, Dev{Name: leg})
	if err != nil {
		t.Fatal(err)
	}
	tr.dropFromArray(leg)
	return h, s
}

// dropFromArray is what md does when the live leg is failed and removed:
// the array no longer holds it.
func (tr *tree) dropFromArray(leg string) {
	holders, _ := os.ReadDir(filepath.Join(tr.root, "/sys/class/block", leg, "holders"))
	for _, h := range holders {
		if strings.HasPrefix(h.Name(), "md") {
			_ = os.Remove(filepath.Join(tr.root, "/sys/class/block", leg, "holders", h.Name()))
			_ = os.Remove(filepath.Join(tr.root, "/sys/class/block", h.Name(), "slaves", leg))
		}
	}
}

func TestReleaseWhileArrayHoldsLeg(t *testing.T) {
	tr, q := dracutTree(t)
	h := tr.host(q)
	s, err := Discover(h, Dev{Name: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeActuator{tr: tr}
	_, err = Release(h, a, s, ReleaseOptions{})
	if err == nil || !strings.Contains(err.Error(), "remove dm device live-rw (dm-1, the live snapshot): still held by md127") {
		t.Errorf("Release with md still holding the leg: %v", err)
	}
	if slicesContain(a.calls, "dmremove live-rw") {
		t.Errorf("tried to remove a held snapshot: %q", a.calls)
	}
	// After md lets go, FindSnapshot finds it again for a rerun.
	tr.dropFromArray("dm-1")
	if d, err := FindSnapshot(h, "live-rw"); err != nil || d.Name != "dm-1" {
		t.Errorf("FindSnapshot = %+v, %v", d, err)
	}
	if _, err := Release(h, a, s, ReleaseOptions{}); err != nil {
		t.Errorf("Release after md let go: %v", err)
	}
	if _, err := FindSnapshot(h, "live-rw"); err == nil {
		t.Error("FindSnapshot found a removed device")
	}
}

func results(rep ReleaseReport) map[StepResult]int {
	m := map[StepResult]int{}
	for _, s := range rep.Steps {
		m[s.Result]++
	}
	return m
}

func TestReleaseDracutCD(t *testing.T) {
	tr, q := dracutTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr, after: func(call string) {
		if call == "detach loop2" { // the COW's RAM comes back
			tr.write("/proc/meminfo", "MemAvailable:    1500000 kB\n")
		}
	}}
	rep, err := Release(h, a, s, ReleaseOptions{Eject: true})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	want := []string{
		"dmremove live-rw",
		"dmremove live-base",
		"detach loop2",
		"detach loop1",
		"umount /run/initramfs/squashfs",
		"detach loop0",
		"umount /run/initramfs/live",
		"eject sr0",
	}
	if !reflect.DeepEqual(a.calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", a.calls, want)
	}
	if !rep.Ejected || rep.COWBytesFreed != 1024*512 {
		t.Errorf("Ejected %v COWBytesFreed %d", rep.Ejected, rep.COWBytesFreed)
	}
	if rep.MemAvailableBefore != 1000000*1024 || rep.MemAvailableAfter != 1500000*1024 || rep.MemGained() != 500000*1024 {
		t.Errorf("MemAvailable %d -> %d", rep.MemAvailableBefore, rep.MemAvailableAfter)
	}
	if r := results(rep); r[StepDone] != len(want) || len(rep.Steps) != len(want) {
		t.Errorf("results %v in %+v", r, rep.Steps)
	}
	if got := rep.Steps[2].What; got != "detach loop2 (COW of live-rw, backing /overlay (deleted))" {
		t.Errorf("COW step named %q", got)
	}

	// Run again: everything is gone, nothing is done, no error.
	a.calls = nil
	rep, err = Release(h, a, s, ReleaseOptions{Eject: true})
	if err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if len(a.calls) != 0 {
		t.Errorf("second Release acted: %q", a.calls)
	}
	if r := results(rep); r[StepAlreadyGone] != len(want) {
		t.Errorf("second Release results %v", r)
	}
	if rep.COWBytesFreed != 0 {
		t.Errorf("second Release claims %d COW bytes freed", rep.COWBytesFreed)
	}
}

func TestReleaseMediumBusy(t *testing.T) {
	tr, q := dracutTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr, fail: map[string]error{
		"umount /run/initramfs/live": &os.PathError{Op: "umount", Path: "/run/initramfs/live", Err: unix.EBUSY},
	}}
	rep, err := Release(h, a, s, ReleaseOptions{Eject: true})
	if err == nil {
		t.Fatal("Release with a busy medium: no error")
	}
	t.Logf("error shown to the user:\n%v", err)
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("error does not wrap EBUSY: %v", err)
	}
	for _, want := range []string{
		"unmount /run/initramfs/live (medium sr0)",
		"device or resource busy",
		"fuser -vm /run/initramfs/live",
		"lazy unmount",
		"eject /dev/sr0: not tried",
		`run "livemigrate release" again`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if slicesContain(a.calls, "eject sr0") {
		t.Error("ejected a disc that is still mounted")
	}
	if r := results(rep); r[StepFailed] != 1 || r[StepBlocked] != 1 || r[StepDone] != 6 {
		t.Errorf("results %v", r)
	}

	// The user closed the files: the rerun does only what is left.
	delete(a.fail, "umount /run/initramfs/live")
	a.calls = nil
	if _, err := Release(h, a, s, ReleaseOptions{Eject: true}); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if want := []string{"umount /run/initramfs/live", "eject sr0"}; !reflect.DeepEqual(a.calls, want) {
		t.Errorf("rerun calls %q, want %q", a.calls, want)
	}
}

func TestReleaseLazyUnmount(t *testing.T) {
	tr, q := dracutTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr, fail: map[string]error{"umount /run/initramfs/squashfs": unix.EBUSY}}
	rep, err := Release(h, a, s, ReleaseOptions{LazyUnmount: true})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !slicesContain(a.calls, "umount -l /run/initramfs/squashfs") {
		t.Errorf("no lazy unmount in %q", a.calls)
	}
	if r := results(rep); r[StepDeferred] != 1 {
		t.Errorf("results %v", r)
	}
}

func TestReleaseSnapshotBusy(t *testing.T) {
	tr, q := dracutTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr, fail: map[string]error{"dmremove live-rw": fmt.Errorf("remove dm device live-rw: %w", unix.EBUSY)}}
	rep, err := Release(h, a, s, ReleaseOptions{Eject: true})
	if err == nil || !strings.Contains(err.Error(), "remove dm device live-rw (dm-1, the live snapshot)") ||
		!strings.Contains(err.Error(), "detach loop2 (COW of live-rw, backing /overlay (deleted)): not tried because live-rw") {
		t.Errorf("error: %v", err)
	}
	// live-base does not depend on live-rw: it still goes.
	if want := []string{"dmremove live-rw", "dmremove live-base"}; !reflect.DeepEqual(a.calls, want) {
		t.Errorf("calls %q, want %q", a.calls, want)
	}
	if rep.COWBytesFreed != 0 {
		t.Errorf("COWBytesFreed %d with the COW still in place", rep.COWBytesFreed)
	}
}

func TestReleaseZram(t *testing.T) {
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", squashfsImg)
	tr.loop("loop1", "7:1", rootfsImg)
	z := tr.dev("zram0", "252:0", "virtual/block")
	tr.write(z+"/mm_stat", "524288 131072 196608 0 200000 3 0 0 0\n")
	tr.write(z+"/disksize", "4294967296\n")
	tr.dm("dm-0", "253:0", "live-rw", "loop1", "zram0")
	tr.dev("sr0", "11:0", "pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block")
	tr.write("/proc/self/mountinfo", mountRoot+mountCD+mountSq)
	tr.write("/proc/meminfo", "MemAvailable: 1 kB\n")
	q.snapshot("dm-0", "7:1 252:0 N 8", "1024/8388608 0")
	h, s := discoverT(t, tr, q, "dm-0")
	a := &fakeActuator{tr: tr}
	rep, err := Release(h, a, s, ReleaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dmremove live-rw", "zram-reset zram0", "detach loop1", "umount /run/initramfs/squashfs", "detach loop0", "umount /run/initramfs/live"}
	if !reflect.DeepEqual(a.calls, want) {
		t.Errorf("calls %q, want %q", a.calls, want)
	}
	if rep.COWBytesFreed != 196608 || rep.Ejected {
		t.Errorf("COWBytesFreed %d Ejected %v", rep.COWBytesFreed, rep.Ejected)
	}
	a.calls = nil
	if _, err := Release(h, a, s, ReleaseOptions{}); err != nil || len(a.calls) != 0 {
		t.Errorf("second release: %v, calls %q", err, a.calls)
	}
}

func TestReleaseUSBWithCOWFile(t *testing.T) {
	tr, q := usbTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr}
	rep, err := Release(h, a, s, ReleaseOptions{Eject: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dmremove live-rw", "dmremove live-base", "detach loop2", "unlink /run/initramfs/overlay.img",
		"detach loop1", "umount /run/initramfs/squashfs", "detach loop0", "umount /run/initramfs/live"}
	if !reflect.DeepEqual(a.calls, want) {
		t.Errorf("calls %q, want %q", a.calls, want)
	}
	if _, err := os.Stat(filepath.Join(tr.root, "/run/initramfs/overlay.img")); !os.IsNotExist(err) {
		t.Errorf("COW file still there: %v", err)
	}
	if rep.COWBytesFreed != 2048*512 || rep.Ejected {
		t.Errorf("COWBytesFreed %d Ejected %v", rep.COWBytesFreed, rep.Ejected)
	}
}

func TestReleaseKeepsDiskCOWFile(t *testing.T) {
	tr, q := usbTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	s.COWFSType = "vfat" // a persistent overlay on the stick
	a := &fakeActuator{tr: tr}
	rep, err := Release(h, a, s, ReleaseOptions{KeepMedium: true})
	if err != nil {
		t.Fatal(err)
	}
	if slicesContain(a.calls, "unlink /run/initramfs/overlay.img") || slicesContain(a.calls, "umount /run/initramfs/live") {
		t.Errorf("calls %q", a.calls)
	}
	if r := results(rep); r[StepKept] != 2 {
		t.Errorf("results %v", r)
	}
}

func TestReleaseDryRun(t *testing.T) {
	tr, q := dracutTree(t)
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr}
	rep, err := Release(h, a, s, ReleaseOptions{DryRun: true, Eject: true})
	if err != nil || len(a.calls) != 0 {
		t.Fatalf("dry run: %v, calls %q", err, a.calls)
	}
	if r := results(rep); r[StepPlanned] != 8 {
		t.Errorf("results %v", r)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestReleaseRAMCopy(t *testing.T) {
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", "/run/initramfs/squashed.img")
	tr.loop("loop1", "7:1", rootfsImg)
	tr.loop("loop2", "7:2", "/overlay (deleted)")
	tr.dm("dm-1", "253:1", "live-rw", "loop1", "loop2")
	tr.write("/run/initramfs/squashed.img", "squashfs")
	tr.write("/proc/self/mountinfo", mountRoot+mountSq)
	q.snapshot("dm-1", "7:1 7:2 P 8", "8/16 0")
	h, s := discoverT(t, tr, q, "dm-1")
	a := &fakeActuator{tr: tr}
	if _, err := Release(h, a, s, ReleaseOptions{Eject: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{"dmremove live-rw", "detach loop2", "detach loop1", "umount /run/initramfs/squashfs", "detach loop0", "unlink /run/initramfs/squashed.img"}
	if !reflect.DeepEqual(a.calls, want) {
		t.Errorf("calls %q, want %q", a.calls, want)
	}
}
