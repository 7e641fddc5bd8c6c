package tui

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// t0 is the fake clock's start; events carry t0 plus an offset.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const mib = 1 << 20

// liveSystem is a live session as the QEMU medium boots it: / on md127
// (212 MiB ext4) whose one leg is live-rw over rootfs.img on a CD, COW in
// RAM.
func liveSystem() *engine.System {
	live := mdraid.Member{Name: "dm-0", Major: 253, Minor: 0, Slot: 0, States: []string{"in_sync"}, SizeKiB: 212 * 1024}
	a := &mdraid.Array{Name: "md127", Path: "/dev/md127", Major: 9, Minor: 127, Level: "raid1", Metadata: "none",
		RaidDisks: 2, SizeBytes: 212 * mib, Degraded: 1, Members: []mdraid.Member{live}}
	st := &overlay.Stack{
		Snapshot: overlay.Dev{Name: "dm-0", Major: 253, Minor: 0, Path: "/dev/mapper/live-rw"}, DMName: "live-rw",
		Origin: overlay.Dev{Name: "loop1", Major: 7, Minor: 1}, OriginLoop: overlay.Dev{Name: "loop1", Major: 7, Minor: 1},
		OriginFile: "/run/initramfs/squashfs/LiveOS/rootfs.img",
		COW:        overlay.Dev{Name: "loop2", Major: 7, Minor: 2}, COWKind: overlay.COWDeletedFile, COWBacking: "/overlay (deleted)",
		SquashfsMount: "/run/initramfs/squashfs", SquashfsLoop: overlay.Dev{Name: "loop0", Major: 7, Minor: 0},
		MediumMount: "/run/initramfs/live", MediumFSType: "iso9660", Medium: overlay.Dev{Name: "sr0", Major: 11, Minor: 0},
		MediumDisk: overlay.Dev{Name: "sr0", Major: 11, Minor: 0}, MediumIsCD: true,
	}
	return &engine.System{
		RootMount: "/", RootSource: "/dev/md127", RootFSType: "ext4",
		RootFS: &resize.Probe{Type: "ext4", UUID: "93fa3aa5-3d1c-4c55-9d0e-6f1b2a7c8e90", Size: 212 * mib,
			Ext: resize.ExtInfo{Features: resize.ExtFeatures{Incompat: 0x2000, ROCompat: 0x0400}}},
		Array: a, ArrayLBS: 512, LiveLeg: &a.Members[0], Stack: st,
		COW:      &overlay.Usage{UsedSectors: 17 * mib / 512, TotalSectors: 1024 * mib / 512},
		MemTotal: 1946 * mib, MemAvail: 1843 * mib,
		// Debian 13: kernel 6.12, GRUB 2.12, ext4 with metadata_csum_seed.
		Kernel: "6.12.57+deb13-amd64", Grub: "2.12",
	}
}

func disk(name string, maj, min uint32, size uint64, model, tran string, parts ...string) *blockdev.Info {
	return &blockdev.Info{Path: "/dev/" + name, Name: name, Major: maj, Minor: min, Disk: name, SizeBytes: size,
		LogicalBlockSize: 512, PhysicalBlockSize: 512, Model: model, Transport: tran, Partitions: parts}
}

// candidate runs the real preflight on a made-up device, as
// Observer.Candidates does on real ones.
func candidate(sys *engine.System, in *blockdev.Info, fs *resize.Probe) engine.Candidate {
	c := engine.Candidate{Path: in.Path, Info: in, FS: fs}
	if _, err := engine.Preflight(sys, engine.Target{Info: in, FS: fs}, engine.Request{Target: in.Path}); err != nil {
		c.Refusal = err.(*engine.Refusal)
	}
	return c
}

func candidates(sys *engine.System) []engine.Candidate {
	sda := disk("sda", 8, 0, 20<<30, "Samsung SSD 860", "sata", "sda1", "sda2")
	sda1 := &blockdev.Info{Path: "/dev/sda1", Name: "sda1", Major: 8, Minor: 1, Disk: "sda", IsPartition: true, SizeBytes: 512 * mib, LogicalBlockSize: 512, Mounts: []string{"/mnt/efi"}}
	sda2 := &blockdev.Info{Path: "/dev/sda2", Name: "sda2", Major: 8, Minor: 2, Disk: "sda", IsPartition: true, SizeBytes: 19 << 30, LogicalBlockSize: 512}
	sda.PartMounts = []string{"sda1 on /mnt/efi"}
	c := candidate(sys, sda, nil)
	c.Children = []engine.Candidate{
		candidate(sys, sda1, &resize.Probe{Type: "ext2", Label: "EFI"}),
		candidate(sys, sda2, &resize.Probe{Type: "ext4", Label: "old"}),
	}
	sr0 := disk("sr0", 11, 0, 300*mib, "QEMU DVD-ROM", "ata")
	sr0.Removable = true
	return []engine.Candidate{
		c,
		candidate(sys, sr0, nil),
		candidate(sys, disk("vda", 254, 0, 1<<30, "", "virtio"), nil),
		candidate(sys, disk("vdb", 254, 16, 100*mib, "", "virtio"), nil),
	}
}

// fakeEngine answers like the engine would on liveSystem, and lets the
// test play the run's events.
type fakeEngine struct {
	sys   *engine.System
	cands []engine.Candidate

	mu        sync.Mutex
	emit      func(engine.Event)
	run       *fakeRun
	started   chan *engine.Plan
	preflight []engine.Request
}

func newFake(sys *engine.System) *fakeEngine {
	f := &fakeEngine{sys: sys, started: make(chan *engine.Plan, 1)}
	if sys.NotLive == "" {
		f.cands = candidates(sys)
	}
	return f
}

func (f *fakeEngine) Observe() (*engine.System, error) { return f.sys, nil }

func (f *fakeEngine) Candidates(*engine.System, engine.Speed) []engine.Candidate { return f.cands }

func (f *fakeEngine) Preflight(sys *engine.System, req engine.Request) (*engine.Plan, error) {
	f.mu.Lock()
	f.preflight = append(f.preflight, req)
	f.mu.Unlock()
	// The engine's Preflight checks the whole request; the hostname's
	// refusal reads as the one for migrate's flag.
	if req.Hostname != "" && !finalize.ValidHostname(req.Hostname) {
		return nil, &engine.Refusal{Code: engine.ExitUsage, Reason: fmt.Sprintf("--hostname %q: use letters, digits and hyphens, at most 63 characters", req.Hostname)}
	}
	for _, c := range f.cands {
		for _, x := range append([]engine.Candidate{c}, c.Children...) {
			if x.Path == req.Target {
				return engine.Preflight(sys, engine.Target{Info: x.Info, FS: x.FS}, req)
			}
		}
	}
	return engine.Preflight(sys, engine.Target{Err: blockdev.ErrNotExist}, req)
}

func (f *fakeEngine) Start(_ engine.Request, plan *engine.Plan, emit func(engine.Event)) (Migration, error) {
	f.mu.Lock()
	f.emit = emit
	f.run = &fakeRun{cancelled: make(chan struct{}), done: make(chan struct{})}
	r := f.run
	f.mu.Unlock()
	f.started <- plan
	return r, nil
}

// send plays one event at t0+at.
func (f *fakeEngine) send(at time.Duration, e engine.Event) {
	e.Time = t0.Add(at)
	f.mu.Lock()
	emit := f.emit
	f.mu.Unlock()
	emit(e)
}

type fakeRun struct {
	mu        sync.Mutex
	speeds    []engine.Speed
	cancelled chan struct{}
	cancelOne sync.Once
	done      chan struct{}
	res       *engine.Result
	err       error
}

func (r *fakeRun) SetSpeed(s engine.Speed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.speeds = append(r.speeds, s)
}

func (r *fakeRun) Speeds() []engine.Speed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Speed(nil), r.speeds...)
}

func (r *fakeRun) Cancel() { r.cancelOne.Do(func() { close(r.cancelled) }) }

func (r *fakeRun) finish(res *engine.Result, err error) {
	r.res, r.err = res, err
	close(r.done)
}

func (r *fakeRun) Wait() (*engine.Result, error) {
	<-r.done
	return r.res, r.err
}

func (r *fakeRun) wasCancelled(t *testing.T) bool {
	t.Helper()
	select {
	case <-r.cancelled:
		return true
	case <-time.After(3 * time.Second):
		return false
	}
}
