package fileroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// Root is a file-based live root as the running system shows it: what
// the copy method copies from, and what it releases once the installed
// system runs.
type Root struct {
	FSType string `json:"fstype"` // overlay or tmpfs
	Source string `json:"source"`
	// Layers of an overlay root (nil for tmpfs).
	Layers *Layers `json:"layers,omitempty"`
	// Live lists the mounts the live system runs from (each lower
	// layer's, the upper layer's and the medium's), deepest first: the
	// order they can be unmounted in.
	Live []LiveMount `json:"live_mounts,omitempty"`
	// Medium is the block device the live system was read from ("" when
	// none was found: a root loaded over the network, say).
	Medium     string `json:"medium,omitempty"`
	MediumDisk string `json:"medium_disk,omitempty"` // the kernel name of its whole disk
	MediumIsCD bool   `json:"medium_is_cd,omitempty"`
	// UpperMount is the mount point of the filesystem the upper layer
	// lives on (a tmpfs in RAM on every live medium seen).
	UpperMount string `json:"upper_mount,omitempty"`
}

// LiveMount is one mount the live root runs from.
type LiveMount struct {
	MountPoint string `json:"mount_point"`
	Source     string `json:"source"`
	FSType     string `json:"fstype"`
	Role       string `json:"role"` // "lower layer 1", "upper layer", "medium"
	// Loop is the loop device the source is, with its backing file.
	Loop        string `json:"loop,omitempty"`
	BackingFile string `json:"backing_file,omitempty"`
}

// Find reads the file-based root of the system whose root directory is
// sysroot ("/" on the running system) from its mount table. It returns
// nil, nil when / is neither overlayfs nor tmpfs.
func Find(sysroot string, mounts []procfs.Mount) (*Root, error) {
	var root *procfs.Mount
	for i := range mounts {
		if mounts[i].MountPoint == "/" {
			root = &mounts[i]
		}
	}
	if root == nil || (root.FSType != "overlay" && root.FSType != "tmpfs") {
		return nil, nil
	}
	r := &Root{FSType: root.FSType, Source: root.Source}
	if root.FSType == "tmpfs" {
		return r, nil
	}
	l, err := ParseOverlayOptions(root.SuperOptions)
	if err != nil {
		return nil, fmt.Errorf("/ is overlayfs: %w", err)
	}
	r.Layers = &l
	add := func(dir, role string) *LiveMount {
		m := mountOf(mounts, dir)
		if m == nil || m.MountPoint == "/" {
			return nil
		}
		for i := range r.Live {
			if r.Live[i].MountPoint == m.MountPoint {
				return &r.Live[i]
			}
		}
		lm := LiveMount{MountPoint: m.MountPoint, Source: m.Source, FSType: m.FSType, Role: role}
		if strings.HasPrefix(m.Source, "/dev/loop") {
			lm.Loop = m.Source
			b, _ := os.ReadFile(procfs.Path(sysroot, filepath.Join("/sys/block", filepath.Base(m.Source), "loop/backing_file")))
			lm.BackingFile = strings.TrimSpace(string(b))
		}
		r.Live = append(r.Live, lm)
		return &r.Live[len(r.Live)-1]
	}
	for i, d := range l.Lower {
		add(d, fmt.Sprintf("lower layer %d", i+1))
	}
	if l.Upper != "" {
		if m := add(l.Upper, "upper layer"); m != nil {
			r.UpperMount = m.MountPoint
		}
	}
	// The medium: the filesystem the layers' image files live on.
	for _, lm := range append([]LiveMount(nil), r.Live...) {
		if lm.BackingFile == "" {
			continue
		}
		m := mountOf(mounts, lm.BackingFile)
		if m == nil || m.MountPoint == "/" {
			continue
		}
		med := add(lm.BackingFile, "medium")
		if med != nil && strings.HasPrefix(med.Source, "/dev/") && r.Medium == "" {
			r.Medium = med.Source
			r.MediumDisk = filepath.Base(med.Source)
			if b, err := os.Readlink(procfs.Path(sysroot, "/sys/class/block/"+r.MediumDisk)); err == nil {
				if parent := filepath.Base(filepath.Dir(b)); parent != "block" && !strings.HasPrefix(parent, "host") {
					r.MediumDisk = parent
				}
			}
			r.MediumIsCD = m.FSType == "iso9660" || m.FSType == "udf" || strings.HasPrefix(filepath.Base(med.Source), "sr")
		}
	}
	// Deepest first: a mount point under another goes before it.
	sort.SliceStable(r.Live, func(i, j int) bool {
		return strings.Count(r.Live[i].MountPoint, "/") > strings.Count(r.Live[j].MountPoint, "/")
	})
	return r, nil
}

// mountOf is the mount that holds path (the last one mounted on the
// longest mount point that is a prefix of it).
func mountOf(mounts []procfs.Mount, path string) *procfs.Mount {
	path = filepath.Clean(path)
	var best *procfs.Mount
	for i := range mounts {
		mp := mounts[i].MountPoint
		if mp != "/" && path != mp && !strings.HasPrefix(path, mp+"/") {
			continue
		}
		if best == nil || len(mp) >= len(best.MountPoint) {
			best = &mounts[i]
		}
	}
	return best
}

// Usage is what a tree holds: the space its files take and the names in
// it, counting each inode once.
type Usage struct {
	Bytes   uint64 `json:"bytes"`
	Entries uint64 `json:"entries"`
}

// Measure walks the tree at dir on its own filesystem (directories
// mounted below it are not entered) and sums the blocks its entries take.
func Measure(dir string) (Usage, error) {
	var u Usage
	var rootDev uint64
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return u, &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	rootDev = st.Dev
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone while we looked: the session runs
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		// Only directories tell a mount: overlayfs gives non-directories
		// the device number of the layer they come from.
		if d.IsDir() && st.Dev != rootDev {
			return filepath.SkipDir
		}
		u.Entries++
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	return u, err
}
