package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// out prints engine events as text or JSON lines.
type out struct {
	w      io.Writer
	json   bool
	tty    bool
	enc    *json.Encoder
	lastPc float64
	lastAt time.Time
	inLine bool
}

func newOut(w io.Writer, asJSON bool) *out {
	o := &out{w: w, json: asJSON, enc: json.NewEncoder(w)}
	if f, ok := w.(*os.File); ok {
		o.tty = isTerminal(f)
	}
	return o
}

func (o *out) event(e engine.Event) {
	if o.json {
		_ = o.enc.Encode(e)
		return
	}
	switch e.Type {
	case engine.EvPlan:
		fmt.Fprint(o.w, e.Plan.Render())
	case engine.EvStepStart:
		o.endLine()
		fmt.Fprintf(o.w, "==> %s\n", e.Message)
	case engine.EvStepDone:
		o.endLine()
		fmt.Fprintf(o.w, "    done: %s\n", e.Message)
	case engine.EvStepFailed:
		o.endLine()
		fmt.Fprintf(o.w, "    FAILED: %s\n", e.Message)
	case engine.EvWarning:
		o.endLine()
		fmt.Fprintf(o.w, "    warning: %s\n", e.Message)
	case engine.EvProgress:
		if e.Progress != nil {
			o.progress(e.Progress)
		}
	case engine.EvInfo, engine.EvSpeed:
		o.endLine()
		fmt.Fprintf(o.w, "    %s\n", e.Message)
	}
}

func (o *out) progress(p *engine.Progress) {
	line := fmt.Sprintf("    %5.1f%%  %s of %s  %s/s", p.Percent, humanize.IBytes(p.DoneBytes), humanize.IBytes(p.TotalBytes), humanize.IBytes(p.SpeedBps))
	if p.ETASeconds > 0 && p.Percent < 100 {
		line += "  ETA " + (time.Duration(p.ETASeconds) * time.Second).String()
	}
	if p.COW != nil && p.COW.TotalBytes > 0 {
		line += fmt.Sprintf("  COW %s/%s", humanize.IBytes(p.COW.UsedBytes), humanize.IBytes(p.COW.TotalBytes))
	}
	if o.tty {
		fmt.Fprintf(o.w, "\r%-78s", line)
		o.inLine = true
		return
	}
	// Not a terminal: a line every 10% or every 30 s keeps logs readable.
	if p.Percent >= 100 || p.Percent-o.lastPc >= 10 || time.Since(o.lastAt) > 30*time.Second {
		fmt.Fprintln(o.w, line)
		o.lastPc, o.lastAt = p.Percent, time.Now()
	}
}

func (o *out) endLine() {
	if o.inLine {
		fmt.Fprintln(o.w)
		o.inLine = false
	}
}

// fail reports an error with its exit code.
func (o *out) fail(stderr io.Writer, cmd string, err error) int {
	code := engine.ExitCode(err)
	o.endLine()
	if o.json {
		ev := engine.Event{Time: time.Now(), Type: engine.EvError, Code: code, Message: err.Error()}
		var re *engine.RunError
		if errors.As(err, &re) {
			ev.Left = re.Left
		}
		_ = o.enc.Encode(ev)
	}
	fmt.Fprintf(stderr, "livemigrate %s: %v\n", cmd, err)
	return code
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("migrate", "--target DEVICE [--yes] [--json] [--dry-run] [--speed fast|gentle] [--method NAME] [--fs ext4|xfs|btrfs]",
		"Install the running live system onto DEVICE, a disk or partition, without a\n"+
			"reboot. livemigrate checks DEVICE, prints the plan and asks you to type the\n"+
			"device name back. Then the live root is copied onto DEVICE while you keep\n"+
			"working; once the copy is complete / moves onto DEVICE, the filesystem grows\n"+
			"to fill it, and the live medium and the RAM it held are released.\n\n"+
			"How it copies depends on the medium (the plan's How line says which):\n"+
			"  md-hook    media with the livemigrate boot hook: / is on an md RAID1 whose\n"+
			"             one leg is the live snapshot; DEVICE becomes its second leg.\n"+
			"  dm-mirror  stock dracut dmsquash-live media: / is on the live snapshot\n"+
			"             itself; a dm-mirror is put under it while it runs.\n"+
			"  copy       media whose / is an overlayfs (Debian's live-boot): the files\n"+
			"             are copied onto a new filesystem on DEVICE while you work; at\n"+
			"             the switch your programs stop, what changed is copied, and\n"+
			"             systemd soft-reboots into DEVICE (the kernel keeps running;\n"+
			"             programs start again there, files and settings are kept).\n\n"+
			"Ctrl+C before the point of no return the plan marks takes DEVICE out again\n"+
			"and leaves the live session as it was. If the process is killed, run the\n"+
			"same command again: it continues from what the kernel shows.")
	target := fs.StringP("target", "t", "", "the disk or partition to install onto (everything on it is destroyed)")
	yes := fs.BoolP("yes", "y", false, "do not ask for confirmation")
	asJSON := fs.Bool("json", false, "print one JSON object per line (plan, steps, progress, result)")
	dry := fs.BoolP("dry-run", "n", false, "check and print the plan, change nothing")
	speedFlag := fs.String("speed", "fast", "fast: copy at full speed; gentle: let the copy yield to the desktop's I/O")
	method := fs.String("method", "", "force a way of copying (md-hook, dm-mirror or copy); default: the one this medium allows")
	fsType := fs.String("fs", "", "with the copy method: the filesystem to make on DEVICE (ext4, xfs or btrfs; default ext4)")
	noEject := fs.Bool("no-eject", false, "do not eject the CD after releasing it")
	keep := fs.Bool("keep-live-stack", false, "do not release the live stack at the end (release later with 'livemigrate release')")
	raw := fs.Bool("raw-disk", false, "with a whole disk as target: put the filesystem on the bare disk, no partition table (it then cannot boot by itself)")
	noFinalize := fs.Bool("no-finalize", false, "only move the data: leave fstab, boot loader, initramfs and the live session's settings alone")
	hostname := fs.String("hostname", "", "hostname of the installed system (default: keep the live one)")
	pwFile := fs.String("password-file", "", "file whose first line becomes the live user's password (default: the account is locked and you are told how to set one)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	o := newOut(stdout, *asJSON)
	if fs.NArg() > 0 {
		return o.fail(stderr, "migrate", &engine.Refusal{Code: engine.ExitUsage, Reason: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), Hint: "name the device with --target"})
	}
	req := engine.Request{Target: *target, Speed: engine.Speed(*speedFlag),
		NoFinalize: *noFinalize, Hostname: *hostname, RawDisk: *raw, Method: *method, FS: *fsType}
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return o.fail(stderr, "migrate", &engine.Refusal{Code: engine.ExitUsage, Reason: fmt.Sprintf("--password-file: %v", err)})
		}
		req.Password, _, _ = strings.Cut(string(b), "\n")
		req.PasswordFrom = "--password-file " + *pwFile
	}
	s := engine.Session{Eject: !*noEject, NoRelease: *keep}
	plan, err := s.Check(req)
	if err != nil {
		return o.fail(stderr, "migrate", err)
	}
	if *dry {
		// A dry run changes nothing and needs no lock.
		o.event(engine.Event{Time: time.Now(), Type: engine.EvPlan, Plan: plan})
		if !o.json {
			fmt.Fprintln(stdout, "Dry run: nothing was changed.")
		}
		return 0
	}
	m, err := s.Begin(req, nil)
	if err != nil {
		return o.fail(stderr, "migrate", err)
	}
	defer m.Close()
	plan = m.Plan
	o.event(engine.Event{Time: time.Now(), Type: engine.EvPlan, Plan: plan})
	if !*yes {
		if err := confirm(plan, stdout); err != nil {
			return o.fail(stderr, "migrate", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := m.Run(ctx, o.event)
	o.endLine()
	if err != nil {
		return o.fail(stderr, "migrate", err)
	}
	if o.json {
		_ = o.enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvResult, Result: res})
	} else {
		uuid := ""
		if m.System.RootFS != nil {
			uuid = m.System.RootFS.UUID
		}
		fmt.Fprint(stdout, renderResult(plan, res, uuid))
	}
	return 0
}

// confirm asks for the device name to be typed back, the way a person would
// confirm destroying a disk by hand.
func confirm(p *engine.Plan, stdout io.Writer) error {
	if !isTerminal(os.Stdin) {
		return &engine.Refusal{Code: engine.ExitDeclined, Reason: "confirmation needed and standard input is not a terminal", Hint: "add --yes to migrate from a script"}
	}
	fmt.Fprintf(stdout, "\nEverything on %s will be destroyed. Type %s to go on: ", p.Given, p.Given)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return &engine.Refusal{Code: engine.ExitDeclined, Reason: "no confirmation given", Hint: "nothing was changed"}
	}
	if strings.TrimSpace(line) != p.Given {
		return &engine.Refusal{Code: engine.ExitDeclined, Reason: fmt.Sprintf("typed %q, not %q", strings.TrimSpace(line), p.Given), Hint: "nothing was changed"}
	}
	return nil
}

func renderResult(p *engine.Plan, r *engine.Result, uuid string) string {
	var b strings.Builder
	if p.Method == engine.MethodCopy {
		fmt.Fprintf(&b, "\nCopied: %s in %.1fs (%s/s) onto %s.\n", humanize.IBytes(r.RecoveredBytes), r.RecoverySeconds, humanize.IBytes(uint64(r.RecoveryBps)), p.Target)
		fmt.Fprintf(&b, "The switch is under way: the session's programs stop now, and the system starts again from %s\n", p.Target)
		fmt.Fprintf(&b, "(soft-reboot: the kernel keeps running). There, livemigrate-finish.service makes it boot on its own\n")
		fmt.Fprintf(&b, "and releases the medium; 'journalctl -u livemigrate-finish' shows how it went.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\nDone: / now lives on %s.\n", p.Target)
	if r.RecoveredBytes > 0 {
		fmt.Fprintf(&b, "  copied %s in %.1fs (%s/s)\n", humanize.IBytes(r.RecoveredBytes), r.RecoverySeconds, humanize.IBytes(uint64(r.RecoveryBps)))
	}
	if r.FS != nil {
		fmt.Fprintf(&b, "  filesystem %s: %s -> %s\n", r.FS.Type, humanize.IBytes(r.FS.OldSize), humanize.IBytes(r.FS.NewSize))
	}
	if r.Release != nil {
		fmt.Fprintf(&b, "  released the live stack: MemAvailable %+d MiB; the COW held %s\n", r.Release.MemGained()>>20, humanize.IBytes(r.Release.COWBytesFreed))
		if r.Release.Ejected {
			fmt.Fprintf(&b, "  the disc was ejected; you can take it away\n")
		}
	}
	fmt.Fprintf(&b, "At the next boot %s is a plain filesystem, with no md or live layer", p.Target)
	if uuid != "" {
		fmt.Fprintf(&b, " (root=UUID=%s)", uuid)
	}
	fmt.Fprintf(&b, ".\n")
	return b.String()
}
