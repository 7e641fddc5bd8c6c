package suites

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livemigrate/livemigrate/test/vm"
)

// debianRow is one case of TestDebian (or TestDebianFull, TestDebianMore):
// a Debian suite's live medium with a root filesystem, a flavour's initrd
// and a scenario, with the knobs run.sh had as options.
type debianRow struct {
	name     string // the row's own part; the test's name is its id()
	suite    string // trixie (Debian 13) | bookworm (Debian 12)
	rootfs   string // rootfs.img's filesystem: "" (ext4) | xfs | btrfs
	flavour  string // dracut | dracut-nosystemd | dracut-nohook (no livemigrate module) | initramfs-tools | mkosi (trixie: mkosi-initrd, initrd-hook/systemd)
	scenario string // boot | reboot | zram | migrate | grub-bios | grub-uefi | install | faults, refuse (dracut-nohook: the dm-mirror's faults and refusals)
	firmware string // install: bios | uefi
	layout   string // install: disk | partition
	append   string // words added to the guest's command line
}

// id is the subtest's name: SUITE[-FS]-NAME (trixie-dracut-reboot,
// trixie-xfs-install-bios-disk, bookworm-install-bios-disk-rerun).
func (r debianRow) id() string {
	if r.rootfs != "" {
		return r.suite + "-" + r.rootfs + "-" + r.name
	}
	return r.suite + "-" + r.name
}

// medium names the live medium the row boots: its suite and root
// filesystem ($LM_OUT/debian-SUITE[-FS]).
func (r debianRow) medium() string {
	if r.rootfs != "" {
		return r.suite + "-" + r.rootfs
	}
	return r.suite
}

// The install rows, by what they add (firmware, layout, the person's
// choices); each suite and filesystem picks from them.
var (
	// A whole disk under SeaBIOS, all defaults (live user locked,
	// hostname kept), then a password set by hand and the same migrate
	// again (it must finish idempotently: identities, the password and
	// the ESP kept).
	installRerun = debianRow{name: "install-bios-disk-rerun", scenario: "install", firmware: "bios", layout: "disk",
		append: "lmtest.rerun=1"}
	// The same with the first run failing at GRUB (exit 23) and the
	// rerun installing it.
	installRerunFail = debianRow{name: "install-bios-disk-rerun-fail", scenario: "install", firmware: "bios", layout: "disk",
		append: "lmtest.rerun=fail"}
	// A whole disk under OVMF, from a zram COW, with --hostname,
	// --password-file and Ctrl+C's SIGINT during finalize.
	installUEFI = debianRow{name: "install-uefi-disk", scenario: "install", firmware: "uefi", layout: "disk",
		append: "rd.livemigrate.cow=zram rd.livemigrate.cowsize=2G lmtest.signal_finalize=INT lmtest.hostname=lmtest-cli lmtest.password=lm-cli-pw"}
	// A partition next to a data partition (BIOS), chosen in the wizard
	// with a hostname and a password.
	installPartTUI = debianRow{name: "install-bios-partition-tui", scenario: "install", firmware: "bios", layout: "partition",
		append: "lmtest.ui=tui lmtest.hostname=lmtest-tui lmtest.password=lm-tui-pw"}
	// The same without the zram COW (an option of livemigrate's boot
	// hook, which dracut as shipped does not have).
	installUEFINoZram = debianRow{name: "install-uefi-disk", scenario: "install", firmware: "uefi", layout: "disk",
		append: "lmtest.signal_finalize=INT lmtest.hostname=lmtest-cli lmtest.password=lm-cli-pw"}
	// A whole disk under SeaBIOS, all defaults, once.
	installBIOS = debianRow{name: "install-bios-disk", scenario: "install", firmware: "bios", layout: "disk"}
)

// in returns r for suite, filesystem and flavour, named FLAVOUR-NAME when
// the flavour is not the install rows' usual initramfs-tools.
func (r debianRow) in(suite, rootfs, flavour string) debianRow {
	r.suite, r.rootfs = suite, rootfs
	if r.flavour == "" {
		r.flavour = flavour
		if r.scenario == "install" && flavour != "initramfs-tools" {
			r.name = flavour + "-" + r.name
		}
	}
	return r
}

// row is a live-medium row: FLAVOUR-SCENARIO.
func row(suite, rootfs, flavour, scenario string) debianRow {
	return debianRow{name: flavour + "-" + scenario, suite: suite, rootfs: rootfs, flavour: flavour, scenario: scenario}
}

// debianRows are what make test runs (TestDebian), in its order: each
// capability once, on Debian 13 (trixie), two or three to a row where one
// boot can prove them together. mkosi-initrd's live system reboots
// cleanly (dracut's and initramfs-tools' boot and power off in every row
// below); initramfs-tools installs (finalize) from the XFS live root onto
// a whole disk under SeaBIOS with a rerun, and under OVMF from a zram COW
// with SIGINT during finalize (ext4: XFS's 512-byte sectors do not mount
// over zram's 4 KiB ones); dracut installs from the btrfs live root onto
// a partition in the wizard; dracut without the livemigrate
// module (dmsquash-live as shipped: the dm-mirror method) migrates, its
// target then booted alone and rebooted. Every row migrates under a
// writer. Debian 12 (bookworm, oldstable), the other flavours' reboots,
// dracut's plain migrate, dracut as shipped installing (finalize is the
// same on both methods) and the XFS and btrfs roots' default installs are
// make test-full's, to keep make test within its time with the copy
// method's rows in it.
var debianRows = []debianRow{
	row("trixie", "", "mkosi", "reboot"),
	installRerun.in("trixie", "xfs", "initramfs-tools"),
	installUEFI.in("trixie", "", "initramfs-tools"),
	installPartTUI.in("trixie", "btrfs", "dracut"),
	row("trixie", "", "dracut-nohook", "migrate"),
}

// debianFullRows are what make test-full adds (TestDebianFull): the rest
// of the matrix. On trixie: dracut's and initramfs-tools' reboots,
// dracut's migrate, the ext4 rerun, dracut as shipped installing and the
// XFS and btrfs roots' default installs (make test's until their
// capabilities moved into the other rows),
// the zram COW and the ISO's GRUB with dracut, initramfs-tools' migrate,
// dracut's installs, the rerun after a failed GRUB, mkosi-initrd's
// migrate (moved here from make test to keep it within its time when
// bookworm's dracut-nohook migrate came in). On bookworm: the four rows
// make test ran until the copy method's row took their time (both dracut
// flavours' reboots, initramfs-tools' install, dracut as shipped
// migrating: the dm-mirror method on kernel 6.1), every row make test ran
// before trixie became the main proof, and dracut as shipped installing.
var debianFullRows = []debianRow{
	row("trixie", "", "dracut", "migrate"),
	installRerun.in("trixie", "", "initramfs-tools"),
	installBIOS.in("trixie", "", "dracut-nohook"),
	installBIOS.in("trixie", "xfs", "initramfs-tools"),
	installBIOS.in("trixie", "btrfs", "dracut"),
	row("trixie", "", "dracut", "reboot"),
	row("trixie", "", "initramfs-tools", "reboot"),
	row("bookworm", "", "dracut", "reboot"),
	row("bookworm", "", "dracut-nosystemd", "reboot"),
	installBIOS.in("bookworm", "", "initramfs-tools"),
	row("bookworm", "", "dracut-nohook", "migrate"),
	row("trixie", "", "dracut", "zram"),
	row("trixie", "", "initramfs-tools", "migrate"),
	row("trixie", "", "dracut-nohook", "faults"),
	row("bookworm", "", "dracut-nohook", "faults"),
	row("trixie", "", "dracut-nohook", "refuse"),
	installUEFINoZram.in("trixie", "", "dracut-nohook"),
	installPartTUI.in("trixie", "", "dracut-nohook"),
	row("trixie", "", "dracut", "grub-bios"),
	row("trixie", "", "dracut", "grub-uefi"),
	installBIOS.in("trixie", "", "dracut"),
	installUEFI.in("trixie", "", "dracut"),
	installRerunFail.in("trixie", "", "initramfs-tools"),
	row("trixie", "", "mkosi", "migrate"),
	row("trixie", "", "mkosi", "zram"),
	installBIOS.in("trixie", "", "mkosi"),
	row("bookworm", "", "initramfs-tools", "reboot"),
	row("bookworm", "", "dracut", "migrate"),
	row("bookworm", "", "dracut-nosystemd", "migrate"),
	row("bookworm", "", "dracut", "zram"),
	row("bookworm", "", "initramfs-tools", "zram"),
	installRerun.in("bookworm", "", "initramfs-tools"),
	installRerunFail.in("bookworm", "", "initramfs-tools"),
	installUEFI.in("bookworm", "", "initramfs-tools"),
	installPartTUI.in("bookworm", "", "initramfs-tools"),
	row("bookworm", "", "dracut", "grub-bios"),
	row("bookworm", "", "dracut", "grub-uefi"),
	installBIOS.in("bookworm", "", "dracut-nohook"),
}

// debianMoreRows are the cases only the narrower make targets run:
// debian-boot (each flavour boots and powers off) and bookworm's third
// migrate.
var debianMoreRows = []debianRow{
	row("trixie", "", "dracut", "boot"),
	row("trixie", "", "initramfs-tools", "boot"),
	row("trixie", "", "mkosi", "boot"),
	row("bookworm", "", "dracut", "boot"),
	row("bookworm", "", "dracut-nosystemd", "boot"),
	row("bookworm", "", "initramfs-tools", "boot"),
	row("bookworm", "", "initramfs-tools", "migrate"),
}

// debianFlavours: the initrds each suite's medium carries (mkiso.sh's
// LM_FLAVOURS). dracut without systemd is a bookworm flavour only;
// mkosi-initrd (mkosi 25) a trixie one; dracut-nohook (dmsquash-live as
// shipped, no livemigrate module: the dm-mirror method) is on both.
var debianFlavours = map[string]string{
	"trixie":   "dracut initramfs-tools mkosi dracut-nohook",
	"bookworm": "dracut dracut-nosystemd initramfs-tools dracut-nohook",
}

// TestDebian boots the Debian live ISOs (test/qemu/debian, built by
// mkiso.sh) once or twice per row and judges what the guest reported, the
// console and the disks (see test/qemu/debian/README.md). Prints, per
// boot: host seconds to the scenario, systemd-analyze's line, seconds
// from the shutdown request to QEMU's exit and how the guest ended; then
// "debian summary: N cases, P passed, F failed".
func TestDebian(t *testing.T) { runDebian(t, debianRows) }

// TestDebianFull: the rest of the matrix (make test-full).
func TestDebianFull(t *testing.T) { runDebian(t, debianFullRows) }

// TestDebianMore: the rows only the narrow make targets run.
func TestDebianMore(t *testing.T) { runDebian(t, debianMoreRows) }

func runDebian(t *testing.T, rows []debianRow) {
	needVM(t)
	n, passed := 0, 0
	for _, r := range rows {
		ok := t.Run(r.id(), func(t *testing.T) {
			d := newDebian(t, r)
			defer d.j.Done()
			d.run()
		})
		// A row that -run did not select reports ok without running.
		debianRanMu.Lock()
		selected := debianRan[t.Name()+"/"+r.id()]
		debianRanMu.Unlock()
		if selected {
			n++
			if ok {
				passed++
			}
		}
	}
	fmt.Printf("debian summary: %d cases, %d passed, %d failed\n", n, passed, n-passed)
}

// debianRan: the rows that ran (newDebian marks them).
var (
	debianRanMu sync.Mutex
	debianRan   = map[string]bool{}
)

// Images of the Debian live media: mkiso.sh's live.env in
// $LM_OUT/debian-MEDIUM (the Makefile's debian-iso-* targets build them;
// made here when missing, with the suite's flavours).
var (
	debianMu   sync.Mutex
	debianEnvs = map[string]map[string]string{}
)

func debianOut(r debianRow) string { return filepath.Join(vm.Out(), "debian-"+r.medium()) }

func debianImages(t *testing.T, r debianRow) map[string]string {
	t.Helper()
	debianMu.Lock()
	defer debianMu.Unlock()
	if env, ok := debianEnvs[r.medium()]; ok {
		return env
	}
	out := debianOut(r)
	envFile := filepath.Join(out, "live.env")
	if _, err := os.Stat(envFile); err != nil {
		vm.Logf("no %s: building the Debian %s live medium (mkiso.sh)", envFile, r.medium())
		cmd := execCommand(filepath.Join(vm.QemuDir(), "debian", "mkiso.sh"), out)
		cmd.Env = append(os.Environ(), "LM_DEBIAN_SUITE="+r.suite, "LM_FLAVOURS="+debianFlavours[r.suite], "LM_ROOTFS_FS="+or(r.rootfs, "ext4"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("mkiso.sh for %s: %v", r.medium(), err)
		}
	}
	env, err := vm.ReadEnv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if env["LIVE_SUITE"] != r.suite || or(env["ROOTFS_FS"], "ext4") != or(r.rootfs, "ext4") {
		t.Fatalf("%s is of suite %q, root %q, not %s: remove %s and build again", envFile, env["LIVE_SUITE"], env["ROOTFS_FS"], r.medium(), out)
	}
	debianEnvs[r.medium()] = env
	return env
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// debian is one row while it runs.
type debian struct {
	t   *testing.T
	r   debianRow
	j   *vm.Judge
	env map[string]string
	out string // $LM_OUT/debian-MEDIUM
	// liveArgs boot this flavour's initrd from the medium; testArgs mask
	// the shutdown units that cost tens of seconds under TCG (a real
	// system keeps them, the image does too); verifyArgs end a boot
	// whose root never shows up (dracut with systemd waits without limit
	// otherwise; not rootdelay=: initramfs-tools sleeps that long
	// unconditionally).
	liveArgs, testArgs, verifyArgs string
}

const debianTimeout = 300 * time.Second

func newDebian(t *testing.T, r debianRow) *debian {
	debianRanMu.Lock()
	debianRan[t.Name()] = true
	debianRanMu.Unlock()
	if err := vm.NeedPkgs("qemu-system-x86", "ovmf", "e2fsprogs", "xorriso", "fdisk"); err != nil {
		t.Fatal(err)
	}
	env := debianImages(t, r)
	d := &debian{t: t, r: r, j: vm.NewJudge(t), env: env, out: debianOut(r),
		testArgs:   "systemd.mask=mdadm-shutdown.service systemd.mask=dracut-shutdown.service",
		verifyArgs: "rd.timeout=120 rd.emergency=poweroff"}
	switch r.flavour {
	case "dracut", "dracut-nosystemd", "dracut-nohook":
		d.liveArgs = "root=live:CDLABEL=" + env["LIVE_LABEL"] + " rd.live.image rd.emergency=poweroff"
	case "initramfs-tools":
		d.liveArgs = "boot=livemigrate root=live:CDLABEL=" + env["LIVE_LABEL"]
	case "mkosi":
		// livemigrate's generator reads root=live: itself. (rd.emergency=
		// is dracut's: a systemd initrd that fails stops at its emergency
		// prompt until the boot's timeout.)
		d.liveArgs = "root=live:CDLABEL=" + env["LIVE_LABEL"]
	default:
		t.Fatalf("unknown flavour %s", r.flavour)
	}
	if _, err := os.Stat(d.initrd()); err != nil {
		t.Fatalf("no %s: the %s medium was built without the %s flavour (LM_FLAVOURS); remove %s and build again", d.initrd(), r.medium(), r.flavour, d.out)
	}
	return d
}

func (d *debian) initrd() string { return filepath.Join(d.out, "initrd-"+d.r.flavour+".img") }
func (d *debian) dir(name string) string {
	return filepath.Join(d.out, "runs", name)
}

func (d *debian) run() {
	switch d.r.scenario {
	case "boot", "reboot":
		end, want := "poweroff", "power-down"
		if d.r.scenario == "reboot" {
			end, want = "reboot", "restart"
		}
		name := d.r.flavour + "-" + d.r.scenario
		res, ok := d.vm(name, want, &vm.Machine{CDROM: d.env["LIVE_ISO"],
			Append: d.liveArgs + " " + d.testArgs + " lmtest.scenario=boot lmtest.end=" + end + " " + d.r.append,
			Expect: []string{"scenario_rc=0"}})
		if ok {
			d.showBoot(res.Facts)
		}
	case "zram":
		d.zram()
	case "grub-bios", "grub-uefi":
		d.grub(strings.TrimPrefix(d.r.scenario, "grub-"))
	case "migrate":
		d.migrate()
	case "install":
		d.install()
	case "faults":
		d.faults()
	case "refuse":
		d.refuse()
	default:
		d.t.Fatalf("unknown scenario %s", d.r.scenario)
	}
	if d.j.OK() {
		vm.Logf("debian %s %s OK", d.r.flavour, d.r.name)
	}
}

// vm boots m (a direct kernel boot of this flavour unless FirmwareBoot)
// as run.sh's vm() did: the shutdown watcher, the per-boot timing line,
// the unclean-shutdown lines from the console, and the verdicts: the boot
// exited 0 (Expect held) and the guest ended the way it should (the
// console's "reboot: Power down" or "reboot: Restarting system").
func (d *debian) vm(name, want string, m *vm.Machine) (*vm.Result, bool) {
	m.Dir = d.dir(name)
	if !m.FirmwareBoot {
		m.Kernel, m.Initrd = d.env["LIVE_KERNEL"], d.initrd()
	}
	if m.MemMiB == 0 {
		m.MemMiB = 3072
	}
	if m.Timeout == 0 {
		m.Timeout = debianTimeout
	}
	m.Append = strings.TrimSpace(m.Append)
	// The host time the guest said it was about to shut down (fact
	// end=...), for the shutdown timing.
	var mu sync.Mutex
	var endAt time.Time
	if m.OnFact == nil {
		m.OnFact = map[string]func(string, *vm.Running){}
	}
	m.OnFact["end"] = func(string, *vm.Running) {
		mu.Lock()
		endAt = time.Now()
		mu.Unlock()
	}
	res := boot(d.t, m)
	stop := time.Now()
	mu.Lock()
	shut := "n/a"
	if !endAt.IsZero() {
		shut = fmt.Sprintf("%.1f", stop.Sub(endAt).Seconds())
	}
	mu.Unlock()
	con, _ := os.ReadFile(filepath.Join(m.Dir, "console.log"))
	ending := consoleEnding(con)
	_ = os.WriteFile(filepath.Join(m.Dir, "ending"), []byte(ending+"\n"), 0o644)
	tScen := secs(res.BootToScenario)
	if res.BootToScenario < 0 {
		tScen = "?"
	}
	vm.Logf("[%s] boot to scenario %s s (host); %s; shutdown %s s; ended: %s; total %.1f s",
		name, tScen, res.Facts.Get("analyze"), shut, ending, res.Total)
	// Stop jobs that time out or units that fail on the way down are what
	// makes a shutdown with / on md on dm unclean.
	for _, l := range uncleanLines(con) {
		fmt.Fprintln(os.Stderr, l)
	}
	if !d.j.Check(name+": boot", res.Code == 0, fmt.Sprintf("the boot failed (exit %d: %s); see %s", res.Code, res.Why, m.Dir)) {
		return res, false
	}
	return res, d.j.Check(name+": ending", ending == want, fmt.Sprintf("the guest did not end with %s but %s (see %s/console.log)", want, ending, m.Dir))
}

// consoleEnding is how the guest ended, from the kernel's last words.
func consoleEnding(con []byte) string {
	ending := "none"
	if strings.Contains(string(con), "reboot: Power down") {
		ending = "power-down"
	}
	if strings.Contains(string(con), "reboot: Restarting system") {
		ending = "restart"
	}
	return ending
}

var (
	reUnclean = regexp.MustCompile(`A stop job is running|Failed (unmounting|deactivating|to (start|stop))|timed out|Timed out`)
	reEscape  = regexp.MustCompile("\x1b\\[[0-9;]*[a-zA-Z]")
)

// uncleanLines are the console's lines about stop jobs and failed units,
// without CRs and escapes, sorted, unique, at most 10.
func uncleanLines(con []byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(string(con), "\n") {
		if !reUnclean.MatchString(l) {
			continue
		}
		l = reEscape.ReplaceAllString(strings.ReplaceAll(l, "\r", ""), "")
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sortStrings(out)
	if len(out) > 10 {
		out = out[:10]
	}
	return out
}

// bar is a multi-line fact on one line, each line ended by '|' (as
// `facts_lines F KEY | tr '\n' '|'`).
func bar(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "|")
	}
	return b.String()
}

// logFacts logs "  KEY: VALUE" for each key.
func logFacts(f vm.Facts, keys ...string) {
	for _, k := range keys {
		vm.Logf("  %s: %s", k, f.Get(k))
	}
}

// showBoot: the facts of the "boot" scenario worth a look.
func (d *debian) showBoot(f vm.Facts) {
	logFacts(f, "system_state", "root_source", "root_fstype", "live_rw_table", "dm_ls", "status", "sessions", "sudo_live", "failed_units_n")
	vm.Logf("  mdstat: %s", bar(f.Lines("mdstat")))
}

// zram: the COW in compressed RAM (rd.livemigrate.cow=zram): dracut swaps
// dmsquash-live's COW file for zram, initramfs-tools' boot mode makes zram
// directly. status must show a zram COW with data compressed.
func (d *debian) zram() {
	name := d.r.flavour + "-zram"
	res, ok := d.vm(name, "power-down", &vm.Machine{CDROM: d.env["LIVE_ISO"],
		Append: d.liveArgs + " " + d.testArgs + " rd.livemigrate.cow=zram rd.livemigrate.cowsize=2G lmtest.scenario=boot lmtest.end=poweroff " + d.r.append,
		Expect: []string{"scenario_rc=0"}})
	if !ok {
		return
	}
	f := res.Facts
	d.showBoot(f)
	st := f.Get("status")
	d.j.Check("cow_kind", strings.Contains(st, `"COWKind": "zram"`), "the COW is not zram: "+head(st, 300))
	d.j.Check("root_source", f.Get("root_source") == "/dev/md127", "/ is not on md127: '"+f.Get("root_source")+"'")
	m := regexp.MustCompile(`"OrigDataBytes": ([0-9]+), *"ComprDataBytes": ([0-9]+)`).FindStringSubmatch(st)
	if d.j.Check("zram_compressed", m != nil && atoi(m[2]) > 0, "status shows no compressed data: "+head(st, 300)) {
		vm.Logf("%s zram: %d KiB of session data compressed to %d KiB", d.r.flavour, atoi(m[1])/1024, atoi(m[2])/1024)
	}
}

// grub: the ISO through GRUB (SeaBIOS or OVMF), "boot" scenario, by a
// firmware boot of a copy of the ISO whose only entry is this flavour's,
// carrying the test's words. Inside the retry window like every live boot
// (no disk is attached: a restart changes nothing).
func (d *debian) grub(fw string) {
	name := d.r.flavour + "-grub-" + fw
	dir := d.dir(name)
	iso, err := d.grubISO(dir, d.testArgs+" lmtest.scenario=boot "+d.r.append)
	if !d.j.Check(name+": grub_iso", err == nil, fmt.Sprint(err)) {
		return
	}
	vm.Logf("booting %s through GRUB (%s)", iso, fw)
	res, ok := d.vm(name, "power-down", &vm.Machine{FirmwareBoot: true, UEFI: fw == "uefi", CDROM: iso,
		QEMUArgs: []string{"-boot", "d"}, Expect: []string{"scenario_rc=0"}})
	if !ok {
		return
	}
	// GRUB's menu on the serial console proves it was GRUB that booted.
	con, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	d.j.Check(name+": grub_menu", strings.Contains(string(con), "Debian live"), "no GRUB menu on the console")
	d.showBoot(res.Facts)
}

// faults: the dm-mirror's faults on dracut as shipped (TestFaults' boots
// 10 and 11 on this medium): a power cut during a whole-disk install with
// finalize on, the half-copied disk checked on the host and booted alone
// by the firmware; then, with that disk attached, SIGINT or SIGHUP at the
// start of each step before the copy, SIGTERM mid-copy, the target's
// table swapped to error, the target unplugged, SIGKILL and the same
// command again, which finishes (SIGINT at its switch noted), and once
// more with SIGINT and SIGHUP at its last steps (noted, finished), each
// judged as TestFaults judges them, under a writer, targets throttled to
// 8 MiB/s. Not the read-only remount of busybox's boot 11
// (m-grow-fails): systemd keeps files on / open for writing, so / cannot
// be remounted read-only here.
func (d *debian) faults() {
	r := &faults{t: d.t, j: d.j, out: d.dir("faults"), bps: 8 * mib}
	must(d.t, os.MkdirAll(r.out, 0o755))
	env := d.env
	root := int64(atoi(env["ROOTFS_MIB"])) * mib
	if root <= 0 {
		d.t.Fatalf("no ROOTFS_MIB in %s/live.env", d.out)
	}
	whole, raw := root+512*mib, root+16*mib
	r.mirrorBoots(whole, raw, false, func(name, scenario string, disks []vm.Disk) *vm.Result {
		name = d.r.flavour + "-" + name
		m := &vm.Machine{CDROM: env["LIVE_ISO"], Timeout: debianTimeout + 1200*time.Second, Disks: disks,
			Append: d.liveArgs + " " + d.testArgs + " lmtest.scenario=" + scenario + " lmtest.grow_fail=0 " + d.r.append}
		m.Dir = d.dir(name)
		r.hooks(m)
		var res *vm.Result
		if scenario == "fault-mirror-cut" {
			// Ends by the host's power cut, not a shutdown: judged by
			// mirrorBoots.
			m.Kernel, m.Initrd, m.MemMiB = env["LIVE_KERNEL"], d.initrd(), 3072
			res = boot(d.t, m)
		} else {
			res, _ = d.vm(name, "power-down", m)
		}
		r.F = res.Facts
		return res
	})
	for _, l := range r.table {
		vm.Logf("  %s", l)
	}
	vm.Logf("debian faults: %d records lost", r.lost)
}

// refuse: TestRefuse's boot on this medium (dracut as shipped, the
// dm-mirror method's preflight): the same nine disks, each bad target
// refused with its code under --yes, the good ones planned, nothing
// written anywhere, judged as TestRefuse judges its lm.stack=nohook boot.
// Left out: the LVM member, as the Debian roots have no lvm2 (TestRefuse's
// boots prove that refusal on the busybox medium).
func (d *debian) refuse() {
	root := int64(atoi(d.env["ROOTFS_MIB"])) * mib
	if root <= 0 {
		d.t.Fatalf("no ROOTFS_MIB in %s/live.env", d.out)
	}
	dir := d.dir("refuse-disks")
	must(d.t, os.RemoveAll(dir))
	must(d.t, os.MkdirAll(dir, 0o755))
	img, disks, size := refuseMachineDisks(root, dir)
	expected := filepath.Join(dir, "rf-hold.expected")
	shaBefore, keepSHA := refuseImages(d.t, root, dir, size, img, expected)
	name := d.r.flavour + "-refuse"
	// The guest hashes two disks of the root's size twice: minutes under
	// TCG on top of the boot.
	res, _ := d.vm(name, "power-down", &vm.Machine{CDROM: d.env["LIVE_ISO"], Disks: disks, Timeout: debianTimeout + 900*time.Second,
		Append: d.liveArgs + " " + d.testArgs + " lmtest.scenario=refuse " + d.r.append})
	tab := &refuseTable{j: d.j}
	judgeRefuse(d.j, res, "nohook", name+": ", tab.row, img, shaBefore, expected, keepSHA,
		map[string]string{"lvm_member": "no lvm2 in the Debian live root; TestRefuse proves it"})
	tab.print()
}

// judgeWriter: the migrate scenario's writer exited 0 (it ends on SIGTERM;
// a failed write or fsync makes it exit non-zero) and some records were
// acknowledged while migrate ran.
func (d *debian) judgeWriter(name string, f vm.Facts) {
	wrc, during := f.Get("writer_rc"), f.Get("acked_during_migrate")
	d.j.Check(name+": writer_rc", wrc == "0", fmt.Sprintf("the writer exited '%s', not 0: %s", wrc, strings.Join(f.Lines("writer_out"), " ")))
	if d.j.Check(name+": acked_during_migrate", regexp.MustCompile(`^[0-9]+$`).MatchString(during) && atoi(during) > 0,
		"no record acknowledged while migrate ran (acked_during_migrate='"+during+"')") {
		vm.Logf("  writer: exit %s, %s records acknowledged while migrate ran, %s in all", wrc, during, f.Get("acked"))
	}
}

// noArrays: no md array on a booted target: /proc/mdstat lists none, or
// does not exist at all (no md module loaded: the count is then empty).
func (d *debian) noArrays(name string, f vm.Facts) {
	d.j.Check(name+": mdstat_arrays", regexp.MustCompile(`^0?$`).MatchString(f.Get("mdstat_arrays")), "md arrays on the target: "+bar(f.Lines("mdstat")))
}

// migrate: the live boot with an empty target disk, `livemigrate migrate`
// under a writer, power off; then the target alone (direct kernel boot,
// root=UUID=, the same flavour's initrd): the "verify" scenario, ending
// with `systemctl reboot`; then the host's e2fsck.
func (d *debian) migrate() {
	name := d.r.flavour + "-migrate"
	target := filepath.Join(d.out, "runs", d.r.flavour+"-target.img")
	// The boot plus md copying the whole root (squashfs decompression
	// under TCG: minutes), so more than a plain boot's timeout.
	res, ok := d.vm(name, "power-down", &vm.Machine{CDROM: d.env["LIVE_ISO"],
		Disks:   []vm.Disk{{Path: target, Size: 4 << 30}},
		Timeout: debianTimeout + 600*time.Second,
		Append:  d.liveArgs + " " + d.testArgs + " lmtest.scenario=migrate lmtest.target=/dev/vda lmtest.speed=fast " + d.r.append,
		Expect:  []string{"scenario_rc=0", "migrate_rc=0"}})
	if !ok {
		return
	}
	F := res.Facts
	logFacts(F, "pre_root_source", "migrate_seconds", "recovered_bytes", "recovery_bps", "acked", "post_root_source", "post_dm", "post_loops", "post_live_mounted", "post_failed_units", "post_system_state", "post_initramfs_units")
	d.judgeWriter(name, F)
	if !d.j.OK() {
		return
	}

	// livemigrate may partition the target: the root is the filesystem
	// the guest had as / after the migration, found by its UUID (else
	// livemigrate's own status after it, else the live root's, which
	// livemigrate keeps).
	uuid := F.Get("post_root_uuid")
	if uuid == "" {
		uuid = firstMatch(`"UUID": *"([^"]*)"`, F.Get("post_status"))
	}
	if uuid == "" {
		uuid = d.env["ROOTFS_UUID"]
	}
	if !d.j.Check("target_uuid", uuid != "", "cannot tell the target's root filesystem UUID") {
		return
	}
	if uuid != d.env["ROOTFS_UUID"] {
		vm.Logf("note: target UUID %s is not the live root's (%s)", uuid, d.env["ROOTFS_UUID"])
	}
	// The target alone: no medium, plain root=UUID=, then a clean reboot.
	// dpkg --verify reads every packaged file: allow for it. Through an
	// overlay (WindowBoot): a hang or a kernel crash before the scenario's
	// result is retried from the disk as the migration left it.
	vname := d.r.flavour + "-verify"
	vres, ok := d.vm(vname, "restart", &vm.Machine{Disks: []vm.Disk{{Path: target, Overlay: true}}, Window: vm.WindowBoot,
		Timeout: debianTimeout + 300*time.Second,
		Append: "root=UUID=" + uuid + " rw " + d.verifyArgs + " " + d.testArgs + " lmtest.scenario=verify lmtest.upto=" + F.Get("acked") +
			" lmtest.end=reboot " + d.r.append,
		Expect: []string{"scenario_rc=0", "verify_rc=0", "dm_devices=0", "session_sha=" + F.Get("session_sha")}})
	if !ok {
		return
	}
	V := vres.Facts
	d.noArrays(vname, V)
	logFacts(V, "root_source", "root_fstype", "verify", "dpkg_verify_rc", "dpkg_verify_lines", "dpkg_verify_seconds", "system_state")
	d.hostFsck(target, uuid)
	d.figures(res, F, V)
}

// figures prints a row's "debian figures:" line, to compare suites and
// flavours side by side: the live boot's time to the scenario, the copy
// (livemigrate's rate against md's own counter, sampled by the guest),
// the COW RAM released, whether the CD was ejected, the records the
// writer had acknowledged and what the target's verify found.
func (d *debian) figures(live *vm.Result, F, V vm.Facts) {
	mdc := F.Get("md_copy")
	rbps, mdBps := atof(F.Get("recovery_bps")), atof(firstMatch(`bps=([0-9.]*)`, mdc))
	ratio := 0.0
	if mdBps > 0 {
		ratio = rbps / mdBps
	}
	// The guest samples the copier's own counter: md's, or dm-mirror's
	// (dmsetup status) on the flavour without the hook.
	counter := "md's counter"
	if d.r.flavour == "dracut-nohook" {
		counter = "dm-mirror's counter"
	}
	copied := fmt.Sprintf("copy %s bytes at %.1f MB/s (%s %.1f MB/s, ratio %.2f); COW freed %.1f MiB; CD ejected %s",
		F.Get("recovered_bytes"), rbps/1e6, counter, mdBps/1e6, ratio, atof(F.Get("cow_freed"))/(1<<20), F.Get("ejected"))
	if F.Get("recovered_bytes") == "" {
		// The wizard writes no JSON events: its Done screen says what
		// was copied, and the copier's counter is still the guest's own
		// sample.
		copied = fmt.Sprintf("wizard's Done screen: %q (%s %.1f MB/s)", doneCopied(F.Lines("tui_final")), counter, mdBps/1e6)
	}
	fmt.Printf("debian figures: %s: boot to scenario %s s; %s; records %s acknowledged, target: %s\n",
		d.r.id(), secs(live.BootToScenario), copied, F.Get("acked"), V.Get("verify"))
}

// doneCopied is the wizard's Done-screen line that says what was copied
// ("Copied 600 MiB in 29s (21 MiB/s)"), or "none" when it has none.
func doneCopied(final []string) string {
	for _, l := range final {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "Copied ") {
			return t
		}
	}
	return "none"
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
