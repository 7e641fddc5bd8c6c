package overlay

import (
	"github.com/livemigrate/livemigrate/internal/procfs"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Dev names a block device the way the kernel does.
type Dev struct {
	Name         string // kernel name: loop1, dm-0, sr0, zram0, sdb1
	Major, Minor uint32
	Path         string // node to open: /dev/loop1, /dev/mapper/live-rw
}

func (d Dev) String() string {
	switch {
	case d.Name != "":
		return d.Name
	case d.Path != "":
		return d.Path
	case d.Major != 0 || d.Minor != 0:
		return fmt.Sprintf("%d:%d", d.Major, d.Minor)
	}
	return "(none)"
}

// IsZero reports whether d names no device.
func (d Dev) IsZero() bool { return d.Name == "" && d.Major == 0 && d.Minor == 0 }

func (d Dev) isLoop() bool { return strings.HasPrefix(d.Name, "loop") }
func (d Dev) isDM() bool   { return strings.HasPrefix(d.Name, "dm-") }
func (d Dev) isZram() bool { return strings.HasPrefix(d.Name, "zram") }

// Host is the machine as seen through /sys, /proc and /dev under Root
// ("/" in production, a fake tree in tests). Query answers what only an
// ioctl can tell (dm tables, loop status); nil means the running kernel.
type Host struct {
	Root  string
	Query Querier
}

func (h Host) querier() Querier {
	if h.Query != nil {
		return h.Query
	}
	return KernelQuerier{}
}

func (h Host) path(p string) string { return procfs.Path(h.Root, p) }

func (h Host) readFile(p string) (string, error) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

func (h Host) exists(p string) bool {
	_, err := os.Stat(h.path(p))
	return err == nil
}

// names lists a sysfs directory such as /sys/block/loop1/holders.
func (h Host) names(p string) ([]string, error) {
	ents, err := os.ReadDir(h.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// resolve fills in whichever of Name or Major:Minor is missing, and Path.
// /sys/dev/block/M:m is a symlink whose last element is the kernel name.
func (h Host) resolve(d Dev) (Dev, error) {
	if d.Name == "" {
		if d.Major == 0 && d.Minor == 0 {
			return Dev{}, errors.New("no device given")
		}
		link, err := os.Readlink(h.path(fmt.Sprintf("/sys/dev/block/%d:%d", d.Major, d.Minor)))
		if err != nil {
			return Dev{}, fmt.Errorf("block device %d:%d: %w", d.Major, d.Minor, err)
		}
		d.Name = path.Base(filepath.ToSlash(link))
	} else {
		d.Name = strings.TrimPrefix(d.Name, "/dev/")
		s, err := h.readFile("/sys/class/block/" + d.Name + "/dev")
		if err != nil {
			return Dev{}, fmt.Errorf("block device %s: %w", d.Name, err)
		}
		if d.Major, d.Minor, err = procfs.ParseDevNumber(s); err != nil {
			return Dev{}, fmt.Errorf("block device %s: %w", d.Name, err)
		}
	}
	if d.Path == "" {
		d.Path = "/dev/" + d.Name
		if d.isDM() {
			if n, err := h.dmName(d); err == nil && n != "" {
				d.Path = "/dev/mapper/" + n
			}
		}
	}
	return d, nil
}

// devByNumber resolves "7:1" as found in dm tables and mountinfo.
func (h Host) devByNumber(majmin string) (Dev, error) {
	ma, mi, err := procfs.ParseDevNumber(majmin)
	if err != nil {
		return Dev{}, err
	}
	return h.resolve(Dev{Major: ma, Minor: mi})
}

func (h Host) dmName(d Dev) (string, error) {
	return h.readFile("/sys/class/block/" + d.Name + "/dm/name")
}

func (h Host) slaves(d Dev) ([]string, error) {
	return h.names("/sys/class/block/" + d.Name + "/slaves")
}

func (h Host) holders(d Dev) ([]string, error) {
	return h.names("/sys/class/block/" + d.Name + "/holders")
}

const deletedSuffix = " (deleted)"

// loopBacking is the loop's backing file as the kernel prints it (with
// " (deleted)" when unlinked), "" when the loop is not bound.
func (h Host) loopBacking(d Dev) (string, error) {
	s, err := h.readFile("/sys/class/block/" + d.Name + "/loop/backing_file")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return s, err
}

// wholeDisk returns the disk a partition belongs to, or d itself.
// /sys/class/block/sdb1 links to .../block/sdb/sdb1, and only partitions
// have a "partition" attribute.
func (h Host) wholeDisk(d Dev) (Dev, error) {
	if !h.exists("/sys/class/block/" + d.Name + "/partition") {
		return d, nil
	}
	link, err := os.Readlink(h.path("/sys/class/block/" + d.Name))
	if err != nil {
		return Dev{}, fmt.Errorf("find disk of %s: %w", d.Name, err)
	}
	parent := path.Base(path.Dir(filepath.ToSlash(link)))
	return h.resolve(Dev{Name: parent})
}

// isCD: sr* is the SCSI CD driver; device/type 5 is TYPE_ROM for CD drives
// that carry another name.
func (h Host) isCD(d Dev) bool {
	if strings.HasPrefix(d.Name, "sr") {
		return true
	}
	t, err := h.readFile("/sys/class/block/" + d.Name + "/device/type")
	return err == nil && strings.TrimSpace(t) == "5"
}

func (h Host) mounts() ([]Mount, error) { return procfs.ReadMountinfo(h.Root) }

// MemAvailable is MemAvailable from /proc/meminfo, in bytes.
func (h Host) MemAvailable() (uint64, error) {
	m, err := procfs.ReadMeminfo(h.Root)
	if err != nil {
		return 0, err
	}
	v, ok := m["MemAvailable"]
	if !ok {
		return 0, errors.New("/proc/meminfo has no MemAvailable")
	}
	return v, nil
}

// mountFor finds the mount that holds file p: the longest mount point that
// is p or a parent directory of it; of several mounts on one point the last
// listed is the one on top.
func mountFor(ms []Mount, p string) (Mount, bool) {
	p = path.Clean(strings.TrimSuffix(p, deletedSuffix))
	best, bestLen, found := Mount{}, -1, false
	for _, m := range ms {
		mp := path.Clean(m.MountPoint)
		if !(p == mp || mp == "/" || strings.HasPrefix(p, mp+"/")) {
			continue
		}
		if len(mp) >= bestLen {
			best, bestLen, found = m, len(mp), true
		}
	}
	return best, found
}

// mountByDev finds the top mount of the filesystem on major:minor whose
// mount point is mp ("" for any).
func mountByDev(ms []Mount, major, minor uint32, mp string) (Mount, bool) {
	var out Mount
	found := false
	for _, m := range ms {
		if m.Major == major && m.Minor == minor && (mp == "" || m.MountPoint == mp) {
			out, found = m, true
		}
	}
	return out, found
}

// ramFS are filesystems whose files live in RAM: freeing them gives memory
// back. rootfs is the initramfs root as mountinfo names it.
func ramFS(fstype string) bool {
	switch fstype {
	case "tmpfs", "ramfs", "rootfs":
		return true
	}
	return false
}
