package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/overlay"
)

// Session is the one way a face starts a migration: observe and check
// without the lock (a dry run, the wizard's review), then Begin under the
// lock, then Run. The CLI and the wizard both go through it, so the order
// of lock, observe, preflight, compare, hold and save is written once.
type Session struct {
	// Eject the CD when the live stack is released.
	Eject bool
	// NoRelease leaves the live stack in place at the end.
	NoRelease bool
	// WrapKernel, when set, wraps the running system's kernel for the run.
	// The VM tests use it to act on the real kernel between two of the
	// engine's own calls (to fail the target just before the live leg is
	// failed, say); the CLI and the wizard leave it nil.
	WrapKernel func(Kernel) Kernel
}

func (Session) observer() Observer { return Observer{Root: "/"} }

// Observe reads the running system.
func (s Session) Observe() (*System, error) { return s.observer().Observe() }

// Candidates lists the disks and partitions, refused ones with their reason.
func (s Session) Candidates(sys *System, speed Speed) []Candidate {
	return s.observer().Candidates(sys, speed)
}

// Preflight inspects req's target and plans req on sys.
func (s Session) Preflight(sys *System, req Request) (*Plan, error) {
	return Preflight(sys, s.observer().Target(req.Target), req)
}

// Check observes and plans without the lock: preflight reads only, so a
// bad target is refused for what it is even while another livemigrate
// runs. Begin checks again under the lock, since that other run may have
// changed things meanwhile.
func (s Session) Check(req Request) (*Plan, error) {
	sys, err := s.Observe()
	if err != nil {
		return nil, err
	}
	plan, err := s.Preflight(sys, req)
	if err != nil && ExitCode(err) == ExitBusyArray {
		// The array being busy with another target is usually another
		// livemigrate at work right now: say that, not how to continue it.
		lk, lerr := Lock()
		if lerr != nil {
			return nil, lerr
		}
		lk.Close()
	}
	return plan, err
}

// PlanChangedError is Begin's answer when the plan made under the lock
// differs from the one the user confirmed: nothing was started, and the
// new plan must be reviewed again.
type PlanChangedError struct {
	Plan *Plan
}

func (e *PlanChangedError) Error() string {
	return fmt.Sprintf("the plan for %s changed since it was reviewed", e.Plan.Target)
}

// Begin takes the lock, observes and plans again under it, compares the
// plan with the confirmed one (when there is one; the CLI confirms after
// Begin, on the plan it returns) and holds the target exclusively. The
// migration is not started: Run does that, Close lets go instead.
func (s Session) Begin(req Request, confirmed *Plan) (*Migration, error) {
	lk, err := Lock()
	if err != nil {
		return nil, err
	}
	m, err := s.begin(req, confirmed)
	if err != nil {
		lk.Close()
		return nil, err
	}
	m.lock = lk
	return m, nil
}

func (s Session) begin(req Request, confirmed *Plan) (*Migration, error) {
	sys, err := s.Observe()
	if err != nil {
		return nil, err
	}
	plan, err := s.Preflight(sys, req)
	if err != nil {
		return nil, err
	}
	if confirmed != nil && !SamePlan(confirmed, plan) {
		return nil, &PlanChangedError{Plan: plan}
	}
	if confirmed != nil && confirmed.Copy != nil && plan.Copy != nil {
		// Each plan draws a filesystem UUID: the one reviewed is made.
		adoptUUID(plan, confirmed.Copy.FSUUID)
	}
	// From here to the first write the target is held exclusively, and the
	// run checks through the hold that it is still the device checked.
	hold, err := HoldTarget(plan)
	if err != nil {
		return nil, err
	}
	var k Kernel = NewSysKernel(overlay.ReleaseOptions{Eject: s.Eject})
	if s.WrapKernel != nil {
		k = s.WrapKernel(k)
	}
	r := &Runner{K: k, Stack: sys.Stack, MountPoint: "/", NoRelease: s.NoRelease, Eject: s.Eject}
	if plan.Copy != nil {
		plan.Copy.Eject, plan.Copy.NoRelease = s.Eject, s.NoRelease
	}
	if hold != nil {
		r.Hold = hold
	}
	return &Migration{Plan: plan, System: sys, r: r}, nil
}

// Migration is a plan made and checked under the lock, with its target
// held, ready to Run.
type Migration struct {
	Plan   *Plan
	System *System
	r      *Runner
	lock   *os.File
}

// Run saves the live stack for 'livemigrate release' and runs the plan,
// sending every event to emit; it lets go of the target and the lock
// when it returns.
func (m *Migration) Run(ctx context.Context, emit func(Event)) (*Result, error) {
	defer m.Close()
	if st := m.System.Stack; st != nil {
		if m.Plan.Method == MethodMirror {
			// The run-time mirror moves the snapshot to livemigrate-src
			// and removes it at the switch, while live-rw stays as the
			// root's linear map: what is left to release afterwards is the
			// stack below the moved snapshot. The file also tells a run
			// after the switch that / is on this migration's linear map.
			cp := *st
			cp.Snapshot, cp.DMName = overlay.Dev{}, dmmirror.SrcName
			st = &cp
		}
		if err := SaveStack(StackFile, st); err != nil {
			emit(Event{Time: time.Now(), Type: EvWarning, Message: err.Error() + "; 'livemigrate release' may not find the live stack again if the release step fails"})
		}
	}
	m.r.Emit = emit
	return m.r.Run(ctx, m.Plan)
}

// SetSpeed switches md between fast and gentle while it copies.
func (m *Migration) SetSpeed(s Speed) { m.r.SetSpeed(s) }

// Close lets go of the target and the lock without running (after Run it
// does nothing).
func (m *Migration) Close() {
	m.r.releaseHold()
	if m.lock != nil {
		m.lock.Close()
		m.lock = nil
	}
}

// SamePlan reports whether the plan made under the lock does what the
// confirmed one said: the same kinds of steps, destroying the same things.
// Titles are not compared: they carry figures that move while the session
// runs (the RAM the COW holds).
func SamePlan(a, b *Plan) bool {
	kinds := func(p *Plan) []StepKind {
		var out []StepKind
		for _, s := range p.Steps {
			out = append(out, s.Kind)
		}
		return out
	}
	// The device itself, not only its name: the one reviewed must be the
	// one written.
	if (a.TargetID == nil) != (b.TargetID == nil) || (a.TargetID != nil && *a.TargetID != *b.TargetID) {
		return false
	}
	return a.Method == b.Method && a.Target == b.Target && a.Disk == b.Disk && a.Resume == b.Resume && a.Speed == b.Speed &&
		slices.Equal(kinds(a), kinds(b)) && slices.Equal(a.Destroys, b.Destroys)
}

// Release frees the live stack once the live leg has left the array: what
// 'livemigrate release' does when the migration's own release step failed
// or was skipped. It returns nil, nil when no live stack is left; a failed
// release returns its report with a *RunError.
func (s Session) Release(lazy bool) (*overlay.ReleaseReport, error) {
	lk, err := Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	obs := s.observer()
	sys, err := obs.Observe()
	if err != nil {
		return nil, err
	}
	if sys.LiveLeg != nil {
		return nil, &Refusal{Code: ExitStillLive, Reason: fmt.Sprintf("the live leg %s is still part of %s: / still depends on it", sys.LiveLeg.Name, sys.Array.Path), Hint: "finish the migration first with 'livemigrate migrate --target DEVICE'"}
	}
	if m := sys.Mirror; m != nil && m.State != MirrorSwitched {
		return nil, &Refusal{Code: ExitStillLive, Reason: fmt.Sprintf("/ still runs on the live snapshot (%s is %s)", m.Path, m.State), Hint: "finish the migration first with 'livemigrate migrate --target DEVICE'"}
	}
	st := sys.Stack
	if st == nil {
		if st, err = obs.FindDetachedStack(); err != nil {
			return nil, err
		}
	}
	if st == nil {
		// live-rw is gone but the release stopped half way: the stack as it
		// was before the migration says what is left.
		if st, err = LoadStack(StackFile); err != nil {
			return nil, err
		}
	}
	if st == nil {
		return nil, nil
	}
	k := NewSysKernel(overlay.ReleaseOptions{Eject: s.Eject, LazyUnmount: lazy})
	rep, err := k.ReleaseStack(st, sys.COW)
	if err != nil {
		return &rep, &RunError{Code: ExitReleaseFailed, Step: StepRelease, State: "partly released; fix the reason and run 'livemigrate release' again", Err: err}
	}
	return &rep, nil
}
