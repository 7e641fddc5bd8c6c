package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/fileroot"
)

// CopyKernel does the copy method's work (copy_kernel.go has the real
// one).
type CopyKernel interface {
	// MakeFS makes a filesystem of fsType with that UUID on dev.
	MakeFS(dev, fsType, uuid string) error
	// MountTarget mounts dev on dir, private; UnmountTarget undoes it
	// (not mounted is no error).
	MountTarget(dev, fsType, dir string) error
	UnmountTarget(dir string) error
	// CopyFiles copies c's layers onto c.Staging, calling progress (from
	// one goroutine at a time) with the bytes copied so far.
	CopyFiles(ctx context.Context, c *CopySpec, progress func(done uint64)) (CopyReport, error)
	// PrepareSwitch stages what the switch needs (the plan it reads back,
	// the target it isolates) and checks it can run.
	PrepareSwitch(p *Plan) error
	// StartSwitch hands the switch to a service of its own, outside the
	// session it stops (copy_switch.go).
	StartSwitch(p *Plan) error
	// ReleaseFileRoot unmounts what the live root ran from and ejects the
	// medium (on the installed system, after the switch).
	ReleaseFileRoot(fr *fileroot.Root, eject bool) (FileRelease, error)
}

// CopyReport sums up a copy pass.
type CopyReport struct {
	Bytes   uint64 `json:"bytes"`
	Entries uint64 `json:"entries"`
	Deleted uint64 `json:"deleted"`
	// Unchanged: the second pass's names that had not changed since the
	// first copied them.
	Unchanged uint64  `json:"unchanged,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// FileRelease is what releasing a file-based live root did.
type FileRelease struct {
	Unmounted []string `json:"unmounted,omitempty"`
	Detached  []string `json:"detached,omitempty"`
	Ejected   bool     `json:"ejected"`
	// Gone: what the switch had already taken away.
	Gone []string `json:"already_gone,omitempty"`
	// MemAvailBefore and After bracket the release (MemAvailable, bytes).
	MemAvailBefore uint64 `json:"mem_available_before"`
	MemAvailAfter  uint64 `json:"mem_available_after"`
}

// copyStep runs the copy method's own steps; ok is false for the ones it
// shares (partition, finalize).
func (r *Runner) copyStep(ctx context.Context, p *Plan, st Step, res *Result) (msg string, err error, ok bool) {
	c := p.Copy
	switch st.Kind {
	case StepUnmountEarlier:
		if err := r.K.UnmountTarget(c.Staging); err != nil {
			return "", err, true
		}
		return c.Earlier + " unmounted from " + c.Staging, nil, true
	case StepMakeFS:
		// An earlier run's staging mount goes first (the plan said so).
		if err := r.K.UnmountTarget(c.Staging); err != nil {
			return "", err, true
		}
		// mkfs claims the partition, which a hold on its disk would
		// refuse: let udev look at the new table first (MakeFS waits
		// for it).
		r.st.releaseDisk()
		err := r.K.MakeFS(p.Target, p.FSType, c.FSUUID)
		if err != nil {
			return "", err, true
		}
		r.st.formatted = true
		return fmt.Sprintf("%s on %s, UUID %s", p.FSType, p.Target, c.FSUUID), nil, true
	case StepMountTarget:
		if err := r.K.MountTarget(p.Target, p.FSType, c.Staging); err != nil {
			return "", err, true
		}
		r.st.mounted = true
		return fmt.Sprintf("%s mounted on %s", p.Target, c.Staging), nil, true
	case StepCopyFiles:
		msg, err := r.copyFiles(ctx, p, res)
		return msg, err, true
	case StepPrepareSwitch:
		if err := r.K.PrepareSwitch(p); err != nil {
			return "", err, true
		}
		return "the switch service is ready", nil, true
	case StepSoftReboot:
		if err := r.K.StartSwitch(p); err != nil {
			return "", fmt.Errorf("%v: %w", err, errLiveLegStays), true
		}
		r.st.switching = true
		return fmt.Sprintf("livemigrate-switch.service stops the session now and soft-reboots into %s; the installed system finishes the migration (journalctl -u livemigrate-finish there)", p.Target), nil, true
	case StepRelease:
		if r.NoRelease {
			return "left in place", nil, true
		}
		rep, err := r.K.ReleaseFileRoot(c.Root, r.Eject)
		res.FileRelease = &rep
		if err != nil {
			return "", err, true
		}
		msg := fmt.Sprintf("unmounted %d, detached %d", len(rep.Unmounted), len(rep.Detached))
		if len(rep.Gone) > 0 {
			msg += fmt.Sprintf(" (%d already gone with the switch)", len(rep.Gone))
		}
		if rep.MemAvailAfter > 0 {
			msg += fmt.Sprintf("; MemAvailable %+d MiB", (int64(rep.MemAvailAfter)-int64(rep.MemAvailBefore))>>20)
		}
		if rep.Ejected {
			msg += "; medium ejected"
		}
		return msg, nil, true
	}
	return "", nil, false
}

// copyFiles runs the first pass with progress: done is the bytes copied,
// against what the root held when the plan was made.
func (r *Runner) copyFiles(ctx context.Context, p *Plan, res *Result) (string, error) {
	c := p.Copy
	start := r.now()
	total := c.UsedBytes
	last := time.Time{}
	// Called from one goroutine at a time (CopyKernel's contract).
	progress := func(done uint64) {
		if r.now().Sub(last) < r.pollEvery() {
			return
		}
		last = r.now()
		pr := &Progress{DoneBytes: done, TotalBytes: total}
		if total > 0 {
			pr.Percent = min(99.9, 100*float64(done)/float64(total))
		}
		if el := r.now().Sub(start).Seconds(); el > 0 && done > 0 {
			avg := float64(done) / el
			pr.SpeedBps = uint64(avg)
			if total > done {
				pr.ETASeconds = float64(total-done) / avg
			}
		}
		r.emit(Event{Type: EvProgress, Step: StepCopyFiles, Progress: pr})
	}
	rep, err := r.K.CopyFiles(ctx, c, progress)
	if ctx.Err() != nil {
		return "", r.abort(p, StepCopyFiles, ExitInterrupted, errors.New("interrupted during the copy"))
	}
	if err != nil {
		return "", err
	}
	res.RecoveredBytes, res.RecoverySeconds = rep.Bytes, rep.Seconds
	if rep.Seconds > 0 {
		res.RecoveryBps = float64(rep.Bytes) / rep.Seconds
	}
	res.Copy = &rep
	r.emit(Event{Type: EvProgress, Step: StepCopyFiles, Progress: &Progress{DoneBytes: rep.Bytes, TotalBytes: max(total, rep.Bytes), Percent: 100}})
	return fmt.Sprintf("%s in %d names copied in %.1fs (%s/s)", humanize.IBytes(rep.Bytes), rep.Entries, rep.Seconds, humanize.IBytes(uint64(res.RecoveryBps))), nil
}

// abortCopy ends a copy run stopped before the switch: the target is
// unmounted; the live session never depended on it.
func (r *Runner) abortCopy(p *Plan, at StepKind, code int, cause error) error {
	r.emit(Event{Type: EvWarning, Step: at, Message: fmt.Sprintf("stopping: %v; the live session is not touched", cause)})
	target := "nothing was written to " + p.Target
	switch {
	case r.st.formatted:
		target = p.Target + " holds a partial copy that cannot boot; the same migrate command starts it again"
	case r.st.partitioned:
		target = "nothing was copied to " + p.Target + "; " + p.Disk + " keeps its new partition table"
	}
	state := "live session intact; " + target
	if r.st.mounted || r.st.formatted {
		if err := r.K.UnmountTarget(p.Copy.Staging); err != nil {
			code = ExitCleanupFailed
			state = fmt.Sprintf("live session intact, but unmounting %s failed: %v; unmount it by hand ('umount %s')", p.Copy.Staging, err, p.Copy.Staging)
		}
	}
	return &RunError{Code: code, Step: at, State: state, Err: cause}
}
