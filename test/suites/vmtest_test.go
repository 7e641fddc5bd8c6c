package suites

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/test/vm"
)

// TestVMTest runs the Go package tests that need the real md, dm and loop
// drivers and online filesystem growth inside the guest (scenario gotest,
// booted from the live medium so md127 over live-rw is the root), and fails
// when one failed, when none ran, or when a test that only the VM can run
// was skipped there. Needs `make vmtest-bins` first.
func TestVMTest(t *testing.T) {
	needVM(t)
	p := prepare(t, 0)
	res := boot(t, &vm.Machine{Dir: caseDir("vmtest"), Initrd: p.Initrd, CDROM: p.ISO,
		Timeout: 900 * time.Second, MemMiB: 3072,
		Append: "lm.live=LIVETEST lmtest.scenario=gotest"})
	f := res.Facts
	j := vm.NewJudge(t)
	if !j.Check("boot", res.Code == 0, fmt.Sprintf("package tests failed in the VM (boot exit %d: %s; console: %s/console.log)", res.Code, res.Why, res.Dir)) {
		for _, k := range f.Keys("") {
			if strings.HasPrefix(k, "gotest_") || k == "scenario_rc" {
				vm.Logf("%s=%s", k, f.Get(k))
			}
		}
	}
	pass := regexp.MustCompile(`pass=([0-9]+)`)
	for _, pkg := range []string{"mdraid", "overlay", "resize", "dmmirror"} {
		line := f.Get("gotest_" + pkg)
		vm.Logf("%s: %s; skipped: %s", pkg, line, f.Get("gotest_"+pkg+"_skipped"))
		j.Check(pkg, f.Get("gotest_"+pkg+"_rc") == "0", pkg+" tests failed: "+f.Get("gotest_"+pkg+"_failed"))
		n := 0
		if m := pass.FindStringSubmatch(line); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		j.Check(pkg+"_ran", n > 0, "no "+pkg+" test ran")
	}
	// These exist to run here; a skip means the proof did not happen.
	for _, name := range []string{"TestKernelMigrateCycle", "TestKernelAbove4TiB", "TestGrowLoop",
		"TestKernelMirrorSwitch", "TestKernelMirrorAbort", "TestKernelMirrorDeadLeg", "TestKernelMirrorSettle", "TestKernelInsertRefusals"} {
		skipped := false
		for _, k := range f.Keys("gotest_") {
			if strings.HasSuffix(k, "_skipped") && regexp.MustCompile(`\b`+name+`\b`).MatchString(f.Get(k)) {
				skipped = true
			}
		}
		j.Check(name, !skipped, name+" was skipped in the VM")
	}
	for _, n := range f.Lines("gotest_note") {
		vm.Logf("%s", n)
	}
	if j.OK() {
		vm.Logf("vmtest OK")
	}
	j.Done()
}
