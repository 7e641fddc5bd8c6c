package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/fileroot"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/procfs"
	"github.com/livemigrate/livemigrate/internal/treecopy"
)

// Files the copy method keeps in /run while the session runs (and, /run
// surviving a soft-reboot, on the installed system until its next boot).
const (
	CopyPlanFile   = "/run/livemigrate/copy-plan.json"
	CopySecretFile = "/run/livemigrate/copy-secret"
	CopyPass1File  = "/run/livemigrate/pass1.json"
	SwitchFile     = "/run/livemigrate/switch.json"
	// SwitchTarget is the unit the switch isolates: sysinit and what it
	// pulls in (journald, udev) stay, every service and session stops.
	SwitchTarget = "livemigrate-switch.target"
	// FinishUnit runs 'livemigrate finish' on the installed system.
	FinishUnit = "livemigrate-finish.service"
	// InstalledPlanFile is the plan on the installed system.
	InstalledPlanFile = "/var/lib/livemigrate/copy-plan.json"
)

// run runs a command and returns its error with the end of its output.
func runCmd(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := strings.TrimSpace(out.String())
		if ls := strings.Split(tail, "\n"); len(ls) > 4 {
			tail = strings.Join(ls[len(ls)-4:], "\n")
		}
		if tail != "" {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tail)
		}
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func (k *SysKernel) MakeFS(dev, fsType, uuid string) error {
	var args []string
	switch fsType {
	case "ext4":
		args = []string{"-F", "-q", "-U", uuid, dev}
	case "xfs":
		args = []string{"-f", "-q", "-m", "uuid=" + uuid, dev}
	case "btrfs":
		args = []string{"-f", "-q", "-U", uuid, dev}
	default:
		return fmt.Errorf("no way to make %s", fsType)
	}
	// A partition table just written: udev rereads it, and the node
	// may come and go meanwhile.
	_ = exec.Command("udevadm", "settle", "--timeout=10").Run()
	if err := partitionNode(dev); err != nil {
		return err
	}
	return runCmd("mkfs."+fsType, args...)
}

func (k *SysKernel) MountTarget(dev, fsType, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, fsType, 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, dir, err)
	}
	return nil
}

// partitionNode waits (up to 10 s) for dev's node to be there.
func partitionNode(dev string) error {
	for i := 0; ; i++ {
		if _, err := os.Stat(dev); err == nil || i == 100 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountedAt reports whether something is mounted on dir.
func mountedAt(dir string) bool {
	ms, err := procfs.ReadMountinfo("/")
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.MountPoint == dir {
			return true
		}
	}
	return false
}

func (k *SysKernel) UnmountTarget(dir string) error { return unmountAll(dir) }

// unmountAll unmounts whatever is mounted on dir (not mounted is no
// error).
func unmountAll(dir string) error {
	for mountedAt(dir) {
		if err := unix.Unmount(dir, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return nil
}

// pass1 is what the first pass tells the second (CopyPass1File): when
// it began on the upper layer, and every name it met there.
type pass1 struct {
	UpperStarted time.Time `json:"upper_started"`
	Names        []string  `json:"names"`
	Opaque       []string  `json:"opaque,omitempty"`
}

func (k *SysKernel) CopyFiles(ctx context.Context, c *CopySpec, progress func(uint64)) (rep CopyReport, err error) {
	var p1 pass1
	err = withTree(c, func() error {
		rep, err = copyLayers(ctx, c, true, progress, nil, &p1, func() error {
			b, err := json.Marshal(&p1)
			if err != nil {
				return err
			}
			return finalize.WriteFileAtomic(CopyPass1File, b, 0o600)
		})
		return err
	})
	return rep, err
}

// withTree runs f with a tmpfs root bound on c.Tree (nothing to do for
// an overlayfs root): a bind mount of / alone, not of the mounts below
// it, made private (a mount made under / later does not appear in it)
// and read-only (the copy cannot write the live root through it). A
// bind an earlier, killed run left there is replaced; the bind is gone
// again when f returns, so nothing pins the old root at the switch.
func withTree(c *CopySpec, f func() error) error {
	if c.Tree == "" {
		return f()
	}
	if err := unmountAll(c.Tree); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Tree, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("/", c.Tree, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind / on %s: %w", c.Tree, err)
	}
	err := unix.Mount("", c.Tree, "", unix.MS_PRIVATE, "")
	if err == nil {
		err = unix.Mount("", c.Tree, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if err != nil {
		err = fmt.Errorf("make the bind of / on %s private and read-only: %w", c.Tree, err)
	} else {
		err = f()
	}
	if uerr := unmountAll(c.Tree); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// copyLayers copies c's layers onto c.Staging: the lower ones (bottom
// plain, each one above applied over it) when lower is set, then the
// upper one. With before (the second pass), what did not change since the
// first pass began is left alone and the directories it found opaque are
// pruned, not emptied; p1 (the first pass) gets the upper pass's start,
// names and opaque directories. A tmpfs root (c.Tree) is one plain tree,
// copied as the upper layer is (its names, its start), over the earlier
// pass's copy in the second. done runs after the upper pass.
func copyLayers(ctx context.Context, c *CopySpec, lower bool, progress func(uint64), before *pass1, p1 *pass1, done func() error) (CopyReport, error) {
	start := time.Now()
	var rep CopyReport
	type pass struct {
		src string
		opt treecopy.Options
		up  bool
	}
	var passes []pass
	if lower {
		for i, l := range c.Lower {
			o := treecopy.Options{}
			if i > 0 {
				o.Upper, o.Lower = true, c.Lower[0]
			}
			passes = append(passes, pass{l, o, false})
		}
	}
	src, o := c.Upper, treecopy.Options{Upper: true}
	if c.Tree != "" {
		// Only the root filesystem's own files: a mount below it that
		// got into the bind anyway is left out too.
		src, o = c.Tree, treecopy.Options{Replace: true, OneFileSystem: true}
	}
	if src != "" {
		if before != nil {
			// A second off what the first pass saw: inode times are kept
			// at the kernel's coarse clock, which may be behind time.Now.
			o.ChangedSince = before.UpperStarted.Add(-time.Second)
			o.KnownOpaque = map[string]bool{}
			for _, d := range before.Opaque {
				o.KnownOpaque[d] = true
			}
		}
		if p1 != nil {
			o.Visit = func(rel string) { p1.Names = append(p1.Names, rel) }
			o.Opaque = func(rel string) { p1.Opaque = append(p1.Opaque, rel) }
		}
		if len(c.Lower) > 0 {
			o.Lower = c.Lower[0]
		}
		passes = append(passes, pass{src, o, true})
	}
	for _, ps := range passes {
		if ps.up && p1 != nil {
			p1.UpperStarted = time.Now()
		}
		cp := treecopy.New(ps.src, c.Staging, ps.opt)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if progress != nil {
			wg.Add(1)
			base := rep.Bytes
			go func() {
				defer wg.Done()
				t := time.NewTicker(250 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						progress(base + uint64(cp.Stats().Bytes))
					}
				}
			}()
		}
		err := cp.Run(ctx)
		close(stop)
		wg.Wait()
		s := cp.Stats()
		rep.Bytes += uint64(s.Bytes)
		rep.Entries += uint64(s.Dirs + s.Files + s.HardLinks + s.Symlinks + s.Specials)
		rep.Deleted += uint64(s.Deleted)
		rep.Unchanged += uint64(s.Unchanged)
		if err != nil {
			rep.Seconds = time.Since(start).Seconds()
			return rep, fmt.Errorf("copy %s onto %s: %w", ps.src, c.Staging, err)
		}
	}
	if done != nil {
		if err := done(); err != nil {
			return rep, err
		}
	}
	if err := syncDir(c.Staging); err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// syncDir writes the filesystem holding dir to its disk (syncfs).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// switchTargetUnit is SwitchTarget's unit file.
const switchTargetUnit = `[Unit]
Description=livemigrate: the session stopped for the switch to the installed system
Requires=sysinit.target
After=sysinit.target
AllowIsolate=yes
`

func (k *SysKernel) PrepareSwitch(p *Plan) error {
	c := p.Copy
	if !mountedAt(c.Staging) {
		return fmt.Errorf("%s is not mounted on %s any more", p.Target, c.Staging)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program's path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(CopyPlanFile), 0o700); err != nil {
		return err
	}
	cp := *p
	spec := *c
	spec.Executable = exe
	cp.Copy = &spec
	if p.Finalize != nil {
		f := *p.Finalize
		cp.Finalize = &f
		if f.Password != "" {
			if err := finalize.WriteFileAtomic(CopySecretFile, []byte(f.Password), 0o600); err != nil {
				return err
			}
		}
	}
	b, err := json.MarshalIndent(&cp, "", "  ")
	if err != nil {
		return err
	}
	if err := finalize.WriteFileAtomic(CopyPlanFile, b, 0o600); err != nil {
		return err
	}
	if err := finalize.WriteFileAtomic("/run/systemd/system/"+SwitchTarget, []byte(switchTargetUnit), 0o644); err != nil {
		return err
	}
	return runCmd("systemctl", "daemon-reload")
}

func (k *SysKernel) StartSwitch(p *Plan) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// A unit of its own, outside the session it stops: isolating the
	// switch target leaves it running (IgnoreOnIsolate), and nothing
	// orders it against the units being stopped.
	return runCmd("systemd-run", "--unit=livemigrate-switch", "--description=livemigrate: switch to the installed system",
		"--property=IgnoreOnIsolate=yes", "--property=DefaultDependencies=no", "--collect", "--no-block", "--quiet",
		exe, "switch-root", CopyPlanFile)
}

func (k *SysKernel) ReleaseFileRoot(fr *fileroot.Root, eject bool) (FileRelease, error) {
	var rep FileRelease
	if m, err := procfs.ReadMeminfo("/"); err == nil {
		rep.MemAvailBefore = m["MemAvailable"]
	}
	var errs []error
	for _, lm := range fr.Live {
		if !mountedAt(lm.MountPoint) {
			rep.Gone = append(rep.Gone, lm.MountPoint)
		}
		for mountedAt(lm.MountPoint) {
			if err := unix.Unmount(lm.MountPoint, 0); err != nil {
				if err := unix.Unmount(lm.MountPoint, unix.MNT_DETACH); err != nil {
					errs = append(errs, fmt.Errorf("unmount %s (%s): %w", lm.MountPoint, lm.Role, err))
					break
				}
			}
			rep.Unmounted = append(rep.Unmounted, lm.MountPoint)
		}
		if lm.Loop != "" {
			// After the switch the medium's mount is gone, and the kernel
			// names the backing file from the root of its filesystem
			// ("/live/filesystem.squashfs").
			if b, err := os.ReadFile("/sys/block/" + filepath.Base(lm.Loop) + "/loop/backing_file"); err == nil && sameBacking(lm.BackingFile, strings.TrimSpace(string(b))) {
				d, err := loopDev(lm.Loop)
				if err == nil {
					err = overlay.DetachLoop(d)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("detach %s: %w", lm.Loop, err))
				} else {
					rep.Detached = append(rep.Detached, lm.Loop)
				}
			}
		}
	}
	if eject && fr.Medium != "" && fr.MediumIsCD && len(errs) == 0 {
		d, err := loopDev(fr.Medium)
		if err == nil {
			err = overlay.SysActuator{}.Eject(d)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			rep.Ejected = true
		}
	}
	if m, err := procfs.ReadMeminfo("/"); err == nil {
		rep.MemAvailAfter = m["MemAvailable"]
	}
	return rep, errors.Join(errs...)
}

// sameBacking: the loop's backing file now is the one the plan saw.
func sameBacking(then, now string) bool {
	return now != "" && (now == then || strings.HasPrefix(now, "/") && strings.HasSuffix(then, now))
}

// loopDev names a block device by its node.
func loopDev(path string) (overlay.Dev, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return overlay.Dev{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return overlay.Dev{Name: filepath.Base(path), Path: path, Major: unix.Major(uint64(st.Rdev)), Minor: unix.Minor(uint64(st.Rdev))}, nil
}
