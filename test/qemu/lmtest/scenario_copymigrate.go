package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/procfs"
	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// The copy method's end-to-end run on the live-build medium (/ an
// overlayfs of squashfs layers under a tmpfs upper layer), in one VM:
//
//	phase 1, the live session (lmtest.scenario=copy-migrate): the session
//	    changes the root (files, a capability, an xattr, an ACL, a hard
//	    link, a sparse file, a directory of the image renamed, one
//	    deleted), then a record writer and a file-ops writer (creates,
//	    renames, deletes, each fsynced and only then acknowledged in /run)
//	    run while 'livemigrate migrate --yes --json' copies, and on until
//	    the switch stops them;
//	phase 2, after the soft-reboot, on the installed system (the same
//	    kernel command line: /run/lmtest/copy-phase tells the phase): every
//	    acknowledged record and file operation, the session's changes, the
//	    finishing service's outcome (finalize, the medium released),
//	    dpkg --verify, the switch's times; it leaves the scenario of the
//	    firmware boot in /etc/lmtest/cmdline;
//	then the target alone, booted by its firmware (copy-installed): the
//	    same checks again.
const (
	copyPhase   = "/run/lmtest/copy-phase"
	copyRecords = "/var/lib/lmtest/records"
	copyAcked   = "/run/lmtest/acked"
	copyOpsDir  = "/var/lib/lmtest/ops"
	copyOpsLog  = "/run/lmtest/ops.log"
	// The live packages' files (dpkg -L), written in the session.
	copyLiveFiles = "/var/lib/lmtest/live-files"
	// The manifest of the image (test/qemu/livebuild/tree.sh), in the
	// test layer.
	copyManifest = "/usr/lib/lmtest/manifest.gz"
	copyJSONL    = "/run/lmtest/migrate.jsonl"
)

func scenarioCopyMigrate() int {
	if g.Exists(copyPhase) {
		return copyAfterSwitch()
	}
	tgt := g.DiskBySerial("cp-main")
	root := g.RootMount()
	g.Fact("cm_root", root.FSType+" "+root.Source)
	g.Fact("cm_kernel", g.Read("/proc/sys/kernel/osrelease"))
	g.Fact("cm_machine_id", g.All("cat", "/etc/machine-id"))
	if tgt == "" {
		g.Fact("cm_error", "no disk with serial cp-main")
		return 1
	}
	_ = os.MkdirAll("/run/lmtest", 0o755)
	// The plan, checked without writing.
	dry := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", tgt, "--dry-run"}, Combined: true}.Run()
	_ = os.WriteFile("/run/lmtest/dry.txt", dry.Stdout, 0o644)
	g.Fact("cm_dry_rc", strconv.Itoa(dry.RC))
	g.FactFile("cm_dry", "/run/lmtest/dry.txt")

	copySessionChanges()
	// What finalize will remove: the live packages' files, which the
	// manifest of the image lists and the target then lacks on purpose.
	lf := g.Cmd{Args: append([]string{"dpkg", "-L"}, finalize.LivePackages...)}.Run()
	_ = os.MkdirAll(filepath.Dir(copyLiveFiles), 0o755)
	_ = os.WriteFile(copyLiveFiles, lf.Stdout, 0o644)
	g.Fact("cm_live_files", strconv.Itoa(g.CountLines(lf.Stdout)))
	g.Fact("cm_mem_available", strconv.FormatInt(memAvailable(), 10))
	g.Fact("cm_shmem", strconv.FormatInt(shmem(), 10))

	// The writers, in this service: the switch stops them with it.
	_ = os.MkdirAll(filepath.Dir(copyRecords), 0o755)
	w, err := g.Cmd{Args: []string{"lmtest", "writer", "--file", copyRecords, "--acked", copyAcked, "--interval", "20ms"}}.Start()
	if err != nil {
		g.Fact("cm_error", "writer: "+err.Error())
		return 1
	}
	ops, err := g.Cmd{Args: []string{"lmtest", "fileops", "--dir", copyOpsDir, "--log", copyOpsLog}}.Start()
	if err != nil {
		g.Fact("cm_error", "fileops: "+err.Error())
		return 1
	}
	time.Sleep(2 * time.Second)
	if g.Cmdline("lmtest.interrupt", "0") == "1" {
		copyInterrupted(tgt)
	}
	_ = os.WriteFile(copyPhase, []byte(fmt.Sprintf("migrate started at %s\n", g.Uptime())), 0o644)
	out, _ := os.Create(copyJSONL)
	mig := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", tgt, "--yes", "--json"}, Stdout: out, Stderr: os.Stderr}.Run()
	out.Close()
	g.Fact("cm_migrate_rc", strconv.Itoa(mig.RC))
	if mig.RC != 0 {
		// Stopped before the switch: the session goes on as it was.
		_ = w.Process.Signal(syscall.SIGTERM)
		_ = ops.Process.Signal(syscall.SIGTERM)
		w.Wait()
		ops.Wait()
		g.FactFile("cm_jsonl", copyJSONL)
		_ = os.Remove(copyPhase)
		return mig.RC
	}
	// The switch service stops this service (and the writers) in a moment.
	g.Fact("cm_waiting", g.Uptime())
	time.Sleep(900 * time.Second)
	g.Fact("cm_error", "still in the live session 900 s after migrate handed over to the switch")
	g.FactFile("cm_switch", "/run/livemigrate/switch.json")
	return 1
}

// copying matches a progress event of the first pass with data copied.
var copying = regexp.MustCompile(`"step":"copy-files","progress":\{"done_bytes":[1-9]`)

// copyInterrupted: a migration killed (SIGKILL) during its first pass,
// then the rerun interrupted (SIGINT, as Ctrl+C) during its own; the
// session must go on untouched, the killed run's staging mount must be
// what the rerun's plan discards, and the interrupted run must unmount
// it and say what the target holds.
func copyInterrupted(tgt string) {
	during := func(name string, sig syscall.Signal) (int, string) {
		path := "/run/lmtest/" + name + ".jsonl"
		out, _ := os.Create(path)
		errb := &strings.Builder{}
		p, err := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", tgt, "--yes", "--json"}, Stdout: out, Stderr: errb}.Start()
		if err != nil {
			out.Close()
			return -1, err.Error()
		}
		// Signal once the first pass has copied something.
		for i := 0; i < 600; i++ {
			b, _ := os.ReadFile(path)
			if copying.Match(b) || strings.Contains(string(b), `"event":"step-done","step":"copy-files"`) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_ = p.Process.Signal(sig)
		r := p.Wait()
		out.Close()
		g.FactFile("ci_"+name+"_jsonl", path)
		return r.RC, strings.ReplaceAll(errb.String(), "\n", " ")
	}
	rc, msg := during("killed", syscall.SIGKILL)
	g.Fact("ci_killed", fmt.Sprintf("rc=%d staging=%s %s", rc, findmnt("SOURCE", "/run/livemigrate/target"), msg))
	dry := g.Cmd{Args: []string{"livemigrate", "migrate", "--target", tgt, "--dry-run"}, Combined: true}.Run()
	g.Fact("ci_rerun_plan", fmt.Sprintf("rc=%d %s", dry.RC, strings.TrimSpace(grepLine(string(dry.Stdout), "Continuing:"))))
	rc, msg = during("interrupted", syscall.SIGINT)
	g.Fact("ci_interrupted", fmt.Sprintf("rc=%d staging=%s %s", rc, findmnt("SOURCE", "/run/livemigrate/target"), msg))
	g.Fact("ci_session_root", g.RootMount().FSType)
}

func grepLine(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// copySessionChanges changes the live root as a person would, through the
// overlay: what the target must have afterwards.
func copySessionChanges() {
	_ = os.MkdirAll("/srv/session", 0o755)
	for i := 0; i < 200; i++ {
		_ = os.WriteFile(fmt.Sprintf("/srv/session/f%03d", i), []byte(strings.Repeat(strconv.Itoa(i), 2000)), 0o644)
	}
	_ = os.WriteFile("/etc/motd", []byte("changed in the live session\n"), 0o644)
	g.Fact("cm_setcap", strconv.Itoa(g.Sh("sh", "-c", "cp /usr/lib/lmtest/capable /usr/local/bin/capable2 && setcap cap_net_bind_service+ep /usr/local/bin/capable2").RC))
	g.Fact("cm_xattr", strconv.Itoa(g.Sh("setfattr", "-n", "user.lmtest", "-v", "kept", "/srv/session/f000").RC))
	g.Fact("cm_acl", strconv.Itoa(g.Sh("setfacl", "-m", "u:nobody:r", "/srv/session/f001").RC))
	g.Fact("cm_link", strconv.Itoa(g.Sh("ln", "/srv/session/f002", "/srv/session/hardlink").RC))
	// A sparse file: 64 MiB long, 4 KiB of data at 32 MiB.
	if f, err := os.Create("/srv/session/sparse"); err == nil {
		_, _ = f.WriteAt([]byte(strings.Repeat("x", 4096)), 32<<20)
		_ = f.Truncate(64 << 20)
		f.Close()
	}
	g.Fact("cm_rename", strconv.Itoa(g.Sh("mv", "/usr/share/doc/dpkg", "/usr/share/doc/dpkg.renamed").RC))
	g.Fact("cm_delete", strconv.Itoa(g.Sh("rm", "-rf", "/usr/share/doc/systemd").RC))
	// Made and removed again before the copy: only the upper layer had it,
	// so it leaves no whiteout.
	_ = os.WriteFile("/srv/session/transient", []byte("gone\n"), 0o644)
	_ = os.Remove("/srv/session/transient")
	syscall.Sync()
}

// copyChecks reports (with prefix p) what the session left and must be on
// the root now: the records and file operations up to what was
// acknowledged, the session's changes.
func copyChecks(p, acked string, opsLog []byte) {
	g.Fact(p+"records", selfLine("verify", "--file", copyRecords, "--upto", acked))
	s, ok := verifyOps(copyOpsDir, opsLog)
	g.Fact(p+"ops", s)
	g.Fact(p+"ops_ok", strconv.FormatBool(ok))
	g.Fact(p+"session_files", strings.TrimSpace(g.Out("sh", "-c", "ls /srv/session | grep -c '^f[0-9]'")))
	g.Fact(p+"motd", g.Read("/etc/motd"))
	capOf := func(path string) string {
		f := strings.Fields(g.Out("getcap", path))
		if len(f) < 2 {
			return "none"
		}
		return strings.Join(f[1:], " ")
	}
	g.Fact(p+"cap", capOf("/usr/lib/lmtest/capable")+" | "+capOf("/usr/local/bin/capable2"))
	g.Fact(p+"xattr", g.Out("getfattr", "--only-values", "-n", "user.lmtest", "/srv/session/f000"))
	g.Fact(p+"acl", strings.Join(strings.Fields(g.Out("sh", "-c", "getfacl -p /srv/session/f001 | grep '^user:nobody'")), " "))
	var a, b syscall.Stat_t
	_ = syscall.Stat("/srv/session/f002", &a)
	_ = syscall.Stat("/srv/session/hardlink", &b)
	g.Fact(p+"hardlink", fmt.Sprintf("same=%v nlink=%d", a.Ino != 0 && a.Ino == b.Ino, a.Nlink))
	var sp syscall.Stat_t
	_ = syscall.Stat("/srv/session/sparse", &sp)
	data, _ := os.ReadFile("/srv/session/sparse")
	g.Fact(p+"sparse", fmt.Sprintf("size=%d allocated=%d data_ok=%v", sp.Size, sp.Blocks*512, len(data) == 64<<20 && string(data[32<<20:32<<20+4096]) == strings.Repeat("x", 4096)))
	g.Fact(p+"renamed", fmt.Sprintf("new=%v old=%v deleted_gone=%v transient_gone=%v", g.Exists("/usr/share/doc/dpkg.renamed/copyright"), g.Exists("/usr/share/doc/dpkg"), !g.Exists("/usr/share/doc/systemd"), !g.Exists("/srv/session/transient")))
	g.Fact(p+"live_packages", strings.Join(strings.Fields(g.Out("sh", "-c", "dpkg-query -W -f '${Package}=${db:Status-Abbrev} ' live-boot live-config live-config-systemd live-boot-initramfs-tools 2>/dev/null")), " "))
	ver := g.Cmd{Args: []string{"dpkg", "--verify"}, Combined: true}.Run()
	_ = os.WriteFile("/run/lmtest/dpkg-verify", ver.Stdout, 0o644)
	g.Fact(p+"dpkg_verify_rc", strconv.Itoa(ver.RC))
	g.FactFile(p+"dpkg_verify", "/run/lmtest/dpkg-verify")
	// The image's files, checked against the manifest made on the host
	// from the squashfs itself: the entries that differ or are missing
	// (the host judges which of them the session and finalize explain).
	// Through a bind mount of / (not recursive): the root filesystem's
	// own /dev, /proc, /run and /sys, not what is mounted on them.
	t0 := time.Now()
	bind := "/run/lmtest/root"
	_ = os.MkdirAll(bind, 0o700)
	var mc g.Result
	if err := syscall.Mount("/", bind, "", syscall.MS_BIND, ""); err != nil {
		mc = g.Result{RC: -1, Stdout: []byte("bind / on " + bind + ": " + err.Error())}
	} else {
		mc = g.Cmd{Args: []string{"lmtest", "manifest-check", "--manifest", copyManifest, "--root", bind, "--workers", "2",
			"--expect-missing", copyLiveFiles, "--report", "/run/lmtest/manifest-report"}, Combined: true}.Run()
		_ = syscall.Unmount(bind, 0)
	}
	g.Fact(p+"manifest", fmt.Sprintf("rc=%d %s", mc.RC, strings.TrimSpace(string(mc.Stdout))))
	g.Fact(p+"manifest_seconds", fmt.Sprintf("%.1f", time.Since(t0).Seconds()))
	if b, err := os.ReadFile("/run/lmtest/manifest-report"); err == nil {
		// Bounded: the facts port is a serial line.
		lines := g.Lines(b)
		if len(lines) > 2000 {
			lines = lines[:2000]
		}
		g.FactLines(p+"manifest_report", []byte(strings.Join(lines, "\n")+"\n"))
	}
	g.Fact(p+"root", findmnt("SOURCE", "/")+" "+findmnt("FSTYPE", "/")+" "+findmnt("UUID", "/"))
	g.Fact(p+"live_mounts", strings.Join(strings.Fields(g.Out("sh", "-c", "findmnt -rn -o TARGET | grep -E '^/run/(live|nextroot)' ")), " "))
	g.Fact(p+"loops", strings.Join(strings.Fields(g.Out("losetup", "-n", "-O", "NAME,BACK-FILE")), " "))
	g.Fact(p+"machine_id", g.All("cat", "/etc/machine-id"))
	g.Fact(p+"mem_available", strconv.FormatInt(memAvailable(), 10))
	g.Fact(p+"shmem", strconv.FormatInt(shmem(), 10))
	g.Fact(p+"failed_units", g.OneLine("systemctl", "--failed", "--no-legend", "--plain"))
}

func memAvailable() int64 {
	m, _ := procfs.ReadMeminfo("/")
	return int64(m["MemAvailable"])
}

// shmem is the memory tmpfs and shared memory hold (a tmpfs root's files
// and an overlay's tmpfs upper layer among them).
func shmem() int64 {
	m, _ := procfs.ReadMeminfo("/")
	return int64(m["Shmem"])
}

// unitMono is a unit's ActiveEnterTimestampMonotonic, in seconds.
func unitMono(unit string) float64 {
	v := strings.TrimPrefix(g.Out("systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", unit), "ActiveEnterTimestampMonotonic=")
	n, _ := strconv.ParseFloat(v, 64)
	return n / 1e6
}

func copyAfterSwitch() int {
	g.Fact("cs_phase", g.Read(copyPhase))
	g.Fact("cs_uptime", g.Uptime())
	g.Fact("cs_kernel", g.Read("/proc/sys/kernel/osrelease"))
	// The switch's record, and the downtime: from the switch service's
	// start (the session's services stop) to multi-user.target here, in
	// the monotonic clock the soft-reboot keeps.
	var sw struct {
		Started      float64 `json:"started_monotonic"`
		Stopped      float64 `json:"session_stopped_monotonic"`
		SoftReboot   float64 `json:"soft_reboot_monotonic"`
		State        string  `json:"state"`
		Error        string  `json:"error"`
		Pass2Removed uint64  `json:"pass2_removed"`
		Pass2        *struct {
			Bytes     uint64  `json:"bytes"`
			Entries   uint64  `json:"entries"`
			Deleted   uint64  `json:"deleted"`
			Unchanged uint64  `json:"unchanged"`
			Seconds   float64 `json:"seconds"`
		} `json:"pass2"`
	}
	b, _ := os.ReadFile("/run/livemigrate/switch.json")
	_ = json.Unmarshal(b, &sw)
	mu := unitMono("multi-user.target")
	g.Fact("cs_switch", fmt.Sprintf("state=%s error=%q stop=%.1f pass2_to_softreboot=%.1f softreboot_to_multiuser=%.1f removed=%d", sw.State, sw.Error, sw.Stopped-sw.Started, sw.SoftReboot-sw.Stopped, mu-sw.SoftReboot, sw.Pass2Removed))
	if sw.Pass2 != nil {
		g.Fact("cs_pass2", fmt.Sprintf("bytes=%d entries=%d unchanged=%d deleted=%d seconds=%.1f", sw.Pass2.Bytes, sw.Pass2.Entries, sw.Pass2.Unchanged, sw.Pass2.Deleted, sw.Pass2.Seconds))
	}
	g.Fact("cs_downtime", fmt.Sprintf("%.1f", mu-sw.Started))
	g.Fact("cs_multiuser_mono", fmt.Sprintf("%.1f", mu))
	// The finishing service: finalize and the release of the medium run
	// beside the boot; wait for it.
	state := ""
	for i := 0; i < 900; i++ {
		state = g.Out("systemctl", "show", "-p", "ActiveState", "--value", "livemigrate-finish.service")
		if state != "activating" && state != "active" && state != "deactivating" {
			break
		}
		time.Sleep(time.Second)
	}
	g.Fact("cs_finish_state", state+" result="+g.Out("systemctl", "show", "-p", "Result", "--value", "livemigrate-finish.service"))
	g.Fact("cs_finish_done", g.Uptime())
	g.FactFile("cs_finish_json", "/var/lib/livemigrate/finish.json")
	jr := g.Cmd{Args: []string{"journalctl", "-b", "0", "-u", "livemigrate-finish", "-u", "livemigrate-switch", "--no-pager", "-o", "cat"}, Combined: true}.Run()
	_ = os.WriteFile("/run/lmtest/journal-finish", jr.Stdout, 0o644)
	g.FactFile("cs_journal", "/run/lmtest/journal-finish")
	g.FactFile("cs_jsonl", copyJSONL)
	g.Fact("cs_cd", selfLine("cdstatus"))
	g.Fact("cs_finish_enabled", g.Out("systemctl", "is-enabled", "livemigrate-finish.service"))

	acked := strings.TrimSpace(g.Read(copyAcked))
	opsLog, _ := os.ReadFile(copyOpsLog)
	g.Fact("cs_acked", acked)
	copyChecks("cs_", acked, opsLog)
	// For the firmware boot: what was acknowledged, kept on the target.
	_ = os.WriteFile("/var/lib/lmtest/acked", []byte(acked+"\n"), 0o644)
	_ = os.WriteFile("/var/lib/lmtest/ops.log", opsLog, 0o644)
	_ = os.MkdirAll("/etc/lmtest", 0o755)
	_ = os.WriteFile("/etc/lmtest/cmdline", []byte("lmtest.scenario=copy-installed lmtest.end=poweroff\n"), 0o644)
	syscall.Sync()
	return 0
}

// scenarioCopyInstalled: the target booted alone by its firmware, through
// the GRUB finalize installed.
func scenarioCopyInstalled() int {
	if g.Exists("/sys/firmware/efi") {
		g.Fact("ci_firmware", "uefi")
	} else {
		g.Fact("ci_firmware", "bios")
	}
	g.Fact("ci_cmdline", g.Read("/proc/cmdline"))
	g.Fact("ci_multiuser_mono", fmt.Sprintf("%.1f", unitMono("multi-user.target")))
	acked := strings.TrimSpace(g.Read("/var/lib/lmtest/acked"))
	opsLog, _ := os.ReadFile("/var/lib/lmtest/ops.log")
	_ = os.MkdirAll("/run/lmtest", 0o755)
	copyChecks("ci_", acked, opsLog)
	return 0
}
