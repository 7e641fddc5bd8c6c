package main

import (
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
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
	rep, err := engine.Session{Eject: !*noEject}.Release(*lazy)
	if rep == nil && err == nil {
		if !*asJSON {
			fmt.Fprintln(stdout, "Nothing to release: no live stack is left.")
		}
		return 0
	}
	if rep != nil {
		if *asJSON {
			_ = o.enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvResult, Result: &engine.Result{Release: rep}})
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
	}
	if err != nil {
		return o.fail(stderr, "release", err)
	}
	return 0
}
