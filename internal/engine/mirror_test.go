package engine

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// fakeMirror simulates dm-mirror for the engine's tests: after the insert
// every status read copies a quarter of the regions.
type fakeMirror struct {
	state    string // MirrorFresh, MirrorCopying, MirrorSwitched
	regions  uint64
	synced   uint64
	health   string
	failAt   uint64 // the target leg fails once this many regions are in sync
	throttle int
	calls    []string
}

func (f *fakeMirror) InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error) {
	f.calls = append(f.calls, "insert "+live+" "+dev)
	f.state, f.synced, f.health = MirrorCopying, 0, "AA"
	return overlay.Dev{Name: "dm-5", Major: 253, Minor: 5}, nil
}

func (f *fakeMirror) MirrorStatus(string) (dmmirror.Status, uint64, error) {
	if f.state != MirrorCopying {
		return dmmirror.Status{}, 0, errors.New("not a mirror")
	}
	if f.synced < f.regions {
		f.synced = min(f.regions, f.synced+f.regions/4)
	}
	if f.failAt > 0 && f.synced >= f.failAt {
		f.health = "AS"
	}
	return dmmirror.Status{Legs: []string{"253:5", "254:17"}, InSyncRegions: f.synced, Regions: f.regions, Health: f.health}, GiB / 512 / f.regions, nil
}

func (f *fakeMirror) SwitchMirror(live, dev string) error {
	f.calls = append(f.calls, "switch "+live+" "+dev)
	if f.state == MirrorSwitched {
		return nil
	}
	if f.synced != f.regions || f.health != "AA" {
		return errLiveLegStays
	}
	f.state = MirrorSwitched
	return nil
}

func (f *fakeMirror) AbortMirror(live string) error {
	f.calls = append(f.calls, "abort "+live)
	f.state = MirrorFresh
	return nil
}

func (f *fakeMirror) SetMirrorThrottle(p int) error {
	f.throttle = p
	f.calls = append(f.calls, "throttle")
	return nil
}

// mirrorSystem is a stock dmsquash-live root: / on live-rw, no md.
func mirrorSystem() *System {
	sys := liveSystem()
	sys.Array, sys.LiveLeg, sys.ArrayLBS = nil, nil, 0
	sys.RootSource = "/dev/mapper/live-rw"
	sys.Mirror = &MirrorRoot{DMName: "live-rw", Path: "/dev/mapper/live-rw", Name: "dm-1", Major: 253, Minor: 1, SizeBytes: GiB, LBS: 512, State: MirrorFresh}
	return sys
}

func TestMirrorPlan(t *testing.T) {
	sys := mirrorSystem()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range p.Steps {
		kinds = append(kinds, string(s.Kind))
	}
	want := "tune-recovery insert-mirror recover switch-to-target grow-filesystem restore-recovery-speed release-live-stack"
	if p.Method != MethodMirror || strings.Join(kinds, " ") != want {
		t.Fatalf("method %s, steps %s", p.Method, strings.Join(kinds, " "))
	}
	r := p.Render()
	for _, w := range []string{"How: a mirror put under /dev/mapper/live-rw while it runs (dm-mirror", "<- point of no return", "livemigrate-src"} {
		if !strings.Contains(r, w) {
			t.Errorf("plan lacks %q:\n%s", w, r)
		}
	}
	if strings.Contains(r, "Release the live stack: live-rw") {
		t.Errorf("the release names live-rw, which stays as the root's linear map:\n%s", r)
	}
	// The md path does not take this root, and the mirror refuses what the
	// md path refuses about the target.
	for _, c := range []struct {
		name string
		tgt  Target
		code int
	}{
		{"the root itself", Target{Info: disk("dm-1", 253, 1, GiB)}, ExitLiveStack},
		{"too small", Target{Info: disk("vdb", 254, 16, GiB/2)}, ExitTooSmall},
		{"the medium", Target{Info: disk("sr0", 11, 0, 4*GiB)}, ExitLiveStack},
	} {
		_, err := Preflight(sys, c.tgt, Request{Target: c.tgt.Info.Path, RawDisk: true})
		if ExitCode(err) != c.code {
			t.Errorf("%s: %v (code %d, want %d)", c.name, err, ExitCode(err), c.code)
		}
	}
	big := disk("vdb", 254, 16, 2*GiB)
	big.LogicalBlockSize = 4096
	if _, err := Preflight(sys, Target{Info: big}, Request{Target: "/dev/vdb", RawDisk: true}); ExitCode(err) != ExitBlockSize {
		t.Errorf("4K target under a 512-byte root: %v", err)
	}
}

func TestMirrorContinuation(t *testing.T) {
	sys := mirrorSystem()
	sys.Mirror.State = MirrorCopying
	sys.Mirror.Target = &overlay.Dev{Name: "vdb", Major: 254, Minor: 16, Path: "/dev/vdb"}
	sys.Mirror.Src = &overlay.Dev{Name: "dm-5", Major: 253, Minor: 5}
	sys.Mirror.Status = &dmmirror.Status{InSyncRegions: 3, Regions: 8, Health: "AA"}
	sys.Mirror.RegionSectors = GiB / 512 / 8
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Has(StepInsertMirror) || !p.Has(StepRecover) || !strings.Contains(p.Resume, "already being copied (384 MiB of 1.0 GiB)") || p.TargetID != nil {
		t.Errorf("continuation plan: resume %q, steps %+v", p.Resume, p.Steps)
	}
	if _, err := Preflight(sys, Target{Info: disk("vdc", 254, 32, 2*GiB)}, Request{Target: "/dev/vdc", RawDisk: true}); ExitCode(err) != ExitBusyArray || !strings.Contains(err.Error(), "--target /dev/vdb") {
		t.Errorf("another target while copying: %v", err)
	}
	// A killed run whose target failed since: the same command is the way
	// back, and its plan says so; run, it puts the session back on its
	// snapshot at the first look at the mirror (20).
	sys.Mirror.Status.Health = "AS"
	sys.RootFS = &resize.Probe{Type: "ext4", UUID: "u", Size: GiB}
	p, err = Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true})
	if err != nil || !strings.Contains(p.Resume, "marks a leg failed (legs AS): this run puts the session back on its live snapshot") {
		t.Fatalf("continuing onto a failed leg: %v, resume %q", err, p.Resume)
	}
	f := &fakeMirror{state: MirrorCopying, regions: 8, synced: 3, health: "AS"}
	var evs []Event
	fk := &fakeKernel{}
	r := runner(fk, sys, &evs)
	r.K = mirrorKernel{fk, f}
	_, err = r.Run(context.Background(), p)
	if ExitCode(err) != ExitAborted || !strings.Contains(err.Error(), "live session intact on its snapshot") || !strings.Contains(strings.Join(f.calls, ","), "abort live-rw") || strings.Contains(strings.Join(f.calls, ","), "switch") {
		t.Errorf("run onto a failed leg: %v (code %d), calls %v", err, ExitCode(err), f.calls)
	}
}

// mirrorOps is what a fake mirror answers.
type mirrorOps interface {
	InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error)
	MirrorStatus(live string) (dmmirror.Status, uint64, error)
	SwitchMirror(live, dev string) error
	AbortMirror(live string) error
	SetMirrorThrottle(percent int) error
}

// mirrorKernel is the md tests' fake kernel with a fake mirror.
type mirrorKernel struct {
	*fakeKernel
	m mirrorOps
}

func (k mirrorKernel) InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error) {
	return k.m.InsertMirror(live, dev, major, minor)
}
func (k mirrorKernel) MirrorStatus(live string) (dmmirror.Status, uint64, error) {
	return k.m.MirrorStatus(live)
}
func (k mirrorKernel) SwitchMirror(live, dev string) error { return k.m.SwitchMirror(live, dev) }
func (k mirrorKernel) AbortMirror(live string) error       { return k.m.AbortMirror(live) }
func (k mirrorKernel) SetMirrorThrottle(p int) error       { return k.m.SetMirrorThrottle(p) }

func mirrorRun(t *testing.T, f *fakeMirror, ctx context.Context) (*Result, error, []Event, *fakeKernel) {
	t.Helper()
	return mirrorRunWith(t, f, ctx)
}

func mirrorRunWith(t *testing.T, f mirrorOps, ctx context.Context) (*Result, error, []Event, *fakeKernel) {
	t.Helper()
	sys := mirrorSystem()
	sys.RootFS = &resize.Probe{Type: "ext4", UUID: "u", Size: GiB}
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	fk := &fakeKernel{}
	var evs []Event
	r := runner(fk, sys, &evs)
	r.K = mirrorKernel{fk, f}
	res, err := r.Run(ctx, p)
	return res, err, evs, fk
}

func TestMirrorRunHappyPath(t *testing.T) {
	f := &fakeMirror{state: MirrorFresh, regions: 16}
	res, err, evs, fk := mirrorRun(t, f, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.state != MirrorSwitched || f.throttle != 100 || strings.Join(f.calls, ",") != "throttle,insert live-rw /dev/vdb,switch live-rw /dev/vdb,throttle" {
		t.Errorf("mirror calls %v, state %s, throttle %d", f.calls, f.state, f.throttle)
	}
	if res.RecoveredBytes != GiB {
		t.Errorf("recovered %d", res.RecoveredBytes)
	}
	if strings.Join(fk.calls, ",") != "grow-fs /dev/mapper/live-rw,release" {
		t.Errorf("other calls: %v", fk.calls)
	}
	progress := 0
	for _, e := range evs {
		if e.Type == EvProgress {
			progress++
		}
	}
	if progress < 3 {
		t.Errorf("%d progress events", progress)
	}
}

func TestMirrorTargetFailsAborts(t *testing.T) {
	f := &fakeMirror{state: MirrorFresh, regions: 16, failAt: 8}
	_, err, _, fk := mirrorRun(t, f, context.Background())
	var re *RunError
	if !errors.As(err, &re) || re.Code != ExitAborted || !strings.Contains(re.State, "intact on its snapshot") || !strings.Contains(err.Error(), "marked /dev/vdb failed") {
		t.Fatalf("target failing mid-copy: %v", err)
	}
	if f.state != MirrorFresh || f.throttle != 100 || len(fk.calls) != 0 {
		t.Errorf("after the abort: state %s, throttle %d, other calls %v", f.state, f.throttle, fk.calls)
	}
}

func TestMirrorInterruptAborts(t *testing.T) {
	f := &fakeMirror{state: MirrorFresh, regions: 1 << 20}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	f2 := &countingMirror{fakeMirror: f, onStatus: func() {
		if n++; n == 3 {
			cancel()
		}
	}}
	sys := mirrorSystem()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	fk := &fakeKernel{}
	var evs []Event
	r := runner(fk, sys, &evs)
	r.K = mirrorKernel{fk, f2}
	_, err = r.Run(ctx, p)
	if ExitCode(err) != ExitInterrupted || f.state != MirrorFresh {
		t.Errorf("Ctrl+C during the copy: %v, state %s", err, f.state)
	}
}

// What an abort says of the target: a partial copy once the mirror was
// put in, nothing copied when the run stopped before the insert.
func TestMirrorAbortSaysWhatTheTargetHolds(t *testing.T) {
	for _, c := range []struct {
		name     string
		cancelAt int // the mirror call at which Ctrl+C arrives (the throttle is call 1)
		want     string
	}{
		{"before the insert", 1, "nothing was copied to /dev/vdb"},
		{"during the copy", 3, "/dev/vdb holds a partial copy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			f := &fakeMirror{state: MirrorFresh, regions: 1 << 20}
			n := 0
			f2 := &cancellingMirror{fakeMirror: f, on: func() {
				if n++; n == c.cancelAt {
					cancel()
				}
			}}
			_, err, _, _ := mirrorRunWith(t, f2, ctx)
			var re *RunError
			if !errors.As(err, &re) || re.Code != ExitInterrupted || !strings.Contains(re.State, "live session intact on its snapshot") || !strings.Contains(re.State, c.want) {
				t.Errorf("state %q (%v), want it to say %q", re.State, err, c.want)
			}
		})
	}
}

// cancellingMirror calls on at every mirror call but the abort.
type cancellingMirror struct {
	*fakeMirror
	on func()
}

func (c *cancellingMirror) SetMirrorThrottle(p int) error {
	c.on()
	return c.fakeMirror.SetMirrorThrottle(p)
}
func (c *cancellingMirror) InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error) {
	c.on()
	return c.fakeMirror.InsertMirror(live, dev, major, minor)
}
func (c *cancellingMirror) MirrorStatus(live string) (dmmirror.Status, uint64, error) {
	c.on()
	return c.fakeMirror.MirrorStatus(live)
}

type countingMirror struct {
	*fakeMirror
	onStatus func()
}

func (c *countingMirror) MirrorStatus(live string) (dmmirror.Status, uint64, error) {
	c.onStatus()
	return c.fakeMirror.MirrorStatus(live)
}

// --method forces one way: an unknown name is a usage error, a method that
// does not apply says so and names the one that does, and the one that
// applies plans as it would unforced.
func TestForcedMethod(t *testing.T) {
	tgt := Target{Info: disk("vdb", 254, 16, 2*GiB)}
	req := func(m string) Request {
		return Request{Target: "/dev/vdb", RawDisk: true, NoFinalize: true, Method: m}
	}
	_, err := Preflight(mirrorSystem(), tgt, req("rsync"))
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), `--method "rsync": no such method`) || !strings.Contains(err.Error(), "md-hook, dm-mirror") {
		t.Errorf("unknown method: %v (code %d)", err, ExitCode(err))
	}
	_, err = Preflight(mirrorSystem(), tgt, req("md-hook"))
	if ExitCode(err) != ExitNotLive || !strings.Contains(err.Error(), "--method md-hook: / is not on an md array") || !strings.Contains(err.Error(), "the dm-mirror method applies") {
		t.Errorf("md-hook on a snapshot root: %v (code %d)", err, ExitCode(err))
	}
	_, err = Preflight(liveSystem(), tgt, req(MethodMirror))
	if ExitCode(err) != ExitNotLive || !strings.Contains(err.Error(), "an md array, not straight on a device-mapper snapshot") || !strings.Contains(err.Error(), "the md-hook method applies") {
		t.Errorf("dm-mirror on the hook's array: %v (code %d)", err, ExitCode(err))
	}
	for _, c := range []struct {
		sys    *System
		method string
	}{{mirrorSystem(), MethodMirror}, {liveSystem(), "md-hook"}} {
		p, err := Preflight(c.sys, tgt, req(c.method))
		if err != nil || p.Method != c.method {
			t.Errorf("--method %s where it applies: %v", c.method, err)
		}
	}
}

// A kernel without dm-mirror: the snapshot root is refused before anything
// is written, saying why and what to boot instead.
func TestMirrorNeedsTheKernelTarget(t *testing.T) {
	sys := mirrorSystem()
	sys.NoMirror = "this kernel (6.12.0) has no dm-mirror target: it is not loaded, and /lib/modules/6.12.0 has no dm-mirror module"
	_, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true})
	if ExitCode(err) != ExitNotLive || !strings.Contains(err.Error(), "/dev/mapper/live-rw, a live snapshot, but this kernel (6.12.0) has no dm-mirror target") || !strings.Contains(err.Error(), "livemigrate boot hook") {
		t.Errorf("no dm-mirror: %v (code %d)", err, ExitCode(err))
	}
}

// mirrorSupport reads the registered targets, then the module lists of the
// running kernel.
func TestMirrorSupport(t *testing.T) {
	root := t.TempDir()
	o := Observer{Root: root}
	types := map[string][3]uint32{"snapshot": {}, "linear": {}}
	o.MirrorTargets = func() (map[string][3]uint32, error) { return types, nil }
	if why := o.mirrorSupport("6.12.0"); !strings.Contains(why, "no dm-mirror target") {
		t.Errorf("no mirror, no modules: %q", why)
	}
	dir := root + "/lib/modules/6.12.0"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/modules.dep", []byte("kernel/drivers/md/dm-log.ko.xz:\nkernel/drivers/md/dm-mirror.ko.xz: kernel/drivers/md/dm-region-hash.ko.xz kernel/drivers/md/dm-log.ko.xz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := o.mirrorSupport("6.12.0"); why != "" {
		t.Errorf("dm-mirror a module: %q", why)
	}
	if why := o.mirrorSupport("6.1.0"); why == "" {
		t.Errorf("another kernel's modules were taken for this one's")
	}
	types["mirror"] = [3]uint32{1, 14, 0}
	if why := o.mirrorSupport("6.1.0"); why != "" {
		t.Errorf("mirror registered: %q", why)
	}
	delete(types, "snapshot")
	if why := o.mirrorSupport("6.1.0"); why == "" {
		t.Errorf("no snapshot target, and yet supported")
	}
}
