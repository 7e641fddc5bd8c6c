// Package engine owns the migration: it observes the running system, decides
// whether and how a migration may proceed (preflight and plan, pure and
// unit-tested), and executes a plan step by step, emitting typed progress
// events that the CLI prints and the wizard draws. All of its state comes
// from the kernel, so a restarted engine picks up where the last one stopped.
package engine

import (
	"github.com/livemigrate/livemigrate/internal/procfs"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/fileroot"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// System is what the engine knows about the running system.
type System struct {
	RootMount  string         `json:"root_mount"`
	RootSource string         `json:"root_source"`
	RootFSType string         `json:"root_fstype"`
	RootFS     *resize.Probe  `json:"root_fs,omitempty"`
	Array      *mdraid.Array  `json:"array,omitempty"`
	ArrayLBS   uint32         `json:"array_logical_block_size,omitempty"`
	LiveLeg    *mdraid.Member `json:"live_leg,omitempty"`
	Stack      *overlay.Stack `json:"stack,omitempty"`
	COW        *overlay.Usage `json:"cow,omitempty"`
	COWError   string         `json:"cow_error,omitempty"`
	// UEFI: the running system was started by UEFI firmware
	// (/sys/firmware/efi exists), so the installed one will be too.
	UEFI     bool   `json:"uefi"`
	MemTotal uint64 `json:"mem_total_bytes"`
	MemAvail uint64 `json:"mem_available_bytes"`
	// Kernel is the running kernel's release; Grub the version of the
	// GRUB installed in the live root ("" when none): they decide whether
	// finalize can give the root filesystem a new UUID.
	Kernel string `json:"kernel"`
	Grub   string `json:"grub_version,omitempty"`
	// Mirror is set when / is on a live dm snapshot with no md above it,
	// or on the run-time mirror put under one (MethodMirror).
	Mirror *MirrorRoot `json:"mirror_root,omitempty"`
	// NoMirror says why this kernel cannot put a mirror under a live
	// snapshot root ("" when it can, or when the mirror is already in).
	NoMirror string `json:"no_mirror,omitempty"`
	// NotLive says why the root is not a livemigrate root ("" when it is, or
	// when the live leg is already gone but the array is still the root).
	NotLive string `json:"not_live,omitempty"`
	// FileRoot is set when / is a file-based live root (overlayfs,
	// tmpfs): the copy method's. FileUsage is what it holds (walked when
	// observed), FileUsageError why that could not be read.
	FileRoot       *fileroot.Root  `json:"file_root,omitempty"`
	FileUsage      *fileroot.Usage `json:"file_usage,omitempty"`
	FileUsageError string          `json:"file_usage_error,omitempty"`
	// SoftReboot says why this system cannot soft-reboot into the copy
	// ("" when it can); Mkfs lists the filesystems it can make.
	SoftReboot string          `json:"no_soft_reboot,omitempty"`
	Mkfs       map[string]bool `json:"mkfs,omitempty"`
	// CopyStaging is the device an earlier copy run left mounted on
	// CopyStaging ("" when none).
	CopyStaging string `json:"copy_staging,omitempty"`
}

// Others returns the array members that are not the live leg.
func (s *System) Others() []mdraid.Member {
	if s.Array == nil {
		return nil
	}
	var out []mdraid.Member
	for _, m := range s.Array.Members {
		if s.LiveLeg != nil && m.Name == s.LiveLeg.Name {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Observer reads the system. Root is "/" in production.
type Observer struct {
	Root string
	// Query answers dm ioctls for overlay; nil means the running kernel.
	Query overlay.Querier
	// MirrorTargets lists the dm target types the kernel has registered;
	// nil asks the running kernel (DM_LIST_VERSIONS).
	MirrorTargets func() (map[string][3]uint32, error)
}

func (o Observer) path(elem ...string) string {
	return procfs.Path(o.Root, filepath.Join(elem...))
}
func (o Observer) host() blockdev.Host { return blockdev.Host{Root: o.Root} }
func (o Observer) ohost() overlay.Host { return overlay.Host{Root: o.Root, Query: o.Query} }
func (o Observer) mdsys() mdraid.Sys   { return mdraid.Sys{Root: o.path("sys"), Proc: o.path("proc")} }

// sourceSysDir is the /sys directory of a mount source such as /dev/md127
// (or a link to it), when it is a block device.
func (o Observer) sourceSysDir(source string) (string, error) {
	if !strings.HasPrefix(source, "/dev/") {
		return "", fmt.Errorf("%s is not a device", source)
	}
	name := filepath.Base(source)
	if real, err := filepath.EvalSymlinks(o.path(source)); err == nil {
		name = filepath.Base(real)
	}
	dir, err := filepath.EvalSymlinks(o.path("sys/class/block", name))
	if err != nil {
		return "", fmt.Errorf("no sysfs entry for %s: %w", source, err)
	}
	return dir, nil
}

// Observe builds a System. It fails only when the basics cannot be read;
// a root that is not a live md root is reported in NotLive.
func (o Observer) Observe() (*System, error) {
	s := &System{RootMount: "/"}
	if st, err := os.Stat(o.path("sys/firmware/efi")); err == nil && st.IsDir() {
		s.UEFI = true
	}
	if b, err := os.ReadFile(o.path("proc/sys/kernel/osrelease")); err == nil {
		s.Kernel = strings.TrimSpace(string(b))
	}
	s.Grub, _ = finalize.GrubVersion(o.Root)
	if m, err := procfs.ReadMeminfo(o.Root); err == nil {
		s.MemTotal, s.MemAvail = m["MemTotal"], m["MemAvailable"]
	}
	mounts, err := o.host().Mounts()
	if err != nil {
		return nil, err
	}
	var root *blockdev.Mount
	for i := range mounts {
		if mounts[i].MountPoint == "/" {
			root = &mounts[i] // the last one is the one on top
		}
	}
	if root == nil {
		return nil, errors.New("no root filesystem in the mount table")
	}
	s.RootSource, s.RootFSType = root.Source, root.FSType
	dir, err := o.host().SysDir(root.Major, root.Minor)
	if err != nil {
		// btrfs reports an anonymous device number for its mounts (one
		// filesystem, many devices): the source names the device.
		dir, err = o.sourceSysDir(root.Source)
	}
	if err != nil {
		s.NotLive = fmt.Sprintf("/ is %s (%s), not a block device", root.Source, root.FSType)
		if ferr := o.observeFileRoot(s, mounts); ferr != nil {
			return nil, ferr
		}
		return s, nil
	}
	name := filepath.Base(dir)
	if _, err := os.Stat(filepath.Join(dir, "md")); err != nil {
		mr, st, err := o.observeMirror(dir)
		if err != nil {
			return nil, err
		}
		if mr == nil {
			s.NotLive = fmt.Sprintf("/ is on %s (%s), not on an md array or a live dm snapshot", "/dev/"+name, root.FSType)
			if done := o.mirrorDone(dir); done != "" {
				s.NotLive = done
			}
			return s, nil
		}
		s.Mirror, s.Stack = mr, st
		if mr.State == MirrorFresh {
			s.NoMirror = o.mirrorSupport(s.Kernel)
		}
		if p, err := resize.ProbeDevice(o.path("dev", name)); err == nil {
			s.RootFS = &p
		}
		if u, err := overlay.COWUsage(o.Query, o.ohost(), st); err == nil {
			s.COW = &u
		} else {
			s.COWError = err.Error()
		}
		return s, nil
	}
	a, err := o.mdsys().Read(name)
	if err != nil {
		return nil, err
	}
	s.Array = a
	if v, err := os.ReadFile(filepath.Join(dir, "queue/logical_block_size")); err == nil {
		fmt.Sscan(string(v), &s.ArrayLBS)
	}
	if a.Level != "raid1" || a.Metadata != "none" {
		s.NotLive = fmt.Sprintf("/ is on %s, a %s array with %s metadata; livemigrate only drives the build-mode RAID1 that its boot hook makes", a.Path, a.Level, a.Metadata)
		return s, nil
	}
	if p, err := resize.ProbeDevice(o.path("dev", name)); err == nil {
		s.RootFS = &p
	}
	for i, m := range a.Members {
		if overlay.IsLiveLeg(o.ohost(), overlay.Dev{Name: m.Name, Major: m.Major, Minor: m.Minor}) {
			s.LiveLeg = &a.Members[i]
			break
		}
	}
	if s.LiveLeg != nil {
		st, err := overlay.Discover(o.ohost(), overlay.Dev{Name: s.LiveLeg.Name, Major: s.LiveLeg.Major, Minor: s.LiveLeg.Minor})
		if err != nil {
			return nil, fmt.Errorf("find the live stack under %s: %w", s.LiveLeg.Name, err)
		}
		s.Stack = st
	} else if st, err := o.FindDetachedStack(); err == nil && st != nil {
		// The live leg has left the array but its stack is still there.
		s.Stack = st
	}
	if s.Stack != nil {
		if u, err := overlay.COWUsage(o.Query, o.ohost(), s.Stack); err == nil {
			s.COW = &u
		} else {
			s.COWError = err.Error()
		}
	}
	if s.LiveLeg == nil && len(a.Members) == 0 {
		s.NotLive = fmt.Sprintf("%s has no members", a.Path)
	}
	return s, nil
}

// FindDetachedStack looks for a live snapshot that nothing holds any more:
// what is left after the live leg was removed from the array.
func (o Observer) FindDetachedStack() (*overlay.Stack, error) {
	ents, err := os.ReadDir(o.path("sys/block"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "dm-") {
			continue
		}
		d := overlay.Dev{Name: e.Name()}
		if holders, _ := os.ReadDir(o.path("sys/block", e.Name(), "holders")); len(holders) > 0 {
			continue
		}
		if !overlay.IsLiveLeg(o.ohost(), d) {
			continue
		}
		return overlay.Discover(o.ohost(), d)
	}
	return nil, nil
}
