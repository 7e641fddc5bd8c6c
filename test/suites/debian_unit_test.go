package suites

import (
	"slices"
	"strings"
	"testing"
)

// The pieces of TestDebian that need no VM.

func TestGrubConfig(t *testing.T) {
	cfg := `serial --unit=0 --speed=115200
set timeout=3
set default=0
menuentry "Debian live (dracut)" --id dracut {
	linux /boot/vmlinuz root=live:CDLABEL=LIVETEST rd.live.image console=tty0 console=ttyS0,115200 
	initrd /boot/initrd-dracut.img
}
menuentry "Debian live (initramfs-tools)" --id initramfs-tools {
	linux /boot/vmlinuz boot=livemigrate root=live:CDLABEL=LIVETEST console=tty0 console=ttyS0,115200 
	initrd /boot/initrd-initramfs-tools.img
}
`
	want := `serial --unit=0 --speed=115200
set timeout=1
set default=0
menuentry "Debian live (initramfs-tools)" --id initramfs-tools {
	linux /boot/vmlinuz boot=livemigrate root=live:CDLABEL=LIVETEST console=tty0 console=ttyS0,115200  lmtest.scenario=boot
	initrd /boot/initrd-initramfs-tools.img
}
`
	if got := grubConfig(cfg, "initramfs-tools", "lmtest.scenario=boot"); got != want {
		t.Errorf("grubConfig:\n%s\nwant:\n%s", got, want)
	}
}

func TestConsoleEnding(t *testing.T) {
	for con, want := range map[string]string{
		"[  9.1] reboot: Power down\r\n":        "power-down",
		"[  9.1] reboot: Restarting system\r\n": "restart",
		"login:":                                "none",
	} {
		if got := consoleEnding([]byte(con)); got != want {
			t.Errorf("consoleEnding(%q) = %s, want %s", con, got, want)
		}
	}
}

func TestUncleanLines(t *testing.T) {
	con := "ok\r\n\x1b[0;1;31mFailed unmounting\x1b[0m /run/x.\r\nA stop job is running for y\r\nFailed unmounting /run/x.\r\n"
	got := uncleanLines([]byte(con))
	if len(got) != 2 || got[0] != "A stop job is running for y" || got[1] != "Failed unmounting /run/x." {
		t.Errorf("uncleanLines = %q", got)
	}
}

// make test proves each capability once on Debian 13: every flavour
// boots, every root filesystem installs, both firmwares boot an installed
// system, both layouts install; make test-full adds Debian 12's every
// flavour and install; no row is in two lists.
func TestDebianRowsCoverEachCapability(t *testing.T) {
	seen := map[string]string{}
	for list, rows := range map[string][]debianRow{"TestDebian": debianRows, "TestDebianFull": debianFullRows, "TestDebianMore": debianMoreRows} {
		for _, r := range rows {
			if other, dup := seen[r.id()]; dup {
				t.Errorf("%s is in %s and %s", r.id(), other, list)
			}
			seen[r.id()] = list
			if _, ok := debianFlavours[r.suite]; !ok {
				t.Errorf("%s: unknown suite %q", r.id(), r.suite)
			}
		}
	}
	proves := func(rows ...[]debianRow) map[string]bool {
		has := map[string]bool{}
		for _, r := range slices.Concat(rows...) {
			has["flavour "+r.suite+" "+r.flavour] = true
			has["fs "+or(r.rootfs, "ext4")] = true
			if r.scenario == "install" {
				has["install "+r.suite] = true
				has["firmware "+r.firmware] = true
				has["layout "+r.layout] = true
			}
			if r.scenario == "migrate" || r.scenario == "install" {
				has["migrate "+r.suite+" "+r.flavour] = true
			}
		}
		return has
	}
	want := []string{"fs ext4", "fs xfs", "fs btrfs", "install trixie", "firmware bios", "firmware uefi", "layout disk", "layout partition",
		"migrate trixie dracut", "migrate trixie initramfs-tools", "migrate trixie dracut-nohook"}
	for _, f := range strings.Fields(debianFlavours["trixie"]) {
		want = append(want, "flavour trixie "+f)
	}
	has := proves(debianRows)
	for _, w := range want {
		if !has[w] {
			t.Errorf("make test's rows (debianRows) do not prove %q", w)
		}
	}
	want = []string{"install bookworm", "migrate bookworm dracut-nohook"}
	for _, f := range strings.Fields(debianFlavours["bookworm"]) {
		want = append(want, "flavour bookworm "+f)
	}
	has = proves(debianRows, debianFullRows)
	for _, w := range want {
		if !has[w] {
			t.Errorf("make test-full's rows (debianRows, debianFullRows) do not prove %q", w)
		}
	}
}

// TestManifestExpected: the differences the copy tests explain (from a
// real report of the tmpfs row) pass, and the kinds a bad copy makes do
// not: a binary that differs, one that is missing, an owner or a
// capability lost, a live package's file outside its directories.
func TestManifestExpected(t *testing.T) {
	for _, l := range []string{
		"differ boot/initrd.img-6.12.117+deb13-amd64 size 43052994->12883558,data,mtime 1->2",
		"differ etc/fstab size 37->194,data,mtime 1->2",
		"differ etc/ld.so.cache mtime 1->2",
		"missing etc/live",
		"missing etc/live/config.conf.d",
		"differ etc/machine-id mode 0644->0444,size 0->33,data,mtime 1->2",
		"differ etc/motd size 286->28,data,mtime 1->2",
		"missing etc/systemd/system/basic.target.wants/live-config.service",
		"missing usr/share/doc/dpkg/AUTHORS",
		"missing usr/share/doc/systemd",
		"missing var/lib/dpkg/info/live-boot.list",
		"differ var/lib/dpkg/status size 1->2,data,mtime 1->2",
		"missing var/lib/systemd/deb-systemd-helper-enabled/live-config.service.dsh-also",
		"differ var/log/journal xattrs -->703788eef1926665",
		"differ etc/hostname size 22->7,data,mtime 1->2",
		"differ etc/network/interfaces size 134->32,data,mtime 1->2",
		"differ etc/pam.d/login mtime 1->2",
	} {
		if !manifestExpected(l) {
			t.Errorf("not explained: %s", l)
		}
	}
	for _, l := range []string{
		"differ usr/bin/dpkg data",
		"missing usr/lib/x86_64-linux-gnu/libc.so.6",
		"differ usr/bin/ping owner 0:0->1000:1000",
		"differ usr/lib/lmtest/capable xattrs 1f2e->-",
		"differ etc/motd.d mode 0755->0700,owner 0:0->0:5 extra",
		"missing etc/livex",
		"differ etc/machine-idx data",
		"missing etc/fstab",
		"missing etc/hostname",
		"differ etc/pam.d/su data",
		"missing usr/share/doc/dpkgx",
		"",
	} {
		if manifestExpected(l) {
			t.Errorf("explained, but a copy that made it is wrong: %q", l)
		}
	}
}
