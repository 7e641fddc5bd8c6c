package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioRefuse: preflight must turn bad targets away with their documented
// exit code and a message that names the device, and write nothing. Every
// refusal case runs WITHOUT --dry-run and WITH --yes, so a missing check
// would really hot-add the device and copy onto it; only the good disks use
// --dry-run.
//
// The host (refuse.sh) attaches extra virtio disks, told apart here by their
// serial numbers (/sys/block/vdX/serial):
//
//	rf-small   one 512-byte sector smaller than the live root      -> 13
//	rf-4k      4096-byte logical blocks (the array has 512)         -> 15
//	rf-ro      read-only                                            -> 14
//	rf-parted  msdos label, ext4 on partition 1, mounted here       -> 12 (both)
//	rf-mdmem   the only leg of another md array (/dev/md5, built)   -> 12
//	rf-lvm     an LVM physical volume with an active logical volume -> 12
//	           (left out, and lvm_skipped said, in a root without lvm2)
//	rf-good    blank, larger than the live root: --dry-run          -> 0
//	rf-exact   blank, exactly the live root's size: --raw-disk --dry-run -> 0,
//	           as a whole-disk install (boot partitions too)        -> 13
//	rf-hold    a GPT disk changed while migrate waits to be confirmed -> 19
//
// The rest need no extra disk: paths that are not block devices, the live
// stack itself, usage errors and --method.
//
// Booted with lm.stack=nohook (/ straight on live-rw, as dracut's
// dmsquash-live leaves it: the dm-mirror method), the same disks are
// refused the same way, the root's own device is live-rw, and two cases
// are the mirror's own: --method md-hook (3), and the modules of the
// running kernel hidden under a tmpfs while dm-mirror is not loaded
// (no_dm_mirror, 3, with --yes on the good disk).
//
// Reports, for each case NAME: case_NAME="CODE FIRST-STDERR-LINE",
// case_NAME_target (the path given, if any), case_NAME_stdout (bytes) and
// case_NAME_stderr_lines. Around the cases: the state of md, dm, loops and
// mounts, and the regular file's size and mtime (state_same), md127's
// members, `livemigrate status` exit codes and the sha256 of the disks the
// host cannot check itself (one has a partition mounted here, frozen with
// fsfreeze so ext4 itself writes nothing during the cases). The host judges.
func scenarioRefuse() int {
	md := g.RootDevice()
	nohook := !strings.HasPrefix(md, "/dev/md")
	mdname := strings.TrimPrefix(md, "/dev/")
	if real, err := filepath.EvalSymlinks(md); err == nil {
		mdname = filepath.Base(real)
	}
	g.Fact("refuse_root", md)
	g.Fact("refuse_stack", map[bool]string{true: "nohook", false: "md"}[nohook])

	// The extra disks, by serial; the names are those of the shell
	// scenario's variables, which refuse_setup still names.
	roles := map[string]string{"rf-small": "small", "rf-4k": "d4k", "rf-ro": "ro", "rf-parted": "parted",
		"rf-mdmem": "mdmem", "rf-lvm": "lvmdisk", "rf-good": "good", "rf-exact": "exact", "rf-hold": "hold"}
	dev := map[string]string{}
	for _, d := range g.Disks() {
		g.Fact("disk_"+d.Serial, fmt.Sprintf("%s size=%d lbs=%s ro=%s", d.Dev, d.Bytes, d.LBS, d.RO))
		if r, ok := roles[d.Serial]; ok {
			dev[r] = d.Dev
		}
	}
	for _, v := range []string{"small", "d4k", "ro", "parted", "mdmem", "lvmdisk", "good", "exact", "hold"} {
		if dev[v] == "" {
			g.Fact("refuse_setup", "disk for $"+v+" not found (serial missing?)")
			return 1
		}
	}
	parted, mdmem, lvmdisk, good, exact, hold := dev["parted"], dev["mdmem"], dev["lvmdisk"], dev["good"], dev["exact"], dev["hold"]
	part := parted + "1"
	arrayBytes := g.ReadInt("/sys/block/"+mdname+"/size") * 512
	g.Fact("array_size", strconv.FormatInt(arrayBytes, 10))

	// The live stack's lower devices, from live-rw's table:
	// "0 N snapshot ORIGIN COW P 8" (MAJ:MIN, named through /sys/dev/block).
	table := g.DM("table", "live-rw").Run().Out()
	g.Fact("live_rw_table", table)
	var origin, cow string
	if f := strings.Fields(table); len(f) >= 5 {
		origin, cow = "/dev/"+g.DevName(f[3]), "/dev/"+g.DevName(f[4])
	}
	sqloop := squashfsLoop(g.Sh("losetup", "-a").Out())
	g.Fact("live_stack", fmt.Sprintf("origin=%s cow=%s squashfs_loop=%s", origin, cow, sqloop))

	// Targets that must be refused because something uses them.
	_ = os.MkdirAll("/mnt/refuse-part", 0o755)
	if g.OnConsole("mount", "-t", "ext4", "-o", "noinit_itable", part, "/mnt/refuse-part") != 0 {
		g.Fact("refuse_setup", "mount "+part+" failed")
		return 1
	}
	g.Fact("part_keep_sha", sha256File("/mnt/refuse-part/keep-me"))
	// Frozen, ext4 writes nothing more of its own (superblock, journal), so
	// any change to the disk's bytes from here on is someone else's; it
	// stays mounted, so it is just as much in use.
	if g.OnConsole("fsfreeze", "--freeze", "/mnt/refuse-part") != 0 {
		g.Fact("refuse_setup", "fsfreeze --freeze /mnt/refuse-part failed")
		return 1
	}
	if g.OnConsole("mdadm", "--build", "/dev/md5", "--level=1", "--raid-devices=1", "--force", mdmem) != 0 {
		g.Fact("refuse_setup", "mdadm --build /dev/md5 on "+mdmem+" failed")
		return 1
	}
	g.Fact("md5_holders", g.Names("/sys/block/"+strings.TrimPrefix(mdmem, "/dev/")+"/holders"))
	// LVM as a distribution sets it up: a PV, a VG, an active LV (no udev
	// here: lvm waits for no udev events and makes its own /dev nodes).
	// A root without lvm2 (the Debian media's) says so, and the host
	// leaves the case out by name.
	haveLVM := g.Sh("sh", "-c", "command -v lvm").RC == 0
	if haveLVM {
		_ = os.MkdirAll("/run/lvm", 0o755)
		_ = os.MkdirAll("/etc/lvm", 0o755)
		var lvmOut strings.Builder
		lvmOK := true
		for _, a := range [][]string{{"pvcreate", lvmdisk}, {"vgcreate", "rfvg", lvmdisk}, {"lvcreate", "-y", "-L", "8M", "-n", "keep", "rfvg"}} {
			if lvm(&lvmOut, a...) != 0 {
				lvmOK = false
				break
			}
		}
		_ = os.WriteFile("/run/lvm.out", []byte(lvmOut.String()), 0o644)
		if !lvmOK {
			g.FactFile("lvm_out", "/run/lvm.out")
			g.Fact("refuse_setup", "LVM on "+lvmdisk+" failed")
			return 1
		}
		lvmHold, _, _ := strings.Cut(g.Names("/sys/block/"+strings.TrimPrefix(lvmdisk, "/dev/")+"/holders"), " ")
		g.Fact("lvm_holder", lvmHold+" "+firstChars("/sys/block/"+lvmHold+"/dm/uuid", 4))
	} else {
		g.Fact("lvm_skipped", "no lvm command in this root")
	}
	// A regular file big enough to take the live root, and a symlink to the
	// array.
	if f, err := os.Create("/tmp/refuse-file"); err == nil {
		_ = f.Truncate(arrayBytes + 1048576)
		_ = f.Close()
	}
	_ = os.Remove("/tmp/refuse-link-to-array")
	_ = os.Symlink(md, "/tmp/refuse-link-to-array")
	_ = os.Remove("/tmp/pwned")

	g.Fact("pre_status_rc", strconv.Itoa(g.Sh("livemigrate", "status").RC))
	before := refuseState(mdname)
	_ = os.WriteFile("/run/refuse.state.before", []byte(before), 0o644)
	t0 := g.UptimeSeconds()
	sumsBefore := refuseSums(parted, lvmdisk)
	_ = os.WriteFile("/run/refuse.sums.before", []byte(sumsBefore), 0o644)
	g.Fact("sums_seconds", fmt.Sprintf("%.1f", g.UptimeSeconds()-t0))
	g.FactFile("pre_mdstat", "/proc/mdstat")

	// Refusals (never --dry-run, always --yes).
	for _, c := range []struct{ name, target string }{
		{"too_small", dev["small"]}, {"blocksize_4k", dev["d4k"]}, {"read_only", dev["ro"]},
		{"part_mounted", part}, {"disk_with_mounted_part", parted}, {"md_member", mdmem},
		{"nonexistent", "/dev/nonexistent-disk"},
		{"regular_file", "/tmp/refuse-file"}, {"char_device", "/dev/null"}, {"medium", "/dev/sr0"},
		{"live_rw", "/dev/mapper/live-rw"}, {"origin_loop", origin}, {"cow_loop", cow},
		{"squashfs_loop", sqloop},
		// A path a shell would run: it must stay text.
		{"metachar", "/tmp/a b;$(touch /tmp/pwned)"},
	} {
		refuseCase(c.name, c.target, "--target", c.target, "--yes")
	}
	if haveLVM {
		refuseCase("lvm_member", lvmdisk, "--target", lvmdisk, "--yes")
	}
	if nohook {
		refuseCase("symlink_to_root", "/tmp/refuse-link-to-array", "--target", "/tmp/refuse-link-to-array", "--yes")
		refuseCase("method_md_hook", "", "--target", good, "--yes", "--method", "md-hook")
		refuseNoMirror(good)
	} else {
		refuseCase("array", md, "--target", md, "--yes")
		refuseCase("symlink_to_array", "/tmp/refuse-link-to-array", "--target", "/tmp/refuse-link-to-array", "--yes")
		refuseCase("method_dm_mirror", "", "--target", good, "--yes", "--method", "dm-mirror")
	}
	refuseCase("method_unknown", "", "--target", good, "--yes", "--method", "rsync")
	if g.Exists("/tmp/pwned") {
		g.Fact("metachar_pwned", "yes")
	} else {
		g.Fact("metachar_pwned", "no")
	}
	// Usage errors: each would name a usable disk, so only the usage check
	// stands between it and a migration.
	refuseCase("empty_target", "", "--target", "", "--yes")
	refuseCase("no_target", "", "--yes")
	refuseCase("unknown_flag", "", "--target", good, "--yes", "--bogus-flag")
	refuseCase("bad_speed", "", "--target", good, "--yes", "--speed", "turbo")
	refuseCase("positional_arg", "", "--yes", good)

	// The good disks: accepted, plan printed, nothing written (--dry-run).
	out := refuseCase("good_dry_run", good, "--target", good, "--dry-run")
	g.Fact("good_plan", g.FirstLine(out))
	g.FactLines("good_plan_text", out)
	g.Fact("good_dry_line", strconv.Itoa(countExactLines(out, "Dry run: nothing was changed.")))
	out = refuseCase("exact_dry_run", exact, "--target", exact, "--raw-disk", "--dry-run")
	g.Fact("exact_plan", g.FirstLine(out))
	g.Fact("exact_dry_line", strconv.Itoa(countExactLines(out, "Dry run: nothing was changed.")))
	refuseCase("exact_whole_disk", exact, "--target", exact, "--yes")

	refuseHold(hold)

	// After: the same state, the same bytes, one member, status works.
	after := refuseState(mdname)
	_ = os.WriteFile("/run/refuse.state.after", []byte(after), 0o644)
	if before == after {
		g.Fact("state_same", "yes")
	} else {
		g.Fact("state_same", "no")
		diff := g.Sh("diff", "/run/refuse.state.before", "/run/refuse.state.after").Stdout
		_ = os.WriteFile("/run/refuse.state.diff", diff, 0o644)
		g.FactLines("state_diff", diff)
	}
	sumsAfter := refuseSums(parted, lvmdisk)
	_ = os.WriteFile("/run/refuse.sums.after", []byte(sumsAfter), 0o644)
	if sumsBefore == sumsAfter {
		g.Fact("sums_same", "yes")
	} else {
		g.Fact("sums_same", "no")
		g.FactLines("sums_before", []byte(sumsBefore))
		g.FactLines("sums_after", []byte(sumsAfter))
	}
	g.FactFile("post_mdstat", "/proc/mdstat")
	g.Fact("post_mshape", mirrorShape())
	members, leg := "", ""
	ms := g.MDMembers(md)
	for _, m := range ms {
		members += m + "(" + g.Read(g.MDDir(md)+"/"+m+"/state") + ") "
		leg = strings.TrimPrefix(m, "dev-")
	}
	g.Fact("md_members", strconv.Itoa(len(ms)))
	g.Fact("md_member_list", members)
	// The one member must be live-rw (a dm-N whose dm name is live-rw).
	g.Fact("md_live_leg", g.Read("/sys/block/"+leg+"/dm/name"))
	st := g.Cmd{Args: []string{"livemigrate", "status"}, Combined: true}.Run()
	g.Fact("post_status_rc", strconv.Itoa(st.RC))
	g.FactLines("post_status", st.Stdout)
	g.Fact("run_files", spaced(g.Glob("/run/livemigrate*")))

	// Leave the disks as found, and let e2fsck referee the mounted
	// filesystem.
	g.Fact("part_keep_sha_after", sha256File("/mnt/refuse-part/keep-me"))
	g.OnConsole("fsfreeze", "--unfreeze", "/mnt/refuse-part")
	g.Fact("part_umount_rc", strconv.Itoa(g.OnConsole("umount", "/mnt/refuse-part")))
	g.Fact("part_fsck_rc", strconv.Itoa(g.Sh("e2fsck", "-fn", part).RC))
	g.Fact("md5_stop_rc", strconv.Itoa(g.Sh("mdadm", "--stop", "/dev/md5").RC))
	if haveLVM {
		g.Fact("lvm_deactivate_rc", strconv.Itoa(lvm(io.Discard, "vgchange", "-an", "rfvg")))
	}
	_ = os.Remove("/tmp/refuse-file")
	_ = os.Remove("/tmp/refuse-link-to-array")
	return 0
}

// refuseNoMirror: with the running kernel's modules out of sight (a tmpfs
// over /lib/modules/KVER) and dm-mirror not loaded, the mirror method has
// no kernel to run on: migrate --yes on the good disk must refuse (3)
// before it partitions anything. The tmpfs goes away again before the
// state is compared.
func refuseNoMirror(good string) {
	// Debian's boot loads dm_mirror (unused): unload it first, as a
	// kernel without it would be.
	if g.Exists("/sys/module/dm_mirror") {
		g.Fact("no_dm_mirror_unload_rc", strconv.Itoa(g.Sh("modprobe", "-r", "dm_mirror").RC))
	}
	loaded := g.Exists("/sys/module/dm_mirror")
	g.Fact("no_dm_mirror_loaded", map[bool]string{true: "yes", false: "no"}[loaded])
	kver := strings.TrimSpace(g.Read("/proc/sys/kernel/osrelease"))
	mods := "/lib/modules/" + kver
	if loaded || g.OnConsole("mount", "-t", "tmpfs", "-o", "size=1m", "nomods", mods) != 0 {
		g.Fact("case_no_dm_mirror", "setup: dm_mirror loaded="+strconv.FormatBool(loaded)+" or "+mods+" not hidden")
		return
	}
	refuseCase("no_dm_mirror", good, "--target", good, "--yes")
	g.Fact("no_dm_mirror_umount_rc", strconv.Itoa(g.OnConsole("umount", mods)))
	g.Fact("no_dm_mirror_loaded_after", map[bool]string{true: "yes", false: "no"}[g.Exists("/sys/module/dm_mirror")])
}

// refuseCase runs `livemigrate migrate ARGS...` (bounded, stdin empty),
// reports the case and returns its stdout. target is what the message must
// name ("" when there is no device).
func refuseCase(name, target string, args ...string) []byte {
	r := g.Cmd{Args: append([]string{"livemigrate", "migrate"}, args...), Timeout: 120 * time.Second}.Run()
	_ = os.WriteFile("/run/rf.out", r.Stdout, 0o644)
	_ = os.WriteFile("/run/rf.err", r.Stderr, 0o644)
	g.Fact("case_"+name+"_target", target)
	g.Fact("case_"+name+"_stdout", strconv.Itoa(len(r.Stdout)))
	g.Fact("case_"+name+"_stderr_lines", strconv.Itoa(g.CountLines(r.Stderr)))
	g.Fact("case_"+name, strconv.Itoa(r.RC)+" "+r.FirstErr())
	g.Say("--- case %s: rc=%d", name, r.RC)
	_, _ = g.Console.Write(r.Stderr)
	return r.Stdout
}

// refuseHold: the target held from the check to the first write (rf-hold,
// a GPT disk). While migrate waits for the typed confirmation, an exclusive
// opener (mkfs.ext4) is turned away, and a partition table changed under it
// (zeroed with plain writes, which do not open exclusively) stops the run
// with 19 before anything is written. The prompt needs a terminal: tmux.
func refuseHold(hold string) {
	os.Setenv("TERM", "xterm-256color")
	os.Setenv("HOME", "/root")
	for _, f := range []string{"/run/hold.out", "/run/hold.err", "/run/hold.rc"} {
		_ = os.Remove(f)
	}
	g.OnConsole("tmux", "new-session", "-d", "-s", "hold", "-x", "120", "-y", "24",
		"livemigrate migrate --target "+hold+" >/run/hold.out 2>/run/hold.err; echo $? >/run/hold.rc")
	prompt := "Type " + hold + " to go on"
	for i := 0; i <= 600 && !strings.Contains(g.Read("/run/hold.out"), prompt); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if b, err := os.ReadFile("/run/hold.out"); err == nil {
		g.Fact("hold_prompt", strconv.Itoa(countLinesWith(b, prompt)))
	} else {
		g.Fact("hold_prompt", "")
	}
	mk := g.Cmd{Args: []string{"mkfs.ext4", "-q", "-F", hold}, Combined: true}.Run()
	_ = os.WriteFile("/run/hold.mkfs", mk.Stdout, 0o644)
	g.Fact("hold_mkfs", fmt.Sprintf("rc=%d %s", mk.RC, g.FirstLine(mk.Stdout)))
	mib := g.ReadInt("/sys/block/"+strings.TrimPrefix(hold, "/dev/")+"/size") / 2048
	if err := zeroMiB(hold, 0, mib-1); err != nil {
		g.Say("refuse: zeroing %s: %v", hold, err)
	}
	g.Fact("hold_zeroed", fmt.Sprintf("first and last MiB of %s (%d MiB)", hold, mib))
	g.OnConsole("tmux", "send-keys", "-t", "hold", hold, "Enter")
	for i := 0; i <= 600 && g.Read("/run/hold.rc") == ""; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	g.Fact("hold_target", hold)
	rc := "none"
	if b, err := os.ReadFile("/run/hold.rc"); err == nil {
		rc = strings.TrimRight(string(b), "\n")
	}
	errb, _ := os.ReadFile("/run/hold.err")
	g.Fact("hold_result", rc+" "+g.FirstLine(errb))
	out, _ := os.ReadFile("/run/hold.out")
	g.Fact("hold_steps", strconv.Itoa(countLinesPrefixed(out, "==> ")))
	g.Sh("tmux", "kill-session", "-t", "hold")
}

// zeroMiB writes zeros over the given MiBs of dev and syncs them, as
// `dd if=/dev/zero of=DEV bs=1M seek=N count=1 conv=fsync` does: a plain
// open, not an exclusive one.
func zeroMiB(dev string, mibs ...int64) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	for _, m := range mibs {
		if _, err := f.WriteAt(zero, m<<20); err != nil {
			return err
		}
	}
	return f.Sync()
}

// lvmConfig: no udev here.
const lvmConfig = "activation { udev_sync=0 udev_rules=0 } devices { obtain_device_list_from_udev=0 }"

func lvm(out io.Writer, args ...string) int {
	a := append([]string{"lvm", args[0], "--config", lvmConfig}, args[1:]...)
	return g.Cmd{Args: a, Stdout: out, Combined: true}.Run().RC
}

// refuseState is everything a migration would change, and nothing that
// moves by itself during the live session.
func refuseState(mdname string) string {
	md := "/dev/" + mdname
	var b strings.Builder
	b.WriteString("== mdstat\n" + g.Read("/proc/mdstat") + "\n")
	if !g.Exists(g.MDDir(md)) {
		// / on live-rw itself: its table and the dm devices below say it.
		b.WriteString("== " + mdname + ": no md\n")
	}
	b.WriteString("== " + mdname + " members\n")
	for _, m := range g.MDMembers(md) {
		b.WriteString(m + " " + g.Read(g.MDDir(md)+"/"+m+"/state") + "\n")
	}
	for _, a := range []string{"level", "raid_disks", "degraded", "array_state", "component_size", "sync_action", "sync_speed_min", "sync_speed_max"} {
		v := g.MDAttr(md, a)
		// md flips active <-> clean by itself as writes start and stop
		// (safe mode); any other state is a change.
		if a == "array_state" && (v == "active" || v == "clean") {
			v = "active-or-clean"
		}
		b.WriteString(a + "=" + v + "\n")
	}
	dm := g.DM("table")
	dm.Combined = true
	b.WriteString("== dm\n" + string(dm.Run().Stdout))
	b.WriteString("== loops\n" + string(g.Cmd{Args: []string{"losetup", "-a"}, Combined: true}.Run().Stdout))
	b.WriteString("== mounts\n" + g.Read("/proc/mounts") + "\n")
	vds := g.Glob("/sys/block/vd*")
	b.WriteString("== holders\n")
	for _, d := range vds {
		b.WriteString(filepath.Base(d) + ": " + g.Names(d+"/holders") + "\n")
	}
	b.WriteString("== ro\n")
	for _, d := range vds {
		b.WriteString(filepath.Base(d) + ": " + g.Read(d+"/ro") + "\n")
	}
	b.WriteString("== refuse-file\n")
	if st, err := os.Stat("/tmp/refuse-file"); err == nil {
		fmt.Fprintf(&b, "%d %d\n", st.Size(), st.ModTime().Unix())
	} else {
		b.WriteString(err.Error() + "\n")
	}
	return b.String()
}

// refuseSums: sha256 of what the host cannot check after poweroff (the
// image of the mounted disk changes under the guest's own mount and
// unmount, the LVM disk under lvm's setup and teardown): those disks,
// whole, read past the page cache's old copy.
func refuseSums(devs ...string) string {
	g.DropCaches()
	var b strings.Builder
	for _, d := range devs {
		b.WriteString(sha256File(d) + "  " + d + "\n")
	}
	return b.String()
}

// sha256File is the hex sha256 of a file or device, or "" when unreadable
// (the shell's `sha256sum F | cut -d' ' -f1` printed nothing then).
func sha256File(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// squashfsLoop is the first loop device that `losetup -a` shows backed by a
// squashfs.img ("/dev/loop0: [..]:.. (/run/.../squashfs.img)").
func squashfsLoop(losetupA string) string {
	for _, l := range strings.Split(losetupA, "\n") {
		if strings.Contains(l, "squashfs.img") {
			dev, _, _ := strings.Cut(l, ":")
			return dev
		}
	}
	return ""
}

// firstChars is the first n characters of a file's first line (cut -c1-N),
// or the error when it cannot be read.
func firstChars(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := g.FirstLine(b)
	if len(l) > n {
		l = l[:n]
	}
	return l
}

// countLinesIf counts the lines of text that keep says yes to (grep -c).
func countLinesIf(text []byte, keep func(string) bool) int {
	n := 0
	for _, l := range g.Lines(text) {
		if keep(l) {
			n++
		}
	}
	return n
}

func countExactLines(text []byte, want string) int {
	return countLinesIf(text, func(l string) bool { return l == want })
}

func countLinesWith(text []byte, sub string) int {
	return countLinesIf(text, func(l string) bool { return strings.Contains(l, sub) })
}

func countLinesPrefixed(text []byte, prefix string) int {
	return countLinesIf(text, func(l string) bool { return strings.HasPrefix(l, prefix) })
}
