package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// The fault scenarios; see fault for what each case reports. The host
// (faults.sh) attaches write-throttled virtio disks, told apart by serial.

var cliArgs = []string{"--yes", "--json", "--no-finalize"}

func withArgs(a ...string) []string { return append(a, cliArgs...) }

// flakyCreate makes /dev/mapper/flaky, a linear map of disk dev that
// flakyFail later turns into an error target; it returns dev's sectors.
func flakyCreate(dev string) string {
	sectors := g.Out("blockdev", "--getsz", dev)
	if g.DM("create", "flaky", "--table", "0 "+sectors+" linear "+dev+" 0").Run().RC == 0 {
		g.DM("mknodes", "flaky").Run()
	}
	return sectors
}

// flakyFail swaps flaky's table for an error target of sectors: every
// I/O to it fails from then on. It returns dmsetup's status.
func flakyFail(sectors string) int {
	rc := g.DM("suspend", "flaky").Run().RC
	if rc == 0 {
		rc = g.DM("load", "flaky", "--table", "0 "+sectors+" error").Run().RC
	}
	if rc == 0 {
		rc = g.DM("resume", "flaky").Run().RC
	}
	return rc
}

// scenarioFaultHalfboot runs only if a disk whose copy was cut off by a
// power cut got this far (booted alone with root=UUID=, the /sbin/init on
// it started and found this scenario). Reports what the system looks like
// from inside.
func scenarioFaultHalfboot() int {
	root := g.RootMount()
	g.Fact("halfboot_root", strings.TrimSpace(root.Source+" "+root.FSType+" "+root.Options))
	g.Fact("halfboot_records", g.All("ls", "-l", "/root/records"))
	if b, err := os.ReadFile("/proc/mdstat"); err == nil {
		g.Fact("halfboot_mdstat", strconv.Itoa(countLinesPrefixed(b, "md")))
	} else {
		g.Fact("halfboot_mdstat", "")
	}
	g.Fact("halfboot_dmesg", dmesgTail(`(?i)ext4|error`, 5))
	return 0
}

// dmesgTail is the last n kernel log lines matching re, each followed by a
// space.
func dmesgTail(re string, n int) string {
	rx := regexp.MustCompile(re)
	var m []string
	for _, l := range g.Lines(g.Sh("dmesg").Stdout) {
		if rx.MatchString(l) {
			m = append(m, l)
		}
	}
	return spaced(m[max(0, len(m)-n):])
}

// signalByName is the signal called INT, TERM, ... (or SIGINT, ...).
func signalByName(name string) syscall.Signal {
	return unix.SignalNum("SIG" + strings.TrimPrefix(name, "SIG"))
}

// scenarioFaultGrow: a signal after the point of no return. Migrate fa-main
// (whole disk) and send lmtest.sig (INT or TERM) when the step lmtest.at
// starts (grow-array or grow-filesystem): the migration must finish (exit
// 0), say in a warning event that the interrupt was noted, and leave / on
// the target alone with every record intact.
func scenarioFaultGrow() int {
	f := newFault()
	main := g.DiskBySerial("fa-main")
	sig := g.Cmdline("lmtest.sig", "INT")
	at := g.Cmdline("lmtest.at", "grow-array")
	name := g.Cmdline("lmtest.case", "grow")
	g.Fact("disks", fmt.Sprintf("main=%s sig=%s at=%s case=%s", main, sig, at, name))
	if main == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	f.records("pre")
	f.start(name, withArgs("--target", main)...)
	f.signalAtStep(name, at, signalByName(sig), 180)
	f.finish(name, 180)
	g.Fact(name+"_result", strconv.Itoa(countLinesWith([]byte(jsonlOf(name)), `"event":"result"`)))
	time.Sleep(time.Second)
	f.writerStop()
	g.Fact("post_shape", f.shape())
	return 0
}

// scenarioFaultCow: a small copy-on-write store (lm.cowsize= from the host,
// a bit above twice what livemigrate estimates the migration needs), then a
// power cut. Disks: fa-main (whole-disk target), fa-pc (whole-disk target
// of the power cut).
//
//	cowwarn   migrate fa-main; while md copies, write lmtest.fill MiB to /
//	          until a "copy-on-write space is getting low" warning event
//	          appears, then SIGINT -> 130, live session intact
//	powercut  migrate fa-pc (finalize on); at >= 20% report powercut_now=PCT
//	          and wait: the host kills QEMU (the disk is examined by
//	          faults.sh, then booted alone, then seen from a fresh live
//	          session)
func scenarioFaultCow() int {
	f := newFault()
	main, pc := g.DiskBySerial("fa-main"), g.DiskBySerial("fa-pc")
	fill := g.Cmdline("lmtest.fill", "24")
	g.Fact("disks", fmt.Sprintf("main=%s pc=%s fill=%sMiB", main, pc, fill))
	if main == "" || pc == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	g.Fact("pre_cow", dmAll("status", "live-rw"))
	st, _ := status("/run/st.txt")
	g.Fact("pre_status", squeezed(st, `^  (COW|headroom)`, " "))
	f.records("pre")

	const low = "copy-on-write space is getting low"
	f.start("cowwarn", withArgs("--target", main)...)
	f.untilPct("cowwarn", 90, 1)
	time.Sleep(1500 * time.Millisecond)
	g.Fact("cowwarn_cowplan", cowPlan(jsonlOf("cowwarn")))
	g.Fact("cowwarn_early", fmt.Sprintf("%d warnings before writing, at %s%%", countLinesWith([]byte(jsonlOf("cowwarn")), low), pct("cowwarn")))
	dd, err := g.Cmd{Args: []string{"dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count=" + fill, "conv=fsync"}}.Start()
	if err != nil {
		g.Say("fault-cow: dd: %v", err)
	}
	seen := "no"
	for i := 0; f.migAlive() && i < 900; i++ {
		if strings.Contains(jsonlOf("cowwarn"), low) {
			seen = "yes"
			break
		}
		if n, err := strconv.Atoi(pct("cowwarn")); err == nil && n >= 85 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.signal(syscall.SIGINT)
	g.Fact("cowwarn_sent", fmt.Sprintf("INT at %s%%, warning seen=%s", pct("cowwarn"), seen))
	f.finish("cowwarn", 180)
	if dd != nil {
		r := dd.Wait()
		_ = os.WriteFile("/run/dd.err", r.Stderr, 0o644)
		lines := g.Lines(r.Stderr)
		last := ""
		if len(lines) > 0 {
			last = lines[len(lines)-1]
		}
		g.Fact("cowwarn_dd", fmt.Sprintf("rc=%d %s", r.RC, last))
	}
	g.Fact("cowwarn_cow", dmAll("status", "live-rw"))
	// The fill file takes root filesystem space the writer needs (the live
	// root is a tight image); its COW chunks stay allocated anyway.
	_ = os.Remove("/root/fill")
	syscall.Sync()

	// The power cut: the host kills QEMU once md has copied a fifth of
	// fa-pc. With finalize on, as a user would run it: the cut comes long
	// before finalize, and the disk must still not pass for an installed
	// system.
	f.records("powercut")
	f.start("powercut", "--target", pc, "--yes", "--json")
	f.untilEv("powercut", 60, `"event":"plan"`)
	g.Fact("powercut_plan_finalize", strconv.Itoa(strings.Count(firstLineWith(jsonlOf("powercut"), `"event":"plan"`), `"step":"finalize"`)))
	if f.untilPct("powercut", 90, 20) {
		g.Fact("powercut_events", events(jsonlOf("powercut")))
		g.Fact("powercut_md", f.mdState())
		g.Fact("powercut_now", pct("powercut"))
		time.Sleep(120 * time.Second)
		g.Fact("powercut_missed", "the host did not cut the power within 120 s")
	} else {
		g.Fact("powercut_missed", "migrate ended or never reached 20%")
	}
	f.finish("powercut", 180)
	return 1
}

// firstLineWith is the first line of text containing sub.
func firstLineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

var cowPlanRE = regexp.MustCompile(`"cow_(need|free)_bytes":[0-9]+`)

// cowPlan is the COW figures of the first plan event, each followed by a
// space.
func cowPlan(jsonl string) string {
	return spaced(cowPlanRE.FindAllString(firstLineWith(jsonl, `"event":"plan"`), -1))
}

// scenarioFaultCowfull: a live session with a small copy-on-write store
// (lm.cowsize=96M from the host) and, as fa-pc, the disk whose migration
// the power cut of fault-cow interrupted.
//
//	halfdisk  `livemigrate status` must not show fa-pc as part of anything,
//	          and `migrate --dry-run --target fa-pc` must treat it as a
//	          target to overwrite (no "Continuing")
//	cowfull   write lmtest.fill MiB to /, then migrate -> 16 with a message
//	          saying how much COW is left and how much is needed; the sha256
//	          of every disk (/dev/vd*, whole, past the page cache) before
//	          and after the refusal: cowfull_sums_same
func scenarioFaultCowfull() int {
	f := newFault()
	pc := g.DiskBySerial("fa-pc")
	fill := g.Cmdline("lmtest.fill", "40")
	g.Fact("disks", fmt.Sprintf("pc=%s fill=%sMiB", pc, fill))
	if pc == "" {
		return 1
	}
	n := strings.TrimPrefix(pc, "/dev/")
	f.writerStart()
	f.records("pre")
	g.Fact("pre_md", f.mdState())
	st, src := status("/run/st.txt")
	g.Fact("halfdisk_status", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^(  slot|Array)`, " | "))
	g.Fact("halfdisk_in_status", strconv.Itoa(countLinesWith([]byte(st), n)))
	g.Fact("halfdisk_holders", holders(n))
	var parts []string
	for _, p := range g.Glob("/sys/block/" + n + "/" + n + "*") {
		parts = append(parts, p[strings.LastIndex(p, "/")+1:])
	}
	g.Fact("halfdisk_parts", spaced(parts))
	g.Fact("halfdisk_blkid", g.All("blkid", pc+"3"))
	dry := g.Sh("livemigrate", "migrate", "--target", pc, "--dry-run", "--no-finalize")
	g.Fact("halfdisk_dry_rc", strconv.Itoa(dry.RC))
	g.Fact("halfdisk_dry", squeezed(string(dry.Stdout), `^Plan|Continuing|This destroys|^    - `, " | ")+dry.FirstErr())
	g.Fact("halfdisk_shape", f.shape())

	g.Sh("dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count="+fill, "conv=fsync")
	g.Fact("cowfull_cow", dmAll("status", "live-rw"))
	st, _ = status("/run/st.txt")
	g.Fact("cowfull_headroom", strings.TrimSuffix(squeezed(st, `^  headroom`, "\n"), "\n"))
	// sha256 of every virtio disk, whole, read past the page cache.
	sums := func() string {
		g.DropCaches()
		var b strings.Builder
		for _, d := range g.Glob("/dev/vd?") {
			b.WriteString(sha256File(d) + "  " + d + "\n")
		}
		return b.String()
	}
	before := sums()
	f.start("cowfull", withArgs("--target", pc)...)
	f.finish("cowfull", 120)
	after := sums()
	if before == after && regexp.MustCompile(`(?m)^[0-9a-f]{64}  /dev/vd`).MatchString(before) {
		g.Fact("cowfull_sums_same", fmt.Sprintf("yes: %d disks", strings.Count(before, "\n")))
	} else {
		g.Fact("cowfull_sums_same", "no")
		g.FactLines("cowfull_sums_before", []byte(before))
		g.FactLines("cowfull_sums_after", []byte(after))
	}
	// Deleting files does not give the COW back (dm snapshots never free
	// chunks), which is why the refusal's hint does not suggest it: check
	// both.
	_ = os.Remove("/root/fill")
	syscall.Sync()
	g.Fact("cowfull_after_rm", dmAll("status", "live-rw"))
	r := bounded(60, "migrate", "--target", pc, "--dry-run", "--no-finalize")
	g.Fact("cowfull_after_rm_dry", "rc="+strconv.Itoa(r.RC)+" "+r.FirstErr())
	g.Fact("cowfull_pc_holders", holders(n))
	f.writerStop()
	g.Fact("post_shape", f.shape())
	return 0
}

// scenarioFaultLive: faults and interruptions in one live session, which
// every aborted migration must leave intact for the next case. A writer
// appends fsync'ed records for the whole boot; after each case they are
// read back. Disks: fa-main (whole-disk target), fa-flaky (raw target under
// a dm device), fa-unplug (hot-pluggable, QMP id dev-fa-unplug). Cases, in
// order:
//
//	sig_prehot   SIGINT on step-start tune-recovery             -> 130
//	sig_recover  SIGTERM during recovery (>= 20%)               -> 130
//	two          a second migrate (same target, other target) and release
//	             while the first copies -> 5; then SIGINT the first -> 130
//	flaky        dm table of the target swapped to "error" at >= 20% -> 20
//	unplug       the target disk hot-unplugged by the host (QMP
//	             device_del after the fact qmp_unplug=fa-unplug) -> 20
//	kill9        SIGKILL during recovery; status; the same command again
//	             (kill9_again: "resume" in its plan), SIGINT right after
//	             step-done remove-live-leg -> 0, a complete migration
func scenarioFaultLive() int {
	f := newFault()
	main, fl, up := g.DiskBySerial("fa-main"), g.DiskBySerial("fa-flaky"), g.DiskBySerial("fa-unplug")
	g.Fact("disks", fmt.Sprintf("main=%s flaky=%s unplug=%s", main, fl, up))
	if main == "" || fl == "" || up == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	g.Fact("pre_shape", f.shape())
	f.records("pre")

	// SIGINT before the hot-add.
	f.start("sig_prehot", withArgs("--target", main)...)
	f.signalAtStep("sig_prehot", "tune-recovery", syscall.SIGINT, 60)
	f.finish("sig_prehot", 180)

	// SIGTERM while md copies.
	f.start("sig_recover", withArgs("--target", main)...)
	if f.untilPct("sig_recover", 90, 20) {
		f.signal(syscall.SIGTERM)
		g.Fact("sig_recover_sent", "TERM at "+pct("sig_recover")+"%")
	}
	f.finish("sig_recover", 180)

	// Two at once.
	f.start("two", withArgs("--target", main)...)
	if first := f.mig; f.untilPct("two", 90, 10) {
		p0 := pct("two")
		for _, c := range []struct {
			name string
			args []string
		}{
			{"two_same", withArgs("migrate", "--target", main)},
			{"two_other", append([]string{"migrate", "--target", fl, "--raw-disk"}, cliArgs...)},
			{"two_release", []string{"release"}},
		} {
			r := bounded(60, c.args...)
			g.Fact(c.name+"_rc", strconv.Itoa(r.RC))
			g.Fact(c.name+"_err", r.FirstErr())
		}
		st, src := status("/run/two_status.txt")
		g.Fact("two_status_during", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^(  slot|Recovery)`, " "))
		time.Sleep(2 * time.Second)
		al := "no"
		if alive(first.Process.Pid) {
			al = "yes"
		}
		g.Fact("two_first", fmt.Sprintf("pid=%d alive=%s pct_before=%s pct_after=%s", first.Process.Pid, al, p0, pct("two")))
		_ = first.Process.Signal(syscall.SIGINT)
		g.Fact("two_sent", "INT at "+pct("two")+"%")
	}
	f.finish("two", 180)

	// Write errors on the target: its dm table becomes "error" mid-copy.
	sectors := flakyCreate(fl)
	g.Fact("flaky_dev", g.All("ls", "-l", "/dev/mapper/flaky"))
	f.start("flaky", append([]string{"--target", "/dev/mapper/flaky", "--raw-disk"}, cliArgs...)...)
	if f.untilPct("flaky", 90, 20) {
		g.Fact("flaky_sent", fmt.Sprintf("table swapped to error at %s%%: rc=%d", pct("flaky"), flakyFail(sectors)))
	}
	f.finish("flaky", 180)
	g.Fact("flaky_dmesg", dmesgTail(`md/raid1|md:`, 4))
	g.Fact("flaky_remove_rc", strconv.Itoa(g.DM("remove", "flaky").Run().RC))

	// The target disk disappears: the host unplugs it (QMP device_del).
	f.start("unplug", withArgs("--target", up)...)
	if f.untilPct("unplug", 90, 20) {
		g.Fact("qmp_unplug", "fa-unplug")
		sys := "/sys/block/" + strings.TrimPrefix(up, "/dev/")
		i := 0
		for ; g.Exists(sys) && i < 150; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if g.Exists(sys) {
			// Never unplugged: stop the migration before it completes,
			// so the next cases still have a live session.
			f.signal(syscall.SIGINT)
			g.Fact("unplug_gone", "no after 15s, at "+pct("unplug")+"%: migrate interrupted")
		} else {
			g.Fact("unplug_gone", fmt.Sprintf("yes after %d.%ds at %s%%", i/10, i%10, pct("unplug")))
		}
	}
	f.finish("unplug", 180)
	// If livemigrate left the vanished leg in the array, take it out by
	// hand (md's own sysfs), so that the cases after this one still have a
	// clean live session; the unplug case has failed already.
	for _, m := range g.MDMembers(f.md) {
		st := g.MDDir(f.md) + "/" + m + "/state"
		if strings.Contains(g.Read(st), "faulty") {
			rc := 0
			if os.WriteFile(st, []byte("remove\n"), 0o644) != nil {
				rc = 1
			}
			g.Fact("unplug_cleanup", fmt.Sprintf("%s left in %s by livemigrate; removed by the test: rc=%d", strings.TrimPrefix(m, "dev-"), f.md, rc))
		}
	}
	g.Fact("unplug_dmesg", dmesgTail(`md/raid1|md:|virtio`, 4))

	// SIGKILL mid-copy, then the same command again finishes it.
	f.start("kill9", withArgs("--target", main)...)
	if f.untilPct("kill9", 90, 20) {
		f.signal(syscall.SIGKILL)
		g.Fact("kill9_sent", "KILL at "+pct("kill9")+"%")
	}
	g.Fact("kill9_rc", strconv.Itoa(f.wait()))
	f.report("kill9")
	dry := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", main, "--dry-run", "--no-finalize"}, Combined: true}.Run()
	g.Fact("kill9_dry", "rc="+strconv.Itoa(dry.RC)+" "+squeezed(string(dry.Stdout), `Continuing|This destroys`, " "))
	f.start("kill9_again", withArgs("--target", main)...)
	if f.untilEv("kill9_again", 120, `"event":"step-done","step":"remove-live-leg"`) {
		f.signal(syscall.SIGINT)
		g.Fact("kill9_again_sent", "INT on step-done remove-live-leg")
	}
	f.finish("kill9_again", 180)
	g.Fact("kill9_again_result", strconv.Itoa(countLinesWith([]byte(jsonlOf("kill9_again")), `"event":"result"`)))

	time.Sleep(time.Second)
	f.writerStop()
	g.Fact("post_md", f.mdState())
	g.Fact("post_shape", f.shape())
	dm := g.DM("ls")
	dm.Combined = true
	g.Fact("post_dm", strings.ReplaceAll(string(dm.Run().Stdout), "\n", " "))
	return 0
}

// scenarioFaultResume: continuations on a stack another tool built
// (faults.sh boot 8: lm.stack=tools, md7 by mdadm --build, the live leg in
// slot 1). The target is partition 3 of a GPT disk whose partitions 1 and 2
// hold data (the host checksums them before and after the boot).
//
//  1. migrate --target PART3 --no-finalize, SIGKILL at 20% of the copy
//     (kill9);
//  2. the same migration asked for by the disk's name, with finalize, as a
//     dry run and for real: refused (17) naming PART3, nothing written
//     (bydisk_dry, bydisk); the wizard's target list greys the disk out
//     with the same reason (wiz_targets);
//  3. md finishes the copy on its own; then the live leg is failed by hand
//     through sysfs, the state a crash between failing and removing it
//     leaves (failed_state);
//  4. migrate --target PART3 --no-finalize again, its JSON read through a
//     pipe by a reader that quits at step-start remove-live-leg, then
//     SIGINT: with the reader gone and the signal past the point of no
//     return it must still finish, exit 0 (resume).
func scenarioFaultResume() int {
	f := newFault()
	mdsys := g.MDDir(f.md)
	gpt := g.DiskBySerial("fr-gpt")
	part := gpt + "3"
	live := ""
	for _, m := range g.Glob(mdsys + "/dev-dm-*") {
		live = strings.TrimPrefix(m[strings.LastIndex(m, "/")+1:], "dev-")
	}
	g.Fact("disks", fmt.Sprintf("gpt=%s part=%s md=%s live=%s live_slot=%s", gpt, part, f.md, live, g.Read(mdsys+"/dev-"+live+"/slot")))
	if st, err := os.Stat(part); gpt == "" || err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	f.records("pre")

	// 1. SIGKILL mid-copy of a partition install.
	f.start("kill9", withArgs("--target", part)...)
	if f.untilPct("kill9", 180, 20) {
		f.signal(syscall.SIGKILL)
		g.Fact("kill9_sent", "SIGKILL at "+pct("kill9")+"%")
	}
	f.finish("kill9", 30)

	// 2. The disk's name: refused, as a dry run and for real.
	dry := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", gpt, "--dry-run"}, Combined: true}.Run()
	g.Fact("bydisk_dry_rc", strconv.Itoa(dry.RC))
	g.Fact("bydisk_dry", firstN(strings.ReplaceAll(string(dry.Stdout), "\n", " "), 400))
	f.start("bydisk", "--target", gpt, "--yes", "--json")
	f.finish("bydisk", 60)

	// 2b. The wizard's list of targets: the disk greyed out with that
	// reason.
	t := &g.TUI{Out: g.Console}
	if t.Start() == nil {
		t.Key("Enter")
		if t.Wait("Choose the disk", 30) == nil {
			g.Fact("wiz_targets", firstN(g.OneSpaced(t.Screen()), 900))
		}
	}
	t.Key("C-c")
	time.Sleep(time.Second)
	t.Kill()

	// 3. md completes the copy by itself; then the live leg is failed by
	// hand.
	i := 0
	for ; i < 3000; i++ {
		if g.Read(mdsys+"/dev-"+strings.TrimPrefix(part, "/dev/")+"/state") == "in_sync" && g.MDAttr(f.md, "sync_action") == "idle" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.Fact("synced_after", fmt.Sprintf("%ds: %s", i/10, f.mdState()))
	frc := "0"
	if os.WriteFile(mdsys+"/dev-"+live+"/state", []byte("faulty\n"), 0o644) != nil {
		frc = "failed"
	}
	g.Fact("failed_state", "rc="+frc+" "+f.mdState())
	st, src := status("/run/status-failed.txt")
	g.Fact("failed_status", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^  slot`, "|"))
	f.records("failed")

	// 4. Rerun through a pipe whose reader quits at the point of no
	// return, then SIGINT.
	f.resumeThroughPipe(part)
	f.finish("resume", 120)
	time.Sleep(time.Second)
	f.writerStop()
	g.Fact("post_shape", f.shape())
	return 0
}

// resumeThroughPipe starts migrate with its JSON on a pipe, copies what it
// writes to /run/resume.jsonl until step-start remove-live-leg, closes the
// pipe's only reader (the next event livemigrate writes gets EPIPE, or
// SIGPIPE, which would kill it) and sends SIGINT.
func (f *fault) resumeThroughPipe(part string) {
	_ = os.WriteFile("/run/resume.jsonl", nil, 0o644)
	errf, _ := os.Create("/run/resume.err")
	defer errf.Close()
	cmd := exec.Command("livemigrate", "migrate", "--target", part, "--yes", "--json", "--no-finalize")
	cmd.Stderr = errf
	pr, err := cmd.StdoutPipe()
	if err != nil {
		g.Say("fault-resume: %v", err)
		return
	}
	if err := cmd.Start(); err != nil {
		g.Say("fault-resume: %v", err)
		return
	}
	f.mig = &g.Proc{Cmd: cmd}
	g.Fact("resume_cmd", "livemigrate migrate --target "+part+" --yes --json --no-finalize | reader")
	out, _ := os.OpenFile("/run/resume.jsonl", os.O_WRONLY|os.O_APPEND, 0o644)
	copyLinesUntil(pr, out, `"event":"step-start","step":"remove-live-leg"`)
	out.Close()
	pr.Close()
	if cmd.Process.Signal(syscall.SIGINT) == nil {
		g.Fact("resume_sent", "SIGINT after step-start remove-live-leg, reader gone")
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// scenarioFaultStuck: a step past the point of no return that fails for
// real, and the rerun that finishes it. Migrate fa-main (whole disk,
// throttled by the host) and, once md copies, stop the writer and remount
// / read-only: an online resize cannot run on a read-only mount (the kernel
// would answer EROFS; livemigrate's check says so first, naming the
// remount to do), so grow-filesystem fails after its retries. The steps
// after it must still run, the exit code must be grow's (21) and the error
// event must list what is left. Then / is made writable again and the same
// command, run again, must do only what was left and exit 0 with the
// filesystem filling the disk.
func scenarioFaultStuck() int {
	f := newFault()
	main := g.DiskBySerial("fa-main")
	g.Fact("disks", "main="+main)
	if main == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	f.records("pre")
	f.start("stuck", withArgs("--target", main)...)
	if f.untilEv("stuck", 180, `"event":"step-start","step":"recover"`) {
		f.writerStop()
		g.Fact("stuck_remount", remount("ro"))
	}
	f.finish("stuck", 240)
	jl := jsonlOf("stuck")
	g.Fact("stuck_left", firstSubmatch(`"event":"error".*"left":\[([^]]*)\]`, jl))
	g.Fact("stuck_failed", allSubmatches(`"event":"step-failed".*?"step":"([a-z-]*)"`, jl))
	md := strings.TrimPrefix(f.md, "/dev/")
	g.Fact("stuck_fs_before", statfsProduct("/"))
	g.Fact("stuck_array_bytes", strconv.FormatInt(g.ReadInt("/sys/block/"+md+"/size")*512, 10))

	g.Fact("again_remount", remount("rw"))
	f.start("again", withArgs("--target", main)...)
	f.finish("again", 120)
	jl = jsonlOf("again")
	g.Fact("again_steps", allSubmatches(`"event":"step-start".*?"step":"([a-z-]*)"`, jl))
	g.Fact("again_fs", firstSubmatch(`"event":"result".*"filesystem":\{([^}]*)\}`, jl))
	g.Fact("again_fs_bytes", statfsProduct("/"))
	g.Fact("again_array_bytes", strconv.FormatInt(g.ReadInt("/sys/block/"+md+"/size")*512, 10))
	return 0
}

// remount remounts / with opt (ro or rw) and says "rc=N OPT", OPT being the
// first mount option / has afterwards.
func remount(opt string) string {
	rc := g.OnConsole("mount", "-o", "remount,"+opt, "/")
	now, _, _ := strings.Cut(g.RootMount().Options, ",")
	return fmt.Sprintf("rc=%d %s", rc, now)
}

// statfsProduct is "BLOCKS*BSIZE" of the filesystem at path, as statfs
// gives them ("" when it fails).
func statfsProduct(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d*%d", st.Blocks, st.Bsize)
}

// firstSubmatch is re's first group in the first line of text it matches.
func firstSubmatch(re, text string) string {
	rx := regexp.MustCompile(re)
	for _, l := range strings.Split(text, "\n") {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

// allSubmatches is re's first group in every line of text it matches, each
// followed by a space.
func allSubmatches(re, text string) string {
	rx := regexp.MustCompile(re)
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if m := rx.FindStringSubmatch(l); m != nil {
			b.WriteString(m[1] + " ")
		}
	}
	return b.String()
}
