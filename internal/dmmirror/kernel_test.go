package dmmirror

// These tests drive the kernel's dm-mirror and dm-snapshot under a mounted,
// written filesystem. They run inside the QEMU guest (test/qemu sets
// LIVEMIGRATE_VM=1) and skip everywhere else. dmsetup is the referee.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	devmapper "github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/overlay"
)

func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv("LIVEMIGRATE_VM") != "1" {
		t.Skip("needs dm-mirror and dm-snapshot: runs in the QEMU guest (LIVEMIGRATE_VM=1)")
	}
	_ = exec.Command("modprobe", "dm-mirror").Run()
	if err := Available(); err != nil {
		t.Fatal(err)
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

func loopFile(t *testing.T, p string, size int64, ro bool) overlay.Dev {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err := overlay.SetupLoop(p, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = overlay.DetachLoop(d) })
	return d
}

// liveStack is a small dmsquash-live: an ext4 origin on a read-only loop,
// a persistent COW on another loop, the snapshot "lmt-live" mounted, and a
// target behind a dm linear map "lmt-tgt" that a test can turn into an
// error target. A writer appends fsynced, numbered records.
type liveStack struct {
	t      *testing.T
	dir    string
	live   string
	snap   overlay.Dev
	target overlay.Dev // lmt-tgt
	tgtRaw overlay.Dev // its loop
	mnt    string
	w      *writer
}

const (
	liveName  = "lmt-live"
	tgtName   = "lmt-tgt"
	originMiB = 64
)

func newLiveStack(t *testing.T, targetMiB int64) *liveStack {
	t.Helper()
	s := &liveStack{t: t, dir: t.TempDir(), live: liveName}
	removeDevices(t) // what an earlier, failed test may have left
	img := filepath.Join(s.dir, "rootfs.img")
	f, _ := os.Create(img)
	_ = f.Truncate(originMiB << 20)
	f.Close()
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "lmtlive", img)
	origin := loopFile(t, img, originMiB<<20, true)
	cow := loopFile(t, filepath.Join(s.dir, "cow"), 64<<20, false)
	var err error
	s.snap, err = overlay.CreateSnapshotOpts(liveName, origin.Path, cow.Path, overlay.SnapshotOptions{Persistent: true, Overflow: true, ChunkSectors: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeDevices(t) })
	s.tgtRaw = loopFile(t, filepath.Join(s.dir, "target"), targetMiB<<20, false)
	if err := devmapper.CreateAndLoad(tgtName, "", 0, devmapper.LinearTable{Length: uint64(targetMiB << 20), BackendDevice: s.tgtRaw.Path}); err != nil {
		t.Fatal(err)
	}
	info, err := devmapper.InfoByName(tgtName)
	if err != nil {
		t.Fatal(err)
	}
	s.target = devOf(info.DevNo, tgtName)
	// No udev in the guest: the node is ours to make.
	if err := unix.Mknod(s.target.Path, unix.S_IFBLK|0o600, int(info.DevNo)); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(s.target.Path) })
	s.mnt = filepath.Join(s.dir, "mnt")
	_ = os.Mkdir(s.mnt, 0o755)
	if err := unix.Mount(s.snap.Path, s.mnt, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(s.mnt, unix.MNT_DETACH) })
	s.w = startWriter(t, filepath.Join(s.mnt, "records"))
	// A test that failed half-way still stops its writer, so that the
	// filesystem can go and the next test's devices can be made.
	t.Cleanup(func() { s.w.halt() })
	return s
}

// removeDevices removes the test's dm devices, holders first, and says
// which it could not.
func removeDevices(t *testing.T) {
	for _, n := range []string{liveName, SrcName, tgtName} {
		if _, err := devmapper.InfoByName(n); err != nil {
			continue
		}
		_ = devmapper.Resume(n) // a suspended device cannot go while I/O waits on it
		if err := devmapper.Remove(n); err != nil {
			out, _ := exec.Command("dmsetup", "info", "-c").CombinedOutput()
			t.Logf("cleanup: remove %s: %v\n%s", n, err, out)
		}
	}
}

// writer appends 4 KiB records numbered 1, 2, ... and fsyncs each; acked is
// the last record whose fsync returned, last the time it did.
type writer struct {
	path  string
	acked atomic.Int64
	last  atomic.Int64 // unix nanoseconds of the last ack
	stop  chan struct{}
	once  sync.Once
	done  sync.WaitGroup
	err   error
}

func startWriter(t *testing.T, path string) *writer {
	w := &writer{path: path, stop: make(chan struct{})}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.last.Store(time.Now().UnixNano())
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		defer f.Close()
		rec := make([]byte, 4096)
		for n := int64(1); ; n++ {
			select {
			case <-w.stop:
				return
			default:
			}
			for i := 0; i < len(rec); i += 8 {
				binary.LittleEndian.PutUint64(rec[i:], uint64(n))
			}
			if _, err := f.Write(rec); err != nil {
				w.err = err
				return
			}
			if err := f.Sync(); err != nil {
				w.err = err
				return
			}
			w.acked.Store(n)
			w.last.Store(time.Now().UnixNano())
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

// halt stops the writer if it still runs, waiting a while for it.
func (w *writer) halt() {
	w.once.Do(func() { close(w.stop) })
	ch := make(chan struct{})
	go func() { w.done.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
	}
}

// Stop stops the writer and returns the last acknowledged record, failing
// the test when the writer is stuck (a write that does not come back) or
// failed.
func (w *writer) Stop(t *testing.T) int64 {
	t.Helper()
	w.once.Do(func() { close(w.stop) })
	ch := make(chan struct{})
	go func() { w.done.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("the writer is stuck: its last fsync returned %s ago", time.Since(time.Unix(0, w.last.Load())))
	}
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	return w.acked.Load()
}

// advancing fails the test unless the writer acknowledges a record within d.
func (w *writer) advancing(t *testing.T, d time.Duration, when string) {
	t.Helper()
	start := w.acked.Load()
	deadline := time.Now().Add(d)
	for w.acked.Load() == start {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the writer acknowledged nothing for %s (last fsync %s ago, error %v)", when, d, time.Since(time.Unix(0, w.last.Load())), w.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verifyRecords checks that file p holds records 1..acked (at least) in order.
func verifyRecords(t *testing.T, p string, acked int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)/4096) < acked {
		t.Fatalf("%s holds %d records, %d were acknowledged", p, len(b)/4096, acked)
	}
	for n := int64(1); n <= acked; n++ {
		rec := b[(n-1)*4096 : n*4096]
		for i := 0; i < 4096; i += 8 {
			if got := binary.LittleEndian.Uint64(rec[i:]); got != uint64(n) {
				t.Fatalf("record %d, byte %d: %d", n, i, got)
			}
		}
	}
}

func (s *liveStack) dmsetup(args ...string) string {
	return strings.TrimSpace(run(s.t, "dmsetup", args...))
}

// dmsetupStatus is dmsetup's status of the mirror name, parsed.
func dmsetupStatus(t *testing.T, name string) Status {
	t.Helper()
	ref := strings.TrimSpace(run(t, "dmsetup", "status", name))
	f := strings.Fields(ref)
	if len(f) < 4 || f[2] != "mirror" {
		t.Fatalf("dmsetup status %s: %q is not a mirror", name, ref)
	}
	st, err := ParseStatus(strings.Join(f[3:], " "))
	if err != nil {
		t.Fatalf("dmsetup status %s: %v", name, err)
	}
	return st
}

// waitStatus polls the mirror until ok says so, and checks on the way that
// Status agrees with dmsetup status, the referee.
func waitStatus(t *testing.T, m *Mirror, d time.Duration, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(d)
	agreed := false
	for {
		st, err := m.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !agreed {
			// The referee: dmsetup's status, read just before and just
			// after, names the same legs and number of regions; the
			// health and the count of copied regions may move between
			// the reads (a leg failing, the copy going on), so Status
			// must show one of the two healths and a count between them.
			before := dmsetupStatus(t, m.Live)
			st2, err := m.Status()
			if err != nil {
				t.Fatal(err)
			}
			after := dmsetupStatus(t, m.Live)
			if strings.Join(before.Legs, " ") != strings.Join(st2.Legs, " ") || before.Regions != st2.Regions ||
				(st2.Health != before.Health && st2.Health != after.Health) ||
				st2.InSyncRegions < before.InSyncRegions || st2.InSyncRegions > after.InSyncRegions {
				t.Fatalf("dmsetup status %+v then %+v disagrees with Status %+v", before, after, st2)
			}
			agreed = true
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %+v", what, d, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readRate reads device p from start to end, cold, and returns MB/s: the
// speed of the source the copy is held against.
func readRate(t *testing.T, p string) float64 {
	t.Helper()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	return float64(n) / time.Since(start).Seconds() / 1e6
}

// The whole way, at three region sizes (512 KiB for comparison, and the
// bounds RegionSectors picks between): insert under the writer, copy, switch
// to the target, grow the filesystem online; the target then holds every
// acknowledged record and passes e2fsck alone.
func TestKernelMirrorSwitch(t *testing.T) {
	needVM(t)
	if err := SetThrottle(100); err != nil {
		t.Fatal(err)
	}
	for _, region := range []uint64{1024, MinRegionSectors, MaxRegionSectors} {
		t.Run(fmt.Sprint(region), func(t *testing.T) { mirrorSwitch(t, region) })
	}
}

func mirrorSwitch(t *testing.T, region uint64) {
	s := newLiveStack(t, 96)
	time.Sleep(200 * time.Millisecond)
	src := readRate(t, s.snap.Path)
	before := s.dmsetup("table", liveName)
	start := time.Now()
	m, err := Insert(liveName, s.target, Options{RegionSectors: region})
	if err != nil {
		t.Fatal(err)
	}
	s.w.advancing(t, 10*time.Second, "after the insert")
	if got := s.dmsetup("table", SrcName); !strings.HasSuffix(before, strings.TrimPrefix(got, "0 ")) && got != before {
		t.Errorf("%s's table %q is not live-rw's old one %q", SrcName, got, before)
	}
	if tab := s.dmsetup("table", liveName); !strings.Contains(tab, " mirror core 1 ") {
		t.Errorf("live table after insert: %q", tab)
	}
	f, st, err := Find(liveName)
	if err != nil || st != Copying || f.Target != (overlay.Dev{Major: s.target.Major, Minor: s.target.Minor}) || f.Src.Minor != m.Src.Minor || f.Snapshot != m.Snapshot || f.RegionSectors != m.RegionSectors {
		t.Fatalf("Find while copying: %v %v %+v (inserted %+v)", st, err, f, m)
	}
	stt := waitStatus(t, m, 300*time.Second, "in sync", Status.InSync)
	took := time.Since(start)
	s.w.advancing(t, 10*time.Second, "in sync")
	if err := m.Switch(96 << 11); err != nil {
		t.Fatal(err)
	}
	s.w.advancing(t, 10*time.Second, "after the switch")
	if tab := s.dmsetup("table", liveName); tab != fmt.Sprintf("0 %d linear %d:%d 0", 96<<11, s.target.Major, s.target.Minor) {
		t.Errorf("live table after switch: %q", tab)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		t.Errorf("%s still exists after the switch", SrcName)
	}
	if _, st, err := Find(liveName); err != nil || st != Switched {
		t.Errorf("Find after switch: %v %v", st, err)
	}
	run(t, "resize2fs", s.snap.Path)
	acked := s.w.Stop(t)
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
	if err := unix.Unmount(s.mnt, 0); err != nil {
		t.Fatal(err)
	}
	// The target alone, under the checker, with every record.
	removeDevices(t)
	run(t, "e2fsck", "-fn", s.tgtRaw.Path)
	blocks := strings.TrimSpace(run(t, "dumpe2fs", "-h", s.tgtRaw.Path))
	if !strings.Contains(blocks, "Block count:              24576") {
		t.Errorf("the filesystem did not grow to 96 MiB: %s", blocks)
	}
	if err := unix.Mount(s.tgtRaw.Path, s.mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
	_ = unix.Unmount(s.mnt, 0)
	bytes := float64(originMiB << 20)
	rate := bytes / took.Seconds() / 1e6
	fmt.Printf("dmmirror copy: %d MiB in %.2f s (%.1f MB/s; source read %.1f MB/s, ratio %.2f), region %d sectors, %d regions; %d records acknowledged, all on the target\n",
		originMiB, took.Seconds(), rate, src, rate/src, m.RegionSectors, stt.Regions, acked)
}

func TestKernelMirrorAbort(t *testing.T) {
	needVM(t)
	s := newLiveStack(t, 96)
	before := s.dmsetup("table", liveName)
	if err := SetThrottle(1); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = SetThrottle(100) }()
	m, err := Insert(liveName, s.target, Options{RegionSectors: 1024})
	if err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, m, 120*time.Second, "some regions copied", func(s Status) bool { return s.InSyncRegions > 0 })
	if st.InSync() {
		t.Fatalf("the copy finished before the abort (throttle 1%%): %+v", st)
	}
	if err := m.Switch(0); !errors.Is(err, ErrNotInSync) {
		t.Errorf("Switch before sync: %v", err)
	}
	if err := m.Abort(); err != nil {
		t.Fatal(err)
	}
	s.w.advancing(t, 10*time.Second, "after the abort")
	if got := s.dmsetup("table", liveName); got != before {
		t.Errorf("after the abort live's table is %q, was %q", got, before)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		t.Errorf("%s still exists after the abort", SrcName)
	}
	if ref := s.dmsetup("status", liveName); strings.Contains(ref, "Invalid") {
		t.Errorf("the snapshot is invalid after the abort: %s", ref)
	}
	if _, st, err := Find(liveName); err != nil || st != Untouched {
		t.Errorf("Find after abort: %v %v", st, err)
	}
	// A second, full run afterwards.
	if err := SetThrottle(100); err != nil {
		t.Fatal(err)
	}
	m, err = Insert(liveName, s.target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, 300*time.Second, "in sync", Status.InSync)
	if err := m.Switch(0); err != nil {
		t.Fatal(err)
	}
	acked := s.w.Stop(t)
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
	_ = unix.Unmount(s.mnt, 0)
	run(t, "e2fsck", "-fn", s.tgtRaw.Path)
}

// The target fails mid-copy: the leg is marked dead, writes go on on the
// snapshot, and an abort puts the session back on it.
func TestKernelMirrorDeadLeg(t *testing.T) {
	needVM(t)
	s := newLiveStack(t, 96)
	before := s.dmsetup("table", liveName)
	if err := SetThrottle(1); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = SetThrottle(100) }()
	m, err := Insert(liveName, s.target, Options{RegionSectors: 1024})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, 120*time.Second, "some regions copied", func(s Status) bool { return s.InSyncRegions > 0 })
	// The disk dies: every I/O to it fails from now on.
	if err := devmapper.Suspend(tgtName); err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Load(tgtName, 0, devmapper.ErrorTable{Length: 96 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Resume(tgtName); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, m, 120*time.Second, "the target leg marked failed", func(s Status) bool { return len(s.Failed()) > 0 })
	if f := st.Failed(); len(f) != 1 || f[0] != 1 {
		t.Fatalf("failed legs %v (health %s), want the target's only", f, st.Health)
	}
	s.w.advancing(t, 20*time.Second, "with the target dead")
	if err := m.Switch(0); !errors.Is(err, ErrNotInSync) {
		t.Errorf("Switch with a dead leg: %v", err)
	}
	if err := m.Abort(); err != nil {
		t.Fatal(err)
	}
	s.w.advancing(t, 10*time.Second, "after the abort")
	if got := s.dmsetup("table", liveName); got != before {
		t.Errorf("after the abort live's table is %q, was %q", got, before)
	}
	acked := s.w.Stop(t)
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
	if err := unix.Unmount(s.mnt, 0); err != nil {
		t.Fatal(err)
	}
	run(t, "e2fsck", "-fn", s.snap.Path)
	fmt.Printf("dmmirror dead leg: health %s, %d records acknowledged, session back on its snapshot\n", st.Health, acked)
}

// Crashes at each point of the insert and the abort leave states that Find
// names and Settle finishes, with the writer going on.
func TestKernelMirrorSettle(t *testing.T) {
	needVM(t)
	s := newLiveStack(t, 96)
	before := s.dmsetup("table", liveName)
	_, snap, _, err := liveSnapshot(liveName)
	if err != nil {
		t.Fatal(err)
	}
	mkSrc := func() overlay.Dev {
		if err := devmapper.Create(SrcName, UUIDPrefix+liveName); err != nil {
			t.Fatal(err)
		}
		if err := overlay.LoadTable(SrcName, []overlay.Target{snap}); err != nil {
			t.Fatal(err)
		}
		info, _ := devmapper.InfoByName(SrcName)
		return devOf(info.DevNo, SrcName)
	}
	settle := func(want State, when string) {
		t.Helper()
		got, err := Settle(liveName)
		if err != nil || got != want {
			t.Fatalf("%s: Settle = %v, %v; want %v", when, got, err, want)
		}
		s.w.advancing(t, 10*time.Second, when)
	}
	mirror := func(src overlay.Dev) {
		p, _ := MirrorParams(majmin(src), majmin(s.target), 1024)
		if err := overlay.LoadTable(liveName, []overlay.Target{{Length: snap.Length, Type: "mirror", Params: p}}); err != nil {
			t.Fatal(err)
		}
	}

	// Killed after making the source device: it is left over.
	mkSrc()
	if _, st, err := Find(liveName); err != nil || st != Leftover {
		t.Fatalf("Find with a fresh %s: %v %v", SrcName, st, err)
	}
	settle(Untouched, "source made")

	// Killed with live suspended before the handover.
	mirror(mkSrc())
	if err := devmapper.Suspend(liveName); err != nil {
		t.Fatal(err)
	}
	if _, st, err := Find(liveName); err != nil || st != Midway {
		t.Fatalf("Find with live suspended: %v %v", st, err)
	}
	settle(Untouched, "suspended before the handover")
	if got := s.dmsetup("table", liveName); got != before {
		t.Fatalf("live's table %q, was %q", got, before)
	}

	// Killed after the handover, before live's resume: the insert is
	// finished.
	mirror(mkSrc())
	if err := devmapper.Suspend(liveName); err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Resume(SrcName); err != nil {
		t.Fatal(err)
	}
	settle(Copying, "after the handover")
	m, st, err := Find(liveName)
	if err != nil || st != Copying {
		t.Fatal(st, err)
	}

	// Killed in an abort between its two suspensions.
	if err := overlay.LoadTable(liveName, []overlay.Target{m.Snapshot}); err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Suspend(liveName); err != nil {
		t.Fatal(err)
	}
	settle(Untouched, "abort between its suspensions")
	if got := s.dmsetup("table", liveName); got != before {
		t.Fatalf("live's table %q, was %q", got, before)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		t.Fatalf("%s left after settling the abort", SrcName)
	}

	// Killed in a switch, suspended with the linear map loaded, before the
	// mirror was in sync: the linear map is dropped.
	if err := SetThrottle(1); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = SetThrottle(100) }()
	m, err = Insert(liveName, s.target, Options{RegionSectors: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := overlay.LoadTable(liveName, []overlay.Target{{Length: m.Sectors, Type: "linear", Params: majmin(s.target) + " 0"}}); err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Suspend(liveName); err != nil {
		t.Fatal(err)
	}
	settle(Copying, "switch before sync")
	if err := m.Abort(); err != nil {
		t.Fatal(err)
	}
	acked := s.w.Stop(t)
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
	_ = unix.Unmount(s.mnt, 0)
	run(t, "e2fsck", "-fn", s.snap.Path)
}

func TestKernelInsertRefusals(t *testing.T) {
	needVM(t)
	s := newLiveStack(t, 32) // smaller than the 64 MiB snapshot
	before := s.dmsetup("table", liveName)
	if _, err := Insert(liveName, s.target, Options{}); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Errorf("a target smaller than live: %v", err)
	}
	if _, err := Insert(tgtName, s.target, Options{}); err == nil || !strings.Contains(err.Error(), "not one dm snapshot") {
		t.Errorf("a live device that is no snapshot: %v", err)
	}
	if err := devmapper.Create(SrcName, "SOMEONE-ELSES"); err != nil {
		t.Fatal(err)
	}
	if _, err := Insert(liveName, s.target, Options{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("with %s there already: %v", SrcName, err)
	}
	if _, _, err := Find(liveName); err == nil || !strings.Contains(err.Error(), "not livemigrate's") {
		t.Errorf("Find with a foreign %s: %v", SrcName, err)
	}
	_ = devmapper.Remove(SrcName)
	if got := s.dmsetup("table", liveName); got != before {
		t.Errorf("a refusal changed live's table: %q, was %q", got, before)
	}
	s.w.advancing(t, 10*time.Second, "after the refusals")
	s.w.Stop(t)
}

// An insert killed before it froze the root leaves the relocated device
// with the pending snapshot table and live's mirror table loaded inactive,
// while the session runs on. Insert refuses to start over it; Settle (what
// the engine runs before every insert) undoes it, and Insert then goes on;
// an abort leaves live exactly as it was before either.
func TestKernelInsertAfterKilledInsert(t *testing.T) {
	needVM(t)
	s := newLiveStack(t, 96)
	before := s.dmsetup("table", liveName)
	_, snap, _, err := liveSnapshot(liveName)
	if err != nil {
		t.Fatal(err)
	}
	if err := devmapper.Create(SrcName, UUIDPrefix+liveName); err != nil {
		t.Fatal(err)
	}
	if err := overlay.LoadTable(SrcName, []overlay.Target{snap}); err != nil {
		t.Fatal(err)
	}
	si, err := devmapper.InfoByName(SrcName)
	if err != nil {
		t.Fatal(err)
	}
	params, err := MirrorParams(majmin(devOf(si.DevNo, SrcName)), majmin(s.target), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := overlay.LoadTable(liveName, []overlay.Target{{Length: snap.Length, Type: "mirror", Params: params}}); err != nil {
		t.Fatal(err)
	}
	s.w.advancing(t, 5*time.Second, "with the killed insert's tables loaded")
	if _, err := Insert(liveName, s.target, Options{RegionSectors: 1024}); err == nil {
		t.Fatal("Insert over a killed insert's leftovers went ahead without Settle")
	}
	st, err := Settle(liveName)
	if err != nil || st != Untouched {
		t.Fatalf("Settle after a killed insert: %v, %v; want untouched", st, err)
	}
	if got := s.dmsetup("table", liveName); got != before {
		t.Errorf("after Settle live's table is %q, was %q", got, before)
	}
	if out := s.dmsetup("info", liveName); strings.Contains(out, "INACTIVE") || strings.Contains(out, "SUSPENDED") {
		t.Errorf("after Settle %s is not just live on its snapshot:\n%s", liveName, out)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		t.Errorf("%s still exists after Settle", SrcName)
	}
	m, err := Insert(liveName, s.target, Options{RegionSectors: 1024})
	if err != nil {
		t.Fatalf("Insert after a killed insert: %v", err)
	}
	waitStatus(t, m, 120*time.Second, "some regions copied", func(s Status) bool { return s.InSyncRegions > 0 })
	s.w.advancing(t, 5*time.Second, "on the mirror")
	if err := m.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := s.dmsetup("table", liveName); got != before {
		t.Errorf("after the abort live's table is %q, was %q", got, before)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		t.Errorf("%s still exists after the abort", SrcName)
	}
	s.w.advancing(t, 5*time.Second, "after the abort")
	acked := s.w.Stop(t)
	verifyRecords(t, filepath.Join(s.mnt, "records"), acked)
}
