package finalize

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A live-boot root: removing live-boot fires initramfs-tools' trigger,
// which rebuilds the initramfs; the initramfs action then does not build
// it a second time, unless what the trigger built still has live-boot's
// scripts.
func TestLivePackagesAndOneInitramfs(t *testing.T) {
	for _, c := range []struct {
		name    string
		listing string
		again   bool
	}{
		{"clean", "scripts/local\nscripts/init-top/udev\n", false},
		{"still live", "scripts/local\nscripts/live\n", true},
	} {
		root, f, e := fakeRootSys(t)
		os.Remove(filepath.Join(root, "/etc/initramfs-tools/hooks/livemigrate"))
		os.Remove(filepath.Join(root, "/etc/initramfs-tools/scripts/livemigrate"))
		for _, b := range []string{"/usr/bin/dpkg-query", "/usr/bin/dpkg", "/usr/bin/lsinitramfs"} {
			os.WriteFile(filepath.Join(root, b), []byte("#!/bin/sh\n"), 0o755)
		}
		img := filepath.Join(root, "/boot/initrd.img-6.1.0-56-amd64")
		old := time.Now().Add(-time.Hour)
		os.Chtimes(img, old, old)
		f.out = map[string]string{"dpkg-query": "live-boot ii \nlive-boot-initramfs-tools ii \nlive-config rc \ncasper un \n", "lsinitramfs": c.listing}
		f.then = map[string]func(){"dpkg": func() { os.WriteFile(img, []byte("rebuilt"), 0o644) }}
		res, err := Run(e, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		calls := strings.Join(f.calls, "\n")
		if !strings.Contains(calls, "dpkg --purge live-boot live-boot-initramfs-tools live-config\n") {
			t.Errorf("%s: purge calls:\n%s", c.name, calls)
		}
		ran := strings.Contains(calls, "update-initramfs -u -k 6.1.0-56-amd64")
		if ran != c.again {
			t.Errorf("%s: update-initramfs ran %v, want %v:\n%s", c.name, ran, c.again, calls)
		}
		for _, r := range res {
			if r.Name == "initramfs" && !c.again && !strings.Contains(r.Message, "by dpkg's trigger when the live packages were removed") {
				t.Errorf("%s: initramfs says %q", c.name, r.Message)
			}
		}
	}
}
