package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/dmmirror"
	"github.com/livemigrate/livemigrate/internal/overlay"
)

// throttleFor is dm-mirror's copy throttle for a speed.
func throttleFor(s Speed) int {
	if s == SpeedGentle {
		return GentleThrottle
	}
	return 100
}

// mirrorStep runs the steps the run-time mirror does its own way; ok is
// false for the steps it shares with the md path (partition, grow the
// filesystem, finalize, release).
func (r *Runner) mirrorStep(ctx context.Context, p *Plan, st Step, res *Result) (msg string, err error, ok bool) {
	switch st.Kind {
	case StepTune:
		t := throttleFor(p.Speed)
		if err := r.K.SetMirrorThrottle(t); err != nil {
			return "", err, true
		}
		return fmt.Sprintf("dm-mirror copy throttle %d%%", t), nil, true
	case StepInsertMirror:
		src, err := r.K.InsertMirror(p.Array, p.Target, r.st.major, r.st.minor)
		r.st.releaseDisk() // the mirror holds the partition now (or refused it)
		if err != nil {
			return "", err, true
		}
		r.st.mirrored = true
		r.moveStack(src)
		return fmt.Sprintf("%s is a mirror of %s onto %s", p.ArrayPath, "/dev/mapper/"+dmmirror.SrcName, p.Target), nil, true
	case StepRecover:
		if r.Stack != nil && r.Stack.DMName != dmmirror.SrcName {
			// A continued run: the snapshot was moved by the first one.
			if info, _, err := r.K.MirrorStatus(p.Array); err == nil && len(info.Legs) == 2 {
				var d overlay.Dev
				if _, err := fmt.Sscanf(info.Legs[0], "%d:%d", &d.Major, &d.Minor); err == nil {
					d.Name = fmt.Sprintf("dm-%d", d.Minor)
					r.moveStack(d)
				}
			}
		}
		msg, err := r.recoverMirror(ctx, p, res)
		return msg, err, true
	case StepSwitch:
		if r.Stack != nil {
			if u, err := r.K.COWUsage(r.Stack); err == nil {
				r.st.cowBefore = &u
			}
		}
		if err := r.K.SwitchMirror(p.Array, p.Target); err != nil {
			return "", err, true
		}
		return fmt.Sprintf("/ now lives on %s alone (through %s, a linear map)", p.Target, p.ArrayPath), nil, true
	case StepRestoreSpeed:
		if err := r.K.SetMirrorThrottle(100); err != nil {
			return "", err, true
		}
		return "dm-mirror copy throttle back to 100%", nil, true
	}
	return "", nil, false
}

// moveStack points the live stack at the relocated snapshot: that is what
// the COW is measured on and what the release removes; the device / is
// mounted from stays.
func (r *Runner) moveStack(src overlay.Dev) {
	if r.Stack == nil {
		return
	}
	st := *r.Stack
	st.Snapshot, st.DMName = src, dmmirror.SrcName
	if st.Snapshot.Path == "" {
		st.Snapshot.Path = "/dev/mapper/" + dmmirror.SrcName
	}
	r.Stack = &st
}

// recoverMirror follows dm-mirror's copy until every region is in sync,
// with progress, speed and ETA from its status; a leg it marks failed ends
// the copy with an error (the run then aborts and the session stays on
// its snapshot).
func (r *Runner) recoverMirror(ctx context.Context, p *Plan, res *Result) (string, error) {
	poll := r.pollEvery()
	start := r.now()
	var startDone uint64
	first := true
	lastWarn := time.Time{}
	total := p.CopyBytes
	for {
		st, region, err := r.K.MirrorStatus(p.Array)
		if err != nil {
			return "", err
		}
		if f := st.Failed(); len(f) > 0 {
			who := p.Target
			for _, i := range f {
				if i == 0 {
					who = "the live snapshot"
				}
			}
			return "", fmt.Errorf("dm-mirror marked %s failed during the copy (legs %s; see dmesg)", who, st.Health)
		}
		done := st.Copied(region, total/512) * 512
		cow := r.watchCOW(p, res, &lastWarn)
		if first {
			if !p.Has(StepInsertMirror) {
				startDone = done
			}
			first = false
		}
		el := r.now().Sub(start).Seconds()
		if st.InSync() {
			copied := total - startDone
			res.RecoveredBytes, res.RecoverySeconds = copied, el
			if el > 0 {
				res.RecoveryBps = float64(copied) / el
			}
			r.emit(Event{Type: EvProgress, Step: StepRecover, Progress: &Progress{DoneBytes: total, TotalBytes: total, Percent: 100, COW: cowInfo(cow)}})
			return fmt.Sprintf("%s copied in %.1fs (%s/s)", humanize.IBytes(copied), el, humanize.IBytes(uint64(res.RecoveryBps))), nil
		}
		pr := &Progress{DoneBytes: done, TotalBytes: total, COW: cowInfo(cow)}
		if total > 0 {
			pr.Percent = 100 * float64(done) / float64(total)
		}
		if el > 0 && done > startDone {
			avg := float64(done-startDone) / el
			pr.SpeedBps = uint64(avg)
			pr.ETASeconds = float64(total-done) / avg
		}
		if r.sampled(ctx, p, pr, poll) {
			return "", r.abort(p, StepRecover, ExitInterrupted, errors.New("interrupted during the copy"))
		}
	}
}

// abortMirror puts the session back on its snapshot (the mirror's
// exceptions handed back, the relocated device removed) and the throttle
// back; the target keeps a partial copy (or none, stopped before the
// insert).
func (r *Runner) abortMirror(p *Plan, at StepKind, code int, cause error) error {
	r.emit(Event{Type: EvWarning, Step: at, Message: fmt.Sprintf("stopping: %v; putting %s back on its live snapshot", cause, p.ArrayPath)})
	var errs []error
	if err := r.K.AbortMirror(p.Array); err != nil {
		errs = append(errs, err)
	}
	if err := r.K.SetMirrorThrottle(100); err != nil && !errors.Is(err, errNoMirrorModule) {
		errs = append(errs, err)
	}
	target := p.Target + " holds a partial copy and is no longer used"
	if p.Has(StepInsertMirror) && !r.st.mirrored {
		target = "nothing was copied to " + p.Target
		if r.st.partitioned {
			target += "; " + p.Disk + " keeps its new partition table"
		}
	}
	state := "live session intact on its snapshot " + p.ArrayPath + "; " + target
	if len(errs) > 0 {
		code = ExitCleanupFailed
		state = fmt.Sprintf("putting %s back on its snapshot failed: %v; see 'livemigrate status' (the session may still run on the mirror, which keeps writing to %s)", p.ArrayPath, errors.Join(errs...), p.Target)
	}
	return &RunError{Code: code, Step: at, State: state, Err: cause}
}

// errNoMirrorModule: dm-mirror is not loaded, so there is no throttle to
// restore.
var errNoMirrorModule = errors.New("dm-mirror is not loaded")
