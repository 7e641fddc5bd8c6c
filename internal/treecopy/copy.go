package treecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options say what to copy and how.
type Options struct {
	// Workers copy regular files in parallel; 0 means twice the CPUs
	// (at least 4): half of them wait on the target while the others
	// decompress the source.
	Workers int
	// Skip lists directories, relative to the source root ("proc",
	// "run/live"), whose contents are left out: each is made on the
	// target, empty, with its own metadata (a mount point there).
	Skip []string
	// OneFileSystem treats every directory on another filesystem than
	// the source root (a mount below it) as skipped.
	OneFileSystem bool
	// Upper: the source is an overlayfs upper directory applied over a
	// target that holds its lower layer already: a whiteout (a 0:0
	// character device) deletes the name on the target, an opaque
	// directory (trusted.overlay.opaque=y) replaces the target's, and
	// what the upper holds replaces what the target has under the same
	// name. Files holding only metadata (metacopy) are refused: their
	// data is in the lower layer.
	Upper bool
	// Replace: the target may hold an earlier pass's copy of this very
	// tree (a plain tree, not an upper layer: nothing in it is read as
	// a whiteout, opaque directory or redirect): what the source holds
	// replaces what the target has under the same name. Upper implies
	// it. The copy method's second pass over a tmpfs root.
	Replace bool
	// Lower (with Upper) is the lower layer's tree, read-only: a
	// directory the session renamed (redirect_dir=on, as live-boot
	// mounts its overlay) is an upper directory pointing at its old
	// name in the lower layer, and is copied from there first. Without
	// it such a directory is refused.
	Lower string
	// ChangedSince (with Upper or Replace): a file, symlink or device node whose
	// inode changed (ctime) before this time, and that the target holds
	// already with the same type, size and modification time, is left as
	// it is: an earlier pass, started after that time, copied it as it is
	// now. What changed since, whiteouts and directories are applied as
	// always. The copy method's second pass at the switch copies only
	// what the session changed during the first.
	ChangedSince time.Time
	// Opaque, when set, is called with every opaque directory the walk
	// meets (Upper only); KnownOpaque lists directories an earlier pass
	// found opaque and copied: their target holds what the upper layer
	// had, so only the names the source directory no longer lists are
	// removed from it before it is applied again (deeper names the caller
	// removes, as Visit tells it); any other opaque directory's target is
	// emptied.
	Opaque      func(rel string)
	KnownOpaque map[string]bool
	// Visit, when set, is called with every name the walk meets in the
	// source (relative to its root), from the one walking goroutine:
	// what a later pass needs to know was copied (the copy method
	// deletes, at the switch, what the session removed from its upper
	// layer since).
	Visit func(rel string)
}

// Stats count what a copy did so far.
type Stats struct {
	Dirs, Files, HardLinks, Symlinks, Specials int64
	// Deleted: names a whiteout or an opaque directory took away
	// (Upper only).
	Deleted int64
	// Bytes: regular files' data read from the source.
	Bytes int64
	// Unchanged: entries ChangedSince left alone.
	Unchanged int64
}

// Copier copies one tree. Its Stats may be read while Run works.
type Copier struct {
	src, dst string
	opt      Options
	skip     map[string]bool
	rootDev  uint64

	dirs, files, hardLinks, symlinks, specials, deleted, bytes, unchanged atomic.Int64

	mu    sync.Mutex
	links map[[2]uint64]*linkState
	// made: directories in the order the walker made them; their
	// metadata is set afterwards, deepest first.
	made []madeDir

	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

type madeDir struct {
	rel string
	st  unix.Stat_t
}

// linkState is the first name of a source inode with several links:
// the others are linked to path once done is closed.
type linkState struct {
	done chan struct{}
	path string
	ok   bool
}

// New prepares the copy of the tree at src onto dst, an existing
// directory (the target filesystem's root, mounted).
func New(src, dst string, opt Options) *Copier {
	c := &Copier{src: filepath.Clean(src), dst: filepath.Clean(dst), opt: opt, skip: map[string]bool{}, links: map[[2]uint64]*linkState{}}
	for _, s := range opt.Skip {
		c.skip[strings.Trim(filepath.Clean("/"+s), "/")] = true
	}
	if c.opt.Workers <= 0 {
		c.opt.Workers = max(4, 2*runtime.NumCPU())
	}
	return c
}

// Stats is what the copy has done so far.
func (c *Copier) Stats() Stats {
	return Stats{Dirs: c.dirs.Load(), Files: c.files.Load(), HardLinks: c.hardLinks.Load(), Symlinks: c.symlinks.Load(),
		Specials: c.specials.Load(), Deleted: c.deleted.Load(), Bytes: c.bytes.Load(), Unchanged: c.unchanged.Load()}
}

// job is one non-directory entry for a worker.
type job struct{ rel string }

// Run copies the tree. The first error stops it and is returned; what was
// written until then stays on the target.
func (c *Copier) Run(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	var root unix.Stat_t
	if err := unix.Lstat(c.src, &root); err != nil {
		return &os.PathError{Op: "lstat", Path: c.src, Err: err}
	}
	if root.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("copy %s: not a directory", c.src)
	}
	if fi, err := os.Stat(c.dst); err != nil || !fi.IsDir() {
		return fmt.Errorf("copy onto %s: not a directory (%v)", c.dst, err)
	}
	c.rootDev = root.Dev

	jobs := make(chan job, 4096)
	var wg sync.WaitGroup
	for i := 0; i < c.opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := c.entry(j.rel, buf); err != nil {
					c.fail(err)
				}
			}
		}()
	}
	c.made = append(c.made, madeDir{"", root})
	c.dirs.Add(1)
	if lp, err := c.fromUpper(ctx, "", "/"); err != nil {
		c.fail(err)
	} else if err := c.walk(ctx, "", lp, jobs); err != nil {
		c.fail(err)
	}
	close(jobs)
	wg.Wait()
	if c.err != nil {
		return c.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Directories last, deepest first: writing into a directory moves its
	// times.
	for i := len(c.made) - 1; i >= 0; i-- {
		d := c.made[i]
		if err := c.meta(d.rel, &d.st, true); err != nil {
			return err
		}
	}
	return nil
}

func (c *Copier) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.cancel()
	})
}

func (c *Copier) srcPath(rel string) string { return filepath.Join(c.src, rel) }
func (c *Copier) dstPath(rel string) string { return filepath.Join(c.dst, rel) }

// walk makes the directory rel's subdirectories on the target and hands
// everything else to the workers, depth first. lowerPath (Upper mode) is
// where rel's lower directory is in the lower layer: a renamed
// directory's contents stay under their old name there.
func (c *Copier) walk(ctx context.Context, rel, lowerPath string, jobs chan<- job) error {
	if c.skip[rel] {
		return nil
	}
	f, err := os.Open(c.srcPath(rel))
	if vanished(err) {
		return nil // removed since it was listed (a live upper layer)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if vanished(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy %s: read the directory: %w", c.srcPath(rel), err)
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			return nil
		}
		child := filepath.Join(rel, e.Name())
		if c.opt.Visit != nil {
			c.opt.Visit(child)
		}
		if !e.IsDir() {
			select {
			case jobs <- job{child}:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(c.srcPath(child), &st); vanished(err) {
			continue
		} else if err != nil {
			return &os.PathError{Op: "lstat", Path: c.srcPath(child), Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// Replaced since it was listed: a worker copies what it is now.
			jobs <- job{child}
			continue
		}
		if err := c.mkdir(child); err != nil {
			return err
		}
		c.mu.Lock()
		c.made = append(c.made, madeDir{child, st})
		c.mu.Unlock()
		c.dirs.Add(1)
		lp, err := c.fromUpper(ctx, child, filepath.Join(lowerPath, e.Name()))
		if err != nil {
			return err
		}
		if c.opt.OneFileSystem && st.Dev != c.rootDev {
			continue
		}
		if err := c.walk(ctx, child, lp, jobs); err != nil {
			return err
		}
	}
	return nil
}

// mkdir makes directory rel on the target (0700 until its metadata is set
// at the end); in Upper or Replace mode over whatever non-directory was
// there.
func (c *Copier) mkdir(rel string) error {
	p := c.dstPath(rel)
	err := unix.Mkdir(p, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if lerr := unix.Lstat(p, &st); lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
		if c.opt.Upper || c.opt.Replace {
			if rerr := os.RemoveAll(p); rerr != nil {
				return fmt.Errorf("copy %s: replace it on the target: %w", rel, rerr)
			}
			c.deleted.Add(1)
			err = unix.Mkdir(p, 0o700)
		}
	}
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	return nil
}

// fromUpper, in Upper mode, prepares the target's directory rel before
// the upper layer's entries in it are applied: an opaque directory's
// target is emptied; a renamed one (a redirect to its old name in the
// lower layer, absolute or relative to its parent's lower directory) is
// emptied and filled from the lower layer's directory of that name, which
// the target still has under the old name only (and the whiteout there
// deletes). lowerPath is where rel's lower directory would be without a
// redirect; it returns where it is. A no-op otherwise.
func (c *Copier) fromUpper(ctx context.Context, rel, lowerPath string) (string, error) {
	if !c.opt.Upper {
		return lowerPath, nil
	}
	sp, dp := c.srcPath(rel), c.dstPath(rel)
	if v, _ := overlayXattr(sp, "opaque"); v == "y" {
		if c.opt.Opaque != nil {
			c.opt.Opaque(rel)
		}
		if c.opt.KnownOpaque[rel] {
			return lowerPath, c.prune(rel)
		}
		return lowerPath, c.empty(rel)
	}
	redirect, ok := overlayXattr(sp, "redirect")
	if !ok {
		return lowerPath, nil
	}
	if c.opt.Lower == "" {
		return "", fmt.Errorf("copy %s: an overlayfs directory renamed from %q (redirect_dir): its contents are in the lower layer under that name, and no lower layer was given", sp, redirect)
	}
	from := redirect
	if !strings.HasPrefix(redirect, "/") {
		from = filepath.Join(filepath.Dir(lowerPath), redirect)
	}
	from = filepath.Clean(from)
	lowerDir := filepath.Join(c.opt.Lower, from)
	if fi, err := os.Lstat(lowerDir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("copy %s: renamed from %s, which the lower layer %s does not have as a directory (%v)", sp, from, c.opt.Lower, err)
	}
	if err := c.empty(rel); err != nil {
		return "", err
	}
	sub := New(lowerDir, dp, Options{Workers: c.opt.Workers})
	if err := sub.Run(ctx); err != nil {
		return "", fmt.Errorf("copy %s: its contents from the lower layer's %s: %w", sp, from, err)
	}
	st := sub.Stats()
	c.files.Add(st.Files)
	c.hardLinks.Add(st.HardLinks)
	c.symlinks.Add(st.Symlinks)
	c.specials.Add(st.Specials)
	c.dirs.Add(st.Dirs - 1)
	c.bytes.Add(st.Bytes)
	return from, nil
}

// prune removes from the target's directory rel the names the source's
// lacks.
func (c *Copier) prune(rel string) error {
	sp, dp := c.srcPath(rel), c.dstPath(rel)
	ents, err := os.ReadDir(dp)
	if err != nil {
		return fmt.Errorf("copy %s: prune its target: %w", rel, err)
	}
	for _, e := range ents {
		if _, err := os.Lstat(filepath.Join(sp, e.Name())); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dp, e.Name())); err != nil {
			return fmt.Errorf("copy %s: prune its target: %w", rel, err)
		}
		c.deleted.Add(1)
	}
	return nil
}

// empty removes everything in the target's directory rel.
func (c *Copier) empty(rel string) error {
	dp := c.dstPath(rel)
	ents, err := os.ReadDir(dp)
	if err != nil {
		return fmt.Errorf("copy %s: empty its target: %w", rel, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dp, e.Name())); err != nil {
			return fmt.Errorf("copy %s: empty its target: %w", rel, err)
		}
		c.deleted.Add(1)
	}
	return nil
}

// overlayXattr reads overlayfs's own attribute NAME of path, as the
// trusted.overlay. or (userxattr mounts) user.overlay. attribute.
func overlayXattr(path, name string) (string, bool) {
	for _, ns := range []string{"trusted.overlay.", "user.overlay."} {
		if v, err := GetXattr(path, ns+name); err == nil {
			return string(v), true
		}
	}
	return "", false
}

// entry copies one non-directory.
func (c *Copier) entry(rel string, buf []byte) error {
	sp, dp := c.srcPath(rel), c.dstPath(rel)
	var st unix.Stat_t
	if err := unix.Lstat(sp, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since it was listed: nothing to copy
		}
		return &os.PathError{Op: "lstat", Path: sp, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	if c.opt.Upper || c.opt.Replace {
		if c.opt.Upper && typ == unix.S_IFCHR && st.Rdev == 0 {
			return c.whiteout(rel)
		}
		if c.unchangedSince(dp, &st) {
			c.unchanged.Add(1)
			return nil
		}
		if err := c.clear(rel, typ == unix.S_IFDIR); err != nil {
			return err
		}
	}
	switch typ {
	case unix.S_IFDIR:
		// Listed as something else, a directory now: copy it whole.
		return fmt.Errorf("copy %s: changed from a file into a directory while it was copied", sp)
	case unix.S_IFREG:
		return c.regular(rel, &st, buf)
	case unix.S_IFLNK:
		target, err := os.Readlink(sp)
		if vanished(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", sp, err)
		}
		if err := os.Symlink(target, dp); err != nil {
			return fmt.Errorf("copy %s: %w", sp, err)
		}
		c.symlinks.Add(1)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dp, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dp, Err: err}
		}
		c.specials.Add(1)
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", sp, typ)
	}
	return c.meta(rel, &st, false)
}

// vanished: the source entry went away while the copy ran. Only a live
// source (an upper layer the session still writes) does that; what it
// became is the next pass's to copy or delete, as it is for anything the
// session changes during a pass.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// unchangedSince reports whether Options.ChangedSince lets the target's
// dp stand for the source entry st.
func (c *Copier) unchangedSince(dp string, st *unix.Stat_t) bool {
	since := c.opt.ChangedSince
	if since.IsZero() || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return false
	}
	if !time.Unix(st.Ctim.Unix()).Before(since) {
		return false
	}
	var dt unix.Stat_t
	if err := unix.Lstat(dp, &dt); err != nil {
		return false
	}
	return dt.Mode&unix.S_IFMT == st.Mode&unix.S_IFMT && dt.Size == st.Size && dt.Mtim == st.Mtim
}

// whiteout deletes rel on the target, as the upper layer's whiteout hides
// it.
func (c *Copier) whiteout(rel string) error {
	p := c.dstPath(rel)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("copy %s: delete what the whiteout hides: %w", rel, err)
	}
	c.deleted.Add(1)
	return nil
}

// clear removes what the target has under rel before the upper layer's
// entry of the same name is written there.
func (c *Copier) clear(rel string, isDir bool) error {
	p := c.dstPath(rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil
	}
	if isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("copy %s: replace it on the target: %w", rel, err)
	}
	return nil
}

const bufSize = 1 << 20

// regular copies a regular file's data (holes kept) and, for an inode
// with several names, links the later names to the first.
func (c *Copier) regular(rel string, st *unix.Stat_t, buf []byte) error {
	sp, dp := c.srcPath(rel), c.dstPath(rel)
	if c.opt.Upper {
		if _, ok := overlayXattr(sp, "metacopy"); ok {
			return fmt.Errorf("copy %s: an overlayfs metacopy file (its data is in the lower layer); copy the merged root instead", sp)
		}
	}
	var ls *linkState
	if st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		c.mu.Lock()
		first, seen := c.links[key]
		if !seen {
			ls = &linkState{done: make(chan struct{}), path: dp}
			c.links[key] = ls
		}
		c.mu.Unlock()
		if seen {
			<-first.done
			if !first.ok {
				return nil // the first name's copy failed and said so
			}
			if err := os.Link(first.path, dp); err != nil {
				return fmt.Errorf("copy %s: link it to %s: %w", sp, first.path, err)
			}
			c.hardLinks.Add(1)
			return nil
		}
		defer close(ls.done)
	}
	in, err := os.OpenFile(sp, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		in, err = os.OpenFile(sp, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if vanished(err) {
		return nil // removed since it was listed
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", sp, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", sp, err)
	}
	n, err := copyData(out, in, st.Size, st.Blocks*512 < st.Size, buf)
	c.bytes.Add(n)
	if err != nil {
		out.Close()
		return fmt.Errorf("copy %s onto %s: %w", sp, dp, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s onto %s: %w", sp, dp, err)
	}
	if err := c.meta(rel, st, false); err != nil {
		return err
	}
	c.files.Add(1)
	if ls != nil {
		ls.ok = true
	}
	return nil
}

// copyData copies size bytes of in to out. A sparse source (fewer blocks
// than its size says) keeps its holes: the data extents are found with
// SEEK_DATA/SEEK_HOLE where the source has them, and blocks of zeros
// within are not written either. It returns the bytes read.
func copyData(out, in *os.File, size int64, sparse bool, buf []byte) (int64, error) {
	var read int64
	off := int64(0)
	for off < size {
		end := size
		if sparse {
			d, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
			if err == unix.ENXIO {
				break // nothing but a hole to the end
			}
			if err == nil {
				off = d
				if h, err := unix.Seek(int(in.Fd()), off, unix.SEEK_HOLE); err == nil {
					end = h
				}
			}
		}
		for off < end {
			n, err := in.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
			if n > 0 {
				read += int64(n)
				if werr := writeChunk(out, buf[:n], off, sparse); werr != nil {
					return read, werr
				}
				off += int64(n)
			}
			if err == io.EOF {
				// Shorter than it was when it was looked at.
				return read, out.Truncate(off)
			}
			if err != nil {
				return read, err
			}
		}
	}
	if sparse {
		// A trailing hole is written by no block.
		return read, out.Truncate(size)
	}
	return read, nil
}

const zeroBlock = 4096

var zeros = make([]byte, zeroBlock)

// writeChunk writes b at off; for a sparse file it skips whole blocks of
// zeros, which the target then reads back as holes.
func writeChunk(out *os.File, b []byte, off int64, sparse bool) error {
	if !sparse {
		_, err := out.WriteAt(b, off)
		return err
	}
	for len(b) > 0 {
		n := min(len(b), zeroBlock)
		if n == zeroBlock && string(b[:n]) == string(zeros) {
			b, off = b[n:], off+int64(n)
			continue
		}
		// Write the run of blocks up to the next block of zeros.
		run := n
		for run < len(b) {
			m := min(len(b)-run, zeroBlock)
			if m == zeroBlock && string(b[run:run+m]) == string(zeros) {
				break
			}
			run += m
		}
		if _, err := out.WriteAt(b[:run], off); err != nil {
			return err
		}
		b, off = b[run:], off+int64(run)
	}
	return nil
}

// meta gives the target's rel the source's owner, mode, extended
// attributes and times, in that order: chown clears setuid bits and file
// capabilities, and every change before the times would move them.
func (c *Copier) meta(rel string, st *unix.Stat_t, isDir bool) error {
	sp, dp := c.srcPath(rel), c.dstPath(rel)
	if err := unix.Lchown(dp, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dp, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dp, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dp, Err: err}
		}
	}
	if err := copyXattrs(sp, dp, c.opt.Upper || isDir); err != nil {
		return fmt.Errorf("copy %s: %w", sp, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dp, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dp, Err: err}
	}
	return nil
}
