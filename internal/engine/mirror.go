package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
)

// MethodMirror is the run-time mirror's name in plans and messages.
const MethodMirror = "dm-mirror"

// Mirror root states, as the kernel's tables show them.
const (
	MirrorFresh    = "snapshot" // / on the live snapshot, nothing started
	MirrorCopying  = "copying"  // / on the mirror of the snapshot onto the target
	MirrorSwitched = "switched" // / on a linear map of the target; the snapshot device is still there
)

// MirrorRoot is / on a device-mapper snapshot with no md above it (a stock
// dmsquash-live root: no livemigrate boot hook), or on the run-time mirror
// livemigrate put under it (internal/dmmirror).
type MirrorRoot struct {
	DMName    string `json:"dm_name"` // live-rw
	Path      string `json:"path"`    // /dev/mapper/live-rw
	Name      string `json:"name"`    // dm-1
	Major     uint32 `json:"major"`
	Minor     uint32 `json:"minor"`
	SizeBytes uint64 `json:"size_bytes"`
	LBS       uint32 `json:"logical_block_size,omitempty"`
	State     string `json:"state"`
	// Target is the mirror's second leg while it copies, the device of the
	// linear map once switched.
	Target        *overlay.Dev     `json:"target,omitempty"`
	Status        *dmmirror.Status `json:"mirror_status,omitempty"`
	RegionSectors uint64           `json:"region_sectors,omitempty"`
	// Src is livemigrate's relocated snapshot (dmmirror.SrcName), when it
	// exists.
	Src *overlay.Dev `json:"relocated_snapshot,omitempty"`
}

// CopiedBytes is how much of the root the mirror holds on the target.
func (m *MirrorRoot) CopiedBytes() uint64 {
	if m.Status == nil {
		return 0
	}
	return m.Status.Copied(m.RegionSectors, m.SizeBytes/512) * 512
}

func (o Observer) querier() overlay.Querier {
	if o.Query != nil {
		return o.Query
	}
	return overlay.KernelQuerier{}
}

// devAt reads the device number of a /sys/class/block entry.
func (o Observer) devAt(dir string) (overlay.Dev, error) {
	b, err := os.ReadFile(filepath.Join(dir, "dev"))
	if err != nil {
		return overlay.Dev{}, err
	}
	a, c, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(c, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return overlay.Dev{}, fmt.Errorf("%s/dev: %q", dir, b)
	}
	return overlay.Dev{Name: filepath.Base(dir), Major: uint32(ma), Minor: uint32(mi)}, nil
}

// mirrorSupport says why the running kernel cannot put dm-mirror under a
// snapshot root, "" when it can: the mirror, snapshot and linear targets
// are registered, or the ones missing come with dm-mirror, a module of this
// kernel that the migration loads when it starts (loadMirror).
func (o Observer) mirrorSupport(kernel string) string {
	list := o.MirrorTargets
	if list == nil {
		list = overlay.TargetTypes
	}
	types, err := list()
	if err != nil {
		return "cannot list the kernel's device-mapper targets: " + err.Error()
	}
	_, hasMirror := types["mirror"]
	if _, ok := types["snapshot"]; !ok {
		return "the kernel has no dm snapshot target"
	}
	if hasMirror {
		return ""
	}
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		b, err := os.ReadFile(o.path("lib/modules", kernel, f))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			name, _, _ := strings.Cut(l, ":")
			if base := filepath.Base(name); base == "dm-mirror.ko" || strings.HasPrefix(base, "dm-mirror.ko.") {
				return ""
			}
		}
	}
	return fmt.Sprintf("this kernel (%s) has no dm-mirror target: it is not loaded, and /lib/modules/%s has no dm-mirror module", kernel, kernel)
}

// dmByName finds the dm device called name in sysfs.
func (o Observer) dmByName(name string) (overlay.Dev, bool) {
	ents, _ := os.ReadDir(o.path("sys/block"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "dm-") {
			continue
		}
		b, err := os.ReadFile(o.path("sys/block", e.Name(), "dm/name"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		d, err := o.devAt(o.path("sys/block", e.Name()))
		if err != nil {
			return overlay.Dev{}, false
		}
		d.Path = "/dev/mapper/" + name
		return d, true
	}
	return overlay.Dev{}, false
}

// devByNumber names the block device major:minor from /sys/dev/block.
func (o Observer) devByNumber(mm string) overlay.Dev {
	d := overlay.Dev{}
	if a, b, ok := strings.Cut(mm, ":"); ok {
		ma, _ := strconv.ParseUint(a, 10, 32)
		mi, _ := strconv.ParseUint(b, 10, 32)
		d.Major, d.Minor = uint32(ma), uint32(mi)
	}
	if p, err := filepath.EvalSymlinks(o.path("sys/dev/block", mm)); err == nil {
		d.Name = filepath.Base(p)
		d.Path = "/dev/" + d.Name
	}
	return d
}

// observeMirror reads a root on the dm device whose sysfs directory is dir:
// a live snapshot, or livemigrate's mirror or linear map over one. It
// returns nil when the device is none of these.
func (o Observer) observeMirror(dir string) (*MirrorRoot, *overlay.Stack, error) {
	d, err := o.devAt(dir)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "dm/name"))
	if err != nil {
		return nil, nil, nil
	}
	mr := &MirrorRoot{DMName: strings.TrimSpace(string(b)), Name: d.Name, Major: d.Major, Minor: d.Minor}
	mr.Path = "/dev/mapper/" + mr.DMName
	d.Path = mr.Path
	if v, err := os.ReadFile(filepath.Join(dir, "size")); err == nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
		mr.SizeBytes = n * 512
	}
	if v, err := os.ReadFile(filepath.Join(dir, "queue/logical_block_size")); err == nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 32)
		mr.LBS = uint32(n)
	}
	ts, err := o.querier().DMTable(d)
	if err != nil {
		return nil, nil, fmt.Errorf("read the table of %s: %w", mr.Path, err)
	}
	if len(ts) != 1 {
		return nil, nil, nil
	}
	if src, ok := o.dmByName(dmmirror.SrcName); ok {
		mr.Src = &src
	}
	var stackLeg overlay.Dev
	switch ts[0].Type {
	case "snapshot":
		if !overlay.IsLiveLeg(o.ohost(), d) {
			return nil, nil, nil
		}
		mr.State, stackLeg = MirrorFresh, d
	case "mirror":
		t, err := dmmirror.ParseMirrorTable(ts[0].Params)
		if err != nil || mr.Src == nil || len(t.Legs) != 2 || t.Legs[0] != fmt.Sprintf("%d:%d", mr.Src.Major, mr.Src.Minor) {
			return nil, nil, nil
		}
		tgt := o.devByNumber(t.Legs[1])
		mr.State, mr.Target, mr.RegionSectors, stackLeg = MirrorCopying, &tgt, t.RegionSectors, *mr.Src
		ss, err := o.querier().DMStatus(d)
		if err != nil {
			return nil, nil, fmt.Errorf("read the status of %s: %w", mr.Path, err)
		}
		if len(ss) == 1 {
			if st, err := dmmirror.ParseStatus(ss[0].Params); err == nil {
				mr.Status = &st
			}
		}
	case "linear":
		f := strings.Fields(ts[0].Params)
		if len(f) != 2 || f[1] != "0" {
			return nil, nil, nil
		}
		tgt := o.devByNumber(f[0])
		mr.State, mr.Target = MirrorSwitched, &tgt
		if mr.Src == nil {
			// The switch removed the moved snapshot. The stack this
			// migration saved (StackFile, livemigrate-src's) says / is on
			// its linear map, and what is left to release; a linear root
			// without it is not ours.
			st, err := LoadStack(o.path(StackFile))
			if err != nil || st == nil || st.DMName != dmmirror.SrcName || mr.DMName != "live-rw" || strings.HasPrefix(tgt.Name, "dm-") {
				return nil, nil, nil
			}
			return mr, st, nil
		}
		stackLeg = *mr.Src
	default:
		return nil, nil, nil
	}
	st, err := overlay.Discover(o.ohost(), stackLeg)
	if err != nil {
		return nil, nil, fmt.Errorf("find the live stack under %s: %w", mr.Path, err)
	}
	return mr, st, nil
}

// mirrorDone says where / went when the run-time mirror finished: the
// live device (named live-rw, as dmsquash-live and the hook name it) is now
// one linear map of a whole block device and nothing relocated is left. ""
// for any other root.
func (o Observer) mirrorDone(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "dm/name"))
	if err != nil || strings.TrimSpace(string(b)) != "live-rw" {
		return ""
	}
	d, err := o.devAt(dir)
	if err != nil {
		return ""
	}
	ts, err := o.querier().DMTable(d)
	if err != nil || len(ts) != 1 || ts[0].Type != "linear" {
		return ""
	}
	f := strings.Fields(ts[0].Params)
	if len(f) != 2 || f[1] != "0" {
		return ""
	}
	t := o.devByNumber(f[0])
	if t.Name == "" || strings.HasPrefix(t.Name, "dm-") {
		return ""
	}
	return fmt.Sprintf("/ was already migrated to /dev/%s: it runs there through live-rw, a linear map of it, until the next boot", t.Name)
}

// dmMirror is the way for a stock live system: / straight on the live
// snapshot, no boot hook. dm-mirror is put under the mounted filesystem at
// run time and copies the snapshot onto the target; then / is switched to
// a linear map of the target and the filesystem grows (internal/dmmirror).
type dmMirror struct{}

func (dmMirror) Name() string { return MethodMirror }

func (dmMirror) Applies(sys *System) *Refusal {
	if sys.Mirror == nil {
		if sys.NotLive != "" {
			return notOurs(refuse(ExitNotLive, "", sys.NotLive, notLiveHint))
		}
		if sys.Array != nil {
			return notOurs(refuse(ExitNotLive, "", "/ is on "+sys.Array.Path+", an md array, not straight on a device-mapper snapshot", ""))
		}
		return notOurs(refuse(ExitNotLive, "", "/ is not on a device-mapper snapshot", ""))
	}
	if sys.NoMirror != "" {
		return refuse(ExitNotLive, "", "/ is on "+sys.Mirror.Path+", a live snapshot, but "+sys.NoMirror,
			"boot a kernel with dm-mirror (CONFIG_DM_MIRROR), or a medium with the livemigrate boot hook (docs/user-guide.md)")
	}
	return nil
}

// Plan lays out the run-time mirror of sys's snapshot root onto tgt. Pure.
func (dmMirror) Plan(sys *System, tgt Target, req Request) (*Plan, error) {
	dev := req.Target
	if err := targetInspected(tgt, dev); err != nil {
		return nil, err
	}
	in := tgt.Info
	mr := sys.Mirror
	if in.Major == mr.Major && in.Minor == mr.Minor {
		return nil, refuse(ExitLiveStack, dev, isWhat(dev, mr.Path, "the device / runs on"), "name the disk or partition to install to")
	}
	if err := notInStack(sys.Stack, in, dev); err != nil {
		return nil, err
	}
	if mr.Src != nil && in.Major == mr.Src.Major && in.Minor == mr.Src.Minor {
		return nil, refuse(ExitLiveStack, dev, "is livemigrate's relocated live snapshot", "name the disk or partition to install to")
	}
	p := &Plan{
		Array: mr.DMName, ArrayPath: mr.Path, Given: req.Target, Target: dev, TargetName: in.Name,
		TargetMajor: in.Major, TargetMinor: in.Minor, TargetBytes: in.SizeBytes,
		CopyBytes: mr.SizeBytes, Speed: req.Speed, Method: MethodMirror,
	}
	if p.Speed == "" {
		p.Speed = SpeedFast
	}
	resumeDisk, installESP, installRoot := "", 0, 0
	if tgt.Table != nil {
		if esp, root, ok := partition.InstallLayout(*tgt.Table); ok {
			installESP, installRoot = esp, root
		}
	}
	continuing := mr.State != MirrorFresh
	if continuing {
		// The mode of a continued run comes from the disk, as on the md
		// path: the leg is the target, or the root partition of
		// livemigrate's own whole-disk table on the disk named.
		leg := mr.Target
		switch {
		case leg == nil:
			return nil, refuse(ExitBusyArray, dev, "a migration of "+mr.Path+" is under way onto a device that cannot be found", "run 'livemigrate status'")
		case leg.Major == in.Major && leg.Minor == in.Minor:
			if in.IsPartition && installESP != 0 && in.Name == partition.PartitionName(in.Disk, installRoot) {
				resumeDisk = "/dev/" + in.Disk
			}
		case !in.IsPartition && installESP != 0 && leg.Name == partition.PartitionName(in.Name, installRoot):
			resumeDisk = dev
			dev = "/dev/" + leg.Name
			p.Target, p.TargetName, p.TargetMajor, p.TargetMinor = dev, leg.Name, leg.Major, leg.Minor
			in = &blockdev.Info{Path: dev, Name: leg.Name, Major: leg.Major, Minor: leg.Minor, Disk: in.Name, IsPartition: true}
			if rp, ok := tgt.Table.Part(installRoot); ok {
				in.SizeBytes = rp.Sectors * uint64(tgt.Table.SectorSize)
			}
			p.TargetBytes = in.SizeBytes
		default:
			return nil, refuse(ExitBusyArray, dev, fmt.Sprintf("a migration of %s onto /dev/%s is under way", mr.Path, leg.Name),
				"continue it with --target /dev/"+leg.Name+", or stop it first")
		}
		switch mr.State {
		case MirrorCopying:
			p.Resume = fmt.Sprintf("%s is already being copied (%s of %s)", dev, humanize.IBytes(mr.CopiedBytes()), humanize.IBytes(mr.SizeBytes))
			if mr.Status != nil && len(mr.Status.Failed()) > 0 {
				// The copy cannot finish; running it is the way back: the
				// copy step sees the failed leg at once and puts the
				// session back on its snapshot (exit 20).
				p.Resume = fmt.Sprintf("the mirror of %s marks a leg failed (legs %s): this run puts the session back on its live snapshot and stops with exit 20; check %s (dmesg) before trying again",
					mr.Path, mr.Status.Health, dev)
			}
		case MirrorSwitched:
			p.Resume = fmt.Sprintf("%s already holds / alone; finishing the migration", dev)
		}
	}
	if err := planFinalize(p, sys, tgt, req, in, dev, mr.Path, resumeDisk, installESP); err != nil {
		return nil, err
	}
	if !continuing {
		if err := planFresh(p, tgt, req, in, dev, mr.SizeBytes, mr.LBS, mr.Path,
			fmt.Sprintf("a mirror cannot put larger logical blocks under a filesystem made for %d-byte ones; use a disk with %d-byte logical sectors", mr.LBS, mr.LBS)); err != nil {
			return nil, err
		}
		p.TargetID = targetID(tgt, in, dev, p.Layout != nil)
	}
	if mr.State != MirrorSwitched {
		if err := planCOW(p, sys, mr.SizeBytes); err != nil {
			return nil, err
		}
	}
	p.Steps = mirrorSteps(p, sys)
	return p, nil
}

func mirrorSteps(p *Plan, sys *System) []Step {
	var out []Step
	add := func(k StepKind, irr bool, f string, args ...any) {
		out = append(out, Step{Kind: k, Title: fmt.Sprintf(f, args...), Irreversible: irr})
	}
	mr := sys.Mirror
	if mr.State != MirrorSwitched {
		if p.Speed == SpeedFast {
			add(StepTune, false, "Let dm-mirror copy at full speed (fast mode)")
		} else {
			add(StepTune, false, "Throttle dm-mirror's copy to %d%% of its time (gentle mode: the session stays responsive)", GentleThrottle)
		}
		if p.Layout != nil {
			add(StepPartition, false, "Partition %s (GPT): %s", p.Disk, strings.Join(trimFields(p.Describe), "; "))
		}
		if mr.State == MirrorFresh {
			add(StepInsertMirror, false, "Put a mirror under / : move the live snapshot %s to %s and make %s a dm-mirror of it onto %s", mr.Path, "/dev/mapper/"+dmmirror.SrcName, mr.Path, p.Target)
		}
		add(StepRecover, false, "Copy %s from the live snapshot onto %s while the session runs", humanize.IBytes(p.CopyBytes), p.Target)
		add(StepSwitch, true, "Switch %s to a linear map of %s: from here on / lives on %s", mr.Path, p.Target, p.Target)
	}
	fs := p.FSType
	if fs == "" {
		fs = "filesystem"
	}
	add(StepGrowFS, false, "Grow the %s filesystem on / to fill %s (%s)", fs, p.Target, humanize.IBytes(p.TargetBytes))
	if f := p.Finalize; f != nil {
		add(StepFinalize, false, "Make it an installed system: %s", finalizeWhat(f))
	}
	if mr.State != MirrorSwitched {
		add(StepRestoreSpeed, false, "Restore dm-mirror's copy throttle")
	}
	if sys.Stack != nil {
		// After the insert the snapshot lives on as the relocated device;
		// live-rw itself stays, as the linear map / is mounted from.
		rs := *sys
		st := *sys.Stack
		st.DMName = dmmirror.SrcName
		rs.Stack = &st
		add(StepRelease, false, "Release the live stack: %s", releaseSummary(&rs))
	}
	return out
}
