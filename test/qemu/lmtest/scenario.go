package main

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// scenarios are the guest scenarios ported to Go, by the name the host puts
// in lmtest.scenario=NAME. Each returns the scenario's exit status, which
// the guest's init reports as scenario_rc. The facts each one reports are
// the host's contract (test/qemu/README.md, "Facts"): keep their names and
// values as they are.
var scenarios = map[string]func() int{
	"smoke":                   scenarioSmoke,
	"gotest":                  scenarioGotest,
	"refuse":                  scenarioRefuse,
	"refuse-uefi":             scenarioRefuseUEFI,
	"migrate":                 scenarioMigrate,
	"verify":                  scenarioVerify,
	"raw":                     scenarioRaw,
	"mdsamples":               scenarioMDSamples,
	"tui":                     scenarioTUI,
	"fault-cow":               scenarioFaultCow,
	"fault-cowfull":           scenarioFaultCowfull,
	"fault-grow":              scenarioFaultGrow,
	"fault-halfboot":          scenarioFaultHalfboot,
	"fault-live":              scenarioFaultLive,
	"fault-resume":            scenarioFaultResume,
	"fault-stuck":             scenarioFaultStuck,
	"fault-refused":           scenarioFaultRefused,
	"fault-mirror-cut":        scenarioFaultMirrorCut,
	"fault-mirror":            scenarioFaultMirror,
	"debian-boot":             scenarioDebianBoot,
	"debian-fault-mirror":     scenarioFaultMirror,
	"debian-fault-mirror-cut": scenarioFaultMirrorCut,
	"debian-refuse":           scenarioRefuse,
	"debian-copy-bench":       scenarioCopyBench,
	"debian-copy-migrate":     scenarioCopyMigrate,
	"debian-copy-installed":   scenarioCopyInstalled,
	"debian-migrate":          scenarioDebianMigrate,
	"debian-verify":           scenarioDebianVerify,
	"debian-installed":        scenarioDebianInstalled,
}

// cmdScenario runs `lmtest scenario NAME`; `--has NAME` answers whether
// NAME is a Go scenario (init falls back to scenario-NAME.sh when not),
// `--list` lists them.
func cmdScenario(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "--list":
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintln(stdout, strings.Join(names, "\n"))
		return 0
	case len(args) == 2 && args[0] == "--has":
		if _, ok := scenarios[args[1]]; ok {
			return 0
		}
		return 1
	case len(args) == 1 && !strings.HasPrefix(args[0], "-"):
		fn, ok := scenarios[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "lmtest scenario: no scenario %q\n", args[0])
			return 127
		}
		return fn()
	}
	fmt.Fprintln(stderr, "usage: lmtest scenario NAME | --has NAME | --list")
	return 2
}

// self runs one of lmtest's own commands in this process and returns its
// output with stderr merged, as `lmtest ARGS 2>&1` would, and its status.
func self(args ...string) (string, int) {
	var b bytes.Buffer
	rc, ok := runCommand(args, &b, &b)
	if !ok {
		return "lmtest: no command " + args[0] + "\n", 2
	}
	return b.String(), rc
}

// selfLine is self's output on one line, as `lmtest ARGS 2>&1 | tr '\n' ' '`.
func selfLine(args ...string) string {
	out, _ := self(args...)
	return strings.ReplaceAll(out, "\n", " ")
}
