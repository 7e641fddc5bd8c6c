package suites

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livemigrate/livemigrate/test/vm"
)

// install: the live boot under the row's firmware, `livemigrate migrate`
// WITH finalize onto its layout: disk (a blank disk: whole-disk mode) or
// partition (an MBR disk whose first partition holds a filesystem with
// data, the target its second partition), power off; then the firmware
// boots the target alone (no medium, no -kernel, fresh UEFI variables)
// through the GRUB finalize installed: the "installed" scenario, power
// off. The host checks the data partition's checksum, e2fsck, and that
// the identities differ from the live session's.
func (d *debian) install() {
	r := d.r
	// By the row (two rows share firmware and layout): each keeps its files.
	name := r.name
	if !strings.HasPrefix(name, r.flavour+"-") {
		name = r.flavour + "-" + name
	}
	target := filepath.Join(d.out, "runs", name+".img")
	must(d.t, os.MkdirAll(filepath.Dir(target), 0o755))
	must(d.t, vm.Sparse(target, 4<<30))
	tdev, rootPart, dataSHA := "/dev/vda", "/dev/vda3", ""
	if r.layout == "partition" {
		// An MBR disk as another system left it: a 256 MiB ext4 with
		// files the user cares about, then an empty partition for the
		// root. MBR, so BIOS GRUB embeds in the gap before the first
		// partition.
		dataSHA = d.dataPartition(target)
		vm.Logf("data partition (sectors 2048+524288) sha256 %s", dataSHA)
		tdev, rootPart = "/dev/vda2", "/dev/vda2"
	}
	// What the person chose (lmtest.hostname, lmtest.password;
	// lmtest.ui=tui for the wizard): checked on the installed system.
	wantHost, wantPW, rerun := "", "", "0"
	for _, w := range strings.Fields(r.append) {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case "lmtest.hostname":
			wantHost = v
		case "lmtest.password":
			wantPW = v
		case "lmtest.rerun":
			rerun = v
		}
	}
	// lmtest.rerun=1|fail: between the two runs the person set this
	// password by hand (the migrate scenario); the rerun must keep it.
	// With fail, the first run fails at GRUB (exit 23) and the rerun
	// installs it.
	if rerun != "0" {
		wantPW = "lm-by-hand-pw"
	}
	wantRC := "0"
	if rerun == "fail" {
		wantRC = "23"
	}
	tui := strings.Contains(r.append, "lmtest.ui=tui")

	// Finalize rebuilds the initramfs and installs GRUB twice under TCG:
	// minutes more than a plain migrate.
	liveCmd := d.testArgs + " lmtest.scenario=migrate lmtest.target=" + tdev + " lmtest.speed=fast lmtest.finalize=1 " + r.append
	live := &vm.Machine{Disks: []vm.Disk{{Path: target}}, Timeout: debianTimeout + 1500*time.Second,
		Expect: []string{"scenario_rc=0", "migrate_rc=" + wantRC}}
	if r.firmware == "uefi" {
		// UEFI: OVMF boots the ISO's GRUB (a direct kernel boot under
		// OVMF does not find the CD here), its entry carrying the
		// scenario.
		iso, err := d.grubISO(d.dir(name+"-live"), liveCmd)
		if !d.j.Check(name+": grub_iso", err == nil, fmt.Sprint(err)) {
			return
		}
		live.FirmwareBoot, live.UEFI, live.CDROM = true, true, iso
	} else {
		live.CDROM, live.Append = d.env["LIVE_ISO"], d.liveArgs+" "+liveCmd
	}
	lres, ok := d.vm(name+"-live", "power-down", live)
	if !ok {
		return
	}
	F := lres.Facts
	logFacts(F, "migrate_seconds", "recovered_bytes", "acked", "post_root_source", "post_root_uuid")
	said := finalizeSaid(F)
	vm.Logf("  finalize: %s", bar(said))
	// / is still shown as mounted from the array: finalize's second mount
	// for GRUB (through another node, which btrfs takes as the device's
	// new name) left no trace in mountinfo.
	d.j.Check("post_root_source", F.Get("post_root_source") == F.Get("pre_root_source"),
		"after finalize / is mounted from "+F.Get("post_root_source")+", before from "+F.Get("pre_root_source"))
	d.judgeWriter(name+"-live", F)
	// The controls: the live image really has the live-only access that
	// the installed system is checked for below.
	d.j.Check("live_nopasswd", strings.Contains(F.Get("live_nopasswd"), "/etc/sudoers "), "the image has no NOPASSWD rule in /etc/sudoers: '"+F.Get("live_nopasswd")+"'")
	d.j.Check("live_empty_passwords", strings.Contains(F.Get("live_empty_passwords"), "guest "), "the image has no empty-password guest account: '"+F.Get("live_empty_passwords")+"'")
	vm.Logf("  live image: NOPASSWD in %s; empty passwords: %s", F.Get("live_nopasswd"), F.Get("live_empty_passwords"))
	if rerun == "fail" {
		d.j.Check("first_run_grub_failed", anyLine(F.Lines("finalize"), func(l string) bool {
			return strings.Contains(l, "Install the GRUB boot loader: FAILED: grub-mkconfig is missing")
		}), "the first run did not fail at GRUB: "+F.Get("migrate_last"))
		d.j.Check("rerun_installed_grub", anyLine(F.Lines("rerun_finalize"), func(l string) bool {
			return strings.Contains(l, "Install the GRUB boot loader: ") && !strings.Contains(l, "earlier run") && strings.Contains(l, "GRUB for BIOS")
		}), "the rerun did not install GRUB: "+bar(F.Lines("rerun_finalize")))
		if d.j.OK() {
			vm.Logf("  first run: exit 23 at GRUB (grub-mkconfig hidden); the rerun installed it")
		}
	}
	if rerun != "0" {
		// The same migrate again: exit 0, nothing the first run made is
		// made again, and each action says so.
		vm.Logf("  rerun: %s", bar(F.Lines("rerun_finalize")))
		d.j.Check("rerun_rc", F.Get("rerun_rc") == "0", "the rerun exited "+F.Get("rerun_rc")+": "+F.Get("rerun_last"))
		d.j.Check("rerun_ids", F.Get("rerun_ids") == "unchanged",
			"the rerun changed identities: "+bar(F.Lines("rerun_ids_before"))+" -> "+bar(F.Lines("rerun_ids_after")))
		for _, a := range []string{"EFI system partition", "machine-id", "SSH host keys", "Remove autologin"} {
			d.j.Check("rerun_said: "+a, anyLine(F.Lines("rerun_finalize"), func(l string) bool {
				return strings.Contains(l, a) && strings.Contains(l, "earlier run")
			}), "the rerun's '"+a+"' does not say an earlier run did it")
		}
		vm.Logf("  rerun: exit 0; unchanged: %s", bar(F.Lines("rerun_ids_after")))
	}
	uuid := F.Get("post_root_uuid")
	if !d.j.Check("post_root_uuid", uuid != "", "the live session did not report the root UUID") {
		return
	}
	d.judgeUUID(F, said, uuid)
	if strings.Contains(r.append, "lmtest.signal_finalize=") {
		// The signal came during finalize (past the point of no return):
		// migrate finished (rc 0 above) and said it noted the interrupt.
		d.j.Check("finalize_signal", strings.HasSuffix(F.Get("finalize_signal"), "(kill rc=0)"), "no signal was sent during finalize: "+F.Get("finalize_signal"))
		n, err := strconv.Atoi(F.Get("late_interrupt_warnings"))
		d.j.Check("late_interrupt_warnings", err == nil && n >= 1, "no warning about the interrupt: late_interrupt_warnings='"+F.Get("late_interrupt_warnings")+"'")
		vm.Logf("  %s: migrate exit 0, interrupt noted, finalize completed", F.Get("finalize_signal"))
	}
	if !d.j.OK() {
		return
	}

	// The target alone, booted by the firmware: no medium, no -kernel.
	// Through an overlay (WindowBoot): a kernel that crashes under the
	// emulator before the scenario's result is retried from the disk as
	// finalize left it; the overlay is committed when the boot ends.
	// With an earlier install from the same medium in the same machine
	// (its disk second, writes to it thrown away): each finds its own
	// root by its own UUID.
	bname := name + "-boot"
	disks := []vm.Disk{{Path: target, Overlay: true}}
	other := earlierInstall(d.r.medium(), target)
	if other != nil {
		disks = append(disks, vm.Disk{Path: other.img, Drive: "snapshot=on"})
		vm.Logf("  booting with %s's disk (root UUID %s) attached as the second disk", other.row, other.uuid)
	}
	bres, ok := d.vm(bname, "power-down", &vm.Machine{FirmwareBoot: true, UEFI: r.firmware == "uefi",
		Disks: disks, Window: vm.WindowBoot, Timeout: debianTimeout + 300*time.Second,
		Expect: []string{"scenario_start=installed", "scenario_rc=0", "verify_rc=0",
			"dm_devices=0", "session_sha=" + F.Get("session_sha"),
			"firmware=" + r.firmware, "root_source=" + rootPart,
			"nopasswd=", "autologin_units=", "autologin_running=0",
			"sessions=0", "initrd_live=0",
			"empty_passwords=", "sudoers_check=ok", "sudoers_mode=440",
			"guest_user=guest L"}})
	if !ok {
		return
	}
	V := bres.Facts
	logFacts(V, "firmware", "kernel_cmdline", "root_source", "root_fstype", "verify", "machine_id", "hostname", "live_user", "guest_user", "empty_passwords", "nopasswd", "sudoers_check", "esp", "esp_removable", "grub_cfg_root", "initrd_live", "dpkg_verify_rc", "system_state", "failed_units")
	vm.Logf("  fstab: %s", bar(V.Lines("fstab")))
	d.noArrays(bname, V)
	// GRUB's menu on the serial console: the firmware booted GRUB, which
	// booted the kernel (BOOT_IMAGE= is GRUB's mark on the command line).
	con, _ := os.ReadFile(filepath.Join(bres.Dir, "console.log"))
	d.j.Check("grub_console", strings.Contains(string(con), "GNU GRUB"), "no GRUB on the console")
	d.j.Check("booted_by_grub", strings.Contains(V.Get("kernel_cmdline"), "BOOT_IMAGE="), "the kernel was not started by GRUB: "+V.Get("kernel_cmdline"))
	// Identities: none shared with the live session.
	mid, lmid := V.Get("machine_id"), F.Get("live_machine_id")
	d.j.Check("machine_id", regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(mid) && mid != lmid, fmt.Sprintf("machine-id '%s' (live: '%s')", mid, lmid))
	fp := V.Get("ssh_fp")
	d.j.Check("ssh_fp", strings.Contains(fp, "SHA256:"), "no SSH host keys on the installed system: '"+fp+"'")
	for _, x := range strings.Split(F.Get("live_ssh_fp"), ",") {
		if x != "" {
			d.j.Check("ssh_key_new: "+x, !strings.Contains(fp, x), "SSH host key "+x+" is the live image's")
		}
	}
	if wantHost != "" {
		d.j.Check("hostname", V.Get("hostname") == wantHost, "hostname "+V.Get("hostname")+" (want "+wantHost+")")
	} else {
		d.j.Check("hostname", V.Get("hostname") == F.Get("live_hostname"), "hostname "+V.Get("hostname")+" (want the live one kept, "+F.Get("live_hostname")+")")
	}
	if wantPW != "" {
		d.j.Check("live_user", V.Get("live_user") == "live P", "live user: "+V.Get("live_user")+" (want a password set)")
		if d.j.Check("live_password", V.Get("live_password") == "matches" && V.Get("live_password_wrong") == "differs",
			"the live user's password is not the one chosen: "+V.Get("live_password")+" (wrong one: "+V.Get("live_password_wrong")+")") {
			vm.Logf("  live user's password: the chosen one (a wrong one: %s)", V.Get("live_password_wrong"))
		}
	} else {
		d.j.Check("live_user", V.Get("live_user") == "live L", "live user: "+V.Get("live_user")+" (want locked)")
	}
	if tui {
		// The wizard: its review announced what finalize then did, and
		// the password never reached a screen.
		raw := rawFactLines(filepath.Join(lres.Dir, "facts.txt"))
		d.j.Check("tui_final", anyLine(raw, regexp.MustCompile(`^tui_final\.[0-9]*=Done: / now lives on`).MatchString), "the wizard's last screen is not Done")
		if wantPW != "" {
			d.j.Check("tui_plan_password", F.Get("tui_plan_password") == "the live user's password you chose",
				"the wizard's plan did not announce the password: '"+F.Get("tui_plan_password")+"'")
			d.j.Check("tui_no_password", !anyLine(raw, func(l string) bool {
				return strings.HasPrefix(l, "tui_") && strings.Contains(l, wantPW)
			}), "the password was shown on a wizard screen")
		}
		final := F.Lines("tui_final")
		vm.Logf("  wizard: %s", bar(final[:min(6, len(final))]))
		if r.layout == "partition" {
			if d.j.Check("tui_plan_outside", vm.Glob(F.Get("tui_plan_outside"), "Also writes, outside *: GRUB's boot code in the MBR of /dev/*"),
				"the wizard's plan does not list the writes outside the partition: '"+F.Get("tui_plan_outside")+"'") {
				vm.Logf("  wizard's plan: %s", F.Get("tui_plan_outside"))
			}
		}
	}
	if r.layout == "partition" {
		sha, err := sectionSHA(target, 1<<20, 256<<20)
		if d.j.Check("data_partition", err == nil && sha == dataSHA, fmt.Sprintf("the data partition changed: %s -> %s (%v)", dataSHA, sha, err)) {
			vm.Logf("data partition sha256 unchanged: %s", sha)
		}
	} else {
		d.j.Check("esp", strings.Contains(V.Get("esp"), "vfat"), "the ESP is not mounted on /boot/efi: '"+V.Get("esp")+"'")
	}
	vm.Logf("identities: machine-id %s -> %s; SSH host keys all new", lmid, mid)
	// The installed system is found by its UUID: fstab and GRUB's
	// configuration name it.
	d.j.Check("fstab_uuid", anyLine(V.Lines("fstab"), func(l string) bool { return strings.HasPrefix(l, "UUID="+uuid+" / ") }),
		"fstab does not mount / by UUID="+uuid+": "+bar(V.Lines("fstab")))
	d.j.Check("grub_cfg_root", V.Get("grub_cfg_root") == "root=UUID="+uuid, "GRUB's configuration boots "+V.Get("grub_cfg_root")+", not root=UUID="+uuid)
	if other != nil && d.j.OK() {
		vm.Logf("  two installs from one medium in one machine: this one (UUID %s) booted its own root beside %s's (UUID %s)", uuid, other.row, other.uuid)
	}
	d.hostFsck(target, uuid)
	d.figures(lres, F, V)
	if d.j.OK() {
		noteInstall(d.r.medium(), installed{row: d.r.id(), img: target, uuid: uuid})
	}
}

// installed is a row's installed disk, for the next install of the same
// medium to boot beside.
type installed struct{ row, img, uuid string }

var (
	installsMu sync.Mutex
	installs   = map[string][]installed{}
)

func noteInstall(medium string, in installed) {
	installsMu.Lock()
	defer installsMu.Unlock()
	installs[medium] = append(installs[medium], in)
}

// earlierInstall: the last install of medium this run made, not img.
func earlierInstall(medium, img string) *installed {
	installsMu.Lock()
	defer installsMu.Unlock()
	l := installs[medium]
	for i := len(l) - 1; i >= 0; i-- {
		if l[i].img != img {
			if _, err := os.Stat(l[i].img); err == nil {
				in := l[i]
				return &in
			}
		}
	}
	return nil
}

// judgeUUID: where the medium allows it (ext4 with metadata_csum_seed,
// trixie's kernel and GRUB), finalize gave the installed filesystem a new
// UUID, different from every other install's of this run; elsewhere it
// kept the medium's and said why.
func (d *debian) judgeUUID(F vm.Facts, said []string, uuid string) {
	line := ""
	for _, l := range said {
		if strings.HasPrefix(l, "Give the root filesystem its own UUID: ") {
			line = l
		}
	}
	medium := d.env["ROOTFS_UUID"]
	if d.env["ROOTFS_FS"] == "ext4" && d.env["ROOTFS_CSUM_SEED"] == "1" {
		if d.j.Check("new_fs_uuid", uuid != medium && strings.Contains(line, "UUID is now "+uuid),
			fmt.Sprintf("the installed filesystem has UUID %s (the medium's: %s); finalize said: %q", uuid, medium, line)) {
			vm.Logf("  filesystem UUID: %s, new (the medium's: %s)", uuid, medium)
		}
		installsMu.Lock()
		for _, l := range installs {
			for _, in := range l {
				d.j.Check("uuid_unique", in.uuid != uuid, "this install has the UUID of "+in.row+"'s: "+uuid)
			}
		}
		installsMu.Unlock()
		return
	}
	if d.j.Check("kept_fs_uuid", uuid == medium && strings.Contains(line, "kept "+medium+": "),
		fmt.Sprintf("the installed filesystem has UUID %s (the medium's: %s); finalize said: %q", uuid, medium, line)) {
		vm.Logf("  filesystem UUID: the medium's %s, kept (%s)", uuid, strings.TrimPrefix(line, "Give the root filesystem its own UUID: kept "+medium+": "))
	}
}

// finalizeSaid is finalize's "Title: message" line per action: from the
// JSON events (the CLI), else from the wizard's Done screen, where each is
// an item "- Title: message" under "Next boot", wrapped to the screen.
func finalizeSaid(F vm.Facts) []string {
	if l := F.Lines("finalize"); len(l) > 0 {
		return l
	}
	var items []string
	in := false
	for _, l := range F.Lines("tui_final") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "- "):
			items = append(items, strings.TrimPrefix(t, "- "))
			in = true
		case in && t != "" && !strings.HasPrefix(t, "(lines "):
			items[len(items)-1] += " " + t
		default:
			in = false
		}
	}
	return items
}

// dataPartition lays out target as an MBR disk with a 256 MiB ext4
// (label userdata, 8 MiB of random "photos" and a note) at sector 2048
// and an empty second partition, and returns the first's sha256.
func (d *debian) dataPartition(target string) string {
	t := d.t
	_, err := vm.Host("label: dos\nstart=2048, size=524288, type=83\nstart=526336, type=83\n", "sfdisk", "-q", target)
	must(t, err)
	tmp := t.TempDir()
	files := filepath.Join(tmp, "files")
	must(t, os.Mkdir(files, 0o755))
	must(t, os.WriteFile(filepath.Join(files, "photos.bin"), vm.RandomBytes(8<<20), 0o644))
	must(t, os.WriteFile(filepath.Join(files, "notes.txt"), []byte("the user's own notes\n"), 0o644))
	img := filepath.Join(tmp, "data.img")
	_, err = vm.Host("", "mkfs.ext4", "-q", "-F", "-L", "userdata", "-d", files, img, "256M")
	must(t, err)
	_, err = vm.Host("", "dd", "if="+img, "of="+target, "bs=1M", "seek=1", "conv=notrunc", "status=none")
	must(t, err)
	sha, err := sectionSHA(target, 1<<20, 256<<20)
	must(t, err)
	return sha
}

// sectionSHA is the hex sha256 of n bytes of path from off.
func sectionSHA(path string, off, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fsckCommand is the filesystem's own checker, read-only: e2fsck -fn,
// xfs_repair -n, btrfs check --readonly.
func fsckCommand(fs, dev string) []string {
	switch fs {
	case "xfs":
		return []string{"xfs_repair", "-n", dev}
	case "btrfs":
		return []string{"btrfs", "check", "--readonly", dev}
	}
	return []string{"e2fsck", "-fn", dev}
}

// hostFsck: the host's checker of the filesystem as the last referee, on the partition (if
// any) of img that holds filesystem uuid. Loops at the partitions' offsets
// (this host may have no udev to make loopNpM nodes), then the whole image
// (a target used without a partition table).
func (d *debian) hostFsck(img, uuid string) {
	type span struct{ start, size int64 }
	var spans []span
	if dump, err := vm.Host("", "sfdisk", "-d", img); err == nil {
		for _, m := range regexp.MustCompile(`start= *([0-9]+), *size= *([0-9]+)`).FindAllStringSubmatch(dump, -1) {
			spans = append(spans, span{atoi(m[1]), atoi(m[2])})
		}
	}
	st, err := os.Stat(img)
	must(d.t, err)
	spans = append(spans, span{0, st.Size() / 512})
	part, rc := "", 99
	var argv []string
	switch d.env["ROOTFS_FS"] {
	case "xfs":
		must(d.t, vm.NeedPkgs("xfsprogs"))
	case "btrfs":
		must(d.t, vm.NeedPkgs("btrfs-progs"))
	}
	for _, s := range spans {
		out, err := vm.Host("", "losetup", "--find", "--show", "--read-only",
			"--offset", strconv.FormatInt(s.start*512, 10), "--sizelimit", strconv.FormatInt(s.size*512, 10), img)
		must(d.t, err)
		loop := strings.TrimSpace(out)
		// -p: probe the device; the cache would answer for the loop
		// device's previous backing (it is reused at once).
		id, _ := vm.Host("", "blkid", "-p", "-o", "value", "-s", "UUID", loop)
		if strings.TrimSpace(id) == uuid {
			part = fmt.Sprintf("%s (sectors %d+%d)", img, s.start, s.size)
			argv = fsckCommand(d.env["ROOTFS_FS"], loop)
			cmd := execCommand(argv[0], argv[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			rc = exitCode(cmd.Run())
		}
		_, _ = vm.Host("", "losetup", "-d", loop)
		if part != "" {
			break
		}
	}
	where := part
	if where == "" {
		where = img + " (no filesystem " + uuid + " found)"
	}
	checker := strings.Join(fsckCommand(d.env["ROOTFS_FS"], ""), " ")
	if d.j.Check("host_fsck", rc == 0, fmt.Sprintf("host %s on %s failed (rc=%d)", checker, where, rc)) {
		vm.Logf("host %s%s (UUID %s): clean", checker, part, uuid)
	}
}

// grubISO makes dir/grubtest.iso, a copy of the live ISO whose grub.cfg
// boots only this flavour, with args added to its kernel command line
// and a 1 s menu timeout: the same files (extracted with xorriso),
// remade with grub-mkrescue, in seconds. (Rewriting the ISO in place
// with xorriso's boot-image replay fails on grub-mkrescue's overlapping
// GPT entries.)
func (d *debian) grubISO(dir, args string) (string, error) {
	iso, tree := filepath.Join(dir, "grubtest.iso"), filepath.Join(dir, "tree")
	live := d.env["LIVE_ISO"]
	os.RemoveAll(tree)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	xlog, err := os.Create(filepath.Join(dir, "xorriso.log"))
	if err != nil {
		return "", err
	}
	defer xlog.Close()
	xorriso := execCommand("xorriso", "-osirrox", "on", "-indev", live,
		"-extract", "/LiveOS", tree+"/LiveOS",
		"-extract", "/boot/vmlinuz", tree+"/boot/vmlinuz",
		"-extract", "/boot/grub/grub.cfg", tree+"/boot/grub/grub.cfg",
		"-extract", "/boot/initrd-"+d.r.flavour+".img", tree+"/boot/initrd-"+d.r.flavour+".img")
	xorriso.Stdout, xorriso.Stderr = xlog, xlog
	if err := xorriso.Run(); err != nil {
		return "", fmt.Errorf("xorriso could not read %s: %v (see %s)", live, err, xlog.Name())
	}
	if _, err := vm.Host("", "chmod", "-R", "u+w", tree); err != nil {
		return "", err
	}
	cfgPath := filepath.Join(tree, "boot", "grub", "grub.cfg")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", err
	}
	out := grubConfig(string(cfg), d.r.flavour, args)
	if err := os.WriteFile(filepath.Join(dir, "grub.cfg"), []byte(out), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(cfgPath, []byte(out), 0o644); err != nil {
		return "", err
	}
	os.Remove(iso)
	mk := execCommand("grub-mkrescue", "-o", iso, tree, "--", "-volid", d.env["LIVE_LABEL"])
	b, err := mk.CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, "grub-mkrescue.log"), b, 0o644)
	if err != nil {
		return "", fmt.Errorf("grub-mkrescue failed: %v: %s", err, b)
	}
	return iso, nil
}

// grubConfig keeps only flavour's menu entry of mkiso.sh's grub.cfg, adds
// args to its linux line and sets the timeout to 1 s (run.sh's awk).
func grubConfig(cfg, flavour, args string) string {
	var b strings.Builder
	keep, in := false, false
	for _, l := range strings.SplitAfter(cfg, "\n") {
		if l == "" {
			continue
		}
		line := strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(line, "menuentry ") {
			keep = strings.Contains(line, "--id "+flavour+" {")
		}
		if strings.HasPrefix(line, "menuentry ") || in {
			in = !strings.HasPrefix(line, "}")
			if !keep {
				continue
			}
		}
		if strings.HasPrefix(line, "\tlinux ") {
			line += " " + args
		}
		if strings.HasPrefix(line, "set timeout=") {
			line = "set timeout=1"
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func anyLine(lines []string, f func(string) bool) bool {
	for _, l := range lines {
		if f(l) {
			return true
		}
	}
	return false
}

// rawFactLines are the facts file's lines as written (CRs dropped), for
// checks on every report of a key, not only the last.
func rawFactLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n")
}

func sortStrings(s []string) { sort.Strings(s) }
