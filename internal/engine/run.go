package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// Kernel is everything Run does to the system, split by what it touches.
// kernel.go has the real one; tests use a fake.
type Kernel interface {
	ArrayKernel
	MirrorKernel
	StackKernel
	DiskKernel
	FSKernel
	FinalizeKernel
	CopyKernel
}

// ArrayKernel drives the md array / runs on.
type ArrayKernel interface {
	ReadArray(name string) (*mdraid.Array, error)
	// HotAdd adds the device with that number (dev names it in messages).
	HotAdd(md, dev string, major, minor uint32) error
	Fail(md string, major, minor uint32) error
	Remove(md string, major, minor uint32) error
	// RemoveByName takes a member out by its kernel name; it works when
	// the device is gone.
	RemoveByName(md, name string) error
	SetSpeed(md, file string, l mdraid.SpeedLimit) error
	GrowArray(md string) (uint64, error)
}

// MirrorKernel drives the run-time mirror under / (MethodMirror,
// internal/dmmirror). live is the dm name of the device / is mounted from.
type MirrorKernel interface {
	// InsertMirror puts the mirror under live, onto the target with that
	// number (dev names it), and returns the relocated snapshot device.
	InsertMirror(live, dev string, major, minor uint32) (overlay.Dev, error)
	// MirrorStatus is the mirror's status and region size.
	MirrorStatus(live string) (dmmirror.Status, uint64, error)
	// SwitchMirror maps live linearly onto the whole of dev once the mirror
	// is in sync; done already is no error. An error that changed nothing
	// wraps errLiveLegStays.
	SwitchMirror(live, dev string) error
	// AbortMirror puts live back on its snapshot; nothing to undo is no
	// error.
	AbortMirror(live string) error
	// SetMirrorThrottle sets dm-mirror's copy throttle (percent).
	SetMirrorThrottle(percent int) error
}

// StackKernel watches and releases the live stack under the live leg.
type StackKernel interface {
	COWUsage(s *overlay.Stack) (overlay.Usage, error)
	ReleaseStack(s *overlay.Stack, before *overlay.Usage) (overlay.ReleaseReport, error)
}

// DiskKernel partitions a whole-disk target.
type DiskKernel interface {
	// Partition writes l to disk and returns the root partition once the
	// kernel shows it, with a hold that keeps udev's partition reread off
	// the disk until the partition is in the array (close it then).
	Partition(disk string, l *partition.Layout, root string) (Partitioned, error)
}

// Partitioned is what the partition step produced: the root partition,
// which the hot-add takes, and the hold on its disk.
type Partitioned struct {
	Major, Minor uint32
	Name         string
	Hold         io.Closer
}

// FSKernel grows the mounted filesystem.
type FSKernel interface {
	GrowFS(mountpoint, device string) (resize.Result, error)
}

// FinalizeKernel makes the target boot on its own.
type FinalizeKernel interface {
	Finalize(spec *FinalizeSpec, emit func(finalize.Result, bool)) ([]finalize.Result, error)
}

// runState is what the steps of one run hand on to each other; the plan
// itself never changes while it runs. It starts from the plan's target (a
// partition, or a leg md already holds) and the partition step replaces it
// with the partition it made.
type runState struct {
	major, minor uint32
	name         string
	// diskHold keeps a freshly partitioned disk locked against udev's
	// partition reread until its root partition is in the array (see
	// partition.WriteHeld).
	diskHold io.Closer
	// cowBefore is the COW's usage measured just before the run-time
	// mirror's switch removed the snapshot that reports it: what the
	// release then frees (nil on the md path, where the release reads it).
	cowBefore *overlay.Usage
	// partitioned: this run wrote the target disk's partition table;
	// mirrored: this run put the run-time mirror under / (what an abort
	// says of the target depends on both).
	partitioned, mirrored bool
	// The copy method's: the target was formatted, mounted on its
	// staging directory, and the switch service started.
	formatted, mounted, switching bool
}

func (s *runState) releaseDisk() {
	if s.diskHold != nil {
		s.diskHold.Close()
		s.diskHold = nil
	}
}

// Runner executes plans.
type Runner struct {
	K     Kernel
	Emit  func(Event)
	Poll  time.Duration // how often recovery is sampled; 1s when zero
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration)
	// Stack is the live stack as observed before the run; nil when it is
	// already gone.
	Stack *overlay.Stack
	// MountPoint of the array (/).
	MountPoint string
	// NoRelease leaves the live stack in place (for inspection in tests).
	NoRelease bool
	// Eject the medium when the copy method's release frees it.
	Eject bool
	// OnInstalled: this runner is the copy method's finishing service on
	// the installed system, and runs only the plan's Installed steps; any
	// other runner runs only the others.
	OnInstalled bool
	// Hold keeps the confirmed target open exclusively until the first
	// step that writes to it; Run checks through it, before anything is
	// done, that the device is still the one the plan was made for.
	Hold TargetHold

	mu      sync.Mutex
	pending Speed // a speed switch asked for and not applied yet
	toggled bool

	st runState // reset by each Run

	emitMu sync.Mutex // events come from Run and from its interrupt watcher
	noted  bool       // the late interrupt was reported (under emitMu)
}

// SetSpeed switches between fast and gentle while md copies (the wizard's
// toggle). It takes effect at the next progress sample; outside the copy
// it is ignored, because the plan already tuned and will restore md.
func (r *Runner) SetSpeed(s Speed) {
	r.mu.Lock()
	r.pending = s
	r.mu.Unlock()
}

func (r *Runner) takeSpeed() Speed {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.pending
	r.pending = ""
	return s
}

// Result sums up a finished run.
type Result struct {
	RecoveredBytes  uint64                 `json:"recovered_bytes"`
	RecoverySeconds float64                `json:"recovery_seconds"`
	RecoveryBps     float64                `json:"recovery_bytes_per_second"`
	ArrayBytes      uint64                 `json:"array_bytes"`
	FS              *resize.Result         `json:"filesystem,omitempty"`
	Release         *overlay.ReleaseReport `json:"release,omitempty"`
	COWPeakBytes    uint64                 `json:"cow_peak_bytes"`
	Finalize        []finalize.Result      `json:"finalize,omitempty"`
	// The copy method's: its first pass, and the release on the installed
	// system.
	Copy        *CopyReport  `json:"copy,omitempty"`
	FileRelease *FileRelease `json:"file_release,omitempty"`
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) {
	if r.Sleep != nil {
		r.Sleep(ctx, d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *Runner) emit(e Event) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.emitLocked(e)
}

func (r *Runner) emitLocked(e Event) {
	if r.Emit != nil {
		e.Time = r.now()
		r.Emit(e)
	}
}

// noteLateInterrupt reports, once, that an interrupt came after the point
// of no return and the run goes on.
func (r *Runner) noteLateInterrupt(step StepKind, msg string) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	if r.noted {
		return
	}
	r.noted = true
	r.emitLocked(Event{Type: EvWarning, Step: step, Message: msg})
}

// watchLateInterrupt reports an interrupt the moment it arrives, even in
// the middle of a step that takes minutes (finalize rebuilds an
// initramfs): whoever pressed Ctrl+C learns at once that the run will
// finish. It returns the function that stops the watcher.
func (r *Runner) watchLateInterrupt(ctx context.Context, current func() StepKind) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			r.noteLateInterrupt(current(), "interrupt received after the point of no return: finishing the migration, which is the safe way out")
		case <-stop:
		}
	}()
	return func() { close(stop); <-done }
}

// stepFailure is a step that failed after the point of no return; the run
// goes on with the steps after it.
type stepFailure struct {
	kind StepKind
	err  error
}

// Run executes p. Cancelling ctx before the point of no return takes the
// target out of the array again and leaves the live session as it was
// (ExitInterrupted); from the point of no return on, cancellation is noted
// and the run finishes, because stopping there would leave a half state.
//
// Past the point of no return nothing ends the run early: each step is
// idempotent and retried within a bound (the kernel's state around a leg
// md is removing is transient), a step that still fails is reported and
// the steps after it run anyway, and the error then lists every step left
// undone. Running the same command again does exactly those.
func (r *Runner) Run(ctx context.Context, p *Plan) (*Result, error) {
	res := &Result{}
	// A plan without an irreversible step continues a migration that is
	// past it already (the live leg gone, / on the target's linear map):
	// an interrupt is then noted and the run finishes, as after the point
	// of no return in one run; taking the target out is no longer a way
	// back, and saying "live session intact" would be false.
	pastNoReturn := true
	for _, st := range p.Steps {
		if st.Irreversible && st.Installed == r.OnInstalled {
			pastNoReturn = false
		}
	}
	r.st = runState{major: p.TargetMajor, minor: p.TargetMinor, name: p.TargetName}
	defer r.st.releaseDisk()
	r.emitMu.Lock()
	r.noted = false
	r.emitMu.Unlock()
	var curMu sync.Mutex
	var cur StepKind
	current := func() StepKind { curMu.Lock(); defer curMu.Unlock(); return cur }
	stopWatch := func() {}
	defer func() { stopWatch() }()
	if r.Hold != nil {
		defer r.releaseHold()
		if err := r.Hold.Verify(p); err != nil {
			return res, err
		}
	}
	if pastNoReturn {
		stopWatch = r.watchLateInterrupt(ctx, current)
	}
	var failures []stepFailure
	for _, st := range p.Steps {
		if st.Installed != r.OnInstalled {
			continue // the other side of the copy method's switch runs it
		}
		if st.Kind == StepPartition || st.Kind == StepHotAdd || st.Kind == StepInsertMirror || st.Kind == StepMakeFS {
			// The write itself claims the device: let go of it just
			// before (the hot-add goes by the checked device number).
			r.releaseHold()
		}
		if st.Irreversible {
			// Re-check right before the point of no return: the target must
			// hold everything.
			if err := ctx.Err(); err != nil {
				at := StepDropLive
				if p.Method == MethodCopy {
					at = st.Kind
				}
				return res, r.abort(p, at, ExitInterrupted, errors.New("interrupted"))
			}
			pastNoReturn = true
			stopWatch = r.watchLateInterrupt(ctx, current)
		}
		if !pastNoReturn && ctx.Err() != nil {
			return res, r.abort(p, st.Kind, ExitInterrupted, errors.New("interrupted"))
		}
		curMu.Lock()
		cur = st.Kind
		curMu.Unlock()
		r.emit(Event{Type: EvStepStart, Step: st.Kind, Message: st.Title})
		if pastNoReturn {
			if why := notRunnable(st.Kind, failures); why != "" {
				r.emit(Event{Type: EvStepFailed, Step: st.Kind, Message: "not run: " + why})
				failures = append(failures, stepFailure{st.Kind, errors.New("not run: " + why)})
				continue
			}
		}
		msg, err := r.stepBounded(ctx, p, st, res, pastNoReturn)
		if err == nil {
			r.emit(Event{Type: EvStepDone, Step: st.Kind, Message: msg})
			continue
		}
		r.emit(Event{Type: EvStepFailed, Step: st.Kind, Message: err.Error()})
		var re *RunError
		switch {
		case errors.As(err, &re):
			if re.Code == ExitLiveLost {
				// abort restored the limits on its own paths; this one
				// ends without it.
				_ = r.restoreSpeed(p)
			}
			return res, err
		case st.Kind == StepDropLive && errors.Is(err, errArrayBroken):
			stopWatch()
			stopWatch = func() {}
			return res, r.abort(p, st.Kind, ExitArrayBroken, err)
		case (st.Kind == StepDropLive || st.Kind == StepSwitch || st.Kind == StepSoftReboot) && errors.Is(err, errLiveLegStays):
			// The live leg is still an active leg: nothing irreversible
			// happened, so this is an abort like any before that point.
			stopWatch()
			stopWatch = func() {}
			return res, r.abort(p, st.Kind, ExitAborted, err)
		case !pastNoReturn:
			return res, r.abort(p, st.Kind, ExitAborted, err)
		}
		failures = append(failures, stepFailure{st.Kind, err})
	}
	stopWatch()
	stopWatch = func() {}
	if pastNoReturn && ctx.Err() != nil {
		// The signal came as the last step ended (the watcher had no
		// chance): say so, the man page promises it.
		r.noteLateInterrupt("", "interrupt received after the point of no return: the migration was finished, which is the safe way out")
	}
	if len(failures) > 0 {
		return res, r.unfinished(p, failures)
	}
	return res, nil
}

// TargetHold is an exclusive hold on the target (see HoldTarget).
type TargetHold interface {
	Verify(p *Plan) error
	Close() error
}

func (r *Runner) releaseHold() {
	if r.Hold != nil {
		r.Hold.Close()
		r.Hold = nil
	}
}

// notRunnable says why step k cannot run after the failures before it, or
// "" when it can. Only the release depends on an earlier step: while the
// live leg is still in the array (failed, not removed), md holds live-rw.
func notRunnable(k StepKind, failures []stepFailure) string {
	for _, f := range failures {
		if k == StepRelease && f.kind == StepDropLive {
			return "the live leg is still in the array (see " + string(StepDropLive) + ")"
		}
		if k == StepRelease && f.kind == StepSwitch {
			return "/ may still depend on the live snapshot (see " + string(StepSwitch) + ")"
		}
	}
	return ""
}

// failureCode is the exit code for a step left undone after the point of
// no return.
func failureCode(k StepKind) int {
	switch k {
	case StepDropLive, StepSwitch:
		return ExitLiveLegStuck
	case StepGrowArray, StepGrowFS:
		return ExitGrowFailed
	case StepFinalize:
		return ExitFinalizeFailed
	case StepRestoreSpeed:
		return ExitRestoreFailed
	case StepRelease:
		return ExitReleaseFailed
	}
	return ExitFailure
}

// unfinished builds the error of a run that passed the point of no return
// with steps left undone: the exit code is the first such step's, and the
// state names every one and what finishes them.
func (r *Runner) unfinished(p *Plan, failures []stepFailure) error {
	var left []string
	onlyRelease := true
	for _, f := range failures {
		what := string(f.kind)
		switch f.kind {
		case StepDropLive:
			what += " (the live leg is failed but still in " + p.ArrayPath + "; / already lives on " + p.Target + " alone)"
		case StepSwitch:
			what += " (" + p.ArrayPath + " was not switched cleanly to " + p.Target + ": see 'livemigrate status')"
		case StepGrowArray, StepGrowFS:
			what += " (the filesystem keeps its old size)"
		case StepFinalize:
			what += " (not fully set up to boot on its own)"
		case StepRestoreSpeed:
			what += " (md's recovery speed limits are not back to what they were)"
		case StepRelease:
			what += " (the live stack still holds RAM and the medium)"
		}
		if f.kind != StepRelease {
			onlyRelease = false
		}
		left = append(left, what)
	}
	state := "migrated: / now lives on " + p.Target + "; left undone: " + strings.Join(left, ", ")
	if onlyRelease {
		state += "; run 'livemigrate release' again once the reason is fixed"
	} else {
		state += "; fix what the step names and run the same migrate command again: it does only what is left"
	}
	first := failures[0]
	return &RunError{Code: failureCode(first.kind), Step: first.kind, State: state, Err: first.err, Left: failedKinds(failures)}
}

func failedKinds(fs []stepFailure) []StepKind {
	out := make([]StepKind, len(fs))
	for i, f := range fs {
		out[i] = f.kind
	}
	return out
}

// Bounds for retrying a step after the point of no return.
const (
	retryAttempts = 6
	retryFirst    = 250 * time.Millisecond
)

// stepBounded runs a step; past the point of no return it retries a failed
// step that is safe to repeat, with growing pauses (about 8 s in all),
// reporting each retry. The pauses ignore ctx: an interrupt there must
// not turn the retries into a spin.
func (r *Runner) stepBounded(ctx context.Context, p *Plan, st Step, res *Result, pastNoReturn bool) (string, error) {
	msg, err := r.step(ctx, p, st, res, pastNoReturn)
	if err == nil || !pastNoReturn || !retriable(st.Kind) {
		return msg, err
	}
	pause := retryFirst
	for i := 1; i < retryAttempts && err != nil; i++ {
		var re *RunError
		if errors.As(err, &re) || errors.Is(err, errLiveLegStays) || errors.Is(err, errArrayBroken) {
			return msg, err
		}
		r.emit(Event{Type: EvWarning, Step: st.Kind, Message: fmt.Sprintf("%v; retrying in %v (attempt %d of %d)", err, pause, i+1, retryAttempts)})
		r.sleep(context.Background(), pause)
		pause *= 2
		msg, err = r.step(ctx, p, st, res, pastNoReturn)
	}
	return msg, err
}

// retriable: the steps after the point of no return that may run again.
// Finalize is not retried here: it runs commands for minutes, and the
// user reruns it once the reason it names is fixed.
func retriable(k StepKind) bool {
	switch k {
	case StepDropLive, StepSwitch, StepGrowArray, StepGrowFS, StepRestoreSpeed, StepRelease:
		return true
	}
	return false
}

// errLiveLegStays marks a remove-live-leg failure that changed nothing:
// the live leg is still an active leg of the array.
var errLiveLegStays = errors.New("the live leg stays in the array")

// errArrayBroken marks a fail of the live leg that the kernel refused: the
// live leg stays, but md has marked the array broken (MD_BROKEN, Linux 5.19
// and later) and fails every write to it until it is stopped.
var errArrayBroken = errors.New("md refused, and marks an array broken when asked to fail its last working leg")

func (r *Runner) step(ctx context.Context, p *Plan, st Step, res *Result, pastNoReturn bool) (string, error) {
	if p.Method == MethodMirror {
		if msg, err, ok := r.mirrorStep(ctx, p, st, res); ok {
			return msg, err
		}
	}
	if p.Method == MethodCopy {
		if msg, err, ok := r.copyStep(ctx, p, st, res); ok {
			return msg, err
		}
	}
	switch st.Kind {
	case StepTune:
		if p.Speed != SpeedFast {
			return "gentle: md's own throttling stays", nil
		}
		if err := r.K.SetSpeed(p.Array, "sync_speed_min", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}); err != nil {
			return "", err
		}
		if err := r.K.SetSpeed(p.Array, "sync_speed_max", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}); err != nil {
			return "", err
		}
		return fmt.Sprintf("recovery floor %d MB/s", FastFloorKBs/1000), nil
	case StepPartition:
		r.st.releaseDisk()
		pt, err := r.K.Partition(p.Disk, p.Layout, p.Target)
		if err != nil {
			return "", err
		}
		if pt.Name == "" {
			pt.Name = filepath.Base(p.Target)
		}
		r.st.major, r.st.minor, r.st.name, r.st.diskHold = pt.Major, pt.Minor, pt.Name, pt.Hold
		r.st.partitioned = true
		return fmt.Sprintf("%s partitioned; root partition %s (%d:%d)", p.Disk, p.Target, pt.Major, pt.Minor), nil
	case StepHotAdd:
		// A failed leg left behind by an earlier run (its disk gone or
		// broken) would keep the array from taking the new one cleanly.
		if a, err := r.K.ReadArray(p.Array); err == nil {
			for _, m := range a.Members {
				if m.Faulty() {
					if err := r.K.RemoveByName(p.Array, m.Name); err != nil {
						return "", fmt.Errorf("take the failed leg %s out of %s first: %w", m.Name, p.ArrayPath, err)
					}
				}
			}
		}
		err := r.K.HotAdd(p.Array, p.Target, r.st.major, r.st.minor)
		r.st.releaseDisk() // in the array (or refused): udev may look again
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s added to %s", p.Target, p.ArrayPath), nil
	case StepRecover:
		return r.recover(ctx, p, res)
	case StepDropLive:
		return r.dropLive(p)
	case StepGrowArray:
		kib, err := r.K.GrowArray(p.Array)
		if err != nil {
			return "", err
		}
		res.ArrayBytes = kib * 1024
		return fmt.Sprintf("%s is now %s", p.ArrayPath, humanize.IBytes(kib*1024)), nil
	case StepGrowFS:
		dev := p.ArrayPath
		if dev == "" {
			dev = "/dev/" + p.Array
		}
		fr, err := r.K.GrowFS(r.MountPoint, dev)
		if err != nil {
			return "", err
		}
		res.FS = &fr
		if fr.NewSize == fr.OldSize {
			return fmt.Sprintf("%s already fills the array (%s)", fr.Type, humanize.IBytes(fr.NewSize)), nil
		}
		return fmt.Sprintf("%s grown from %s to %s", fr.Type, humanize.IBytes(fr.OldSize), humanize.IBytes(fr.NewSize)), nil
	case StepFinalize:
		rs, err := r.K.Finalize(p.Finalize, func(fr finalize.Result, done bool) {
			msg := fr.Title + "…"
			if done {
				msg = fr.Title + ": " + fr.Message
				if fr.Err != "" {
					msg = fr.Title + ": FAILED: " + fr.Err
					if fr.Message != "" {
						// What it did change before it failed.
						msg += " (done: " + fr.Message + ")"
					}
				}
			}
			r.emit(Event{Type: EvInfo, Step: StepFinalize, Message: msg})
		})
		res.Finalize = rs
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d actions done", len(rs)), nil
	case StepRestoreSpeed:
		if err := r.restoreSpeed(p); err != nil {
			return "", err
		}
		return "recovery limits restored", nil
	case StepRelease:
		if r.NoRelease || r.Stack == nil {
			return "left in place", nil
		}
		rep, err := r.K.ReleaseStack(r.Stack, r.st.cowBefore)
		res.Release = &rep
		if err != nil {
			return "", err
		}
		gained := rep.MemGained()
		msg := fmt.Sprintf("live stack released; MemAvailable %+d MiB, COW held %s", gained>>20, humanize.IBytes(rep.COWBytesFreed))
		if rep.Ejected {
			msg += "; medium ejected"
		}
		return msg, nil
	}
	return "", fmt.Errorf("unknown step %q", st.Kind)
}

// dropLive fails and removes the live leg. Each half is skipped when the
// kernel shows it done (a rerun after a crash between them). A refused fail
// changes nothing (errLiveLegStays); a failed remove leaves / on the
// target alone with the live leg failed but listed.
func (r *Runner) dropLive(p *Plan) (string, error) {
	a, err := r.K.ReadArray(p.Array)
	if err != nil {
		return "", err
	}
	t, ok := a.MemberByDev(r.st.major, r.st.minor)
	if !ok || !t.InSync() {
		return "", fmt.Errorf("%s is not in sync with the live leg (states %v): %w", p.Target, t.States, errLiveLegStays)
	}
	live := p.LiveLeg
	l, listed := a.MemberByDev(live.Major, live.Minor)
	if !listed {
		return fmt.Sprintf("/ lives on %s alone (the live leg had already left %s)", p.Target, p.ArrayPath), nil
	}
	if !l.Faulty() {
		if err := r.K.Fail(p.Array, live.Major, live.Minor); err != nil {
			// The kernel may have failed it and still answered an error:
			// what it shows now decides.
			if a2, rerr := r.K.ReadArray(p.Array); rerr != nil {
				return "", fmt.Errorf("fail the live leg %s: %v; and reading %s after that: %w", live.Name, err, p.ArrayPath, rerr)
			} else if l2, ok := a2.MemberByDev(live.Major, live.Minor); ok && !l2.Faulty() {
				if errors.Is(err, mdraid.ErrLastInSync) {
					// Refused before the kernel was asked: nothing changed.
					return "", fmt.Errorf("fail the live leg %s: %v: %w", live.Name, err, errLiveLegStays)
				}
				// The kernel refused: the target failed between the check
				// and the ioctl, and md marks an array broken when asked
				// to fail its last working leg.
				return "", fmt.Errorf("fail the live leg %s: %v (array_state %s): %w", live.Name, err, a2.ArrayState, errArrayBroken)
			}
		}
	}
	if err := r.K.Remove(p.Array, live.Major, live.Minor); err != nil {
		if a2, rerr := r.K.ReadArray(p.Array); rerr == nil {
			if _, still := a2.MemberByDev(live.Major, live.Minor); !still {
				return fmt.Sprintf("/ now lives on %s alone", p.Target), nil
			}
		}
		return "", fmt.Errorf("remove the failed live leg %s from %s: %w", live.Name, p.ArrayPath, err)
	}
	return fmt.Sprintf("/ now lives on %s alone", p.Target), nil
}

// restoreSpeed puts md's limits back as they were before the run. It always
// writes both: a mid-run toggle may have changed them whatever the plan said.
func (r *Runner) restoreSpeed(p *Plan) error {
	if p.Speed != SpeedFast && !r.toggled {
		return nil
	}
	err1 := r.K.SetSpeed(p.Array, "sync_speed_min", p.SpeedMin)
	err2 := r.K.SetSpeed(p.Array, "sync_speed_max", p.SpeedMax)
	return errors.Join(err1, err2)
}

// applySpeed switches md's limits mid-copy.
func (r *Runner) applySpeed(p *Plan, s Speed) error {
	r.toggled = true
	var err error
	switch {
	case p.Method == MethodMirror:
		err = r.K.SetMirrorThrottle(throttleFor(s))
	case s == SpeedFast:
		err = errors.Join(
			r.K.SetSpeed(p.Array, "sync_speed_min", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}),
			r.K.SetSpeed(p.Array, "sync_speed_max", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}))
	default:
		err = errors.Join(
			r.K.SetSpeed(p.Array, "sync_speed_min", p.SpeedMin),
			r.K.SetSpeed(p.Array, "sync_speed_max", p.SpeedMax))
	}
	if err != nil {
		return fmt.Errorf("switch recovery to %s: %w", s, err)
	}
	r.emit(Event{Type: EvSpeed, Step: StepRecover, Speed: s, Message: "recovery speed: " + string(s)})
	return nil
}

// pollEvery is how often the copy is sampled: Poll, or 1 s when unset.
func (r *Runner) pollEvery() time.Duration {
	if r.Poll == 0 {
		return time.Second
	}
	return r.Poll
}

// COW warning thresholds, as fractions of what the migration needs.
const cowWarnFactor = 2

func (r *Runner) recover(ctx context.Context, p *Plan, res *Result) (string, error) {
	poll := r.pollEvery()
	start := r.now()
	var startDone uint64
	first := true
	lastWarn := time.Time{}
	for {
		a, err := r.K.ReadArray(p.Array)
		if err != nil {
			return "", err
		}
		t, ok := a.MemberByDev(r.st.major, r.st.minor)
		if !ok {
			if g, gone := a.Member(r.st.name); gone && g.Gone {
				return "", fmt.Errorf("%s disappeared during recovery (unplugged or removed); md failed it", p.Target)
			}
			return "", fmt.Errorf("md dropped %s from %s during recovery (the device disappeared or failed)", p.Target, p.ArrayPath)
		}
		if t.Faulty() {
			return "", fmt.Errorf("md failed %s during recovery (write errors: see dmesg)", p.Target)
		}
		if p.LiveLeg != nil && !t.InSync() {
			// Only a target that is not yet in sync needs the live leg:
			// one in sync already holds everything (a rerun after a crash
			// between failing and removing the live leg).
			l, ok := a.MemberByDev(p.LiveLeg.Major, p.LiveLeg.Minor)
			if !ok || l.Faulty() {
				return "", &RunError{Code: ExitLiveLost, Step: StepRecover, State: "the live leg failed before the target was in sync: / has no working copy; save what you can and reboot", Err: errors.New("live leg lost")}
			}
		}
		cow := r.watchCOW(p, res, &lastWarn)
		total := a.SizeBytes
		if t.InSync() && a.SyncAction != "recover" {
			el := r.now().Sub(start).Seconds()
			copied := total - startDone
			res.RecoveredBytes = copied
			res.RecoverySeconds = el
			if el > 0 {
				res.RecoveryBps = float64(copied) / el
			}
			r.emit(Event{Type: EvProgress, Step: StepRecover, Progress: &Progress{DoneBytes: total, TotalBytes: total, Percent: 100, COW: cowInfo(cow)}})
			return fmt.Sprintf("%s copied in %.1fs (%s/s)", humanize.IBytes(copied), el, humanize.IBytes(uint64(res.RecoveryBps))), nil
		}
		var done uint64
		if c := a.Copied(); c != nil && a.SyncAction == "recover" {
			done = c.Done * 512
			total = c.Total * 512
		}
		if first {
			// A run that hot-added the target copies all of it; a resumed
			// run counts from what it found done.
			if !p.Has(StepHotAdd) {
				startDone = done
			}
			first = false
		}
		pr := &Progress{DoneBytes: done, TotalBytes: total, SpeedBps: a.SyncSpeedKBs * 1000, COW: cowInfo(cow)}
		if total > 0 {
			pr.Percent = 100 * float64(done) / float64(total)
		}
		if el := r.now().Sub(start).Seconds(); el > 0 && done > startDone {
			avg := float64(done-startDone) / el
			pr.ETASeconds = float64(total-done) / avg
		}
		if r.sampled(ctx, p, pr, poll) {
			return "", r.abort(p, StepRecover, ExitInterrupted, errors.New("interrupted during recovery"))
		}
	}
}

// watchCOW samples the live snapshot's COW during the copy: its peak goes
// into res, and a warning goes out (at most every 30 s) when the space
// left falls under twice what the migration needs. nil when unreadable.
func (r *Runner) watchCOW(p *Plan, res *Result, lastWarn *time.Time) *overlay.Usage {
	if r.Stack == nil {
		return nil
	}
	u, err := r.K.COWUsage(r.Stack)
	if err != nil {
		return nil
	}
	if used := u.UsedSectors * 512; used > res.COWPeakBytes {
		res.COWPeakBytes = used
	}
	free := u.FreeSectors() * 512
	if free < cowWarnFactor*p.COWNeedBytes && r.now().Sub(*lastWarn) > 30*time.Second {
		*lastWarn = r.now()
		r.emit(Event{Type: EvWarning, Step: StepRecover, Message: fmt.Sprintf("copy-on-write space is getting low: %s left; avoid large writes until the copy finishes, or stop with Ctrl+C to abort safely", humanize.IBytes(free))})
	}
	return &u
}

// sampled ends one progress sample of the copy: it emits pr, applies a
// speed switch asked for meanwhile, and waits for the next sample. It
// reports whether the run was interrupted while it waited.
func (r *Runner) sampled(ctx context.Context, p *Plan, pr *Progress, poll time.Duration) bool {
	r.emit(Event{Type: EvProgress, Step: StepRecover, Progress: pr})
	if s := r.takeSpeed(); s != "" {
		if err := r.applySpeed(p, s); err != nil {
			r.emit(Event{Type: EvWarning, Step: StepRecover, Message: err.Error()})
		}
	}
	// Near the end, sample ten times as often: the copy's time is
	// measured up to the sample that sees it complete, and a whole
	// poll period is a large part of a copy of a few seconds.
	d := poll
	if pr.ETASeconds > 0 && pr.ETASeconds < 2*poll.Seconds() {
		d = poll / 10
	}
	r.sleep(ctx, d)
	return ctx.Err() != nil
}

func cowInfo(u *overlay.Usage) *COWInfo {
	if u == nil {
		return nil
	}
	return &COWInfo{UsedBytes: u.UsedSectors * 512, TotalBytes: u.TotalSectors * 512}
}

// abort undoes what was done before the point of no return: the target
// leaves the array and the speed limits go back. The live session is as it
// was before the run.
func (r *Runner) abort(p *Plan, at StepKind, code int, cause error) error {
	if p.Method == MethodMirror {
		return r.abortMirror(p, at, code, cause)
	}
	if p.Method == MethodCopy {
		return r.abortCopy(p, at, code, cause)
	}
	r.emit(Event{Type: EvWarning, Step: at, Message: fmt.Sprintf("stopping: %v; taking %s out of %s again", cause, p.Target, p.ArrayPath)})
	var errs []error
	if a, err := r.K.ReadArray(p.Array); err == nil {
		for _, m := range a.Members {
			isTarget := (m.Major == r.st.major && m.Minor == r.st.minor && !m.Gone) || (r.st.name != "" && m.Name == r.st.name)
			if !isTarget {
				continue
			}
			if m.Gone {
				if err := r.K.RemoveByName(p.Array, m.Name); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", p.Target, err))
				}
				continue
			}
			if !m.Faulty() {
				if err := r.K.Fail(p.Array, m.Major, m.Minor); err != nil {
					errs = append(errs, fmt.Errorf("fail %s: %w", p.Target, err))
				}
			}
			if err := r.K.Remove(p.Array, m.Major, m.Minor); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", p.Target, err))
			}
		}
	} else {
		errs = append(errs, err)
	}
	if err := r.restoreSpeed(p); err != nil {
		errs = append(errs, err)
	}
	state := "live session intact; " + p.Target + " was taken out of the array again"
	if code == ExitArrayBroken {
		// Not intact: say what is true and what to do.
		state = "the live leg stays, but md now fails every write to / (" + p.ArrayPath + " is marked broken until it stops): save what you can to other storage, then reboot; the live medium boots as before and " + p.Target + " holds no usable system"
		if len(errs) > 0 {
			state += fmt.Sprintf("; taking %s out of the array failed too: %v", p.Target, errors.Join(errs...))
		}
		return &RunError{Code: code, Step: at, State: state, Err: cause}
	}
	if len(errs) > 0 {
		code = ExitCleanupFailed
		state = fmt.Sprintf("live session intact, but cleaning up failed: %v; see 'livemigrate status': if %s is still a leg of %s, take it out with 'mdadm %s --fail %s --remove %s'",
			errors.Join(errs...), p.Target, p.ArrayPath, p.ArrayPath, p.Target, p.Target)
	}
	return &RunError{Code: code, Step: at, State: state, Err: cause}
}
