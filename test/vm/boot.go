package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Window is where a boot may be restarted after an emulator hang or an
// early panic: the part of the boot where a restart changes no disk.
type Window string

const (
	// WindowScenario (the default): until the guest reports
	// scenario_start; a live boot, whose disks nothing writes before the
	// scenario runs. A kernel oops after our code started is retried
	// there too (init dying is not: a restart would repeat it).
	WindowScenario Window = "scenario"
	// WindowKernel: until the kernel starts userspace (initrd_start on
	// the facts port, or "Run ... as init process" on the console); a
	// boot whose initramfs mounts a disk read-write before the scenario.
	WindowKernel Window = "kernel"
	// WindowNone: never retry (e.g. a firmware boot of a disk: no
	// reliable mark of the kernel reaching userspace on a quiet console).
	WindowNone Window = "none"
	// WindowBoot: until the guest reports the scenario's result
	// (scenario_rc), for a boot that cannot change a disk at all: every
	// disk it may write is an Overlay (or has snapshot=on). A kernel
	// panic anywhere before the result is retried too (seen under TCG:
	// "Oops: int3" in the scheduler, then "Fatal exception in interrupt",
	// in an installed system's boot).
	WindowBoot Window = "boot"
)

// Exit codes of a boot, as the shell runner (run-vm.sh) had them (the
// suites report them).
const (
	ExitOK          = 0
	ExitExpect      = 3   // an Expect fact missing or different
	ExitInitrdFail  = 4   // the initramfs reported initrd_fail
	ExitScenarioRC  = 5   // scenario_rc other than 0
	ExitNoScenario  = 6   // no scenario_start (e.g. a kernel panic)
	ExitPanic       = 7   // the kernel panicked in WindowBoot, again: the guest was stopped
	ExitTimeout     = 124 // the hard timeout, or a second emulator hang
	defaultHangSecs = 150
	// defaultEarlySecs bounds the time from QEMU's start to the kernel
	// starting our code (a few seconds under TCG, 20 s on a loaded host).
	defaultEarlySecs = 180
)

// Disk is one disk of a Machine. A disk with only Path is a plain virtio
// disk; Serial, LogicalBlockSize, ReadOnly or ID make it a virtio-blk-pci
// device with those properties (ID defaults to Serial).
type Disk struct {
	Path string
	// Size, when set, creates the image as a sparse file of that many
	// bytes first (replacing one that is there).
	Size             int64
	Serial           string
	ID               string
	LogicalBlockSize int // also the physical block size
	ReadOnly         bool
	// Drive is appended to the -drive options (e.g. a throttle group).
	Drive string
	// Overlay: the guest writes to a qcow2 overlay over Path (in the
	// boot's Dir), committed into Path when the boot ends and thrown away
	// when it is retried, so a restart starts from the disk as it was.
	Overlay bool
	// Device is appended to the -device options.
	Device string

	format string // "" is raw; qcow2 for an Overlay's file
}

func (d Disk) fmt() string {
	if d.format == "" {
		return "raw"
	}
	return d.format
}

// overlayPath is where the Overlay of disk d lives: the boot's Dir.
func (m *Machine) overlayPath(d Disk) string {
	return m.file("overlay-" + filepath.Base(d.Path) + ".qcow2")
}

// overlays (re)creates every Overlay disk's file over its image, empty;
// with commit, it writes the overlays into their images and removes them.
func (m *Machine) overlays(commit bool) error {
	for _, d := range m.Disks {
		if !d.Overlay {
			continue
		}
		ov := m.overlayPath(d)
		if commit {
			if out, err := exec.Command("qemu-img", "commit", "-q", ov).CombinedOutput(); err != nil {
				return fmt.Errorf("vm: qemu-img commit %s into %s: %v: %s", ov, d.Path, err, out)
			}
			os.Remove(ov)
			continue
		}
		abs, err := filepath.Abs(d.Path)
		if err != nil {
			return err
		}
		os.Remove(ov)
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, ov).CombinedOutput(); err != nil {
			return fmt.Errorf("vm: qemu-img create an overlay over %s: %v: %s", d.Path, err, out)
		}
	}
	return nil
}

// Machine declares one guest boot.
type Machine struct {
	// Dir receives console.log (ttyS0), facts.txt (ttyS1), qemu.log,
	// cmdline and timing; a hung first attempt's files as *.hang1.
	Dir string
	// Kernel and Initrd for a direct kernel boot (default: KernelImage
	// and Out()/initrd.img). Append is added to the kernel command line
	// after KernelArgs.
	Kernel, Initrd, Append string
	// FirmwareBoot: no -kernel/-initrd/-append: the firmware boots the
	// first disk the way a machine would.
	FirmwareBoot bool
	// UEFI boots through OVMF (pflash code read-only, a copy of the
	// variable store in Dir) instead of SeaBIOS.
	UEFI bool
	// CDROM is the medium on the IDE bus (read-only).
	CDROM   string
	Disks   []Disk
	MemMiB  int           // default 2048
	Timeout time.Duration // default 300 s
	Window  Window        // default WindowScenario
	// Expect are "KEY=VALUE" facts that must hold exactly (exit 3).
	Expect []string
	// QEMUArgs are extra arguments, after the disks.
	QEMUArgs []string
	// QMP opens a monitor socket at Dir/qmp.sock for OnFact hooks.
	QMP bool
	// OnFact runs hook the first time the guest reports key (checked
	// every 0.2 s while the guest runs), with the value and the running
	// guest (to drive QMP or cut the power).
	OnFact map[string]func(value string, r *Running)
	// Qemu is the emulator binary (default qemu-system-x86_64 on PATH).
	Qemu string
}

// Result is what one Boot left.
type Result struct {
	Dir   string
	Code  int // one of the Exit codes, else QEMU's own status
	Facts Facts
	// BootToScenario and Total are the host's wall seconds to the guest's
	// scenario_start fact (negative when it never came) and to poweroff.
	BootToScenario, Total float64
	Retried               bool   // the first attempt hung or panicked
	PowerCut              bool   // an OnFact hook cut the power
	Why                   string // why Code is not 0, for the logs
}

// Running is a guest while it runs, for OnFact hooks.
type Running struct {
	m   *Machine
	cmd *exec.Cmd
	// Cut is set by PowerCut: the guest was killed on purpose.
	Cut bool
}

// PowerCut kills QEMU with SIGKILL: the guest stops as at a power cut.
func (r *Running) PowerCut() {
	r.Cut = true
	_ = r.cmd.Process.Kill()
}

// QMP sends one command (with arguments, or nil) to the guest's monitor and
// returns its answer.
func (r *Running) QMP(command string, args map[string]any) (string, error) {
	return qmpCommand(filepath.Join(r.m.Dir, "qmp.sock"), command, args)
}

var (
	reInitProcess = regexp.MustCompile(`Run .* as init process`)
	rePanic       = []byte("Kernel panic - not syncing")
	reKilledInit  = []byte("Attempted to kill init")
	reANSI        = regexp.MustCompile("\x1b\\[[0-9;?]*[a-zA-Z]")
)

// Boot runs m and waits for the guest to power off, retrying once an
// emulator hang (the console silent for LM_HANG_SECS, default 150, inside
// the retry window) or a kernel panic before our code ran (anywhere in
// WindowBoot, where the disks are overlays), with an
// "EMULATOR HANG"/"EMULATOR PANIC" log line and a line in
// Out()/vm-retries.log. The result's Code says how it ended.
func Boot(m *Machine) (*Result, error) {
	if m.Dir == "" {
		return nil, errors.New("vm: Machine.Dir is required")
	}
	if m.Window == "" {
		m.Window = WindowScenario
	}
	switch m.Window {
	case WindowScenario, WindowKernel, WindowNone:
	case WindowBoot:
		for _, d := range m.Disks {
			if !d.ReadOnly && !d.Overlay && !strings.Contains(d.Drive, "snapshot=on") {
				return nil, fmt.Errorf("vm: retry window boot needs every writable disk to be an Overlay; %s is not", d.Path)
			}
		}
	default:
		return nil, fmt.Errorf("vm: retry window scenario|kernel|none|boot, not %s", m.Window)
	}
	for _, d := range m.Disks {
		if d.Overlay {
			if err := NeedPkgs("qemu-utils"); err != nil {
				return nil, err
			}
			break
		}
	}
	if m.MemMiB == 0 {
		m.MemMiB = 2048
	}
	if m.Timeout == 0 {
		m.Timeout = 300 * time.Second
	}
	if m.Qemu == "" {
		m.Qemu = "qemu-system-x86_64"
	}
	hang := defaultHangSecs
	if v, err := strconv.Atoi(os.Getenv("LM_HANG_SECS")); err == nil && v > 0 {
		hang = v
	}
	early := defaultEarlySecs
	if v, err := strconv.Atoi(os.Getenv("LM_EARLY_SECS")); err == nil && v > 0 {
		early = v
	}
	if !m.FirmwareBoot {
		var err error
		if m.Kernel == "" {
			if m.Kernel, err = KernelImage(); err != nil {
				return nil, err
			}
		}
		if m.Initrd == "" {
			m.Initrd = filepath.Join(Out(), "initrd.img")
		}
		for _, f := range []string{m.Kernel, m.Initrd} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("missing kernel %s or initrd %s", m.Kernel, m.Initrd)
			}
		}
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"console.log", "facts.txt", "timing", "qemu.log"} {
		os.Remove(filepath.Join(m.Dir, f))
		os.Remove(filepath.Join(m.Dir, f+".hang1"))
	}
	args, err := m.args()
	if err != nil {
		return nil, err
	}
	var cl strings.Builder
	cl.WriteString(shellQuote(m.Qemu))
	for _, a := range args {
		cl.WriteString(" " + shellQuote(a))
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "cmdline"), []byte(cl.String()+"\n"), 0o644); err != nil {
		return nil, err
	}

	accelDesc := strings.Join(accelArgs(m), " ")
	Logf("booting VM in %s (%s, timeout %ds, hang after %ds of console silence, retry window: %s)",
		m.Dir, accelDesc, int(m.Timeout.Seconds()), hang, m.Window)
	if err := m.overlays(false); err != nil {
		return nil, err
	}
	a := m.once(args, hang, early)
	res := &Result{Dir: m.Dir}
	if a.hung || a.panicked {
		var kind, last string
		if a.starved {
			kind, last = "hang", firstMatchLine(m.file("console.log"), reLockup)
			Logf("EMULATOR HANG: the %ds deadline passed before the guest got anywhere (%s window) while its kernel reported lockups or RCU stalls (the emulator starved), in %s: '%s'; retrying once", int(m.Timeout.Seconds()), m.Window, m.Dir, last)
		} else if a.stalled {
			kind, last = "hang", lastConsoleLine(m.file("console.log"))
			Logf("EMULATOR HANG: the kernel did not start the guest's code within %ds although the console kept printing (%s window), in %s; last console line: '%s'; retrying once", early, m.Window, m.Dir, last)
		} else if a.hung {
			kind, last = "hang", lastConsoleLine(m.file("console.log"))
			Logf("EMULATOR HANG: no console output for %ds before the guest's code ran (%s window), in %s; last console line: '%s'; retrying once", hang, m.Window, m.Dir, last)
		} else {
			kind, last = "panic", firstPanicLine(m.file("console.log"))
			when := "before our code ran"
			switch {
			case m.Window == WindowBoot:
				when = "before the scenario's result, on disks a restart finds unchanged"
			case m.Window == WindowScenario && !m.beforeOurCode(ReadFacts(m.file("facts.txt"))):
				when = "with a kernel oops before the scenario started, on disks nothing has written"
			}
			Logf("EMULATOR PANIC: the kernel panicked %s, in %s: '%s'; retrying once", when, m.Dir, last)
		}
		if err := appendRetry(m.Dir, kind, string(m.Window), last); err != nil {
			return nil, err
		}
		for _, f := range []string{"console.log", "facts.txt", "qemu.log"} {
			if _, err := os.Stat(m.file(f)); err == nil {
				os.Rename(m.file(f), m.file(f+".hang1"))
			}
		}
		res.Retried = true
		// The retry starts from the disks as they were.
		if err := m.overlays(false); err != nil {
			return nil, err
		}
		a = m.once(args, hang, early)
		if a.hung {
			Logf("EMULATOR HANG again (no console output for %ds, or no start of the guest's code within %ds) in %s; last console line: '%s'; failing", hang, early, m.Dir, lastConsoleLine(m.file("console.log")))
			a.rc = ExitTimeout
		} else if a.panicked {
			Logf("EMULATOR PANIC again in %s; failing", m.Dir)
		}
	}
	if err := m.overlays(true); err != nil {
		return nil, err
	}
	res.BootToScenario, res.Total, res.Code, res.PowerCut = a.tScen, a.total, a.rc, a.cut
	scen := "none"
	if a.tScen >= 0 {
		scen = fmt.Sprintf("%.1f", a.tScen)
	}
	timing := fmt.Sprintf("boot_to_scenario=%s\ntotal=%.1f\nrc=%d\n", scen, a.total, a.rc)
	if res.Retried {
		timing += "retried_after_hang=1\n"
	}
	if err := os.WriteFile(m.file("timing"), []byte(timing), 0o644); err != nil {
		return nil, err
	}
	if scen == "none" {
		scen = "never"
	}
	Logf("VM done rc=%d, scenario started after %s s, total %.1f s", a.rc, scen, a.total)
	res.Facts = ReadFacts(m.file("facts.txt"))
	res.Code, res.Why = m.verdict(a.rc, res.Facts)
	return res, nil
}

// verdict turns QEMU's status and the facts into the boot's exit code.
func (m *Machine) verdict(rc int, f Facts) (int, string) {
	if rc == ExitTimeout {
		Logf("TIMEOUT after %ds or a second emulator hang; console tail:", int(m.Timeout.Seconds()))
		consoleTail(m.file("console.log"))
		return ExitTimeout, "timeout"
	}
	if b, err := os.ReadFile(m.file("qemu.log")); err == nil && len(b) > 0 {
		Logf("qemu said:")
		os.Stderr.Write(b)
	}
	if v := f.Get("initrd_fail"); v != "" {
		Logf("initramfs failed: %s", v)
		return ExitInitrdFail, "initramfs failed: " + v
	}
	if !f.Has("scenario_start") {
		Logf("the guest never reached its scenario (no scenario_start); console tail:")
		consoleTail(m.file("console.log"))
		return ExitNoScenario, "no scenario_start"
	}
	for _, e := range m.Expect {
		k, v, _ := strings.Cut(e, "=")
		if got := f.Get(k); got != v {
			Logf("expected %s=%s, got '%s'; console tail:", k, v, got)
			consoleTail(m.file("console.log"))
			return ExitExpect, fmt.Sprintf("expected %s=%s, got '%s'", k, v, got)
		}
	}
	if src := f.Get("scenario_rc"); src != "" && src != "0" {
		Logf("scenario %s failed: scenario_rc=%s", f.Get("scenario_start"), src)
		return ExitScenarioRC, "scenario_rc=" + src
	}
	if rc != 0 {
		return rc, fmt.Sprintf("QEMU exit %d", rc)
	}
	return ExitOK, ""
}

func (m *Machine) file(name string) string { return filepath.Join(m.Dir, name) }

// KernelArgs begin every direct kernel boot's command line (args says why
// each is there).
const KernelArgs = "console=ttyS0,115200 panic=1 no_timer_check " + TCGArgs

// TCGArgs are what every guest kernel under TCG should be given, however
// it is booted (tsc=reliable: see args): the GRUB entries the tests write
// and the installed systems' GRUB configuration add them too.
const TCGArgs = "tsc=reliable"

// args is QEMU's command line (after the binary).
func (m *Machine) args() ([]string, error) {
	args := []string{"-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot",
		"-machine", "pc"}
	args = append(args, accelArgs(m)...)
	args = append(args, "-smp", "2", "-m", strconv.Itoa(m.MemMiB),
		"-serial", "file:"+m.file("console.log"), "-serial", "file:"+m.file("facts.txt"))
	if !m.FirmwareBoot {
		// panic=1: a kernel panic reboots, and -no-reboot turns that
		// into exit. no_timer_check: the kernel's early IO-APIC timer
		// check busy-waits a few ticks; under TCG on a loaded host the
		// vCPU can miss them and panic ("IO-APIC + timer doesn't
		// work!") before our code runs. KVM guests skip it the same way.
		// tsc=reliable: on a loaded host the clocksource watchdog finds
		// the emulated TSC skewed, switches away from it and disables
		// the stable-sched_clock static key, which patches kernel text
		// with int3 while the other vCPU runs it; TCG's cross-vCPU code
		// invalidation loses that race now and then ("Oops: int3" in the
		// scheduler, "Fatal exception in interrupt", twice in a row on
		// one CI row). TCG's TSC is the host's clock, the same on every
		// vCPU, so not watching it costs nothing.
		args = append(args, "-kernel", m.Kernel, "-initrd", m.Initrd,
			"-append", strings.TrimSpace(KernelArgs+" "+m.Append))
	}
	if m.UEFI {
		vars := m.file("vars.fd")
		if err := copyFile("/usr/share/OVMF/OVMF_VARS_4M.fd", vars); err != nil {
			return nil, fmt.Errorf("OVMF (apt install ovmf): %w", err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	if m.CDROM != "" {
		args = append(args, "-drive", "file="+m.CDROM+",media=cdrom,readonly=on,if=ide,index=2")
	}
	for _, d := range m.Disks {
		if d.Size > 0 {
			os.Remove(d.Path)
			if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(d.Path, nil, 0o644); err != nil {
				return nil, err
			}
			if err := os.Truncate(d.Path, d.Size); err != nil {
				return nil, err
			}
		}
		if d.Overlay {
			d.Path, d.format = m.overlayPath(d), "qcow2"
		}
		args = append(args, d.qemuArgs()...)
	}
	if m.QMP {
		sock := m.file("qmp.sock")
		os.Remove(sock)
		args = append(args, "-qmp", "unix:"+sock+",server=on,wait=off")
	}
	return append(args, m.QEMUArgs...), nil
}

// qemuArgs: cache=unsafe: the host's page cache is fine for throwaway test
// disks and keeps TCG runs from waiting on host fsyncs.
func (d Disk) qemuArgs() []string {
	id := d.ID
	if id == "" {
		id = d.Serial
	}
	if id == "" && d.LogicalBlockSize == 0 && !d.ReadOnly && d.Device == "" {
		drive := "file=" + d.Path + ",format=" + d.fmt() + ",if=virtio,cache=unsafe,discard=unmap"
		if d.Drive != "" {
			drive += "," + d.Drive
		}
		return []string{"-drive", drive}
	}
	drive := "if=none,id=" + id + ",file=" + d.Path + ",format=" + d.fmt() + ",cache=unsafe"
	if d.ReadOnly {
		drive += ",readonly=on"
	}
	if d.Drive != "" {
		drive += "," + d.Drive
	}
	dev := "virtio-blk-pci,drive=" + id
	if d.Serial != "" {
		dev += ",serial=" + d.Serial
	}
	if d.LogicalBlockSize > 0 {
		bs := strconv.Itoa(d.LogicalBlockSize)
		dev += ",logical_block_size=" + bs + ",physical_block_size=" + bs
	}
	if d.Device != "" {
		dev += "," + d.Device
	}
	return []string{"-drive", drive, "-device", dev}
}

type attempt struct {
	rc             int
	hung, panicked bool
	stopped        bool // panicked, and stopped by Boot
	stalled        bool // hung although the console grew (see once)
	starved        bool // timed out in the window amid lockup reports (see once)
	ourCode        bool // the kernel was seen starting our code
	tScen, total   float64
	factsSeen      map[string]bool
	start          time.Time
	lastSize       int64
	lastChange     time.Time
	cut            bool
}

// once is one QEMU run. hung: the console stood still for hang seconds
// inside the retry window, or (stalled) the kernel had not started our
// code early seconds after QEMU started, however much the console grew:
// a guest stuck in early boot whose lockup watchdog keeps printing "BUG:
// soft lockup" reports is as hung as a silent one (seen once, in an e2e
// live boot: the reports never stopped). QEMU is killed then. panicked:
// the kernel panicked before our code ran.
func (m *Machine) once(args []string, hang, early int) attempt {
	a := attempt{tScen: -1, start: time.Now(), lastSize: -1, lastChange: time.Now(), factsSeen: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.Qemu, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	qlog, err := os.Create(m.file("qemu.log"))
	if err != nil {
		a.rc = 1
		return a
	}
	defer qlog.Close()
	cmd.Stdout, cmd.Stderr = qlog, qlog
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(qlog, err)
		a.rc = 127
		return a
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var follow *follower
	if os.Getenv("LM_VERBOSE") == "1" {
		follow = newFollower(m.file("console.log"))
	}
	r := &Running{m: m, cmd: cmd}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var werr error
loop:
	for {
		select {
		case werr = <-done:
			break loop
		case <-tick.C:
		}
		follow.poll()
		facts := ReadFacts(m.file("facts.txt"))
		if a.tScen < 0 && facts.Has("scenario_start") {
			a.tScen = time.Since(a.start).Seconds()
		}
		for k, hook := range m.OnFact {
			if !a.factsSeen[k] && facts.Has(k) {
				a.factsSeen[k] = true
				hook(facts.Get(k), r)
			}
		}
		size := fileSize(m.file("console.log"))
		if size != a.lastSize {
			a.lastSize, a.lastChange = size, time.Now()
			// A panicked guest without panic= waits for the deadline:
			// end it now when it is to be retried.
			if m.Window != WindowKernel && m.retryablePanic(facts) {
				a.panicked, a.stopped = true, true
				_ = cmd.Process.Signal(syscall.SIGTERM)
				werr = <-done
				break loop
			}
		} else if time.Since(a.lastChange) >= time.Duration(hang)*time.Second && m.inWindow(facts) {
			a.hung = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			werr = <-done
			break loop
		}
		if m.Window != WindowNone && !a.ourCode && time.Since(a.start) >= time.Duration(early)*time.Second {
			if !m.beforeOurCode(facts) {
				a.ourCode = true // once started, the console need not be read for it again
				continue
			}
			a.hung, a.stalled = true, true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			werr = <-done
			break loop
		}
	}
	follow.poll()
	a.cut = r.Cut
	a.total = time.Since(a.start).Seconds()
	switch {
	case ctx.Err() == context.DeadlineExceeded && !a.hung && m.Window != WindowNone && m.inWindow(ReadFacts(m.file("facts.txt"))) && consoleHas(m.file("console.log"), reLockup):
		// The deadline passed before the guest got anywhere while its
		// kernel reported soft lockups or RCU stalls: the emulator was
		// starved of CPU (seen on Debian boots beside other VMs), which
		// is an emulator hang like the silent kind.
		a.hung, a.starved = true, true
		a.rc = ExitTimeout
	case ctx.Err() == context.DeadlineExceeded && !a.hung:
		a.rc = ExitTimeout
	case a.stopped:
		a.rc = ExitPanic
	case werr == nil:
		a.rc = 0
	default:
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			a.rc = ee.ExitCode()
			if a.rc < 0 { // killed by a signal
				a.rc = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
			}
		} else {
			a.rc = 1
		}
	}
	if !a.hung && !a.panicked && m.Window != WindowNone && !r.Cut {
		con, _ := os.ReadFile(m.file("console.log"))
		f := ReadFacts(m.file("facts.txt"))
		if bytes.Contains(con, rePanic) && (m.beforeOurCode(f) || m.retryablePanic(f)) {
			a.panicked = true
		}
	}
	return a
}

// inWindow: the guest has not yet got to where a restart could change a disk.
func (m *Machine) inWindow(f Facts) bool {
	switch m.Window {
	case WindowScenario:
		return !f.Has("scenario_start")
	case WindowKernel:
		return m.beforeOurCode(f)
	case WindowBoot:
		return !f.Has("scenario_rc")
	}
	return false
}

// retryablePanic: the kernel panicked inside the window, after our code
// started, with an oops of its own (under TCG: "Oops: int3" in the
// scheduler, then "Fatal exception in interrupt"), not because init died
// ("Attempted to kill init!": our initramfs or scenario failing, which a
// restart would only repeat). In WindowScenario this is a live boot
// before scenario_start, whose disks nothing has written yet.
func (m *Machine) retryablePanic(f Facts) bool {
	if m.Window != WindowScenario && m.Window != WindowBoot || !m.inWindow(f) {
		return false
	}
	con, _ := os.ReadFile(m.file("console.log"))
	return bytes.Contains(con, rePanic) && !bytes.Contains(con, reKilledInit)
}

// beforeOurCode: the kernel has not started our initramfs (or init) yet.
func (m *Machine) beforeOurCode(f Facts) bool {
	if f.Has("initrd_start") {
		return false
	}
	con, _ := os.ReadFile(m.file("console.log"))
	return !reInitProcess.Match(con)
}

// reLockup matches the kernel's reports of a CPU that did not get to run:
// soft lockups and RCU stalls.
var reLockup = regexp.MustCompile(`BUG: soft lockup|rcu: INFO: rcu_[a-z]+ (self-)?detected stall|rcu_[a-z]+ self-detected stall`)

func consoleHas(path string, re *regexp.Regexp) bool {
	b, _ := os.ReadFile(path)
	return re.Match(b)
}

// firstMatchLine is the first console line re matches ("" when none).
func firstMatchLine(path string, re *regexp.Regexp) string {
	for _, l := range consoleLines(path) {
		if re.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// consoleLines is the console without CRs and terminal escapes.
func consoleLines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.ReplaceAll(string(b), "\r", "")
	return strings.Split(s, "\n")
}

// lastConsoleLine is the console's last line with text, for the logs.
func lastConsoleLine(path string) string {
	lines := consoleLines(path)
	for i := len(lines) - 1; i >= 0; i-- {
		l := reANSI.ReplaceAllString(lines[i], "")
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

var reStamp = regexp.MustCompile(`^\[[ 0-9.]*\] `)

// firstPanicLine is the console's first panic line without its timestamp.
func firstPanicLine(path string) string {
	for _, l := range consoleLines(path) {
		if strings.Contains(l, string(rePanic)) {
			return reStamp.ReplaceAllString(l, "")
		}
	}
	return ""
}

// consoleTail prints the console's last 20 lines on stderr.
func consoleTail(path string) {
	lines := consoleLines(path)
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	for _, l := range lines {
		fmt.Fprintln(os.Stderr, l)
	}
}

// follower copies the console to stderr as it grows (LM_VERBOSE=1).
type follower struct {
	path string
	off  int64
}

func newFollower(path string) *follower { return &follower{path: path} }

func (f *follower) poll() {
	if f == nil {
		return
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return
	}
	defer fh.Close()
	if _, err := fh.Seek(f.off, 0); err != nil {
		return
	}
	n, _ := io.Copy(os.Stderr, fh)
	f.off += n
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

var reSafe = regexp.MustCompile(`^[-A-Za-z0-9_./=:,+@%]+$`)

// shellQuote quotes s for a shell, for the cmdline file (to rerun by hand).
func shellQuote(s string) string {
	if reSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
