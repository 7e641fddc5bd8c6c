package livestack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/overlay"
)

// Host is Ops on the running initrd.
type Host struct{}

// WaitDevice polls for path: udev makes the by-label links, and the
// service is normally started once systemd has seen the device.
func (Host) WaitDevice(path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		dev, err := filepath.EvalSymlinks(path)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Stat(dev, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				return dev, nil
			}
			if err == nil {
				err = fmt.Errorf("%s is not a block device", dev)
			}
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// LoadModules runs modprobe for names, best effort: a module built into
// the kernel, or one the kernel loads on demand, needs nothing.
func (Host) LoadModules(names ...string) {
	args := append([]string{"-q", "-a", "-b"}, names...)
	_ = exec.Command("modprobe", args...).Run()
}

// MountRO mounts dev read-only on dir (created if needed).
func (Host) MountRO(dev, dir, fstype string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, fstype, unix.MS_RDONLY, ""); err != nil {
		return &os.PathError{Op: "mount " + fstype, Path: dev, Err: err}
	}
	return nil
}

// DetachMount lazily unmounts dir.
func (Host) DetachMount(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount -l", Path: dir, Err: err}
	}
	return nil
}

// Exists says whether path exists.
func (Host) Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Loop attaches file to a loop device; with create > 0 the file is made
// first, sparse, of that size (the RAM-backed COW).
func (Host) Loop(file string, readOnly bool, create uint64) (string, error) {
	if create > 0 {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		if err == nil {
			err = f.Truncate(int64(create))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return "", fmt.Errorf("create %s: %w", file, err)
		}
	}
	d, err := overlay.SetupLoop(file, readOnly)
	return d.Path, err
}

// Zram sets up a zram device for the COW.
func (h Host) Zram(size uint64) (string, error) {
	h.LoadModules("zram")
	d, err := overlay.SetupZram(size, []string{"zstd", "lzo-rle", "lz4", "lzo"})
	return d.Path, err
}

// Snapshot builds the persistent, overflow-capable snapshot with 4 KiB
// chunks, as dmsquash-live does.
func (Host) Snapshot(name, origin, cow string) (string, error) {
	d, err := overlay.CreateSnapshot(name, origin, cow, true, 8)
	return d.Path, err
}

// Wrap builds the build-mode RAID1 around leg.
func (Host) Wrap(leg, md string) (string, error) { return engine.BootWrap(leg, md) }

// Repoint writes the sysroot.mount drop-in and reloads systemd, as the
// dracut hook does: a reload from a unit that sysroot.mount waits for is
// picked up before the mount starts.
func (Host) Repoint(dev string) error {
	if err := os.MkdirAll(filepath.Dir(DropIn), 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("# livemigrate: the array could not be built; / is the live snapshot\n[Mount]\nWhat=%s\n", dev)
	if err := os.WriteFile(DropIn, []byte(body), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w: %s", err, out)
	}
	return nil
}

var _ Ops = Host{}
