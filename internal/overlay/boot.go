package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// CreateSnapshot builds the dm snapshot name over origin with cow (device
// paths) covering all of origin, and makes sure /dev/mapper/<name> exists:
// an initramfs without udev gets no node otherwise. chunkSectors is in
// 512-byte sectors (dracut uses 8). A persistent snapshot is built with
// overflow support ("PO", as dracut does); see CreateSnapshotOpts.
func CreateSnapshot(name string, origin, cow string, persistent bool, chunkSectors uint64) (Dev, error) {
	return CreateSnapshotOpts(name, origin, cow, SnapshotOptions{
		Persistent:   persistent,
		Overflow:     persistent,
		ChunkSectors: chunkSectors,
	})
}

// SnapshotOptions shape the table of a dm snapshot.
type SnapshotOptions struct {
	// Persistent keeps the exception store on the COW device ("P");
	// otherwise it lives in memory only ("N").
	Persistent bool
	// Overflow ("PO", persistent only, Linux 4.3+) makes a full COW fail
	// only new writes while reads keep working. Without it a full snapshot
	// turns Invalid and fails all I/O, and md then fails the live leg.
	Overflow bool
	// ChunkSectors is the chunk size in 512-byte sectors, a power of two;
	// 0 (persistent only) reuses the chunk size stored on the COW.
	ChunkSectors uint64
}

// snapshotParams is the "snapshot" target's table line: origin and COW as
// major:minor (the form the kernel shows back), store type, chunk size.
func snapshotParams(origin, cow Dev, opts SnapshotOptions) string {
	store := "N"
	if opts.Persistent {
		store = "P"
		if opts.Overflow {
			store = "PO"
		}
	}
	return fmt.Sprintf("%d:%d %d:%d %s %d", origin.Major, origin.Minor, cow.Major, cow.Minor, store, opts.ChunkSectors)
}

// CreateSnapshotOpts is CreateSnapshot with every table option: it creates
// the dm device, loads the snapshot table with our own DM_TABLE_LOAD and
// resumes it; if loading or resuming fails the device is removed again.
func CreateSnapshotOpts(name string, origin, cow string, opts SnapshotOptions) (Dev, error) {
	chunk := opts.ChunkSectors
	if (chunk == 0 && !opts.Persistent) || chunk&(chunk-1) != 0 {
		return Dev{}, fmt.Errorf("create snapshot %s: chunk size %d sectors is not a power of two", name, chunk)
	}
	if opts.Overflow && !opts.Persistent {
		return Dev{}, fmt.Errorf("create snapshot %s: overflow needs a persistent COW store", name)
	}
	size, err := deviceSize(origin)
	if err != nil {
		return Dev{}, fmt.Errorf("create snapshot %s: size of origin: %w", name, err)
	}
	sectors := size / 512
	if sectors == 0 {
		return Dev{}, fmt.Errorf("create snapshot %s: origin %s is empty", name, origin)
	}
	od, err := blockDevNumber(origin)
	if err != nil {
		return Dev{}, fmt.Errorf("create snapshot %s: origin: %w", name, err)
	}
	cd, err := blockDevNumber(cow)
	if err != nil {
		return Dev{}, fmt.Errorf("create snapshot %s: COW device: %w", name, err)
	}
	table := []Target{{Length: sectors, Type: "snapshot", Params: snapshotParams(od, cd, opts)}}
	what := fmt.Sprintf("snapshot %s (origin %s, COW %s, %d sectors)", name, origin, cow, sectors)

	if err := devmapper.Create(name, ""); err != nil {
		return Dev{}, fmt.Errorf("create %s: %w", what, err)
	}
	undo := func(err error) error {
		if rerr := devmapper.Remove(name); rerr != nil {
			return fmt.Errorf("%w; removing %s again also failed: %v", err, name, rerr)
		}
		return err
	}
	if err := loadTable(name, false, table); err != nil {
		return Dev{}, undo(fmt.Errorf("create %s: table %q: %w", what, table[0].Params, err))
	}
	if err := devmapper.Resume(name); err != nil {
		return Dev{}, undo(fmt.Errorf("create %s: resume: %w", what, err))
	}
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return Dev{}, undo(fmt.Errorf("created %s but cannot query it: %w", what, err))
	}
	d := Dev{Major: unix.Major(info.DevNo), Minor: unix.Minor(info.DevNo), Path: "/dev/mapper/" + name}
	d.Name = "dm-" + strconv.FormatUint(uint64(d.Minor), 10)
	if err := ensureBlockNode(d.Path, d.Major, d.Minor); err != nil {
		return d, fmt.Errorf("created snapshot %s (%d:%d) but: %w", name, d.Major, d.Minor, err)
	}
	return d, nil
}

// blockDevNumber is the major:minor of block device p (symlinks followed).
func blockDevNumber(p string) (Dev, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return Dev{}, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return Dev{}, fmt.Errorf("%s is not a block device", p)
	}
	return Dev{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev), Path: p}, nil
}

// deviceSize is BLKGETSIZE64 of a block device (bytes).
func deviceSize(p string) (uint64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	if err := ioctlPtr(f.Fd(), unix.BLKGETSIZE64, &n); err != nil {
		return 0, &os.PathError{Op: "BLKGETSIZE64", Path: p, Err: err}
	}
	return n, nil
}

// ensureBlockNode creates p as a block node for major:minor unless one is
// already there; a stale node with another number is replaced.
func ensureBlockNode(p string, major, minor uint32) error {
	want := unix.Mkdev(major, minor)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == want {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("replace stale %s: %w", p, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(want)); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mknod", Path: p, Err: err}
	}
	return nil
}

// SetupLoop binds file to a free loop device, read-only if asked, without
// autoclear: the loop must outlive this process because dm holds it.
func SetupLoop(file string, readOnly bool) (Dev, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	backing, err := os.OpenFile(file, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return Dev{}, fmt.Errorf("set up loop for %s: %w", file, err)
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Dev{}, fmt.Errorf("set up loop for %s: %w", file, err)
	}
	defer ctl.Close()

	// Another process may take the free loop between GET_FREE and our
	// configure (EBUSY): ask again.
	var lastErr error
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return Dev{}, fmt.Errorf("set up loop for %s: LOOP_CTL_GET_FREE: %w", file, err)
		}
		d, err := bindLoop(n, backing, file, readOnly)
		if err == nil {
			return d, nil
		}
		lastErr = err
		if !errors.Is(err, unix.EBUSY) {
			break
		}
	}
	return Dev{}, fmt.Errorf("set up loop for %s: %w", file, lastErr)
}

func bindLoop(n int, backing *os.File, file string, readOnly bool) (Dev, error) {
	d := Dev{Name: "loop" + strconv.Itoa(n), Path: "/dev/loop" + strconv.Itoa(n)}
	// Minors are not always n (max_part shifts them): trust sysfs.
	if s, err := os.ReadFile("/sys/class/block/" + d.Name + "/dev"); err == nil {
		if d.Major, d.Minor, err = procfs.ParseDevNumber(string(s)); err != nil {
			return Dev{}, err
		}
	} else {
		d.Major, d.Minor = 7, uint32(n)
	}
	if err := ensureBlockNode(d.Path, d.Major, d.Minor); err != nil {
		return Dev{}, err
	}
	lf, err := os.OpenFile(d.Path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Dev{}, err
	}
	defer lf.Close()

	var info unix.LoopInfo64
	copy(info.File_name[:len(info.File_name)-1], file)
	if readOnly {
		info.Flags = unix.LO_FLAGS_READ_ONLY
	}
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Info: info}
	err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return Dev{}, &os.PathError{Op: "LOOP_CONFIGURE", Path: d.Path, Err: err}
	}
	// Kernels before 5.8 lack LOOP_CONFIGURE. SET_FD takes read-only from
	// the backing file's open mode; SET_STATUS64 only records the name.
	if err := unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_SET_FD, int(backing.Fd())); err != nil {
		return Dev{}, &os.PathError{Op: "LOOP_SET_FD", Path: d.Path, Err: err}
	}
	info.Flags = 0
	if err := unix.IoctlLoopSetStatus64(int(lf.Fd()), &info); err != nil {
		_ = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
		return Dev{}, &os.PathError{Op: "LOOP_SET_STATUS64", Path: d.Path, Err: err}
	}
	return d, nil
}

// DetachLoop unbinds loop d. Since Linux 5.x LOOP_CLR_FD only marks the
// loop for autoclear and the kernel unbinds it when the last opener closes,
// so success is judged by sysfs after our own descriptor is closed. A loop
// that is not bound (ENXIO, or no node) counts as detached.
func DetachLoop(d Dev) error {
	if err := clearLoop(d); err != nil {
		if isGone(err) {
			return nil
		}
		return fmt.Errorf("detach %s: %w", d, err)
	}
	bf := "/sys/class/block/" + d.Name + "/loop/backing_file"
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := os.Stat(bf); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			holders, _ := Host{Root: "/"}.holders(d)
			why := "something still has it open"
			if len(holders) > 0 {
				why = "held by " + strings.Join(holders, ", ")
			}
			return fmt.Errorf("detach %s: %s: %w", d, why, ErrDetachDeferred)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func clearLoop(d Dev) error {
	f, err := openDevNode(d, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
		return &os.PathError{Op: "LOOP_CLR_FD", Path: f.Name(), Err: err}
	}
	return nil
}

func ioctlPtr(fd uintptr, req uint, p *uint64) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(p)))
	if errno != 0 {
		return errno
	}
	return nil
}

// BlockDevNumber is the major:minor of block device p (symlinks followed),
// with Path set to p.
func BlockDevNumber(p string) (Dev, error) { return blockDevNumber(p) }

// DeviceSize is the size in bytes of block device p (BLKGETSIZE64).
func DeviceSize(p string) (uint64, error) { return deviceSize(p) }
