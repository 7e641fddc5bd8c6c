package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// runFinish is 'livemigrate finish': the copy method's steps on the
// installed system (livemigrate-finish.service runs it once after the
// switch; by hand it does what that run left undone).
func runFinish(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("finish", "[--json]",
		"On a system the copy method switched to: make it boot on its own (finalize)\n"+
			"and release the live medium. livemigrate-finish.service runs this once the\n"+
			"installed system is up; run it by hand to finish what that run left undone\n"+
			"(its outcome is in "+engine.FinishFile+" and 'journalctl -u livemigrate-finish').")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	o := newOut(stdout, *asJSON)
	if fs.NArg() > 0 {
		return o.fail(stderr, "finish", &engine.Refusal{Code: engine.ExitUsage, Reason: fmt.Sprintf("unexpected argument %q", fs.Arg(0))})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := engine.Finish(ctx, o.event)
	o.endLine()
	if err != nil {
		return o.fail(stderr, "finish", err)
	}
	if o.json {
		_ = o.enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvResult, Result: res})
	} else {
		fmt.Fprintln(stdout, "Done: the installed system boots on its own, and the live medium is released.")
	}
	return 0
}

// runSwitchRoot is the switch service's command (livemigrate-switch.service,
// started by the copy method's soft-reboot step); not for people.
func runSwitchRoot(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "livemigrate switch-root: started by 'livemigrate migrate' (the copy method), with its plan file")
		return engine.ExitUsage
	}
	if err := engine.Switch(args[0], stdout); err != nil {
		fmt.Fprintf(stderr, "livemigrate switch-root: %v\n", err)
		return engine.ExitAborted
	}
	return 0
}
