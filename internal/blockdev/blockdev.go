// Package blockdev owns the facts about block devices that decide whether a
// device may become a migration target: what it is, how big, whether it is
// read-only, and who uses it (mounts, swap, holders such as md or LVM). It
// reads /sys, /proc and /dev below a root directory so tests can use a fake
// tree, and never writes.
package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// Host is the system whose devices are inspected. Root is "/" in production.
type Host struct {
	Root string
}

// Local is the running system.
var Local = Host{Root: "/"}

func (h Host) path(p string) string { return procfs.Path(h.Root, p) }

// Errors that preflight maps to exit codes.
var (
	ErrNotExist = errors.New("no such device")
	ErrNotBlock = errors.New("not a block device")
)

// Mount is one line of /proc/self/mountinfo.
type Mount = procfs.Mount

// Info describes one block device.
type Info struct {
	Path              string   `json:"path"` // as the user named it
	Name              string   `json:"name"` // kernel name: sdb2
	Major             uint32   `json:"major"`
	Minor             uint32   `json:"minor"`
	Disk              string   `json:"disk"` // kernel name of the whole disk (== Name for a disk)
	IsPartition       bool     `json:"is_partition"`
	SizeBytes         uint64   `json:"size_bytes"`
	LogicalBlockSize  uint32   `json:"logical_block_size"`
	PhysicalBlockSize uint32   `json:"physical_block_size"`
	ReadOnly          bool     `json:"read_only"`
	Removable         bool     `json:"removable"`
	Model             string   `json:"model,omitempty"`
	Transport         string   `json:"transport,omitempty"`
	Holders           []string `json:"holders,omitempty"` // kernel names using this device (md127, dm-3)
	// HolderWhat says what a device-mapper holder is, by kernel name:
	// "LVM logical volume vg-lv", "LUKS volume name", "dm device name".
	HolderWhat  map[string]string `json:"holder_what,omitempty"`
	Partitions  []string          `json:"partitions,omitempty"` // of a whole disk
	Mounts      []string          `json:"mounts,omitempty"`     // where this device is mounted
	PartMounts  []string          `json:"partition_mounts,omitempty"`
	PartHolders []string          `json:"partition_holders,omitempty"`
	Swap        bool              `json:"swap"`
}

// Inspect resolves path to a block device and gathers its facts.
func (h Host) Inspect(path string) (*Info, error) {
	if path == "" {
		return nil, fmt.Errorf("empty device path: %w", ErrNotExist)
	}
	var st unix.Stat_t
	if err := unix.Stat(h.path(path), &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s: %w", path, ErrNotExist)
		}
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%s is a %s: %w", path, fileKind(st.Mode), ErrNotBlock)
	}
	return h.InspectDev(path, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFIFO:
		return "named pipe"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return "non-block file"
}

// InspectDev gathers facts for the device numbered major:minor.
func (h Host) InspectDev(path string, major, minor uint32) (*Info, error) {
	sysdir, err := h.SysDir(major, minor)
	if err != nil {
		return nil, fmt.Errorf("%s (%d:%d): %w", path, major, minor, err)
	}
	in := &Info{Path: path, Major: major, Minor: minor, Name: filepath.Base(sysdir), Disk: filepath.Base(sysdir)}
	if _, err := os.Stat(filepath.Join(sysdir, "partition")); err == nil {
		in.IsPartition = true
		in.Disk = filepath.Base(filepath.Dir(sysdir))
	}
	diskdir := sysdir
	if in.IsPartition {
		diskdir = filepath.Dir(sysdir)
	}
	if v, err := readUint(filepath.Join(sysdir, "size")); err == nil {
		in.SizeBytes = v * 512 // sysfs size is always in 512-byte units
	} else {
		return nil, fmt.Errorf("%s: read size: %w", path, err)
	}
	if v, err := readUint(filepath.Join(diskdir, "queue/logical_block_size")); err == nil {
		in.LogicalBlockSize = uint32(v)
	}
	if v, err := readUint(filepath.Join(diskdir, "queue/physical_block_size")); err == nil {
		in.PhysicalBlockSize = uint32(v)
	}
	if v, err := readUint(filepath.Join(sysdir, "ro")); err == nil {
		in.ReadOnly = v != 0
	}
	if v, err := readUint(filepath.Join(diskdir, "removable")); err == nil {
		in.Removable = v != 0
	}
	in.Model = readString(filepath.Join(diskdir, "device/model"))
	in.Transport = transport(diskdir)
	in.Holders = listDir(filepath.Join(sysdir, "holders"))
	for _, hd := range in.Holders {
		if !strings.HasPrefix(hd, "dm-") {
			continue
		}
		dm := filepath.Join(sysdir, "holders", hd, "dm")
		if w := DMWhat(readString(filepath.Join(dm, "uuid")), readString(filepath.Join(dm, "name"))); w != "" {
			if in.HolderWhat == nil {
				in.HolderWhat = map[string]string{}
			}
			in.HolderWhat[hd] = w
		}
	}
	if !in.IsPartition {
		in.Partitions = partitions(sysdir, in.Name)
	}
	mounts, err := h.Mounts()
	if err != nil {
		return nil, err
	}
	parts := map[string]bool{}
	for _, p := range in.Partitions {
		parts[p] = true
	}
	// By number, and by source: btrfs mounts carry an anonymous device
	// number, their source names the device.
	for _, m := range mounts {
		if m.Major == major && m.Minor == minor || m.Source == "/dev/"+in.Name {
			in.Mounts = append(in.Mounts, m.MountPoint)
		}
	}
	for _, p := range in.Partitions {
		pmaj, pmin, err := readDev(filepath.Join(sysdir, p, "dev"))
		if err != nil {
			continue
		}
		for _, m := range mounts {
			if m.Major == pmaj && m.Minor == pmin || m.Source == "/dev/"+p {
				in.PartMounts = append(in.PartMounts, "/dev/"+p+" on "+m.MountPoint)
			}
		}
		for _, hld := range listDir(filepath.Join(sysdir, p, "holders")) {
			in.PartHolders = append(in.PartHolders, p+" held by "+hld)
		}
	}
	swaps, _ := os.ReadFile(h.path("proc/swaps"))
	in.Swap = swapUses(string(swaps), append([]string{in.Name}, in.Partitions...))
	return in, nil
}

// SysDir returns the device's directory in /sys (resolved through
// /sys/dev/block/MAJ:MIN).
func (h Host) SysDir(major, minor uint32) (string, error) {
	link := h.path(fmt.Sprintf("sys/dev/block/%d:%d", major, minor))
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("no sysfs entry for block device %d:%d: %w", major, minor, err)
	}
	return dir, nil
}

// Mounts parses /proc/self/mountinfo.
func (h Host) Mounts() ([]Mount, error) {
	ms, err := procfs.ReadMountinfo(h.Root)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return ms, nil
}

func readDev(p string) (uint32, uint32, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, err
	}
	return procfs.ParseDevNumber(strings.TrimSpace(string(b)))
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// DMWhat names a device-mapper device by the subsystem prefix of its dm
// uuid (LVM-, CRYPT-LUKS) and its dm name; "" without a name.
func DMWhat(uuid, name string) string {
	switch {
	case name == "":
		return ""
	case strings.HasPrefix(uuid, "LVM-"):
		return "LVM logical volume " + name
	case strings.HasPrefix(uuid, "CRYPT-"):
		return "LUKS volume " + name
	}
	return "dm device " + name
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func listDir(p string) []string {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// partitions lists the partition subdirectories of a disk's sysfs dir.
func partitions(diskdir, disk string) []string {
	var out []string
	for _, e := range listDir(diskdir) {
		if !strings.HasPrefix(e, disk) {
			continue
		}
		if _, err := os.Stat(filepath.Join(diskdir, e, "partition")); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// transport guesses how the disk is attached from its sysfs path.
func transport(diskdir string) string {
	real, err := filepath.EvalSymlinks(diskdir)
	if err != nil {
		real = diskdir
	}
	switch {
	case strings.Contains(real, "/usb"):
		return "usb"
	case strings.Contains(real, "/nvme"):
		return "nvme"
	case strings.Contains(real, "/virtio"):
		return "virtio"
	case strings.Contains(real, "/ata"):
		return "sata"
	case strings.Contains(real, "/virtual/"):
		return "virtual"
	}
	return ""
}

// swapUses reports whether /proc/swaps lists any of the kernel names.
func swapUses(swaps string, names []string) bool {
	for i, line := range strings.Split(swaps, "\n") {
		if i == 0 {
			continue // header
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, n := range names {
			if procfs.Unescape(f[0]) == "/dev/"+n {
				return true
			}
		}
	}
	return false
}
