package suites

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/test/vm"
)

// TestSmoke boots the live medium once per stack with the "smoke" scenario
// and checks that the guest came up on the md array over live-rw over the
// loops, with the COW on "/overlay (deleted)", and that the facts port
// carried a long line intact. Stack tools builds live-rw and the array with
// dmsetup/mdadm in the initramfs instead of `livemigrate boot
// snapshot/wrap` (the reference).
func TestSmoke(t *testing.T) {
	needVM(t)
	pat := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
	for _, stack := range []string{"livemigrate", "tools"} {
		t.Run(stack, func(t *testing.T) {
			p := prepare(t, 0)
			kver, _ := vm.KernelVersion()
			res := boot(t, &vm.Machine{Dir: caseDir("smoke-" + stack), Initrd: p.Initrd, CDROM: p.ISO,
				Append: "lm.live=LIVETEST lm.stack=" + stack + " lmtest.scenario=smoke",
				Expect: []string{"scenario_rc=0", "scenario_start=smoke"}})
			j := vm.NewJudge(t)
			j.Check("boot", res.Code == 0, fmt.Sprintf("boot exit %d: %s", res.Code, res.Why))
			f := res.Facts
			j.Facts(f, "kernel="+kver,
				"root_mount=/dev/md127 ext4 rw*",
				"md_level=raid1", "md_raid_disks=2", "md_degraded=1", "md_metadata=none",
				// Like dracut: persistent, overflow (PO), 4 KiB chunks.
				"dm_table=0 * snapshot 7:* 7:* PO 8",
				"echo="+strings.Repeat(pat, 4),
				"root_write=ok")
			if stack == "livemigrate" {
				j.Fact(f, "mdcompare", "mdcompare=ok*")
			}
			raw, _ := os.ReadFile(filepath.Join(res.Dir, "facts.txt"))
			deleted := strings.Contains(string(raw), "=/overlay (deleted)")
			j.Check("overlay_deleted", deleted, "no loop backed by '/overlay (deleted)'")
			fmt.Printf("smoke %s: kernel %s, fetch %.1fs, build %.1fs, boot-to-scenario %ss (guest uptime %ss), VM total %.1fs\n",
				stack, kver, p.FetchSecs, p.BuildSecs, secs(res.BootToScenario), f.Get("scenario_uptime"), res.Total)
			if j.OK() {
				vm.Logf("smoke %s: OK", stack)
			}
			j.Done()
		})
	}
}
