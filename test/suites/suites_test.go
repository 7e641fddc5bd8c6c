// Package suites holds the VM proofs of livemigrate as table-driven Go
// tests, one row per case (see test/README.md). Each test skips unless
// LM_VM=1, so `go test ./...` (make unit) never boots a VM; the Makefile's
// qemu-* targets set it.
package suites

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/test/vm"
)

// needVM skips t unless LM_VM=1.
func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv("LM_VM") != "1" {
		t.Skip("boots a VM: set LM_VM=1 (make qemu-*), as root, one VM at a time")
	}
}

// prepared is what prepare did, with its timings (smoke prints them).
type prepared struct {
	*vm.Images
	FetchSecs, BuildSecs float64
}

// prepare fetches the kernel and builds (or reuses) the live images with
// payloadMiB of data in the live root.
func prepare(t *testing.T, payloadMiB int) prepared {
	t.Helper()
	return prepareIn(t, payloadMiB, "")
}

// prepareIn is prepare with rootfs.img in container (squashfs or erofs).
func prepareIn(t *testing.T, payloadMiB int, container string) prepared {
	t.Helper()
	t0 := time.Now()
	if err := vm.Fetch(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	im, err := vm.LiveImagesIn(payloadMiB, container)
	if err != nil {
		t.Fatal(err)
	}
	return prepared{im, t1.Sub(t0).Seconds(), time.Since(t1).Seconds()}
}

// boot runs m, failing t when the boot could not start at all.
func boot(t *testing.T, m *vm.Machine) *vm.Result {
	t.Helper()
	res, err := vm.Boot(m)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// caseDir is Out()/name, the case's directory (console, facts, timing).
func caseDir(name string) string { return filepath.Join(vm.Out(), name) }

// secs formats a host-side duration as the shell harness did ("7.9"), or
// "none" when it never came.
func secs(s float64) string {
	if s < 0 {
		return "none"
	}
	return fmt.Sprintf("%.1f", s)
}

var execCommand = exec.Command

// exitCode is a finished command's exit status (0 for nil).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
