package finalize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// btrfs renames its device after the chroot's mount through GrubRootNode;
// btrfsRename scans the array's path and then believes only mountinfo.
func TestBtrfsRenameChecksMountinfo(t *testing.T) {
	root := t.TempDir()
	mi := filepath.Join(root, "/proc/self/mountinfo")
	if err := os.MkdirAll(filepath.Dir(mi), 0o755); err != nil {
		t.Fatal(err)
	}
	line := func(src string) string {
		return "25 1 0:31 /@ / rw,relatime shared:1 - btrfs " + src + " rw,space_cache=v2,subvolid=256,subvol=/@\n" +
			"30 25 11:0 / /media ro - iso9660 /dev/sr0 ro\n"
	}
	write := func(src string) {
		if err := os.WriteFile(mi, []byte(line(src)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := BtrfsScanDev
	defer func() { BtrfsScanDev = old }()
	e := &Env{Root: root, FSType: "btrfs", RootBlock: "/dev/md127"}

	// The scan names the device again: mountinfo shows the array.
	write(GrubRootNode)
	var scanned []string
	BtrfsScanDev = func(p string) error { scanned = append(scanned, p); write(p); return nil }
	if err := e.btrfsRename("/dev/md127"); err != nil || strings.Join(scanned, ",") != "/dev/md127" {
		t.Fatalf("rename: %v (scanned %q)", err, scanned)
	}
	// The scan succeeds but the kernel keeps the other name: an error
	// that names both and the command to type.
	write(GrubRootNode)
	BtrfsScanDev = func(string) error { return nil }
	err := e.btrfsRename("/dev/md127")
	if err == nil || !strings.Contains(err.Error(), GrubRootNode) || !strings.Contains(err.Error(), "btrfs device scan /dev/md127") {
		t.Fatalf("kept name: %v", err)
	}
	// The scan fails.
	BtrfsScanDev = func(string) error { return errors.New("no /dev/btrfs-control") }
	if err := e.btrfsRename("/dev/md127"); err == nil || !strings.Contains(err.Error(), "no /dev/btrfs-control") {
		t.Fatalf("failed scan: %v", err)
	}
}

// A cleanup that fails fails the boot loader step, which is then not
// recorded: the rerun does it again rather than saying an earlier run did.
func TestBootloaderCleanupFailureIsNotRecorded(t *testing.T) {
	_, f, e := fakeRootSys(t)
	cleanupErr := errors.New("btrfs still names / by " + GrubRootNode)
	e.GrubRoot = func() (string, func() error, error) {
		return "/run/test-node", func() error { return cleanupErr }, nil
	}
	if _, err := Run(e, nil); err == nil || !strings.Contains(err.Error(), cleanupErr.Error()) {
		t.Fatalf("first run: %v", err)
	}
	cleanupErr = nil
	e.GrubRoot = func() (string, func() error, error) { return "/run/test-node", func() error { return nil }, nil }
	f.calls = nil
	res, err := Run(e, nil)
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	for _, r := range res {
		if r.Name == "bootloader" && strings.Contains(r.Message, EarlierRun) {
			t.Errorf("bootloader taken as done: %q", r.Message)
		}
	}
	if n := len(f.calls); n == 0 || !strings.Contains(f.calls[n-1], "grub-mkconfig") {
		t.Errorf("GRUB did not run again: %q", f.calls)
	}
}

// A system whose kernel-install names mkosi-initrd gets its initrd from
// mkosi-initrd, without livemigrate's drop-in, even with initramfs-tools
// installed next to it.
func TestMkosiInitrdGenerator(t *testing.T) {
	root, calls, e := fakeRoot(t)
	w := func(p, s string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w("/etc/kernel/install.conf", "# local\nlayout=other\ninitrd_generator=mkosi-initrd\n")
	w(MkosiDropIns[0], "[Content]\nExtraTrees=/usr/bin/livemigrate\n")
	// Named, but missing: a clear error, nothing run.
	n := len(*calls)
	if _, err := e.initramfs(); err == nil || !strings.Contains(err.Error(), "mkosi-initrd is missing") {
		t.Fatalf("missing mkosi-initrd: %v", err)
	}
	if len(*calls) != n {
		t.Errorf("ran %q", (*calls)[n:])
	}
	w("/usr/bin/mkosi-initrd", "#!/bin/sh\n")
	msg, err := e.initramfs()
	if err != nil || !strings.Contains(msg, "mkosi-initrd: rebuilt the initrd for 6.1.0-56-amd64") || !strings.Contains(msg, MkosiDropIns[0]) {
		t.Fatalf("initramfs = %q, %v", msg, err)
	}
	if _, err := os.Stat(filepath.Join(root, MkosiDropIns[0])); err == nil {
		t.Error("the drop-in is still there")
	}
	want := "/usr/bin/mkosi-initrd --kernel-version 6.1.0-56-amd64 --kernel-image /boot/vmlinuz-6.1.0-56-amd64 --output-dir /boot --output initrd.img-6.1.0-56-amd64"
	if last := (*calls)[len(*calls)-1]; last != want {
		t.Errorf("ran %q, want %q", last, want)
	}
	for _, c := range (*calls)[n:] {
		if strings.Contains(c, "update-initramfs") || strings.Contains(c, "dracut") {
			t.Errorf("ran %q as well", c)
		}
	}
	// Another generator named: the usual choice (initramfs-tools here).
	w("/etc/kernel/install.conf", "initrd_generator=dracut\n")
	if e.kernelInstallGenerator() != "dracut" {
		t.Errorf("generator = %q", e.kernelInstallGenerator())
	}
}
