package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as the fake QEMU of TestHang: with LM_FAKEQ_PLAN set,
// the Nth run (counted in LM_FAKEQ_STATE) plays word N of the plan.
func TestMain(m *testing.M) {
	if plan := os.Getenv("LM_FAKEQ_PLAN"); plan != "" {
		os.Exit(fakeQemu(plan, os.Getenv("LM_FAKEQ_STATE"), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeQemu plays one of:
//
//	hang          early-boot console lines, then silence (the TCG hang seen
//	              after "IP idents hash table entries")
//	ok            console lines, scenario_start + scenario_rc=0, exit 0
//	scenario-hang scenario_start on the facts port, then silence
//	init-hang     "Run /init as init process" on the console, then silence
//	lockup        early-boot lines, then "BUG: soft lockup" reports every
//	              0.2 s, never our code (the console keeps growing)
//	init-lockup   "Run /init as init process", then "BUG: soft lockup"
//	              reports every 0.2 s and never scenario_start (a guest
//	              starved of CPU past the kernel: the deadline ends it)
//	panic         the kernel panics early ("IO-APIC + timer doesn't work!"),
//	              QEMU exits 0 (-no-reboot)
//	init-panic    a panic after "Run /init as init process"
//	init-oops     after "Run /init as init process", before scenario_start,
//	              a kernel oops panics it and the guest waits
//	scenario-panic the scenario starts, then the kernel panics ("Fatal
//	              exception in interrupt") and the guest sits there (no
//	              panic=: an installed system's GRUB line)
//	early-exit    QEMU exits 0 with no scenario_start
func fakeQemu(plan, state string, args []string) int {
	var con, facts string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-serial" && strings.HasPrefix(args[i+1], "file:") {
			if con == "" {
				con = strings.TrimPrefix(args[i+1], "file:")
			} else {
				facts = strings.TrimPrefix(args[i+1], "file:")
			}
		}
	}
	b, _ := os.ReadFile(state)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	os.WriteFile(state, []byte(strconv.Itoa(n)+"\n"), 0o644)
	what := "ok"
	if words := strings.Split(plan, ","); n <= len(words) {
		what = words[n-1]
	}
	os.WriteFile(facts, nil, 0o644)
	c := "[    0.000000] Linux version 6.1.0 (fake)\r\n[    0.310000] IP idents hash table entries: 32768 (order: 6, 262144 bytes, linear)\r\n"
	f := ""
	hang := false
	switch what {
	case "hang":
		hang = true
	case "ok":
		c += "[    2.000000] Run /init as init process\r\n"
		f = "initrd_start=2.0\nscenario_start=fake\nscenario_rc=0\n"
	case "scenario-hang":
		f, hang = "initrd_start=2.0\nscenario_start=fake\n", true
	case "init-hang":
		c, hang = c+"[    2.000000] Run /init as init process\r\n", true
	case "panic":
		c += "[    0.016000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug\r\n"
	case "init-panic":
		c += "[    2.000000] Run /init as init process\r\n[    2.100000] Kernel panic - not syncing: Attempted to kill init!\r\n"
	case "init-oops":
		c += "[    2.000000] Run /init as init process\r\n[   50.482939] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\r\n[   50.485943] Kernel panic - not syncing: Fatal exception in interrupt\r\n"
		f, hang = "initrd_start=2.0\n", true
	case "scenario-panic":
		c += "[    2.000000] Run /init as init process\r\n[   11.482939] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\r\n[   11.485943] Kernel panic - not syncing: Fatal exception in interrupt\r\n"
		f, hang = "initrd_start=2.0\nscenario_start=fake\n", true
	}
	// An overlay disk (-drive file=X,format=qcow2) gets the attempt's
	// write: 4 KiB of 0xab at 0 from a panicking attempt, of 0xcd at
	// 4096 from one that ends well.
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-drive" && strings.Contains(args[i+1], "format=qcow2") {
			file := strings.TrimPrefix(strings.Split(args[i+1], ",")[0], "file=")
			cmd := "write -P 0xcd 4096 4k"
			if what == "scenario-panic" {
				cmd = "write -P 0xab 0 4k"
			}
			if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, file).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "fake qemu: qemu-io %s: %v: %s\n", file, err, out)
				return 1
			}
		}
	}
	os.WriteFile(con, []byte(c), 0o644)
	os.WriteFile(facts, []byte(f), 0o644)
	if what == "init-lockup" {
		c += "[    2.000000] Run /init as init process\r\n"
		what = "lockup"
	}
	if what == "lockup" {
		for i := 0; i < 3000; i++ {
			time.Sleep(200 * time.Millisecond)
			c += fmt.Sprintf("[   %d.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [cryptomgr_test:%d]\r\n", 30+i, 60+i)
			os.WriteFile(con, []byte(c), 0o644)
		}
	}
	if hang {
		time.Sleep(600 * time.Second)
	}
	return 0
}

// TestHang proves Boot's emulator-hang and early-panic handling against the
// fake QEMU, in seconds: exit code, how often QEMU ran, the EMULATOR log
// line, vm-retries.log and the Retries summary. Prints "hang selftest: N
// cases, F failed" as the shell hang-selftest.sh did.
// fakeBoot prepares a boot against the fake QEMU (this test binary):
// LM_OUT in a temporary directory, hang and early bounds of 1 and 2 s,
// empty kernel and initrd files.
func fakeBoot(t *testing.T) (tmp, out, kernel, initrd, self string) {
	tmp = t.TempDir()
	out = filepath.Join(tmp, "out")
	t.Setenv("LM_OUT", out)
	t.Setenv("LM_ACCEL", "tcg")
	t.Setenv("LM_HANG_SECS", "1")
	t.Setenv("LM_EARLY_SECS", "2")
	kernel, initrd = filepath.Join(tmp, "kernel"), filepath.Join(tmp, "initrd")
	os.WriteFile(kernel, nil, 0o644)
	os.WriteFile(initrd, nil, 0o644)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return tmp, out, kernel, initrd, self
}

func TestHang(t *testing.T) {
	tmp, out, kernel, initrd, self := fakeBoot(t)
	j := NewJudge(t)
	j.Check("summary-empty", Retries() == "vm retries: 0 ()", "summary with no retries: '"+Retries()+"'")

	cases := []struct {
		name    string
		plan    string
		window  Window
		rc      int
		runs    int
		retries int
	}{
		{"hang-then-ok", "hang,ok", "", 0, 2, 1},
		{"hang-twice", "hang,hang", "", 124, 2, 1},
		{"after-scenario", "scenario-hang", "", 124, 1, 0},
		{"kernel-window-userspace", "init-hang", WindowKernel, 124, 1, 0},
		{"kernel-window-early", "hang,ok", WindowKernel, 0, 2, 1},
		{"window-none", "hang", WindowNone, 124, 1, 0},
		{"lockup-then-ok", "lockup,ok", "", 0, 2, 1},
		{"lockup-window-none", "lockup", WindowNone, 124, 1, 0},
		{"init-lockup-then-ok", "init-lockup,ok", "", 0, 2, 1},
		{"init-lockup-kernel-window", "init-lockup", WindowKernel, 124, 1, 0},
		{"no-hang", "ok", "", 0, 1, 0},
		{"panic-then-ok", "panic,ok", "", 0, 2, 1},
		{"panic-twice", "panic,panic", "", 6, 2, 1},
		{"panic-after-init", "init-panic", "", 6, 1, 0},
		{"init-oops-then-ok", "init-oops,ok", "", 0, 2, 1},
		{"init-oops-twice", "init-oops,init-oops", "", 6, 2, 1},
		{"init-oops-kernel-window", "init-oops", WindowKernel, 124, 1, 0},
		{"panic-window-none", "panic", WindowNone, 6, 1, 0},
		{"early-exit", "early-exit", "", 6, 1, 0},
		{"panic-after-scenario", "scenario-panic", "", 124, 1, 0},
		{"boot-window-panic-then-ok", "scenario-panic,ok", WindowBoot, 0, 2, 1},
		{"boot-window-panic-twice", "scenario-panic,scenario-panic", WindowBoot, 7, 2, 1},
	}
	for _, c := range cases {
		state := filepath.Join(tmp, c.name+".state")
		t.Setenv("LM_FAKEQ_PLAN", c.plan)
		t.Setenv("LM_FAKEQ_STATE", state)
		before := countLines(RetriesLog())
		logs := captureStderr(t, func() {
			m := &Machine{Dir: filepath.Join(out, "vm-"+c.name), Kernel: kernel, Initrd: initrd,
				Timeout: 4 * time.Second, Append: "fake", Window: c.window, Qemu: self}
			res, err := Boot(m)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != c.rc {
				j.Check(c.name+"/rc", false, fmt.Sprintf("exit %d, want %d", res.Code, c.rc))
			}
		})
		b, _ := os.ReadFile(state)
		runs, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		var why []string
		if runs != c.runs {
			why = append(why, fmt.Sprintf("QEMU ran %d times, want %d", runs, c.runs))
		}
		if added := countLines(RetriesLog()) - before; added != c.retries {
			why = append(why, fmt.Sprintf("%d lines added to vm-retries.log, want %d", added, c.retries))
		}
		if c.retries > 0 {
			kind, pat := "hang", "IP idents hash table entries"
			if strings.HasPrefix(c.plan, "panic") {
				kind, pat = "panic", "Kernel panic - not syncing: IO-APIC"
			}
			if strings.HasPrefix(c.plan, "scenario-panic") || strings.HasPrefix(c.plan, "init-oops") {
				kind, pat = "panic", "Kernel panic - not syncing: Fatal exception"
			}
			if strings.HasPrefix(c.plan, "lockup") || strings.HasPrefix(c.plan, "init-lockup") {
				pat = "BUG: soft lockup"
			}
			if !regexp.MustCompile("EMULATOR " + strings.ToUpper(kind) + ": .*retrying once").MatchString(logs) {
				why = append(why, "no 'EMULATOR "+strings.ToUpper(kind)+" ... retrying once' log line")
			}
			lines := strings.Split(strings.TrimSpace(readString(RetriesLog())), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, filepath.Join(out, "vm-"+c.name)+" kind="+kind+" ") || !strings.Contains(last, pat) {
				why = append(why, "retry line lacks the dir or the last console line: "+last)
			}
			if fileSize(filepath.Join(out, "vm-"+c.name, "console.log.hang1")) == 0 {
				why = append(why, "the hung attempt's console was not kept")
			}
		} else if regexp.MustCompile(`EMULATOR (HANG|PANIC): `).MatchString(logs) {
			why = append(why, "retried although it must not")
		}
		if !j.Check(c.name, len(why) == 0, strings.Join(why, "; ")) {
			t.Logf("%s's log:\n%s", c.name, logs)
		}
	}
	sum := Retries()
	j.Check("summary", Glob(sum, "vm retries: 11 (vm-hang-then-ok (hang): *; vm-hang-twice (hang): *; vm-kernel-window-early (hang): *; vm-lockup-then-ok (hang): *; vm-init-lockup-then-ok (hang): *; vm-panic-then-ok (panic): *; vm-panic-twice (panic): *; vm-init-oops-then-ok (panic): *; vm-init-oops-twice (panic): *; vm-boot-window-panic-then-ok (panic): *; vm-boot-window-panic-twice (panic): *)"), "summary: '"+sum+"'")
	Logf("summary of this self-test's retries: %s", sum)
	fmt.Printf("hang selftest: %d cases, %d failed\n", j.Count(), j.Failed())
	j.Done()
}

func readString(path string) string { b, _ := os.ReadFile(path); return string(b) }

func countLines(path string) int { return strings.Count(readString(path), "\n") }

// captureStderr runs f with os.Stderr going to a file, and returns it.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = saved }()
	f()
	tmp.Close()
	return readString(tmp.Name())
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		s, pat string
		want   bool
	}{
		{"/dev/md127 ext4 rw,relatime", "/dev/md127 ext4 rw*", true},
		{"0 245760 snapshot 7:0 7:1 PO 8", "0 * snapshot 7:* 7:* PO 8", true},
		{"0 245760 snapshot 7:0 7:1 P 8", "0 * snapshot 7:* 7:* PO 8", false},
		{"raid1", "raid1", true},
		{"a.b", "a?b", true},
		{"x", "[xy]", true},
		{"z", "[!xy]", true},
		{"", "", true},
		{"", "*", true},
	} {
		if got := Glob(c.s, c.pat); got != c.want {
			t.Errorf("Glob(%q, %q) = %v", c.s, c.pat, got)
		}
	}
}

func TestFacts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "facts.txt")
	os.WriteFile(p, []byte("a=1\r\nb=x=y\na=2\nc=\nl.2=two\nl.1=one\nnoise\n"), 0o644)
	f := ReadFacts(p)
	if f.Get("a") != "2" || f.Get("b") != "x=y" || f.Has("c") || f.Get("missing") != "" {
		t.Errorf("facts: %v", f)
	}
	if got := strings.Join(f.Lines("l"), "|"); got != "one|two" {
		t.Errorf("Lines = %q", got)
	}
}

func TestHashInputs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("one"), 0o644)
	h1, err := hashInputs([]string{dir, "x=1"})
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashInputs([]string{dir, "x=1"})
	os.WriteFile(filepath.Join(dir, "a"), []byte("two"), 0o644)
	h3, _ := hashInputs([]string{dir, "x=1"})
	h4, _ := hashInputs([]string{dir, "x=2"})
	h5, _ := hashInputs([]string{filepath.Join(dir, "missing")})
	if h1 != h2 || h1 == h3 || h3 == h4 || h5 == "" {
		t.Errorf("hashes: %s %s %s %s %s", h1, h2, h3, h4, h5)
	}
}

// TestBootOverlay: in WindowBoot an Overlay disk is written through a
// qcow2 overlay that a retry throws away and the last attempt commits:
// the panicked attempt's write never reaches the image, the good one's
// does. A writable disk that is not an overlay is refused.
func TestBootOverlay(t *testing.T) {
	if err := NeedPkgs("qemu-utils"); err != nil {
		t.Fatal(err)
	}
	tmp, out, kernel, initrd, self := fakeBoot(t)
	img := filepath.Join(tmp, "disk.img")
	orig := bytes.Repeat([]byte{0x11}, 1<<20)
	if err := os.WriteFile(img, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Machine{Dir: filepath.Join(out, "vm-plain"), Kernel: kernel, Initrd: initrd, Timeout: 4 * time.Second,
		Window: WindowBoot, Qemu: self, Disks: []Disk{{Path: img}}}
	if _, err := Boot(m); err == nil || !strings.Contains(err.Error(), "needs every writable disk to be an Overlay") {
		t.Errorf("a plain disk in WindowBoot: %v", err)
	}
	t.Setenv("LM_FAKEQ_PLAN", "scenario-panic,ok")
	t.Setenv("LM_FAKEQ_STATE", filepath.Join(tmp, "overlay.state"))
	m = &Machine{Dir: filepath.Join(out, "vm-overlay"), Kernel: kernel, Initrd: initrd, Timeout: 4 * time.Second,
		Window: WindowBoot, Qemu: self, Disks: []Disk{{Path: img, Overlay: true}}}
	var res *Result
	var err error
	captureStderr(t, func() { res, err = Boot(m) })
	if err != nil || res.Code != 0 || !res.Retried {
		t.Fatalf("Boot: %+v, %v", res, err)
	}
	got, _ := os.ReadFile(img)
	want := append([]byte{}, orig...)
	copy(want[4096:8192], bytes.Repeat([]byte{0xcd}, 4096))
	if !bytes.Equal(got, want) {
		t.Errorf("image after the boot: first bytes %x, at 4096 %x (want 11.., cd..)", got[:4], got[4096:4100])
	}
	if left, _ := filepath.Glob(filepath.Join(m.Dir, "overlay-*")); len(left) != 0 {
		t.Errorf("overlays left: %v", left)
	}
	cl, _ := os.ReadFile(filepath.Join(m.Dir, "cmdline"))
	if !strings.Contains(string(cl), "overlay-disk.img.qcow2,format=qcow2") {
		t.Errorf("QEMU did not get the overlay: %s", cl)
	}
}
