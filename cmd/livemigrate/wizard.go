package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/tui"
)

// runWizard opens the wizard when there is a terminal to show it on.
func runWizard(stdout, stderr io.Writer) int {
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		fmt.Fprintf(stderr, "livemigrate: the wizard needs a terminal, and standard input or output is not one.\n"+
			"To migrate from a script, run: livemigrate migrate --target DEVICE --yes\n")
		return engine.ExitUsage
	}
	return tui.Run(wizardEngine{s: engine.Session{Eject: true}}, os.Stdin, os.Stdout)
}

// wizardEngine is the wizard's view of the engine: the same session as
// 'migrate', with the run in the background.
type wizardEngine struct{ s engine.Session }

func (w wizardEngine) Observe() (*engine.System, error) { return w.s.Observe() }

func (w wizardEngine) Candidates(sys *engine.System, speed engine.Speed) []engine.Candidate {
	return w.s.Candidates(sys, speed)
}

func (w wizardEngine) Preflight(sys *engine.System, req engine.Request) (*engine.Plan, error) {
	return w.s.Preflight(sys, req)
}

// Start begins the session's migration under the lock against the plan
// the user confirmed, and runs it in the background.
func (w wizardEngine) Start(req engine.Request, confirmed *engine.Plan, emit func(engine.Event)) (tui.Migration, error) {
	m, err := w.s.Begin(req, confirmed)
	if err != nil {
		var pc *engine.PlanChangedError
		if errors.As(err, &pc) {
			return nil, &tui.PlanChanged{Plan: pc.Plan}
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	mg := &migration{m: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer cancel()
		mg.res, mg.err = m.Run(ctx, emit)
		close(mg.done)
	}()
	return mg, nil
}

type migration struct {
	m      *engine.Migration
	cancel context.CancelFunc
	done   chan struct{}
	res    *engine.Result
	err    error
}

func (m *migration) SetSpeed(s engine.Speed) { m.m.SetSpeed(s) }
func (m *migration) Cancel()                 { m.cancel() }
func (m *migration) Wait() (*engine.Result, error) {
	<-m.done
	return m.res, m.err
}
