package vm

import (
	"fmt"
	"strings"
	"testing"
)

// Judge is the one way the suites judge a run: every check is a named case
// that passes or fails with a detail; failures are logged as "FAIL NAME:
// DETAIL" as they happen and fail the test at Done. Count, Passed and
// Failed feed each suite's summary line.
type Judge struct {
	t        testing.TB
	rows     []Row
	problems []string
}

// Row is one judged case.
type Row struct {
	Name   string
	OK     bool
	Detail string
}

// NewJudge starts judging for t.
func NewJudge(t testing.TB) *Judge { return &Judge{t: t} }

// Check records case name as passed when ok, else failed with detail.
func (j *Judge) Check(name string, ok bool, detail string) bool {
	j.rows = append(j.rows, Row{name, ok, detail})
	if !ok {
		j.problems = append(j.problems, name+": "+detail)
		Logf("FAIL %s: %s", name, detail)
	}
	return ok
}

// Fact checks that fact key matches the shell glob pattern (a plain value
// is its own pattern: equality).
func (j *Judge) Fact(f Facts, key, pattern string) bool {
	got := f.Get(key)
	return j.Check(key, Glob(got, pattern), fmt.Sprintf("%s='%s', want %s", key, got, pattern))
}

// Facts checks each "KEY=GLOB" of wants against f.
func (j *Judge) Facts(f Facts, wants ...string) bool {
	ok := true
	for _, w := range wants {
		k, p, _ := strings.Cut(w, "=")
		ok = j.Fact(f, k, p) && ok
	}
	return ok
}

// Rows are the cases judged so far, in order.
func (j *Judge) Rows() []Row { return j.rows }

// Count, Passed and Failed count the cases judged so far.
func (j *Judge) Count() int  { return len(j.rows) }
func (j *Judge) Failed() int { return len(j.problems) }
func (j *Judge) Passed() int { return len(j.rows) - len(j.problems) }

// OK tells whether nothing failed so far.
func (j *Judge) OK() bool { return len(j.problems) == 0 }

// Done fails the test when a case failed, naming them all.
func (j *Judge) Done() {
	j.t.Helper()
	if len(j.problems) > 0 {
		j.t.Errorf("%d of %d checks failed:\n  %s", len(j.problems), len(j.rows), strings.Join(j.problems, "\n  "))
	}
}
