package engine

import "time"

// EventType says what an Event reports.
type EventType string

const (
	EvPlan       EventType = "plan"
	EvStepStart  EventType = "step-start"
	EvStepDone   EventType = "step-done"
	EvStepFailed EventType = "step-failed"
	EvProgress   EventType = "progress"
	EvWarning    EventType = "warning"
	EvInfo       EventType = "info"  // a step's sub-action started or finished (finalize)
	EvSpeed      EventType = "speed" // the recovery speed mode changed (Speed)
	EvResult     EventType = "result"
	EvError      EventType = "error"
)

// Event is one thing the engine reports while it works. The CLI prints it
// (one JSON object per line with --json), the wizard draws it.
type Event struct {
	Time     time.Time `json:"time"`
	Type     EventType `json:"event"`
	Step     StepKind  `json:"step,omitempty"`
	Message  string    `json:"message,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
	Plan     *Plan     `json:"plan,omitempty"`
	Result   *Result   `json:"result,omitempty"`
	Code     int       `json:"code,omitempty"`
	Speed    Speed     `json:"speed,omitempty"`
	// Left: with an error past the point of no return, the steps left
	// undone (running the same command again does them).
	Left []StepKind `json:"left,omitempty"`
}

// Progress is a recovery sample.
type Progress struct {
	DoneBytes  uint64   `json:"done_bytes"`
	TotalBytes uint64   `json:"total_bytes"`
	Percent    float64  `json:"percent"`
	SpeedBps   uint64   `json:"speed_bytes_per_second"` // md's current rate
	ETASeconds float64  `json:"eta_seconds"`            // from the average rate since the step began
	COW        *COWInfo `json:"cow,omitempty"`
}

// COWInfo is the copy-on-write usage at a sample.
type COWInfo struct {
	UsedBytes  uint64 `json:"used_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
}
