package engine

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/fileroot"
)

// MethodCopy is the file copy's name in plans and messages.
const MethodCopy = "copy"

// CopyStaging is where the copy method mounts the target while the live
// session runs; a mount left there is an earlier run's.
const CopyStaging = "/run/livemigrate/target"

// CopySource is where the copy method binds a tmpfs root, without the
// mounts below it (/proc, /sys, /dev, /run, ...), to copy it from.
const CopySource = "/run/livemigrate/source"

// CopyFSTypes are the filesystems the copy method makes, the default
// first.
var CopyFSTypes = []string{"ext4", "xfs", "btrfs"}

// The copy method's own steps.
const (
	StepMakeFS         StepKind = "make-filesystem"
	StepMountTarget    StepKind = "mount-target"
	StepCopyFiles      StepKind = "copy-files"
	StepPrepareSwitch  StepKind = "prepare-switch"
	StepSoftReboot     StepKind = "soft-reboot"
	StepUnmountEarlier StepKind = "unmount-earlier-copy"
)

// SoftRebootSystemd is the first systemd whose soft-reboot switches into
// /run/nextroot.
const SoftRebootSystemd = 254

// CopySpec is what the copy method copies and how it switches: the part
// of the plan the switch and the installed system's finishing service
// read back (copy.go's Plan writes it, copy_switch.go acts on it).
type CopySpec struct {
	Root *fileroot.Root `json:"file_root"`
	// Lower: the image layers to copy, bottom first (the order they are
	// laid down in); Upper: the session's changes ("" for none).
	Lower []string `json:"lower_bottom_first"`
	Upper string   `json:"upper,omitempty"`
	// Tree: a tmpfs root, no layers: it is bound here (CopySource, a
	// non-recursive private bind mount of /, read-only) while a pass
	// copies it, as a plain tree.
	Tree string `json:"tree,omitempty"`
	// UsedBytes and Entries: what the root held when the plan was made.
	UsedBytes uint64 `json:"used_bytes"`
	Entries   uint64 `json:"entries"`
	// FSUUID is the new filesystem's UUID, chosen by the plan.
	FSUUID  string `json:"fs_uuid"`
	Staging string `json:"staging"`
	// Earlier is the device an earlier run left mounted on Staging,
	// which this plan unmounts first ("" when none).
	Earlier string `json:"earlier,omitempty"`
	// Executable is this livemigrate (the one the switch service runs).
	Executable string `json:"executable,omitempty"`
	// Eject the medium, or leave what the live system ran from in place,
	// when the installed system releases it (the migrate command's
	// --no-eject and --keep-live-stack).
	Eject     bool `json:"eject"`
	NoRelease bool `json:"no_release,omitempty"`
}

// copyMethod is the way for a file-based live root (overlayfs, tmpfs): no
// block device holds the root, so its files are copied onto a new
// filesystem while the session runs; at the switch the session's
// programs stop, what changed since is copied, and systemd soft-reboots
// into the target.
type copyMethod struct{}

func (copyMethod) Name() string { return MethodCopy }

func (copyMethod) Applies(sys *System) *Refusal {
	fr := sys.FileRoot
	if fr == nil {
		if sys.Array != nil || sys.Mirror != nil {
			return notOurs(refuse(ExitNotLive, "", "/ is on a block device, not a file-based live root (overlayfs or tmpfs)", ""))
		}
		return notOurs(refuse(ExitNotLive, "", "/ is not overlayfs or tmpfs", ""))
	}
	if fr.Layers != nil && len(fr.Layers.Data) > 0 {
		return refuse(ExitNotLive, "", "/ is an overlayfs with data-only layers ("+strings.Join(fr.Layers.Data, ", ")+"), whose files are not copied layer by layer yet", "")
	}
	if sys.SoftReboot != "" {
		return refuse(ExitNotLive, "", "/ is "+fileRootName(fr)+", but "+sys.SoftReboot,
			"the copy method switches with systemd's soft-reboot (systemd 254 or later as PID 1); boot a newer medium")
	}
	if sys.FileUsageError != "" {
		return refuse(ExitNotLive, "", "cannot measure what / holds: "+sys.FileUsageError, "")
	}
	return nil
}

// Plan lays out the copy of sys's file-based root onto tgt. Pure, but for
// the new filesystem's UUID, drawn from req.Rand.
func (copyMethod) Plan(sys *System, tgt Target, req Request) (*Plan, error) {
	dev := req.Target
	if err := targetInspected(tgt, dev); err != nil {
		return nil, err
	}
	in := tgt.Info
	fr := sys.FileRoot
	if err := notOnMedium(fr, in, dev); err != nil {
		return nil, err
	}
	fsType := req.FS
	if fsType == "" {
		fsType = CopyFSTypes[0]
	}
	if !sys.Mkfs[fsType] {
		return nil, refuse(ExitNoTool, "", fmt.Sprintf("--fs %s: mkfs.%s is not installed in the live system", fsType, fsType),
			"install it in the session ("+mkfsPackage(fsType)+") or choose another --fs ("+strings.Join(CopyFSTypes, ", ")+")")
	}
	// An earlier run stopped or killed before the switch left its
	// staging mount: the plan discards that partial copy, and says so.
	resume := ""
	if sys.CopyStaging != "" {
		name := filepath.Base(sys.CopyStaging)
		if name == in.Name || (!in.IsPartition && slices.Contains(in.Partitions, name)) {
			resume = fmt.Sprintf("an earlier run stopped before the switch; the partial copy on %s (mounted on %s) is discarded and the copy starts again", sys.CopyStaging, CopyStaging)
			in = withoutStaging(in)
		} else {
			return nil, refuse(ExitBusyArray, dev, fmt.Sprintf("an earlier copy onto %s stopped before the switch (it is still mounted on %s)", sys.CopyStaging, CopyStaging),
				"run the same command with --target "+sys.CopyStaging+" to start it again, or 'umount "+CopyStaging+"' to give it up")
		}
	}
	uuid, err := newUUID(req.Rand)
	if err != nil {
		return nil, err
	}
	need := copyNeed(sys.FileUsage.Bytes)
	p := &Plan{
		Array: "/", ArrayPath: "/", Given: req.Target, Target: dev, TargetName: in.Name,
		TargetMajor: in.Major, TargetMinor: in.Minor, TargetBytes: in.SizeBytes,
		CopyBytes: sys.FileUsage.Bytes, FSType: fsType, Resume: resume, Method: MethodCopy,
		Copy: &CopySpec{Root: fr, UsedBytes: sys.FileUsage.Bytes, Entries: sys.FileUsage.Entries, FSUUID: uuid, Staging: CopyStaging},
	}
	if resume != "" {
		p.Copy.Earlier = sys.CopyStaging
	}
	if fr.Layers != nil {
		for i := len(fr.Layers.Lower) - 1; i >= 0; i-- {
			p.Copy.Lower = append(p.Copy.Lower, fr.Layers.Lower[i])
		}
		p.Copy.Upper = fr.Layers.Upper
	} else {
		p.Copy.Tree = CopySource
	}
	if !req.NoFinalize {
		p.Finalize = &FinalizeSpec{Disk: "/dev/" + in.Disk, RootDev: dev, RootBlock: dev, FSUUID: uuid, FSType: fsType,
			Hostname: req.Hostname, Password: req.Password, UUIDWhy: "the copy method made the filesystem with a UUID of its own"}
		if in.IsPartition {
			if err := partitionBoot(p, sys, tgt, in); err != nil {
				return nil, err
			}
		}
	}
	if err := planFresh(p, tgt, req, in, dev, need, 0, "", ""); err != nil {
		return nil, err
	}
	if p.Finalize != nil {
		p.Finalize.RootBlock = p.Target
	}
	if inodes := inodesFor(fsType, p.TargetBytes); inodes != 0 && sys.FileUsage.Entries > inodes {
		return nil, refuse(ExitTooSmall, dev, fmt.Sprintf("a new %s filesystem on it would have about %d inodes, and / has %d names", fsType, inodes, sys.FileUsage.Entries), "choose a larger disk or partition, or --fs xfs or btrfs (they make inodes as needed)")
	}
	p.TargetID = targetID(tgt, in, dev, p.Layout != nil)
	p.Steps = copySteps(p)
	p.Warnings = append(p.Warnings, fmt.Sprintf("the session's programs are stopped at step %d and start again on the installed system: save your work before it; open windows and terminals close (files, settings and installed packages are kept)", switchStep(p)))
	return p, nil
}

// adoptUUID makes p's new filesystem get uuid (the one a reviewed plan
// showed).
func adoptUUID(p *Plan, uuid string) {
	p.Copy.FSUUID = uuid
	if p.Finalize != nil {
		p.Finalize.FSUUID = uuid
	}
	p.Steps = copySteps(p)
}

// switchStep is the soft-reboot step's number in p (from 1).
func switchStep(p *Plan) int {
	for i, s := range p.Steps {
		if s.Kind == StepSoftReboot {
			return i + 1
		}
	}
	return 0
}

func copySteps(p *Plan) []Step {
	var out []Step
	add := func(k StepKind, irr, after bool, f string, args ...any) {
		out = append(out, Step{Kind: k, Title: fmt.Sprintf(f, args...), Irreversible: irr, Installed: after})
	}
	c := p.Copy
	if c.Earlier != "" {
		add(StepUnmountEarlier, false, false, "Unmount the earlier run's partial copy (%s) from %s", c.Earlier, c.Staging)
	}
	if p.Layout != nil {
		add(StepPartition, false, false, "Partition %s (GPT): %s", p.Disk, strings.Join(trimFields(p.Describe), "; "))
	}
	add(StepMakeFS, false, false, "Make a new %s filesystem on %s (UUID %s)", p.FSType, p.Target, c.FSUUID)
	add(StepMountTarget, false, false, "Mount it on %s", c.Staging)
	var from []string
	for _, l := range c.Lower {
		from = append(from, l)
	}
	what := "the files of /"
	if c.Tree != "" {
		what = "the tmpfs root's own files, from a read-only bind mount of / on " + c.Tree + " that leaves out the mounts below it (/proc, /sys, /dev, /run and the others)"
	}
	if len(from) > 0 {
		what = "the image's layers from their own mounts (" + strings.Join(from, ", ") + ", bottom first)"
		if c.Upper != "" {
			what += ", then the session's changes (" + c.Upper + ")"
		}
	}
	add(StepCopyFiles, false, false, "Copy %s in %d names onto %s while the session runs: %s, keeping owners, modes, times, hard links, extended attributes and capabilities", humanize.IBytes(c.UsedBytes), c.Entries, p.Target, what)
	add(StepPrepareSwitch, false, false, "Prepare the switch: check that %s mounts, and stage the service that stops the session", p.Target)
	add(StepSoftReboot, true, false, "Stop the session's programs, copy what changed since the copy began, write the installed system's /etc/fstab (root UUID=%s), and soft-reboot into %s: the kernel keeps running, firmware, boot loader and initrd are skipped, and the system starts again from %s", c.FSUUID, p.Target, p.Target)
	if f := p.Finalize; f != nil {
		add(StepFinalize, false, true, "On the installed system: make it boot on its own: remove the live boot packages (live-boot, live-config, casper), %s", finalizeWhat(f))
	}
	add(StepRelease, false, true, "On the installed system: release the live medium: %s", copyReleaseSummary(c))
	return out
}

// fileRootName says what kind of file-based root fr is, for messages.
func fileRootName(fr *fileroot.Root) string {
	if fr.FSType == "tmpfs" {
		return "a tmpfs"
	}
	return "an overlayfs"
}

func copyReleaseSummary(c *CopySpec) string {
	fr := c.Root
	var parts []string
	if fr.FSType == "tmpfs" {
		// The old root lives on only as long as something refers to it:
		// the soft-reboot stops every program and lets it go.
		parts = append(parts, fmt.Sprintf("the %s of RAM the tmpfs root holds, freed when the soft-reboot lets the old root go", humanize.IBytes(c.UsedBytes)))
	}
	for _, m := range fr.Live {
		s := m.MountPoint + " (" + m.Role + ")"
		if m.Loop != "" {
			s += " and " + m.Loop
		}
		parts = append(parts, s)
	}
	if fr.Medium != "" && fr.MediumIsCD {
		parts = append(parts, "eject "+fr.Medium)
	}
	if len(parts) == 0 {
		return "nothing is left to release"
	}
	return strings.Join(parts, ", ")
}

// copyNeed is the space a copy of a root holding used bytes needs: the
// data, an eighth more for the new filesystem's own metadata and the
// session's writes during the copy, and 256 MiB of room.
func copyNeed(used uint64) uint64 {
	return used + used/8 + 256<<20
}

// inodesFor estimates the inodes mkfs makes on size bytes (0: as needed).
func inodesFor(fsType string, size uint64) uint64 {
	if fsType == "ext4" {
		return size / 16384 // mke2fs.conf's default inode_ratio
	}
	return 0
}

func mkfsPackage(fs string) string {
	switch fs {
	case "xfs":
		return "Debian: apt install xfsprogs"
	case "btrfs":
		return "Debian: apt install btrfs-progs"
	}
	return "Debian: apt install e2fsprogs"
}

// notOnMedium refuses a target that holds the live medium.
func notOnMedium(fr *fileroot.Root, in *blockdev.Info, dev string) error {
	if fr.Medium == "" {
		return nil
	}
	name, disk := filepath.Base(fr.Medium), fr.MediumDisk
	if disk == "" {
		disk = name
	}
	if in.Name == name || in.Disk == name || in.Disk == disk {
		return refuse(ExitLiveStack, dev, "holds the live medium ("+fr.Medium+")", "installing over the medium would destroy the system while it runs from it; use another disk")
	}
	return nil
}

// withoutStaging is in without the earlier run's staging mount (the plan
// unmounts it before anything else).
func withoutStaging(in *blockdev.Info) *blockdev.Info {
	cp := *in
	cp.Mounts = nil
	for _, m := range in.Mounts {
		if m != CopyStaging {
			cp.Mounts = append(cp.Mounts, m)
		}
	}
	cp.PartMounts = nil
	for _, m := range in.PartMounts {
		if !strings.HasSuffix(m, " on "+CopyStaging) {
			cp.PartMounts = append(cp.PartMounts, m)
		}
	}
	return &cp
}

// newUUID draws a random (version 4) UUID from r (crypto/rand when nil).
func newUUID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("draw a filesystem UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// softRebootSupport says why this system cannot soft-reboot into another
// root ("" when it can): PID 1 must be systemd 254 or later.
func (o Observer) softRebootSupport() string {
	comm, err := os.ReadFile(o.path("proc/1/comm"))
	if err != nil {
		return "cannot tell what PID 1 is: " + err.Error()
	}
	if c := strings.TrimSpace(string(comm)); c != "systemd" {
		return fmt.Sprintf("PID 1 is %s, not systemd", c)
	}
	v := o.systemdVersion()
	if v == 0 {
		return "cannot find systemd's version (no libsystemd-shared-N.so under /usr/lib)"
	}
	if v < SoftRebootSystemd {
		return fmt.Sprintf("systemd is version %d; soft-reboot into another root needs %d or later", v, SoftRebootSystemd)
	}
	return ""
}

// systemdVersion reads systemd's version from the name of its shared
// library (Debian: /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so;
// Fedora: /usr/lib64/systemd/...); 0 when none is found.
func (o Observer) systemdVersion() int {
	for _, pat := range []string{"usr/lib/systemd/libsystemd-shared-*.so", "usr/lib/*/systemd/libsystemd-shared-*.so", "usr/lib64/systemd/libsystemd-shared-*.so"} {
		ms, _ := filepath.Glob(o.path(pat))
		for _, m := range ms {
			s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "libsystemd-shared-"), ".so")
			if i := strings.IndexAny(s, ".-~"); i >= 0 {
				s = s[:i]
			}
			if v, err := strconv.Atoi(s); err == nil {
				return v
			}
		}
	}
	return 0
}

// mkfsTools says which of CopyFSTypes this system can make.
func (o Observer) mkfsTools() map[string]bool {
	out := map[string]bool{}
	for _, fs := range CopyFSTypes {
		for _, d := range []string{"usr/sbin", "sbin", "usr/bin", "bin"} {
			if st, err := os.Stat(o.path(d, "mkfs."+fs)); err == nil && st.Mode()&0o111 != 0 {
				out[fs] = true
				break
			}
		}
	}
	return out
}

// observeFileRoot fills in a file-based root (overlayfs, tmpfs).
func (o Observer) observeFileRoot(s *System, mounts []blockdev.Mount) error {
	fr, err := fileroot.Find(o.Root, mounts)
	if err != nil || fr == nil {
		return err
	}
	s.FileRoot = fr
	s.SoftReboot = o.softRebootSupport()
	s.Mkfs = o.mkfsTools()
	for _, m := range mounts {
		if m.MountPoint == CopyStaging {
			s.CopyStaging = m.Source
		}
	}
	u, err := fileroot.Measure(o.path("/"))
	if err != nil {
		s.FileUsageError = err.Error()
	}
	s.FileUsage = &u
	return nil
}
