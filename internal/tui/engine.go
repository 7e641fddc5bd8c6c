package tui

import (
	"fmt"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// Engine is everything the wizard asks of the migration engine. The wizard
// decides nothing itself: it shows what Observe, Candidates and Preflight
// say and draws the events of the run that Start begins. cmd/livemigrate
// wires the real engine; the tests use a fake.
type Engine interface {
	// Observe reads the running system.
	Observe() (*engine.System, error)
	// Candidates lists disks and partitions, refused ones with their reason.
	Candidates(sys *engine.System, speed engine.Speed) []engine.Candidate
	// Preflight checks req.Target and returns the plan, or a refusal.
	Preflight(sys *engine.System, req engine.Request) (*engine.Plan, error)
	// Start takes the lock, checks the target again and runs plan in the
	// background, sending every event to emit from another goroutine. When
	// the system changed since plan was made it returns *PlanChanged and
	// starts nothing.
	// req is what the user asked for, from which plan was made.
	Start(req engine.Request, plan *engine.Plan, emit func(engine.Event)) (Migration, error)
}

// Migration is a run of the engine under way.
type Migration interface {
	// SetSpeed switches md between fast and gentle while it copies.
	SetSpeed(engine.Speed)
	// Cancel asks the run to stop: before the point of no return it takes
	// the target out again; after it, the run finishes anyway.
	Cancel()
	// Wait blocks until the run has ended and returns its outcome; every
	// event was emitted before it returns. It may be called more than once.
	Wait() (*engine.Result, error)
}

// PlanChanged is Start's answer when the plan made again under the lock
// differs from the one the user confirmed: the user must review it again.
type PlanChanged struct {
	Plan *engine.Plan
}

func (e *PlanChanged) Error() string {
	return fmt.Sprintf("the plan for %s changed since it was reviewed", e.Plan.Target)
}
