package livestack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnitNameFromPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/dev/disk/by-label/LIVETEST", `dev-disk-by\x2dlabel-LIVETEST.device`},
		{"/dev/sr0", "dev-sr0.device"},
		{"/dev/disk/by-label/My\\x20Disk", `dev-disk-by\x2dlabel-My\x5cx20Disk.device`},
		{"/dev/mapper/live-rw", `dev-mapper-live\x2drw.device`},
		{"/dev//md127/", "dev-md127.device"},
		{"/", "-.device"},
		{"/.hidden/x", `\x2ehidden-x.device`},
	} {
		if got := UnitNameFromPath(c.in, ".device"); got != c.want {
			t.Errorf("UnitNameFromPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMediumPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"CDLABEL=LIVETEST", "/dev/disk/by-label/LIVETEST"},
		{"LABEL=Debian 13 live", `/dev/disk/by-label/Debian\x2013\x20live`},
		{"LABEL=a/b", `/dev/disk/by-label/a\x2fb`},
		{"LABEL=Zoé", "/dev/disk/by-label/Zoé"},
		{"UUID=2026-12-02-17-44-00-00", "/dev/disk/by-uuid/2026-12-02-17-44-00-00"},
		{"/dev/sr0", "/dev/sr0"},
		{"/dev/disk/by-id/../../sr1", "/dev/sr1"},
	} {
		got, err := MediumPath(c.in)
		if err != nil || got != c.want {
			t.Errorf("MediumPath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"LIVETEST", "CDLABEL=", "PARTUUID=x", "sr0"} {
		if got, err := MediumPath(bad); err == nil {
			t.Errorf("MediumPath(%q) = %q, want an error", bad, got)
		}
	}
}

// files maps a plan's files by name, a symlink as "-> target".
func files(p Plan) map[string]string {
	m := map[string]string{}
	for _, f := range p.Files {
		if f.Link != "" {
			m[f.Name] = "-> " + f.Link
		} else {
			m[f.Name] = f.Content
		}
	}
	return m
}

func TestGenerate(t *testing.T) {
	p, err := Generate("BOOT_IMAGE=/boot/vmlinuz console=ttyS0,115200 root=live:CDLABEL=LIVETEST rd.live.image\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != "/dev/md127" || len(p.Notes) != 0 {
		t.Errorf("root %q notes %q, want /dev/md127 and no notes", p.Root, p.Notes)
	}
	m := files(p)
	want := map[string]string{
		"sysroot.mount": `# Written by livemigrate's generator for root=live:CDLABEL=LIVETEST
[Unit]
Description=Live root (livemigrate)
Documentation=man:livemigrate(8)
Before=initrd-root-fs.target
Requires=livemigrate-live.service
After=livemigrate-live.service

[Mount]
What=/dev/md127
Where=/sysroot
Options=rw
`,
		"initrd-root-fs.target.requires/sysroot.mount": "-> ../sysroot.mount",
		"livemigrate-live.service.d/50-medium.conf": `# Written by livemigrate's generator for root=live:CDLABEL=LIVETEST
[Unit]
Wants=dev-disk-by\x2dlabel-LIVETEST.device
After=dev-disk-by\x2dlabel-LIVETEST.device
`,
		"initrd-root-device.target.wants/livemigrate-live.service": "-> /usr/lib/systemd/system/livemigrate-live.service",
		"dev-md127.device.d/50-livemigrate.conf": `# Written by livemigrate's generator for root=live:CDLABEL=LIVETEST
[Unit]
JobRunningTimeoutSec=infinity
`,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s:\n%s\nwant:\n%s", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%d files, want %d: %v", len(m), len(want), m)
	}
}

func TestGenerateVariants(t *testing.T) {
	for _, c := range []struct {
		name, cmdline string
		root          string
		mountHas      []string
		notes         int
	}{
		{"other md", "root=live:LABEL=X rd.livemigrate.md=md5", "/dev/md5", []string{"What=/dev/md5\n"}, 0},
		{"md off", "root=live:LABEL=X rd.livemigrate=0", LiveRW, []string{"What=/dev/mapper/live-rw\n"}, 1},
		{"bad option: no md, said", "root=live:LABEL=X rd.livemigrate.cow=disk", LiveRW, []string{"What=/dev/mapper/live-rw\n"}, 2},
		{"rootflags and type", "root=live:/dev/sr0 rootfstype=ext4 rootflags=noatime,discard", "/dev/md127",
			[]string{"Type=ext4\n", "Options=rw,noatime,discard\n"}, 0},
		{"last root wins", "root=/dev/vda1 root=live:UUID=abc", "/dev/md127", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Generate(c.cmdline)
			if err != nil {
				t.Fatal(err)
			}
			if p.Root != c.root || len(p.Notes) != c.notes {
				t.Errorf("root %q notes %q; want %q and %d notes", p.Root, p.Notes, c.root, c.notes)
			}
			if _, ok := files(p)[UnitNameFromPath(c.root, ".device")+".d/50-livemigrate.conf"]; !ok {
				t.Errorf("no timeout drop-in for %s's device unit", c.root)
			}
			mount := files(p)["sysroot.mount"]
			for _, s := range c.mountHas {
				if !strings.Contains(mount, s) {
					t.Errorf("sysroot.mount lacks %q:\n%s", s, mount)
				}
			}
		})
	}
}

func TestGenerateNotLive(t *testing.T) {
	for _, cl := range []string{"", "root=/dev/vda1 rw", "root=UUID=1234 rd.livemigrate.md=md9", "root=live:/dev/sr0 root=/dev/vda1"} {
		p, err := Generate(cl)
		if err != nil || len(p.Files) != 0 {
			t.Errorf("Generate(%q) = %d files, %v; want nothing", cl, len(p.Files), err)
		}
	}
}

func TestGenerateBadSpec(t *testing.T) {
	p, err := Generate("root=live:sr0")
	if err == nil || len(p.Files) != 0 || len(p.Notes) != 1 {
		t.Fatalf("got %d files, notes %q, err %v; want an error said in a note", len(p.Files), p.Notes, err)
	}
}

func TestPlanWrite(t *testing.T) {
	p, err := Generate("root=live:CDLABEL=LIVETEST")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "initrd-root-fs.target.requires/sysroot.mount")); err != nil || l != "../sysroot.mount" {
		t.Errorf("requires link %q, %v", l, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "initrd-root-fs.target.requires/sysroot.mount")); err != nil || !strings.Contains(string(b), "What=/dev/md127") {
		t.Errorf("sysroot.mount through the link: %q, %v", b, err)
	}
	// A second generator owning the same unit is an error, not an overwrite.
	if err := p.Write(dir); err == nil {
		t.Error("second Write into the same directory succeeded")
	}
}
