package engine

import (
	"errors"
	"fmt"
)

// Exit codes. Each refusal class has its own so scripts can tell them apart;
// docs/livemigrate.8.md lists them and must stay in step.
const (
	ExitOK             = 0
	ExitFailure        = 1  // unexpected failure; the message says what state the system is in
	ExitUsage          = 2  // bad flags or arguments
	ExitNotLive        = 3  // no method applies to / (no hook array, no live dm snapshot, no dm-mirror in the kernel, or a --method that does not apply)
	ExitDeclined       = 4  // the confirmation was not given
	ExitLocked         = 5  // another livemigrate is running
	ExitNoDevice       = 10 // target does not exist or is not a block device
	ExitLiveStack      = 11 // target is part of the live stack (medium, array, live-rw, loops)
	ExitInUse          = 12 // target or one of its partitions is mounted, swap, or held (md, LVM, dm)
	ExitTooSmall       = 13 // target is smaller than the live root
	ExitReadOnly       = 14 // target is read-only
	ExitBlockSize      = 15 // target's logical block size is larger than the array's
	ExitCOWHeadroom    = 16 // not enough copy-on-write space left to finish safely
	ExitBusyArray      = 17 // the array is already migrating to another device, or the request contradicts the migration under way
	ExitStillLive      = 18 // release: / still depends on the live leg (the migration is not finished)
	ExitTargetChanged  = 19 // the target changed between the check and the first write
	ExitAborted        = 20 // migration failed or was stopped before the point of no return; live session intact, target taken out again
	ExitGrowFailed     = 21 // migrated, but the array or the filesystem could not be grown
	ExitReleaseFailed  = 22 // migrated, but part of the live stack could not be released
	ExitFinalizeFailed = 23 // migrated, but not (fully) made bootable on its own
	ExitCleanupFailed  = 24 // stopped before the point of no return, live session intact, but the target could not be taken out of the array again
	ExitLiveLost       = 25 // the live leg failed before the target was in sync: / has no working copy
	ExitRestoreFailed  = 26 // migrated, but md's recovery speed limits could not be restored
	ExitLiveLegStuck   = 27 // migrated, but the failed live leg could not be removed from the array
	ExitNoBootPath     = 28 // finalize could not make the target boot on this machine's firmware as asked (partition install on UEFI, GPT without a BIOS boot partition)
	ExitArrayBroken    = 29 // md refused to fail the live leg (the target had failed) and marked the array broken: writes to / fail; save what you can elsewhere and reboot
	ExitNoTool         = 30 // a program the plan needs is not installed in the live system (mkfs.xfs for --fs xfs)
	ExitInterrupted    = 130
)

// ExitCodes lists every code above, for the test that holds the man page's
// table against the binary.
var ExitCodes = []int{ExitOK, ExitFailure, ExitUsage, ExitNotLive, ExitDeclined, ExitLocked,
	ExitNoDevice, ExitLiveStack, ExitInUse, ExitTooSmall, ExitReadOnly, ExitBlockSize,
	ExitCOWHeadroom, ExitBusyArray, ExitStillLive, ExitTargetChanged, ExitAborted,
	ExitGrowFailed, ExitReleaseFailed, ExitFinalizeFailed, ExitCleanupFailed, ExitLiveLost,
	ExitRestoreFailed, ExitLiveLegStuck, ExitNoBootPath, ExitArrayBroken, ExitNoTool, ExitInterrupted}

// Refusal is a preflight verdict: nothing has been written.
type Refusal struct {
	Code   int
	Device string // what was refused, if a device
	Reason string // what is wrong
	Hint   string // what the user can do
	// other: a Method's answer that the root is not its kind at all, so
	// another method's refusal, if any, says more.
	other bool
}

func (r *Refusal) Error() string {
	s := r.Reason
	if r.Device != "" {
		s = r.Device + ": " + s
	}
	if r.Hint != "" {
		s += "; " + r.Hint
	}
	return s
}

func refuse(code int, dev, reason, hint string) *Refusal {
	return &Refusal{Code: code, Device: dev, Reason: reason, Hint: hint}
}

// RunError is a failure during execution, with the state the system was left in.
type RunError struct {
	Code  int
	Step  StepKind
	State string // "live session intact", "migrated; ..."
	Err   error
	// Left lists the steps a run past the point of no return left undone
	// (failed, or not run because of an earlier failure).
	Left []StepKind
}

func (e *RunError) Error() string {
	return fmt.Sprintf("%s: %v (%s)", e.Step, e.Err, e.State)
}

func (e *RunError) Unwrap() error { return e.Err }

// ExitCode maps an error from this package to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	var re *RunError
	if errors.As(err, &re) {
		return re.Code
	}
	return ExitFailure
}
