package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/mdraid"
	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioMigrate: the end-to-end proof, live side. While lmtest writer
// appends fsync'ed records to a file on / (the md array), run
// `livemigrate migrate --target TARGET --yes --json` and keep writing a
// little after it returns. Reports how many records were acknowledged
// (acked=N): the verify scenario checks them after booting TARGET alone.
// Also reports:
//
//   - the target's raw sequential write speed, measured before the
//     migration in this same guest, as the yardstick for md's recovery speed;
//
//   - mdadm --detail against livemigrate status, before, while md copies,
//     and after;
//
//   - data written in the live session (it must survive onto the target);
//
//   - memory before and after, and whether the live stack is gone.
//
//     lmtest.target=DEV  (default /dev/vda)   lmtest.speed=fast|gentle
//     lmtest.finalize=1  (default: --no-finalize); with it lmtest.hostname=NAME
//     and lmtest.password=WORD (a --password-file)
//     lmtest.signal_finalize=SIG  SIG to migrate's process group once finalize
//     rebuilds the initramfs, as Ctrl+C at a terminal does
//     lmtest.ui=tui      the wizard instead of the CLI, driven in tmux with the
//     same choices (guest.TUI); no JSON events then, but its
//     screens (tui_options, tui_review, tui_final)
//     lmtest.psdump=N    (debugging) every N seconds, the processes on the console
func scenarioMigrate() int { return runMigrate().status }

// migrateRun is what the migrate scenario ran, for the Debian scenario
// that frames it (and may run the same command again).
type migrateRun struct {
	target, speed, md string
	fin               []string // the finalize flags given to migrate
	rc                int      // migrate's (or the wizard's) exit status
	status            int      // the scenario's
}

func runMigrate() migrateRun {
	target := g.Cmdline("lmtest.target", "/dev/vda")
	speed := g.Cmdline("lmtest.speed", "fast")
	md := g.RootDevice()
	run := migrateRun{target: target, speed: speed, md: md, rc: -1, status: 1}

	st := g.OnConsole("livemigrate", "status")
	g.Fact("pre_status_rc", strconv.Itoa(st))
	// What packs rootfs.img on the medium (squashfs, or EROFS).
	for _, m := range g.Mounts() {
		if m.Target == "/run/initramfs/squashfs" {
			g.Fact("pre_container", m.FSType)
		}
	}
	g.Fact("pre_mdcompare", selfLine("mdcompare", "--md", md))

	// The yardstick: raw O_DIRECT sequential writes to the (still blank)
	// target. And how fast the source reads: the live snapshot over loop
	// over squashfs; the first read fills the page cache of the lower
	// layers, as md's would.
	g.Fact("raw", selfLine("rawwrite", "--dev", target, "--size", "128M"))
	g.Fact("src_read", selfLine("rawread", "--dev", "/dev/mapper/live-rw", "--size", "128M"))
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)

	// Something the user did in the live session: it lands in the RAM COW
	// now and must be on the target after the next boot.
	writeRandom("/root/session-data", 16<<20)
	syscall.Sync()
	g.Fact("session_sha", sha256File("/root/session-data"))
	g.Fact("pre_cow", dmAll("status", "live-rw"))
	// The COW device (5th word of the snapshot table: MAJ:MIN), if zram.
	cowdev := ""
	if f := strings.Fields(g.DM("table", "live-rw").Run().Out()); len(f) >= 5 {
		if p, err := filepath.EvalSymlinks("/sys/dev/block/" + f[4]); err == nil {
			cowdev = filepath.Base(p)
		}
	}
	if strings.HasPrefix(cowdev, "zram") {
		g.Fact("pre_zram", zramState(cowdev))
	}
	g.Fact("pre_cow_kind", strings.Join(cowKinds(g.Sh("livemigrate", "status", "--json").Stdout), "\n"))
	g.OnConsole("livemigrate", "status")
	g.Fact("pre_mem", meminfo())

	exe, _ := os.Executable()
	wout, _ := os.Create("/run/writer.out")
	writer, err := g.Cmd{Args: []string{exe, "writer", "--file", "/root/records", "--acked", "/run/acked", "--interval", "20ms"},
		Stdout: wout, Combined: true}.Start()
	if err != nil {
		g.Say("migrate scenario: writer: %v", err)
		return run
	}
	time.Sleep(2 * time.Second)

	a0 := g.ReadInt("/run/acked")
	t0 := g.UptimeSeconds()
	// --no-finalize unless lmtest.finalize=1: the busybox root is no
	// distribution (no GRUB, no initramfs generator).
	finalize := g.Cmdline("lmtest.finalize", "0") == "1"
	hostname, password := g.Cmdline("lmtest.hostname", ""), g.Cmdline("lmtest.password", "")
	fin := []string{"--no-finalize"}
	if finalize {
		fin = nil
		if hostname != "" {
			fin = append(fin, "--hostname", hostname)
		}
		if password != "" {
			_ = os.WriteFile("/run/lmtest-password", []byte(password+"\n"), 0o600)
			fin = append(fin, "--password-file", "/run/lmtest-password")
		}
	}
	run.fin = fin
	sigfin := g.Cmdline("lmtest.signal_finalize", "")
	ui := g.Cmdline("lmtest.ui", "cli")

	done := make(chan int, 1)
	var mpid int
	// The copy as md's own counter shows it, sampled here every 50 ms
	// whatever livemigrate reports: its rate over the interval the kernel
	// was recovering is the referee for livemigrate's recovery figure.
	stopCopy := make(chan struct{})
	copyDone := make(chan string, 1)
	mirror := isMirrorRoot(md)
	live := strings.TrimPrefix(md, "/dev/mapper/")
	if mirror {
		go func() { copyDone <- sampleMirrorCopy(live, stopCopy) }()
	} else {
		go func() { copyDone <- sampleCopy(md, stopCopy) }()
	}
	if ui == "tui" {
		// The person at the wizard: the target (a whole disk is
		// partitioned, as the wizard proposes), the set-up choices, the
		// default fast speed (lmtest.speed is not asked for here), the
		// device name typed; then watch it to the Done screen and quit.
		// The result is the wizard's exit code, or 1 if the screens were
		// not as expected.
		_ = os.WriteFile("/run/migrate.jsonl", nil, 0o644)
		errf, _ := os.Create("/run/migrate.err")
		go func() {
			defer errf.Close()
			t := &g.TUI{Out: errf}
			r := 1
			err := t.Start()
			if err == nil {
				err = t.Choose(target)
			}
			if err == nil {
				err = t.Options(false, finalize, hostname, password)
			}
			if err == nil {
				err = t.Confirm(target)
			}
			if err == nil {
				err = t.Follow(1800)
			}
			if err == nil {
				if n, e := strconv.Atoi(t.Quit()); e == nil {
					r = n
				}
			} else {
				fmt.Fprintln(errf, err)
			}
			t.Kill()
			done <- r
		}()
	} else {
		out, _ := os.Create("/run/migrate.jsonl")
		errf, _ := os.Create("/run/migrate.err")
		args := append([]string{"livemigrate", "migrate", "--target", target, "--yes", "--json", "--speed", speed}, fin...)
		// With a signal to send, migrate leads a process group of its own
		// (setsid), which the signal goes to.
		p, err := g.Cmd{Args: args, Stdout: out, Stderr: errf, Setsid: sigfin != ""}.Start()
		if err != nil {
			g.Say("migrate scenario: %v", err)
			done <- 127
		} else {
			mpid = p.Process.Pid
			go func() { r := p.Wait().RC; out.Close(); errf.Close(); done <- r }()
		}
	}
	// Its steps and messages (not the progress ticks) on the console as
	// they happen: a migration that hangs shows where.
	stopTail := make(chan struct{})
	tailDone := make(chan struct{})
	go func() { tailEvents("/run/migrate.jsonl", g.Console, stopTail); close(tailDone) }()

	psdump, _ := strconv.Atoi(g.Cmdline("lmtest.psdump", "0"))
	// While md copies, compare mdadm's view with livemigrate's every half
	// second. A sample is taken twice before it counts as a mismatch: the
	// two tools read the kernel a moment apart, and recovery moves in
	// between.
	ok, bad, rec := 0, 0, 0
	rc := -1
	for ticks := 1; rc < 0; ticks++ {
		select {
		case rc = <-done:
			continue
		default:
		}
		if sigfin != "" && mpid != 0 && strings.Contains(g.Read("/run/migrate.jsonl"), `"message":"Build a regular initramfs without the live hooks…"`) {
			krc := 0
			if sig := unix.SignalNum("SIG" + strings.TrimPrefix(sigfin, "SIG")); sig == 0 {
				krc = 1
			} else if err := syscall.Kill(-mpid, sig); err != nil {
				krc = 1
			}
			g.Fact("finalize_signal", fmt.Sprintf("%s sent to process group %d during the initramfs rebuild (kill rc=%d)", sigfin, mpid, krc))
			sigfin = ""
		}
		if psdump > 0 && ticks%(psdump*2) == 0 {
			ps := g.Cmd{Args: []string{"ps", "-eo", "pid,etime,stat,wchan:24,args"}, Combined: true}.Run()
			if ps.RC != 0 {
				ps = g.Cmd{Args: []string{"ps"}, Combined: true}.Run()
			}
			for _, l := range g.Lines(ps.Stdout) {
				if !kernelThread.MatchString(l) {
					g.Say("%s", l)
				}
			}
		}
		if mirror {
			cok, copying, detail := dmCompare(live)
			if !cok {
				cok, copying, detail = dmCompare(live)
			}
			switch {
			case cok:
				ok++
				if copying {
					rec++
				}
			case running(done, &rc):
				bad++
				g.Fact("during_dmcompare_bad_sample", detail)
			}
		} else if g.Recovering(md) {
			out, crc := self("mdcompare", "--md", md)
			if crc != 0 {
				out, crc = self("mdcompare", "--md", md)
			}
			if crc == 0 {
				ok++
				if g.Recovering(md) {
					rec++
				}
			} else if running(done, &rc) && g.Recovering(md) {
				bad++
				g.Fact("during_mdcompare_bad_sample", strings.ReplaceAll(out, "\n", " "))
			}
		}
		if rc < 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	close(stopTail)
	<-tailDone
	close(stopCopy)
	g.Fact("md_copy", <-copyDone)
	t1 := g.UptimeSeconds()
	a1 := g.ReadInt("/run/acked")
	g.Fact("migrate_rc", strconv.Itoa(rc))
	if ui == "tui" {
		for _, f := range []string{"options", "review", "progress", "final"} {
			if p := "/run/" + f + ".txt"; g.Exists(p) {
				g.FactFile("tui_"+f, p)
			}
		}
		plan := g.Read("/run/plan.txt")
		// What the wizard's plan said about the live user's password.
		g.Fact("tui_plan_password", regexp.MustCompile(`the live user's password you chose|the live user locked until you set a password`).FindString(plan))
		// What a partition install writes outside its partition (GRUB in
		// the MBR and after it), listed where the wizard shows the plan.
		g.Fact("tui_plan_outside", regexp.MustCompile(`Also writes, outside [^ ]*:`).FindString(plan)+" "+
			regexp.MustCompile(`GRUB's boot code in the MBR of [^ ]*`).FindString(plan))
	}
	jsonl, _ := os.ReadFile("/run/migrate.jsonl")
	res := lastResult(jsonl)
	if mirror {
		g.Fact("during_dmcompare", fmt.Sprintf("ok=%d bad=%d copying=%d", ok, bad, rec))
	} else {
		g.Fact("during_mdcompare", fmt.Sprintf("ok=%d bad=%d recovering=%d", ok, bad, rec))
	}
	// Records fsync'ed while migrate ran: the writes md had to put on both
	// legs (during recovery) or carry across the leg switch.
	g.Fact("acked_during_migrate", strconv.FormatInt(a1-a0, 10))
	g.Fact("migrate_seconds", fmt.Sprintf("%.1f", t1-t0))
	g.Fact("migrate_events", strconv.Itoa(g.CountLines(jsonl)))
	g.Fact("migrate_progress_events", strconv.Itoa(countLinesWith(jsonl, `"event":"progress"`)))
	g.Fact("recovered_bytes", jsonNum(res, "recovered_bytes"))
	g.Fact("recovery_bps", jsonNum(res, "recovery_bytes_per_second"))
	g.Fact("recovery_seconds", jsonNum(res, "recovery_seconds"))
	g.Fact("cow_freed", jsonNum(res, "COWBytesFreed"))
	g.Fact("mem_avail_release", jsonNum(res, "MemAvailableBefore")+" "+jsonNum(res, "MemAvailableAfter"))
	g.Fact("ejected", strings.Join(ejected(jsonl), "\n"))
	lines := g.Lines(jsonl)
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	g.Fact("migrate_last", last)
	g.Fact("late_interrupt_warnings", strconv.Itoa(countLinesWith(jsonl, "after the point of no return")))
	if b, _ := os.ReadFile("/run/migrate.err"); len(b) > 0 {
		g.FactLines("migrate_err", b)
	}
	g.Say("--- migrate output (last 12 lines)")
	for _, l := range lines[max(0, len(lines)-12):] {
		g.Say("%s", l)
	}

	// Keep writing onto the target-only array for a moment, then stop.
	time.Sleep(2 * time.Second)
	_ = writer.Process.Signal(syscall.SIGTERM)
	wrc := writer.Wait().RC
	wout.Close()
	g.Fact("writer_rc", strconv.Itoa(wrc))
	wb, _ := os.ReadFile("/run/writer.out")
	g.Fact("acked", strings.Join(prefixedValues(wb, "acked="), "\n"))
	g.FactLines("writer_out", wb)

	g.Fact("post_mem", meminfo())
	if strings.HasPrefix(cowdev, "zram") {
		g.Fact("post_zram", zramState(cowdev))
	}
	g.Fact("post_mdcompare", selfLine("mdcompare", "--md", md))
	g.FactFile("post_mdstat", "/proc/mdstat")
	g.Fact("post_status_rc", strconv.Itoa(g.OnConsole("livemigrate", "status")))
	g.Fact("post_status", strings.ReplaceAll(string(g.Cmd{Args: []string{"livemigrate", "status", "--json"}, Combined: true}.Run().Stdout), "\n", ""))
	dm := g.DM("ls")
	dm.Combined = true
	g.Fact("post_dm", strings.ReplaceAll(string(dm.Run().Stdout), "\n", " "))
	g.Fact("post_loops", g.OneLine("losetup", "-a"))
	g.Fact("post_live_mounted", g.MountedUnder("/run/initramfs"))
	// The drive's own answer on whether the disc is still in.
	cd, _ := self("cdstatus", "--dev", "/dev/sr0")
	g.Fact("post_cd", strings.TrimRight(cd, "\n"))
	g.Fact("post_root_size", dfSizeKiB())
	g.Fact("post_session_sha", sha256File("/root/session-data"))
	// The writer is judged, not only logged: it exits 0 on SIGTERM and
	// non-zero when a write or fsync failed; and some records must have
	// been acknowledged while migrate ran, or the run proved nothing about
	// writes during the copy and the leg switch. (The host checks both
	// facts too.)
	if wrc != 0 {
		g.Say("migrate scenario: FAIL: the writer exited %d", wrc)
	}
	if a1-a0 <= 0 {
		g.Say("migrate scenario: FAIL: no record acknowledged while migrate ran")
	}
	run.rc = rc
	if rc == 0 && wrc == 0 && a1-a0 > 0 {
		run.status = 0
	}
	return run
}

// running says whether migrate is still running, taking its status into
// *rc if it has just ended.
func running(done chan int, rc *int) bool {
	select {
	case *rc = <-done:
		return false
	default:
		return true
	}
}

// kernelThread matches ps lines of kernel threads ("[kworker/0:1]").
var kernelThread = regexp.MustCompile(`\[.*\]$`)

// tailEvents prints the lines added to path, but the progress ticks, as
// "migrate: LINE" until stop is closed (and what is there by then).
func tailEvents(path string, w io.Writer, stop chan struct{}) {
	var off int64
	var partial string
	for {
		final := false
		select {
		case <-stop:
			final = true
		case <-time.After(200 * time.Millisecond):
		}
		if f, err := os.Open(path); err == nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				b, _ := io.ReadAll(f)
				off += int64(len(b))
				s := partial + string(b)
				lines := strings.Split(s, "\n")
				partial = lines[len(lines)-1]
				for _, l := range lines[:len(lines)-1] {
					if !strings.Contains(l, `"event":"progress"`) {
						fmt.Fprintf(w, "migrate: %s\n", l)
					}
				}
			}
			f.Close()
		}
		if final {
			return
		}
	}
}

// meminfo: after sync and dropping the page cache, so MemAvailable moves
// with what the COW holds rather than with cached reads. In /proc/meminfo's
// order, bytes: "MemAvailable:=B Unevictable:=B Shmem:=B " (the keys keep
// their colon, as the shell scenario's awk printed them).
func meminfo() string {
	g.DropCaches()
	return meminfoFacts(g.Read("/proc/meminfo"))
}

func meminfoFacts(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || (f[0] != "MemAvailable:" && f[0] != "Shmem:" && f[0] != "Unevictable:") {
			continue
		}
		kib, _ := strconv.ParseFloat(f[1], 64)
		fmt.Fprintf(&b, "%s=%.0f ", f[0], kib*1024)
	}
	return b.String()
}

// zramState is a zram device as its own sysfs shows it, read here and not
// taken from livemigrate: "dev=zramN disksize=B mem_used=B" (mm_stat's
// third column: the RAM it holds), or "dev=zramN gone".
func zramState(dev string) string {
	d := "/sys/block/" + dev
	if !g.Exists(d + "/disksize") {
		return "dev=" + dev + " gone"
	}
	used := ""
	if f := strings.Fields(g.Read(d + "/mm_stat")); len(f) >= 3 {
		used = f[2]
	}
	return fmt.Sprintf("dev=%s disksize=%s mem_used=%s", dev, g.Read(d+"/disksize"), used)
}

var cowKindRE = regexp.MustCompile(`"COWKind": "([a-z-]*)"`)

// cowKinds are the COWKind values of livemigrate status --json, one per
// line that has one.
func cowKinds(statusJSON []byte) []string {
	var out []string
	for _, l := range g.Lines(statusJSON) {
		if m := cowKindRE.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// lastResult is the last "result" event line of migrate --json.
func lastResult(jsonl []byte) string {
	last := ""
	for _, l := range g.Lines(jsonl) {
		if strings.Contains(l, `"event":"result"`) {
			last = l
		}
	}
	return last
}

// jsonNum is the number after the last "KEY": on a line, as the shell's
// sed 's/.*"KEY":\([0-9.e+]*\).*/\1/p' took it ("" when absent).
func jsonNum(line, key string) string {
	m := regexp.MustCompile(`"`+regexp.QuoteMeta(key)+`":([0-9.e+]*)`).FindAllStringSubmatch(line, -1)
	if m == nil {
		return ""
	}
	return m[len(m)-1][1]
}

// ejected lists the "Ejected" values of the result events.
func ejected(jsonl []byte) []string {
	var out []string
	re := regexp.MustCompile(`"Ejected":([a-z]*)`)
	for _, l := range g.Lines(jsonl) {
		if strings.Contains(l, `"event":"result"`) {
			for _, m := range re.FindAllStringSubmatch(l, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// prefixedValues are the rest of each line that starts with prefix.
func prefixedValues(text []byte, prefix string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			out = append(out, v)
		}
	}
	return out
}

// writeRandom writes n random bytes to path (dd if=/dev/urandom).
func writeRandom(path string, n int64) {
	src, err := os.Open("/dev/urandom")
	if err != nil {
		return
	}
	defer src.Close()
	dst, err := os.Create(path)
	if err != nil {
		return
	}
	defer dst.Close()
	_, _ = io.CopyN(dst, src, n)
}

// sampleCopy watches md's copy until stop and reports it as the kernel
// counted it, from two counters: /proc/mdstat's "(DONE/TOTAL)" KiB, which
// is md's current position less the requests in flight and moves with
// every request, and sysfs sync_completed ("DONE / TOTAL" sectors), which
// md moves only at checkpoints (each sixteenth of the device, or when a
// sync limit is reached). For each: the bytes between the first and the
// last sample taken while md recovered, the seconds between them, their
// rate, the samples and the distinct values seen. The mdstat counter is
// the referee (bytes=, seconds=, bps=); sync_completed's is reported as
// sc_bytes= and sc_values= to show how coarse it is.
func sampleCopy(md string, stop <-chan struct{}) string {
	type pt struct {
		at   time.Time
		done int64
	}
	var first, last, scFirst, scLast pt
	n, scN, scValues := 0, 0, 0
	scPrev := int64(-1)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if g.Recovering(md) {
			now := time.Now()
			if p := mdraid.ParseMdstatProgress(g.Read("/proc/mdstat"), strings.TrimPrefix(md, "/dev/")); p != nil {
				d := int64(p.Done) * 512
				if n == 0 {
					first = pt{now, d}
				}
				last = pt{now, d}
				n++
			}
			if d, ok := parseSyncCompleted(g.MDAttr(md, "sync_completed")); ok {
				if scN == 0 {
					scFirst = pt{now, d * 512}
				}
				scLast = pt{now, d * 512}
				scN++
				if d != scPrev {
					scValues++
					scPrev = d
				}
			}
		}
		select {
		case <-stop:
			secs := last.at.Sub(first.at).Seconds()
			bytes := last.done - first.done
			bps := rate(bytes, secs)
			return fmt.Sprintf("bytes=%d seconds=%.2f bps=%.0f samples=%d sc_bytes=%d sc_seconds=%.2f sc_samples=%d sc_values=%d",
				bytes, secs, bps, n, scLast.done-scFirst.done, scLast.at.Sub(scFirst.at).Seconds(), scN, scValues)
		case <-tick.C:
		}
	}
}

// rate is bytes per second over secs, 0 for no time.
func rate(bytes int64, secs float64) float64 {
	if secs > 0 {
		return float64(bytes) / secs
	}
	return 0
}

// parseSyncCompleted reads md's sync_completed: "DONE / TOTAL" in sectors
// while a sync runs, "none" otherwise.
func parseSyncCompleted(s string) (int64, bool) {
	d, _, ok := strings.Cut(strings.TrimSpace(s), " / ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(d, 10, 64)
	return n, err == nil
}
