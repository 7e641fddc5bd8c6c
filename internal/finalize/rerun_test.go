package finalize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The documented fix after exit 23: run it again. The rerun does only what
// is left: machine-id, SSH host keys, the password the user set since and
// the ESP stay; the failed action runs; every other action says an
// earlier run did it.
func TestRerunAfterFailureIsIdempotent(t *testing.T) {
	root, f, e := fakeRootSys(t)
	f.fail["grub-install"] = errors.New("grub-install: error: cannot find a GRUB drive")
	res, err := Run(e, nil)
	if err == nil || !strings.Contains(err.Error(), "bootloader") {
		t.Fatalf("first run: %v", err)
	}
	mid, keys := read(t, root, "/etc/machine-id"), read(t, root, "/etc/ssh/ssh_host_ed25519_key.pub")
	if f.formats != 1 || len(res) != 10 {
		t.Fatalf("formats %d, results %d", f.formats, len(res))
	}
	// As finalize advised: a password for the live user, set by hand.
	f.shadow("live", func(string) string { return "$y$by-hand$" })
	shadow := read(t, root, "/etc/shadow")
	delete(f.fail, "grub-install")
	f.calls = nil

	res, err = Run(e, nil)
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if read(t, root, "/etc/machine-id") != mid || read(t, root, "/etc/ssh/ssh_host_ed25519_key.pub") != keys || read(t, root, "/etc/shadow") != shadow {
		t.Errorf("identities or shadow changed:\n%s\n%s", read(t, root, "/etc/machine-id"), read(t, root, "/etc/shadow"))
	}
	if f.formats != 1 {
		t.Errorf("the ESP was formatted again (%d)", f.formats)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "/usr/bin/unshare ") {
			continue // the boot loader: the action that failed
		}
		for _, bad := range []string{"mkfs", "mount ", "passwd", "chpasswd", "ssh-keygen", "update-initramfs"} {
			if strings.Contains(c, bad) {
				t.Errorf("rerun ran %q", c)
			}
		}
	}
	if n := len(f.calls); n == 0 || !strings.Contains(f.calls[n-1], "grub-mkconfig") {
		t.Errorf("the failed action did not run again: %q", f.calls)
	}
	for _, r := range res {
		switch r.Name {
		case "fs-uuid":
			if !strings.HasPrefix(r.Message, "kept 1111-root: ") {
				t.Errorf("fs-uuid without NewUUID: %q", r.Message)
			}
		case "bootloader", "hostname", "live-packages":
			if strings.Contains(r.Message, EarlierRun) {
				t.Errorf("%s: %q", r.Name, r.Message)
			}
		default:
			if !strings.Contains(r.Message, EarlierRun) {
				t.Errorf("%s does not say an earlier run did it: %q", r.Name, r.Message)
			}
		}
	}

	// The same record does not carry over to another boot (or install).
	os.WriteFile(filepath.Join(root, "/proc/sys/kernel/random/boot_id"), []byte("another-boot\n"), 0o444)
	os.WriteFile(filepath.Join(root, "/proc/self/mounts"), nil, 0o644)
	f.espUUID = ""
	res, _ = Run(e, nil)
	if read(t, root, "/etc/machine-id") == mid || !strings.Contains(res[0].Message, "was ignored: it is of another installation or boot") {
		t.Errorf("a record of another boot was used: %q", res[0].Message)
	}
}

// A partition the plan calls the ESP but that holds a filesystem this
// installation did not make is never formatted (issue 10, item 1's case).
func TestESPWithForeignFilesystemRefused(t *testing.T) {
	_, f, e := fakeRootSys(t)
	f.espUUID = "DATA-0001"
	e.st = e.loadState()
	_, err := e.esp()
	if err == nil || !strings.Contains(err.Error(), "which this installation did not create: not formatting it") {
		t.Errorf("esp = %v", err)
	}
	if f.formats != 0 {
		t.Error("formatted")
	}
	// Cut short after mkfs, before the record: its own FAT is taken up.
	_, f, e = fakeRootSys(t)
	e.st = e.loadState()
	f.fail["mount"] = errors.New("mount: killed")
	if _, err := e.esp(); err == nil {
		t.Fatal("mount failure not reported")
	}
	delete(f.fail, "mount")
	if msg, err := e.esp(); err != nil || f.formats != 2 || !strings.Contains(msg, "mounted on /boot/efi") {
		// Not mounted: mkfs may have been cut short too, so it is formatted again (it is ours).
		t.Errorf("esp = %q %v (formats %d)", msg, err, f.formats)
	}
	if msg, err := e.esp(); err != nil || f.formats != 2 || !strings.Contains(msg, EarlierRun) {
		t.Errorf("esp again = %q %v (formats %d)", msg, err, f.formats)
	}
}
