package livestack

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/internal/bootopt"
)

// fakeOps records each step and fails the ones named in fail.
type fakeOps struct {
	files map[string]bool
	fail  map[string]bool
	steps []string
	loops int
}

func (f *fakeOps) step(s string) { f.steps = append(f.steps, s) }

func (f *fakeOps) WaitDevice(p string, _ time.Duration) (string, error) {
	f.step("wait " + p)
	if f.fail["wait"] {
		return "", errors.New("timed out")
	}
	return "/dev/sr0", nil
}
func (f *fakeOps) LoadModules(...string) {}
func (f *fakeOps) MountRO(dev, dir, t string) error {
	if dir == MediumDir && t != "iso9660" {
		return errors.New("wrong type")
	}
	if f.fail["mount "+dir] {
		return errors.New("EIO")
	}
	f.step("mount " + dev + " " + dir + " " + t)
	return nil
}
func (f *fakeOps) DetachMount(dir string) error {
	f.step("umount -l " + dir)
	return nil
}
func (f *fakeOps) Exists(p string) bool { return f.files[p] }
func (f *fakeOps) Loop(file string, ro bool, create uint64) (string, error) {
	f.step(fmt.Sprintf("loop %s ro=%v create=%d", file, ro, create))
	dev := fmt.Sprintf("/dev/loop%d", f.loops)
	f.loops++
	return dev, nil
}
func (f *fakeOps) Zram(size uint64) (string, error) {
	f.step(fmt.Sprintf("zram %d", size))
	if f.fail["zram"] {
		return "", errors.New("no zram")
	}
	return "/dev/zram0", nil
}
func (f *fakeOps) Snapshot(name, origin, cow string) (string, error) {
	f.step("snapshot " + name + " " + origin + " " + cow)
	return "/dev/mapper/" + name, nil
}
func (f *fakeOps) Wrap(leg, md string) (string, error) {
	f.step("wrap " + leg + " " + md)
	if f.fail["wrap"] {
		return "", errors.New("md_mod missing")
	}
	return md, nil
}
func (f *fakeOps) Repoint(dev string) error {
	f.step("repoint " + dev)
	return nil
}

const gib = 1 << 30

func TestBuild(t *testing.T) {
	iso := map[string]bool{
		MediumDir + "/LiveOS/squashfs.img": true,
		SquashfsDir + "/LiveOS/rootfs.img": true,
	}
	for _, c := range []struct {
		name     string
		cmdline  string
		files    map[string]bool
		fail     string
		steps    []string
		root     string
		fallback string // substring; "" for none
		err      string // substring; "" for none
	}{
		{
			name: "iso with squashfs", cmdline: "root=live:CDLABEL=LIVETEST", files: iso,
			steps: []string{
				"wait /dev/disk/by-label/LIVETEST",
				"mount /dev/sr0 /run/initramfs/live iso9660",
				"loop /run/initramfs/live/LiveOS/squashfs.img ro=true create=0",
				"mount /dev/loop0 /run/initramfs/squashfs squashfs",
				"loop /run/initramfs/squashfs/LiveOS/rootfs.img ro=true create=0",
				"umount -l /run/initramfs/squashfs",
				"loop /livemigrate-cow ro=false create=1073741824",
				"snapshot live-rw /dev/loop1 /dev/loop2",
				"wrap /dev/mapper/live-rw /dev/md127",
			},
			root: "/dev/md127",
		},
		{
			name: "rootfs.img on the medium, zram", cmdline: "root=live:/dev/sr0 rd.livemigrate.cow=zram",
			files: map[string]bool{MediumDir + "/LiveOS/rootfs.img": true},
			steps: []string{
				"wait /dev/sr0",
				"mount /dev/sr0 /run/initramfs/live iso9660",
				"loop /run/initramfs/live/LiveOS/rootfs.img ro=true create=0",
				"zram 2147483648",
				"snapshot live-rw /dev/loop0 /dev/zram0",
				"wrap /dev/mapper/live-rw /dev/md127",
			},
			root: "/dev/md127",
		},
		{
			name: "no zram: a RAM file", cmdline: "root=live:/dev/sr0 rd.livemigrate.cow=zram rd.livemigrate.cowsize=512M",
			files: iso, fail: "zram", root: "/dev/md127",
		},
		{
			name: "md fails: live-rw, sysroot.mount repointed", cmdline: "root=live:CDLABEL=LIVETEST", files: iso, fail: "wrap",
			root: LiveRW, fallback: "could not build /dev/md127",
		},
		{
			name: "rd.livemigrate=0: no wrap, no repoint (the generator chose live-rw)", cmdline: "root=live:CDLABEL=X rd.livemigrate=0",
			files: iso, root: LiveRW, fallback: "rd.livemigrate=0",
		},
		{
			name: "bad option: no wrap", cmdline: "root=live:CDLABEL=X rd.livemigrate.md=sda",
			files: iso, root: LiveRW, fallback: "invalid boot options",
		},
		{name: "no medium", cmdline: "root=live:CDLABEL=X", files: iso, fail: "wait", err: "live medium CDLABEL=X (/dev/disk/by-label/X) not found"},
		{name: "squashfs unreadable", cmdline: "root=live:CDLABEL=X", files: iso, fail: "mount " + SquashfsDir, err: "mount /run/initramfs/live/LiveOS/squashfs.img"},
		{name: "file layout medium", cmdline: "root=live:CDLABEL=X", files: map[string]bool{MediumDir + "/LiveOS/squashfs.img": true}, err: "no block image to mirror"},
		{name: "no root=live:", cmdline: "root=/dev/vda1", err: "no root=live:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeOps{files: c.files, fail: map[string]bool{c.fail: c.fail != ""}}
			r, err := Build(f, Config{Options: bootopt.Parse(c.cmdline), MemTotal: 2 * gib}, &strings.Builder{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.steps != nil && strings.Join(f.steps, "\n") != strings.Join(c.steps, "\n") {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(f.steps, "\n"), strings.Join(c.steps, "\n"))
			}
			if r.Root != c.root {
				t.Errorf("root %q, want %q", r.Root, c.root)
			}
			if (c.fallback == "") != (r.Fallback == "") || !strings.Contains(r.Fallback, c.fallback) {
				t.Errorf("fallback %q, want %q", r.Fallback, c.fallback)
			}
			repointed := strings.Contains(strings.Join(f.steps, "\n"), "repoint "+LiveRW)
			if repointed != (c.fail == "wrap") {
				t.Errorf("repointed %v; steps %q", repointed, f.steps)
			}
			if !strings.Contains(r.Report(), r.Root) {
				t.Errorf("report %q does not name the root", r.Report())
			}
		})
	}
}
