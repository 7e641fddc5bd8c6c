package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/internal/fileroot"
)

// copySystem is a live-boot root: / an overlayfs of two squashfs layers
// under a tmpfs upper, read from a CD.
func copySystem() *System {
	return &System{
		RootMount: "/", RootSource: "overlay", RootFSType: "overlay", Kernel: "6.12.0",
		NotLive: "/ is overlay (overlay), not a block device", MemAvail: 2 * GiB,
		FileRoot: &fileroot.Root{FSType: "overlay", Source: "overlay",
			Layers: &fileroot.Layers{Lower: []string{"/run/live/rootfs/b.squashfs", "/run/live/rootfs/a.squashfs"}, Upper: "/run/live/overlay/rw", Work: "/run/live/overlay/work"},
			Live: []fileroot.LiveMount{
				{MountPoint: "/run/live/rootfs/b.squashfs", Source: "/dev/loop1", FSType: "squashfs", Role: "lower layer 1", Loop: "/dev/loop1"},
				{MountPoint: "/run/live/rootfs/a.squashfs", Source: "/dev/loop0", FSType: "squashfs", Role: "lower layer 2", Loop: "/dev/loop0"},
				{MountPoint: "/run/live/overlay", Source: "tmpfs", FSType: "tmpfs", Role: "upper layer"},
				{MountPoint: "/run/live/medium", Source: "/dev/sr0", FSType: "iso9660", Role: "medium"},
			},
			Medium: "/dev/sr0", MediumDisk: "sr0", MediumIsCD: true, UpperMount: "/run/live/overlay"},
		FileUsage: &fileroot.Usage{Bytes: GiB, Entries: 20000},
		Mkfs:      map[string]bool{"ext4": true, "btrfs": true},
	}
}

func copyReq(target string) Request {
	return Request{Target: target, Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 1<<16))}
}

func TestCopyPlan(t *testing.T) {
	sys := copySystem()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, copyReq("/dev/vdb"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range p.Steps {
		k := string(s.Kind)
		if s.Installed {
			k += "@installed"
		}
		if s.Irreversible {
			k += "!"
		}
		kinds = append(kinds, k)
	}
	want := "partition make-filesystem mount-target copy-files prepare-switch soft-reboot! finalize@installed release-live-stack@installed"
	if p.Method != MethodCopy || strings.Join(kinds, " ") != want {
		t.Fatalf("method %s, steps %s", p.Method, strings.Join(kinds, " "))
	}
	c := p.Copy
	if strings.Join(c.Lower, " ") != "/run/live/rootfs/a.squashfs /run/live/rootfs/b.squashfs" || c.Upper != "/run/live/overlay/rw" {
		t.Errorf("layers: lower %v, upper %q (the bottom layer first)", c.Lower, c.Upper)
	}
	if c.FSUUID != "07070707-0707-4707-8707-070707070707" || p.FSType != "ext4" || p.Finalize.FSUUID != c.FSUUID || p.Finalize.RootDev != "/dev/vdb3" || p.Target != "/dev/vdb3" {
		t.Errorf("uuid %s fs %s finalize %+v target %s", c.FSUUID, p.FSType, p.Finalize, p.Target)
	}
	r := p.Render()
	for _, w := range []string{"soft-reboot into /dev/vdb3", "On the installed system: release the live medium: /run/live/rootfs/b.squashfs (lower layer 1) and /dev/loop1", "eject /dev/sr0", "stopped at step 6", "<- point of no return", "live-boot, live-config, casper"} {
		if !strings.Contains(r, w) {
			t.Errorf("plan lacks %q:\n%s", w, r)
		}
	}
	// --fs: a filesystem it makes, one whose mkfs is missing, a name it
	// does not know.
	req := copyReq("/dev/vdb")
	req.FS = "btrfs"
	if p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, req); err != nil || p.FSType != "btrfs" {
		t.Errorf("--fs btrfs: %v", err)
	}
	req.FS = "xfs"
	if _, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, req); ExitCode(err) != ExitNoTool || !strings.Contains(err.Error(), "mkfs.xfs is not installed") {
		t.Errorf("--fs xfs without mkfs.xfs: %v", err)
	}
	req.FS = "ntfs"
	if _, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, req); ExitCode(err) != ExitUsage {
		t.Errorf("--fs ntfs: %v", err)
	}
}

// tmpfsSystem: / a tmpfs a root tarball was unpacked into, no medium.
func tmpfsSystem() *System {
	return &System{
		RootMount: "/", RootSource: "tmpfs", RootFSType: "tmpfs", Kernel: "6.12.0",
		NotLive: "/ is tmpfs (tmpfs), not a block device", MemAvail: 2 * GiB,
		FileRoot:  &fileroot.Root{FSType: "tmpfs", Source: "tmpfs"},
		FileUsage: &fileroot.Usage{Bytes: 700 << 20, Entries: 20000},
		Mkfs:      map[string]bool{"ext4": true},
	}
}

// A tmpfs root: one plain tree, copied from a bind of / that leaves the
// mounts below it out; nothing to release but its RAM.
func TestCopyPlanTmpfs(t *testing.T) {
	p, err := Preflight(tmpfsSystem(), Target{Info: disk("vdb", 254, 16, 4*GiB)}, copyReq("/dev/vdb"))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Copy
	if p.Method != MethodCopy || c.Tree != CopySource || len(c.Lower) != 0 || c.Upper != "" {
		t.Fatalf("method %s, tree %q, lower %v, upper %q", p.Method, c.Tree, c.Lower, c.Upper)
	}
	r := p.Render()
	for _, w := range []string{"the tmpfs root's own files, from a read-only bind mount of / on /run/livemigrate/source", "soft-reboot into /dev/vdb3",
		"release the live medium: the 700 MiB of RAM the tmpfs root holds, freed when the soft-reboot lets the old root go"} {
		if !strings.Contains(r, w) {
			t.Errorf("plan lacks %q:\n%s", w, r)
		}
	}
	if strings.Contains(r, "eject") {
		t.Errorf("a root with no medium plans an eject:\n%s", r)
	}
}

func TestCopyRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*System)
		tgt  Target
		code int
		want string
	}{
		{"too small", nil, Target{Info: disk("vdb", 254, 16, GiB)}, ExitTooSmall, "needs at least"},
		{"the medium", nil, Target{Info: disk("sr0", 11, 0, 4*GiB)}, ExitLiveStack, "holds the live medium"},
		{"no soft-reboot", func(s *System) {
			s.SoftReboot = "systemd is version 252; soft-reboot into another root needs 254 or later"
		}, Target{Info: disk("vdb", 254, 16, 4*GiB)}, ExitNotLive, "systemd is version 252"},
		{"tmpfs without soft-reboot", func(s *System) {
			*s = *tmpfsSystem()
			s.SoftReboot = "PID 1 is init, not systemd"
		}, Target{Info: disk("vdb", 254, 16, 4*GiB)}, ExitNotLive, "/ is a tmpfs, but PID 1 is init"},
		{"too many names for ext4", func(s *System) { s.FileUsage.Entries = 1 << 20 }, Target{Info: disk("vdb", 254, 16, 4*GiB)}, ExitTooSmall, "inodes"},
	} {
		sys := copySystem()
		if c.mod != nil {
			c.mod(sys)
		}
		_, err := Preflight(sys, c.tgt, copyReq(c.tgt.Info.Path))
		if ExitCode(err) != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (code %d, want %d with %q)", c.name, err, ExitCode(err), c.code, c.want)
		}
	}
	// The other methods refuse --fs, and the copy method does not take
	// a block root.
	req := Request{Target: "/dev/vdb", RawDisk: true, FS: "xfs"}
	if _, err := Preflight(liveSystem(), Target{Info: disk("vdb", 254, 16, 2*GiB)}, req); ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "only the copy method") {
		t.Errorf("--fs on an md root: %v", err)
	}
	req = Request{Target: "/dev/vdb", RawDisk: true, Method: MethodCopy}
	if _, err := Preflight(liveSystem(), Target{Info: disk("vdb", 254, 16, 2*GiB)}, req); ExitCode(err) != ExitNotLive || !strings.Contains(err.Error(), "leave --method out: the md-hook method applies") {
		t.Errorf("--method copy on an md root: %v", err)
	}
}

// An earlier run stopped before the switch left its staging mount: the
// same target is planned again (the copy starts over), another is
// refused.
func TestCopyAfterAnEarlierRun(t *testing.T) {
	sys := copySystem()
	sys.CopyStaging = "/dev/vdb"
	in := disk("vdb", 254, 16, 4*GiB)
	in.Mounts = []string{CopyStaging}
	req := copyReq("/dev/vdb")
	req.RawDisk = true
	p, err := Preflight(sys, Target{Info: in}, req)
	if err != nil || !strings.Contains(p.Resume, "is discarded and the copy starts again") {
		t.Fatalf("rerun: %v, plan %v", err, p)
	}
	// Its first step takes the earlier run's mount away: nothing may
	// write to the device while it is mounted.
	if p.Steps[0].Kind != StepUnmountEarlier || p.Copy.Earlier != "/dev/vdb" || p.Steps[1].Kind != StepMakeFS {
		t.Errorf("rerun steps %+v, earlier %q", p.Steps, p.Copy.Earlier)
	}
	k := &fakeCopy{fakeKernel: &fakeKernel{}}
	var evs []Event
	r := runner(k.fakeKernel, sys, &evs)
	r.K = k
	if _, err := r.Run(context.Background(), p); err != nil || !strings.HasPrefix(strings.Join(k.calls, ","), "umount,umount,mkfs ext4 /dev/vdb") {
		t.Errorf("rerun: %v, calls %v", err, k.calls)
	}
	other := disk("vdc", 254, 32, 4*GiB)
	if _, err := Preflight(sys, Target{Info: other}, copyReq("/dev/vdc")); ExitCode(err) != ExitBusyArray || !strings.Contains(err.Error(), "--target /dev/vdb") {
		t.Errorf("another target: %v", err)
	}
	// Mounted anywhere else, it is in use as any target would be.
	in.Mounts = []string{"/mnt"}
	if _, err := Preflight(sys, Target{Info: in}, req); ExitCode(err) != ExitInUse {
		t.Errorf("mounted elsewhere: %v", err)
	}
}

// fakeCopy is a copy method kernel.
type fakeCopy struct {
	*fakeKernel
	copyErr, switchErr error
	cancel             context.CancelFunc // called during the copy
}

func (k *fakeCopy) MakeFS(dev, fs, uuid string) error {
	k.calls = append(k.calls, "mkfs "+fs+" "+dev)
	return nil
}
func (k *fakeCopy) MountTarget(dev, fs, dir string) error {
	k.calls = append(k.calls, "mount "+dev)
	return nil
}
func (k *fakeCopy) UnmountTarget(dir string) error {
	k.calls = append(k.calls, "umount")
	return nil
}
func (k *fakeCopy) CopyFiles(ctx context.Context, c *CopySpec, progress func(uint64)) (CopyReport, error) {
	k.calls = append(k.calls, "copy "+strings.Join(c.Lower, ",")+" "+c.Upper)
	progress(c.UsedBytes / 2)
	if k.cancel != nil {
		k.cancel()
		return CopyReport{}, ctx.Err()
	}
	return CopyReport{Bytes: c.UsedBytes, Entries: c.Entries, Seconds: 10}, k.copyErr
}
func (k *fakeCopy) PrepareSwitch(*Plan) error {
	k.calls = append(k.calls, "prepare")
	return nil
}
func (k *fakeCopy) StartSwitch(*Plan) error {
	k.calls = append(k.calls, "switch")
	return k.switchErr
}
func (k *fakeCopy) ReleaseFileRoot(fr *fileroot.Root, eject bool) (FileRelease, error) {
	k.calls = append(k.calls, fmt.Sprintf("release eject=%v", eject))
	return FileRelease{Unmounted: []string{"/run/live/medium"}, Ejected: eject}, nil
}

func TestCopyRun(t *testing.T) {
	sys := copySystem()
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, copyReq("/dev/vdb"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeCopy{fakeKernel: &fakeKernel{}}
	var evs []Event
	r := runner(k.fakeKernel, sys, &evs)
	r.K = k
	res, err := r.Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := "partition /dev/vdb 3 parts, root /dev/vdb3,umount,mkfs ext4 /dev/vdb3,mount /dev/vdb3,copy /run/live/rootfs/a.squashfs,/run/live/rootfs/b.squashfs /run/live/overlay/rw,prepare,switch"
	if strings.Join(k.calls, ",") != want {
		t.Errorf("calls:\n got %s\nwant %s", strings.Join(k.calls, ","), want)
	}
	if res.Copy == nil || res.RecoveredBytes != GiB || res.RecoveryBps != float64(GiB)/10 {
		t.Errorf("result %+v", res)
	}
	// The installed system's run does the rest, and only that.
	k.calls = nil
	r = runner(k.fakeKernel, sys, &evs)
	r.K, r.OnInstalled, r.Eject = k, true, true
	res, err = r.Run(context.Background(), p)
	if err != nil || strings.Join(k.calls, ",") != "finalize /dev/vdb /dev/vdb3 "+p.Copy.FSUUID+",release eject=true" || res.FileRelease == nil || !res.FileRelease.Ejected {
		t.Errorf("installed run: %v, calls %v, result %+v", err, k.calls, res)
	}
}

func TestCopyStops(t *testing.T) {
	sys := copySystem()
	req := copyReq("/dev/vdb")
	req.RawDisk = true
	p, err := Preflight(sys, Target{Info: disk("vdb", 254, 16, 4*GiB)}, req)
	if err != nil {
		t.Fatal(err)
	}
	// Ctrl+C during the copy: the target is unmounted, the session was
	// never touched.
	ctx, cancel := context.WithCancel(context.Background())
	k := &fakeCopy{fakeKernel: &fakeKernel{}, cancel: cancel}
	var evs []Event
	r := runner(k.fakeKernel, sys, &evs)
	r.K = k
	_, err = r.Run(ctx, p)
	if ExitCode(err) != ExitInterrupted || !strings.Contains(err.Error(), "live session intact; /dev/vdb holds a partial copy that cannot boot") || k.calls[len(k.calls)-1] != "umount" {
		t.Errorf("interrupted: %v (code %d), calls %v", err, ExitCode(err), k.calls)
	}
	// The target failing mid-copy: 20, the same state.
	k = &fakeCopy{fakeKernel: &fakeKernel{}, copyErr: errors.New("write /run/livemigrate/target/usr/bin/x: input/output error")}
	r.K = k
	_, err = r.Run(context.Background(), p)
	if ExitCode(err) != ExitAborted || !strings.Contains(err.Error(), "input/output error") || !strings.Contains(err.Error(), "live session intact") {
		t.Errorf("target failed: %v (code %d)", err, ExitCode(err))
	}
	// The switch service not starting: nothing irreversible happened.
	k = &fakeCopy{fakeKernel: &fakeKernel{}, switchErr: errors.New("systemd-run: exit status 1")}
	r.K = k
	_, err = r.Run(context.Background(), p)
	if ExitCode(err) != ExitAborted || !strings.Contains(err.Error(), "live session intact") {
		t.Errorf("switch not started: %v (code %d)", err, ExitCode(err))
	}
}
