// Command lmtest is the guest-side test tool of the livemigrate QEMU harness.
// It runs inside the test VM (static; stdlib, x/sys and, for scenarios that
// drive the engine in-process, livemigrate's own packages) and produces the
// evidence the host checks: records written and acknowledged during a
// migration, whether every acknowledged record survived, raw disk speed,
// whether livemigrate's view of the md array agrees with mdadm's, and the
// guest scenarios themselves (`lmtest scenario NAME`, started by the
// guest's /sbin/init for lmtest.scenario=NAME).
//
// Output is key=value lines so guest scenarios can forward them to the
// facts port unchanged. `lmtest help` lists the commands.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its flags as the help shows them, and the
// function that runs it. The help and the dispatch are both made from
// commands, so they cannot disagree.
type command struct {
	name  string
	flags string
	fn    func([]string, io.Writer) error
}

var commands = []command{
	{"writer", "--file PATH --acked PATH [--interval 20ms] [--count N] [--duration D]", cmdWriter},
	{"verify", "--file PATH --upto N", cmdVerify},
	{"fileops", "--dir DIR --log PATH [--interval 30ms]", cmdFileOps},
	{"rawwrite", "--dev DEV --size SIZE", cmdRawWrite},
	{"rawverify", "--dev DEV --size SIZE", cmdRawVerify},
	{"rawread", "--dev DEV --size SIZE", cmdRawRead},
	{"mdcompare", "--md DEV [--mdadm-output FILE] [--status-json FILE]", cmdMDCompare},
	{"cdstatus", "[--dev /dev/sr0]", cmdCDStatus},
	{"manifest", "--root DIR [--out FILE.gz]", cmdManifest},
	{"manifest-check", "--manifest FILE [--root /] [--report FILE] [--workers 4]", cmdManifestCheck},
	{"scenario", "NAME | --has NAME | --list  (exit status: the scenario's)", nil},
}

// run dispatches a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		usage(stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "scenario" {
		return cmdScenario(args[1:], stdout, stderr)
	}
	if rc, ok := runCommand(args, stdout, stderr); ok {
		return rc
	}
	usage(stderr)
	return 2
}

// runCommand runs one of the commands (not scenario); ok is false when
// args[0] is none of them.
func runCommand(args []string, stdout, stderr io.Writer) (rc int, ok bool) {
	for _, c := range commands {
		if c.name != args[0] || c.fn == nil {
			continue
		}
		if err := c.fn(args[1:], stdout); err != nil {
			if err == flag.ErrHelp {
				return 2, true
			}
			fmt.Fprintf(stderr, "lmtest %s: %v\n", args[0], err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lmtest COMMAND [flags]")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.flags)
	}
}
