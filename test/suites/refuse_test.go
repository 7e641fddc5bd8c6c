package suites

import (
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

// refusal is one row of TestRefuse: the guest's case NAME (scenario
// refuse reports case_NAME="CODE FIRST-STDERR-LINE"), the exit code
// livemigrate(8) documents, and whether the message must name the target.
type refusal struct {
	name  string
	want  int
	named bool
	stack string // "" both boots, else only "md" or "nohook"
}

// refusals: each is run WITHOUT --dry-run and WITH --yes in the guest, so a
// missing check would really migrate; only the good disks use --dry-run.
// Adding a case: one row here and its run in the guest's refuse scenario.
var refusals = []refusal{
	{"too_small", 13, true, ""},
	{"blocksize_4k", 15, true, ""},
	{"read_only", 14, true, ""},
	{"part_mounted", 12, true, ""},
	{"disk_with_mounted_part", 12, true, ""},
	{"md_member", 12, true, ""},
	{"lvm_member", 12, true, ""},
	{"nonexistent", 10, true, ""},
	{"regular_file", 10, true, ""},
	{"char_device", 10, true, ""},
	{"medium", 11, true, ""},
	{"array", 11, true, "md"},
	{"symlink_to_array", 11, true, "md"},
	{"symlink_to_root", 11, true, "nohook"},
	{"live_rw", 11, true, ""},
	{"origin_loop", 11, true, ""},
	{"cow_loop", 11, true, ""},
	{"squashfs_loop", 11, true, ""},
	{"metachar", 10, true, ""},
	{"empty_target", 2, false, ""},
	{"no_target", 2, false, ""},
	{"unknown_flag", 2, false, ""},
	{"bad_speed", 2, false, ""},
	{"positional_arg", 2, false, ""},
	{"method_unknown", 2, false, ""},
	{"method_dm_mirror", 3, false, "md"},
	{"method_md_hook", 3, false, "nohook"},
	{"no_dm_mirror", 3, false, "nohook"},
	{"good_dry_run", 0, false, ""},
	{"exact_dry_run", 0, false, ""},
	{"exact_whole_disk", 13, true, ""},
}

// refuseDisk is one of the refuse boot's extra disks, told apart in the
// guest by its serial.
type refuseDisk struct {
	serial string
	size   func(rootfs int64) int64
	lbs    int
	ro     bool
}

const mib = 1 << 20

var refuseDisks = []refuseDisk{
	{"rf-small", func(r int64) int64 { return r - 512 }, 0, false},
	{"rf-4k", func(r int64) int64 { return r + 16*mib }, 4096, false},
	{"rf-ro", func(r int64) int64 { return r + 16*mib }, 0, true},
	{"rf-parted", func(r int64) int64 { return r + 16*mib }, 0, false},
	{"rf-mdmem", func(r int64) int64 { return r + 16*mib }, 0, false},
	{"rf-lvm", func(r int64) int64 { return r + 16*mib }, 0, false},
	{"rf-good", func(r int64) int64 { return r + 400*mib }, 0, false}, // room for the boot partitions too
	{"rf-exact", func(r int64) int64 { return r }, 0, false},
	{"rf-hold", func(r int64) int64 { return r + 400*mib }, 0, false},
}

// TestRefuse: preflight turns bad targets away, in one boot of the live
// medium with nine small sparse disks (one sector too small, 4096-byte
// logical blocks, read-only, an ext4 partition the guest mounts, one the
// guest makes an md leg, one an LVM PV, two blank, one the guest changes
// while migrate holds it), then a short UEFI boot where a partition install
// is refused with 28. Every exit code is compared with livemigrate(8), each
// message must name the device, and nothing may be written: the live stack,
// `livemigrate status` and every disk image are as they were. Prints a table
// and "refuse summary: N cases, P passed, F failed".
func TestRefuse(t *testing.T) {
	needVM(t)
	t0 := time.Now()
	p := prepare(t, 0)
	must(t, vm.NeedPkgs("fdisk", "ovmf"))
	rootfs := p.RootfsBytes()
	disks := filepath.Join(vm.Out(), "refuse-disks")
	os.RemoveAll(disks)
	if err := os.MkdirAll(disks, 0o755); err != nil {
		t.Fatal(err)
	}
	img, mdisks, size := refuseMachineDisks(rootfs, disks)
	expected := filepath.Join(disks, "rf-hold.expected")
	shaBefore, keepSHA := refuseImages(t, rootfs, disks, size, img, expected)

	res := boot(t, &vm.Machine{Dir: caseDir("refuse"), Initrd: p.Initrd, CDROM: p.ISO, Disks: mdisks,
		Append: "lm.live=" + p.Env["LIVE_LABEL"] + " lmtest.scenario=refuse"})
	j := vm.NewJudge(t)
	tab := &refuseTable{j: j}
	row := tab.row
	check := func(name string, ok bool, detail string) { row(name, "-", "-", j.Check(name, ok, detail), detail) }
	judgeRefuse(j, res, "md", "", row, img, shaBefore, expected, keepSHA, nil)
	refuseUEFI(t, p, rootfs, disks, check)

	// The same disks, made afresh, for a stock dmsquash-live root (/ on
	// live-rw itself): the dm-mirror method's preflight.
	shaBefore, keepSHA = refuseImages(t, rootfs, disks, size, img, expected)
	res = boot(t, &vm.Machine{Dir: caseDir("refuse-nohook"), Initrd: p.Initrd, CDROM: p.ISO, Disks: mdisks,
		Append: "lm.live=" + p.Env["LIVE_LABEL"] + " lm.stack=nohook lmtest.scenario=refuse"})
	judgeRefuse(j, res, "nohook", "nohook-", row, img, shaBefore, expected, keepSHA, nil)

	vm.Logf("whole run %.1f s", time.Since(t0).Seconds())
	tab.print()
	j.Done()
}

// judgeRefuse judges one refuse boot of stack (md: the hook's array;
// nohook: / on live-rw, the dm-mirror method); its rows are named with
// prefix.
//
// skip names the cases a medium cannot set up, each with why (the guest
// must say the same: lvm_member needs the lvm_skipped fact); they are
// printed as skipped, not judged.
func judgeRefuse(j *vm.Judge, res *vm.Result, stack, prefix string, row func(name, want, got string, ok bool, text string),
	img func(string) string, shaBefore map[string]string, expected, keepSHA string, skip map[string]string) {
	f := res.Facts
	fv := f.Get
	badVerb := regexp.MustCompile(`%[-+#0-9.]*[a-zA-Z!]`)
	for _, c := range refusals {
		if c.stack != "" && c.stack != stack {
			continue
		}
		if why, ok := skip[c.name]; ok {
			if c.name == "lvm_member" && fv("lvm_skipped") == "" {
				j.Check(prefix+c.name, false, "left out on the host ("+why+"), yet the guest set LVM up")
			}
			row(prefix+c.name, strconv.Itoa(c.want), "skip", true, "skipped: "+why)
			continue
		}
		line := fv("case_" + c.name)
		got, msg, _ := strings.Cut(line, " ")
		target := fv("case_" + c.name + "_target")
		var why []string
		if line == "" {
			why = append(why, "no result")
		} else if got != strconv.Itoa(c.want) {
			why = append(why, fmt.Sprintf("exit %s, want %d", got, c.want))
		}
		if c.want != 0 {
			if !strings.HasPrefix(msg, "livemigrate ") {
				why = append(why, "first stderr line does not start with 'livemigrate'")
			}
			if c.named && !strings.Contains(msg, target) {
				why = append(why, "message does not name "+target)
			}
			if out := fv("case_" + c.name + "_stdout"); out != "" && out != "0" {
				why = append(why, "printed "+out+" bytes on stdout (a plan?)")
			}
			// A Go format verb left in the text (%d) or fmt's own complaint (%!).
			if v := badVerb.FindString(msg); v != "" {
				why = append(why, "broken format in the message: '"+v+"'")
			}
		} else {
			if msg != "" {
				why = append(why, "stderr not empty")
			}
			base := strings.TrimSuffix(c.name, "_dry_run")
			plan := fv(base + "_plan")
			if !strings.HasPrefix(plan, "Plan: install the running live system onto "+target+" ") &&
				!strings.HasPrefix(plan, "Plan: install the running live system onto the whole disk "+target+" ") {
				why = append(why, "no plan for "+target+": '"+plan+"'")
			}
			if fv(base+"_dry_line") != "1" {
				why = append(why, "no 'Dry run: nothing was changed.' line")
			}
		}
		if c.name == "metachar" && fv("metachar_pwned") != "no" {
			why = append(why, "/tmp/pwned exists: the path was run by a shell")
		}
		if c.name == "no_dm_mirror" {
			if fv("no_dm_mirror_loaded") != "no" || fv("no_dm_mirror_umount_rc") != "0" || fv("no_dm_mirror_loaded_after") != "no" {
				why = append(why, fmt.Sprintf("dm_mirror loaded before=%s after=%s, tmpfs umount rc=%s", fv("no_dm_mirror_loaded"), fv("no_dm_mirror_loaded_after"), fv("no_dm_mirror_umount_rc")))
			}
			if !strings.Contains(msg, "no dm-mirror target") {
				why = append(why, "message does not say the kernel lacks dm-mirror")
			}
		}
		if strings.HasPrefix(c.name, "method_") && c.want == 3 && !strings.Contains(msg, "--method ") {
			why = append(why, "message does not name --method")
		}
		if c.name == "good_dry_run" {
			// The md plan has no How line; the mirror's names the method.
			text := strings.Join(f.Lines("good_plan_text"), "\n")
			how := "How: a mirror put under /dev/mapper/live-rw while it runs (dm-mirror"
			if (stack == "nohook") != strings.Contains(text, how) {
				why = append(why, fmt.Sprintf("stack %s, yet the plan has '%s': %v", stack, how, strings.Contains(text, how)))
			}
		}
		ok := j.Check(prefix+c.name, len(why) == 0, strings.Join(why, ";"))
		if got == "" {
			got = "-"
		}
		if msg == "" {
			msg = "(plan on stdout)"
		}
		row(prefix+c.name, strconv.Itoa(c.want), got, ok, msg)
	}

	// Nothing written: global checks, each one more case.
	check := func(name string, ok bool, detail string) {
		row(prefix+name, "-", "-", j.Check(prefix+name, ok, detail), detail)
	}
	setup := ""
	if s := fv("refuse_setup"); s != "" {
		setup = ": " + s
	}
	check("vm_ran", res.Code == 0 && fv("scenario_rc") == "0", fmt.Sprintf("boot rc=%d, scenario_rc=%s%s", res.Code, fv("scenario_rc"), setup))
	check("state_unchanged", fv("state_same") == "yes", fv("refuse_root")+" (md members/limits), mdstat, dm tables, loops, mounts, holders: "+fv("state_same")+joinLines(f.Lines("state_diff")))
	if stack == "md" {
		check("md_one_live_leg", fv("md_members") == "1" && fv("md_live_leg") == "live-rw", "members="+fv("md_members")+": "+fv("md_member_list")+"leg="+fv("md_live_leg"))
	} else {
		check("root_on_snapshot", fv("refuse_stack") == "nohook" && fv("post_mshape") == "snapshot" && fv("md_members") == "0",
			"stack="+fv("refuse_stack")+", live-rw "+fv("post_mshape")+", md members "+fv("md_members"))
	}
	check("status_after", fv("post_status_rc") == "0", "livemigrate status rc before="+fv("pre_status_rc")+" after="+fv("post_status_rc"))
	check("guest_sums", fv("sums_same") == "yes", "sha256 of the disk with the mounted partition and of the LVM disk, whole, in the guest: "+fv("sums_same"))
	intact := yesNo(fv("part_keep_sha_after") == keepSHA)
	check("part_fs_intact", fv("part_fsck_rc") == "0" && intact == "yes", "e2fsck -fn rc="+fv("part_fsck_rc")+", file on it intact="+intact)
	var changed []string
	for _, d := range refuseDisks {
		if d.serial == "rf-parted" || d.serial == "rf-lvm" {
			continue // the guest changes those by its own hand and hashes them itself
		}
		want := shaBefore[d.serial]
		if d.serial == "rf-hold" {
			want = vm.SHA256(expected)
		}
		if vm.SHA256(img(d.serial)) != want {
			changed = append(changed, d.serial)
		}
	}
	holdRC, holdDev := fv("hold_result"), fv("hold_target")
	holdCode, _, _ := strings.Cut(holdRC, " ")
	check("target_changed", holdCode == "19" && strings.Contains(holdRC, "livemigrate migrate: "+holdDev+": changed since it was checked"), "exit and first stderr line: "+holdRC)
	holdClean := "yes"
	if strings.Contains(" "+strings.Join(changed, " ")+" ", " rf-hold ") {
		holdClean = "NO"
	}
	check("target_held", fv("hold_prompt") == "1" && !strings.HasPrefix(fv("hold_mkfs"), "rc=0") && fv("hold_steps") == "0",
		"prompt seen: "+fv("hold_prompt")+"; mkfs.ext4 while held: "+fv("hold_mkfs")+"; steps run: "+fv("hold_steps")+"; rf-hold = its GPT zeroed by dd, nothing else written: "+holdClean)
	same := "all unchanged"
	if len(changed) > 0 {
		same = strings.Join(changed, " ")
	}
	check("host_images_same", len(changed) == 0, fmt.Sprintf("sha256 of the %d other disk images on the host: %s", len(refuseDisks)-2, same))
	vm.Logf("refuse %s: VM %.1f s (boot to scenario %s s); facts in %s/facts.txt", stack, res.Total, secs(res.BootToScenario), res.Dir)
}

// refuseMachineDisks: the refuse boot's disks in dir, for a live root of
// rootfs bytes: each one's image path, the machine's disks, their sizes.
func refuseMachineDisks(rootfs int64, dir string) (func(string) string, []vm.Disk, map[string]int64) {
	img := func(s string) string { return filepath.Join(dir, s+".img") }
	var mdisks []vm.Disk
	size := map[string]int64{}
	for _, d := range refuseDisks {
		size[d.serial] = d.size(rootfs)
		mdisks = append(mdisks, vm.Disk{Path: img(d.serial), Serial: d.serial, LogicalBlockSize: d.lbs, ReadOnly: d.ro})
	}
	return img, mdisks, size
}

// refuseTable collects refuse rows; print writes them under a header and
// the "refuse summary" line.
type refuseTable struct {
	j    *vm.Judge
	rows []string
}

func (r *refuseTable) row(name, want, got string, ok bool, text string) {
	verdict := "ok"
	if !ok {
		verdict = "FAIL"
	}
	r.rows = append(r.rows, fmt.Sprintf("%-24s %4s %4s  %-6s %s", name, want, got, verdict, text))
}

func (r *refuseTable) print() {
	fmt.Printf("%-24s %4s %4s  %-6s %s\n", "case", "want", "got", "result", "first stderr line")
	for _, l := range r.rows {
		fmt.Println(l)
	}
	fmt.Printf("refuse summary: %d cases, %d passed, %d failed\n", r.j.Count(), r.j.Passed(), r.j.Failed())
}

// refuseImages makes the refuse boot's disks afresh: sparse, rf-parted
// with its ext4 partition (the sha256 of the file on it is returned),
// rf-hold a GPT whose expected image after the boot (its first and last MiB
// zeroed by the guest) is written to expected; and the sha256 of each.
func refuseImages(t *testing.T, rootfs int64, disks string, size map[string]int64, img func(string) string, expected string) (map[string]string, string) {
	for _, d := range refuseDisks {
		os.Remove(img(d.serial))
		must(t, vm.Sparse(img(d.serial), size[d.serial]))
	}
	keepSHA := partedDisk(t, img("rf-parted"), rootfs, disks)
	// rf-hold: a GPT the guest zeroes (first and last MiB) while migrate
	// holds the disk and waits for its confirmation; afterwards the image
	// must be exactly that, nothing else written.
	hold := img("rf-hold")
	_, err := vm.Host("label: gpt\nstart=2048, size=65536, name=keep\n", "sfdisk", "-q", hold)
	must(t, err)
	must(t, vm.WriteAt(hold, 2*mib, vm.RandomBytes(8*mib)))
	os.Remove(expected)
	_, err = vm.Host("", "cp", "--sparse=always", hold, expected)
	must(t, err)
	must(t, vm.Zero(expected, 0, mib))
	must(t, vm.Zero(expected, size["rf-hold"]-mib, mib))
	shaBefore := map[string]string{}
	for _, d := range refuseDisks {
		shaBefore[d.serial] = vm.SHA256(img(d.serial))
	}
	return shaBefore, keepSHA
}

// refuseUEFI is the second, short boot by UEFI (OVMF, direct kernel boot):
// a partition install is refused with 28 and writes nothing; the whole disk
// is offered. OVMF loads a bzImage (an EFI stub), not the PVH vmlinux; and
// under OVMF the guest finds no CD on the IDE bus, so the medium is a
// read-only virtio disk here.
func refuseUEFI(t *testing.T, p prepared, rootfs int64, disks string, check func(string, bool, string)) {
	uimg := filepath.Join(disks, "rf-uefi.img")
	must(t, vm.Sparse(uimg, rootfs+400*mib))
	_, err := vm.Host("label: dos\nstart=2048, size=65536, type=83\nstart=67584, type=83\n", "sfdisk", "-q", uimg)
	must(t, err)
	must(t, vm.WriteAt(uimg, mib, vm.RandomBytes(8*mib)))
	usha := vm.SHA256(uimg)
	kernel, err := vm.BzImage()
	must(t, err)
	res := boot(t, &vm.Machine{Dir: caseDir("refuse-uefi"), UEFI: true, Kernel: kernel, Initrd: p.Initrd,
		Disks: []vm.Disk{
			{Path: p.ISO, ID: "rf-live", Serial: "rf-live", ReadOnly: true},
			{Path: uimg, Serial: "rf-uefi"},
		},
		Append: "lm.live=" + p.Env["LIVE_LABEL"] + " lmtest.scenario=refuse-uefi"})
	f := res.Facts
	upart, udev := f.Get("uefi_part"), f.Get("uefi_disk")
	code, _, _ := strings.Cut(upart, " ")
	check("uefi_partition", res.Code == 0 && f.Get("uefi") == "yes" && code == "28" &&
		strings.Contains(upart, udev+"2: this machine starts by UEFI") && f.Get("uefi_part_stdout") == "0",
		fmt.Sprintf("boot rc=%d, efi=%s: %s", res.Code, f.Get("uefi"), upart))
	dry := f.Get("uefi_disk_dry")
	check("uefi_whole_disk", strings.HasPrefix(dry, "0 ") && !strings.HasPrefix(dry, "0 0 "), "dry run of "+udev+": "+dry)
	check("uefi_disk_same", vm.SHA256(uimg) == usha, "sha256 of the MBR disk on the host after the UEFI boot")
}

// partedDisk gives img one partition from 1 MiB to the end (still larger
// than the live root), ext4 with a random file in it, made on the host; it
// returns the file's sha256.
func partedDisk(t *testing.T, img string, rootfs int64, disks string) string {
	_, err := vm.Host("label: dos\nstart=2048, type=83\n", "sfdisk", "-q", img)
	must(t, err)
	dump, err := vm.Host("", "sfdisk", "-d", img)
	must(t, err)
	m := regexp.MustCompile(`start= *2048, size= *([0-9]+)`).FindStringSubmatch(dump)
	if m == nil {
		t.Fatalf("no partition at 2048 in: %s", dump)
	}
	sectors, _ := strconv.ParseInt(m[1], 10, 64)
	psize := sectors * 512
	if psize < rootfs {
		t.Fatalf("partition (%d bytes) smaller than the live root", psize)
	}
	fsdir := filepath.Join(disks, "fs")
	must(t, os.MkdirAll(fsdir, 0o755))
	keep := vm.RandomBytes(mib)
	must(t, os.WriteFile(filepath.Join(fsdir, "keep-me"), keep, 0o644))
	keepSHA := vm.SHA256(filepath.Join(fsdir, "keep-me"))
	part := filepath.Join(disks, "part.fs")
	must(t, vm.Sparse(part, psize))
	_, err = vm.Host("", "mkfs.ext4", "-q", "-F", "-L", "refusepart", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", fsdir, part)
	must(t, err)
	data, err := os.ReadFile(part)
	must(t, err)
	must(t, vm.WriteAt(img, 2048*512, data))
	os.RemoveAll(fsdir)
	os.Remove(part)
	return keepSHA
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// joinLines is a multi-line fact as the shell tables showed it: each line
// followed by a space.
func joinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + " ")
	}
	return b.String()
}
