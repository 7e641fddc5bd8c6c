// Command retries prints the emulator-hang retries vm.Boot made, the last
// line of make test, also when there were none:
//
//	vm retries: N (DIR (hang|panic): last console line; ...)
//
// from $LM_OUT/vm-retries.log. With -reset it empties the log instead (the
// start of a run).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livemigrate/livemigrate/test/vm"
)

func main() {
	reset := flag.Bool("reset", false, "empty the log (the start of a run)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "retries: unknown argument %s\n", flag.Arg(0))
		os.Exit(2)
	}
	if *reset {
		if err := os.MkdirAll(filepath.Dir(vm.RetriesLog()), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(vm.RetriesLog(), nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	fmt.Println(vm.Retries())
}
