package engine

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// Speed is how hard md may push the recovery.
type Speed string

const (
	// SpeedFast raises the array's recovery floor so md copies at full speed
	// even while the desktop is busy.
	SpeedFast Speed = "fast"
	// SpeedGentle leaves md's own throttling in place: recovery yields to
	// other I/O and the session stays responsive.
	SpeedGentle Speed = "gentle"
)

// FastFloorKBs is the sync_speed_min used in fast mode.
const FastFloorKBs = 2000000

// ParseSpeed accepts "fast" and "gentle".
func ParseSpeed(s string) (Speed, error) {
	switch Speed(s) {
	case SpeedFast, SpeedGentle:
		return Speed(s), nil
	}
	return "", fmt.Errorf("speed %q: want fast or gentle", s)
}

// Request is what the user asked for.
type Request struct {
	Target string
	Speed  Speed
	// RawDisk puts the filesystem on a whole disk without a partition
	// table instead of partitioning it (no boot loader can go there).
	RawDisk bool
	// Rand makes partition GUIDs; nil is crypto/rand (tests fix it).
	Rand io.Reader
	// NoFinalize only moves the data: no fstab, boot loader, initramfs or
	// scrubbing of live-only state.
	NoFinalize bool
	Hostname   string
	// Password becomes the live user's password; empty locks the account.
	Password string
	// PasswordFrom names where the password was read from ("--password-file
	// FILE"): when it is set, an empty Password is refused, not taken as
	// "lock the account".
	PasswordFrom string
	// Method forces one way of migrating (a Method's Name); "" lets
	// preflight take the first that applies.
	Method string
	// FS is the filesystem the copy method makes (CopyFSTypes; "" is
	// the first). The other methods keep the live root's.
	FS string
}

// Target is what preflight knows of the target device.
type Target struct {
	Info *blockdev.Info
	Err  error         // from inspecting it; ErrNotExist, ErrNotBlock...
	FS   *resize.Probe // filesystem found on it, if any
	// Table is the GPT of the disk that holds the target (the target
	// itself when it is a whole disk); nil when there is none.
	Table *partition.Layout
}

// StepKind names a step of the migration.
type StepKind string

const (
	StepPartition    StepKind = "partition"
	StepTune         StepKind = "tune-recovery"
	StepHotAdd       StepKind = "hot-add"
	StepRecover      StepKind = "recover"
	StepDropLive     StepKind = "remove-live-leg"
	StepGrowArray    StepKind = "grow-array"
	StepGrowFS       StepKind = "grow-filesystem"
	StepFinalize     StepKind = "finalize"
	StepRestoreSpeed StepKind = "restore-recovery-speed"
	StepRelease      StepKind = "release-live-stack"
	// The run-time mirror's own steps (MethodMirror).
	StepInsertMirror StepKind = "insert-mirror"
	StepSwitch       StepKind = "switch-to-target"
)

// GentleThrottle is the share of time (percent) dm-mirror's copy may take in
// gentle mode.
const GentleThrottle = 30

// Step is one entry of a plan.
type Step struct {
	Kind  StepKind `json:"step"`
	Title string   `json:"title"`
	// Irreversible marks the point of no return: before it, stopping puts the
	// live session back as it was; from it on, the migration is finished.
	Irreversible bool `json:"irreversible,omitempty"`
	// Installed: the installed system runs the step after the switch
	// (the copy method's finishing service), not this run.
	Installed bool `json:"on_installed_system,omitempty"`
}

// Plan is a migration laid out as data: --dry-run prints it, the wizard
// shows it, Run executes it.
type Plan struct {
	Array       string         `json:"array"` // md127
	ArrayPath   string         `json:"array_path"`
	Given       string         `json:"given"`  // the device as the user named it (confirmation)
	Target      string         `json:"target"` // the device that becomes the leg
	TargetName  string         `json:"target_name"`
	TargetMajor uint32         `json:"target_major"`
	TargetMinor uint32         `json:"target_minor"`
	TargetBytes uint64         `json:"target_bytes"`
	LiveLeg     *mdraid.Member `json:"live_leg,omitempty"`
	CopyBytes   uint64         `json:"copy_bytes"`
	FSType      string         `json:"fs_type"`
	Speed       Speed          `json:"speed"`
	Resume      string         `json:"resume,omitempty"` // why this plan continues an earlier run
	Destroys    []string       `json:"destroys,omitempty"`
	// Outside lists what the plan writes outside the target partition (a
	// partition install's boot loader on the disk).
	Outside      []string          `json:"writes_outside_target,omitempty"`
	Warnings     []string          `json:"warnings,omitempty"`
	Steps        []Step            `json:"steps"`
	SpeedMin     mdraid.SpeedLimit `json:"-"`
	SpeedMax     mdraid.SpeedLimit `json:"-"`
	COWNeedBytes uint64            `json:"cow_need_bytes"`
	COWFreeBytes uint64            `json:"cow_free_bytes"`
	// Finalize is what the finalize step works on; nil with --no-finalize.
	Finalize *FinalizeSpec `json:"finalize,omitempty"`
	// Layout is set in whole-disk mode: the disk is partitioned first and
	// the root partition becomes the array's new leg.
	Layout   *partition.Layout `json:"layout,omitempty"`
	Disk     string            `json:"disk,omitempty"`
	Describe []string          `json:"new_partitions,omitempty"`
	// TargetID is the device this plan writes first, as preflight saw it
	// (nil when the plan continues a run and md already holds the target).
	TargetID *TargetID `json:"target_identity,omitempty"`
	// Method names the way the plan moves the root (see Methods).
	Method string `json:"method"`
	// Copy is the copy method's part (nil for the others).
	Copy *CopySpec `json:"copy,omitempty"`
}

// FinalizeSpec says where the installed system boots from.
type FinalizeSpec struct {
	Disk    string `json:"disk"`     // whole disk for GRUB's BIOS part
	RootDev string `json:"root_dev"` // the partition / lives on
	// RootBlock is the block device / is mounted from while finalize runs
	// (the array); btrfs's st_dev does not name it.
	RootBlock string `json:"root_block,omitempty"`
	ESP       string `json:"esp,omitempty"`
	FSUUID    string `json:"fs_uuid"`
	FSType    string `json:"fs_type"`
	Hostname  string `json:"hostname,omitempty"`
	Password  string `json:"-"`
	// NewUUID: finalize gives the root filesystem a new UUID (after the
	// point of no return, before fstab, the initramfs and GRUB are
	// written); else UUIDWhy says why the medium's is kept.
	NewUUID bool   `json:"new_fs_uuid"`
	UUIDWhy string `json:"fs_uuid_kept_because,omitempty"`
}

// Has reports whether the plan contains step k.
func (p *Plan) Has(k StepKind) bool {
	for _, s := range p.Steps {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// COWNeed estimates the copy-on-write space a migration of an array of
// size bytes needs to finish: writes keep landing in the COW until the live
// leg leaves the array. The floor covers a desktop session's writes during a
// few minutes of copying; the proportional part covers longer copies.
func COWNeed(arrayBytes uint64) uint64 {
	return 64<<20 + arrayBytes/32
}

// COWHeadroom is how many more bytes the live session can write before the
// snapshot overflows: the free part of the COW, bounded by free RAM when the
// COW lives in RAM (dracut's sparse /overlay file claims 32 GiB on any
// machine).
func COWHeadroom(sys *System) (uint64, bool) {
	if sys.COW == nil || sys.Stack == nil {
		return 0, false
	}
	free := sys.COW.FreeSectors() * 512
	if sys.Stack.COWKind != "block" && sys.MemAvail > 0 && sys.MemAvail < free {
		free = sys.MemAvail
	}
	return free, true
}

// Plan lays out the migration of sys's md root onto tgt. It is pure:
// everything it needs was gathered before, and it writes nothing.
func (mdHook) Plan(sys *System, tgt Target, req Request) (*Plan, error) {
	dev := req.Target
	if err := targetInspected(tgt, dev); err != nil {
		return nil, err
	}
	in := tgt.Info
	a := sys.Array
	resumeDisk := ""
	if in.Major == a.Major && in.Minor == a.Minor {
		return nil, refuse(ExitLiveStack, dev, isWhat(dev, a.Path, "the array / runs on"), "name the disk or partition to install to")
	}
	if sys.LiveLeg != nil && in.Major == sys.LiveLeg.Major && in.Minor == sys.LiveLeg.Minor {
		return nil, refuse(ExitLiveStack, dev, fmt.Sprintf("is the live leg of %s (the RAM-backed live root)", a.Path), "name the disk or partition to install to")
	}
	if err := notInStack(sys.Stack, in, dev); err != nil {
		return nil, err
	}

	// A target that is already a member of the root array: an earlier run
	// was stopped or lost its process. Continue it.
	var tgtMember *mdraid.Member
	partOf := map[string]bool{}
	for _, pn := range in.Partitions {
		partOf[pn] = true
	}
	// The mode of a continued run (whole disk or partition) comes from the
	// disk: a whole-disk install left livemigrate's own three-partition
	// table on it, with the leg as its root partition. Anything else was a
	// partition install, whatever the user names now (issue 10: naming the
	// disk of a partition install once made the rerun format partition 2
	// as an ESP).
	installESP, installRoot := 0, 0
	if tgt.Table != nil {
		if esp, root, ok := partition.InstallLayout(*tgt.Table); ok {
			installESP, installRoot = esp, root
		}
	}
	for _, m := range sys.Others() {
		m := m
		if m.Major == in.Major && m.Minor == in.Minor {
			tgtMember = &m
			if in.IsPartition && installESP != 0 && in.Name == partition.PartitionName(in.Disk, installRoot) {
				// The root partition of a whole-disk install, named
				// by itself: continue the whole-disk plan.
				resumeDisk = "/dev/" + in.Disk
			}
		} else if partOf[m.Name] && !m.Faulty() {
			if installESP == 0 || m.Name != partition.PartitionName(in.Name, installRoot) {
				return nil, refuse(ExitBusyArray, dev, fmt.Sprintf("a migration into the partition /dev/%s is under way (it installs into that partition only; the disk's other partitions are not part of it)", m.Name),
					"continue it with --target /dev/"+m.Name+", or stop it first")
			}
			// Whole-disk mode, continued: the disk was partitioned and its
			// root partition is the leg.
			tgtMember = &m
			resumeDisk = dev
			dev = "/dev/" + m.Name
			in = &blockdev.Info{Path: dev, Name: m.Name, Major: m.Major, Minor: m.Minor, Disk: in.Name, IsPartition: true, SizeBytes: m.SizeKiB * 1024}
		} else if !m.Faulty() && sys.LiveLeg == nil && m.InSync() {
			return nil, refuse(ExitNotLive, "", "/ was already migrated to /dev/"+m.Name, "run 'livemigrate status' to see where / lives")
		} else if !m.Faulty() {
			return nil, refuse(ExitBusyArray, dev, fmt.Sprintf("%s already has /dev/%s as a leg", a.Path, m.Name), "continue that migration with --target /dev/"+m.Name+", or stop it first")
		}
	}
	if tgtMember == nil && sys.LiveLeg == nil {
		return nil, refuse(ExitNotLive, "", a.Path+" has no live leg: the live session was already migrated", "run 'livemigrate status' to see where / lives")
	}

	p := &Plan{
		Array: a.Name, ArrayPath: a.Path, Given: req.Target, Target: dev, TargetName: in.Name,
		TargetMajor: in.Major, TargetMinor: in.Minor, TargetBytes: in.SizeBytes,
		LiveLeg: sys.LiveLeg, CopyBytes: a.SizeBytes, Speed: req.Speed,
		SpeedMin: originalLimit(a.SpeedMin), SpeedMax: originalLimit(a.SpeedMax),
	}
	if p.Speed == "" {
		p.Speed = SpeedFast
	}
	if err := planFinalize(p, sys, tgt, req, in, dev, a.Path, resumeDisk, installESP); err != nil {
		return nil, err
	}

	if tgtMember == nil {
		lbsWhy := fmt.Sprintf("md cannot add a leg whose logical blocks are larger than the array's; use a disk with %d-byte logical sectors", sys.ArrayLBS)
		if err := planFresh(p, tgt, req, in, dev, a.SizeBytes, sys.ArrayLBS, "array", lbsWhy); err != nil {
			return nil, err
		}
	} else {
		switch {
		case tgtMember.InSync() && sys.LiveLeg == nil:
			p.Resume = fmt.Sprintf("%s already holds / alone; finishing the migration", dev)
		case tgtMember.InSync() && sys.LiveLeg.Faulty():
			p.Resume = fmt.Sprintf("%s is in sync and the live leg was already failed; removing it and finishing the migration", dev)
		case tgtMember.InSync():
			p.Resume = fmt.Sprintf("%s is already in sync with the live leg", dev)
		case tgtMember.Faulty():
			return nil, refuse(ExitBusyArray, dev, "is a failed leg of "+a.Path, fmt.Sprintf("check the disk (dmesg), take it out with 'mdadm %s --remove %s', then try again", a.Path, dev))
		default:
			p.Resume = fmt.Sprintf("%s is already being copied (%s)", dev, progressText(a))
		}
	}

	// A failed live leg takes no more writes: its COW no longer matters.
	if sys.LiveLeg != nil && !sys.LiveLeg.Faulty() {
		if err := planCOW(p, sys, a.SizeBytes); err != nil {
			return nil, err
		}
	}
	if tgtMember == nil {
		p.TargetID = targetID(tgt, in, dev, p.Layout != nil)
	}
	p.Steps = steps(p, sys, tgtMember)
	return p, nil
}

// targetInspected refuses a target preflight could not inspect.
func targetInspected(tgt Target, dev string) error {
	if tgt.Err == nil && tgt.Info != nil {
		return nil
	}
	switch {
	case errors.Is(tgt.Err, blockdev.ErrNotBlock):
		return refuse(ExitNoDevice, dev, trimDev(tgt.Err, dev), "name a disk or partition under /dev (see lsblk)")
	case errors.Is(tgt.Err, blockdev.ErrNotExist):
		return refuse(ExitNoDevice, dev, "no such file or device", "name a disk or partition under /dev (see lsblk)")
	default:
		return refuse(ExitNoDevice, dev, fmt.Sprintf("cannot inspect it: %v", tgt.Err), "name a disk or partition under /dev (see lsblk)")
	}
}

// notInStack refuses a target that is part of the live stack or on the disk
// of the live medium.
func notInStack(st *overlay.Stack, in *blockdev.Info, dev string) error {
	if st == nil {
		return nil
	}
	if md := st.MediumDisk.Name; md != "" && in.Disk == md {
		what := "holds the live medium"
		if in.IsPartition {
			what = "is a partition of /dev/" + md + ", the disk that holds the live medium"
		}
		return refuse(ExitLiveStack, dev, what, "installing over the medium would destroy the system while it runs from it; use another disk")
	}
	for _, r := range stackRoles(st) {
		if r.dev.Major == in.Major && r.dev.Minor == in.Minor && !r.dev.IsZero() {
			return refuse(ExitLiveStack, dev, isWhat(dev, "/dev/"+r.dev.Name, r.role+", part of the live stack"), "the live system runs on it; name the disk or partition to install to")
		}
	}
	return nil
}

// planFinalize sets what the finalize step works on (unless --no-finalize)
// and the plan's filesystem type. rootBlock is the device / is mounted from
// while finalize runs; resumeDisk and installESP are set when a whole-disk
// install is continued.
func planFinalize(p *Plan, sys *System, tgt Target, req Request, in *blockdev.Info, dev, rootBlock, resumeDisk string, installESP int) error {
	if !req.NoFinalize {
		p.Finalize = &FinalizeSpec{Disk: "/dev/" + in.Disk, RootDev: dev, Hostname: req.Hostname, Password: req.Password}
		if resumeDisk != "" {
			// Resuming a whole-disk install: the ESP is the one its table has.
			p.Finalize.Disk, p.Finalize.ESP = resumeDisk, partition.PartitionPath(resumeDisk, installESP)
		}
		if sys.RootFS != nil {
			p.Finalize.FSUUID, p.Finalize.FSType = sys.RootFS.UUID, string(sys.RootFS.Type)
			p.Finalize.RootBlock = rootBlock
			ft := sys.RootFS.Ext.Features
			up := finalize.PlanUUID(finalize.FSFacts{Type: string(sys.RootFS.Type),
				CsumSeed: ft.MetadataCsumSeed(), Checksums: ft.MetadataCsum() || ft.GdtCsum(), StableInodes: ft.StableInodes(),
				Kernel: sys.Kernel, Grub: sys.Grub})
			p.Finalize.NewUUID, p.Finalize.UUIDWhy = up.New, up.Why
			if up.Warning != "" {
				p.Warnings = append(p.Warnings, up.Warning)
			}
			if !up.New {
				p.Warnings = append(p.Warnings, fmt.Sprintf("the installed filesystem keeps the medium's UUID %s: %s. Every install from this medium has it: do not put two of them in one machine", sys.RootFS.UUID, strings.TrimSuffix(up.Why, "; the medium's UUID is kept")))
			}
		}
	}
	if p.Finalize != nil && in.IsPartition && resumeDisk == "" {
		if err := partitionBoot(p, sys, tgt, in); err != nil {
			return err
		}
	}
	if sys.RootFS != nil {
		p.FSType = string(sys.RootFS.Type)
	} else {
		p.FSType = sys.RootFSType
	}
	return nil
}

// planFresh checks a target no earlier run touched, against a root device
// of rootBytes with rootLBS-byte logical blocks (rootWhat names it, lbsWhy
// says why larger blocks cannot go under it), and lays out a whole-disk
// install when the target is a disk.
func planFresh(p *Plan, tgt Target, req Request, in *blockdev.Info, dev string, rootBytes uint64, rootLBS uint32, rootWhat, lbsWhy string) error {
	if err := checkFree(in, dev); err != nil {
		return err
	}
	if in.ReadOnly {
		return refuse(ExitReadOnly, dev, "is read-only", "check the write-protect switch, or 'blockdev --setrw "+dev+"' if it was set read-only by software")
	}
	if rootLBS != 0 && in.LogicalBlockSize > rootLBS {
		return refuse(ExitBlockSize, dev, fmt.Sprintf("device is %d-byte sectors, %s is %d", in.LogicalBlockSize, rootWhat, rootLBS), lbsWhy)
	}
	if in.SizeBytes < rootBytes {
		return refuse(ExitTooSmall, dev, fmt.Sprintf("is %s (%d bytes), the live root needs at least %s (%d bytes)", humanize.IBytes(in.SizeBytes), in.SizeBytes, humanize.IBytes(rootBytes), rootBytes), "choose a larger disk or partition")
	}
	p.Destroys = destroys(tgt)
	if in.IsPartition || req.RawDisk {
		return nil
	}
	lbs := in.LogicalBlockSize
	if lbs == 0 {
		lbs = 512
	}
	l, err := partition.PlanInstall(in.SizeBytes, lbs, rootBytes, req.Rand)
	if err != nil {
		why := err.Error()
		if i := strings.Index(why, "the disk is "); i >= 0 {
			why = strings.TrimSuffix(why[i+len("the disk is "):], "; choose a larger disk")
		}
		return refuse(ExitTooSmall, dev, "is too small for a whole-disk install: it is "+why, "choose a larger disk, or install into an existing partition")
	}
	p.Layout, p.Disk = &l, dev
	p.Describe = l.Describe(dev)
	root := partition.PartitionPath(dev, len(l.Parts))
	p.Target = root
	p.TargetName = ""
	p.TargetMajor, p.TargetMinor = 0, 0 // known once the kernel made the partition
	if rp, ok := l.Part(len(l.Parts)); ok {
		p.TargetBytes = rp.Sectors * uint64(l.SectorSize)
	}
	if p.Finalize != nil {
		p.Finalize.Disk, p.Finalize.RootDev = dev, root
		p.Finalize.ESP = partition.PartitionPath(dev, 2)
	}
	return nil
}

// planCOW refuses a migration the live snapshot's copy-on-write space
// cannot see through (a root of rootBytes to copy), and records the need.
func planCOW(p *Plan, sys *System, rootBytes uint64) error {
	p.COWNeedBytes = COWNeed(rootBytes)
	free, ok := COWHeadroom(sys)
	if !ok {
		p.Warnings = append(p.Warnings, "could not read the copy-on-write usage: "+sys.COWError)
		return nil
	}
	p.COWFreeBytes = free
	if sys.COW.Failed() {
		return refuse(ExitCOWHeadroom, "", fmt.Sprintf("the live snapshot %s has overflowed or is invalid", sys.Stack.DMName), "the live root can no longer take writes; save your files elsewhere and reboot")
	}
	if free < p.COWNeedBytes {
		hint := "the live session has written nearly all its copy-on-write space, and deleting files does not give it back: save your files elsewhere and boot again with a larger COW (rd.livemigrate.cowsize=, or rd.live.overlay.size= with dracut) or with zram (rd.livemigrate.cow=zram)"
		if sys.MemAvail > 0 && free == sys.MemAvail {
			hint = "the COW lives in RAM and RAM is nearly full: close programs to free memory, then try again"
		}
		return refuse(ExitCOWHeadroom, "", fmt.Sprintf("only %s of copy-on-write space left, the migration needs about %s", humanize.IBytes(free), humanize.IBytes(p.COWNeedBytes)), hint)
	}
	return nil
}

// targetID is the identity of the device a fresh plan writes first.
func targetID(tgt Target, in *blockdev.Info, dev string, wholeDisk bool) *TargetID {
	id := &TargetID{Path: dev, Major: in.Major, Minor: in.Minor, SizeBytes: in.SizeBytes}
	if wholeDisk {
		id.Table = tableDigest(tgt.Table)
	}
	return id
}

// partitionBoot works out, for a partition install with finalize, how the
// installed system will boot and what that writes outside the partition:
// GRUB's boot code in the disk's MBR and its core image in the BIOS boot
// partition (GPT) or the gap after the MBR. It refuses what cannot boot on
// the firmware this machine runs: UEFI (an ESP shared with what else is on
// the disk is not something livemigrate writes), and a GPT disk without a
// BIOS boot partition (grub-install has nowhere to put its core image).
func partitionBoot(p *Plan, sys *System, tgt Target, in *blockdev.Info) error {
	disk := "/dev/" + in.Disk
	hint := fmt.Sprintf("install onto the whole disk (--target %s), which gets its own boot partitions, or add --no-finalize and set up the boot loader yourself", disk)
	if sys.UEFI {
		return refuse(ExitNoBootPath, p.Given, fmt.Sprintf("this machine starts by UEFI, and a partition install would have to put its boot loader on an EFI system partition of %s shared with what is already there, which livemigrate does not do", disk), hint)
	}
	p.Outside = append(p.Outside, fmt.Sprintf("GRUB's boot code in the MBR of %s (its first 440 bytes)", disk))
	if tgt.Table == nil {
		p.Outside = append(p.Outside, fmt.Sprintf("GRUB's core image in the gap between the MBR and the first partition of %s", disk))
		return nil
	}
	for _, pt := range tgt.Table.Parts {
		if pt.Type == partition.TypeBIOSBoot {
			p.Outside = append(p.Outside, fmt.Sprintf("GRUB's core image in the BIOS boot partition %s", partition.PartitionPath(disk, pt.Number)))
			return nil
		}
	}
	return refuse(ExitNoBootPath, p.Given, fmt.Sprintf("%s has a GPT without a BIOS boot partition, so GRUB has nowhere to put the core image that boots this partition by BIOS", disk), hint)
}

func trimDev(err error, dev string) string {
	s := err.Error()
	return strings.TrimPrefix(s, dev+" ")
}

// checkFree refuses a target that something uses, and says how to free it.
func checkFree(in *blockdev.Info, dev string) error {
	var uses, fixes []string
	for _, m := range in.Mounts {
		uses = append(uses, "mounted on "+m)
		fixes = append(fixes, "umount "+m)
	}
	for _, m := range in.PartMounts {
		uses = append(uses, m)
		if _, mp, ok := strings.Cut(m, " on "); ok {
			fixes = append(fixes, "umount "+mp)
		}
	}
	holders := append([]string(nil), in.Holders...)
	for _, h := range in.PartHolders {
		uses = append(uses, h)
		if _, hd, ok := strings.Cut(h, " held by "); ok {
			holders = append(holders, hd)
		}
	}
	for _, h := range in.Holders {
		if w := in.HolderWhat[h]; w != "" {
			uses = append(uses, "held by /dev/"+h+" ("+w+")")
			continue
		}
		uses = append(uses, "held by "+holderName(h))
	}
	for _, h := range holders {
		w := in.HolderWhat[h]
		_, name, _ := strings.Cut(w, "volume ")
		switch {
		case strings.HasPrefix(h, "md"):
			fixes = append(fixes, "mdadm --stop /dev/"+h)
		case strings.HasPrefix(w, "LVM "):
			fixes = append(fixes, "lvchange -an /dev/mapper/"+name)
		case strings.HasPrefix(w, "LUKS "):
			fixes = append(fixes, "cryptsetup close "+name)
		case strings.HasPrefix(h, "dm-"):
			fixes = append(fixes, "close /dev/"+h+" (lvchange -an, cryptsetup close or dmsetup remove)")
		}
	}
	if in.Swap {
		uses = append(uses, "in use as swap")
		fixes = append(fixes, "swapoff "+dev)
	}
	if len(uses) == 0 {
		return nil
	}
	return refuse(ExitInUse, dev, "is in use: "+strings.Join(uses, ", "), "free it first ("+strings.Join(fixes, "; ")+"), then try again")
}

// isWhat says what a refused device is, naming the kernel's device only when
// the user named it some other way (a symlink, a /dev/mapper name).
func isWhat(given, canonical, what string) string {
	if given == canonical {
		return "is " + what
	}
	return "is " + canonical + ", " + what
}

type stackRole struct {
	dev  overlay.Dev
	role string
}

// stackRoles names every device of the live stack by what it does there.
func stackRoles(st *overlay.Stack) []stackRole {
	rs := []stackRole{
		{st.Snapshot, "the live snapshot " + st.DMName},
		{st.Origin, "the origin of " + st.DMName + " (" + st.OriginFile + ")"},
		{st.OriginLoop, "the loop over " + st.OriginFile},
		{st.COW, "the copy-on-write store of " + st.DMName},
		{st.SquashfsLoop, "the loop over " + st.SquashfsFile},
		{st.Medium, "the live medium"},
		{st.MediumDisk, "the disk of the live medium"},
	}
	for i, s := range st.Siblings {
		name := ""
		if i < len(st.SiblingNames) {
			name = " " + st.SiblingNames[i]
		}
		rs = append(rs, stackRole{s, "the device-mapper device" + name + " over the live image"})
	}
	return rs
}

func destroys(t Target) []string {
	var out []string
	in := t.Info
	if len(in.Partitions) > 0 {
		out = append(out, fmt.Sprintf("the partition table of %s and its partitions %s", in.Path, strings.Join(in.Partitions, ", ")))
	}
	if t.FS != nil {
		what := fmt.Sprintf("the %s filesystem on %s", t.FS.Type, in.Path)
		if t.FS.Label != "" {
			what += fmt.Sprintf(" (label %q)", t.FS.Label)
		}
		out = append(out, what)
	}
	rest := "everything on"
	if len(out) > 0 {
		rest = "everything else on"
	}
	out = append(out, fmt.Sprintf("%s %s (%s)", rest, in.Path, humanize.IBytes(in.SizeBytes)))
	return out
}

func progressText(a *mdraid.Array) string {
	c := a.Copied()
	if c == nil {
		return a.SyncAction
	}
	return fmt.Sprintf("%s %.1f%%", a.SyncAction, 100*c.Fraction())
}

func steps(p *Plan, sys *System, member *mdraid.Member) []Step {
	var out []Step
	add := func(k StepKind, irr bool, f string, args ...any) {
		out = append(out, Step{Kind: k, Title: fmt.Sprintf(f, args...), Irreversible: irr})
	}
	if sys.LiveLeg != nil {
		if p.Speed == SpeedFast {
			add(StepTune, false, "Raise %s's recovery floor to %d MB/s (fast mode)", p.ArrayPath, FastFloorKBs/1000)
		} else {
			add(StepTune, false, "Keep md's recovery throttling (gentle mode: the session stays responsive)")
		}
		if p.Layout != nil {
			add(StepPartition, false, "Partition %s (GPT): %s", p.Disk, strings.Join(trimFields(p.Describe), "; "))
		}
		if member == nil {
			add(StepHotAdd, false, "Add %s to %s as its second leg", p.Target, p.ArrayPath)
		}
		add(StepRecover, false, "Copy %s from the live leg onto %s while the session runs", humanize.IBytes(p.CopyBytes), p.Target)
		leg := "/dev/" + sys.LiveLeg.Name
		if sys.Stack != nil && sys.Stack.Snapshot.Path != "" {
			leg = sys.Stack.Snapshot.Path
		}
		add(StepDropLive, true, "Remove the live leg %s from %s: from here on / lives on %s", leg, p.ArrayPath, p.Target)
	}
	add(StepGrowArray, false, "Grow %s to fill %s (%s)", p.ArrayPath, p.Target, humanize.IBytes(p.TargetBytes))
	fs := p.FSType
	if fs == "" {
		fs = "filesystem"
	}
	add(StepGrowFS, false, "Grow the %s filesystem on / to fill the array", fs)
	if f := p.Finalize; f != nil {
		add(StepFinalize, false, "Make it an installed system: %s", finalizeWhat(f))
	}
	if sys.LiveLeg != nil {
		add(StepRestoreSpeed, false, "Restore %s's recovery speed limits", p.ArrayPath)
	}
	if sys.Stack != nil {
		add(StepRelease, false, "Release the live stack: %s", releaseSummary(sys))
	}
	return out
}

// finalizeWhat lists what the finalize step will do, for the plan.
func finalizeWhat(f *FinalizeSpec) string {
	what := "fstab by UUID, a new machine-id"
	if f.NewUUID {
		what = "a new filesystem UUID, " + what
	}
	what += " and SSH host keys, no autologin, passwordless sudo or empty passwords, an initramfs without the live hooks, GRUB on " + f.Disk
	if f.ESP != "" {
		what += " and " + f.ESP
	}
	if f.Hostname != "" {
		what += ", hostname " + f.Hostname
	}
	if f.Password != "" {
		what += ", the live user's password you chose"
	} else {
		what += ", the live user locked until you set a password"
	}
	return what
}

func releaseSummary(sys *System) string {
	st := sys.Stack
	parts := []string{st.DMName}
	parts = append(parts, st.SiblingNames...)
	if !st.COW.IsZero() {
		cow := "COW " + st.COW.Name
		if sys.COW != nil && st.COWKind != "block" {
			cow += fmt.Sprintf(" (%s of RAM)", humanize.IBytes(sys.COW.UsedSectors*512))
		}
		parts = append(parts, cow)
	}
	if !st.OriginLoop.IsZero() {
		parts = append(parts, st.OriginLoop.Name)
	}
	if st.SquashfsMount != "" {
		parts = append(parts, st.SquashfsMount)
	}
	if st.MediumMount != "" {
		m := st.MediumMount
		if st.MediumIsCD {
			m += " (eject " + st.Medium.Name + ")"
		}
		parts = append(parts, m)
	}
	return strings.Join(parts, ", ")
}

// Render prints the plan for people.
func (p *Plan) Render() string {
	var b strings.Builder
	if p.Disk != "" {
		fmt.Fprintf(&b, "Plan: install the running live system onto the whole disk %s (root partition %s, %s)\n", p.Disk, p.Target, humanize.IBytes(p.TargetBytes))
	} else {
		fmt.Fprintf(&b, "Plan: install the running live system onto %s (%s)\n", p.Target, humanize.IBytes(p.TargetBytes))
	}
	if p.Method == MethodMirror {
		// The md path is the usual one and says so in its steps.
		fmt.Fprintf(&b, "  How: a mirror put under %s while it runs (%s: no boot hook needed)\n", p.ArrayPath, p.Method)
	}
	if p.Resume != "" {
		fmt.Fprintf(&b, "  Continuing: %s\n", p.Resume)
	}
	if len(p.Destroys) > 0 {
		fmt.Fprintf(&b, "  This destroys:\n")
		for _, d := range p.Destroys {
			fmt.Fprintf(&b, "    - %s\n", d)
		}
	}
	if len(p.Outside) > 0 {
		fmt.Fprintf(&b, "  Also writes, outside %s:\n", p.Target)
		for _, d := range p.Outside {
			fmt.Fprintf(&b, "    - %s\n", d)
		}
	}
	if len(p.Describe) > 0 {
		fmt.Fprintf(&b, "  New partitions on %s:\n", p.Disk)
		for _, d := range p.Describe {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	if p.COWNeedBytes > 0 && p.COWFreeBytes > 0 {
		fmt.Fprintf(&b, "  Copy-on-write headroom: %s free, about %s needed\n", humanize.IBytes(p.COWFreeBytes), humanize.IBytes(p.COWNeedBytes))
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "  Warning: %s\n", w)
	}
	for i, s := range p.Steps {
		mark := ""
		if s.Irreversible {
			mark = "  <- point of no return"
		}
		fmt.Fprintf(&b, "  %d. %s%s\n", i+1, s.Title, mark)
	}
	return b.String()
}

func holderName(h string) string {
	switch {
	case strings.HasPrefix(h, "md"):
		return "/dev/" + h + " (md array)"
	case strings.HasPrefix(h, "dm-"):
		return "/dev/" + h + " (device-mapper: LVM, LUKS or similar)"
	}
	return "/dev/" + h
}

// trimFields squeezes the column padding of Describe's lines.
func trimFields(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strings.Join(strings.Fields(l), " ")
	}
	return out
}

// originalLimit undoes what a killed run may have left: livemigrate's own
// fast value is not the user's setting, so the system default is what to
// restore.
func originalLimit(l mdraid.SpeedLimit) mdraid.SpeedLimit {
	if l.Local && l.KBs == FastFloorKBs {
		return mdraid.SpeedLimit{}
	}
	return l
}
