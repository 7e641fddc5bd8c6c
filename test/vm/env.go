// Package vm boots the QEMU test guests of livemigrate and judges what they
// report. It is the host side of the harness (see test/README.md): the
// images come from the shell builders in test/qemu, cached by a hash of
// their inputs (images.go); a Machine declares the guest's disks, medium,
// kernel arguments and firmware, and Boot runs it with the console and the
// facts port captured to a per-case directory, retrying an emulator hang or
// an early kernel panic once and visibly (boot.go); a running guest can be
// driven over QMP (qmp.go); a Judge judges the facts (judge.go).
//
// Nothing here boots a VM by itself: the suites in test/suites skip
// unless LM_VM=1, so `go test ./...` stays a unit test run.
package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Logf prints a harness log line, "[HH:MM:SS] message", on stderr, as the
// shell harness's log() did.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// RepoRoot is the livemigrate checkout (the directory holding go.mod).
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			panic("vm: no go.mod above " + dir)
		}
	}
}

// QemuDir is test/qemu, where the image builders and guest files live.
func QemuDir() string { return filepath.Join(RepoRoot(), "test", "qemu") }

// Cache is $LM_CACHE (default /var/cache/livemigrate): downloads, the
// kernel and built images, outside the git tree.
func Cache() string { return envOr("LM_CACHE", "/var/cache/livemigrate") }

// Out is $LM_OUT (default test/qemu/out): the per-case directories and
// vm-retries.log.
func Out() string { return envOr("LM_OUT", filepath.Join(QemuDir(), "out")) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// KernelVersion is the kernel fetch.sh extracted ($LM_CACHE/kernel/current).
func KernelVersion() (string, error) {
	b, err := os.ReadFile(filepath.Join(Cache(), "kernel", "current"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("no kernel in %s; run test/qemu/fetch.sh first", Cache())
	}
	return strings.TrimSpace(string(b)), nil
}

// BzImage is the kernel's bzImage (what OVMF loads: an EFI stub).
func BzImage() (string, error) {
	kver, err := KernelVersion()
	if err != nil {
		return "", err
	}
	return filepath.Join(Cache(), "kernel", kver, "root", "boot", "vmlinuz-"+kver), nil
}

// KernelImage is the kernel to boot directly: the PVH vmlinux fetch.sh
// extracted when there is one (faster under TCG), else the bzImage;
// LM_KERNEL_IMAGE=bzimage forces the bzImage.
func KernelImage() (string, error) {
	kver, err := KernelVersion()
	if err != nil {
		return "", err
	}
	vmlinux := filepath.Join(Cache(), "kernel", kver, "vmlinux")
	if st, err := os.Stat(vmlinux); err == nil && st.Size() > 0 && os.Getenv("LM_KERNEL_IMAGE") != "bzimage" {
		return vmlinux, nil
	}
	return BzImage()
}

var timeNow = time.Now
