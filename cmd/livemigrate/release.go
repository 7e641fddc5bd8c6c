package main

import (
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/overlay"
)

func runRelease(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("release", "[--json] [--no-eject] [--lazy]",
		"Release the live stack once the live leg has left the root array: remove the\n"+
			"live-rw snapshot and its siblings, detach the loops, unmount the squashfs and\n"+
			"the medium, free the copy-on-write RAM and eject a CD. 'migrate' does this\n"+
			"itself; run release when that step failed (e.g. a file on the medium was\n"+
			"open) or when migrate ran with --keep-live-stack.")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	noEject := fs.Bool("no-eject", false, "do not eject the CD")
	lazy := fs.Bool("lazy", false, "detach busy mounts lazily (freed when their last user exits)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	o := newOut(stdout, *asJSON)
	if fs.NArg() > 0 {
		return o.fail(stderr, "release", &engine.Refusal{Code: engine.ExitUsage, Reason: fmt.Sprintf("unexpected argument %q", fs.Arg(0))})
	}
	lk, err := lock()
	if err != nil {
		return o.fail(stderr, "release", err)
	}
	defer lk.Close()
	obs := engine.Observer{Root: "/"}
	sys, err := obs.Observe()
	if err != nil {
		return o.fail(stderr, "release", err)
	}
	if sys.LiveLeg != nil {
		return o.fail(stderr, "release", &engine.Refusal{Code: engine.ExitStillLive, Reason: fmt.Sprintf("the live leg %s is still part of %s: / still depends on it", sys.LiveLeg.Name, sys.Array.Path), Hint: "finish the migration first with 'livemigrate migrate --target DEVICE'"})
	}
	st := sys.Stack
	if st == nil {
		if st, err = obs.FindDetachedStack(); err != nil {
			return o.fail(stderr, "release", err)
		}
	}
	if st == nil {
		// live-rw is gone but the release stopped half way: the stack as it
		// was before the migration says what is left.
		if st, err = engine.LoadStack(engine.StackFile); err != nil {
			return o.fail(stderr, "release", err)
		}
	}
	if st == nil {
		if !*asJSON {
			fmt.Fprintln(stdout, "Nothing to release: no live stack is left.")
		}
		return 0
	}
	k := engine.NewSysKernel(overlay.ReleaseOptions{Eject: !*noEject, LazyUnmount: *lazy})
	rep, err := k.ReleaseStack(st, sys.COW)
	if *asJSON {
		_ = o.enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvResult, Result: &engine.Result{Release: &rep}})
	} else {
		for _, s := range rep.Steps {
			mark := string(s.Result)
			if s.Err != nil {
				mark += ": " + s.Err.Error()
			}
			fmt.Fprintf(stdout, "  %-60s %s\n", s.What, mark)
		}
		fmt.Fprintf(stdout, "MemAvailable %+d MiB; the COW held %s\n", rep.MemGained()>>20, humanize.IBytes(rep.COWBytesFreed))
	}
	if err != nil {
		return o.fail(stderr, "release", &engine.RunError{Code: engine.ExitReleaseFailed, Step: engine.StepRelease, State: "partly released; fix the reason and run 'livemigrate release' again", Err: err})
	}
	return 0
}
