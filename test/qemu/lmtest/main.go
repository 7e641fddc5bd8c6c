// Command lmtest is the guest-side test tool of the livemigrate QEMU harness.
// It runs inside the test VM (static, stdlib + x/sys only) and produces the
// evidence the host checks: records written and acknowledged during a
// migration, whether every acknowledged record survived, raw disk speed, and
// whether livemigrate's view of the md array agrees with mdadm's.
//
//	lmtest writer    --file PATH --acked PATH [--interval 20ms] [--count N]
//	lmtest verify    --file PATH --upto N
//	lmtest rawwrite  --dev DEV --size 256M
//	lmtest rawverify --dev DEV --size 256M
//	lmtest mdcompare --md /dev/md127
//	lmtest cdstatus  --dev /dev/sr0
//
// Output is key=value lines so guest scenarios can forward them to the
// facts port unchanged.
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

// run dispatches a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		usage(stderr)
		return 2
	}
	cmds := map[string]func([]string, io.Writer) error{
		"writer":    cmdWriter,
		"verify":    cmdVerify,
		"rawwrite":  cmdRawWrite,
		"rawverify": cmdRawVerify,
		"mdcompare": cmdMDCompare,
		"cdstatus":  cmdCDStatus,
		"rawread":   cmdRawRead,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		usage(stderr)
		return 2
	}
	if err := fn(args[1:], stdout); err != nil {
		if err == flag.ErrHelp {
			return 2
		}
		fmt.Fprintf(stderr, "lmtest %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: lmtest COMMAND [flags]
  writer    --file PATH --acked PATH [--interval 20ms] [--count N] [--duration D]
  verify    --file PATH --upto N
  rawwrite  --dev DEV --size SIZE
  rawverify --dev DEV --size SIZE
  mdcompare --md DEV [--mdadm-output FILE] [--status-json FILE]
`)
}
