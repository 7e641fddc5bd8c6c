package mdraid

// These tests drive the real md driver. They run inside the QEMU guest
// (test/qemu sets LIVEMIGRATE_VM=1) and skip everywhere else, because the
// host kernels we build on have no md. mdadm --detail is the referee.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv("LIVEMIGRATE_VM") != "1" {
		t.Skip("needs the md driver: runs in the QEMU guest (LIVEMIGRATE_VM=1)")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loopFile makes a sparse file of size bytes in dir and attaches a loop
// device to it.
func loopFile(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// busybox losetup has no --show: ask for a free device, then attach.
	dev := strings.TrimSpace(run(t, "losetup", "-f"))
	run(t, "losetup", dev, p)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// mdadmDetail is mdadm's view of an array, the fields we compare.
type mdadmDetail struct {
	level                        string
	arrayKiB                     uint64
	raidDevices, active, working int
	failed, spare                int
	memberState                  map[string]string // /dev/loop0 -> "active sync"
}

func parseMdadmDetail(s string) mdadmDetail {
	d := mdadmDetail{memberState: map[string]string{}}
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s*:\s*(.*)$`).FindStringSubmatch(s)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	d.level = field("Raid Level")
	if f := strings.Fields(field("Array Size")); len(f) > 0 {
		d.arrayKiB, _ = strconv.ParseUint(f[0], 10, 64)
	}
	d.raidDevices, _ = strconv.Atoi(field("Raid Devices"))
	d.active, _ = strconv.Atoi(field("Active Devices"))
	d.working, _ = strconv.Atoi(field("Working Devices"))
	d.failed, _ = strconv.Atoi(field("Failed Devices"))
	d.spare, _ = strconv.Atoi(field("Spare Devices"))
	// Member lines: "   0     7    0    0    active sync   /dev/loop0"
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:\d+|-)\s+\d+\s+\d+\s+(?:\d+|-)\s+(.+?)\s+(/dev/\S+)\s*$`).FindAllStringSubmatch(s, -1) {
		d.memberState[m[2]] = m[1]
	}
	return d
}

// agree checks that mdadm and Read describe the same array.
func agree(t *testing.T, name string) *Array {
	t.Helper()
	a, err := Default.Sys.Read(name)
	if err != nil {
		t.Fatal(err)
	}
	d := parseMdadmDetail(run(t, "mdadm", "--detail", "/dev/"+name))
	if d.level != a.Level {
		t.Errorf("level: mdadm %q, sysfs %q", d.level, a.Level)
	}
	if d.arrayKiB != a.SizeBytes/1024 {
		t.Errorf("array size: mdadm %d KiB, sysfs %d KiB", d.arrayKiB, a.SizeBytes/1024)
	}
	if d.raidDevices != a.RaidDisks {
		t.Errorf("raid devices: mdadm %d, sysfs %d", d.raidDevices, a.RaidDisks)
	}
	active := 0
	for _, m := range a.Members {
		if m.InSync() {
			active++
		}
	}
	if d.active != active {
		t.Errorf("active devices: mdadm %d, sysfs %d", d.active, active)
	}
	for _, m := range a.Members {
		st, ok := d.memberState["/dev/"+m.Name]
		if !ok {
			t.Errorf("member %s: missing from mdadm --detail", m.Name)
			continue
		}
		switch {
		case m.InSync() && !strings.Contains(st, "active sync"):
			t.Errorf("member %s: sysfs in_sync, mdadm %q", m.Name, st)
		case m.Rebuilding() && !strings.Contains(st, "rebuilding") && !strings.Contains(st, "spare"):
			t.Errorf("member %s: sysfs rebuilding, mdadm %q", m.Name, st)
		case m.Faulty() && !strings.Contains(st, "faulty"):
			t.Errorf("member %s: sysfs faulty, mdadm %q", m.Name, st)
		}
	}
	return a
}

func waitIdle(t *testing.T, name string, limit time.Duration) *Array {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		a, err := Default.Sys.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.SyncAction == "idle" {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %s after %v (%+v)", name, a.SyncAction, limit, a.SyncCompleted)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitInSync waits until leg (a path like /dev/loop3) is an in-sync member
// of name and md is idle. Idle alone is not enough: right after a hot-add md
// has not started recovering yet, and shows idle.
func waitInSync(t *testing.T, name, leg string, limit time.Duration) *Array {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		a, err := Default.Sys.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := a.Member(filepath.Base(leg)); ok && m.InSync() && a.SyncAction == "idle" {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in sync in %s after %v (%s, %+v, members %+v)", leg, name, limit, a.SyncAction, a.SyncCompleted, a.Members)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestKernelMigrateCycle(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	const liveSize, targetSize = 48 << 20, 96 << 20
	live := loopFile(t, dir, "live", liveSize)
	target := loopFile(t, dir, "target", targetSize)

	// Pattern the live leg before it goes into the array, like rootfs.img.
	pattern := make([]byte, liveSize)
	rand.New(rand.NewSource(1)).Read(pattern)
	if err := os.WriteFile(live, pattern, 0); err != nil {
		t.Fatal(err)
	}
	const md = "md100"
	if err := Default.Build(md, []string{live, ""}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Default.Stop(md) })
	if err := Default.Build(md, []string{live, ""}); err == nil {
		t.Error("second Build of the same array succeeded")
	}
	a := agree(t, md)
	if a.RaidDisks != 2 || a.Degraded != 1 || len(a.Members) != 1 || a.ComponentKiB != liveSize/1024 || a.Metadata != "none" {
		t.Fatalf("after build: %+v", a)
	}

	if err := Default.SetSyncSpeedMin(md, 100000); err != nil {
		t.Fatal(err)
	}
	if a, _ := Default.Sys.Read(md); a.SpeedMin != (SpeedLimit{100000, true}) {
		t.Errorf("speed min = %+v", a.SpeedMin)
	}
	// Refused by us, before the kernel could mark the array broken: the
	// fail after recovery below must still work.
	if err := Default.Fail(md, live); err == nil || !strings.Contains(err.Error(), "last in-sync leg") {
		t.Errorf("failing the last in-sync leg: %v", err)
	}
	if a, _ := Default.Sys.Read(md); a.Members[0].Faulty() {
		t.Fatal("the last leg was failed")
	}
	if err := Default.HotAdd(md, target); err != nil {
		t.Fatal(err)
	}
	agree(t, md)
	a = waitInSync(t, md, target, 60*time.Second)
	agree(t, md)
	if a.Degraded != 0 {
		t.Fatalf("after recovery: degraded %d (%+v)", a.Degraded, a.Members)
	}
	if err := Default.Fail(md, live); err != nil {
		t.Fatal(err)
	}
	if err := Default.Remove(md, live); err != nil {
		t.Fatal(err)
	}
	a = agree(t, md)
	if len(a.Members) != 1 || a.Members[0].Name != filepath.Base(target) || !a.Members[0].InSync() {
		t.Fatalf("after removing the live leg: %+v", a.Members)
	}
	kib, err := Default.GrowMax(md)
	if err != nil {
		t.Fatal(err)
	}
	if kib != targetSize/1024 {
		t.Errorf("GrowMax = %d KiB, want %d", kib, targetSize/1024)
	}
	waitIdle(t, md, 60*time.Second)
	a = agree(t, md)
	if a.SizeBytes != targetSize {
		t.Errorf("array size after grow = %d, want %d", a.SizeBytes, targetSize)
	}
	if err := Default.RestoreSpeed(md, "sync_speed_min", SpeedLimit{}); err != nil {
		t.Fatal(err)
	}
	if a, _ := Default.Sys.Read(md); a.SpeedMin.Local {
		t.Errorf("speed min still local after restore: %+v", a.SpeedMin)
	}
	got := make([]byte, liveSize)
	f, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pattern) {
		t.Fatalf("target differs from the live leg: sha256 %x vs %x", sha256.Sum256(got), sha256.Sum256(pattern))
	}
	if err := Default.Stop(md); err != nil {
		t.Fatal(err)
	}
	if _, err := Default.Sys.Read(md); err == nil {
		if a, _ := Default.Sys.Read(md); a != nil && len(a.Members) > 0 {
			t.Errorf("array still has members after stop: %+v", a.Members)
		}
	}
}

// A 5 TiB target is added to a small array, the small leg removed, and the
// array grown to the whole target: sizes must not pass through a 32-bit KiB
// field anywhere.
func TestKernelAbove4TiB(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	const small, huge = 16 << 20, 5 << 40
	live := loopFile(t, dir, "small", small)
	target := loopFile(t, dir, "huge", huge)
	const md = "md101"
	if err := Default.Build(md, []string{live, ""}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Default.Stop(md) })
	if err := Default.HotAdd(md, target); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, md, target, 60*time.Second)
	if err := Default.Fail(md, live); err != nil {
		t.Fatal(err)
	}
	if err := Default.Remove(md, live); err != nil {
		t.Fatal(err)
	}
	kib, err := Default.GrowMax(md)
	if err != nil {
		t.Fatal(err)
	}
	if kib != huge/1024 {
		t.Fatalf("GrowMax = %d KiB, want %d", kib, uint64(huge/1024))
	}
	waitIdle(t, md, 120*time.Second)
	a := agree(t, md)
	if a.SizeBytes != huge {
		t.Fatalf("array size = %d, want %d", a.SizeBytes, uint64(huge))
	}
	fmt.Printf("md above 4 TiB: %s component %d KiB, array %d bytes\n", md, a.ComponentKiB, a.SizeBytes)
}

// SetSyncSpeedMin sets the array's own recovery floor in KB/s; kbs == 0
// returns it to the system-wide value. Only the kernel test needs it: the
// engine restores limits with RestoreSpeed.
func (c Controller) SetSyncSpeedMin(md string, kbs uint64) error {
	return c.setSpeed(md, "sync_speed_min", kbs)
}

// md moves sync_completed only at its checkpoints (each sixteenth of the
// array); /proc/mdstat's position moves with the copy. Throttled to
// 8 MB/s, a 512 MiB array checkpoints every 32 MiB, about every 4 s, while
// md copies in bursts (a throttled md sleeps 500 ms between them; in a TCG
// guest about one burst a second was seen): sampled every 100 ms for 15 s,
// Position must move at least twice as often as sync_completed, and Copied
// must be the finer one. The array is stopped mid-copy. (Over 5 s the
// margin was too thin: 6 moves against 1 checkpoint on one run, fewer on a
// busy host.)
//
// mdstat shows curr_resync less the resync I/O still in flight, and raid1
// keeps up to RESYNC_DEPTH (32) requests of RESYNC_BLOCK_SIZE (64 KiB) in
// flight: just after a checkpoint, with slow I/O (a starved TCG guest),
// Position may trail sync_completed by up to that window, 4096 sectors,
// never by more.
func TestKernelPositionFinerThanCheckpoints(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	const size = 512 << 20
	live := loopFile(t, dir, "live", size)
	target := loopFile(t, dir, "target", size)
	const md = "md102"
	if err := Default.Build(md, []string{live, ""}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Default.Stop(md) })
	if err := Default.setSpeed(md, "sync_speed_max", 8000); err != nil {
		t.Fatal(err)
	}
	if err := Default.HotAdd(md, target); err != nil {
		t.Fatal(err)
	}
	const resyncWindow = 32 * 64 << 10 >> 9 // raid1 RESYNC_WINDOW_SECTORS
	var pos, sc []uint64
	var lag uint64
	for i := 0; i < 150; i++ {
		time.Sleep(100 * time.Millisecond)
		a, err := Default.Sys.Read(md)
		if err != nil {
			t.Fatal(err)
		}
		if a.SyncAction != "recover" {
			continue
		}
		if a.Position == nil || a.SyncCompleted == nil {
			t.Fatalf("sample %d: position %+v, sync_completed %+v", i, a.Position, a.SyncCompleted)
		}
		if a.Position.Done < a.SyncCompleted.Done {
			lag = max(lag, a.SyncCompleted.Done-a.Position.Done)
		}
		if a.Position.Done+resyncWindow < a.SyncCompleted.Done || a.Position.Total != a.SyncCompleted.Total {
			t.Errorf("sample %d: position %+v behind sync_completed %+v", i, *a.Position, *a.SyncCompleted)
		}
		if c := a.Copied(); c.Done < a.SyncCompleted.Done || c.Done < a.Position.Done {
			t.Errorf("sample %d: Copied %+v is not the finer of %+v and %+v", i, *c, *a.Position, *a.SyncCompleted)
		}
		pos, sc = append(pos, a.Position.Done), append(sc, a.SyncCompleted.Done)
	}
	moves := func(v []uint64) int {
		n := 0
		for i := 1; i < len(v); i++ {
			if v[i] != v[i-1] {
				n++
			}
		}
		return n
	}
	fmt.Printf("md position: %d samples while recovering; mdstat's position moved %d times, sync_completed %d times; most behind sync_completed %d sectors\n", len(pos), moves(pos), moves(sc), lag)
	if len(pos) < 100 || moves(pos) < 2*moves(sc)+2 {
		t.Errorf("position moved %d times in %d samples, sync_completed %d: not finer (position %v, sync_completed %v)", moves(pos), len(pos), moves(sc), pos, sc)
	}
}
