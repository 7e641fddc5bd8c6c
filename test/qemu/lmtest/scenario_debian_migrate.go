package main

import (
	"os"
	"sort"
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// sshFingerprints is the SSH host keys' fingerprints ("SHA256:...", the
// second word of ssh-keygen -lf, after the key's bits), sorted, each
// followed by a comma.
func sshFingerprints() string {
	var fp []string
	for _, k := range g.Glob("/etc/ssh/ssh_host_*_key.pub") {
		fp = append(fp, cutField(g.All("ssh-keygen", "-lf", k), 2))
	}
	sort.Strings(fp)
	var b strings.Builder
	for _, f := range fp {
		b.WriteString(f + ",")
	}
	return b.String()
}

// emptyPasswords: the accounts anyone can log in to without a password (an
// empty field in /etc/shadow or /etc/passwd), each followed by a space.
func emptyPasswords() string {
	return g.OneLine("awk", "-F:", `$2 == "" { print $1 }`, "/etc/shadow", "/etc/passwd")
}

// nopasswdFiles lists the sudoers files with NOPASSWD, each followed by a
// space.
func nopasswdFiles() string {
	return strings.ReplaceAll(string(g.Sh("grep", "-rls", "NOPASSWD", "/etc/sudoers", "/etc/sudoers.d").Stdout), "\n", " ")
}

// infoMessages are the messages of the info events of migrate --json, JSON
// escapes of quotes undone, one per line.
func infoMessages(jsonl []byte) []byte {
	var b strings.Builder
	for _, l := range g.Lines(jsonl) {
		if !strings.Contains(l, `"event":"info"`) {
			continue
		}
		if m := messageRE.FindStringSubmatch(l); m != nil {
			b.WriteString(strings.ReplaceAll(m[1], `\"`, `"`) + "\n")
		}
	}
	return []byte(b.String())
}

// scenarioDebianMigrate: the migrate scenario (writer + `livemigrate
// migrate --target DEV --yes --json`, facts before, during, after), framed
// by what a systemd system adds: where / is, which units failed, and what
// systemd thinks of the mounts afterwards; with finalize, the scenario for
// the target's own boot and (lmtest.rerun=1|fail) the same migrate again.
//
//	lmtest.target=DEV (default /dev/vda)   lmtest.speed=fast|gentle
func scenarioDebianMigrate() int {
	g.Fact("pre_root_source", findmnt("SOURCE", "/"))
	// What every copy of the live image shares (or the session made up):
	// an installed system must have its own.
	g.Fact("live_machine_id", g.All("cat", "/etc/machine-id"))
	g.Fact("live_ssh_fp", sshFingerprints())
	g.Fact("live_hostname", g.Out("hostname"))
	// The live-only access finalize must remove (the image has all of it:
	// the controls for the installed system's checks).
	g.Fact("live_nopasswd", nopasswdFiles())
	g.Fact("live_empty_passwords", emptyPasswords())
	g.FactFile("pre_mdstat", "/proc/mdstat")
	g.Fact("pre_live_rw_table", g.All("dmsetup", "table", "live-rw"))
	// lmtest.rerun=fail: the first run fails at its last action, as with a
	// package missing (GRUB's grub-mkconfig hidden): migrate must exit 23;
	// the package comes back and the rerun below must finish the install.
	rerun := g.Cmdline("lmtest.rerun", "0")
	const mkconfig = "/usr/sbin/grub-mkconfig"
	if rerun == "fail" {
		_ = os.Rename(mkconfig, mkconfig+".lmtest-hidden")
	}
	run := runMigrate()
	mrc := run.status
	if rerun == "fail" {
		_ = os.Rename(mkconfig+".lmtest-hidden", mkconfig)
		// 23 is this run's success.
		if run.rc == 23 {
			mrc = 0
		}
	}
	g.Fact("post_root_source", findmnt("SOURCE", "/"))
	g.Fact("post_failed_units", g.OneLine("systemctl", "--failed", "--no-legend", "--plain"))
	g.Fact("post_system_state", g.All("systemctl", "is-system-running"))
	// systemd's mount units for the released live medium must not linger
	// as "active" over nothing (it would try to unmount them at shutdown).
	g.Fact("post_initramfs_units", g.OneLine("systemctl", "list-units", "--no-legend", "--plain", "--all", "run-initramfs*"))
	factLsblk("post_lsblk")
	// The filesystem now under / (on the target, maybe in a partition
	// livemigrate made): the next boot's root=UUID=.
	g.Fact("post_root_uuid", findmnt("UUID", "/"))
	slaves := "/sys/block/" + strings.TrimPrefix(run.md, "/dev/") + "/slaves"
	if g.Exists(slaves) {
		g.Fact("post_root_member", strings.TrimSpace(g.Names(slaves)))
	} else {
		g.Fact("post_root_member", "cd: can't cd to "+slaves)
	}
	// With finalize, the next boot is through the target's own GRUB, whose
	// command line the test does not write: leave it the scenario (see
	// lmtest.service and guest.Cmdline).
	if mrc == 0 && g.Cmdline("lmtest.finalize", "0") == "1" {
		jsonl, _ := os.ReadFile("/run/migrate.jsonl")
		g.FactLines("finalize", infoMessages(jsonl))
		// The password chosen for the live user goes along, so the
		// installed system can check that it is the one set (a test
		// password).
		pw := g.Cmdline("lmtest.password", "")
		if rerun != "0" {
			pw = debianRerun(run)
		}
		_ = os.MkdirAll("/etc/lmtest", 0o755)
		wb, _ := os.ReadFile("/run/writer.out")
		words := "lmtest.scenario=installed lmtest.upto=" + strings.Join(prefixedValues(wb, "acked="), "\n") + " lmtest.end=poweroff"
		if pw != "" {
			words += " lmtest.password=" + pw
		}
		_ = os.WriteFile("/etc/lmtest/cmdline", []byte(words+"\n"), 0o644)
		g.Sh("sync")
	}
	return mrc
}

// debianRerun: lmtest.rerun=1 (or fail): the documented fix after exit 23
// is to run the same command again; it must only finish what is left. The
// person first does as finalize advised (a password for the live user, by
// hand), and leaves a file on the ESP; then the same migrate again.
// Nothing the first run made may change: machine-id, SSH host keys, the
// shadow hashes, the ESP (its FAT volume id, the file on it). Returns the
// password set.
func debianRerun(run migrateRun) string {
	pw := "lm-by-hand-pw"
	g.Cmd{Args: []string{"chpasswd"}, Stdin: strings.NewReader("live:" + pw + "\n"), Stdout: g.Console, Combined: true}.Run()
	_ = os.WriteFile("/boot/efi/lmtest-marker", []byte("kept\n"), 0o644)
	g.Sh("sync")
	ids := func() []byte {
		shadow := ""
		for _, l := range g.Lines(g.Sh("getent", "shadow", "live", "guest").Stdout) {
			f := strings.SplitN(l, ":", 3)
			shadow += strings.Join(f[:min(2, len(f))], ":") + " "
		}
		esp := g.All("blkid", "-p", "-o", "value", "-s", "UUID", findmnt("SOURCE", "/boot/efi"))
		return []byte("machine-id " + g.Read("/etc/machine-id") + "\n" +
			"ssh " + sshFingerprints() + "\n" +
			"shadow " + shadow + "\n" +
			"esp " + esp + " " + g.All("cat", "/boot/efi/lmtest-marker") + "\n")
	}
	before := ids()
	_ = os.WriteFile("/run/ids-before", before, 0o644)
	g.FactLines("rerun_ids_before", before)
	args := append([]string{"livemigrate", "migrate", "--target", run.target, "--yes", "--json", "--speed", run.speed}, run.fin...)
	r := g.Cmd{Args: args}.Run()
	_ = os.WriteFile("/run/migrate2.jsonl", r.Stdout, 0o644)
	_ = os.WriteFile("/run/migrate2.err", r.Stderr, 0o644)
	g.Fact("rerun_rc", strconv.Itoa(r.RC))
	g.FactLines("rerun_finalize", infoMessages(r.Stdout))
	lines := g.Lines(r.Stdout)
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	g.Fact("rerun_last", last)
	if len(r.Stderr) > 0 {
		g.FactLines("rerun_err", r.Stderr)
	}
	after := ids()
	_ = os.WriteFile("/run/ids-after", after, 0o644)
	g.FactLines("rerun_ids_after", after)
	if string(before) == string(after) {
		g.Fact("rerun_ids", "unchanged")
	} else {
		g.Fact("rerun_ids", "changed")
	}
	return pw
}

// scenarioDebianVerify: the verify scenario (records acknowledged during
// the migration, the live session's data, no md array, no dm device),
// booted from the migrated target alone, plus: / is the plain target, and
// dpkg --verify finds every packaged file byte for byte as shipped (an
// independent check that md copied the whole root).
//
//	lmtest.upto=N
func scenarioDebianVerify() int {
	g.Fact("root_source", findmnt("SOURCE", "/"))
	g.Fact("root_fstype", findmnt("FSTYPE", "/"))
	g.FactFile("mdstat", "/proc/mdstat")
	g.Fact("dm_ls", g.OneLine("dmsetup", "ls"))
	g.Fact("analyze", g.FirstLine([]byte(g.All("systemd-analyze", "time"))))
	vrc := scenarioVerify()
	// scenarioVerify counts arrays in /proc/mdstat; on a plain Debian
	// target md is not even loaded and the file does not exist: that is
	// "none" too.
	n := 0
	if b, err := os.ReadFile("/proc/mdstat"); err == nil {
		n = countLinesPrefixed(b, "md")
	}
	g.Fact("mdstat_arrays", strconv.Itoa(n))
	t0 := g.UptimeSeconds()
	dv := g.Cmd{Args: []string{"dpkg", "--verify"}, Combined: true}.Run()
	_ = os.WriteFile("/run/dpkg-verify", dv.Stdout, 0o644)
	g.Fact("dpkg_verify_rc", strconv.Itoa(dv.RC))
	g.Fact("dpkg_verify_lines", strconv.Itoa(g.CountLines(dv.Stdout)))
	g.Fact("dpkg_verify_seconds", strconv.FormatFloat(g.UptimeSeconds()-t0, 'f', 1, 64))
	lines := g.Lines(dv.Stdout)
	g.FactLines("dpkg_verify", []byte(strings.Join(lines[:min(20, len(lines))], "\n")))
	return vrc
}

// cutField is `cut -d' ' -f N` of one line: its Nth space-separated field
// ("" when there are fewer; the whole line when it has no space at all, as
// cut prints it).
func cutField(line string, n int) string {
	f := strings.Split(line, " ")
	if len(f) == 1 {
		return line
	}
	if n > len(f) {
		return ""
	}
	return f[n-1]
}
