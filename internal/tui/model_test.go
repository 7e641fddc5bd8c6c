package tui

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// probe wraps the wizard so a test can take its screen at a point of the
// run: a snap message is answered with View() in order with the keys and
// events sent before it.
type probe struct{ m Model }

type snap chan string

func (p probe) Init() tea.Cmd { return p.m.Init() }
func (p probe) View() string  { return p.m.View() }
func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if s, ok := msg.(snap); ok {
		s <- p.m.View()
		return p, nil
	}
	m, cmd := p.m.Update(msg)
	return probe{m.(Model)}, cmd
}

func asciiRenderer() *lipgloss.Renderer {
	lipgloss.SetColorProfile(termenv.Ascii)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

type harness struct {
	t  *testing.T
	tm *teatest.TestModel
	f  *fakeEngine
}

func start(t *testing.T, f *fakeEngine) *harness {
	t.Helper()
	m := New(f, Options{Renderer: asciiRenderer()})
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(80, 24))
	return &harness{t: t, tm: tm, f: f}
}

// screen is the wizard's current view, once everything sent before was
// handled.
func (h *harness) screen() string {
	h.t.Helper()
	s := make(snap, 1)
	h.tm.Send(s)
	select {
	case v := <-s:
		return v
	case <-time.After(5 * time.Second):
		h.t.Fatal("no screen after 5s")
	}
	return ""
}

// waitScreen polls until the screen contains want.
func (h *harness) waitScreen(want string) string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := h.screen()
		if strings.Contains(v, want) {
			return v
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("screen never showed %q; last:\n%s", want, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) key(k tea.KeyType) { h.tm.Send(tea.KeyMsg{Type: k}) }
func (h *harness) runes(s string)    { h.tm.Type(s) }
func (h *harness) golden(name, view string) {
	h.t.Helper()
	h.t.Run(name, func(t *testing.T) { teatest.RequireEqualOutput(t, []byte(view)) })
}

// final waits for the wizard to quit and returns its model.
func (h *harness) final() Model {
	h.t.Helper()
	return h.tm.FinalModel(h.t, teatest.WithFinalTimeout(5*time.Second)).(probe).m
}

func checkFits(t *testing.T, view string, w, hgt int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != hgt {
		t.Errorf("screen has %d lines, want %d", len(lines), hgt)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide (> %d): %q", i+1, n, w, l)
		}
	}
}

func TestOverviewNotLive(t *testing.T) {
	sys := &engine.System{RootMount: "/", RootSource: "/dev/sda1", RootFSType: "ext4", NotLive: "/ is on /dev/sda1 (ext4), not on an md array"}
	h := start(t, newFake(sys))
	v := h.waitScreen("cannot be installed")
	h.golden("screen", v)
	checkFits(t, v, 80, 24)
	h.key(tea.KeyEnter) // stops there: no way on
	if v := h.screen(); !strings.Contains(v, "cannot be installed") {
		t.Fatalf("enter left the not-live overview:\n%s", v)
	}
	h.runes("q")
	if got := h.final().ExitCode(); got != engine.ExitNotLive {
		t.Errorf("exit code %d, want %d", got, engine.ExitNotLive)
	}
}

func TestChooseTarget(t *testing.T) {
	h := start(t, newFake(liveSystem()))
	v := h.waitScreen("Headroom")
	h.golden("overview", v)
	h.key(tea.KeyEnter)
	v = h.waitScreen("Choose the disk")
	h.golden("targets", v)
	checkFits(t, v, 80, 24)
	// The cursor starts on the first usable device (sda2: sda is held by a
	// mount of sda1) and skips the refused ones.
	if !strings.Contains(v, "> "+"  /dev/sda2") {
		t.Errorf("cursor not on /dev/sda2:\n%s", v)
	}
	h.key(tea.KeyDown)
	if v := h.screen(); !strings.Contains(v, "> /dev/vda") {
		t.Errorf("down did not skip the refused sr0 to vda:\n%s", v)
	}
	h.key(tea.KeyDown) // vdb is too small: stays on vda
	if v := h.screen(); !strings.Contains(v, "> /dev/vda") {
		t.Errorf("cursor left vda for a refused device:\n%s", v)
	}
	h.key(tea.KeyCtrlC)
	if got := h.final().ExitCode(); got != engine.ExitInterrupted {
		t.Errorf("ctrl+c before the run: exit %d, want 130", got)
	}
}

// toOptions goes from the start to the options screen for /dev/vda.
func (h *harness) toOptions() {
	h.t.Helper()
	h.waitScreen("Headroom")
	h.key(tea.KeyEnter)
	h.waitScreen("Choose the disk")
	h.key(tea.KeyDown)
	h.key(tea.KeyEnter)
	h.waitScreen("Options for /dev/vda")
}

// toReview goes from the start to the review screen for /dev/vda.
func (h *harness) toReview(speed string) string {
	h.t.Helper()
	h.toOptions()
	if speed == "gentle" {
		h.key(tea.KeyDown) // "make it boot on its own"
		h.key(tea.KeyDown) // the hostname
		h.runes("box1")
		h.key(tea.KeyDown) // the password: left empty
		h.key(tea.KeyDown) // the password again
		h.key(tea.KeyDown) // the speed
		h.key(tea.KeyRight)
	}
	v := h.screen()
	h.key(tea.KeyEnter)
	h.waitScreen("Plan: install")
	return v
}

func TestReviewConfirmation(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	opts := h.toReview("gentle")
	h.golden("options", opts)
	v := h.screen()
	h.golden("review", v)
	checkFits(t, v, 80, 24)
	plan, err := f.Preflight(f.sys, engine.Request{Target: "/dev/vda", Speed: engine.SpeedGentle, Hostname: "box1"})
	if err != nil {
		t.Fatal(err)
	}
	// The plan shown is the engine's, line for line (wrapped to the width),
	// scrolled if it does not fit.
	seen := v
	for range 10 {
		h.key(tea.KeyPgDown)
		seen += h.screen()
	}
	for range 10 {
		h.key(tea.KeyPgUp)
	}
	for _, l := range wrap(plan.Render(), 80) {
		if !strings.Contains(seen, l) {
			t.Errorf("review lacks plan line %q", l)
		}
	}
	h.runes("/dev/vdb")
	h.key(tea.KeyEnter)
	v = h.waitScreen("nothing was changed")
	h.golden("wrong", v)
	select {
	case <-f.started:
		t.Fatal("a wrong confirmation started the run")
	default:
	}
	if p := h.confirm("/dev/vda"); p.Disk != "/dev/vda" || p.Speed != engine.SpeedGentle || p.Finalize == nil || p.Finalize.Hostname != "box1" {
		t.Errorf("started %s at %s (finalize %+v), want /dev/vda gentle with hostname box1", p.Target, p.Speed, p.Finalize)
	}
	h.stopAndQuit()
}

// confirm types dev on the review screen and returns the plan the run
// started with.
func (h *harness) confirm(dev string) *engine.Plan {
	h.t.Helper()
	h.runes(dev)
	h.key(tea.KeyEnter)
	select {
	case p := <-h.f.started:
		return p
	case <-time.After(5 * time.Second):
		h.t.Fatal("the confirmation did not start the run")
	}
	return nil
}

// stopAndQuit ends a started run as interrupted before anything changed
// and quits the wizard.
func (h *harness) stopAndQuit() {
	h.t.Helper()
	h.waitScreen("Installing onto /dev/vda")
	h.f.run.finish(nil, &engine.RunError{Code: engine.ExitInterrupted, Step: engine.StepTune, State: "live session intact", Err: errors.New("interrupted")})
	h.waitScreen("Stopped")
	h.runes("q")
	h.final()
}

// The live user's password is typed twice, masked, never shown again, and
// reaches the plan only when both fields agree.
func TestPasswordTypedTwice(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.toOptions()
	if v := h.screen(); !strings.Contains(v, "none: keep the account locked") {
		t.Errorf("options do not say an empty password keeps the account locked:\n%s", v)
	}
	h.key(tea.KeyDown) // "make it boot on its own"
	h.key(tea.KeyDown) // the hostname
	h.key(tea.KeyDown) // the password
	h.runes("s3cret pw")
	h.key(tea.KeyDown)
	h.runes("s3cret-pw")
	v := h.waitScreen("again:         *********")
	if strings.Contains(v, "s3cret") {
		t.Errorf("a password is shown in clear:\n%s", v)
	}
	h.key(tea.KeyEnter)
	v = h.waitScreen("the two passwords differ")
	h.golden("differ", v)
	f.mu.Lock()
	if len(f.preflight) != 0 {
		t.Errorf("differing passwords went on to preflight: %+v", f.preflight)
	}
	f.mu.Unlock()
	// Both fields were emptied and the focus is back on the first.
	h.runes("s3cret-pw")
	h.key(tea.KeyDown)
	h.runes("s3cret-pw")
	h.key(tea.KeyEnter)
	v = h.waitScreen("Plan: install")
	seen := v
	for range 10 {
		h.key(tea.KeyPgDown)
		seen += h.screen()
	}
	if !strings.Contains(strings.Join(strings.Fields(seen), " "), "the live user's password you chose") || strings.Contains(seen, "s3cret") {
		t.Errorf("review does not announce the chosen password, or shows it:\n%s", seen)
	}
	if p := h.confirm("/dev/vda"); p.Finalize == nil || p.Finalize.Password != "s3cret-pw" {
		t.Errorf("started with finalize %+v, want the password s3cret-pw", p.Finalize)
	}
	h.stopAndQuit()
}

// The hostname is the engine's to check: the wizard passes what was typed
// to Preflight and shows its refusal on the options screen, where it can be
// corrected.
func TestHostnameRefused(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.toOptions()
	h.key(tea.KeyDown) // "make it boot on its own"
	h.key(tea.KeyDown) // the hostname
	h.runes("my_box")
	h.key(tea.KeyEnter)
	v := h.waitScreen("Cannot go on:")
	if !strings.Contains(v, `hostname "my_box": use letters, digits and hyphens, at most 63 characters`) || !strings.Contains(v, "Options for /dev/vda") {
		t.Errorf("the hostname's refusal is not shown on the options screen:\n%s", v)
	}
	f.mu.Lock()
	if len(f.preflight) != 1 || f.preflight[0].Hostname != "my_box" {
		t.Errorf("preflight asked %+v, want one request with hostname my_box", f.preflight)
	}
	f.mu.Unlock()
	for range len("my_box") {
		h.key(tea.KeyBackspace)
	}
	h.runes("box1")
	h.key(tea.KeyEnter)
	h.waitScreen("Plan: install")
	h.key(tea.KeyCtrlC)
	h.final()
}

// With "make it boot on its own" off, the focus skips the set-up fields.
func TestSetUpOffSkipsFields(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.toOptions()
	h.key(tea.KeyDown)
	h.key(tea.KeySpace)
	h.waitScreen("[ ] make it boot")
	h.key(tea.KeyDown)
	h.waitScreen("> (*) fast")
	h.key(tea.KeyUp)
	v := h.waitScreen("> [ ] make it boot")
	if !strings.Contains(v, "hostname:      (kept: nothing is set up)") {
		t.Errorf("set-up fields not marked as kept:\n%s", v)
	}
	h.key(tea.KeyCtrlC)
	h.final()
}

func progressAt(pc float64, used uint64) *engine.Progress {
	total := uint64(212 * mib)
	done := uint64(float64(total) * pc / 100)
	return &engine.Progress{DoneBytes: done, TotalBytes: total, Percent: pc, SpeedBps: 36 * mib,
		ETASeconds: float64(total-done) / float64(36*mib), COW: &engine.COWInfo{UsedBytes: used, TotalBytes: 1024 * mib}}
}

// playUntilRecovery runs the fake through tune and hot-add into the copy.
func (h *harness) playUntilRecovery() *engine.Plan {
	h.t.Helper()
	h.toReview("fast")
	p := h.confirm("/dev/vda")
	f := h.f
	f.send(0, engine.Event{Type: engine.EvStepStart, Step: engine.StepTune, Message: p.Steps[0].Title})
	f.send(0, engine.Event{Type: engine.EvStepDone, Step: engine.StepTune, Message: "recovery floor 2000 MB/s"})
	f.send(time.Second, engine.Event{Type: engine.EvStepStart, Step: engine.StepHotAdd})
	f.send(time.Second, engine.Event{Type: engine.EvStepDone, Step: engine.StepHotAdd})
	f.send(time.Second, engine.Event{Type: engine.EvStepStart, Step: engine.StepRecover})
	f.send(3*time.Second, engine.Event{Type: engine.EvProgress, Step: engine.StepRecover, Progress: progressAt(42.5, 18*mib)})
	h.waitScreen("42.5%")
	return p
}

func TestProgressToDone(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.playUntilRecovery()
	v := h.screen()
	h.golden("progress", v)
	checkFits(t, v, 80, 24)

	h.runes("f")
	h.waitScreen("switching to gentle")
	if got := f.run.Speeds(); len(got) != 1 || got[0] != engine.SpeedGentle {
		t.Errorf("speed toggle sent %v, want [gentle]", got)
	}
	f.send(4*time.Second, engine.Event{Type: engine.EvSpeed, Step: engine.StepRecover, Speed: engine.SpeedGentle, Message: "recovery speed: gentle"})
	h.waitScreen("speed gentle (f: fast)")

	f.send(6*time.Second, engine.Event{Type: engine.EvProgress, Step: engine.StepRecover, Progress: progressAt(100, 19*mib)})
	f.send(6*time.Second, engine.Event{Type: engine.EvStepDone, Step: engine.StepRecover})
	for _, k := range []engine.StepKind{engine.StepDropLive, engine.StepGrowArray, engine.StepGrowFS, engine.StepFinalize, engine.StepRestoreSpeed, engine.StepRelease} {
		f.send(7*time.Second, engine.Event{Type: engine.EvStepStart, Step: k})
		if k == engine.StepFinalize {
			// Finalize reports each of its actions as an info event.
			f.send(7*time.Second, engine.Event{Type: engine.EvInfo, Step: k, Message: "fstab: / by UUID"})
			if v := h.waitScreen("fstab: / by UUID"); !strings.Contains(v, "100.0%") {
				t.Errorf("a finalize message wiped the recovery bar:\n%s", v)
			}
		}
		f.send(8*time.Second, engine.Event{Type: engine.EvStepDone, Step: k})
	}
	res := &engine.Result{RecoveredBytes: 212 * mib, RecoverySeconds: 5.9, RecoveryBps: 212 * mib / 5.9, ArrayBytes: 1 << 30,
		FS:       &resize.Result{Type: "ext4", OldSize: 212 * mib, NewSize: 1 << 30},
		Release:  &overlay.ReleaseReport{MemAvailableBefore: 1800 * mib, MemAvailableAfter: 1820 * mib, COWBytesFreed: 19 * mib, Ejected: true},
		Finalize: []finalize.Result{{Name: "fstab", Title: "fstab", Message: "/ by UUID"}, {Name: "grub", Title: "boot loader", Message: "GRUB on /dev/vda"}}}
	f.run.finish(res, nil)
	v = h.waitScreen("Done: / now lives on /dev/vda")
	h.golden("done", v)
	checkFits(t, v, 80, 24)
	h.runes("q")
	if got := h.final().ExitCode(); got != 0 {
		t.Errorf("exit code %d after a migration, want 0", got)
	}
}

// A real finalize report is longer than a screen: the Done screen scrolls,
// so the last of it (how to unlock the live user) can be read.
func TestDoneScrollsLongReport(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.playUntilRecovery()
	lock := "the account \"live\" keeps its files but has no password and is locked: set one as root with 'passwd live' before you reboot, or you cannot log in"
	res := &engine.Result{RecoveredBytes: 212 * mib, RecoverySeconds: 5.9, RecoveryBps: 212 * mib / 5.9, ArrayBytes: 1 << 30,
		FS:      &resize.Result{Type: "ext4", OldSize: 212 * mib, NewSize: 1 << 30},
		Release: &overlay.ReleaseReport{MemAvailableBefore: 1800 * mib, MemAvailableAfter: 1820 * mib, COWBytesFreed: 19 * mib, Ejected: true},
		Finalize: []finalize.Result{
			{Title: "Format the EFI system partition", Message: "FAT32 on /dev/vda2, mounted on /boot/efi"},
			{Title: "Write /etc/fstab by UUID", Message: "/ UUID=93fa3aa5-3d1c-4c55-9d0e-6f1b2a7c8e90 ext4, /boot/efi UUID=1A2B-3C4D vfat"},
			{Title: "Give the system its own machine-id", Message: "new machine-id 0f3c…"},
			{Title: "Regenerate the SSH host keys", Message: "3 new host keys"},
			{Title: "Remove autologin and passwordless sudo of the live session", Message: "removed getty autologin (serial-getty@ttyS0, getty@tty1), passwordless sudo (/etc/sudoers.d/live); " + lock},
			{Title: "Build a regular initramfs without the live hooks", Message: "update-initramfs -u -k all (live hooks removed)"},
			{Title: "Install the GRUB boot loader", Message: "i386-pc on /dev/vda, x86_64-efi on /boot/efi (removable path EFI/BOOT/BOOTX64.EFI)"},
			{Title: "Write the GRUB menu", Message: "grub-mkconfig -o /boot/grub/grub.cfg"},
		}}
	f.run.finish(res, nil)
	v := h.waitScreen("Done: / now lives on /dev/vda")
	checkFits(t, v, 80, 24)
	if !strings.Contains(v, "pgup/pgdn to scroll") || !strings.Contains(v, "pgdn scroll down") {
		t.Fatalf("a report longer than the screen does not scroll:\n%s", v)
	}
	seen := v
	for range 20 {
		h.key(tea.KeyPgDown)
		seen += h.screen()
	}
	if !strings.Contains(strings.Join(strings.Fields(seen), " "), "set one as root with 'passwd live' before you reboot") {
		t.Errorf("scrolling never shows how to unlock the live user:\n%s", seen)
	}
	h.golden("bottom", h.screen())
	h.key(tea.KeyPgUp)
	if v := h.screen(); !strings.Contains(v, "(lines 10-29 of 30") {
		t.Errorf("pgup after scrolling past the end:\n%s", v)
	}
	h.runes("q")
	if got := h.final().ExitCode(); got != 0 {
		t.Errorf("exit code %d, want 0", got)
	}
}

func TestFailureShowsError(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.playUntilRecovery()
	f.send(5*time.Second, engine.Event{Type: engine.EvStepFailed, Step: engine.StepRecover, Message: "md failed /dev/vda during recovery (write errors: see dmesg)"})
	f.send(5*time.Second, engine.Event{Type: engine.EvWarning, Step: engine.StepRecover, Message: "stopping: md failed /dev/vda during recovery (write errors: see dmesg); taking /dev/vda out of /dev/md127 again"})
	f.run.finish(&engine.Result{}, &engine.RunError{Code: engine.ExitAborted, Step: engine.StepRecover,
		State: "live session intact; /dev/vda was taken out of the array again",
		Err:   errors.New("md failed /dev/vda during recovery (write errors: see dmesg)")})
	v := h.waitScreen("The migration failed")
	h.golden("error", v)
	checkFits(t, v, 80, 24)
	h.runes("q")
	if got := h.final().ExitCode(); got != engine.ExitAborted {
		t.Errorf("exit code %d, want %d", got, engine.ExitAborted)
	}
}

func TestCtrlCDuringRecovery(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.playUntilRecovery()
	h.key(tea.KeyCtrlC)
	v := h.waitScreen("Stop the migration?")
	h.golden("asks", v)
	checkFits(t, v, 80, 24)
	h.key(tea.KeyEsc) // keep waiting
	if v := h.screen(); strings.Contains(v, "Stop the migration?") {
		t.Fatalf("esc did not dismiss the question:\n%s", v)
	}
	select {
	case <-f.run.cancelled:
		t.Fatal("keep waiting cancelled the run")
	default:
	}
	h.key(tea.KeyCtrlC)
	h.waitScreen("Stop the migration?")
	h.runes("a")
	if !f.run.wasCancelled(t) {
		t.Fatal("abort did not cancel the run")
	}
	h.waitScreen("Stopping: taking /dev/vda3 out")
	f.send(6*time.Second, engine.Event{Type: engine.EvWarning, Step: engine.StepRecover, Message: "stopping: interrupted during recovery; taking /dev/vda out of /dev/md127 again"})
	f.run.finish(&engine.Result{}, &engine.RunError{Code: engine.ExitInterrupted, Step: engine.StepRecover,
		State: "live session intact; /dev/vda was taken out of the array again", Err: errors.New("interrupted during recovery")})
	v = h.waitScreen("Stopped. Nothing was changed.")
	h.golden("stopped", v)
	h.runes("q")
	if got := h.final().ExitCode(); got != engine.ExitInterrupted {
		t.Errorf("exit code %d, want 130", got)
	}
}

func TestCtrlCAfterPointOfNoReturn(t *testing.T) {
	f := newFake(liveSystem())
	h := start(t, f)
	h.playUntilRecovery()
	f.send(6*time.Second, engine.Event{Type: engine.EvStepDone, Step: engine.StepRecover})
	f.send(6*time.Second, engine.Event{Type: engine.EvStepStart, Step: engine.StepDropLive})
	h.waitScreen("finishing up")
	h.key(tea.KeyCtrlC)
	v := h.waitScreen("Past the point of no return")
	h.golden("explains", v)
	select {
	case <-f.run.cancelled:
		t.Fatal("ctrl+c after the point of no return cancelled the run")
	default:
	}
	// An interrupt signal (SIGTERM) lets it finish, then quits.
	h.tm.Send(Interrupt{})
	f.run.finish(&engine.Result{}, nil)
	if got := h.final().ExitCode(); got != 0 {
		t.Errorf("exit code %d, want 0", got)
	}
}

func TestResize(t *testing.T) {
	h := start(t, newFake(liveSystem()))
	h.waitScreen("Headroom")
	h.tm.Send(tea.WindowSizeMsg{Width: 60, Height: 16})
	v := h.screen()
	checkFits(t, v, 60, 16)
	h.key(tea.KeyEnter)
	v = h.waitScreen("Choose")
	checkFits(t, v, 60, 16)
	h.key(tea.KeyCtrlC)
	h.final()
}

// With NO_COLOR the wizard draws no colours or attributes, and on the Linux
// console only ASCII: refused devices and states are still told in words.
func TestPlainRendering(t *testing.T) {
	view := func(r *lipgloss.Renderer, term string) string {
		m := New(newFake(liveSystem()), Options{Renderer: r, Term: term})
		sys := liveSystem()
		mm, _ := m.Update(observedMsg{sys: sys, cands: candidates(sys)})
		// enter on the overview says to go on; the top model moves.
		mm, cmd := mm.Update(tea.KeyMsg{Type: tea.KeyEnter})
		mm, _ = mm.Update(cmd())
		return mm.View()
	}
	tty := func() *lipgloss.Renderer {
		return lipgloss.NewRenderer(&bytes.Buffer{}, termenv.WithTTY(true))
	}
	t.Setenv("TERM", "xterm-256color")
	t.Setenv("NO_COLOR", "")
	if v := view(tty(), "xterm-256color"); !strings.Contains(v, "\x1b[") {
		t.Fatalf("a colour terminal got no styles; the NO_COLOR check below proves nothing:\n%s", v)
	}
	t.Setenv("NO_COLOR", "1")
	v := view(tty(), "xterm-256color")
	if strings.Contains(v, "\x1b") {
		t.Errorf("NO_COLOR=1 still draws escape sequences:\n%q", v)
	}
	if !strings.Contains(v, "cannot be used: holds the live medium") {
		t.Errorf("plain screen does not say why sr0 is refused:\n%s", v)
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "linux")
	v = view(tty(), "linux")
	for _, r := range ansi.Strip(v) {
		if r > 0x7e {
			t.Errorf("TERM=linux screen has non-ASCII %q:\n%s", r, v)
			break
		}
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"  8. Release the live stack: live-rw, COW loop2", []string{"  8. Release the", "     live stack:", "     live-rw, COW", "     loop2"}},
		{"    - everything on /dev/vda", []string{"    - everything on", "      /dev/vda"}},
		{"short", []string{"short"}},
	} {
		got := wrap(tc.in, 20)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("wrap(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
