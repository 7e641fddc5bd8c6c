// Command livemigrate installs the running live system onto a disk without a
// reboot. See docs/livemigrate.8.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `livemigrate installs the running live system onto a disk, without a reboot
and keeping everything done in the live session.

Usage:
  livemigrate                          open the wizard (on a terminal)
  livemigrate status [--json]          show the live stack, the root array and recovery
  livemigrate migrate --target DEVICE  install onto DEVICE (plan, confirm, copy, switch)
  livemigrate release                  free the live medium and RAM after a migration
  livemigrate finish                   the copy method's last steps, on the installed system
  livemigrate boot snapshot|wrap ...   initrd side: build live-rw, wrap it in md
  livemigrate version

Run 'livemigrate COMMAND --help' for a command's options.
Exit codes are listed in livemigrate(8).
`

type command struct {
	name  string
	short string
	run   func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"status", "show the live stack, the root array and recovery", runStatus},
		{"migrate", "install the running system onto a device", runMigrate},
		{"release", "release the live stack after the live leg has left the array", runRelease},
		{"finish", "the copy method's last steps, run on the installed system after the switch", runFinish},
		{"switch-root", "", runSwitchRoot},
		{"boot", "initrd helpers: build the live snapshot and wrap it in md", runBoot},
		{"version", "print the version", func([]string, io.Writer, io.Writer) int { fmt.Println("livemigrate", version); return 0 }},
	}
}

func main() {
	// A write to a closed pipe must fail, not kill the process: with
	// 'migrate ... | tee log', Ctrl+C ends the reader too, and dying of
	// SIGPIPE at the next event after the point of no return would leave
	// a half-finished migration (issue 10, item 5). Output errors are
	// ignored; the run and its exit code are what counts.
	signal.Ignore(syscall.SIGPIPE)
	// systemd runs generators by their own name: the initrd links
	// /usr/lib/systemd/system-generators/livemigrate-generator here.
	if filepath.Base(os.Args[0]) == "livemigrate-generator" {
		os.Exit(runBoot(append([]string{"generator"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runWizard(stdout, stderr)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "--version":
		fmt.Fprintln(stdout, "livemigrate", version)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "livemigrate: unknown command %q\n\n%s", args[0], usage)
	return engine.ExitUsage
}

// newFlags makes a flag set that prints its own help and returns ExitUsage
// on errors.
func newFlags(name, synopsis, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: livemigrate %s %s\n\n%s\n\nOptions:\n%s", name, synopsis, about, fs.FlagUsages())
	}
	return fs
}

// parse returns (exit code, done). done is true when the caller should exit.
func parse(fs *pflag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0, true
		}
		fmt.Fprintf(stderr, "livemigrate %s: %v\nRun 'livemigrate %s --help' for usage.\n", fs.Name(), err, fs.Name())
		return engine.ExitUsage, true
	}
	return 0, false
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
