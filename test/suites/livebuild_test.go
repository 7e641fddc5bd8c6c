package suites

import (
	"encoding/json"
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

// liveBuildMedium builds (or reuses) the live-build medium
// (test/qemu/livebuild/mkiso.sh) and returns its live.env.
func liveBuildMedium(t *testing.T) map[string]string {
	t.Helper()
	out := filepath.Join(vm.Out(), "livebuild-trixie")
	envFile := filepath.Join(out, "live.env")
	if _, err := os.Stat(envFile); err != nil {
		vm.Logf("no %s: building the live-build medium (mkiso.sh)", envFile)
		cmd := execCommand(filepath.Join(vm.QemuDir(), "livebuild", "mkiso.sh"), out)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("livebuild/mkiso.sh: %v", err)
		}
	}
	env, err := vm.ReadEnv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// copyRun is one copy's figures from the copy-bench facts.
type copyRun struct {
	secs    float64
	used    int64
	entries int64
	err     string
}

var copyRunRE = regexp.MustCompile(`^seconds=([0-9.]+) used=[^0-9]*([0-9]+) entries=([0-9]+) err=(.*)$`)

func parseCopyRun(s string) (copyRun, bool) {
	m := copyRunRE.FindStringSubmatch(s)
	if m == nil {
		return copyRun{}, false
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	used, _ := strconv.ParseInt(m[2], 10, 64)
	entries, _ := strconv.ParseInt(m[3], 10, 64)
	return copyRun{secs, used, entries, m[4]}, true
}

// TestLiveBuildCopyBench: the copy method's data path on Debian's own live
// layout (live-build, live-boot: / an overlayfs of squashfs layers under a
// tmpfs upper), after a session changed the root: treecopy against
// `rsync -aHAXSx /` and `unsquashfs` in the same guest, each onto a fresh
// ext4, caches dropped. Judged: the copy ran, rsync's own dry run finds no
// difference between / and treecopy's result outside what the running
// system keeps writing (its logs) and the mount points, the file
// capabilities of the image and of the session came along, the session's
// files and its renamed directory are there. Printed, not
// asserted: the times and their ratios (the target is treecopy at
// least 1.5 times as fast as rsync on 2 vCPUs).
func TestLiveBuildCopyBench(t *testing.T) {
	needVM(t)
	must(t, vm.NeedPkgs("qemu-system-x86", "e2fsprogs"))
	env := liveBuildMedium(t)
	dir := filepath.Join(vm.Out(), "livebuild-trixie", "runs", "copy-bench")
	must(t, os.MkdirAll(dir, 0o755))
	disk := filepath.Join(dir, "cp-main.img")
	os.Remove(disk)
	res := boot(t, &vm.Machine{Dir: dir, Kernel: env["LIVE_KERNEL"], Initrd: env["LIVE_INITRD"], CDROM: env["LIVE_ISO"], MemMiB: 3072,
		Timeout: 1500 * time.Second,
		Disks:   []vm.Disk{{Path: disk, Size: 3 << 30, Serial: "cp-main"}},
		Append:  env["LIVE_APPEND"] + " lmtest.scenario=copy-bench"})
	j := vm.NewJudge(t)
	f := res.Facts.Get
	j.Check("boot", res.Code == 0 && f("scenario_rc") == "0", fmt.Sprintf("boot rc=%d scenario_rc=%s: %s; see %s", res.Code, f("scenario_rc"), f("cb_error"), dir))
	j.Check("overlay root", strings.HasPrefix(f("cb_root"), "overlay ") && strings.Contains(f("cb_layers"), "upper=/"), "root '"+f("cb_root")+"', layers '"+f("cb_layers")+"'")
	runs := map[string]copyRun{}
	for _, n := range []string{"treecopy", "rsync", "unsquashfs"} {
		// Each ran twice; the better run counts.
		for _, k := range []string{n, n + "2"} {
			r, ok := parseCopyRun(f("cb_" + k))
			j.Check(k+" ran", ok && r.err == "<nil>" && r.secs > 0, k+": '"+f("cb_"+k)+"'")
			if b, seen := runs[n]; !seen || (r.secs > 0 && r.secs < b.secs) {
				runs[n] = r
			}
			vm.Logf("copy-bench %s: %s", k, f("cb_"+k))
		}
	}
	// rsync's view of / differs from the copy where it must: the mount
	// points show the mounted filesystem's root (the copy has the image's
	// directory, as an installed system should), mkfs made lost+found, and
	// the running system keeps writing its logs.
	mounts := map[string]bool{}
	for _, m := range strings.Fields(f("cb_mountpoints")) {
		mounts[m] = true
	}
	var other []string
	for _, l := range res.Facts.Lines("cb_diff") {
		fields := strings.Fields(l)
		if len(fields) != 2 {
			other = append(other, l)
			continue
		}
		item, name := fields[0], fields[1]
		switch {
		case strings.HasPrefix(item, ".d") && mounts[name]:
		case l == "*deleting   lost+found/" || name == "lost+found/":
		case strings.HasPrefix(name, "var/log/"):
		default:
			other = append(other, l)
		}
	}
	j.Check("rsync finds no difference", f("cb_diff_rc") == "0" && len(other) == 0, fmt.Sprintf("rsync -n exit %s, %s lines, outside the journal: %s", f("cb_diff_rc"), f("cb_diff_count"), strings.Join(other, " | ")))
	caps := strings.Split(f("cb_cap"), " | ")
	j.Check("file capabilities", len(caps) == 4 && caps[0] == "cap_net_raw=ep" && caps[1] == caps[0] && caps[2] == "cap_net_bind_service=ep" && caps[3] == caps[2],
		"getcap of the image's file on / and the target, then the session's: '"+f("cb_cap")+"'")
	j.Check("the session's changes", f("cb_session_files") == "200" && f("cb_renamed") == "new=true old=false" && f("cb_redirects") != "0",
		fmt.Sprintf("session files %s, rename %s, redirects in the upper layer %s", f("cb_session_files"), f("cb_renamed"), f("cb_redirects")))
	tc, rs, us := runs["treecopy"], runs["rsync"], runs["unsquashfs"]
	ratio := func(a, b copyRun) float64 {
		if a.secs <= 0 {
			return 0
		}
		return b.secs / a.secs
	}
	mbps := func(r copyRun) float64 {
		if r.secs <= 0 {
			return 0
		}
		return float64(r.used) / r.secs / 1e6
	}
	fmt.Printf("copy-bench summary (best of 2 each): treecopy %.1f s (%.1f MB/s, %d entries), rsync -aHAXSx %.1f s (%.1f MB/s), unsquashfs %.1f s (%.1f MB/s, the image only); rsync/treecopy %.2f, unsquashfs/treecopy %.2f; layers %s; boot to scenario %.1f s\n",
		tc.secs, mbps(tc), tc.entries, rs.secs, mbps(rs), us.secs, mbps(us), ratio(tc, rs), ratio(tc, us), f("cb_layers"), res.BootToScenario)
	j.Done()
}

// TestLiveBuildCopy: the copy method end to end on Debian's own live
// layout (live-build, live-boot), in one VM and then the target alone:
//
//	boot 1, the live medium by a direct kernel boot: the session's
//	    changes, then a record writer and a file-ops writer run while
//	    'livemigrate migrate --yes --json' copies; the switch stops them,
//	    copies what changed, soft-reboots into the target; on the
//	    installed system (the same kernel, still running) the scenario
//	    checks every acknowledged record and file operation, the session's
//	    changes, the finishing service (finalize, the medium released),
//	    dpkg --verify, and measures the downtime;
//	boot 2, the target disk alone by SeaBIOS, through the GRUB finalize
//	    installed: the same checks again, and the time a firmware boot
//	    takes, beside the soft-reboot's downtime.
func TestLiveBuildCopy(t *testing.T) {
	needVM(t)
	must(t, vm.NeedPkgs("qemu-system-x86", "e2fsprogs"))
	env := liveBuildMedium(t)
	// bios: the kernel booted directly (faster under TCG), SeaBIOS, with
	// a killed and an interrupted run before the real one; uefi: the ISO
	// through its own GRUB under OVMF (mkiso.sh's grub.cfg gives it the
	// serial console and the scenario), the target then booted by OVMF;
	// tmpfs: the same system with / a tmpfs its initramfs unpacked from
	// root tarballs (no medium at all), killed and interrupted runs
	// first, the target then alone by SeaBIOS.
	for _, row := range []copyRow{{name: "bios"}, {name: "uefi", uefi: true}, {name: "tmpfs", tmpfs: true}} {
		t.Run(row.name, func(t *testing.T) { liveBuildCopy(t, env, row) })
	}
}

// copyRow is one way of booting the live-build system for the copy.
type copyRow struct {
	name        string
	uefi, tmpfs bool
}

func liveBuildCopy(t *testing.T, env map[string]string, row copyRow) {
	name, uefi := row.name, row.uefi
	dir := filepath.Join(vm.Out(), "livebuild-trixie", "runs", "copy-migrate-"+name)
	must(t, os.MkdirAll(dir, 0o755))
	disk := filepath.Join(dir, "cp-main.img")
	os.Remove(disk)
	m := &vm.Machine{Dir: dir, CDROM: env["LIVE_ISO"], MemMiB: 3072, Timeout: 2400 * time.Second,
		Disks: []vm.Disk{{Path: disk, Size: 4 << 30, Serial: "cp-main"}}}
	wantRoot := "overlay"
	switch {
	case uefi:
		must(t, vm.NeedPkgs("ovmf"))
		m.FirmwareBoot, m.UEFI = true, true
		m.QEMUArgs = []string{"-boot", "d"}
	case row.tmpfs:
		if env["TMPFS_INITRD"] == "" {
			t.Fatalf("the live-build medium has no tmpfs-root boot (TMPFS_INITRD in its live.env): remove %s and build it again", filepath.Join(vm.Out(), "livebuild-trixie"))
		}
		// No CD: the root tarballs are raw disks behind the target (the
		// target stays vda), read only; the tmpfs holds the whole root
		// as well as the session's memory.
		wantRoot = "tmpfs"
		m.CDROM, m.MemMiB = "", 4096
		m.Kernel, m.Initrd = env["LIVE_KERNEL"], env["TMPFS_INITRD"]
		m.Disks = append(m.Disks, vm.Disk{Path: env["TMPFS_ROOT_TAR"], Serial: "rootbase", ReadOnly: true},
			vm.Disk{Path: env["TMPFS_LAYER_TAR"], Serial: "rootlayer", ReadOnly: true})
		m.Append = env["TMPFS_APPEND"] + " lmtest.scenario=copy-migrate lmtest.interrupt=1"
	default:
		m.Kernel, m.Initrd = env["LIVE_KERNEL"], env["LIVE_INITRD"]
		m.Append = env["LIVE_APPEND"] + " lmtest.scenario=copy-migrate lmtest.interrupt=1"
	}
	res := boot(t, m)
	j := vm.NewJudge(t)
	f := res.Facts.Get
	logFacts(res.Facts, "ci_killed", "ci_rerun_plan", "ci_interrupted", "cm_root", "cm_dry_rc", "cm_migrate_rc", "cm_error", "cs_phase", "cs_switch", "cs_pass2", "cs_downtime", "cs_finish_state", "cs_acked", "cs_records", "cs_ops", "cs_root", "cs_live_mounts", "cs_loops", "cs_cd", "cs_live_packages", "cs_dpkg_verify_rc", "cs_failed_units", "cs_finish_enabled", "cs_manifest", "cs_manifest_seconds")
	j.Check("live boot", res.Code == 0 && strings.HasPrefix(f("cm_root"), wantRoot+" "), fmt.Sprintf("boot rc=%d root '%s' (want %s); see %s", res.Code, f("cm_root"), wantRoot, dir))
	j.Check("dry run", f("cm_dry_rc") == "0" && strings.Contains(strings.Join(res.Facts.Lines("cm_dry"), "\n"), "soft-reboot into"), "dry run rc "+f("cm_dry_rc")+": "+strings.Join(res.Facts.Lines("cm_dry"), " | "))
	if !uefi {
		// Before it: a run killed during its first pass, whose staging
		// mount the rerun's plan discards, and that rerun interrupted
		// (Ctrl+C's SIGINT), which unmounts the target and leaves the
		// session as it was.
		j.Check("killed mid-copy", strings.HasPrefix(f("ci_killed"), "rc=137 staging=/dev/vda3"), "killed run: "+f("ci_killed"))
		j.Check("rerun discards the partial copy", strings.HasPrefix(f("ci_rerun_plan"), "rc=0 Continuing: an earlier run stopped before the switch; the partial copy on /dev/vda3") && strings.HasSuffix(f("ci_rerun_plan"), "is discarded and the copy starts again"),
			"the rerun's plan: "+f("ci_rerun_plan"))
		j.Check("interrupted mid-copy", strings.HasPrefix(f("ci_interrupted"), "rc=130 staging= ") && strings.Contains(f("ci_interrupted"), "live session intact; /dev/vda3 holds a partial copy that cannot boot") && f("ci_session_root") == wantRoot,
			"interrupted run: "+f("ci_interrupted")+"; root "+f("ci_session_root"))
	}
	j.Check("migrate handed over", f("cm_migrate_rc") == "0", "migrate rc "+f("cm_migrate_rc")+": "+strings.Join(res.Facts.Lines("cm_jsonl"), " | "))
	j.Check("switched", f("cs_phase") != "" && strings.HasPrefix(f("cs_switch"), "state=switching ") && f("cs_kernel") == f("cm_kernel"),
		fmt.Sprintf("phase '%s', switch '%s', kernel %s then %s", f("cs_phase"), f("cs_switch"), f("cm_kernel"), f("cs_kernel")))
	copyJudge(j, res.Facts, "cs_")
	j.Check("finishing service", strings.HasPrefix(f("cs_finish_state"), "inactive result=success") && f("cs_finish_enabled") != "enabled",
		fmt.Sprintf("state '%s', enabled '%s'; journal: %s", f("cs_finish_state"), f("cs_finish_enabled"), strings.Join(res.Facts.Lines("cs_journal"), " | ")))
	if row.tmpfs {
		// Nothing to eject; the tmpfs went with the old root.
		j.Check("live root released", f("cs_live_mounts") == "" && f("cs_loops") == "" && !strings.Contains(f("cs_journal"), "tmpfsroot"),
			fmt.Sprintf("live mounts '%s', loops '%s'", f("cs_live_mounts"), f("cs_loops")))
	} else {
		j.Check("medium released", f("cs_live_mounts") == "" && !strings.Contains(f("cs_loops"), "squashfs") && (strings.TrimSpace(f("cs_cd")) == "cd_status=no_disc" || strings.TrimSpace(f("cs_cd")) == "cd_status=tray_open"),
			fmt.Sprintf("live mounts '%s', loops '%s', %s", f("cs_live_mounts"), f("cs_loops"), f("cs_cd")))
	}
	j.Check("scenario", f("scenario_rc") == "0", "scenario_rc "+f("scenario_rc"))
	if !j.OK() {
		j.Done()
		return
	}

	// The target alone, by its firmware.
	firmware := "bios"
	if uefi {
		firmware = "uefi"
	}
	bdir := filepath.Join(dir, "firmware-boot")
	must(t, os.MkdirAll(bdir, 0o755))
	bres := boot(t, &vm.Machine{Dir: bdir, FirmwareBoot: true, UEFI: uefi, MemMiB: 3072, Window: vm.WindowBoot, Timeout: 900 * time.Second,
		Disks: []vm.Disk{{Path: disk, Overlay: true}}})
	b := bres.Facts.Get
	logFacts(bres.Facts, "scenario_start", "ci_firmware", "ci_cmdline", "ci_root", "ci_records", "ci_ops", "ci_dpkg_verify_rc", "ci_failed_units", "ci_multiuser_mono")
	j.Check("firmware boot", bres.Code == 0 && b("scenario_start") == "copy-installed" && b("scenario_rc") == "0" && b("ci_firmware") == firmware,
		fmt.Sprintf("rc=%d scenario '%s' rc %s firmware %s; see %s", bres.Code, b("scenario_start"), b("scenario_rc"), b("ci_firmware"), bdir))
	copyJudge(j, bres.Facts, "ci_")
	j.Check("same root", b("ci_root") == f("cs_root"), "firmware boot root '"+b("ci_root")+"', after the switch '"+f("cs_root")+"'")
	// Like for like: from the switch service's start (the session's
	// services stop) to the scenario's start on the target (after
	// systemctl is-system-running --wait), against QEMU's start to the
	// same point of the firmware boot.
	num := func(s string) float64 { v, _ := strconv.ParseFloat(strings.TrimSpace(s), 64); return v }
	toScenario := num(f("cs_uptime")) - (num(f("cs_multiuser_mono")) - num(f("cs_downtime")))
	mib := func(s string) float64 { return num(s) / (1 << 20) }
	fmt.Printf("copy-migrate summary (%s): %s; switch %s; %s; downtime %s s to multi-user.target, %.1f s to the scenario (soft-reboot, the kernel kept); firmware boot of the same target: %.1f s from QEMU start to the scenario (kernel start to multi-user.target %s s); records %s acknowledged, %s; file ops %s; manifest after the switch %s (%s s), after the firmware boot %s; RAM: MemAvailable %.0f MiB and Shmem %.0f MiB in the session, %.0f and %.0f MiB after the switch; live boot to scenario %.1f s\n",
		name, copyLine(res.Facts), f("cs_switch"), f("cs_pass2"), f("cs_downtime"), toScenario, bres.BootToScenario, b("ci_multiuser_mono"), f("cs_acked"), f("cs_records"), f("cs_ops"),
		f("cs_manifest"), f("cs_manifest_seconds"), b("ci_manifest"), mib(f("cm_mem_available")), mib(f("cm_shmem")), mib(f("cs_mem_available")), mib(f("cs_shmem")), res.BootToScenario)
	j.Done()
}

// copyLine is the first pass's figures from migrate's JSON lines.
func copyLine(F vm.Facts) string {
	for _, l := range F.Lines("cs_jsonl") {
		if strings.Contains(l, `"step":"copy-files"`) && strings.Contains(l, `"event":"step-done"`) {
			var ev struct{ Message string }
			if json.Unmarshal([]byte(l), &ev) == nil {
				return "pass 1: " + ev.Message
			}
		}
	}
	return "pass 1: no step-done line"
}

// copyJudge checks what the session left, as the guest reported it with
// prefix p: every acknowledged record and file operation, the session's
// changes, the live packages gone, dpkg --verify.
func copyJudge(j *vm.Judge, F vm.Facts, p string) {
	f := func(k string) string { return F.Get(p + k) }
	j.Check(p+"records", strings.HasPrefix(f("records"), "records_ok=") && strings.Contains(f("records"), " records_bad=0") && !strings.HasPrefix(f("records"), "records_ok=0 "), "records: "+f("records"))
	j.Check(p+"file ops", f("ops_ok") == "true", "file ops: "+f("ops"))
	j.Check(p+"session", f("session_files") == "200" && f("motd") == "changed in the live session" && f("renamed") == "new=true old=false deleted_gone=true transient_gone=true",
		fmt.Sprintf("files %s, motd %q, %s", f("session_files"), f("motd"), f("renamed")))
	j.Check(p+"capabilities", f("cap") == "cap_net_raw=ep | cap_net_bind_service=ep", "getcap: "+f("cap"))
	j.Check(p+"xattr and ACL", f("xattr") == "kept" && f("acl") == "user:nobody:r--", fmt.Sprintf("xattr %q, acl %q", f("xattr"), f("acl")))
	j.Check(p+"hard link and holes", f("hardlink") == "same=true nlink=2" && strings.HasPrefix(f("sparse"), "size=67108864 ") && strings.HasSuffix(f("sparse"), " data_ok=true") && sparseSmall(f("sparse")),
		fmt.Sprintf("hard link %s, sparse %s", f("hardlink"), f("sparse")))
	// Both checks need the guest to have got that far: an empty list is
	// also what a guest that never ran them reports.
	ran := f("dpkg_verify_rc") != ""
	j.Check(p+"live packages removed", ran && f("live_packages") == "", "dpkg-query: '"+f("live_packages")+"', dpkg --verify rc '"+f("dpkg_verify_rc")+"'")
	var other []string
	for _, l := range F.Lines(p + "dpkg_verify") {
		if !dpkgVerifyExpected(l) {
			other = append(other, l)
		}
	}
	j.Check(p+"dpkg --verify", ran && len(other) == 0, fmt.Sprintf("rc %s; unexpected: %s", f("dpkg_verify_rc"), strings.Join(other, " | ")))
	manifestJudge(j, F, p)
}

// manifestJudge checks the image's files on the target against the
// manifest made on the host from the squashfs (the guest's manifest-check,
// facts with prefix p): it ran over the whole manifest, the live
// packages' files are gone, and every entry that differs or is missing is
// one the session or finalize changed on purpose (manifestExpected).
func manifestJudge(j *vm.Judge, F vm.Facts, p string) {
	var entries, ok, differ, missing, removed, files, bytes int64
	var rc int
	got := F.Get(p + "manifest")
	_, err := fmt.Sscanf(got, "rc=%d entries=%d ok=%d differ=%d missing=%d removed=%d files_hashed=%d bytes_hashed=%d", &rc, &entries, &ok, &differ, &missing, &removed, &files, &bytes)
	report := F.Lines(p + "manifest_report")
	var other []string
	for _, l := range report {
		if !manifestExpected(l) {
			other = append(other, l)
		}
	}
	if len(other) > 30 {
		other = append(other[:30], fmt.Sprintf("(%d more)", len(other)-30))
	}
	j.Check(p+"manifest", err == nil && rc == 0 && entries > 10000 && ok+differ+missing+removed == entries && removed > 0 &&
		int64(len(report)) == differ+missing && len(other) == 0,
		fmt.Sprintf("manifest-check '%s' (parsed: %v), %d report lines; unexpected: %s", got, err, len(report), strings.Join(other, " | ")))
}

// manifestExpected: a manifest-check report line ("differ PATH WHAT",
// "missing PATH") the test explains: the session's own changes
// (copySessionChanges, live-config's setup of the live user), and what
// finalize and the installed system's first boots rewrite.
func manifestExpected(l string) bool {
	f := strings.Fields(l)
	if len(f) < 2 {
		return false
	}
	kind, path := f[0], f[1]
	under := func(dirs ...string) bool {
		for _, d := range dirs {
			if path == d || strings.HasPrefix(path, d+"/") {
				return true
			}
		}
		return false
	}
	switch {
	case kind == "missing" && under("usr/share/doc/dpkg", "usr/share/doc/systemd"):
		return true // renamed and deleted in the session
	case kind == "differ" && path == "etc/motd":
		return true
	case kind == "missing" && under(manifestLiveLeftovers...):
		return true
	case kind == "differ" && under(manifestFinalized...):
		return true
	case kind == "differ" && under(manifestLiveSetup...):
		return true
	case under(manifestRewritten...):
		return true
	}
	return false
}

// manifestRewritten are the image's directories whose contents the
// running system and package removal rewrite as a matter of course: the
// logs and caches, dpkg's and systemd's state, the kernel's initramfs
// (rebuilt when live-boot's scripts go).
var manifestRewritten = []string{"var/log", "var/cache", "var/lib/dpkg", "var/lib/systemd", "boot"}

// manifestFinalized are the files finalize writes on purpose (fstab by
// UUID, a new machine-id) and the linker cache removing packages renews.
var manifestFinalized = []string{"etc/fstab", "etc/machine-id", "etc/ld.so.cache"}

// manifestLiveSetup are the files live-boot and live-config write when the
// live session starts (hostname, hosts, time zone, network interfaces,
// the console login): the session's, kept like any change it made.
var manifestLiveSetup = []string{"etc/hostname", "etc/hosts", "etc/localtime", "etc/network/interfaces", "etc/pam.d/login"}

// manifestLiveLeftovers are what the live packages' purge removes beyond
// their dpkg -L lists: live-boot's and live-config's configuration
// directories and live-config's enablement link.
var manifestLiveLeftovers = []string{"etc/live", "etc/systemd/system/basic.target.wants"}

// sparseSmall: the sparse file takes far less than its length.
func sparseSmall(s string) bool {
	var size, alloc int64
	var ok string
	if _, err := fmt.Sscanf(s, "size=%d allocated=%d data_ok=%s", &size, &alloc, &ok); err != nil {
		return false
	}
	return alloc > 0 && alloc < 1<<20
}

// dpkgVerifyExpected: the files the session and finalize change on
// purpose (dpkg --verify lists conffiles that differ, "??5?????? c FILE").
func dpkgVerifyExpected(l string) bool {
	f := strings.Fields(l)
	if len(f) == 0 {
		return true
	}
	name := f[len(f)-1]
	switch name {
	case "/etc/motd", "/etc/default/grub", "/etc/sudoers", "/etc/hosts":
		return true
	}
	for _, d := range []string{"/usr/share/doc/dpkg", "/usr/share/doc/systemd"} {
		if name == d || strings.HasPrefix(name, d+"/") {
			return true
		}
	}
	return false
}
