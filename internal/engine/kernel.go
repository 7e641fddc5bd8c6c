package engine

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// SysKernel is the Kernel of the running system.
type SysKernel struct {
	MD      mdraid.Controller
	Host    overlay.Host
	Act     overlay.Actuator
	Release overlay.ReleaseOptions
}

// NewSysKernel returns the real kernel with the given release options.
func NewSysKernel(opts overlay.ReleaseOptions) *SysKernel {
	return &SysKernel{MD: mdraid.Default, Host: overlay.Host{Root: "/"}, Act: overlay.SysActuator{}, Release: opts}
}

func (k *SysKernel) ReadArray(name string) (*mdraid.Array, error) { return k.MD.Sys.Read(name) }
func (k *SysKernel) HotAdd(md, dev string, major, minor uint32) error {
	if err := k.MD.HotAddDevNum(md, major, minor); err != nil {
		return fmt.Errorf("%s (%d:%d): %w", dev, major, minor, err)
	}
	return nil
}
func (k *SysKernel) Fail(md string, major, minor uint32) error {
	return k.MD.FailDevNum(md, major, minor)
}
func (k *SysKernel) Remove(md string, major, minor uint32) error {
	return k.MD.RemoveDevNum(md, major, minor)
}
func (k *SysKernel) RemoveByName(md, name string) error { return k.MD.RemoveByName(md, name) }
func (k *SysKernel) SetSpeed(md, file string, l mdraid.SpeedLimit) error {
	return k.MD.RestoreSpeed(md, file, l)
}
func (k *SysKernel) GrowArray(md string) (uint64, error) { return k.MD.GrowMax(md) }
func (k *SysKernel) GrowFS(mountpoint, device string) (resize.Result, error) {
	return resize.Grow(mountpoint, device)
}
func (k *SysKernel) COWUsage(s *overlay.Stack) (overlay.Usage, error) {
	return overlay.COWUsage(nil, k.Host, s)
}
func (k *SysKernel) ReleaseStack(s *overlay.Stack, before *overlay.Usage) (overlay.ReleaseReport, error) {
	o := k.Release
	o.UsageBefore = before
	return overlay.Release(k.Host, k.Act, s, o)
}

func (k *SysKernel) Finalize(spec *FinalizeSpec, emit func(finalize.Result, bool)) ([]finalize.Result, error) {
	e := &finalize.Env{Root: "/", Run: finalize.ExecRunner, Disk: spec.Disk, RootDev: spec.RootDev, ESP: spec.ESP,
		FSUUID: spec.FSUUID, FSType: spec.FSType, Hostname: spec.Hostname, Password: spec.Password,
		NewUUID: spec.NewUUID, UUIDWhy: spec.UUIDWhy, RootBlock: spec.RootBlock}
	return finalize.Run(e, emit)
}

func (k *SysKernel) Partition(disk string, l *partition.Layout, root string) (Partitioned, error) {
	hold, err := partition.WriteHeld(disk, *l)
	if err != nil {
		return Partitioned{}, err
	}
	if err := partition.WaitForPartition(root, 10*time.Second); err != nil {
		hold.Close()
		return Partitioned{}, err
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		hold.Close()
		return Partitioned{}, fmt.Errorf("partitioned %s, but %s: %w", disk, root, err)
	}
	return Partitioned{Major: unix.Major(uint64(st.Rdev)), Minor: unix.Minor(uint64(st.Rdev)), Name: filepath.Base(root), Hold: hold}, nil
}

// loadMirror loads dm-mirror (best effort: it may be built in) and checks
// that the kernel has the targets the mirror needs.
func loadMirror() error {
	if dmmirror.Available() == nil {
		return nil
	}
	_ = exec.Command("modprobe", "dm-mirror").Run()
	return dmmirror.Available()
}

func (k *SysKernel) InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error) {
	if err := loadMirror(); err != nil {
		return overlay.Dev{}, err
	}
	// A run killed inside an earlier insert left SrcName, perhaps a
	// loaded table, perhaps live suspended: Settle undoes what never took
	// effect, as the rerun of any other step does.
	st, err := dmmirror.Settle(live)
	if err != nil {
		return overlay.Dev{}, err
	}
	if st != dmmirror.Untouched {
		return overlay.Dev{}, fmt.Errorf("%s is %s already, not its live snapshot: livemigrate status shows where the migration stands", live, st)
	}
	m, err := dmmirror.Insert(live, overlay.Dev{Major: major, Minor: minor, Path: dev}, dmmirror.Options{})
	if err != nil {
		return overlay.Dev{}, err
	}
	return m.Src, nil
}

func (k *SysKernel) MirrorStatus(live string) (dmmirror.Status, uint64, error) {
	m, st, err := dmmirror.Find(live)
	if err != nil {
		return dmmirror.Status{}, 0, err
	}
	if st != dmmirror.Copying {
		return dmmirror.Status{}, 0, fmt.Errorf("%s is not mirrored now (%s)", live, st)
	}
	s, err := m.Status()
	return s, m.RegionSectors, err
}

func (k *SysKernel) SwitchMirror(live, dev string) error {
	if _, err := dmmirror.Settle(live); err != nil {
		return err
	}
	m, st, err := dmmirror.Find(live)
	if err != nil {
		return err
	}
	switch st {
	case dmmirror.Switched:
		return nil
	case dmmirror.Copying:
	default:
		return fmt.Errorf("%s is %s, not a mirror: %w", live, st, errLiveLegStays)
	}
	size, err := overlay.DeviceSize(dev)
	if err != nil {
		return fmt.Errorf("size of %s: %v: %w", dev, err, errLiveLegStays)
	}
	if err := m.Switch(size / 512); err != nil {
		if _, st2, ferr := dmmirror.Find(live); ferr == nil && st2 == dmmirror.Copying {
			// Nothing changed: / is still on the mirror.
			return fmt.Errorf("%w: %w", err, errLiveLegStays)
		}
		return err
	}
	return nil
}

func (k *SysKernel) AbortMirror(live string) error {
	st, err := dmmirror.Settle(live)
	if err != nil {
		return err
	}
	if st != dmmirror.Copying {
		return nil
	}
	m, _, err := dmmirror.Find(live)
	if err != nil {
		return err
	}
	return m.Abort()
}

func (k *SysKernel) SetMirrorThrottle(percent int) error {
	if err := loadMirror(); err != nil {
		return fmt.Errorf("%w: %v", errNoMirrorModule, err)
	}
	return dmmirror.SetThrottle(percent)
}
