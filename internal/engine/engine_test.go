package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/fileroot"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// liveSystem is a live root md127 = [dm-1 live-rw, missing], 1 GiB, booted
// from sr0, with 512 MiB of COW of which 16 MiB are used.
func liveSystem() *System {
	live := mdraid.Member{Name: "dm-1", Major: 253, Minor: 1, Slot: 0, States: []string{"in_sync"}, SizeKiB: GiB / 1024}
	a := &mdraid.Array{Name: "md127", Path: "/dev/md127", Major: 9, Minor: 127, Level: "raid1", Metadata: "none",
		RaidDisks: 2, ArrayState: "clean", ComponentKiB: GiB / 1024, SizeBytes: GiB, Degraded: 1, SyncAction: "idle",
		SpeedMin: mdraid.SpeedLimit{KBs: 1000}, SpeedMax: mdraid.SpeedLimit{KBs: 200000},
		Members: []mdraid.Member{live}}
	st := &overlay.Stack{
		Snapshot: overlay.Dev{Name: "dm-1", Major: 253, Minor: 1}, DMName: "live-rw",
		Origin: overlay.Dev{Name: "loop1", Major: 7, Minor: 1}, OriginLoop: overlay.Dev{Name: "loop1", Major: 7, Minor: 1},
		Siblings: []overlay.Dev{{Name: "dm-0", Major: 253, Minor: 0}}, SiblingNames: []string{"live-base"},
		COW: overlay.Dev{Name: "loop2", Major: 7, Minor: 2}, COWKind: overlay.COWDeletedFile, COWBacking: "/overlay (deleted)",
		SquashfsMount: "/run/initramfs/squashfs", SquashfsLoop: overlay.Dev{Name: "loop0", Major: 7, Minor: 0},
		MediumMount: "/run/initramfs/live", Medium: overlay.Dev{Name: "sr0", Major: 11, Minor: 0},
		MediumDisk: overlay.Dev{Name: "sr0", Major: 11, Minor: 0}, MediumIsCD: true, ChunkSectors: 8,
	}
	return &System{RootMount: "/", RootSource: "/dev/md127", RootFSType: "ext4",
		RootFS: &resize.Probe{Type: "ext4", UUID: "0b4f-test", Size: GiB},
		Array:  a, ArrayLBS: 512, LiveLeg: &a.Members[0], Stack: st,
		COW:      &overlay.Usage{UsedSectors: 16 * MiB / 512, TotalSectors: 512 * MiB / 512},
		MemTotal: 4 * GiB, MemAvail: 3 * GiB, Kernel: "6.12.57+deb13-amd64", Grub: "2.12"}
}

func disk(name string, major, minor uint32, size uint64) *blockdev.Info {
	return &blockdev.Info{Path: "/dev/" + name, Name: name, Disk: name, Major: major, Minor: minor, SizeBytes: size, LogicalBlockSize: 512, PhysicalBlockSize: 512}
}

func TestPreflightRefusals(t *testing.T) {
	notLive := liveSystem()
	notLive.NotLive = "/ is on /dev/vda (ext4), not on an md array"
	lowCOW := liveSystem()
	lowCOW.COW = &overlay.Usage{UsedSectors: 500 * MiB / 512, TotalSectors: 512 * MiB / 512}
	lowRAM := liveSystem()
	lowRAM.MemAvail = 32 * MiB
	invalid := liveSystem()
	invalid.COW = &overlay.Usage{Invalid: true, TotalSectors: 1}
	migrated := liveSystem()
	migrated.Array.Members = []mdraid.Member{{Name: "vdc", Major: 254, Minor: 32, Slot: 1, States: []string{"in_sync"}, SizeKiB: 2 * GiB / 1024}}
	migrated.LiveLeg = nil
	otherTarget := liveSystem()
	otherTarget.Array.Members = append(otherTarget.Array.Members, mdraid.Member{Name: "vdc", Major: 254, Minor: 32, Slot: 1, States: []string{"spare"}, SizeKiB: 2 * GiB / 1024})
	otherTarget.LiveLeg = &otherTarget.Array.Members[0]

	mod := func(f func(*blockdev.Info)) *blockdev.Info {
		d := disk("vdb", 254, 16, 2*GiB)
		f(d)
		return d
	}
	tests := []struct {
		name string
		sys  *System
		tgt  Target
		dev  string
		code int
		want string
	}{
		{"not live", notLive, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitNotLive, "not on an md array"},
		{"empty target", liveSystem(), Target{Err: blockdev.ErrNotExist}, "", ExitUsage, "no target"},
		{"blank target", liveSystem(), Target{Err: blockdev.ErrNotExist}, "  ", ExitUsage, "no target"},
		{"missing", liveSystem(), Target{Err: fmt.Errorf("/dev/nope: %w", blockdev.ErrNotExist)}, "/dev/nope", ExitNoDevice, "no such file or device"},
		{"regular file", liveSystem(), Target{Err: fmt.Errorf("/tmp/x is a regular file: %w", blockdev.ErrNotBlock)}, "/tmp/x", ExitNoDevice, "regular file"},
		{"char device", liveSystem(), Target{Err: fmt.Errorf("/dev/null is a character device: %w", blockdev.ErrNotBlock)}, "/dev/null", ExitNoDevice, "character device"},
		{"the array", liveSystem(), Target{Info: disk("md127", 9, 127, GiB)}, "/dev/md127", ExitLiveStack, "the array / runs on"},
		{"live-rw", liveSystem(), Target{Info: disk("dm-1", 253, 1, GiB)}, "/dev/mapper/live-rw", ExitLiveStack, "live leg"},
		{"live-base", liveSystem(), Target{Info: disk("dm-0", 253, 0, GiB)}, "/dev/mapper/live-base", ExitLiveStack, "part of the live stack"},
		{"origin loop", liveSystem(), Target{Info: disk("loop1", 7, 1, GiB)}, "/dev/loop1", ExitLiveStack, "is the origin of live-rw"},
		{"cow loop", liveSystem(), Target{Info: disk("loop2", 7, 2, 32*GiB)}, "/dev/loop2", ExitLiveStack, "copy-on-write store of live-rw"},
		{"squashfs loop", liveSystem(), Target{Info: disk("loop0", 7, 0, GiB)}, "/dev/loop0", ExitLiveStack, "part of the live stack"},
		{"medium", liveSystem(), Target{Info: disk("sr0", 11, 0, 4*GiB)}, "/dev/sr0", ExitLiveStack, "holds the live medium"},
		{"medium partition", usbSystem(), Target{Info: &blockdev.Info{Path: "/dev/sdb2", Name: "sdb2", Disk: "sdb", IsPartition: true, Major: 8, Minor: 18, SizeBytes: 8 * GiB, LogicalBlockSize: 512}}, "/dev/sdb2", ExitLiveStack, "holds the live medium"},
		{"medium disk", usbSystem(), Target{Info: disk("sdb", 8, 16, 16*GiB)}, "/dev/sdb", ExitLiveStack, "holds the live medium"},
		{"mounted", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.Mounts = []string{"/mnt"} })}, "/dev/vdb", ExitInUse, "mounted on /mnt"},
		{"disk with mounted partition", liveSystem(), Target{Info: mod(func(d *blockdev.Info) {
			d.Partitions = []string{"vdb1"}
			d.PartMounts = []string{"/dev/vdb1 on /media/x"}
		})}, "/dev/vdb", ExitInUse, "/dev/vdb1 on /media/x"},
		{"md member", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.Holders = []string{"md5"} })}, "/dev/vdb", ExitInUse, "mdadm --stop /dev/md5"},
		{"lvm", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.Holders = []string{"dm-7"} })}, "/dev/vdb", ExitInUse, "LVM"},
		{"lvm-named", liveSystem(), Target{Info: mod(func(d *blockdev.Info) {
			d.Holders = []string{"dm-7"}
			d.HolderWhat = map[string]string{"dm-7": blockdev.DMWhat("LVM-abc", "vg0-home")}
		})}, "/dev/vdb", ExitInUse, "held by /dev/dm-7 (LVM logical volume vg0-home); free it first (lvchange -an /dev/mapper/vg0-home)"},
		{"swap", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.Swap = true })}, "/dev/vdb", ExitInUse, "swap"},
		{"read-only", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.ReadOnly = true })}, "/dev/vdb", ExitReadOnly, "read-only"},
		{"4Kn", liveSystem(), Target{Info: mod(func(d *blockdev.Info) { d.LogicalBlockSize = 4096 })}, "/dev/vdb", ExitBlockSize, "device is 4096-byte sectors, array is 512; md cannot add a leg whose logical blocks are larger than the array's; use a disk with 512-byte logical sectors"},
		{"one sector short", liveSystem(), Target{Info: disk("vdb", 254, 16, GiB-512)}, "/dev/vdb", ExitTooSmall, "needs at least"},
		{"cow low", lowCOW, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitCOWHeadroom, "copy-on-write space left"},
		{"ram low", lowRAM, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitCOWHeadroom, "32 MiB"},
		{"cow invalid", invalid, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitCOWHeadroom, "overflowed"},
		{"already migrated", migrated, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitNotLive, "already migrated"},
		{"other target busy", otherTarget, Target{Info: disk("vdb", 254, 16, 2*GiB)}, "/dev/vdb", ExitBusyArray, "already has /dev/vdc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Preflight(tt.sys, tt.tgt, Request{Target: tt.dev})
			if err == nil {
				t.Fatalf("accepted: %s", p.Render())
			}
			if got := ExitCode(err); got != tt.code {
				t.Errorf("exit code %d, want %d (%v)", got, tt.code, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q lacks %q", err, tt.want)
			}
			// No leftover formatting verbs or fmt's complaints.
			for _, bad := range []string{"%!", "%d", "%s", "%v"} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("message %q contains %q", err, bad)
				}
			}
			// Refusals about the target name it first.
			if tt.code >= ExitNoDevice && tt.code <= ExitBlockSize && !strings.HasPrefix(err.Error(), tt.dev+": ") {
				t.Errorf("message %q does not start with the device %q", err, tt.dev)
			}
			var r *Refusal
			if errors.As(err, &r) && r.Hint == "" && tt.code != ExitUsage {
				t.Errorf("refusal without a hint: %v", err)
			}
		})
	}
}

func usbSystem() *System {
	s := liveSystem()
	s.Stack.Medium = overlay.Dev{Name: "sdb1", Major: 8, Minor: 17}
	s.Stack.MediumDisk = overlay.Dev{Name: "sdb", Major: 8, Minor: 16}
	s.Stack.MediumIsCD = false
	return s
}

func kinds(p *Plan) []StepKind {
	var out []StepKind
	for _, s := range p.Steps {
		out = append(out, s.Kind)
	}
	return out
}

func eqKinds(a, b []StepKind) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestPreflightPlans(t *testing.T) {
	full := []StepKind{StepTune, StepHotAdd, StepRecover, StepDropLive, StepGrowArray, StepGrowFS, StepFinalize, StepRestoreSpeed, StepRelease}

	p, err := Preflight(liveSystem(), Target{Info: disk("vdb", 254, 16, 2*GiB), FS: &resize.Probe{Type: "xfs", Label: "old"}}, Request{Target: "/dev/vdb", RawDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	if !eqKinds(kinds(p), full) {
		t.Errorf("fresh plan = %v", kinds(p))
	}
	if p.Speed != SpeedFast || p.CopyBytes != GiB || p.TargetBytes != 2*GiB || p.FSType != "ext4" {
		t.Errorf("plan = %+v", p)
	}
	text := p.Render()
	for _, want := range []string{"/dev/vdb", `xfs filesystem on /dev/vdb (label "old")`, "point of no return", "live-rw", "eject sr0"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered plan lacks %q:\n%s", want, text)
		}
	}
	// Exactly one step is the point of no return, and it removes the live leg.
	n := 0
	for _, s := range p.Steps {
		if s.Irreversible {
			n++
			if s.Kind != StepDropLive {
				t.Errorf("irreversible step %s", s.Kind)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d irreversible steps", n)
	}

	// Exactly the live root's size is enough.
	if _, err := Preflight(liveSystem(), Target{Info: disk("vdb", 254, 16, GiB)}, Request{Target: "/dev/vdb", RawDisk: true}); err != nil {
		t.Errorf("exact size refused: %v", err)
	}
	// A smaller logical block size is fine for md.
	sys := liveSystem()
	sys.ArrayLBS = 4096
	if _, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true}); err != nil {
		t.Errorf("512 target on 4096 array refused: %v", err)
	}

	// Resume: target already rebuilding.
	sys = liveSystem()
	sys.Array.Members = append(sys.Array.Members, mdraid.Member{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"spare"}, SizeKiB: 2 * GiB / 1024})
	sys.Array.SyncAction, sys.Array.SyncCompleted = "recover", &mdraid.Progress{Done: 100, Total: 400}
	sys.LiveLeg = &sys.Array.Members[0]
	in := disk("vdb", 254, 16, 2*GiB)
	in.Holders = []string{"md127"} // its own array holds it: not "in use"
	p, err = Preflight(sys, Target{Info: in}, Request{Target: "/dev/vdb", Speed: SpeedGentle})
	if err != nil {
		t.Fatal(err)
	}
	if !eqKinds(kinds(p), []StepKind{StepTune, StepRecover, StepDropLive, StepGrowArray, StepGrowFS, StepFinalize, StepRestoreSpeed, StepRelease}) || !strings.Contains(p.Resume, "recover 25.0%") {
		t.Errorf("resume plan = %v %q", kinds(p), p.Resume)
	}

	// Resume after the live leg left: only growth and release remain.
	sys = liveSystem()
	sys.Array.Members = []mdraid.Member{{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"in_sync"}, SizeKiB: 2 * GiB / 1024}}
	sys.LiveLeg = nil
	p, err = Preflight(sys, Target{Info: in}, Request{Target: "/dev/vdb", NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if !eqKinds(kinds(p), []StepKind{StepGrowArray, StepGrowFS, StepRelease}) {
		t.Errorf("finish plan = %v", kinds(p))
	}
}

func TestParseSpeed(t *testing.T) {
	if s, err := ParseSpeed("gentle"); err != nil || s != SpeedGentle {
		t.Error(s, err)
	}
	if _, err := ParseSpeed("turbo"); err == nil {
		t.Error("turbo accepted")
	}
}

// fakeKernel simulates md: a hot-added leg is copied step by step on every
// ReadArray, and faults can be injected.
type fakeKernel struct {
	a           *mdraid.Array
	calls       []string
	stepSect    uint64
	failAt      uint64 // fail the target once recovery passes this many sectors
	growFSErr   error
	releaseErr  error
	finalizeErr error
	hotAddAs    mdraid.Member
	onRead      func(n int)
	reads       int
	onGrowFS    func() // runs inside GrowFS (a step in progress)
	growErrs    int    // GrowArray fails this many times first
	failErr     error  // Fail of the live leg (253:1) answers this and changes nothing
	removeErr   error  // Remove answers this and changes nothing
	holds       int    // disk holds Partition handed out
	holdsClosed int
}

func newFake(sys *System) *fakeKernel {
	return &fakeKernel{a: sys.Array, stepSect: GiB / 512 / 4}
}

func (k *fakeKernel) ReadArray(string) (*mdraid.Array, error) {
	k.reads++
	if k.onRead != nil {
		k.onRead(k.reads)
	}
	a := k.a
	for i := range a.Members {
		m := &a.Members[i]
		if m.Rebuilding() && a.SyncAction == "recover" {
			a.SyncCompleted.Done += k.stepSect
			if k.failAt > 0 && a.SyncCompleted.Done >= k.failAt {
				m.States = []string{"faulty"}
				m.Slot = -1
				a.SyncAction, a.SyncCompleted = "idle", nil
				break
			}
			if a.SyncCompleted.Done >= a.SyncCompleted.Total {
				m.States = []string{"in_sync"}
				a.SyncAction, a.SyncCompleted, a.Degraded = "idle", nil, 0
			}
		}
	}
	cp := *a
	cp.Members = append([]mdraid.Member(nil), a.Members...)
	return &cp, nil
}

func (k *fakeKernel) HotAdd(md, dev string, major, minor uint32) error {
	k.calls = append(k.calls, "hot-add "+dev)
	m := mdraid.Member{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"spare"}, SizeKiB: 2 * GiB / 1024}
	if k.hotAddAs.Name != "" {
		m.Name, m.Major, m.Minor = k.hotAddAs.Name, k.hotAddAs.Major, k.hotAddAs.Minor
	}
	k.a.Members = append(k.a.Members, m)
	k.a.SyncAction, k.a.SyncCompleted = "recover", &mdraid.Progress{Total: k.a.SizeBytes / 512}
	return nil
}

func (k *fakeKernel) find(maj, min uint32) int {
	for i, m := range k.a.Members {
		if m.Major == maj && m.Minor == min {
			return i
		}
	}
	return -1
}

func (k *fakeKernel) Fail(md string, maj, min uint32) error {
	k.calls = append(k.calls, fmt.Sprintf("fail %d:%d", maj, min))
	if k.failErr != nil && maj == 253 && min == 1 {
		return k.failErr
	}
	i := k.find(maj, min)
	if i < 0 {
		return errors.New("no such member")
	}
	k.a.Members[i].States = []string{"faulty"}
	if k.a.SyncAction == "recover" {
		k.a.SyncAction, k.a.SyncCompleted = "idle", nil
	}
	return nil
}

func (k *fakeKernel) Remove(md string, maj, min uint32) error {
	k.calls = append(k.calls, fmt.Sprintf("remove %d:%d", maj, min))
	if k.removeErr != nil {
		return k.removeErr
	}
	i := k.find(maj, min)
	if i < 0 || !k.a.Members[i].Faulty() {
		return errors.New("busy")
	}
	k.a.Members = append(k.a.Members[:i], k.a.Members[i+1:]...)
	return nil
}

func (k *fakeKernel) RemoveByName(md, name string) error {
	k.calls = append(k.calls, "remove-by-name "+name)
	for i, m := range k.a.Members {
		if m.Name == name {
			k.a.Members = append(k.a.Members[:i], k.a.Members[i+1:]...)
			break
		}
	}
	return nil
}

func (k *fakeKernel) SetSpeed(md, file string, l mdraid.SpeedLimit) error {
	k.calls = append(k.calls, fmt.Sprintf("speed %s=%d/%v", file, l.KBs, l.Local))
	return nil
}

func (k *fakeKernel) GrowArray(md string) (uint64, error) {
	k.calls = append(k.calls, "grow-array")
	if k.growErrs > 0 {
		k.growErrs--
		return 0, errors.New("read md state of md127: read /sys/block/md127/md/dev-dm-0/state: no such device")
	}
	n, err := mdraid.MaxComponentKiB(k.a)
	k.a.ComponentKiB, k.a.SizeBytes = n, n*1024
	return n, err
}

func (k *fakeKernel) GrowFS(mp, dev string) (resize.Result, error) {
	k.calls = append(k.calls, "grow-fs "+dev)
	if k.onGrowFS != nil {
		k.onGrowFS()
	}
	if k.growFSErr != nil {
		return resize.Result{}, k.growFSErr
	}
	size := uint64(2 * GiB) // the mirror tests' target
	if k.a != nil {
		size = k.a.SizeBytes
	}
	return resize.Result{Type: "ext4", OldSize: GiB, NewSize: size}, nil
}

func (k *fakeKernel) COWUsage(*overlay.Stack) (overlay.Usage, error) {
	return overlay.Usage{UsedSectors: 32 * MiB / 512, TotalSectors: 512 * MiB / 512}, nil
}

func (k *fakeKernel) Finalize(spec *FinalizeSpec, emit func(finalize.Result, bool)) ([]finalize.Result, error) {
	k.calls = append(k.calls, "finalize "+spec.Disk+" "+spec.RootDev+" "+spec.FSUUID)
	return []finalize.Result{{Name: "fstab"}}, k.finalizeErr
}

func (k *fakeKernel) Partition(disk string, l *partition.Layout, root string) (Partitioned, error) {
	k.calls = append(k.calls, fmt.Sprintf("partition %s %d parts, root %s", disk, len(l.Parts), root))
	k.hotAddAs = mdraid.Member{Name: "vdb3", Major: 254, Minor: 19}
	k.holds++
	return Partitioned{Major: 254, Minor: 19, Name: "vdb3", Hold: closer(func() { k.holdsClosed++ })}, nil
}

type closer func()

func (c closer) Close() error { c(); return nil }

// The md tests' kernel has no mirror: the mirror tests (mirror_test.go)
// pair it with a fakeMirror.
func (k *fakeKernel) InsertMirror(string, string, uint32, uint32) (overlay.Dev, error) {
	return overlay.Dev{}, errors.New("no mirror")
}
func (k *fakeKernel) MirrorStatus(string) (dmmirror.Status, uint64, error) {
	return dmmirror.Status{}, 0, errors.New("no mirror")
}
func (k *fakeKernel) SwitchMirror(string, string) error { return errors.New("no mirror") }
func (k *fakeKernel) AbortMirror(string) error          { return errors.New("no mirror") }
func (k *fakeKernel) SetMirrorThrottle(int) error       { return errors.New("no mirror") }

// The md tests' kernel copies no files: the copy tests (copy_test.go)
// pair it with a fakeCopy.
func (k *fakeKernel) MakeFS(string, string, string) error      { return errors.New("no copy") }
func (k *fakeKernel) MountTarget(string, string, string) error { return errors.New("no copy") }
func (k *fakeKernel) UnmountTarget(string) error               { return errors.New("no copy") }
func (k *fakeKernel) CopyFiles(context.Context, *CopySpec, func(uint64)) (CopyReport, error) {
	return CopyReport{}, errors.New("no copy")
}
func (k *fakeKernel) PrepareSwitch(*Plan) error { return errors.New("no copy") }
func (k *fakeKernel) StartSwitch(*Plan) error   { return errors.New("no copy") }
func (k *fakeKernel) ReleaseFileRoot(*fileroot.Root, bool) (FileRelease, error) {
	return FileRelease{}, errors.New("no copy")
}

func (k *fakeKernel) ReleaseStack(*overlay.Stack, *overlay.Usage) (overlay.ReleaseReport, error) {
	k.calls = append(k.calls, "release")
	return overlay.ReleaseReport{COWBytesFreed: 32 * MiB, Ejected: true}, k.releaseErr
}

func runner(k *fakeKernel, sys *System, evs *[]Event) *Runner {
	clock := time.Unix(0, 0)
	return &Runner{
		K: k, Stack: sys.Stack, MountPoint: "/",
		Emit:  func(e Event) { *evs = append(*evs, e) },
		Now:   func() time.Time { return clock },
		Sleep: func(ctx context.Context, d time.Duration) { clock = clock.Add(d) },
	}
}

func plan(t *testing.T, sys *System) *Plan {
	t.Helper()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunHappyPath(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	var evs []Event
	p := plan(t, sys)
	res, err := runner(k, sys, &evs).Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"speed sync_speed_min=2000000/true", "speed sync_speed_max=2000000/true",
		"hot-add /dev/vdb", "fail 253:1", "remove 253:1", "grow-array", "grow-fs /dev/md127",
		"finalize /dev/vdb /dev/vdb 0b4f-test", "speed sync_speed_min=1000/false", "speed sync_speed_max=200000/false", "release",
	}
	if fmt.Sprint(k.calls) != fmt.Sprint(want) {
		t.Errorf("calls:\n got %q\nwant %q", k.calls, want)
	}
	// The fake copies a quarter per sample; near the end it is sampled
	// ten times as often, so the copy ends before the 3 s a fixed poll
	// would have measured.
	if res.RecoveredBytes != GiB || res.RecoverySeconds <= 0 || res.RecoverySeconds >= 3 || res.ArrayBytes != 2*GiB || res.FS.NewSize != 2*GiB || res.COWPeakBytes != 32*MiB {
		t.Errorf("result = %+v", res)
	}
	var progress []float64
	for _, e := range evs {
		if e.Type == EvProgress {
			progress = append(progress, e.Progress.Percent)
		}
	}
	if fmt.Sprint(progress) != "[25 50 75 100]" {
		t.Errorf("progress = %v", progress)
	}
}

func TestRunInterruptDuringRecovery(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	ctx, cancel := context.WithCancel(context.Background())
	k.onRead = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	var evs []Event
	_, err := runner(k, sys, &evs).Run(ctx, plan(t, sys))
	if ExitCode(err) != ExitInterrupted || !strings.Contains(err.Error(), "live session intact") {
		t.Fatalf("err = %v (code %d)", err, ExitCode(err))
	}
	if len(k.a.Members) != 1 || k.a.Members[0].Name != "dm-1" || !k.a.Members[0].InSync() {
		t.Errorf("array after abort: %+v", k.a.Members)
	}
	last := k.calls[len(k.calls)-4:]
	if fmt.Sprint(last) != fmt.Sprint([]string{"fail 254:16", "remove 254:16", "speed sync_speed_min=1000/false", "speed sync_speed_max=200000/false"}) {
		t.Errorf("undo calls = %q", k.calls)
	}
	for _, c := range k.calls {
		if c == "fail 253:1" || c == "release" {
			t.Errorf("touched the live leg or stack after interrupt: %q", k.calls)
		}
	}
}

func TestRunInterruptBeforeStart(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var evs []Event
	_, err := runner(k, sys, &evs).Run(ctx, plan(t, sys))
	if ExitCode(err) != ExitInterrupted {
		t.Fatalf("err = %v", err)
	}
	for _, c := range k.calls {
		if strings.HasPrefix(c, "hot-add") {
			t.Errorf("hot-added after an interrupt: %q", k.calls)
		}
	}
}

func TestRunTargetFailsDuringRecovery(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.failAt = GiB / 512 / 2
	var evs []Event
	_, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitAborted || !strings.Contains(err.Error(), "md failed /dev/vdb") || !strings.Contains(err.Error(), "live session intact") {
		t.Fatalf("err = %v (code %d)", err, ExitCode(err))
	}
	if len(k.a.Members) != 1 || k.a.Members[0].Name != "dm-1" {
		t.Errorf("array after failure: %+v", k.a.Members)
	}
}

func TestRunInterruptAfterNoReturnFinishes(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	ctx, cancel := context.WithCancel(context.Background())
	var evs []Event
	r := runner(k, sys, &evs)
	r.Emit = func(e Event) {
		evs = append(evs, e)
		if e.Type == EvStepDone && e.Step == StepDropLive {
			cancel()
		}
	}
	if _, err := r.Run(ctx, plan(t, sys)); err != nil {
		t.Fatalf("run after no-return interrupt: %v", err)
	}
	if k.calls[len(k.calls)-1] != "release" {
		t.Errorf("did not finish: %q", k.calls)
	}
	warned := false
	for _, e := range evs {
		if e.Type == EvWarning && strings.Contains(e.Message, "point of no return") {
			warned = true
		}
	}
	if !warned {
		t.Error("no warning about the ignored interrupt")
	}
}

func TestRunGrowFSFailureStillReleases(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.growFSErr = errors.New("EXT4_IOC_RESIZE_FS: no space")
	var evs []Event
	res, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitGrowFailed || !strings.Contains(err.Error(), "migrated") {
		t.Fatalf("err = %v", err)
	}
	if res.Release == nil || k.calls[len(k.calls)-1] != "release" {
		t.Errorf("live stack not released after grow failure: %q", k.calls)
	}
}

func TestRunReleaseFailure(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.releaseErr = errors.New("unmount /run/initramfs/live: device busy")
	var evs []Event
	_, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitReleaseFailed || !strings.Contains(err.Error(), "livemigrate release") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunResumeFromSynced(t *testing.T) {
	sys := liveSystem()
	sys.Array.Members = append(sys.Array.Members, mdraid.Member{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"in_sync"}, SizeKiB: 2 * GiB / 1024})
	sys.LiveLeg = &sys.Array.Members[0]
	k := newFake(sys)
	in := disk("vdb", 254, 16, 2*GiB)
	p, err := Preflight(sys, Target{Info: in}, Request{Target: "/dev/vdb", RawDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	if _, err := runner(k, sys, &evs).Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	for _, c := range k.calls {
		if strings.HasPrefix(c, "hot-add") {
			t.Errorf("hot-added again on resume: %q", k.calls)
		}
	}
}

func TestStackFileRoundTrip(t *testing.T) {
	path := t.TempDir() + "/sub/stack.json"
	if s, err := LoadStack(path); s != nil || err != nil {
		t.Fatalf("missing file: %v %v", s, err)
	}
	want := liveSystem().Stack
	if err := SaveStack(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadStack(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestRunSpeedToggle(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	var evs []Event
	r := runner(k, sys, &evs)
	r.Emit = func(e Event) {
		evs = append(evs, e)
		if e.Type == EvProgress && e.Progress.Percent == 25 {
			r.SetSpeed(SpeedGentle)
		}
	}
	if _, err := r.Run(context.Background(), plan(t, sys)); err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(k.calls, "|")
	// fast at the start, md's own limits when toggled to gentle, and the
	// originals restored at the end.
	if !strings.Contains(calls, "hot-add /dev/vdb|speed sync_speed_min=1000/false|speed sync_speed_max=200000/false|fail 253:1") {
		t.Errorf("calls = %q", k.calls)
	}
}

func TestCandidatesSkipsVirtualDevices(t *testing.T) {
	for name, skip := range map[string]bool{"loop0": true, "dm-1": true, "md127": true, "zram0": true, "sda": false, "vdb": false, "nvme0n1": false, "sr0": false} {
		if skipDisk(name) != skip {
			t.Errorf("skipDisk(%s) = %v", name, !skip)
		}
	}
}

func TestRunFinalizeFailure(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.finalizeErr = errors.New("bootloader: grub-install is missing")
	var evs []Event
	res, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitFinalizeFailed || !strings.Contains(err.Error(), "migrated") {
		t.Fatalf("err = %v", err)
	}
	// The live stack is still released: RAM is not held hostage by a
	// missing boot loader.
	_ = res
	if k.calls[len(k.calls)-1] != "release" {
		t.Errorf("calls = %q", k.calls)
	}
}

func TestWholeDiskMode(t *testing.T) {
	sys := liveSystem()
	in := disk("vdb", 254, 16, 4*GiB)
	p, err := Preflight(sys, Target{Info: in}, Request{Target: "/dev/vdb", Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	if !eqKinds(kinds(p), []StepKind{StepTune, StepPartition, StepHotAdd, StepRecover, StepDropLive, StepGrowArray, StepGrowFS, StepFinalize, StepRestoreSpeed, StepRelease}) {
		t.Errorf("plan = %v", kinds(p))
	}
	if p.Given != "/dev/vdb" || p.Target != "/dev/vdb3" || p.Disk != "/dev/vdb" || p.Layout == nil || len(p.Layout.Parts) != 3 {
		t.Errorf("plan = %+v", p)
	}
	if f := p.Finalize; f == nil || f.Disk != "/dev/vdb" || f.RootDev != "/dev/vdb3" || f.ESP != "/dev/vdb2" || f.Hostname != "box" {
		t.Errorf("finalize = %+v", p.Finalize)
	}
	text := p.Render()
	for _, want := range []string{"whole disk /dev/vdb", "New partitions on /dev/vdb:", "/dev/vdb2", "EFI", "Partition /dev/vdb (GPT)", "hostname box", "the live user locked until you set a password"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan text lacks %q:\n%s", want, text)
		}
	}
	// A chosen password is announced, never shown.
	pw, err := Preflight(sys, Target{Info: in}, Request{Target: "/dev/vdb", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if text := pw.Render(); !strings.Contains(text, "the live user's password you chose") || strings.Contains(text, "s3cret-pw") {
		t.Errorf("plan with a password:\n%s", text)
	}
	k := newFake(sys)
	var evs []Event
	if _, err := runner(k, sys, &evs).Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(k.calls, "|")
	for _, want := range []string{"partition /dev/vdb 3 parts, root /dev/vdb3|hot-add /dev/vdb3", "finalize /dev/vdb /dev/vdb3"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q: %q", want, k.calls)
		}
	}

	// Run again after a kill: vdb3 is in the array, the user names the disk.
	table := *p.Layout
	sys = liveSystem()
	sys.Array.Members = append(sys.Array.Members, mdraid.Member{Name: "vdb3", Major: 254, Minor: 19, Slot: 1, States: []string{"spare"}, SizeKiB: 3 * GiB / 1024})
	sys.LiveLeg = &sys.Array.Members[0]
	in = disk("vdb", 254, 16, 4*GiB)
	in.Partitions = []string{"vdb1", "vdb2", "vdb3"}
	in.PartHolders = []string{"vdb3 held by md127"}
	p, err = Preflight(sys, Target{Info: in, Table: &table}, Request{Target: "/dev/vdb"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Target != "/dev/vdb3" || p.Layout != nil || p.Finalize.ESP != "/dev/vdb2" || p.Finalize.Disk != "/dev/vdb" || p.Resume == "" {
		t.Errorf("resumed plan = %+v %+v", p, p.Finalize)
	}

	// Too small for the boot partitions plus the root.
	_, err = Preflight(liveSystem(), Target{Info: disk("vdb", 254, 16, GiB+1<<20)}, Request{Target: "/dev/vdb"})
	if ExitCode(err) != ExitTooSmall || !strings.Contains(err.Error(), "/dev/vdb: is too small for a whole-disk install: it is 1.0 GiB") {
		t.Errorf("tight disk: %v", err)
	}
}

func TestResumeRestoresSystemSpeed(t *testing.T) {
	sys := liveSystem()
	// A killed fast run left its own limits behind.
	sys.Array.SpeedMin = mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}
	sys.Array.SpeedMax = mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}
	p := plan(t, sys)
	if p.SpeedMin.Local || p.SpeedMax.Local {
		t.Errorf("limits to restore = %+v %+v, want the system defaults", p.SpeedMin, p.SpeedMax)
	}
}

func TestRunTargetGone(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.onRead = func(n int) {
		if n == 3 { // the disk is unplugged: md keeps a faulty member without a device
			for i := range k.a.Members {
				if k.a.Members[i].Name == "vdb" {
					k.a.Members[i] = mdraid.Member{Name: "vdb", Slot: -1, States: []string{"faulty", "write_error"}, Gone: true}
					k.a.SyncAction, k.a.SyncCompleted = "idle", nil
				}
			}
		}
	}
	var evs []Event
	p := plan(t, sys)
	p.TargetName = "vdb"
	_, err := runner(k, sys, &evs).Run(context.Background(), p)
	if ExitCode(err) != ExitAborted || !strings.Contains(err.Error(), "disappeared") || !strings.Contains(err.Error(), "live session intact;") {
		t.Fatalf("err = %v", err)
	}
	if len(k.a.Members) != 1 || k.a.Members[0].Name != "dm-1" {
		t.Errorf("members = %+v (calls %q)", k.a.Members, k.calls)
	}
}

func TestLateInterruptIsNoted(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	ctx, cancel := context.WithCancel(context.Background())
	var evs []Event
	r := runner(k, sys, &evs)
	r.Emit = func(e Event) {
		evs = append(evs, e)
		if e.Type == EvStepStart && e.Step == StepRelease {
			cancel()
		}
	}
	if _, err := r.Run(ctx, plan(t, sys)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == EvWarning && strings.Contains(e.Message, "point of no return") {
			n++
		}
	}
	if n != 1 || evs[len(evs)-1].Type == EvError {
		t.Errorf("%d late-interrupt warnings, last event %+v", n, evs[len(evs)-1])
	}
}

// An interrupt in the middle of a long step is reported while that step
// still runs, not when it ends: GrowFS here waits for the warning.
func TestLateInterruptReportedAtOnce(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	ctx, cancel := context.WithCancel(context.Background())
	warned := make(chan struct{})
	var mu sync.Mutex
	var evs []Event
	r := runner(k, sys, &evs)
	r.Emit = func(e Event) {
		mu.Lock()
		evs = append(evs, e)
		mu.Unlock()
		if e.Type == EvWarning && strings.Contains(e.Message, "point of no return") {
			close(warned)
		}
	}
	k.onGrowFS = func() {
		cancel()
		select {
		case <-warned:
		case <-time.After(10 * time.Second):
			t.Error("no warning while the step was still running")
		}
	}
	if _, err := r.Run(ctx, plan(t, sys)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, e := range evs {
		if e.Type == EvWarning {
			if e.Step != StepGrowFS || i == len(evs)-1 {
				t.Errorf("warning %+v at %d of %d", e, i, len(evs))
			}
		}
	}
}

// Past the point of no return a transient kernel answer is retried, not
// the end of the run (issue 10, item 2).
func TestRunRetriesAfterNoReturn(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.growErrs = 2
	var evs []Event
	if _, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys)); err != nil {
		t.Fatalf("run with a transient grow failure: %v", err)
	}
	if n := strings.Count(strings.Join(k.calls, "\n"), "grow-array"); n != 3 {
		t.Errorf("grow-array tried %d times, want 3: %q", n, k.calls)
	}
	retries := 0
	for _, e := range evs {
		if e.Type == EvWarning && strings.Contains(e.Message, "retrying") {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d retry warnings, want 2", retries)
	}
}

// A failed grow does not skip finalize: every later step runs, and the
// error lists what is left (item 4).
func TestRunGrowFailureRunsLaterSteps(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.growFSErr = errors.New("EXT4_IOC_RESIZE_FS: no space")
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true, Hostname: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	_, err = runner(k, sys, &evs).Run(context.Background(), p)
	var re *RunError
	if !errors.As(err, &re) || re.Code != ExitGrowFailed {
		t.Fatalf("err = %v", err)
	}
	calls := strings.Join(k.calls, "\n")
	for _, want := range []string{"finalize", "speed sync_speed_min=1000/false", "release"} {
		if !strings.Contains(calls, want) {
			t.Errorf("%s did not run after the failed grow: %q", want, k.calls)
		}
	}
	if len(re.Left) != 1 || re.Left[0] != StepGrowFS || !strings.Contains(re.State, "grow-filesystem") || !strings.Contains(re.State, "same migrate command") {
		t.Errorf("left %v, state %q", re.Left, re.State)
	}
}

// A refused fail of the live leg changed nothing: that is an abort with
// the true state and md's limits restored, not "migrated" (item 3).
func TestRunRefusedLiveFailAborts(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.failErr = fmt.Errorf("fail dm-0 (253:0) in md127: %w", mdraid.ErrLastInSync)
	var evs []Event
	_, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitAborted || strings.Contains(err.Error(), "migrated") || !strings.Contains(err.Error(), "live session intact") {
		t.Fatalf("err = %v", err)
	}
	calls := strings.Join(k.calls, "\n")
	if !strings.Contains(calls, "speed sync_speed_min=1000/false") {
		t.Errorf("limits not restored: %q", k.calls)
	}
	if strings.Contains(calls, "grow-array") {
		t.Errorf("grew after a refused fail: %q", k.calls)
	}
}

// The kernel itself refusing to fail the live leg (the target failed after
// the last-leg check): md has marked the array broken, so the run must not
// say the session is intact; it says writes fail and to save and reboot.
func TestRunKernelRefusedLiveFailSaysBroken(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.failErr = errors.New("SET_DISK_FAULTY: device or resource busy")
	var evs []Event
	_, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	if ExitCode(err) != ExitArrayBroken || strings.Contains(err.Error(), "intact") || !strings.Contains(err.Error(), "fails every write") || !strings.Contains(err.Error(), "reboot") {
		t.Fatalf("err = %v", err)
	}
	calls := strings.Join(k.calls, "\n")
	if !strings.Contains(calls, "speed sync_speed_min=1000/false") || strings.Contains(calls, "grow-array") {
		t.Errorf("calls = %q", k.calls)
	}
}

// A failed leg that md will not remove: / lives on the target, the other
// steps run, the release is listed as not run, and the code says which.
func TestRunLiveLegStuck(t *testing.T) {
	sys := liveSystem()
	k := newFake(sys)
	k.removeErr = errors.New("HOT_REMOVE_DISK: device or resource busy")
	var evs []Event
	_, err := runner(k, sys, &evs).Run(context.Background(), plan(t, sys))
	var re *RunError
	if !errors.As(err, &re) || re.Code != ExitLiveLegStuck {
		t.Fatalf("err = %v", err)
	}
	calls := strings.Join(k.calls, "\n")
	if !strings.Contains(calls, "grow-fs") || strings.Contains(calls, "release") {
		t.Errorf("calls = %q", k.calls)
	}
	if len(re.Left) != 2 || re.Left[1] != StepRelease {
		t.Errorf("left = %v", re.Left)
	}
}

// A crash between failing the live leg and removing it: the rerun finds the
// target in sync and the live leg failed, and finishes (item 3).
func TestRunResumeFromFailedLiveLeg(t *testing.T) {
	sys := liveSystem()
	sys.Array.Members[0].States = []string{"faulty"}
	sys.Array.Members[0].Slot = -1
	sys.Array.Members = append(sys.Array.Members, mdraid.Member{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"in_sync"}, SizeKiB: 2 * GiB / 1024})
	sys.LiveLeg = &sys.Array.Members[0]
	k := newFake(sys)
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", RawDisk: true})
	if err != nil {
		t.Fatalf("preflight of the rerun: %v", err)
	}
	var evs []Event
	if _, err := runner(k, sys, &evs).Run(context.Background(), p); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	calls := strings.Join(k.calls, "\n")
	if strings.Contains(calls, "fail ") || !strings.Contains(calls, "remove 253:1") || !strings.Contains(calls, "release") {
		t.Errorf("calls = %q", k.calls)
	}
}

// A continued run keeps the mode of the run it continues, read from the
// disk, whatever the user names now (issue 10, item 1: naming the disk of
// a partition install made the rerun format partition 2 as an ESP).
func TestContinuationKeepsMode(t *testing.T) {
	member := mdraid.Member{Name: "vdb3", Major: 254, Minor: 19, Slot: 1, States: []string{"spare"}, SizeKiB: 3 * GiB / 1024}
	running := func() *System {
		sys := liveSystem()
		sys.Array.Members = append(sys.Array.Members, member)
		sys.LiveLeg = &sys.Array.Members[0]
		sys.Array.SyncAction, sys.Array.SyncCompleted = "recover", &mdraid.Progress{Done: 100, Total: GiB / 512}
		return sys
	}
	whole := disk("vdb", 254, 16, 8*GiB)
	whole.Partitions = []string{"vdb1", "vdb2", "vdb3"}
	whole.PartHolders = []string{"vdb3 held by md127"}
	part := &blockdev.Info{Path: "/dev/vdb3", Name: "vdb3", Disk: "vdb", IsPartition: true, Major: 254, Minor: 19, SizeBytes: 3 * GiB, LogicalBlockSize: 512, Holders: []string{"md127"}}

	// The user's own GPT: two data partitions and the target as the third.
	own := partition.Layout{SectorSize: 512, DiskSectors: 8 * GiB / 512, Parts: []partition.Part{
		{Number: 1, Name: "data", Type: partition.TypeLinuxData, Start: 2048, Sectors: 2 * GiB / 512},
		{Number: 2, Name: "more", Type: partition.TypeLinuxData, Start: 2048 + 2*GiB/512, Sectors: 2 * GiB / 512},
		{Number: 3, Name: "root", Type: partition.TypeLinuxData, Start: 2048 + 4*GiB/512, Sectors: 3 * GiB / 512},
	}}
	_, err := Preflight(running(), Target{Info: whole, Table: &own}, Request{Target: "/dev/vdb"})
	if ExitCode(err) != ExitBusyArray || !strings.Contains(err.Error(), "/dev/vdb3") || !strings.Contains(err.Error(), "--target /dev/vdb3") {
		t.Errorf("the disk of a partition install: %v", err)
	}
	// No table that can be read is not a whole-disk install either.
	if _, err := Preflight(running(), Target{Info: whole}, Request{Target: "/dev/vdb"}); ExitCode(err) != ExitBusyArray {
		t.Errorf("the disk without a readable table: %v", err)
	}
	p, err := Preflight(running(), Target{Info: part, Table: &own}, Request{Target: "/dev/vdb3", NoFinalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Layout != nil || p.Disk != "" || p.Finalize != nil || p.Resume == "" || len(p.Destroys) != 0 || len(p.Outside) != 0 {
		t.Errorf("partition install continued: %+v", p)
	}
	// With finalize, that disk (GPT, no BIOS boot partition) cannot boot
	// the partition: refused before anything, not failed after.
	if _, err := Preflight(running(), Target{Info: part, Table: &own}, Request{Target: "/dev/vdb3"}); ExitCode(err) != ExitNoBootPath {
		t.Errorf("partition install with finalize on a GPT without BIOS boot: %v", err)
	}

	// A whole-disk install named by its root partition stays whole-disk.
	inst, err := partition.PlanInstall(8*GiB, 512, GiB, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	p, err = Preflight(running(), Target{Info: part, Table: &inst}, Request{Target: "/dev/vdb3"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Layout != nil || p.Finalize.Disk != "/dev/vdb" || p.Finalize.ESP != "/dev/vdb2" || p.Resume == "" {
		t.Errorf("whole-disk install continued by its partition: %+v %+v", p, p.Finalize)
	}
}

// A partition install lists what it writes outside the partition, and is
// refused where it could not boot on this machine's firmware (item 9).
func TestPartitionInstallBoot(t *testing.T) {
	part := &blockdev.Info{Path: "/dev/vdb2", Name: "vdb2", Disk: "vdb", IsPartition: true, Major: 254, Minor: 18, SizeBytes: 3 * GiB, LogicalBlockSize: 512}
	// MBR (no GPT): boot code in the MBR, core image after it.
	p, err := Preflight(liveSystem(), Target{Info: part}, Request{Target: "/dev/vdb2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Outside) != 2 || !strings.Contains(p.Outside[0], "MBR of /dev/vdb") || !strings.Contains(p.Outside[1], "gap between the MBR") {
		t.Errorf("outside writes on MBR: %q", p.Outside)
	}
	if text := p.Render(); !strings.Contains(text, "Also writes, outside /dev/vdb2:") {
		t.Errorf("plan text does not list the writes outside the partition:\n%s", text)
	}
	// GPT with a BIOS boot partition: that partition is named.
	gpt := partition.Layout{SectorSize: 512, DiskSectors: 8 * GiB / 512, Parts: []partition.Part{
		{Number: 1, Type: partition.TypeBIOSBoot, Start: 2048, Sectors: 2048},
		{Number: 2, Type: partition.TypeLinuxData, Start: 4096, Sectors: 3 * GiB / 512},
	}}
	p, err = Preflight(liveSystem(), Target{Info: part, Table: &gpt}, Request{Target: "/dev/vdb2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Outside) != 2 || !strings.Contains(p.Outside[1], "BIOS boot partition /dev/vdb1") {
		t.Errorf("outside writes on GPT: %q", p.Outside)
	}
	// Started by UEFI: refused, with what to do instead.
	uefi := liveSystem()
	uefi.UEFI = true
	_, err = Preflight(uefi, Target{Info: part, Table: &gpt}, Request{Target: "/dev/vdb2"})
	if ExitCode(err) != ExitNoBootPath || !strings.Contains(err.Error(), "UEFI") || !strings.Contains(err.Error(), "--target /dev/vdb") {
		t.Errorf("partition install on UEFI: %v", err)
	}
	// --no-finalize writes nothing outside and needs no boot path.
	if p, err := Preflight(uefi, Target{Info: part, Table: &gpt}, Request{Target: "/dev/vdb2", NoFinalize: true}); err != nil || len(p.Outside) != 0 {
		t.Errorf("--no-finalize on UEFI: %v %v", err, p)
	}
	// A whole disk on UEFI gets its own ESP.
	if _, err := Preflight(uefi, Target{Info: disk("vdc", 254, 32, 8*GiB)}, Request{Target: "/dev/vdc"}); err != nil {
		t.Errorf("whole disk on UEFI: %v", err)
	}
}

// The plan is a value: running it changes nothing in it, so the same plan
// run twice against the same kind of system does the same things. The
// partition the partition step made reaches the hot-add as a result of
// that step, and the disk hold it took is let go once the hot-add is done.
func TestPlanIsNotChangedByRun(t *testing.T) {
	sys := liveSystem()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, Request{Target: "/dev/vdb", Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	frozen := *p
	frozen.Steps = slices.Clone(p.Steps)
	var calls [2][]string
	var results [2]*Result
	for i := range 2 {
		sys := liveSystem()
		k := newFake(sys)
		var evs []Event
		res, err := runner(k, sys, &evs).Run(context.Background(), p)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if k.holds != 1 || k.holdsClosed != 1 {
			t.Errorf("run %d: %d disk holds taken, %d let go", i+1, k.holds, k.holdsClosed)
		}
		calls[i], results[i] = k.calls, res
	}
	after, _ := json.Marshal(p)
	if !reflect.DeepEqual(frozen, *p) || string(before) != string(after) {
		t.Errorf("the run changed the plan:\nbefore %s\nafter  %s", before, after)
	}
	if !slices.Equal(calls[0], calls[1]) {
		t.Errorf("the second run did other things:\n%q\n%q", calls[0], calls[1])
	}
	if !reflect.DeepEqual(results[0], results[1]) {
		t.Errorf("results differ:\n%+v\n%+v", results[0], results[1])
	}
	if !strings.Contains(strings.Join(calls[0], "|"), "partition /dev/vdb 3 parts, root /dev/vdb3|hot-add /dev/vdb3") {
		t.Errorf("calls = %q", calls[0])
	}
}

// Preflight checks the whole request, so every face refuses alike and a
// face that skips a check cannot get past the point of no return with a
// hostname finalize would refuse.
func TestPreflightRefusesBadRequest(t *testing.T) {
	notLive := liveSystem()
	notLive.NotLive = "/ is on /dev/vda (ext4), not on an md array"
	tgt := Target{Info: disk("vdb", 254, 16, 2*GiB)}
	tests := []struct {
		name string
		sys  *System
		req  Request
		want string
	}{
		{"speed", liveSystem(), Request{Target: "/dev/vdb", Speed: "turbo"}, `speed "turbo": want fast or gentle`},
		{"empty password file", liveSystem(), Request{Target: "/dev/vdb", PasswordFrom: "--password-file /tmp/pw"}, "--password-file /tmp/pw is empty"},
		{"hostname", liveSystem(), Request{Target: "/dev/vdb", Hostname: "bad_name"}, `--hostname "bad_name": use letters, digits and hyphens, at most 63 characters`},
		{"hostname too long", liveSystem(), Request{Target: "/dev/vdb", Hostname: strings.Repeat("a", 64)}, "at most 63 characters"},
		// The request is refused before the system is looked at.
		{"hostname, not live", notLive, Request{Target: "/dev/vdb", Hostname: "-x"}, `--hostname "-x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Preflight(tt.sys, tgt, tt.req)
			if err == nil {
				t.Fatalf("accepted: %s", p.Render())
			}
			if ExitCode(err) != ExitUsage || err.Error() != tt.want && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (exit %d), want %q (exit %d)", err, ExitCode(err), tt.want, ExitUsage)
			}
		})
	}
	if p, err := Preflight(liveSystem(), tgt, Request{Target: "/dev/vdb", Hostname: "box", Password: "pw", PasswordFrom: "--password-file /tmp/pw", Speed: SpeedGentle}); err != nil || p.Method != "md-hook" {
		t.Errorf("a good request: %v, %+v", err, p)
	}
}

// A rerun that starts past the point of no return (the live leg already
// gone; the mirror already switched), interrupted as it starts: the
// interrupt is noted and the run finishes. It must never take the target
// out, nor say the live session is intact.
func TestRunRerunPastNoReturnInterruptedFinishes(t *testing.T) {
	check := func(name string, err error, evs []Event, calls []string) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		warned := false
		for _, e := range evs {
			if e.Type == EvWarning && strings.Contains(e.Message, "after the point of no return") {
				warned = true
			}
			if e.Type == EvWarning && strings.Contains(e.Message, "stopping") {
				t.Errorf("%s: an abort after the point of no return: %s", name, e.Message)
			}
		}
		if !warned {
			t.Errorf("%s: no warning about the noted interrupt", name)
		}
		if len(calls) == 0 || calls[len(calls)-1] != "release" {
			t.Errorf("%s: did not finish: %q", name, calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	sys := liveSystem()
	sys.Array.Members = []mdraid.Member{{Name: "vdb", Major: 254, Minor: 16, Slot: 1, States: []string{"in_sync"}, SizeKiB: 2 * GiB / 1024}}
	sys.LiveLeg = nil
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", NoFinalize: true, RawDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	k := newFake(sys)
	var evs []Event
	_, err = runner(k, sys, &evs).Run(ctx, p)
	check("md", err, evs, k.calls)

	msys := mirrorSystem()
	msys.RootFS = &resize.Probe{Type: "ext4", UUID: "u", Size: GiB}
	msys.Mirror.State = MirrorSwitched
	msys.Mirror.Target = &overlay.Dev{Name: "vdb", Major: 254, Minor: 16, Path: "/dev/vdb"}
	p, err = Preflight(msys, Target{Info: disk("vdb", 254, 16, 2*GiB)}, Request{Target: "/dev/vdb", NoFinalize: true, RawDisk: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMirror{state: MirrorSwitched}
	fk := &fakeKernel{}
	evs = nil
	r := runner(fk, msys, &evs)
	r.K = mirrorKernel{fk, f}
	_, err = r.Run(ctx, p)
	check("mirror", err, evs, fk.calls)
	if strings.Contains(strings.Join(f.calls, ","), "abort") {
		t.Errorf("mirror: aborted after the switch: %v", f.calls)
	}
}
