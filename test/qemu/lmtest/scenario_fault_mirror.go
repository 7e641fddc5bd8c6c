package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// mirrorShape is the run-time mirror's state as dmsetup shows it:
// "snapshot" (live-rw is its snapshot again, no livemigrate-src left),
// "copying" (live-rw mirrors livemigrate-src onto the target),
// "migrated:/dev/NAME" (live-rw is a linear map of NAME, no
// livemigrate-src), else "other: " and both tables.
func mirrorShape() string {
	tab := func(n string) string {
		c := g.DM("table", n)
		c.Combined = true
		r := c.Run()
		if r.RC != 0 {
			return ""
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	live, src := tab("live-rw"), tab("livemigrate-src")
	f := strings.Fields(live)
	switch {
	case len(f) >= 3 && f[2] == "snapshot" && src == "":
		return "snapshot"
	case len(f) >= 3 && f[2] == "mirror" && src != "":
		return "copying"
	case len(f) == 5 && f[2] == "linear" && src == "":
		if p := g.Read("/sys/dev/block/" + f[3] + "/uevent"); strings.Contains(p, "DEVNAME=") {
			return "migrated:/dev/" + firstSubmatch(`DEVNAME=(\S+)`, p)
		}
	}
	return fmt.Sprintf("other: live-rw [%s] livemigrate-src [%s]", live, src)
}

// scenarioFaultMirror: faults and interruptions of the run-time mirror
// (lm.stack=nohook: / on live-rw itself, no array), in one live session
// with a writer; every case that stops must leave the session on its
// snapshot with every record. Disks as fault-live's: fa-main (whole disk),
// fa-flaky (raw, under a dm device), fa-unplug (hot-pluggable). Cases:
//
//	m_sigint_tune    SIGINT at step-start tune-recovery      -> 130, snapshot
//	m_sighup_part    SIGHUP at step-start partition          -> 130, snapshot
//	m_sigint_insert  SIGINT at step-start insert-mirror      -> 130, snapshot
//	m_sigterm  SIGTERM during the copy (>= 20%)              -> 130, snapshot
//	m_flaky    the target's table swapped to "error" at >= 20% -> 20, snapshot
//	m_unplug   the target disk hot-unplugged by the host     -> 20, snapshot
//	m_kill9    SIGKILL during the copy; status shows the copy; the same
//	           command again continues it (m_kill9_again), with / remounted
//	           read-only once it copies, so that growing the filesystem
//	           fails past the switch, and SIGINT at step-start switch-to-target:
//	           noted                                         -> 21, migrated
//	m_again    / writable again, the same command once more: only what
//	           was left (grow, release), SIGINT at step-start
//	           grow-filesystem and SIGHUP at step-start
//	           release-live-stack: noted, finished           -> 0, grown
func scenarioFaultMirror() int {
	f := newFault()
	main, fl, up := g.DiskBySerial("fa-main"), g.DiskBySerial("fa-flaky"), g.DiskBySerial("fa-unplug")
	g.Fact("disks", fmt.Sprintf("main=%s flaky=%s unplug=%s mpc=%s", main, fl, up, g.DiskBySerial("fa-mpc")))
	if main == "" || fl == "" || up == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_shape", mirrorShape())
	f.records("pre")
	if pc := g.DiskBySerial("fa-mpc"); pc != "" {
		mirrorHalfDisk(pc)
	}
	report := func(name string) {
		g.Fact(name+"_mshape", mirrorShape())
		g.Fact(name+"_dmesg", dmesgTail(`device-mapper|raid1|snapshot|virtio`, 3))
	}

	// A signal at the start of each step before the copy.
	for _, c := range []struct {
		name, step string
		sig        syscall.Signal
	}{
		{"m_sigint_tune", "tune-recovery", syscall.SIGINT},
		{"m_sighup_part", "partition", syscall.SIGHUP},
		{"m_sigint_insert", "insert-mirror", syscall.SIGINT},
	} {
		f.start(c.name, withArgs("--target", main)...)
		f.signalAtStep(c.name, c.step, c.sig, 120)
		f.finish(c.name, 180)
		report(c.name)
	}

	f.start("m_sigterm", withArgs("--target", main)...)
	if f.untilPct("m_sigterm", 120, 20) {
		f.signal(syscall.SIGTERM)
		g.Fact("m_sigterm_sent", "TERM at "+pct("m_sigterm")+"%")
	}
	f.finish("m_sigterm", 180)
	report("m_sigterm")

	sectors := flakyCreate(fl)
	f.start("m_flaky", append([]string{"--target", "/dev/mapper/flaky", "--raw-disk"}, cliArgs...)...)
	if f.untilPct("m_flaky", 120, 20) {
		g.Fact("m_flaky_sent", fmt.Sprintf("table swapped to error at %s%%: rc=%d", pct("m_flaky"), flakyFail(sectors)))
	}
	f.finish("m_flaky", 180)
	report("m_flaky")
	g.Fact("m_flaky_remove_rc", strconv.Itoa(g.DM("remove", "flaky").Run().RC))

	f.start("m_unplug", withArgs("--target", up)...)
	if f.untilPct("m_unplug", 120, 20) {
		g.Fact("qmp_unplug", "fa-unplug")
		i := 0
		for g.Exists("/sys/block/"+strings.TrimPrefix(up, "/dev/")) && i < 150 {
			time.Sleep(100 * time.Millisecond)
			i++
		}
		g.Fact("m_unplug_gone", fmt.Sprintf("gone=%v after %d.%ds at %s%%", !g.Exists("/sys/block/"+strings.TrimPrefix(up, "/dev/")), i/10, i%10, pct("m_unplug")))
	}
	f.finish("m_unplug", 180)
	report("m_unplug")

	f.start("m_kill9", withArgs("--target", main)...)
	if f.untilPct("m_kill9", 120, 20) {
		f.signal(syscall.SIGKILL)
		g.Fact("m_kill9_sent", "KILL at "+pct("m_kill9")+"%")
	}
	g.Fact("m_kill9_rc", strconv.Itoa(f.wait()))
	report("m_kill9")
	st, src := status("/run/status.txt")
	g.Fact("m_kill9_status", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^(Device|Copy)`, " "))
	f.records("m_kill9")
	dry := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", main, "--dry-run", "--no-finalize"}, Combined: true}.Run()
	g.Fact("m_kill9_dry", "rc="+strconv.Itoa(dry.RC)+" "+squeezed(string(dry.Stdout), `Continuing|This destroys|How:`, " "))
	// lmtest.grow_fail=0 (the Debian row: systemd keeps files on / open
	// for writing, so it cannot be remounted read-only) lets this rerun
	// finish, and the last one has nothing left but to find it done.
	growFail := g.Cmdline("lmtest.grow_fail", "1") == "1"
	f.start("m_kill9_again", withArgs("--target", main)...)
	if growFail && f.untilEv("m_kill9_again", 120, `"event":"step-start","step":"recover"`) {
		f.writerStop()
		g.Fact("m_kill9_again_remount", remount("ro"))
	}
	// The point of no return: noted, and the run goes on.
	f.signalAtStep("m_kill9_again", "switch-to-target", syscall.SIGINT, 300)
	f.finish("m_kill9_again", 300)
	report("m_kill9_again")
	g.Fact("m_kill9_again_left", firstSubmatch(`"event":"error".*"left":\[([^]]*)\]`, jsonlOf("m_kill9_again")))
	g.Fact("m_kill9_again_fs_bytes", statfsProduct("/"))

	if growFail {
		g.Fact("m_again_remount", remount("rw"))
	}
	f.start("m_again", withArgs("--target", main)...)
	f.signalAtStep("m_again", "grow-filesystem", syscall.SIGINT, 120)
	f.signalAtStep("m_again", "release-live-stack", syscall.SIGHUP, 120)
	f.finish("m_again", 180)
	report("m_again")
	g.Fact("m_again_steps", allSubmatches(`"event":"step-start".*?"step":"([a-z-]*)"`, jsonlOf("m_again")))
	g.Fact("m_again_fs_bytes", statfsProduct("/"))
	g.Fact("m_again_dev_bytes", g.Out("blockdev", "--getsize64", "/dev/mapper/live-rw"))
	if !growFail {
		f.writerStop()
	}

	g.Fact("post_mshape", mirrorShape())
	dm := g.DM("ls")
	dm.Combined = true
	g.Fact("post_dm", strings.ReplaceAll(string(dm.Run().Stdout), "\n", " "))
	return 0
}

// scenarioFaultMirrorCut: the power cut of the run-time mirror
// (lm.stack=nohook). A whole-disk migration onto fa-mpc with finalize on,
// as a user would run it; once dm-mirror has copied a fifth, the guest
// reports powercut_now=PCT and the host kills QEMU. The next boot (the
// fault-mirror scenario, with fa-mpc attached) looks at the half-copied
// disk: mirrorHalfDisk.
func scenarioFaultMirrorCut() int {
	f := newFault()
	pc := g.DiskBySerial("fa-mpc")
	g.Fact("disks", "mpc="+pc)
	if pc == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_shape", mirrorShape())
	f.records("mcut")
	f.start("mcut", "--target", pc, "--yes", "--json")
	f.untilEv("mcut", 60, `"event":"plan"`)
	g.Fact("mcut_plan_finalize", strconv.Itoa(strings.Count(firstLineWith(jsonlOf("mcut"), `"event":"plan"`), `"step":"finalize"`)))
	if f.untilPct("mcut", 120, 20) {
		g.Fact("mcut_events", events(jsonlOf("mcut")))
		g.Fact("mcut_mshape", mirrorShape())
		g.Fact("powercut_now", pct("mcut"))
		time.Sleep(120 * time.Second)
		g.Fact("powercut_missed", "the host did not cut the power within 120 s")
	} else {
		g.Fact("powercut_missed", "migrate ended or never reached 20%")
	}
	f.finish("mcut", 180)
	return 1
}

// mirrorHalfDisk: in a fresh live session (the RAM that held the cut
// migration's mirror is gone), the half-copied disk pc is nothing's: status
// does not name it, nothing holds it, and migrate --dry-run plans to
// overwrite it, not to continue.
func mirrorHalfDisk(pc string) {
	n := strings.TrimPrefix(pc, "/dev/")
	st, src := status("/run/st.txt")
	g.Fact("mhalf_status", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^(Device|Copy|Live)`, " | "))
	g.Fact("mhalf_in_status", strconv.Itoa(countLinesWith([]byte(st), n)))
	g.Fact("mhalf_holders", holders(n))
	g.Fact("mhalf_blkid", g.All("blkid", pc+"3"))
	dry := g.Sh("livemigrate", "migrate", "--target", pc, "--dry-run", "--no-finalize")
	g.Fact("mhalf_dry_rc", strconv.Itoa(dry.RC))
	g.Fact("mhalf_dry", squeezed(string(dry.Stdout), `^Plan|How:|Continuing|This destroys|^    - `, " | ")+dry.FirstErr())
	g.Fact("mhalf_mshape", mirrorShape())
}
