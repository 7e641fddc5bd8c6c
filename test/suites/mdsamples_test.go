package suites

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/test/vm"
)

// TestMDSamples is no proof: it regenerates test/qemu/lmtest/testdata, the
// real `mdadm --detail` and `livemigrate status --json` output that
// lmtest's unit tests parse, from the mdsamples scenario in a VM. Run by
// hand (LM_MDSAMPLES=1 as well as LM_VM=1), then update the expectations
// in lmtest_test.go (the "recovering" sample's rebuild percentage depends
// on timing).
func TestMDSamples(t *testing.T) {
	needVM(t)
	if os.Getenv("LM_MDSAMPLES") != "1" {
		t.Skip("rewrites test/qemu/lmtest/testdata: set LM_MDSAMPLES=1")
	}
	p := prepare(t, 0)
	res := boot(t, &vm.Machine{Dir: caseDir("mdsamples"), Initrd: p.Initrd, CDROM: p.ISO,
		Disks:  []vm.Disk{{Path: filepath.Join(vm.Out(), "md.img"), Size: 128 << 20}},
		Append: "lm.live=" + p.Env["LIVE_LABEL"] + " lmtest.scenario=mdsamples",
		Expect: []string{"scenario_rc=0"}})
	if res.Code != 0 {
		t.Fatalf("boot exit %d: %s", res.Code, res.Why)
	}
	td := filepath.Join(vm.QemuDir(), "lmtest", "testdata")
	for _, s := range []string{"1.degraded", "2.recovering", "3.insync", "4.faulty", "5.removed", "6.grown", "7.resized"} {
		_, name, _ := strings.Cut(s, ".")
		detail := res.Facts.Lines("sample" + s + ".mdadm")
		status := res.Facts.Get("sample" + s + ".status")
		if len(detail) == 0 || status == "" {
			t.Fatalf("sample %s: no mdadm or status facts", s)
		}
		must(t, os.WriteFile(filepath.Join(td, "mdadm-detail-"+name+".txt"), []byte(strings.Join(detail, "\n")+"\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(td, "status-"+name+".json"), []byte(status+"\n"), 0o644))
		fmt.Printf("mdsamples: %s written\n", name)
	}
}
