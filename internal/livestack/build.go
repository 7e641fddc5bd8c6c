package livestack

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/livemigrate/livemigrate/internal/bootopt"
)

// Where the stack is mounted: dracut's dmsquash-live paths, which
// livemigrate's status and release steps read (release finds the medium
// through the squashfs loop's backing file). As with dmsquash-live the
// squashfs is mounted only until rootfs.img is on its loop.
const (
	MediumDir   = "/run/initramfs/live"
	SquashfsDir = "/run/initramfs/squashfs"
	// COWFile is the RAM-backed COW: in the initramfs's own root, which
	// systemd empties at switch-root; the open loop keeps the data, as
	// with dracut's /overlay.
	COWFile = "/livemigrate-cow"
	// DropIn repoints sysroot.mount at live-rw when the array could not
	// be built after the generator had chosen it.
	DropIn = "/run/systemd/system/sysroot.mount.d/90-livemigrate.conf"
)

// Ops is the kernel side of the build, one method per step, so that the
// sequence and its fallbacks can be tested with a fake.
type Ops interface {
	// WaitDevice waits up to timeout for the node at path and returns the
	// block device it names.
	WaitDevice(path string, timeout time.Duration) (string, error)
	LoadModules(names ...string)
	MountRO(dev, dir, fstype string) error
	// DetachMount lazily unmounts dir (MNT_DETACH): what is open on it
	// stays readable.
	DetachMount(dir string) error
	Exists(path string) bool
	Loop(file string, readOnly bool, create uint64) (string, error)
	Zram(size uint64) (string, error)
	Snapshot(name, origin, cow string) (string, error)
	Wrap(leg, md string) (string, error)
	// Repoint makes sysroot.mount mount dev instead (a drop-in and a
	// daemon-reload).
	Repoint(dev string) error
}

// Config is what one build is asked to do.
type Config struct {
	Options  bootopt.Options
	MemTotal uint64
	// MediumWait bounds the wait for the medium's node once the service
	// runs (systemd has normally waited for the device unit already).
	MediumWait time.Duration
}

// Result says what was built.
type Result struct {
	Medium, Origin, COW, Snapshot string
	// Root is what / will be: the array, or live-rw after a fallback.
	Root string
	// Fallback is why the md layer is not there, "" when it is.
	Fallback string
}

// Modules the stack needs, loaded up front: the kernel loads filesystems
// on demand, but not loop, dm or md reliably before their nodes are used.
var Modules = []string{"loop", "squashfs", "isofs", "udf", "sr_mod", "dm_mod", "dm_snapshot", "md_mod", "raid1"}

// mediumTypes are tried in order when mounting the medium: an ISO first,
// then what a USB stick or a disk image may carry.
var mediumTypes = []string{"iso9660", "udf", "vfat", "ext4", "btrfs", "xfs", "exfat"}

// Build sets the live stack up. A failure before live-rw exists is fatal
// (there is no root to boot) and returned; a failure of the md layer is
// said on log and the root falls back to live-rw.
func Build(ops Ops, cfg Config, log io.Writer) (Result, error) {
	o := cfg.Options
	var r Result
	if o.Live == "" {
		return r, errors.New("no root=live: on the kernel command line")
	}
	path, err := MediumPath(o.Live)
	if err != nil {
		return r, fmt.Errorf("root=live:%s: %w", o.Live, err)
	}
	ops.LoadModules(Modules...)
	if r.Medium, err = ops.WaitDevice(path, cfg.MediumWait); err != nil {
		return r, fmt.Errorf("live medium %s (%s) not found: %w", o.Live, path, err)
	}
	if err := mountAny(ops, r.Medium, MediumDir); err != nil {
		return r, fmt.Errorf("mount the live medium %s on %s: %w", r.Medium, MediumDir, err)
	}
	img := MediumDir + "/LiveOS/rootfs.img"
	if sq := MediumDir + "/LiveOS/squashfs.img"; ops.Exists(sq) {
		dev, err := ops.Loop(sq, true, 0)
		if err != nil {
			return r, fmt.Errorf("attach %s: %w", sq, err)
		}
		if err := ops.MountRO(dev, SquashfsDir, "squashfs"); err != nil {
			return r, fmt.Errorf("mount %s (%s) on %s: %w", sq, dev, SquashfsDir, err)
		}
		img = SquashfsDir + "/LiveOS/rootfs.img"
	}
	if !ops.Exists(img) {
		return r, fmt.Errorf("no LiveOS/rootfs.img on %s: this medium has no block image to mirror", r.Medium)
	}
	if r.Origin, err = ops.Loop(img, true, 0); err != nil {
		return r, fmt.Errorf("attach %s: %w", img, err)
	}
	if strings.HasPrefix(img, SquashfsDir+"/") {
		// As dmsquash-live does: once the origin loop holds rootfs.img the
		// squashfs mount is lazily dropped, and the loop keeps it alive.
		// livemigrate's release step expects exactly that (a squashfs loop
		// with no mount); a mount left behind would pin the medium.
		if err := ops.DetachMount(SquashfsDir); err != nil {
			fmt.Fprintf(log, "livemigrate: lazy unmount of %s: %v\n", SquashfsDir, err)
		}
	}

	size := o.Resolve(cfg.MemTotal)
	if o.COW == "zram" && len(o.Problems) == 0 {
		if r.COW, err = ops.Zram(size); err != nil {
			fmt.Fprintf(log, "livemigrate: no zram (%v); the COW goes to a RAM file\n", err)
			r.COW = ""
		}
	}
	if r.COW == "" {
		if r.COW, err = ops.Loop(COWFile, false, size); err != nil {
			return r, fmt.Errorf("create the copy-on-write store %s: %w", COWFile, err)
		}
	}
	if r.Snapshot, err = ops.Snapshot("live-rw", r.Origin, r.COW); err != nil {
		return r, fmt.Errorf("build the live snapshot: %w", err)
	}

	r.Root = r.Snapshot
	switch {
	case len(o.Problems) > 0:
		r.Fallback = "invalid boot options: " + strings.Join(o.Problems, "; ")
	case !o.Wrap:
		r.Fallback = "rd.livemigrate=0"
	default:
		md, err := ops.Wrap(r.Snapshot, "/dev/"+o.MD)
		if err == nil {
			r.Root = md
			return r, nil
		}
		r.Fallback = fmt.Sprintf("could not build /dev/%s around %s: %v", o.MD, r.Snapshot, err)
		// The generator pointed sysroot.mount at the array.
		if err := ops.Repoint(r.Snapshot); err != nil {
			return r, fmt.Errorf("%s; and sysroot.mount cannot be pointed at %s: %w", r.Fallback, r.Snapshot, err)
		}
	}
	return r, nil
}

func mountAny(ops Ops, dev, dir string) error {
	var errs []string
	for _, t := range mediumTypes {
		err := ops.MountRO(dev, dir, t)
		if err == nil {
			return nil
		}
		errs = append(errs, t+": "+err.Error())
	}
	return errors.New(strings.Join(errs, "; "))
}

// Report is the console line for a result.
func (r Result) Report() string {
	if r.Fallback == "" {
		return fmt.Sprintf("livemigrate: / will be %s (RAID1: %s + an empty slot for the install target; medium %s on %s, COW %s)",
			r.Root, r.Snapshot, r.Medium, MediumDir, r.COW)
	}
	return fmt.Sprintf("livemigrate: %s\nlivemigrate: booting the live system without the md layer (/ is %s); installing it with 'livemigrate migrate' will not be possible in this session",
		r.Fallback, r.Root)
}
