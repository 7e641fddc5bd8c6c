package suites

import "testing"

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
