package overlay

import (
	"github.com/livemigrate/livemigrate/internal/procfs"

	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree is a fake /sys and /proc under a temp dir, laid out like the real
// ones: devices live under /sys/devices, and /sys/dev/block/M:m,
// /sys/class/block/NAME and /sys/block/NAME are relative symlinks to them.
type tree struct {
	t    *testing.T
	root string
}

func newTree(t *testing.T) *tree {
	return &tree{t: t, root: t.TempDir()}
}

func (tr *tree) write(p, content string) {
	tr.t.Helper()
	full := filepath.Join(tr.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) symlink(p, target string) {
	tr.t.Helper()
	full := filepath.Join(tr.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		tr.t.Fatal(err)
	}
}

// dev adds a block device. parent is the directory under /sys/devices
// that holds it: "virtual/block" for loop/dm/md/zram, ".../block/sdb" for
// partition sdb1 (which then gets a "partition" attribute).
func (tr *tree) dev(name, majmin, parent string) string {
	dir := path.Join("/sys/devices", parent, name)
	tr.write(dir+"/dev", majmin+"\n")
	tr.write(dir+"/size", "2097152\n")
	rel := func(from string) string {
		r, err := filepath.Rel(path.Dir(from), dir)
		if err != nil {
			tr.t.Fatal(err)
		}
		return r
	}
	tr.symlink("/sys/dev/block/"+majmin, rel("/sys/dev/block/"+majmin))
	tr.symlink("/sys/class/block/"+name, rel("/sys/class/block/"+name))
	if strings.HasSuffix(parent, "/block/"+strings.TrimRight(name, "0123456789")) && name != strings.TrimRight(name, "0123456789") && !strings.HasPrefix(name, "loop") {
		tr.write(dir+"/partition", "1\n")
	} else {
		tr.symlink("/sys/block/"+name, rel("/sys/block/"+name))
	}
	return dir
}

// stack wires a holder over its slaves the way the block layer shows it.
func (tr *tree) stack(holder string, slaves ...string) {
	for _, s := range slaves {
		tr.symlink("/sys/class/block/"+holder+"/slaves/"+s, "../../"+s)
		tr.symlink("/sys/class/block/"+s+"/holders/"+holder, "../../"+holder)
	}
}

func (tr *tree) dm(name, majmin, dmName string, slaves ...string) {
	dir := tr.dev(name, majmin, "virtual/block")
	tr.write(dir+"/dm/name", dmName+"\n")
	tr.write(dir+"/dm/uuid", "\n")
	tr.stack(name, slaves...)
}

func (tr *tree) loop(name, majmin, backing string) {
	dir := tr.dev(name, majmin, "virtual/block")
	tr.write(dir+"/loop/backing_file", backing+"\n")
	tr.write(dir+"/loop/autoclear", "0\n")
}

func (tr *tree) host(q Querier) Host { return Host{Root: tr.root, Query: q} }

// fakeQuerier answers from maps keyed by kernel name.
type fakeQuerier struct {
	tables, status map[string][]Target
	loops          map[string]LoopStatus
}

func newFakeQuerier() *fakeQuerier {
	return &fakeQuerier{tables: map[string][]Target{}, status: map[string][]Target{}, loops: map[string]LoopStatus{}}
}

func (q *fakeQuerier) DMTable(d Dev) ([]Target, error) {
	if ts, ok := q.tables[d.Name]; ok {
		return ts, nil
	}
	return nil, fmt.Errorf("DM_TABLE_STATUS %s: %w", d, unix.ENXIO)
}

func (q *fakeQuerier) DMStatus(d Dev) ([]Target, error) {
	if ts, ok := q.status[d.Name]; ok {
		return ts, nil
	}
	return nil, fmt.Errorf("DM_TABLE_STATUS %s: %w", d, unix.ENXIO)
}

func (q *fakeQuerier) LoopStatus(d Dev) (LoopStatus, error) {
	if st, ok := q.loops[d.Name]; ok {
		return st, nil
	}
	return LoopStatus{}, fmt.Errorf("LOOP_GET_STATUS64 %s: %w", d, unix.ENXIO)
}

func (q *fakeQuerier) snapshot(name, table, status string) {
	q.tables[name] = []Target{{Length: 2097152, Type: "snapshot", Params: table}}
	q.status[name] = []Target{{Length: 2097152, Type: "snapshot", Params: status}}
}

// fakeActuator records what Release asks for and changes the fake tree the
// way the kernel would, so a second Release sees the result.
type fakeActuator struct {
	tr    *tree
	calls []string
	fail  map[string]error // by call string
	after func(call string)
}

func (a *fakeActuator) do(call string, change func() error) error {
	a.calls = append(a.calls, call)
	if err := a.fail[call]; err != nil {
		return err
	}
	err := change()
	if a.after != nil {
		a.after(call)
	}
	return err
}

func (a *fakeActuator) RemoveDM(name string) error {
	return a.do("dmremove "+name, func() error {
		ents, _ := os.ReadDir(filepath.Join(a.tr.root, "/sys/class/block"))
		for _, e := range ents {
			p := filepath.Join(a.tr.root, "/sys/class/block", e.Name(), "dm")
			b, err := os.ReadFile(filepath.Join(p, "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return os.RemoveAll(p)
			}
		}
		return unix.ENXIO
	})
}

func (a *fakeActuator) DetachLoop(d Dev) error {
	return a.do("detach "+d.Name, func() error {
		return os.RemoveAll(filepath.Join(a.tr.root, "/sys/class/block", d.Name, "loop"))
	})
}

func (a *fakeActuator) Unmount(mp string, flags int) error {
	call := "umount " + mp
	if flags&unix.MNT_DETACH != 0 {
		call = "umount -l " + mp
	}
	return a.do(call, func() error {
		p := filepath.Join(a.tr.root, "/proc/self/mountinfo")
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if f := strings.Fields(lines[i]); len(f) > 4 && procfs.Unescape(f[4]) == mp {
				lines = append(lines[:i], lines[i+1:]...)
				return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
			}
		}
		return unix.EINVAL
	})
}

func (a *fakeActuator) Unlink(p string) error {
	return a.do("unlink "+p, func() error { return os.Remove(filepath.Join(a.tr.root, p)) })
}

func (a *fakeActuator) ResetZram(d Dev) error {
	return a.do("zram-reset "+d.Name, func() error {
		a.tr.write("/sys/class/block/"+d.Name+"/disksize", "0\n")
		a.tr.write("/sys/class/block/"+d.Name+"/mm_stat", "0 0 0 0 0 0 0 0 0\n")
		return nil
	})
}

func (a *fakeActuator) Eject(d Dev) error {
	return a.do("eject "+d.Name, func() error {
		a.tr.write("/sys/class/block/"+d.Name+"/size", "0\n")
		return nil
	})
}

const (
	mountRoot = "1 0 9:127 / / rw,relatime shared:1 - ext4 /dev/md127 rw\n" +
		"22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n" +
		"23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw\n" +
		"25 1 0:25 / /run rw,nosuid,nodev shared:12 - tmpfs tmpfs rw,size=402300k,mode=755\n"
	mountCD = "30 25 11:0 / /run/initramfs/live ro,relatime shared:13 - iso9660 /dev/sr0 ro,norock,check=r,map=n,blocksize=2048\n"
	mountSq = "31 25 7:0 / /run/initramfs/squashfs ro,relatime shared:14 - squashfs /dev/loop0 ro,errors=continue\n"

	rootfsImg   = "/run/initramfs/squashfs/LiveOS/rootfs.img"
	squashfsImg = "/run/initramfs/live/LiveOS/squashfs.img"
)

// dracutTree is what a dracut dmsquash-live boot from a CD leaves, with the
// root array built over live-rw.
func dracutTree(t *testing.T) (*tree, *fakeQuerier) {
	tr := newTree(t)
	q := newFakeQuerier()
	tr.loop("loop0", "7:0", squashfsImg)
	tr.loop("loop1", "7:1", rootfsImg)
	tr.loop("loop2", "7:2", "/overlay (deleted)")
	tr.dm("dm-0", "253:0", "live-base", "loop1")
	tr.dm("dm-1", "253:1", "live-rw", "loop1", "loop2")
	tr.dev("md127", "9:127", "virtual/block")
	tr.stack("md127", "dm-1")
	cd := tr.dev("sr0", "11:0", "pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block")
	tr.write(cd+"/device/type", "5\n")
	tr.write("/proc/self/mountinfo", mountRoot+mountCD+mountSq)
	tr.write("/proc/meminfo", "MemTotal:        4008240 kB\nMemFree:          100000 kB\nMemAvailable:    1000000 kB\n")
	q.tables["dm-0"] = []Target{{Length: 2097152, Type: "linear", Params: "7:1 0"}}
	q.snapshot("dm-1", "7:1 7:2 PO 8", "1024/67108864 16")
	return tr, q
}

func dev(name string, major, minor uint32, p string) Dev {
	return Dev{Name: name, Major: major, Minor: minor, Path: p}
}

// FindLiveLeg (the tests' way in) returns the member of md array (e.g. "md127") that is a dm
// snapshot, from /sys/block/<md>/slaves.
func FindLiveLeg(h Host, array string) (Dev, error) {
	array = strings.TrimPrefix(array, "/dev/")
	names, err := h.slaves(Dev{Name: array})
	if err != nil {
		return Dev{}, fmt.Errorf("list members of %s: %w", array, err)
	}
	for _, n := range names {
		d, err := h.resolve(Dev{Name: n})
		if err != nil {
			continue
		}
		if IsLiveLeg(h, d) {
			return d, nil
		}
	}
	return Dev{}, fmt.Errorf("%s has no dm snapshot among its members %v: the live leg is already gone or this is not a live-rw array", array, names)
}

// FindSnapshot finds a dm device by its dm name (e.g. "live-rw"), for when
// md no longer lists it, such as a release rerun after the leg was removed.
func FindSnapshot(h Host, dmName string) (Dev, error) {
	names, err := h.names("/sys/class/block")
	if err != nil {
		return Dev{}, fmt.Errorf("find dm device %s: %w", dmName, err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "dm-") {
			continue
		}
		d := Dev{Name: n}
		if got, err := h.dmName(d); err == nil && got == dmName {
			return h.resolve(d)
		}
	}
	return Dev{}, fmt.Errorf("find dm device %s: none by that name (already removed?)", dmName)
}
