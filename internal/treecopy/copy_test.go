package treecopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests copy real trees on the machine's own filesystem: owners,
// device nodes and trusted.* attributes need root, which make test has.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners, device nodes, trusted.* attributes)")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, mode))
	must(t, os.Chmod(p, mode))
}

var old = time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)

// rootTree makes a small root filesystem's worth of every kind of entry.
func rootTree(t *testing.T, dir string) {
	t.Helper()
	write(t, dir+"/etc/hostname", []byte("live\n"), 0o644)
	write(t, dir+"/etc/shadow", []byte("root:*:1:0:99999:7:::\n"), 0o640)
	must(t, os.Chown(dir+"/etc/shadow", 0, 42))
	write(t, dir+"/usr/bin/ping", bytes.Repeat([]byte("ELF"), 5000), 0o755)
	// cap_net_raw=ep, as setcap writes it (VFS_CAP_REVISION_2).
	must(t, unix.Setxattr(dir+"/usr/bin/ping", "security.capability", []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	write(t, dir+"/usr/bin/passwd", []byte("suid"), 0o4755)
	write(t, dir+"/usr/bin/hard", []byte("three names"), 0o755)
	must(t, os.Link(dir+"/usr/bin/hard", dir+"/usr/bin/hard2"))
	must(t, os.MkdirAll(dir+"/usr/sbin", 0o755))
	must(t, os.Link(dir+"/usr/bin/hard", dir+"/usr/sbin/hard3"))
	must(t, os.Symlink("../lib/missing", dir+"/usr/bin/dangling"))
	must(t, os.Symlink("usr/bin", dir+"/bin"))
	must(t, unix.Lchown(dir+"/bin", 0, 7))
	must(t, os.MkdirAll(dir+"/tmp", 0o755))
	must(t, os.Chmod(dir+"/tmp", 0o1777))
	must(t, os.MkdirAll(dir+"/home/user/empty", 0o700))
	must(t, os.Chown(dir+"/home/user", 1000, 1000))
	write(t, dir+"/home/user/notes\nwith newline", []byte("odd name"), 0o600)
	must(t, os.Chown(dir+"/home/user/notes\nwith newline", 1000, 1000))
	must(t, unix.Setxattr(dir+"/home/user/notes\nwith newline", "user.comment", []byte("kept"), 0))
	// A POSIX ACL granting uid 1001 read (system.posix_acl_access, as
	// setfacl writes it: header, then user::rw- user:1001:r-- group::---
	// mask::r-- other::---).
	acl := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 4, 0, 0xe9, 3, 0, 0,
		4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	must(t, unix.Setxattr(dir+"/etc/shadow", "system.posix_acl_access", acl, 0))
	// Sparse: 8 MiB with 4 KiB of data in the middle and a hole at the end.
	f, err := os.Create(dir + "/var/lib/sparse.img")
	if os.IsNotExist(err) {
		must(t, os.MkdirAll(dir+"/var/lib", 0o755))
		f, err = os.Create(dir + "/var/lib/sparse.img")
	}
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{7}, 4096), 4<<20)
	must(t, err)
	must(t, f.Truncate(8<<20))
	must(t, f.Close())
	must(t, unix.Mknod(dir+"/dev-null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(dir+"/dev-loop9", unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(t, unix.Mkfifo(dir+"/run-fifo", 0o620))
	l, err := net.Listen("unix", dir+"/run-sock")
	must(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	write(t, dir+"/proc/1/status", []byte("not copied"), 0o444)
	must(t, os.Chmod(dir+"/proc", 0o555))
	write(t, dir+"/big", bytes.Repeat([]byte("0123456789abcdef"), 300000), 0o644) // 4.6 MiB: several buffers
	// Times last, everywhere, deepest first, as a real root's are.
	var all []string
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		all = append(all, p)
		return err
	}))
	for i := len(all) - 1; i >= 0; i-- {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, all[i], []unix.Timespec{unix.NsecToTimespec(old.UnixNano() + int64(i)), unix.NsecToTimespec(old.UnixNano() - int64(i))}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// entry is what a tree says of one name: everything a copy must keep.
type entry struct {
	mode, uid, gid     uint32
	size               int64
	rdev               uint64
	mtime              int64
	link, sum, xattrs  string
	inodeGroup, blocks int64
}

// describe reads every name of the tree under dir, skipping the
// subtrees in skip. Not the access times: reading a tree moves them
// (relatime); TestCopyKeepsEverything looks at one before that.
func describe(t *testing.T, dir string, skip ...string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	inodes := map[uint64]int64{}
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if strings.HasPrefix(rel, s+"/") {
				return nil
			}
		}
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, mtime: st.Mtim.Nano(), blocks: st.Blocks}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			must(t, err)
			e.size = st.Size
			e.sum = fmt.Sprintf("%x", sha256.Sum256(b))
			if st.Nlink > 1 {
				if _, ok := inodes[st.Ino]; !ok {
					inodes[st.Ino] = int64(len(inodes) + 1)
				}
				e.inodeGroup = inodes[st.Ino]
			}
		case unix.S_IFLNK:
			e.link, _ = os.Readlink(p)
		}
		names, err := ListXattrs(p)
		must(t, err)
		sort.Strings(names)
		for _, n := range names {
			v, err := GetXattr(p, n)
			must(t, err)
			e.xattrs += fmt.Sprintf("%s=%x;", n, v)
		}
		out[rel] = e
		return nil
	}))
	return out
}

func compare(t *testing.T, got, want map[string]entry) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%q missing on the target", name)
			continue
		}
		gb, wb := g.blocks, w.blocks
		g.blocks, w.blocks = 0, 0
		if g != w {
			t.Errorf("%q differs:\n got  %+v\n want %+v", name, g, w)
		}
		if gb > wb+8 { // a hole filled on the target
			t.Errorf("%q uses %d blocks on the target, %d on the source", name, gb, wb)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%q on the target, not in the source", name)
		}
	}
}

func TestCopyKeepsEverything(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	rootTree(t, src)
	var before unix.Stat_t
	must(t, unix.Lstat(src+"/usr/bin/ping", &before))
	c := New(src, dst, Options{Workers: 3, Skip: []string{"proc"}})
	must(t, c.Run(context.Background()))
	var after unix.Stat_t
	must(t, unix.Lstat(dst+"/usr/bin/ping", &after))
	if after.Atim != before.Atim {
		t.Errorf("ping's access time %v on the target, %v on the source", after.Atim, before.Atim)
	}
	want := describe(t, src, "proc")
	compare(t, describe(t, dst), want)
	st := c.Stats()
	// Every regular file of the source but /proc's, three names of one inode.
	if st.Files != 8 || st.HardLinks != 2 || st.Symlinks != 2 || st.Specials != 4 {
		t.Errorf("stats %+v", st)
	}
	if ents, _ := os.ReadDir(dst + "/proc"); len(ents) != 0 {
		t.Errorf("/proc's contents copied: %v", ents)
	}
	var sp unix.Stat_t
	must(t, unix.Stat(dst+"/var/lib/sparse.img", &sp))
	if sp.Blocks*512 > 64<<10 {
		t.Errorf("the sparse file takes %d bytes on the target", sp.Blocks*512)
	}
}

func TestCopyRefusesANonDirectory(t *testing.T) {
	dst := t.TempDir()
	f := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(f, nil, 0o644))
	if err := New(f, dst, Options{}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("copy of a file: %v", err)
	}
	if err := New(t.TempDir(), f, Options{}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("copy onto a file: %v", err)
	}
}

// An error stops the copy and names the file: here a target directory
// that already holds a name the source has.
func TestCopyStopsAtTheFirstError(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	rootTree(t, src)
	write(t, dst+"/etc/hostname", []byte("in the way"), 0o644)
	err := New(src, dst, Options{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "etc/hostname") {
		t.Errorf("copy onto a name that exists: %v", err)
	}
}

// lowerCopied makes a lower layer, an empty upper one and a target that
// holds the lower layer's copy, as pass 1 leaves it.
func lowerCopied(t *testing.T) (lower, upper, dst string) {
	t.Helper()
	needRoot(t)
	lower, upper, dst = t.TempDir(), t.TempDir(), t.TempDir()
	rootTree(t, lower)
	must(t, New(lower, dst, Options{}).Run(context.Background()))
	return lower, upper, dst
}

// gone fails for each of paths that the target dst still has.
func gone(t *testing.T, dst string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(dst + p); !os.IsNotExist(err) {
			t.Errorf("%s is still on the target (%v)", p, err)
		}
	}
}

// The upper layer applied over the lower layer's copy gives what
// overlayfs showed: whiteouts delete, an opaque directory replaces, the
// upper's files and attributes replace the lower's.
func TestUpperOverLower(t *testing.T) {
	_, upper, dst := lowerCopied(t)

	// What the session did, as overlayfs records it in the upper layer.
	must(t, os.MkdirAll(upper+"/etc", 0o755))
	write(t, upper+"/etc/hostname", []byte("installed\n"), 0o644) // changed
	must(t, unix.Mknod(upper+"/etc/shadow", unix.S_IFCHR, 0))     // deleted
	must(t, os.MkdirAll(upper+"/home/user", 0o750))               // chmod of a lower dir (copied up)
	must(t, os.Chown(upper+"/home/user", 1000, 1000))
	must(t, unix.Setxattr(upper+"/home/user", "trusted.overlay.origin", []byte{0}, 0)) // overlayfs's own: not copied
	write(t, upper+"/home/user/new", []byte("made in the session"), 0o600)
	must(t, os.MkdirAll(upper+"/usr/bin", 0o755))
	must(t, unix.Setxattr(upper+"/usr/bin", "trusted.overlay.opaque", []byte("y"), 0)) // rm -rf /usr/bin; mkdir /usr/bin
	write(t, upper+"/usr/bin/only", []byte("the one file left"), 0o755)
	must(t, os.Symlink("/usr/bin/only", upper+"/big"))       // a file replaced by a symlink
	must(t, os.MkdirAll(upper+"/var/lib/sparse.img", 0o755)) // a file replaced by a directory
	must(t, unix.Setxattr(upper+"/var/lib/sparse.img", "trusted.overlay.opaque", []byte("y"), 0))

	c := New(upper, dst, Options{Upper: true})
	must(t, c.Run(context.Background()))

	read := func(p string) string { b, _ := os.ReadFile(dst + p); return string(b) }
	if got := read("/etc/hostname"); got != "installed\n" {
		t.Errorf("/etc/hostname is %q", got)
	}
	gone(t, dst, "/etc/shadow", "/usr/bin/ping", "/usr/bin/hard", "/usr/bin/dangling")
	if got := read("/usr/sbin/hard3"); got != "three names" {
		t.Errorf("the lower layer's other link /usr/sbin/hard3 is %q", got)
	}
	if got := read("/usr/bin/only"); got != "the one file left" {
		t.Errorf("/usr/bin/only is %q", got)
	}
	if l, err := os.Readlink(dst + "/big"); err != nil || l != "/usr/bin/only" {
		t.Errorf("/big: %q %v", l, err)
	}
	if fi, err := os.Lstat(dst + "/var/lib/sparse.img"); err != nil || !fi.IsDir() {
		t.Errorf("/var/lib/sparse.img is not the upper's directory: %v %v", fi, err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(dst+"/home/user", &st))
	if st.Mode&0o7777 != 0o750 || st.Uid != 1000 {
		t.Errorf("/home/user mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
	if names, _ := ListXattrs(dst + "/home/user"); len(names) != 0 {
		t.Errorf("overlayfs's attributes copied: %v", names)
	}
	if got := read("/home/user/notes\nwith newline"); got != "odd name" {
		t.Errorf("a lower file in a copied-up directory: %q", got)
	}
	if got := read("/home/user/new"); got != "made in the session" {
		t.Errorf("/home/user/new is %q", got)
	}
	if s := c.Stats(); s.Deleted < 6 {
		t.Errorf("stats %+v: want the whiteout and the opaque directories' deletions counted", s)
	}
}

// A directory the session renamed, with live-boot's redirect_dir=on: the
// upper layer has the new name pointing at the old one, and a whiteout
// at the old name. The target gets the lower layer's contents under the
// new name, merged with what the upper has there.
func TestUpperRenamedDirectories(t *testing.T) {
	lower, upper, dst := lowerCopied(t)
	// mv /home/user /srv/people (absolute redirect), then
	// mv /srv/people/empty /srv/people/full (relative, inside it), and
	// mv /usr/sbin /usr/sbin.old (relative).
	must(t, os.MkdirAll(upper+"/srv/people/full", 0o755))
	must(t, unix.Setxattr(upper+"/srv/people", "trusted.overlay.redirect", []byte("/home/user"), 0))
	must(t, unix.Setxattr(upper+"/srv/people/full", "trusted.overlay.redirect", []byte("empty"), 0))
	write(t, upper+"/srv/people/full/added", []byte("after the rename"), 0o644)
	must(t, unix.Mknod(upper+"/srv/people/empty", unix.S_IFCHR, 0))
	must(t, os.MkdirAll(upper+"/home", 0o755))
	must(t, unix.Mknod(upper+"/home/user", unix.S_IFCHR, 0))
	must(t, os.MkdirAll(upper+"/usr/sbin.old", 0o755))
	must(t, unix.Setxattr(upper+"/usr/sbin.old", "trusted.overlay.redirect", []byte("sbin"), 0))
	must(t, unix.Mknod(upper+"/usr/sbin", unix.S_IFCHR, 0))

	must(t, New(upper, dst, Options{Upper: true, Lower: lower}).Run(context.Background()))
	read := func(p string) string { b, _ := os.ReadFile(dst + p); return string(b) }
	if got := read("/srv/people/notes\nwith newline"); got != "odd name" {
		t.Errorf("the renamed directory's lower file: %q", got)
	}
	if got := read("/srv/people/full/added"); got != "after the rename" {
		t.Errorf("a file added after the renames: %q", got)
	}
	if got := read("/usr/sbin.old/hard3"); got != "three names" {
		t.Errorf("/usr/sbin.old/hard3: %q", got)
	}
	gone(t, dst, "/home/user", "/usr/sbin", "/srv/people/empty")
	var st unix.Stat_t
	must(t, unix.Lstat(dst+"/srv/people", &st))
	if st.Uid != 0 || st.Mode&0o7777 != 0o755 {
		t.Errorf("/srv/people has uid %d mode %o: want the upper directory's", st.Uid, st.Mode&0o7777)
	}
}

// A renamed directory without the lower layer to take it from, or a
// metadata-only copy-up, has its data elsewhere: refused, naming it.
func TestUpperRefusesRedirectAndMetacopy(t *testing.T) {
	needRoot(t)
	for _, c := range []struct{ name, attr string }{{"dir", "trusted.overlay.redirect"}, {"file", "trusted.overlay.metacopy"}} {
		upper, dst := t.TempDir(), t.TempDir()
		p := upper + "/x"
		if c.name == "dir" {
			must(t, os.Mkdir(p, 0o755))
		} else {
			write(t, p, nil, 0o644)
		}
		must(t, unix.Setxattr(p, c.attr, []byte("/old"), 0))
		err := New(upper, dst, Options{Upper: true}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s with %s: %v", c.name, c.attr, err)
		}
	}
}

func TestCopyDataKeepsHolesAndData(t *testing.T) {
	dir := t.TempDir()
	in, err := os.Create(dir + "/in")
	must(t, err)
	data := bytes.Repeat([]byte{1, 2, 3}, 5000)
	_, err = in.WriteAt(data, 3<<20+100) // not block-aligned
	must(t, err)
	must(t, in.Truncate(6<<20))
	out, err := os.Create(dir + "/out")
	must(t, err)
	n, err := copyData(out, in, 6<<20, true, make([]byte, 64<<10))
	must(t, err)
	if n == 0 || n > 1<<20 {
		t.Errorf("read %d bytes: the holes were read, or nothing", n)
	}
	must(t, out.Close())
	a, _ := os.ReadFile(dir + "/in")
	b, _ := os.ReadFile(dir + "/out")
	if !bytes.Equal(a, b) {
		t.Errorf("the copy differs (%d and %d bytes)", len(a), len(b))
	}
	var st unix.Stat_t
	must(t, unix.Stat(dir+"/out", &st))
	if st.Blocks*512 > 64<<10 {
		t.Errorf("the copy takes %d bytes", st.Blocks*512)
	}
}

// A sparse source whose filesystem cannot tell its holes (SEEK_DATA
// answering "all data") is still copied sparse: blocks of zeros are not
// written. Here the zeros are written on the source, so SEEK_DATA calls
// them data.
func TestCopyDataSkipsZeroBlocks(t *testing.T) {
	dir := t.TempDir()
	in, err := os.Create(dir + "/in")
	must(t, err)
	chunk := append(append(bytes.Repeat([]byte{9}, 8192), make([]byte, 1<<20)...), bytes.Repeat([]byte{9}, 8192)...)
	_, err = in.WriteAt(chunk, 0)
	must(t, err)
	out, err := os.Create(dir + "/out")
	must(t, err)
	_, err = copyData(out, in, int64(len(chunk)), true, make([]byte, 256<<10))
	must(t, err)
	must(t, out.Close())
	b, _ := os.ReadFile(dir + "/out")
	if !bytes.Equal(b, chunk) {
		t.Fatalf("the copy differs")
	}
	var si, so unix.Stat_t
	must(t, unix.Stat(dir+"/in", &si))
	must(t, unix.Stat(dir+"/out", &so))
	if so.Blocks*512 > 64<<10 || so.Blocks >= si.Blocks {
		t.Errorf("the copy takes %d bytes, the source %d: the zeros were written", so.Blocks*512, si.Blocks*512)
	}
}

// The real thing: an overlayfs mount as live-boot makes it
// (redirect_dir=on), a session's worth of changes made through it, then
// the lower layer copied and the upper layer applied over the copy. The
// target must be what the merged mount shows, name for name.
func TestAgainstOverlayfs(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	lower, upper, work, merged, dst := base+"/lower", base+"/upper", base+"/work", base+"/merged", t.TempDir()
	for _, d := range []string{lower, upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	rootTree(t, lower)
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work+",redirect_dir=on"); err != nil {
		t.Skipf("no overlayfs here: %v", err)
	}
	defer unix.Unmount(merged, 0)

	m := func(p string) string { return merged + p }
	write(t, m("/etc/hostname"), []byte("installed\n"), 0o644)
	must(t, unix.Setxattr(m("/etc/hostname"), "user.session", []byte("set"), 0))
	must(t, os.Remove(m("/etc/shadow")))
	must(t, os.Mkdir(m("/srv"), 0o755))
	must(t, os.Rename(m("/home/user"), m("/srv/people")))
	must(t, os.Rename(m("/srv/people/empty"), m("/srv/people/full")))
	write(t, m("/srv/people/full/added"), []byte("after the renames"), 0o644)
	must(t, os.RemoveAll(m("/usr/bin")))
	must(t, os.Mkdir(m("/usr/bin"), 0o755))
	write(t, m("/usr/bin/only"), []byte("the one file left"), 0o755)
	must(t, os.Link(m("/usr/sbin/hard3"), m("/usr/sbin/hard4")))
	must(t, os.Chmod(m("/var"), 0o700))
	must(t, os.Chown(m("/var/lib/sparse.img"), 1234, 1234))
	must(t, unix.Mkfifo(m("/run-fifo2"), 0o600))
	must(t, os.Remove(m("/bin")))
	must(t, os.Mkdir(m("/bin"), 0o755))
	must(t, os.Symlink("/usr/bin/only", m("/bin/only")))
	must(t, os.Rename(m("/big"), m("/big2")))
	must(t, os.Rename(m("/tmp"), m("/tmp.old"))) // an empty lower directory renamed

	must(t, New(lower, dst, Options{Skip: []string{"proc"}}).Run(context.Background()))
	must(t, New(upper, dst, Options{Upper: true, Lower: lower}).Run(context.Background()))
	compare(t, describe(t, dst, "proc"), describe(t, merged, "proc"))
}

// The copy method's second pass: what did not change since the first
// pass began is left alone; what changed (content, or only metadata),
// what is new and the whiteouts made since are applied.
func TestUpperChangedSince(t *testing.T) {
	_, upper, dst := lowerCopied(t)
	must(t, os.MkdirAll(upper+"/srv", 0o755))
	write(t, upper+"/srv/kept", []byte("as it was"), 0o644)
	write(t, upper+"/srv/edited", []byte("first"), 0o644)
	write(t, upper+"/srv/chmodded", []byte("same bytes"), 0o644)
	must(t, New(upper, dst, Options{Upper: true}).Run(context.Background()))
	// The second pass's start, a little after the first (inode times are
	// coarse).
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	write(t, upper+"/srv/edited", []byte("second"), 0o644)
	must(t, os.Chmod(upper+"/srv/chmodded", 0o600))
	write(t, upper+"/srv/new", []byte("made late"), 0o644)
	must(t, os.MkdirAll(upper+"/etc", 0o755))
	must(t, unix.Mknod(upper+"/etc/hostname", unix.S_IFCHR, 0)) // deleted late
	// On the target, a file the first pass wrote is damaged behind its
	// back: not the source's size any more, so it is copied again.
	write(t, dst+"/srv/kept", []byte("damaged!!!!!"), 0o644)
	c := New(upper, dst, Options{Upper: true, ChangedSince: since})
	must(t, c.Run(context.Background()))
	read := func(p string) string { b, _ := os.ReadFile(dst + p); return string(b) }
	if read("/srv/edited") != "second" || read("/srv/new") != "made late" || read("/srv/kept") != "as it was" {
		t.Errorf("edited %q, new %q, kept %q", read("/srv/edited"), read("/srv/new"), read("/srv/kept"))
	}
	var st unix.Stat_t
	must(t, unix.Lstat(dst+"/srv/chmodded", &st))
	if st.Mode&0o777 != 0o600 {
		t.Errorf("chmod since the first pass not applied: %o", st.Mode&0o777)
	}
	gone(t, dst, "/etc/hostname")
	// Left alone: the unchanged files of the lower layer's copy-ups
	// ("lowerCopied" put none in the upper) - here none, since /srv/kept
	// was damaged; copy it again and it is left alone.
	c = New(upper, dst, Options{Upper: true, ChangedSince: since})
	must(t, c.Run(context.Background()))
	if s := c.Stats(); s.Unchanged != 1 {
		t.Errorf("stats %+v: want /srv/kept left alone", s)
	}
}

// The second pass over a directory the first found opaque: the names the
// upper directory lost since are pruned, the others are left or copied
// as changed; a directory made opaque since is emptied as always.
func TestUpperKnownOpaque(t *testing.T) {
	_, upper, dst := lowerCopied(t)
	must(t, os.MkdirAll(upper+"/usr/bin", 0o755))
	must(t, unix.Setxattr(upper+"/usr/bin", "trusted.overlay.opaque", []byte("y"), 0))
	write(t, upper+"/usr/bin/a", []byte("a"), 0o755)
	write(t, upper+"/usr/bin/b", []byte("b"), 0o755)
	var opaque []string
	must(t, New(upper, dst, Options{Upper: true, Opaque: func(rel string) { opaque = append(opaque, rel) }}).Run(context.Background()))
	if fmt.Sprint(opaque) != "[usr/bin]" {
		t.Fatalf("opaque directories seen: %v", opaque)
	}
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	must(t, os.Remove(upper+"/usr/bin/b"))
	write(t, upper+"/usr/bin/c", []byte("c"), 0o755)
	must(t, os.MkdirAll(upper+"/usr/sbin", 0o755)) // made opaque since
	must(t, unix.Setxattr(upper+"/usr/sbin", "trusted.overlay.opaque", []byte("y"), 0))
	c := New(upper, dst, Options{Upper: true, ChangedSince: since, KnownOpaque: map[string]bool{"usr/bin": true}})
	must(t, c.Run(context.Background()))
	gone(t, dst, "/usr/bin/b", "/usr/sbin/hard3")
	names := func(d string) string {
		ents, _ := os.ReadDir(dst + d)
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return strings.Join(n, " ")
	}
	if names("/usr/bin") != "a c" || names("/usr/sbin") != "" {
		t.Errorf("/usr/bin has %q, /usr/sbin %q", names("/usr/bin"), names("/usr/sbin"))
	}
	if s := c.Stats(); s.Unchanged != 1 {
		t.Errorf("stats %+v: want /usr/bin/a left alone", s)
	}
}

// A live upper layer changes while it is copied: a file or directory
// removed after the walk listed it is not an error (the next pass
// deletes or copies what it became).
func TestSourceVanishes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write(t, src+"/f", []byte("data"), 0o644)
	must(t, os.Symlink("f", src+"/l"))
	c := New(src, dst, Options{Upper: true})
	var st unix.Stat_t
	must(t, unix.Lstat(src+"/f", &st))
	must(t, os.Remove(src+"/f"))
	if err := c.regular("f", &st, make([]byte, 1<<16)); err != nil {
		t.Errorf("a file removed after its lstat: %v", err)
	}
	gone(t, dst, "/f")
	must(t, os.Remove(src+"/l"))
	if err := c.entry("l", make([]byte, 1<<16)); err != nil {
		t.Errorf("a symlink removed after it was listed: %v", err)
	}
	jobs := make(chan job, 4)
	if err := c.walk(context.Background(), "gone-dir", "gone-dir", jobs); err != nil {
		t.Errorf("a directory removed after it was listed: %v", err)
	}
	// Its data read, then the file goes: the copy keeps it, without the
	// xattrs it can no longer read.
	if err := copyXattrs(src+"/nothing", dst, true); err != nil {
		t.Errorf("xattrs of a vanished source: %v", err)
	}
}

// Replace copies a plain tree again over its earlier copy (the copy
// method's second pass over a tmpfs root): changed files and a name that
// changed type are replaced, unchanged ones left alone, and nothing is
// read as overlayfs's: a 0:0 character device is copied as a device node,
// not taken for a whiteout.
func TestReplacePlainTree(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	write(t, src+"/srv/kept", []byte("as it was"), 0o644)
	write(t, src+"/srv/edited", []byte("first"), 0o644)
	write(t, src+"/srv/becomes-dir", []byte("a file first"), 0o644)
	must(t, os.MkdirAll(src+"/srv/becomes-file", 0o755))
	write(t, src+"/srv/becomes-file/x", []byte("x"), 0o644)
	must(t, unix.Mknod(src+"/srv/null00", unix.S_IFCHR|0o600, 0))
	must(t, New(src, dst, Options{Replace: true}).Run(context.Background()))
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	write(t, src+"/srv/edited", []byte("second"), 0o644)
	must(t, os.Remove(src+"/srv/becomes-dir"))
	write(t, src+"/srv/becomes-dir/y", []byte("y"), 0o644)
	must(t, os.RemoveAll(src+"/srv/becomes-file"))
	write(t, src+"/srv/becomes-file", []byte("a file now"), 0o644)
	// Without Replace the earlier copy is in the way.
	if err := New(src, dst, Options{ChangedSince: since}).Run(context.Background()); err == nil {
		t.Errorf("a plain copy over an earlier one succeeded; Replace would not be needed")
	}
	c := New(src, dst, Options{Replace: true, ChangedSince: since})
	must(t, c.Run(context.Background()))
	read := func(p string) string { b, _ := os.ReadFile(dst + p); return string(b) }
	if read("/srv/edited") != "second" || read("/srv/kept") != "as it was" || read("/srv/becomes-dir/y") != "y" || read("/srv/becomes-file") != "a file now" {
		t.Errorf("edited %q, kept %q, becomes-dir/y %q, becomes-file %q", read("/srv/edited"), read("/srv/kept"), read("/srv/becomes-dir/y"), read("/srv/becomes-file"))
	}
	var st unix.Stat_t
	must(t, unix.Lstat(dst+"/srv/null00", &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("the 0:0 device node: mode %o rdev %d, want a character device 0:0", st.Mode, st.Rdev)
	}
	// Deleted: the file a directory replaced; the device node is no
	// whiteout.
	if s := c.Stats(); s.Unchanged != 2 || s.Deleted != 1 {
		t.Errorf("stats %+v: want /srv/kept and the device node left alone, only becomes-dir's file replaced", s)
	}
}
