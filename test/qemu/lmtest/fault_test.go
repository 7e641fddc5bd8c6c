package main

import (
	"bytes"
	"strings"
	"testing"
)

// A migrate --json stream as the fault scenarios read it (shapes of real
// events; the values are made up).
const faultJSONL = `{"time":"t","event":"plan","plan":{"resume":"continue-recovery","steps":[{"step":"tune-recovery"}]},"cow_need_bytes":100,"cow_free_bytes":200}
{"time":"t","event":"step-start","step":"tune-recovery","message":"Raise md's recovery speed"}
{"time":"t","event":"progress","step":"recover","percent":12,"bytes":1}
{"time":"t","event":"progress","step":"recover","percent":25,"bytes":2}
{"time":"t","event":"warning","message":"copy-on-write space is getting low: \"live\" has 1 MiB"}
{"time":"t","event":"step-done","step":"remove-live-leg"}
{"time":"t","event":"result","result":{}}
`

func TestFaultStreamParsers(t *testing.T) {
	if got := events(faultJSONL); got != "plan: step-start:tune-recovery progress:recover warning: step-done:remove-live-leg result: " {
		t.Errorf("events = %q", got)
	}
	if got := warnings(faultJSONL); got != `copy-on-write space is getting low: \"live\" has 1 MiB | ` {
		t.Errorf("warnings = %q", got)
	}
	if got := planResume(faultJSONL); got != "continue-recovery" {
		t.Errorf("planResume = %q", got)
	}
	if got := lastPercent(faultJSONL); got != "25" {
		t.Errorf("lastPercent = %q", got)
	}
	if got := lastPercent(`{"event":"plan"}`); got != "" {
		t.Errorf("lastPercent without progress = %q", got)
	}
	if got := cowPlan(faultJSONL); got != "cow_need_bytes:100 cow_free_bytes:200 " && got != `"cow_need_bytes":100 "cow_free_bytes":200 ` {
		t.Errorf("cowPlan = %q", got)
	}
}

func TestFaultTextHelpers(t *testing.T) {
	status := "Live stack:  live-rw   over loop1\n  slot 0    dm-0   in_sync\n  slot 1    vda    spare\n  COW       loop2: 1 MiB\n"
	if got := squeezed(status, `^  slot`, " | "); got != " slot 0 dm-0 in_sync |  slot 1 vda spare | " {
		t.Errorf("squeezed = %q", got)
	}
	if got := joinedLines([]byte("a\nb")); got != "a | b | " {
		t.Errorf("joinedLines = %q", got)
	}
	for stat, want := range map[string]bool{
		"123 (livemigrate) S 1 123": false,
		"123 (livemigrate) Z 1 123": true,
		"123 (a) Z (b)) R 1":        false, // comm with ") Z (": the last ")" ends it
	} {
		if got := procZombie(stat); got != want {
			t.Errorf("procZombie(%q) = %v", stat, got)
		}
	}
	var out bytes.Buffer
	copyLinesUntil(strings.NewReader(faultJSONL), &out, `"event":"step-done","step":"remove-live-leg"`)
	if !strings.HasSuffix(out.String(), "\"remove-live-leg\"}\n") || strings.Contains(out.String(), `"result"`) {
		t.Errorf("copyLinesUntil: %q", out.String())
	}
}
