package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/tui"
)

// runWizard opens the wizard when there is a terminal to show it on.
func runWizard(stdout, stderr io.Writer) int {
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		fmt.Fprintf(stderr, "livemigrate: the wizard needs a terminal, and standard input or output is not one.\n"+
			"To migrate from a script, run: livemigrate migrate --target DEVICE --yes\n")
		return engine.ExitUsage
	}
	return tui.Run(wizardEngine{}, os.Stdin, os.Stdout)
}

// wizardEngine is the wizard's view of the engine: the same observer,
// preflight, lock, saved stack and runner as 'migrate'.
type wizardEngine struct{}

func (wizardEngine) Observe() (*engine.System, error) {
	return engine.Observer{Root: "/"}.Observe()
}

func (wizardEngine) Candidates(sys *engine.System, speed engine.Speed) []engine.Candidate {
	return engine.Observer{Root: "/"}.Candidates(sys, speed)
}

func (wizardEngine) Preflight(sys *engine.System, req engine.Request) (*engine.Plan, error) {
	return engine.Preflight(sys, inspectTarget(req.Target), req)
}

// Start does what migrate does after the confirmation: under the lock it
// observes and plans again (another run may have changed things), saves the
// live stack for 'release', and runs the plan in the background.
func (w wizardEngine) Start(req engine.Request, confirmed *engine.Plan, emit func(engine.Event)) (tui.Migration, error) {
	lk, err := lock()
	if err != nil {
		return nil, err
	}
	sys, err := w.Observe()
	if err != nil {
		lk.Close()
		return nil, err
	}
	plan, err := w.Preflight(sys, req)
	if err != nil {
		lk.Close()
		return nil, err
	}
	if !samePlan(confirmed, plan) {
		lk.Close()
		return nil, &tui.PlanChanged{Plan: plan}
	}
	hold, err := engine.HoldTarget(plan)
	if err != nil {
		lk.Close()
		return nil, err
	}
	if sys.Stack != nil {
		if err := engine.SaveStack(engine.StackFile, sys.Stack); err != nil {
			emit(engine.Event{Time: time.Now(), Type: engine.EvWarning, Message: err.Error() + "; 'livemigrate release' may not find the live stack again if the release step fails"})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &engine.Runner{K: engine.NewSysKernel(overlay.ReleaseOptions{Eject: true}), Emit: emit, Stack: sys.Stack, MountPoint: "/"}
	if hold != nil {
		r.Hold = hold
	}
	mg := &migration{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer lk.Close()
		defer cancel()
		mg.res, mg.err = r.Run(ctx, plan)
		close(mg.done)
	}()
	return mg, nil
}

// samePlan reports whether the plan made under the lock does what the
// confirmed one said: the same kinds of steps, destroying the same things.
// Titles are not compared: they carry figures that move while the session
// runs (the RAM the COW holds).
func samePlan(a, b *engine.Plan) bool {
	kinds := func(p *engine.Plan) []engine.StepKind {
		var out []engine.StepKind
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
	return a.Target == b.Target && a.Disk == b.Disk && a.Resume == b.Resume && a.Speed == b.Speed &&
		slices.Equal(kinds(a), kinds(b)) && slices.Equal(a.Destroys, b.Destroys)
}

type migration struct {
	r      *engine.Runner
	cancel context.CancelFunc
	done   chan struct{}
	res    *engine.Result
	err    error
}

func (m *migration) SetSpeed(s engine.Speed) { m.r.SetSpeed(s) }
func (m *migration) Cancel()                 { m.cancel() }
func (m *migration) Wait() (*engine.Result, error) {
	<-m.done
	return m.res, m.err
}
