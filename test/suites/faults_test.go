package suites

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/test/vm"
)

// faults judges TestFaults: every row of its table is one case, judged by
// the reasons collected in why since the last row (none: passed).
type faults struct {
	t     *testing.T
	j     *vm.Judge
	F     vm.Facts
	why   []string
	table []string
	lost  int
	out   string // Out()/faults
	p     prepared
	bps   int64
}

func (r *faults) f(k string) string { return r.F.Get(k) }

// need adds msg to the current case's reasons unless ok.
func (r *faults) need(ok bool, msg string) {
	if !ok {
		r.why = append(r.why, msg)
	}
}

// row closes the current case: one line of the table, judged by why.
func (r *faults) row(name, want, got string) {
	ok := r.j.Check(name, len(r.why) == 0, strings.Join(r.why, ";"))
	verdict := "ok"
	if !ok {
		verdict = "FAIL"
	}
	r.table = append(r.table, fmt.Sprintf("%-18s %-44s %-28.60s %s", name, want, got, verdict))
	r.why = nil
}

var reRecords = regexp.MustCompile(`records_ok=([0-9]+) records_bad=([0-9]+)`)

// recs: the record check KEY lost nothing (counted in lost) and the writer
// is alive, unless deadOK.
func (r *faults) recs(key string, deadOK bool) {
	v := r.f(key + "_records")
	m := reRecords.FindStringSubmatch(v)
	if m == nil {
		r.why = append(r.why, key+": no record check ("+v+")")
		return
	}
	bad, _ := strconv.Atoi(m[2])
	r.lost += bad
	r.need(bad == 0, fmt.Sprintf("%s: %d records lost (%s)", key, bad, v))
	r.need(strings.Contains(v, "writer=alive") || deadOK, key+": the writer died ("+v+")")
}

// liveOnly: the array is back to the live leg alone, in sync.
func (r *faults) liveOnly(c string) {
	legs := r.f(c + "_legs")
	r.need(r.f(c+"_shape") == "live-only", c+": array is '"+r.f(c+"_shape")+"'")
	r.need(strings.Count(legs, "slot") == 1 && vm.Glob(legs, "*live leg*in sync*"), c+": status legs '"+legs+"'")
	r.need(strings.HasPrefix(r.f(c+"_status"), "rc=0"), c+": status '"+r.f(c+"_status")+"'")
}

// migrated: / lives on the target alone, the live stack is gone.
func (r *faults) migrated(c string) {
	legs := r.f(c + "_legs")
	r.need(strings.HasPrefix(r.f(c+"_shape"), "migrated:"), c+": array is '"+r.f(c+"_shape")+"'")
	r.need(strings.Count(legs, "slot") == 1 && strings.Contains(legs, "in sync") && !strings.Contains(legs, "live leg"), c+": status legs '"+legs+"'")
	r.need(strings.HasPrefix(r.f(c+"_status"), "rc=0 Live stack: none"), c+": status '"+r.f(c+"_status")+"'")
}

var reMin = regexp.MustCompile(`^.* min=`)

// limits: md's speed limits are what they were before the case.
func (r *faults) limits(c string) {
	pre := reMin.ReplaceAllString(r.f("pre_md"), "min=")
	now := reMin.ReplaceAllString(r.f(c+"_md"), "min=")
	r.need(pre == now, c+": speed limits '"+now+"', before '"+pre+"'")
}

// abort: an abort before the point of no return.
func (r *faults) abort(c string, code int, tgt string) {
	rc, err := r.f(c+"_rc"), r.f(c+"_err")
	r.need(rc == strconv.Itoa(code), fmt.Sprintf("%s: exit '%s', want %d", c, rc, code))
	r.need(strings.Contains(err, tgt), c+": stderr does not name "+tgt+": '"+err+"'")
	r.need(strings.Contains(err, "live session intact"), c+": stderr does not say the live session is intact: '"+err+"'")
	r.need(r.f(c+"_hung") == "", c+": "+r.f(c+"_hung"))
	r.liveOnly(c)
	r.limits(c)
	r.recs(c, false)
}

// done: a signal past the point of no return: exit 0, a warning saying
// so, a result event, / on the target alone.
func (r *faults) done(c string) {
	r.need(r.f(c+"_rc") == "0", c+": exit '"+r.f(c+"_rc")+"': "+r.f(c+"_err"))
	r.need(r.f(c+"_sent") != "", c+": the signal was never sent")
	r.need(strings.Contains(r.f(c+"_warnings"), "after the point of no return"), c+": no warning about the interrupt: '"+r.f(c+"_warnings")+"'")
	r.need(r.f(c+"_result") == "1" || strings.Contains(r.f(c+"_events"), "result:"), c+": no result event")
	r.migrated(c)
	r.recs(c, false)
}

// disk is a faults disk: serial S, drive d-S, device dev-S (what QMP
// unplugs), written at bps when throttled; size>0 makes it afresh.
func (r *faults) disk(serial string, size int64, throttle bool, drive string) vm.Disk {
	d := vm.Disk{Path: filepath.Join(r.out, serial+".img"), Size: size, Serial: serial, ID: "d-" + serial, Device: "id=dev-" + serial}
	var opts []string
	if throttle {
		opts = append(opts, "throttling.bps-write="+strconv.FormatInt(r.bps, 10))
	}
	if drive != "" {
		opts = append(opts, drive)
	}
	d.Drive = strings.Join(opts, ",")
	return d
}

// boot runs one faults VM with QMP, while the facts port is watched:
// qmp_unplug=ID -> device_del dev-ID; powercut_now=... -> kill -9 QEMU.
func (r *faults) boot(name string, m *vm.Machine) *vm.Result {
	m.Dir = filepath.Join(r.out, name)
	if r.p.Images != nil && !m.FirmwareBoot {
		m.Initrd = r.p.Initrd
	}
	r.hooks(m)
	res := boot(r.t, m)
	r.F = res.Facts
	return res
}

// hooks lets m's guest ask the host, on the facts port: qmp_unplug=ID ->
// device_del dev-ID; powercut_now=... -> kill -9 QEMU.
func (r *faults) hooks(m *vm.Machine) {
	m.QMP = true
	os.Remove(filepath.Join(m.Dir, "qmp.log"))
	os.Remove(filepath.Join(m.Dir, "powercut"))
	if m.OnFact == nil {
		m.OnFact = map[string]func(string, *vm.Running){}
	}
	for k, f := range map[string]func(string, *vm.Running){
		"qmp_unplug": func(id string, run *vm.Running) {
			vm.Logf("QMP device_del %s", id)
			ans, err := run.QMP("device_del", map[string]any{"id": "dev-" + id})
			if err != nil {
				vm.Logf("QMP failed (see %s/qmp.log)", m.Dir)
				ans += err.Error() + "\n"
			}
			appendFile(filepath.Join(m.Dir, "qmp.log"), ans)
		},
		"powercut_now": func(pct string, run *vm.Running) {
			vm.Logf("power cut: kill -9 QEMU at %s%% of the copy", pct)
			run.PowerCut()
			appendFile(filepath.Join(m.Dir, "powercut"), "yes\n")
		},
	} {
		m.OnFact[k] = f
	}
}

// cutDisk inspects, on the host, the whole-disk target whose migration a
// power cut stopped mid-copy (finalize on): a GPT with livemigrate's three
// partitions, and nothing that boots (no boot code in the protective MBR,
// nothing in the BIOS boot partition, no filesystem on the ESP). Reasons go
// to r.why; it returns the boot code's non-zero bytes and the ESP's type.
func (r *faults) cutDisk(pcimg string) (bootcode int, espType string) {
	t := r.t
	pcData, _ := os.ReadFile(pcimg)
	nonzero := func(b []byte) int { return len(b) - bytes.Count(b, []byte{0}) }
	bootcode = nonzero(pcData[:min(440, len(pcData))])
	r.need(bootcode == 0, fmt.Sprintf("the protective MBR has %d non-zero bytes of boot code", bootcode))
	pt, _ := vm.Host("", "sfdisk", "-d", pcimg)
	parts := partitions(pt)
	bbNonzero, rootID, pcFsck := "", "", "?"
	if len(parts) < 3 {
		r.why = append(r.why, "no GPT with 3 partitions: '"+pt+"'")
	} else {
		bb := nonzero(pcData[parts[1][0]:min(parts[1][0]+parts[1][1], int64(len(pcData)))])
		bbNonzero = strconv.Itoa(bb)
		r.need(bb == 0, fmt.Sprintf("the BIOS boot partition holds %d non-zero bytes (GRUB core?)", bb))
		withLoop(t, pcimg, parts[2][0], parts[2][1], func(l string) {
			out, _ := vm.Host("", "blkid", "-p", "-o", "value", "-s", "TYPE", l)
			espType = strings.TrimSpace(out)
		})
		r.need(espType == "", "the ESP has a filesystem ("+espType+"): an EFI binary could be on it")
		withLoop(t, pcimg, parts[3][0], parts[3][1], func(l string) {
			out, _ := vm.Host("", "blkid", "-p", "-o", "export", l)
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "TYPE=") || strings.HasPrefix(line, "UUID=") {
					rootID += line + " "
				}
			}
			fsck, err := runOut("e2fsck", "-fn", l)
			os.WriteFile(filepath.Join(r.out, strings.TrimSuffix(filepath.Base(pcimg), ".img")+"-e2fsck.txt"), []byte(fsck), 0o644)
			pcFsck = strconv.Itoa(exitCode(err))
		})
	}
	vm.Logf("power-cut disk %s: boot code bytes %d, BIOS boot non-zero %s, ESP type '%s', root: %s; host e2fsck -fn rc=%s", filepath.Base(pcimg), bootcode, bbNonzero, espType, rootID, pcFsck)
	return bootcode, espType
}

// bootsNothing boots the disk of serial alone through the firmware
// (SeaBIOS, no kernel given, a throwaway snapshot), as a machine would; it
// returns the result, the facts reported and the kernel banners seen: 124,
// 0 and 0 when nothing of it ran.
func (r *faults) bootsNothing(name, serial string) (*vm.Result, int, int) {
	res3b := r.boot(name, &vm.Machine{FirmwareBoot: true, Window: vm.WindowNone, Timeout: 45 * time.Second,
		Disks: []vm.Disk{r.disk(serial, 0, false, "snapshot=on")}})
	fwFacts := 0
	for _, l := range strings.Split(strings.ReplaceAll(readFile(filepath.Join(res3b.Dir, "facts.txt")), "\r", ""), "\n") {
		if l != "" {
			fwFacts++
		}
	}
	fwConsole := strings.Count(readFile(filepath.Join(res3b.Dir, "console.log")), "Linux version")
	return res3b, fwFacts, fwConsole
}

func appendFile(path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		f.WriteString(s)
		f.Close()
	}
}

// diskField is NAME=VALUE out of the guest's disks fact.
func diskField(disks, name string) string {
	return firstMatch(`(?:^| )`+name+`=([^ ]*)`, disks)
}

// TestFaults: faults and interruptions during a migration, in the boots below
// (see the rows below and test/qemu/guest/scenario-fault-*.sh). Every case
// checks the exit code, that the message says what happened and names the
// device, that the live session survived with every fsync-acknowledged
// writer record intact, and what `livemigrate status` shows afterwards.
// Target disks are write-throttled by QEMU (LM_FAULTS_BPS, default 8 MiB/s)
// so md's copy takes long enough to hit each moment. Prints a table and
// "faults summary: N cases, P passed, F failed; records lost: K".
func TestFaults(t *testing.T) {
	needVM(t)
	t0 := time.Now()
	must(t, vm.NeedPkgs("fdisk"))
	p := prepare(t, 0)
	r := &faults{t: t, j: vm.NewJudge(t), p: p, out: filepath.Join(vm.Out(), "faults"), bps: 8 * mib}
	must(t, os.MkdirAll(r.out, 0o755))
	if v := os.Getenv("LM_FAULTS_BPS"); v != "" {
		r.bps = atoi(v)
	}
	rootfs := p.RootfsBytes()
	need := 64*mib + rootfs/32 // engine.COWNeed
	whole := rootfs + 512*mib  // room for BIOS boot + ESP + root
	raw := rootfs + 16*mib
	// fault-cow: a COW a little above twice the need, so the warning
	// threshold (free < 2 x need) is crossed by writing, not at the start.
	cowWarnMiB := 2*need/mib + 12
	label := p.Env["LIVE_LABEL"]
	vm.Logf("live root %d bytes; COW need %d MiB; fault-cow COW %d MiB; targets throttled to %d KiB/s", rootfs, need/mib, cowWarnMiB, r.bps/1024)

	// LM_FAULTS_ONLY=refused|mirror runs that boot alone (while working
	// on it).
	switch os.Getenv("LM_FAULTS_ONLY") {
	case "refused":
		r.refused(whole, label)
		fmt.Println(strings.Join(r.table, "\n"))
		return
	case "mirror":
		r.mirror(whole, raw, label)
		fmt.Println(strings.Join(r.table, "\n"))
		fmt.Printf("faults summary: %d cases, %d passed, %d failed; records lost: %d\n", r.j.Count(), r.j.Passed(), r.j.Failed(), r.lost)
		r.j.Done()
		return
	}

	// Boot 1: fault-live.
	res1 := r.boot("vm-live", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-main", whole, true, ""), r.disk("fa-flaky", raw, true, ""), r.disk("fa-unplug", whole, true, "")},
		Append: "lm.live=" + label + " lmtest.scenario=fault-live"})
	rc1 := res1.Code
	mainDev, up := diskField(r.f("disks"), "main"), diskField(r.f("disks"), "unplug")
	r.need(rc1 == 0 && r.f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s", rc1, r.f("scenario_rc")))
	r.recs("pre", false)
	r.row("boot-live", "boots, writer runs, records intact", fmt.Sprintf("rc=%d", rc1))

	r.need(r.f("sig_prehot_sent") != "", "no step-start tune-recovery seen")
	r.abort("sig_prehot", 130, mainDev)
	r.row("4-sigint-prehot", "130, target out, live leg only", r.f("sig_prehot_rc")+" "+r.f("sig_prehot_shape"))
	vm.Logf("sig_prehot: stopped at: %s", r.f("sig_prehot_warnings"))

	r.need(r.f("sig_recover_sent") != "", "recovery never reached 20%")
	r.abort("sig_recover", 130, mainDev)
	r.row("4-sigterm-recover", "130, target out, live leg only", r.f("sig_recover_rc")+" "+r.f("sig_recover_shape"))

	first := r.f("two_pid")
	running := "another livemigrate is running (pid " + first + ")"
	r.need(r.f("two_same_rc") == "5", "second migrate (same target): exit '"+r.f("two_same_rc")+"', want 5: "+r.f("two_same_err"))
	r.need(strings.Contains(r.f("two_same_err"), running), "second migrate does not name pid "+first+": '"+r.f("two_same_err")+"'")
	// Another target while the first runs: also 5, naming the running one.
	other := r.f("two_other_rc")
	r.need(other == "5" && strings.Contains(r.f("two_other_err"), running), "second migrate (other target): exit '"+other+"', want 5 naming pid "+first+": "+r.f("two_other_err"))
	r.need(r.f("two_release_rc") == "5" && strings.Contains(r.f("two_release_err"), running), "release: exit '"+r.f("two_release_rc")+"': "+r.f("two_release_err"))
	r.need(vm.Glob(r.f("two_status_during"), "rc=0*copying*"), "status during: '"+r.f("two_status_during")+"'")
	goesOn := false
	if m := regexp.MustCompile(`alive=yes pct_before=([0-9]+) pct_after=([0-9]+)`).FindStringSubmatch(r.f("two_first")); m != nil {
		goesOn = atoi(m[2]) > atoi(m[1])
	}
	r.need(goesOn, "the first did not go on: '"+r.f("two_first")+"'")
	r.abort("two", 130, mainDev)
	r.row("7-two-at-once", "5 (pid), 5 other, release 5; first 130", r.f("two_same_rc")+"/"+other+"/"+r.f("two_release_rc")+"; "+r.f("two_rc"))

	r.need(strings.HasSuffix(r.f("flaky_sent"), "rc=0"), "table swap: '"+r.f("flaky_sent")+"'")
	r.abort("flaky", 20, "/dev/mapper/flaky")
	r.need(strings.Contains(r.f("flaky_err"), "md failed") || strings.Contains(r.f("flaky_err"), "dropped"), "stderr does not say md failed the device: '"+r.f("flaky_err")+"'")
	r.need(r.f("flaky_remove_rc") == "0", "dmsetup remove flaky afterwards: rc="+r.f("flaky_remove_rc")+" (still held?)")
	r.row("1-target-eio", "20, names /dev/mapper/flaky, live leg only", r.f("flaky_rc")+" "+r.f("flaky_shape"))

	qlog, _ := os.ReadFile(filepath.Join(res1.Dir, "qmp.log"))
	r.need(strings.HasPrefix(r.f("unplug_gone"), "yes"), "the disk did not disappear: '"+r.f("unplug_gone")+"' (qmp: "+strings.ReplaceAll(string(qlog), "\n", " ")+")")
	r.abort("unplug", 20, up)
	r.need(r.f("unplug_cleanup") == "", r.f("unplug_cleanup"))
	r.row("2-target-unplug", "20, names "+up+", live leg only", r.f("unplug_rc")+" "+r.f("unplug_shape"))

	r.need(r.f("kill9_sent") != "", "recovery never reached 20%")
	r.need(r.f("kill9_rc") == "137", "killed migrate: exit '"+r.f("kill9_rc")+"'")
	r.need(regexp.MustCompile(`live leg.*in sync`).MatchString(r.f("kill9_legs")) && regexp.MustCompile(`target (copying|in sync)`).MatchString(r.f("kill9_legs")), "status after SIGKILL: '"+r.f("kill9_legs")+"'")
	r.need(vm.Glob(r.f("kill9_dry"), "rc=0*Continuing:*"), "dry-run after SIGKILL: '"+r.f("kill9_dry")+"'")
	r.need(r.f("kill9_again_plan") != "", "the plan of the second run has no 'resume'")
	r.recs("kill9", false)
	r.done("kill9_again")
	r.row("5-sigkill-rerun", "status copying; rerun continues, 0", r.f("kill9_rc")+"; "+r.f("kill9_again_rc")+" "+r.f("kill9_again_shape"))
	vm.Logf("kill9: plan of the rerun: %s", r.f("kill9_again_plan"))

	r.need(strings.Contains(r.f("kill9_again_sent"), "remove-live-leg"), "the signal was not sent on step-done remove-live-leg")
	r.need(r.f("kill9_again_rc") == "0" && strings.Contains(r.f("kill9_again_warnings"), "after the point of no return"), "exit '"+r.f("kill9_again_rc")+"', warnings '"+r.f("kill9_again_warnings")+"'")
	r.row("4-sigint-after-drop", "0, warning, complete migration", r.f("kill9_again_rc")+" "+r.f("kill9_again_shape"))
	// md's speed limits after a killed run and a resumed one.
	pre := reMin.ReplaceAllString(r.f("pre_md"), "min=")
	now := reMin.ReplaceAllString(r.f("kill9_again_md"), "min=")
	r.need(pre == now, "after the resumed run md keeps '"+now+"' (before the first run: '"+pre+"')")
	r.row("5-speed-restored", "limits as before the killed run", now)
	r.recs("final", true)
	r.row("live-final-records", "all records intact on the target", reRecords.FindString(r.f("final_records")))

	// Boot 2: fault-cow, then the power cut.
	res2 := r.boot("vm-cow", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-main", whole, true, ""), r.disk("fa-pc", whole, true, "")},
		Append: fmt.Sprintf("lm.live=%s lm.cowsize=%dM lmtest.scenario=fault-cow lmtest.fill=24", label, cowWarnMiB)})
	F2 := r.F
	r.need(strings.HasPrefix(r.f("cowwarn_early"), "0 warnings"), "a COW warning before anything was written: "+r.f("cowwarn_early"))
	r.need(vm.Glob(r.f("cowwarn_warnings"), "*copy-on-write space is getting low*Ctrl+C*"), "no COW warning event: '"+r.f("cowwarn_warnings")+"'")
	r.abort("cowwarn", 130, diskField(r.f("disks"), "main"))
	r.need(!strings.Contains(r.f("cowwarn_cow"), "Invalid") && !strings.Contains(r.f("cowwarn_cow"), "Overflow"), "snapshot: "+r.f("cowwarn_cow"))
	r.row("3-cow-warn-sigint", "warning event, then SIGINT: 130", r.f("cowwarn_rc")+" "+r.f("cowwarn_shape"))
	vm.Logf("cowwarn: %s; %s; %s", r.f("cowwarn_cowplan"), r.f("cowwarn_early"), r.f("cowwarn_sent"))

	// The power cut's disk, on the host: a GPT, but nothing that boots.
	pcimg := filepath.Join(r.out, "fa-pc.img")
	_, cutErr := os.Stat(filepath.Join(res2.Dir, "powercut"))
	r.need(cutErr == nil, fmt.Sprintf("no power cut: %s (boot rc=%d)", r.f("powercut_missed"), res2.Code))
	r.need(strings.Contains(r.f("powercut_events"), "recover"), "not cut during the copy: '"+r.f("powercut_events")+"'")
	r.recs("powercut", false)
	bootcode, espType := r.cutDisk(pcimg)
	pcWhy := r.why
	r.why = nil
	esp := espType
	if esp == "" {
		esp = "none"
	}
	pcGot := fmt.Sprintf("cut at %s%%, boot code %dB, ESP '%s'", F2.Get("powercut_now"), bootcode, esp)

	// Boot 3: the half-copied disk alone, root=UUID= (throwaway snapshot):
	// reported, not judged.
	res3 := r.boot("vm-halfboot", &vm.Machine{Timeout: 240 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-pc", 0, false, "snapshot=on")},
		Append: "root=UUID=" + p.Env["ROOTFS_UUID"] + " lm.fsck=1 lm.wait=20 lmtest.scenario=fault-halfboot"})
	con3, _ := os.ReadFile(filepath.Join(res3.Dir, "console.log"))
	fatal := firstMatch(`(?m)^(.*lm-initrd: FATAL.*?)\r?$`, string(con3))
	if fatal == "" {
		fatal = "no initramfs failure"
	}
	var vda3 []string
	for _, l := range strings.Split(strings.ReplaceAll(string(con3), "\r", ""), "\n") {
		if strings.Contains(l, "EXT4-fs (vda3)") {
			vda3 = append(vda3, regexp.MustCompile(`^\[[ 0-9.]*\] `).ReplaceAllString(l, ""))
		}
	}
	half := fmt.Sprintf("boot rc=%d; %s; %d EXT4-fs errors on the console; %s; root_dev=%s fsck_rc=%s (%s); initrd_fail='%s'; scenario_start='%s' scenario_rc='%s'; root='%s'; records='%s'",
		res3.Code, fatal, bytes.Count(con3, []byte("EXT4-fs error")), strings.Join(vda3, " "), r.f("root_dev"), r.f("fsck_rc"), r.f("fsck"),
		r.f("initrd_fail"), r.f("scenario_start"), r.f("scenario_rc"), r.f("halfboot_root"), r.f("halfboot_records"))
	vm.Logf("half-copied disk booted with root=UUID=: %s", half)

	// Boot 3b: the half-copied disk alone through the firmware (SeaBIOS,
	// no kernel given), as a machine would: nothing of it may run.
	res3b, fwFacts, fwConsole := r.bootsNothing("vm-halfboot-fw", "fa-pc")
	vm.Logf("half-copied disk through the firmware: boot rc=%d (124: nothing booted, the 45 s ran out), %d facts, %d kernel banners", res3b.Code, fwFacts, fwConsole)

	// Boot 4: fault-cowfull, with the half-copied disk attached.
	pcSHA4 := vm.SHA256(pcimg) // nothing in boot 4 may write it
	res4 := r.boot("vm-cowfull", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-pc", 0, false, "")},
		Append: "lm.live=" + label + " lm.cowsize=96M lmtest.scenario=fault-cowfull lmtest.fill=40"})
	r.why = pcWhy
	r.need(res4.Code == 0, fmt.Sprintf("fault-cowfull: boot rc=%d", res4.Code))
	pcdev := diskField(r.f("disks"), "pc")
	r.need(r.f("halfdisk_in_status") == "0", "status mentions "+pcdev+": "+r.f("halfdisk_status"))
	r.need(strings.TrimSpace(r.f("halfdisk_holders")) == "", pcdev+" is held by "+r.f("halfdisk_holders"))
	r.need(r.f("halfdisk_shape") == "live-only", "array is '"+r.f("halfdisk_shape")+"'")
	r.need(r.f("halfdisk_dry_rc") == "0", "dry-run exit '"+r.f("halfdisk_dry_rc")+"': "+r.f("halfdisk_dry"))
	r.need(vm.Glob(r.f("halfdisk_dry"), "*This destroys*partition table of "+pcdev+"*"), "dry-run does not plan to overwrite it: '"+r.f("halfdisk_dry")+"'")
	r.need(!strings.Contains(r.f("halfdisk_dry"), "Continuing"), "dry-run would continue the cut migration: '"+r.f("halfdisk_dry")+"'")
	r.need(F2.Get("powercut_plan_finalize") == "1", "the cut migration did not plan finalize (it must run as a user would)")
	r.need(res3b.Code == 124 && fwFacts == 0 && fwConsole == 0, fmt.Sprintf("the half-copied disk booted through the firmware: boot rc=%d, %d facts, %d kernel banners", res3b.Code, fwFacts, fwConsole))
	r.row("6-power-cut", "finalize on: boots nothing, not an install", pcGot+"; dry-run "+r.f("halfdisk_dry_rc"))

	errMsg := r.f("cowfull_err")
	r.need(r.f("cowfull_rc") == "16", "exit '"+r.f("cowfull_rc")+"', want 16: "+errMsg)
	r.need(regexp.MustCompile(`only [0-9.]+ [KMG]iB of copy-on-write space left, the migration needs about [0-9.]+ [KMG]iB`).MatchString(errMsg), "message does not say what is left and needed: '"+errMsg+"'")
	r.need(!strings.Contains(errMsg, "delete files"), "the hint suggests deleting files, which frees no COW: '"+errMsg+"'")
	r.need(strings.TrimSpace(r.f("cowfull_pc_holders")) == "", pcdev+" held by "+r.f("cowfull_pc_holders")+" after the refusal")
	r.liveOnly("cowfull")
	r.recs("cowfull", false)
	r.recs("final", true)
	// Like the refusal suite: every disk checksummed around the refusal in
	// the guest, and the image on the host across the whole boot.
	r.need(strings.HasPrefix(r.f("cowfull_sums_same"), "yes:"), "a disk changed across the refusal (guest sha256): "+joinLines(r.F.Lines("cowfull_sums_before"))+"-> "+joinLines(r.F.Lines("cowfull_sums_after")))
	r.need(vm.SHA256(pcimg) == pcSHA4, pcimg+" changed during the boot (host sha256)")
	r.row("3-cow-refuse", "16, says left and needed", r.f("cowfull_rc")+" "+r.f("cowfull_shape"))
	vm.Logf("cowfull: %s; stderr: %s", r.f("cowfull_headroom"), errMsg)
	vm.Logf("cowfull: after deleting the fill file (as the hint says): %s; dry-run: %s", r.f("cowfull_after_rm"), r.f("cowfull_after_rm_dry"))

	// Boots 5-7: signals during grow. grow-filesystem takes milliseconds
	// here: its signal may land in the release, the last step. The third
	// boot signals the release itself.
	for _, g := range []struct{ sig, at, name string }{
		{"INT", "grow-array", "sig_grow_array"},
		{"TERM", "grow-filesystem", "sig_grow_fs"},
		{"HUP", "release-live-stack", "sig_release"},
	} {
		res := r.boot("vm-"+g.name, &vm.Machine{CDROM: p.ISO, Timeout: 480 * time.Second,
			Disks:  []vm.Disk{r.disk("fa-main", whole, false, "")},
			Append: fmt.Sprintf("lm.live=%s lmtest.scenario=fault-grow lmtest.sig=%s lmtest.at=%s lmtest.case=%s", label, g.sig, g.at, g.name)})
		r.need(res.Code == 0, fmt.Sprintf("boot rc=%d", res.Code))
		r.done(g.name)
		r.recs("final", true)
		warn := strings.Join(regexp.MustCompile(`warning:[a-z-]*`).FindAllString(r.f(g.name+"_events"), -1), " ")
		if warn == "" {
			warn = "no-warning"
		}
		r.row("4-sig"+strings.ToLower(g.sig)+"-"+g.at, "0, warning, complete migration", r.f(g.name+"_rc")+" "+r.f(g.name+"_shape")+" "+warn)
	}

	// Boot 8: fault-resume on md7 built by mdadm (live leg in slot 1). The
	// target is partition 3 of a GPT disk whose partitions 1 and 2 hold
	// random data: their checksums must not change, whatever is asked for.
	frimg := filepath.Join(r.out, "fr-gpt.img")
	must(t, vm.Sparse(frimg, rootfs+128*mib))
	const linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	s32 := int64(32 * mib / 512)
	_, err := vm.Host(fmt.Sprintf("label: gpt\nstart=2048, size=%d, type=%s, name=data1\nstart=%d, size=%d, type=%s, name=data2\nstart=%d, type=%s, name=root\n",
		s32, linux, 2048+s32, s32, linux, 2048+2*s32, linux), "sfdisk", "-q", frimg)
	must(t, err)
	must(t, vm.WriteAt(frimg, mib, vm.RandomBytes(64*mib)))
	frBefore := gptSums(frimg)
	res8 := r.boot("vm-resume", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fr-gpt", 0, true, "")},
		Append: "lm.live=" + label + " lm.stack=tools lm.md=/dev/md7 lm.mdorder=missing-first lmtest.scenario=fault-resume"})
	frAfter := gptSums(frimg)
	frpart, frdisk := diskField(r.f("disks"), "part"), diskField(r.f("disks"), "gpt")
	vm.Logf("fault-resume: %s; partitions 1-2 and GPT before: %s; after: %s", r.f("disks"), frBefore, frAfter)
	r.need(res8.Code == 0 && r.f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s", res8.Code, r.f("scenario_rc")))
	r.need(vm.Glob(r.f("disks"), "*md=/dev/md7*live_slot=1*"), "not on mdadm's md7 with the live leg in slot 1: '"+r.f("disks")+"'")
	r.need(r.f("kill9_sent") != "" && r.f("kill9_rc") == "137", "kill9: sent '"+r.f("kill9_sent")+"', exit '"+r.f("kill9_rc")+"'")
	r.recs("kill9", false)
	r.row("5-kill9-md7", "SIGKILL mid-copy on mdadm's md7", r.f("kill9_rc")+" "+r.f("kill9_sent"))
	for _, c := range []string{"bydisk_dry", "bydisk"} {
		r.need(r.f(c+"_rc") == "17", c+": exit '"+r.f(c+"_rc")+"', want 17")
	}
	r.need(vm.Glob(r.f("bydisk_err"), "*a migration into the partition "+frpart+" is under way*--target "+frpart+"*"), "bydisk: stderr does not name "+frpart+" and what to type: '"+r.f("bydisk_err")+"'")
	r.need(strings.Contains(r.f("bydisk_dry"), "--target "+frpart), "bydisk dry run: '"+r.f("bydisk_dry")+"'")
	r.need(!strings.Contains(r.f("bydisk_events"), "step-start"), "bydisk ran steps: "+r.f("bydisk_events"))
	r.need(frBefore == frAfter, "partitions 1-2 or the GPT of "+frdisk+" changed: before "+frBefore+", after "+frAfter)
	r.need(strings.Contains(r.f("wiz_targets"), "cannot be used: a migration into the partition "+frpart+" is under way"), "the wizard does not grey "+frdisk+" out with that reason: '"+r.f("wiz_targets")+"'")
	r.recs("bydisk", false)
	sums := "same-sums"
	if frBefore != frAfter {
		sums = "CHANGED"
	}
	r.row("1-continue-by-disk", "17 naming "+frpart+"; wizard greys it; sums same", r.f("bydisk_dry_rc")+"/"+r.f("bydisk_rc")+" "+sums)
	r.need(vm.Glob(r.f("failed_state"), "rc=0*(faulty*"), "the live leg was not failed by hand: '"+r.f("failed_state")+"'")
	r.need(strings.Contains(r.f("resume_plan"), "live leg was already failed"), "the rerun's plan does not say it continues from a failed live leg: '"+r.f("resume_plan")+"'")
	r.need(r.f("resume_rc") == "0", "rerun: exit '"+r.f("resume_rc")+"' (141 is SIGPIPE): "+r.f("resume_err"))
	r.need(r.f("resume_sent") != "", "SIGINT not sent: the reader never saw remove-live-leg (events "+r.f("resume_events")+")")
	r.need(r.f("resume_shape") == "migrated:"+frpart, "array is '"+r.f("resume_shape")+"'")
	r.need(strings.HasPrefix(r.f("resume_status"), "rc=0 Live stack: none"), "status '"+r.f("resume_status")+"'")
	r.limits("resume")
	r.recs("resume", false)
	r.recs("final", true)
	r.row("3-rerun-failed-leg", "0 from 'live leg failed, not removed'", r.f("resume_rc")+" "+r.f("resume_shape"))
	r.need(r.f("resume_rc") == "0" && r.f("resume_sent") != "", "exit '"+r.f("resume_rc")+"' with the reader gone and SIGINT '"+r.f("resume_sent")+"'")
	r.row("4-sigpipe-sigint", "reader gone + SIGINT past no return: 0", r.f("resume_rc"))

	// Boot 9: fault-stuck. / is remounted read-only mid-copy, so growing
	// the filesystem fails for real past the point of no return: the later
	// steps must still run, exit 21 must list what is left, and the rerun
	// (once / is writable again) must do only that and exit 0.
	res9 := r.boot("vm-stuck", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-main", whole, true, "")},
		Append: "lm.live=" + label + " lmtest.scenario=fault-stuck"})
	r.need(res9.Code == 0 && r.f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s", res9.Code, r.f("scenario_rc")))
	r.need(r.f("stuck_remount") == "rc=0 ro", "/ was not remounted read-only: '"+r.f("stuck_remount")+"'")
	r.need(r.f("stuck_rc") == "21", "exit '"+r.f("stuck_rc")+"', want 21: "+r.f("stuck_err"))
	r.need(r.f("stuck_failed") == "grow-filesystem ", "failed steps '"+r.f("stuck_failed")+"', want grow-filesystem alone")
	r.need(r.f("stuck_left") == `"grow-filesystem"`, "error event lists left '"+r.f("stuck_left")+"'")
	r.need(strings.Contains(r.f("stuck_err"), "grow-filesystem") && strings.Contains(r.f("stuck_err"), "run the same migrate command again"),
		"stderr does not name the undone step and what to do: '"+r.f("stuck_err")+"'")
	r.need(vm.Glob(r.f("stuck_events"), "*step-done:restore-recovery-speed*step-done:release-live-stack*"), "the steps after the failed one did not run: '"+r.f("stuck_events")+"'")
	r.migrated("stuck")
	r.limits("stuck")
	r.recs("stuck", true)
	r.recs("final", true)
	fsBefore, arr := product(r.f("stuck_fs_before")), atoi(r.f("stuck_array_bytes"))
	r.need(fsBefore > 0 && fsBefore < arr-64*mib, fmt.Sprintf("the filesystem (%d bytes) was grown anyway (array %d)", fsBefore, arr))
	r.row("4-grow-fails", "21, later steps run, left: grow-filesystem", r.f("stuck_rc")+" "+r.f("stuck_shape")+" left="+r.f("stuck_left"))
	r.need(r.f("again_remount") == "rc=0 rw", "/ not writable again: '"+r.f("again_remount")+"'")
	r.need(r.f("again_rc") == "0", "rerun: exit '"+r.f("again_rc")+"': "+r.f("again_err"))
	r.need(r.f("again_steps") == "grow-array grow-filesystem ", "rerun ran '"+r.f("again_steps")+"', want grow-array grow-filesystem")
	fsAfter, arr := product(r.f("again_fs_bytes")), atoi(r.f("again_array_bytes"))
	r.need(fsAfter > arr-64*mib && fsAfter <= arr, fmt.Sprintf("after the rerun the filesystem is %d bytes, the array %d", fsAfter, arr))
	r.migrated("again")
	r.row("4-grow-rerun", "rerun does only what was left: 0", fmt.Sprintf("%s fs=%dMiB/%dMiB", r.f("again_rc"), fsAfter/mib, arr/mib))
	vm.Logf("fault-stuck: stderr: %s; rerun result: %s", r.f("stuck_err"), r.f("again_fs"))

	r.refused(whole, label)
	r.mirror(whole, raw, label)

	r.table = append(r.table, fmt.Sprintf("%-18s %-44s %-28s %s", "4-finalize", "signal during finalize", "-", "not here (busybox root has no finalize): TestDebian/install-uefi-disk"))
	fmt.Printf("%-18s %-44s %-28s %s\n", "case", "expected", "got", "result")
	for _, l := range r.table {
		fmt.Println(l)
	}
	vm.Logf("half-copied disk, root=UUID= boot: %s", half)
	vm.Logf("whole run %.1f s; VMs in %s/vm-*", time.Since(t0).Seconds(), r.out)
	fmt.Printf("faults summary: %d cases, %d passed, %d failed; records lost: %d\n", r.j.Count(), r.j.Passed(), r.j.Failed(), r.lost)
	if r.lost != 0 {
		t.Errorf("%d records lost", r.lost)
	}
	r.j.Done()
}

// mirror is boot 11, fault-mirror: the run-time mirror (lm.stack=nohook,
// / on live-rw itself) stopped by a signal, by write errors and by an
// unplugged target, each back on its snapshot with every record; then
// SIGKILL mid-copy and the same command again, which continues the copy
// and migrates.
//
// Before it, boot 10 (fault-mirror-cut) cuts the power while the mirror
// copies a whole-disk install with finalize on; the half-copied disk is
// checked on the host, booted alone through the firmware, and attached to
// boot 11, where the fresh session must take it for a disk to overwrite.
func (r *faults) mirror(whole, raw int64, label string) {
	p := r.p
	r.mirrorBoots(whole, raw, true, func(name, scenario string, disks []vm.Disk) *vm.Result {
		return r.boot(name, &vm.Machine{CDROM: p.ISO, Timeout: 900 * time.Second, Disks: disks,
			Append: "lm.live=" + label + " lm.stack=nohook lmtest.scenario=" + scenario})
	})
}

// mirrorBoots runs the mirror's two boots on a medium whose / is live-rw
// itself: live boots it with the guest scenario and the disks (the facts
// in r.F afterwards); growFail as judgeMirror's.
func (r *faults) mirrorBoots(whole, raw int64, growFail bool, live func(name, scenario string, disks []vm.Disk) *vm.Result) {
	cut := live("vm-mirror-cut", "fault-mirror-cut", []vm.Disk{r.disk("fa-mpc", whole, true, "")})
	F10 := r.F
	_, cutErr := os.Stat(filepath.Join(cut.Dir, "powercut"))
	r.need(cutErr == nil, fmt.Sprintf("no power cut: %s (boot rc=%d)", r.f("powercut_missed"), cut.Code))
	r.need(strings.Contains(r.f("mcut_events"), "recover") && r.f("mcut_mshape") == "copying", "not cut during the copy: events '"+r.f("mcut_events")+"', "+r.f("mcut_mshape"))
	r.need(r.f("mcut_plan_finalize") == "1", "the cut migration did not plan finalize (it must run as a user would)")
	r.recs("mcut", false)
	mpc := filepath.Join(r.out, "fa-mpc.img")
	bootcode, esp := r.cutDisk(mpc)
	fw, fwFacts, fwBanners := r.bootsNothing("vm-mirror-halfboot-fw", "fa-mpc")
	r.need(fw.Code == 124 && fwFacts == 0 && fwBanners == 0, fmt.Sprintf("the half-copied disk booted through the firmware: boot rc=%d, %d facts, %d kernel banners", fw.Code, fwFacts, fwBanners))
	cutWhy := r.why
	r.why = nil
	if esp == "" {
		esp = "none"
	}
	cutGot := fmt.Sprintf("cut at %s%%, boot code %dB, ESP '%s'", F10.Get("powercut_now"), bootcode, esp)
	mpcSHA := vm.SHA256(mpc)

	res := live("vm-mirror", "fault-mirror", []vm.Disk{r.disk("fa-main", whole, true, ""), r.disk("fa-flaky", raw, true, ""), r.disk("fa-unplug", whole, true, ""), r.disk("fa-mpc", 0, false, "")})
	r.judgeMirror(res, growFail)

	// The power cut, judged with what the fresh session says of the disk.
	r.why = cutWhy
	mpcDev := diskField(r.f("disks"), "mpc")
	r.need(mpcDev != "" && r.f("mhalf_in_status") == "0", "status mentions "+mpcDev+": "+r.f("mhalf_status"))
	r.need(strings.TrimSpace(r.f("mhalf_holders")) == "", mpcDev+" is held by "+r.f("mhalf_holders"))
	r.need(r.f("mhalf_mshape") == "snapshot", "the fresh session's root is '"+r.f("mhalf_mshape")+"'")
	r.need(r.f("mhalf_dry_rc") == "0", "dry-run exit '"+r.f("mhalf_dry_rc")+"': "+r.f("mhalf_dry"))
	r.need(vm.Glob(r.f("mhalf_dry"), "*This destroys*partition table of "+mpcDev+"*"), "dry-run does not plan to overwrite it: '"+r.f("mhalf_dry")+"'")
	r.need(!strings.Contains(r.f("mhalf_dry"), "Continuing"), "dry-run would continue the cut migration: '"+r.f("mhalf_dry")+"'")
	r.need(vm.SHA256(mpc) == mpcSHA, mpc+" changed during boot 11 (host sha256): nothing may write the half-copied disk")
	r.row("m-power-cut", "finalize on: boots nothing, not an install", cutGot+"; dry-run "+r.f("mhalf_dry_rc"))
}

// judgeMirror judges the fault-mirror scenario's boot (busybox's boot 11,
// or a Debian medium's dracut as shipped): the m-* rows.
//
// growFail: the first rerun was made to fail at grow-filesystem (/
// remounted read-only; busybox only, see the scenario).
func (r *faults) judgeMirror(res *vm.Result, growFail bool) {
	mainDev, up := diskField(r.f("disks"), "main"), diskField(r.f("disks"), "unplug")
	r.need(res.Code == 0 && r.f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s", res.Code, r.f("scenario_rc")))
	r.need(r.f("pre_shape") == "snapshot", "before: '"+r.f("pre_shape")+"'")
	r.recs("pre", false)
	r.row("m-boot-nohook", "/ on live-rw, no array; writer runs", fmt.Sprintf("rc=%d %s", res.Code, r.f("pre_shape")))

	back := func(c string, code int, tgt string) {
		rc, err := r.f(c+"_rc"), r.f(c+"_err")
		r.need(rc == strconv.Itoa(code), fmt.Sprintf("%s: exit '%s', want %d", c, rc, code))
		r.need(strings.Contains(err, tgt), c+": stderr does not name "+tgt+": '"+err+"'")
		r.need(strings.Contains(err, "live session intact on its snapshot"), c+": stderr does not say the session is back on its snapshot: '"+err+"'")
		r.need(r.f(c+"_hung") == "", c+": "+r.f(c+"_hung"))
		r.need(r.f(c+"_mshape") == "snapshot", c+": afterwards '"+r.f(c+"_mshape")+"', want live-rw on its snapshot and no livemigrate-src")
		r.recs(c, false)
	}
	// A signal at the start of each step before the copy: back on the
	// snapshot, and the message says what the target holds.
	for _, c := range []struct{ name, step, row, holds string }{
		{"m_sigint_tune", "tune-recovery", "m-sigint-tune", "nothing was copied to " + mainDev},
		{"m_sighup_part", "partition", "m-sighup-partition", "nothing was copied to " + mainDev},
		{"m_sigint_insert", "insert-mirror", "m-sigint-insert", mainDev},
	} {
		r.need(r.f(c.name+"_sent") != "", "no step-start "+c.step+" seen")
		back(c.name, 130, "/dev/mapper/live-rw")
		r.need(strings.Contains(r.f(c.name+"_err"), c.holds), c.name+": stderr does not say '"+c.holds+"': '"+r.f(c.name+"_err")+"'")
		r.row(c.row, "130, back on the snapshot", r.f(c.name+"_rc")+" "+r.f(c.name+"_mshape"))
	}

	r.need(r.f("m_sigterm_sent") != "", "the copy never reached 20%")
	back("m_sigterm", 130, "/dev/mapper/live-rw")
	r.row("m-sigterm-copy", "130, back on the snapshot", r.f("m_sigterm_rc")+" "+r.f("m_sigterm_mshape"))

	r.need(strings.HasSuffix(r.f("m_flaky_sent"), "rc=0"), "table swap: '"+r.f("m_flaky_sent")+"'")
	back("m_flaky", 20, "/dev/mapper/flaky")
	r.need(strings.Contains(r.f("m_flaky_err"), "dm-mirror marked /dev/mapper/flaky failed"), "stderr does not say dm-mirror failed the target: '"+r.f("m_flaky_err")+"'")
	r.need(r.f("m_flaky_remove_rc") == "0", "dmsetup remove flaky afterwards: rc="+r.f("m_flaky_remove_rc")+" (still held?)")
	r.row("m-target-eio", "20, names the target, snapshot", r.f("m_flaky_rc")+" "+r.f("m_flaky_mshape"))
	vm.Logf("m_flaky: %s; kernel: %s", r.f("m_flaky_err"), r.f("m_flaky_dmesg"))

	r.need(strings.HasPrefix(r.f("m_unplug_gone"), "gone=true"), "the disk did not disappear: '"+r.f("m_unplug_gone")+"'")
	back("m_unplug", 20, up)
	r.row("m-target-unplug", "20, names the target, snapshot", r.f("m_unplug_rc")+" "+r.f("m_unplug_mshape"))
	vm.Logf("m_unplug: %s; kernel: %s", r.f("m_unplug_err"), r.f("m_unplug_dmesg"))

	r.need(r.f("m_kill9_sent") != "", "the copy never reached 20%")
	r.need(r.f("m_kill9_rc") == "137", "killed migrate: exit '"+r.f("m_kill9_rc")+"'")
	r.need(r.f("m_kill9_mshape") == "copying", "after SIGKILL: '"+r.f("m_kill9_mshape")+"', want the mirror still copying")
	r.need(vm.Glob(r.f("m_kill9_status"), "rc=0*dm-mirror of the live snapshot*Copy:*"), "status after SIGKILL: '"+r.f("m_kill9_status")+"'")
	r.need(vm.Glob(r.f("m_kill9_dry"), "rc=0*How: a mirror*Continuing:*already being copied*"), "dry-run after SIGKILL: '"+r.f("m_kill9_dry")+"'")
	r.recs("m_kill9", false)
	r.need(r.f("m_kill9_again_plan") != "", "the plan of the rerun has no 'resume'")
	r.need(!strings.Contains(r.f("m_kill9_again_events"), "insert-mirror"), "the rerun inserted the mirror again: '"+r.f("m_kill9_again_events")+"'")
	r.need(r.f("m_kill9_again_mshape") == "migrated:"+mainDev+"3", "after the rerun: '"+r.f("m_kill9_again_mshape")+"', want live-rw a linear map of "+mainDev+"3")
	r.recs("m_kill9_again", true)
	r.row("m-sigkill-rerun", "137, status copying; rerun continues past the switch", r.f("m_kill9_rc")+"; "+r.f("m_kill9_again_rc")+" "+r.f("m_kill9_again_mshape"))
	r.need(r.f("m_kill9_again_sent") != "", "no step-start switch-to-target seen in the rerun")
	r.need(strings.Contains(r.f("m_kill9_again_warnings"), "after the point of no return"), "the SIGINT at switch-to-target was not noted in a warning: '"+r.f("m_kill9_again_warnings")+"'")
	r.row("m-sigint-switch", "noted, the switch goes on", r.f("m_kill9_again_sent")+"; "+r.f("m_kill9_again_mshape"))
	fsBefore, fsAfter, dev := product(r.f("m_kill9_again_fs_bytes")), product(r.f("m_again_fs_bytes")), atoi(r.f("m_again_dev_bytes"))
	if growFail {
		// The rerun's grow failed (/ read-only): 21, grow left; the same
		// command once more does only that (and the release, idempotent).
		r.need(r.f("m_kill9_again_remount") == "rc=0 ro", "/ not remounted read-only: '"+r.f("m_kill9_again_remount")+"'")
		r.need(r.f("m_kill9_again_rc") == "21" && r.f("m_kill9_again_left") == `"grow-filesystem"`, "grow on a read-only /: exit '"+r.f("m_kill9_again_rc")+"', left '"+r.f("m_kill9_again_left")+"': "+r.f("m_kill9_again_err"))
		r.need(strings.Contains(r.f("m_kill9_again_err"), "run the same migrate command again"), "stderr does not say what finishes it: '"+r.f("m_kill9_again_err")+"'")
		r.row("m-grow-fails", "21 past the switch, left: grow-filesystem", r.f("m_kill9_again_rc")+" left="+r.f("m_kill9_again_left"))
		r.need(r.f("m_again_remount") == "rc=0 rw", "/ not writable again: '"+r.f("m_again_remount")+"'")
		r.need(fsBefore > 0 && fsBefore < dev-64*mib, fmt.Sprintf("filesystem %d bytes before the last rerun, live-rw %d: grown already", fsBefore, dev))
	} else {
		r.need(r.f("m_kill9_again_rc") == "0", "the rerun: exit '"+r.f("m_kill9_again_rc")+"': "+r.f("m_kill9_again_err"))
		r.need(fsBefore > dev-64*mib && fsBefore <= dev, fmt.Sprintf("filesystem %d bytes after the rerun, live-rw %d", fsBefore, dev))
		r.row("m-rerun-finishes", "the rerun finishes: 0, grown", fmt.Sprintf("%s fs=%dMiB/%dMiB", r.f("m_kill9_again_rc"), fsBefore/mib, dev/mib))
	}
	r.need(r.f("m_again_rc") == "0", "the last rerun: exit '"+r.f("m_again_rc")+"': "+r.f("m_again_err"))
	r.need(r.f("m_again_sent") != "", "no step-start grow-filesystem seen in the last rerun")
	r.need(strings.Contains(r.f("m_again_warnings"), "after the point of no return"), "the SIGINT during grow-filesystem was not noted in a warning: '"+r.f("m_again_warnings")+"'")
	r.need(vm.Glob(r.f("m_again_plan"), "*already holds / alone*"), "the last rerun's plan: '"+r.f("m_again_plan")+"'")
	r.need(r.f("m_again_steps") == "grow-filesystem release-live-stack ", "the last rerun ran '"+r.f("m_again_steps")+"', want grow-filesystem release-live-stack")
	r.need(r.f("m_again_sent_release-live-stack") != "", "no step-start release-live-stack seen in the last rerun (the SIGHUP was not sent)")
	r.need(strings.Contains(r.f("m_again_events"), "step-done:release-live-stack"), "the release did not finish after the SIGHUP: '"+r.f("m_again_events")+"'")
	r.need(fsAfter > dev-64*mib && fsAfter <= dev, fmt.Sprintf("filesystem %d bytes after the last rerun, live-rw %d", fsAfter, dev))
	r.row("m-grow-rerun", "only what was left, INT and HUP noted: 0, grown", fmt.Sprintf("%s fs=%dMiB/%dMiB", r.f("m_again_rc"), fsAfter/mib, dev/mib))
	r.need(regexp.MustCompile(`^live-rw\s+\([0-9]+:[0-9]+\)\s*$`).MatchString(r.f("post_dm")), "dm devices at the end: '"+r.f("post_dm")+"', want live-rw alone")
	r.recs("final", true)
	r.row("m-final-records", "all records intact", reRecords.FindString(r.f("final_records")))
}

// partitions maps partition number to [start, size] in bytes (sfdisk -d).
// refused is boot 10, fault-refused. The target fails for real between the
// engine's in-sync check and its failing of the live leg: the live leg
// is then the last working one, failing it must be refused, and the
// run must abort with the live session intact and writable. A rerun of
// the same command then migrates.
func (r *faults) refused(whole int64, label string) {
	p := r.p
	res10 := r.boot("vm-refused", &vm.Machine{CDROM: p.ISO, Timeout: 600 * time.Second,
		Disks:  []vm.Disk{r.disk("fa-main", whole, true, "")},
		Append: "lm.live=" + label + " lmtest.scenario=fault-refused"})
	r.need(res10.Code == 0 && r.f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s", res10.Code, r.f("scenario_rc")))
	r.need(vm.Glob(r.f("refused_target"), "* failed by hand (write faulty: <nil>), now faulty*"), "the target was not failed before the live leg: '"+r.f("refused_target")+"'")
	r.abort("refused", 20, "last in-sync leg")
	r.need(r.f("refused_write") == "ok", "/ refuses writes after the refused fail: '"+r.f("refused_write")+"'")
	r.need(!strings.Contains(r.f("refused_events"), "step-done:remove-live-leg"), "the live leg was removed: '"+r.f("refused_events")+"'")
	r.row("3-refused-fail", "target fails before live leg: 20, intact", r.f("refused_rc")+" "+r.f("refused_shape")+" write="+r.f("refused_write"))
	r.need(r.f("again_rc") == "0", "rerun after the refused fail: exit '"+r.f("again_rc")+"': "+r.f("again_err"))
	r.migrated("again")
	r.limits("again")
	r.recs("final", true)
	r.row("3-refused-rerun", "rerun migrates: 0", r.f("again_rc")+" "+r.f("again_shape"))
	vm.Logf("fault-refused: target %s; stderr: %s; kernel: %s", r.f("refused_target"), r.f("refused_err"), r.f("refused_dmesg"))
}

func partitions(dump string) map[int][2]int64 {
	out := map[int][2]int64{}
	re := regexp.MustCompile(`(?m)^\S*?([0-9]+) *: *start= *([0-9]+), *size= *([0-9]+)`)
	for _, m := range re.FindAllStringSubmatch(dump, -1) {
		n, _ := strconv.Atoi(m[1])
		out[n] = [2]int64{atoi(m[2]) * 512, atoi(m[3]) * 512}
	}
	return out
}

// gptSums: sha256 (16 hex digits) of partitions 1 and 2 (MiB 1-33, 33-65)
// and of the first MiB (MBR + GPT).
func gptSums(img string) string {
	b, _ := os.ReadFile(img)
	sum := func(off, n int64) string {
		end := min(off+n, int64(len(b)))
		h := sha256.Sum256(b[min(off, end):end])
		return hex.EncodeToString(h[:])[:16]
	}
	return fmt.Sprintf("p1=%s p2=%s head=%s", sum(mib, 32*mib), sum(33*mib, 32*mib), sum(0, mib))
}

func readFile(path string) string { b, _ := os.ReadFile(path); return string(b) }

// runOut runs a host tool and returns its stdout and stderr together.
func runOut(name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := execCommand(name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// product is the value of "A*B" (statfs's blocks times block size, as the
// guest reports them), 0 when it is not that.
func product(s string) int64 {
	a, b, ok := strings.Cut(s, "*")
	if !ok {
		return 0
	}
	return atoi(a) * atoi(b)
}
