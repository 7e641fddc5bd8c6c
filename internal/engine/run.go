package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// Kernel is everything Run does to the system. kernel.go has the real one;
// tests use a fake.
type Kernel interface {
	ReadArray(name string) (*mdraid.Array, error)
	HotAdd(md, dev string) error
	Fail(md string, major, minor uint32) error
	Remove(md string, major, minor uint32) error
	// RemoveByName takes a member out by its kernel name; it works when
	// the device is gone.
	RemoveByName(md, name string) error
	SetSpeed(md, file string, l mdraid.SpeedLimit) error
	GrowArray(md string) (uint64, error)
	GrowFS(mountpoint, device string) (resize.Result, error)
	COWUsage(s *overlay.Stack) (overlay.Usage, error)
	ReleaseStack(s *overlay.Stack, before *overlay.Usage) (overlay.ReleaseReport, error)
	Finalize(spec *FinalizeSpec, emit func(finalize.Result, bool)) ([]finalize.Result, error)
	// Partition writes l to disk and returns the device number of the
	// partition root once the kernel shows it.
	Partition(disk string, l *partition.Layout, root string) (major, minor uint32, err error)
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

	mu      sync.Mutex
	pending Speed // a speed switch asked for and not applied yet
	toggled bool

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

// Run executes p. Cancelling ctx before the point of no return takes the
// target out of the array again and leaves the live session as it was
// (ExitInterrupted); from the point of no return on, cancellation is noted
// and the run finishes, because stopping there would leave a half state.
func (r *Runner) Run(ctx context.Context, p *Plan) (*Result, error) {
	res := &Result{}
	pastNoReturn := false
	r.emitMu.Lock()
	r.noted = false
	r.emitMu.Unlock()
	var curMu sync.Mutex
	var cur StepKind
	current := func() StepKind { curMu.Lock(); defer curMu.Unlock(); return cur }
	stopWatch := func() {}
	defer func() { stopWatch() }()
	for _, st := range p.Steps {
		if st.Irreversible {
			// Re-check right before the point of no return: the target must
			// hold everything.
			if err := ctx.Err(); err != nil {
				return res, r.abort(p, StepDropLive, ExitInterrupted, errors.New("interrupted"))
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
		msg, err := r.step(ctx, p, st, res, pastNoReturn)
		if err != nil {
			var re *RunError
			if errors.As(err, &re) {
				r.emit(Event{Type: EvStepFailed, Step: st.Kind, Message: err.Error()})
				return res, err
			}
			if !pastNoReturn {
				r.emit(Event{Type: EvStepFailed, Step: st.Kind, Message: err.Error()})
				return res, r.abort(p, st.Kind, ExitAborted, err)
			}
			code := ExitFailure
			state := "migrated: / now lives on " + p.Target
			switch st.Kind {
			case StepGrowFS:
				code = ExitGrowFailed
				state += "; the filesystem keeps its old size and can be grown by hand"
			case StepRelease:
				code = ExitReleaseFailed
				state += "; run 'livemigrate release' again once the reason is fixed"
			case StepFinalize:
				code = ExitFinalizeFailed
				state += "; it is not fully set up to boot on its own: fix what the step names and run the same migrate command again"
			}
			r.emit(Event{Type: EvStepFailed, Step: st.Kind, Message: err.Error()})
			re = &RunError{Code: code, Step: st.Kind, State: state, Err: err}
			// A failed grow or finalize must not keep the live stack in RAM:
			// restore md's limits and release anyway.
			if st.Kind == StepGrowFS || st.Kind == StepFinalize {
				_ = r.restoreSpeed(p)
			}
			if (st.Kind == StepGrowFS || st.Kind == StepFinalize) && p.Has(StepRelease) && !r.NoRelease && r.Stack != nil {
				if rep, rerr := r.K.ReleaseStack(r.Stack, nil); rerr == nil {
					res.Release = &rep
				}
			}
			return res, re
		}
		r.emit(Event{Type: EvStepDone, Step: st.Kind, Message: msg})
	}
	stopWatch()
	stopWatch = func() {}
	if pastNoReturn && ctx.Err() != nil {
		// The signal came as the last step ended (the watcher had no
		// chance): say so, the man page promises it.
		r.noteLateInterrupt("", "interrupt received after the point of no return: the migration was finished, which is the safe way out")
	}
	return res, nil
}

func (r *Runner) step(ctx context.Context, p *Plan, st Step, res *Result, pastNoReturn bool) (string, error) {
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
		maj, min, err := r.K.Partition(p.Disk, p.Layout, p.Target)
		if err != nil {
			return "", err
		}
		p.TargetMajor, p.TargetMinor = maj, min
		p.TargetName = filepath.Base(p.Target)
		return fmt.Sprintf("%s partitioned; root partition %s (%d:%d)", p.Disk, p.Target, maj, min), nil
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
		if err := r.K.HotAdd(p.Array, p.Target); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s added to %s", p.Target, p.ArrayPath), nil
	case StepRecover:
		return r.recover(ctx, p, res)
	case StepDropLive:
		a, err := r.K.ReadArray(p.Array)
		if err != nil {
			return "", err
		}
		t, ok := a.MemberByDev(p.TargetMajor, p.TargetMinor)
		if !ok || !t.InSync() {
			return "", fmt.Errorf("%s is not in sync with the live leg (states %v); the live leg stays", p.Target, t.States)
		}
		live := p.LiveLeg
		if err := r.K.Fail(p.Array, live.Major, live.Minor); err != nil {
			return "", fmt.Errorf("fail the live leg %s: %w", live.Name, err)
		}
		if err := r.K.Remove(p.Array, live.Major, live.Minor); err != nil {
			return "", fmt.Errorf("remove the live leg %s: %w", live.Name, err)
		}
		return fmt.Sprintf("/ now lives on %s alone", p.Target), nil
	case StepGrowArray:
		kib, err := r.K.GrowArray(p.Array)
		if err != nil {
			return "", err
		}
		res.ArrayBytes = kib * 1024
		return fmt.Sprintf("%s is now %s", p.ArrayPath, humanize.IBytes(kib*1024)), nil
	case StepGrowFS:
		fr, err := r.K.GrowFS(r.MountPoint, "/dev/"+p.Array)
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
		rep, err := r.K.ReleaseStack(r.Stack, nil)
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
	if s == SpeedFast {
		err = errors.Join(
			r.K.SetSpeed(p.Array, "sync_speed_min", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}),
			r.K.SetSpeed(p.Array, "sync_speed_max", mdraid.SpeedLimit{KBs: FastFloorKBs, Local: true}))
	} else {
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

// COW warning thresholds, as fractions of what the migration needs.
const cowWarnFactor = 2

func (r *Runner) recover(ctx context.Context, p *Plan, res *Result) (string, error) {
	poll := r.Poll
	if poll == 0 {
		poll = time.Second
	}
	start := r.now()
	var startDone uint64
	first := true
	lastWarn := time.Time{}
	for {
		a, err := r.K.ReadArray(p.Array)
		if err != nil {
			return "", err
		}
		t, ok := a.MemberByDev(p.TargetMajor, p.TargetMinor)
		if !ok {
			if g, gone := a.Member(p.TargetName); gone && g.Gone {
				return "", fmt.Errorf("%s disappeared during recovery (unplugged or removed); md failed it", p.Target)
			}
			return "", fmt.Errorf("md dropped %s from %s during recovery (the device disappeared or failed)", p.Target, p.ArrayPath)
		}
		if t.Faulty() {
			return "", fmt.Errorf("md failed %s during recovery (write errors: see dmesg)", p.Target)
		}
		if p.LiveLeg != nil {
			l, ok := a.MemberByDev(p.LiveLeg.Major, p.LiveLeg.Minor)
			if !ok || l.Faulty() {
				return "", &RunError{Code: ExitFailure, Step: StepRecover, State: "the live leg failed before the target was in sync: / has no working copy; save what you can and reboot", Err: errors.New("live leg lost")}
			}
		}
		var cow *overlay.Usage
		if r.Stack != nil {
			if u, err := r.K.COWUsage(r.Stack); err == nil {
				cow = &u
				if used := u.UsedSectors * 512; used > res.COWPeakBytes {
					res.COWPeakBytes = used
				}
				free := u.FreeSectors() * 512
				if free < cowWarnFactor*p.COWNeedBytes && r.now().Sub(lastWarn) > 30*time.Second {
					lastWarn = r.now()
					r.emit(Event{Type: EvWarning, Step: StepRecover, Message: fmt.Sprintf("copy-on-write space is getting low: %s left; avoid large writes until the copy finishes, or stop with Ctrl+C to abort safely", humanize.IBytes(free))})
				}
			}
		}
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
		if a.SyncCompleted != nil && a.SyncAction == "recover" {
			done = a.SyncCompleted.Done * 512
			total = a.SyncCompleted.Total * 512
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
		r.emit(Event{Type: EvProgress, Step: StepRecover, Progress: pr})
		if s := r.takeSpeed(); s != "" {
			if err := r.applySpeed(p, s); err != nil {
				r.emit(Event{Type: EvWarning, Step: StepRecover, Message: err.Error()})
			}
		}
		r.sleep(ctx, poll)
		if ctx.Err() != nil {
			return "", r.abort(p, StepRecover, ExitInterrupted, errors.New("interrupted during recovery"))
		}
	}
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
	r.emit(Event{Type: EvWarning, Step: at, Message: fmt.Sprintf("stopping: %v; taking %s out of %s again", cause, p.Target, p.ArrayPath)})
	var errs []error
	if a, err := r.K.ReadArray(p.Array); err == nil {
		for _, m := range a.Members {
			isTarget := (m.Major == p.TargetMajor && m.Minor == p.TargetMinor && !m.Gone) || (p.TargetName != "" && m.Name == p.TargetName)
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
	if len(errs) > 0 {
		state = "live session intact, but cleaning up failed: " + errors.Join(errs...).Error()
	}
	return &RunError{Code: code, Step: at, State: state, Err: cause}
}
