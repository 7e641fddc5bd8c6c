package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioGotest runs the package tests that need the real kernel (md, dm,
// loop, online filesystem growth) inside the guest. They are `go test -c`
// binaries that skip themselves unless LIVEMIGRATE_VM=1. Reports per binary:
// gotest_NAME_rc, gotest_NAME="pass=N fail=N skip=N", and each failing or
// skipped test's name, so the host (vmtest.sh) can insist that nothing was
// skipped.
func scenarioGotest() int {
	for _, mod := range []string{"xfs", "btrfs"} {
		if g.Sh("modprobe", mod).RC != 0 {
			g.Say("gotest: no %s module", mod)
		}
	}
	rcAll := 0
	var notes []string
	for _, t := range g.Glob("/usr/lib/lmtest/tests/*.test") {
		if !isExec(t) {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(t), ".test")
		g.Say("=== gotest: %s", name)
		dir := "/usr/lib/lmtest/tests/" + name
		if !g.Exists(dir) {
			dir = "/tmp"
		}
		r := g.Cmd{Args: []string{t, "-test.v", "-test.count=1", "-test.timeout=8m"},
			Env: []string{"LIVEMIGRATE_VM=1"}, Dir: dir, Combined: true}.Run()
		_ = os.WriteFile("/run/gotest-"+name+".log", r.Stdout, 0o644)
		_, _ = g.Console.Write(r.Stdout)
		res := parseGoTestV(r.Stdout)
		g.Fact("gotest_"+name+"_rc", strconv.Itoa(r.RC))
		g.Fact("gotest_"+name, res.summary())
		g.Fact("gotest_"+name+"_skipped", spaced(res.skipped))
		g.Fact("gotest_"+name+"_failed", spaced(res.failed))
		notes = append(notes, res.notes...)
		if r.RC != 0 {
			rcAll = 1
		}
	}
	g.FactLines("gotest_note", []byte(strings.Join(notes, "\n")))
	return rcAll
}

// goTestResult is what `go test -v` output says: how many tests passed
// (subtests count, as "--- PASS" lines at any depth), the names of the
// failed and skipped ones, and the notes the kernel tests print for the
// host to quote: "md above 4 TiB" (TestKernelAbove4TiB), "dmmirror ..."
// (the run-time mirror's copy figures).
type goTestResult struct {
	pass            int
	failed, skipped []string
	notes           []string
}

var goTestLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP)`)

func parseGoTestV(out []byte) goTestResult {
	var r goTestResult
	for _, l := range g.Lines(out) {
		if strings.HasPrefix(l, "md above 4 TiB") || strings.HasPrefix(l, "dmmirror ") {
			r.notes = append(r.notes, l)
		}
		m := goTestLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		// "--- SKIP: TestName (0.00s)": the name is the third word.
		name := ""
		if f := strings.Fields(l); len(f) >= 3 {
			name = f[2]
		}
		switch m[1] {
		case "PASS":
			r.pass++
		case "FAIL":
			r.failed = append(r.failed, name)
		case "SKIP":
			r.skipped = append(r.skipped, name)
		}
	}
	return r
}

func (r goTestResult) summary() string {
	return "pass=" + strconv.Itoa(r.pass) + " fail=" + strconv.Itoa(len(r.failed)) + " skip=" + strconv.Itoa(len(r.skipped))
}

// spaced is words each followed by a space, as `... | tr '\n' ' '` left them.
func spaced(words []string) string {
	var b strings.Builder
	for _, w := range words {
		b.WriteString(w + " ")
	}
	return b.String()
}
