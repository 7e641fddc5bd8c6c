// Package mdraid owns md RAID1 arrays in build mode (no superblock): creating
// one around the live root, hot-adding and removing legs, tuning and reading
// recovery, and growing the array, all through the md driver's ioctls and
// /sys/block/mdN/md. It never runs mdadm, so it works inside an initramfs.
package mdraid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Controller acts on md arrays. Dev is the directory that plays /dev.
type Controller struct {
	Sys Sys
	Dev string
}

// Default is the controller for the running system.
var Default = Controller{Sys: Sys{Root: "/sys", Proc: "/proc"}, Dev: "/dev"}

// NameOf turns /dev/md127, md127 or /dev/md/127-style input into the kernel
// name md127.
func NameOf(md string) (string, error) {
	base := filepath.Base(md)
	if strings.HasPrefix(md, "/dev/md/") {
		base = "md" + base
	}
	if !strings.HasPrefix(base, "md") {
		return "", fmt.Errorf("%q is not an md device name (want /dev/mdN)", md)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(base, "md"))
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("%q is not an md device name (want /dev/mdN)", md)
	}
	return base, nil
}

func minorOf(name string) uint32 {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "md"))
	return uint32(n)
}

// devNumber returns the device number of a block device node.
func devNumber(path string) (uint32, uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device", path)
	}
	return unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)), nil
}

// openArray opens the md node, creating the array's gendisk and node first
// when they do not exist yet (an initramfs without udev has neither).
func (c Controller) openArray(name string, create bool) (*os.File, error) {
	path := filepath.Join(c.Dev, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && create {
		// new_array makes the kernel allocate mdN; devtmpfs then makes the node.
		_ = os.WriteFile(filepath.Join(c.Sys.Root, "module/md_mod/parameters/new_array"), []byte(name), 0)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			dev := unix.Mkdev(mdMajor, minorOf(name))
			if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(dev)); err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, &os.PathError{Op: "mknod", Path: path, Err: err}
			}
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Build creates array md (e.g. "md127") as a RAID1 in build mode with one
// slot per entry of legs; an empty entry is a missing slot. The array starts
// clean: with a single leg there is nothing to resync, and with more the
// caller asserts they already match (mdadm's --assume-clean).
func (c Controller) Build(md string, legs []string) error {
	name, err := NameOf(md)
	if err != nil {
		return err
	}
	if len(legs) < 1 || len(legs) > 27 {
		return fmt.Errorf("build %s: %d slots: want 1 to 27", name, len(legs))
	}
	type leg struct {
		path         string
		major, minor uint32
		slot         int
	}
	var present []leg
	for i, p := range legs {
		if p == "" {
			continue
		}
		maj, min, err := devNumber(p)
		if err != nil {
			return fmt.Errorf("build %s: leg %d: %w", name, i, err)
		}
		present = append(present, leg{p, maj, min, i})
	}
	if len(present) == 0 {
		return fmt.Errorf("build %s: no leg present", name)
	}
	if a, err := c.Sys.Read(name); err == nil && (len(a.Members) > 0 || a.Level != "") {
		return fmt.Errorf("build %s: the array already exists (level %q, %d members); stop it first", name, a.Level, len(a.Members))
	}
	f, err := c.openArray(name, true)
	if err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	defer f.Close()

	info := arrayInfo{
		MajorVersion:  0, // HOT_ADD_DISK is only accepted for version 0 arrays
		MinorVersion:  90,
		Level:         levelRAID1,
		NrDisks:       int32(len(legs)),
		RaidDisks:     int32(len(legs)),
		MdMinor:       int32(minorOf(name)),
		NotPersistent: 1,
		State:         1 << sbClean,
		ActiveDisks:   int32(len(present)),
		WorkingDisks:  int32(len(present)),
		FailedDisks:   int32(len(legs) - len(present)),
	}
	if err := ioctlPtr(f, ioSetArrayInfo, unsafe.Pointer(&info)); err != nil {
		return fmt.Errorf("build %s: SET_ARRAY_INFO: %w", name, err)
	}
	fail := func(err error) error {
		_ = ioctlVal(f, ioStopArray, 0)
		return err
	}
	for _, l := range present {
		d := diskInfo{
			Number:   int32(l.slot),
			Major:    int32(l.major),
			Minor:    int32(l.minor),
			RaidDisk: int32(l.slot),
			State:    1<<diskActive | 1<<diskSync,
		}
		if err := ioctlPtr(f, ioAddNewDisk, unsafe.Pointer(&d)); err != nil {
			return fail(fmt.Errorf("build %s: add %s (%d:%d) as slot %d: ADD_NEW_DISK: %w", name, l.path, l.major, l.minor, l.slot, err))
		}
	}
	p := param{Personality: levelRAID1}
	if err := ioctlPtr(f, ioRunArray, unsafe.Pointer(&p)); err != nil {
		return fail(fmt.Errorf("build %s: RUN_ARRAY: %w", name, err))
	}
	return nil
}

// HotAdd adds dev to array md. md puts it into a missing slot and starts
// recovering onto it.
func (c Controller) HotAdd(md, dev string) error {
	return c.devOp(md, dev, ioHotAdd, "hot-add")
}

// HotAddDevNum adds the block device with that number to md. No path is
// resolved: the device is the one whose identity the caller checked.
func (c Controller) HotAddDevNum(md string, major, minor uint32) error {
	return c.devNumOp(md, major, minor, ioHotAdd, "hot-add")
}

// Fail marks dev faulty in md. The kernel refuses (EBUSY) to fail the last
// in-sync leg.
func (c Controller) Fail(md, dev string) error {
	maj, min, err := devNumber(dev)
	if err != nil {
		return fmt.Errorf("fail %s: %w", dev, err)
	}
	if err := c.FailDevNum(md, maj, min); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	return nil
}

// Remove takes a faulty or spare leg out of md; see RemoveDevNum.
func (c Controller) Remove(md, dev string) error {
	maj, min, err := devNumber(dev)
	if err != nil {
		return fmt.Errorf("remove %s: %w", dev, err)
	}
	if err := c.RemoveDevNum(md, maj, min); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	return nil
}

// ErrLastInSync is FailDevNum's refusal to fail an array's last in-sync
// leg; nothing was asked of the kernel.
var ErrLastInSync = errors.New("it is the array's last in-sync leg; failing it would take the array down")

// FailDevNum and RemoveDevNum act on a member known only by its device number,
// e.g. a leg whose node has disappeared.
//
// Failing the last in-sync leg is refused here, before the kernel sees it:
// raid1 refuses too (EBUSY), but only after setting MD_BROKEN on the array,
// which stays: md then fails every write to the array (seen on 6.1: ext4
// on it turned read-only at once), every later SET_DISK_FAULTY answers
// EBUSY even when it worked, and recovery is disabled.
func (c Controller) FailDevNum(md string, major, minor uint32) error {
	name, err := NameOf(md)
	if err != nil {
		return err
	}
	if a, err := c.Sys.Read(name); err == nil {
		if m, ok := a.MemberByDev(major, minor); ok && m.InSync() {
			n := 0
			for _, o := range a.Members {
				if o.InSync() {
					n++
				}
			}
			if n == 1 {
				return fmt.Errorf("fail %s (%d:%d) in %s: %w", m.Name, major, minor, name, ErrLastInSync)
			}
		}
	}
	return c.devNumOp(md, major, minor, ioSetFaulty, "fail")
}

// RemoveDevNum takes a faulty or spare leg out of md. md may hold the leg
// busy for a moment after it failed, so EBUSY is retried for a few seconds.
func (c Controller) RemoveDevNum(md string, major, minor uint32) error {
	var err error
	for i := 0; i < 50; i++ {
		err = c.devNumOp(md, major, minor, ioHotRemove, "remove")
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (c Controller) devOp(md, dev string, req uintptr, what string) error {
	maj, min, err := devNumber(dev)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dev, err)
	}
	err = c.devNumOp(md, maj, min, req, what)
	if err != nil {
		return fmt.Errorf("%s (%s): %w", dev, what, err)
	}
	return nil
}

func (c Controller) devNumOp(md string, major, minor uint32, req uintptr, what string) error {
	name, err := NameOf(md)
	if err != nil {
		return err
	}
	f, err := c.openArray(name, false)
	if err != nil {
		return fmt.Errorf("%s %d:%d in %s: %w", what, major, minor, name, err)
	}
	defer f.Close()
	if err := ioctlVal(f, req, encodeDev(major, minor)); err != nil {
		return fmt.Errorf("%s %d:%d in %s: %s: %w", what, major, minor, name, ioctlName(req), err)
	}
	return nil
}

// Stop stops array md. The kernel refuses while anything holds it open.
func (c Controller) Stop(md string) error {
	name, err := NameOf(md)
	if err != nil {
		return err
	}
	f, err := c.openArray(name, false)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer f.Close()
	if err := ioctlVal(f, ioStopArray, 0); err != nil {
		return fmt.Errorf("stop %s: STOP_ARRAY: %w", name, err)
	}
	return nil
}

// RestoreSpeed puts a limit back the way Read found it.
func (c Controller) RestoreSpeed(md, file string, l SpeedLimit) error {
	if !l.Local {
		return c.setSpeed(md, file, 0)
	}
	return c.setSpeed(md, file, l.KBs)
}

func (c Controller) setSpeed(md, file string, kbs uint64) error {
	name, err := NameOf(md)
	if err != nil {
		return err
	}
	v := "system"
	if kbs > 0 {
		v = strconv.FormatUint(kbs, 10)
	}
	p := filepath.Join(c.Sys.mdDir(name), file)
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		return fmt.Errorf("set %s of %s to %s: %w", file, name, v, err)
	}
	return nil
}

// GrowMax grows md's component size to the smallest of its working legs and
// returns the new component size in KiB. Component size is written through
// sysfs, which takes 64-bit KiB, so legs above 4 TiB work (mdadm's build
// path goes through a 32-bit KiB field and needs --force there).
func (c Controller) GrowMax(md string) (uint64, error) {
	name, err := NameOf(md)
	if err != nil {
		return 0, err
	}
	a, err := c.Sys.Read(name)
	if err != nil {
		return 0, fmt.Errorf("grow %s: %w", name, err)
	}
	target, err := MaxComponentKiB(a)
	if err != nil {
		return 0, fmt.Errorf("grow %s: %w", name, err)
	}
	// A whole number of the array's logical blocks: an array built over a
	// zram-backed live leg keeps zram's 4096-byte blocks after that leg is
	// gone, and a size that is no multiple of them is refused by GRUB's
	// tools ("unaligned device size", seen in the Debian VM).
	if b, err := os.ReadFile(filepath.Join(c.Sys.Root, "block", name, "queue", "logical_block_size")); err == nil {
		if lbs, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			target = AlignKiB(target, lbs)
		}
	}
	if target <= a.ComponentKiB {
		return a.ComponentKiB, nil
	}
	p := filepath.Join(c.Sys.mdDir(name), "component_size")
	if err := os.WriteFile(p, []byte(strconv.FormatUint(target, 10)), 0); err != nil {
		return 0, fmt.Errorf("grow %s from %d to %d KiB: write component_size: %w", name, a.ComponentKiB, target, err)
	}
	return target, nil
}

// AlignKiB rounds kib down to a whole number of lbs-byte logical blocks.
func AlignKiB(kib, lbs uint64) uint64 {
	if lbs <= 1024 || lbs%1024 != 0 {
		return kib
	}
	step := lbs / 1024
	return kib / step * step
}

// MaxComponentKiB is the largest component size the array's working legs
// allow: the smallest of their sizes. Faulty legs do not count; a spare that
// is still rebuilding does, since it must fit too.
func MaxComponentKiB(a *Array) (uint64, error) {
	var min uint64
	n := 0
	for _, m := range a.Members {
		if m.Faulty() {
			continue
		}
		if m.SizeKiB == 0 {
			return 0, fmt.Errorf("member %s reports no size", m.Name)
		}
		if n == 0 || m.SizeKiB < min {
			min = m.SizeKiB
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no working member")
	}
	return min, nil
}

// RemoveByName takes member name (e.g. "vdc3") out of md through sysfs,
// failing it first if needed. It works when the member's device node and
// number are gone, which the ioctls need.
func (c Controller) RemoveByName(md, name string) error {
	mdn, err := NameOf(md)
	if err != nil {
		return err
	}
	state := filepath.Join(c.Sys.mdDir(mdn), "dev-"+name, "state")
	if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) {
		return nil // already out
	}
	a, err := c.Sys.Read(mdn)
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", name, mdn, err)
	}
	m, ok := a.Member(name)
	if !ok {
		return nil
	}
	if !m.Faulty() {
		if m.InSync() {
			n := 0
			for _, o := range a.Members {
				if o.InSync() {
					n++
				}
			}
			if n == 1 {
				return fmt.Errorf("remove %s from %s: it is the array's last in-sync leg", name, mdn)
			}
		}
		if err := os.WriteFile(state, []byte("faulty"), 0); err != nil {
			return fmt.Errorf("fail %s in %s: %w", name, mdn, err)
		}
	}
	var werr error
	for i := 0; i < 50; i++ {
		if werr = os.WriteFile(state, []byte("remove"), 0); werr == nil || errors.Is(werr, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove %s from %s: %w", name, mdn, werr)
}
