package suites

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/test/vm"
)

// TestTUI is the wizard's proof: the live medium with an empty target disk;
// scenario tui runs `livemigrate` (no arguments) in tmux, drives it with
// send-keys onto /dev/vda and reads its screens with capture-pane until the
// Done screen. Then it checks, as TestE2E does, that the migration happened:
// the array holds the target alone, the live stack is gone, the target has
// the live root's filesystem. The captured screens stay in Out()/tui/
// (final.txt, progress.txt, targets.txt, review.txt). Row md is the hook's
// stack; row nohook boots with lm.stack=nohook (/ on live-rw itself), where
// the wizard drives the dm-mirror method.
func TestTUI(t *testing.T) {
	needVM(t)
	for _, stack := range []string{"md", "nohook"} {
		t.Run(stack, func(t *testing.T) { tui(t, stack) })
	}
}

func tui(t *testing.T, stack string) {
	p := prepare(t, 64)
	target := filepath.Join(vm.Out(), "tui-target.img")
	shots := filepath.Join(vm.Out(), "tui")
	dir, args := "tui-live", ""
	if stack != "md" {
		shots += "-" + stack
		dir += "-" + stack
		args = " lm.stack=" + stack
	}
	must(t, os.MkdirAll(shots, 0o755))
	res := boot(t, &vm.Machine{Dir: caseDir(dir), Initrd: p.Initrd, CDROM: p.ISO,
		Disks:  []vm.Disk{{Path: target, Size: 1 << 30}},
		Append: "lm.live=LIVETEST" + args + " lmtest.scenario=tui lmtest.target=/dev/vda",
		Expect: []string{"scenario_rc=0", "tui_rc=0"}})
	F := res.Facts
	screen := map[string]string{}
	for _, k := range []string{"final", "progress", "targets", "review", "stuck"} {
		path := filepath.Join(shots, k+".txt")
		os.Remove(path)
		if lines := F.Lines("tui_" + k); len(lines) > 0 {
			screen[k] = strings.Join(lines, "\n") + "\n"
			must(t, os.WriteFile(path, []byte(screen[k]), 0o644))
		}
	}
	j := vm.NewJudge(t)
	defer j.Done()
	if !j.Check("wizard_run", res.Code == 0, fmt.Sprintf("wizard run failed (boot exit %d: %s); timeout: '%s'", res.Code, res.Why, F.Get("tui_timeout"))) {
		if s, ok := screen["stuck"]; ok {
			vm.Logf("screen when it got stuck:")
			fmt.Fprint(os.Stderr, s)
		}
		if s, ok := screen["final"]; ok {
			vm.Logf("last screen:")
			fmt.Fprint(os.Stderr, s)
		}
		return
	}
	j.Check("done_screen", strings.Contains(screen["final"], "Done: / now lives on /dev/vda"), "final screen is not the Done screen")
	_, progress := screen["progress"]
	j.Check("progress_screen", progress, "no progress screen was captured during the copy")
	if stack == "md" {
		j.Check("post_md_members", strings.ReplaceAll(F.Get("post_md_members"), " ", "") == "vda", "array members after: '"+F.Get("post_md_members")+"', want vda alone")
		j.Fact(F, "post_mdcompare", "mdcompare=ok *")
		j.Check("post_dm", strings.HasPrefix(F.Get("post_dm"), "No devices found"), "dm devices left: "+F.Get("post_dm"))
	} else {
		j.Check("review_method", strings.Contains(screen["review"], "How: a mirror put under /dev/mapper/live-rw"), "the review does not say the mirror is the way")
		j.Check("post_dm", regexp.MustCompile(`^live-rw\s+\([0-9]+:[0-9]+\)\s*$`).MatchString(F.Get("post_dm")), "dm devices other than live-rw left: "+F.Get("post_dm"))
	}
	j.Check("post_loops", strings.TrimSpace(F.Get("post_loops")) == "", "loops left: "+F.Get("post_loops"))
	j.Check("post_live_mounted", strings.TrimSpace(F.Get("post_live_mounted")) == "", "live mounts left")
	uuid, _ := vm.Host("", "blkid", "-o", "value", "-s", "UUID", target)
	uuid = strings.TrimSpace(uuid)
	j.Check("target_uuid", uuid == p.Env["ROOTFS_UUID"], "target UUID '"+uuid+"' is not the live root's ("+p.Env["ROOTFS_UUID"]+")")
	_, err := vm.Host("", "e2fsck", "-fn", target)
	j.Check("host_e2fsck", err == nil, "host e2fsck found problems on the target")
	if !j.OK() {
		vm.Logf("the wizard's migration is not as expected (see %s)", res.Dir)
		return
	}
	vm.Logf("progress screen (copy at %s%%):", F.Get("tui_progress_percent"))
	fmt.Fprint(os.Stderr, screen["progress"])
	vm.Logf("final screen:")
	fmt.Fprint(os.Stderr, screen["final"])
	vm.Logf("tui OK (%s); screens in %s", stack, shots)
}
