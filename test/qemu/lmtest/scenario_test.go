package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// The help lists exactly the commands run dispatches, each once.
func TestHelpMatchesDispatch(t *testing.T) {
	var help bytes.Buffer
	if rc := run([]string{"help"}, &help, &help); rc != 0 {
		t.Fatalf("help: rc %d", rc)
	}
	listed := map[string]int{}
	for _, l := range strings.Split(help.String(), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			listed[f[0]]++
		}
	}
	dispatched := map[string]bool{}
	for _, c := range commands {
		dispatched[c.name] = true
		if listed[c.name] != 1 {
			t.Errorf("%s: listed %d times in the help", c.name, listed[c.name])
		}
		// Dispatched: a bogus flag is a usage error of that command (2 from
		// its flag set, or scenario's own), never "unknown command".
		var out, errb bytes.Buffer
		rc := run([]string{c.name, "--no-such-flag"}, &out, &errb)
		if strings.HasPrefix(errb.String(), "usage: lmtest COMMAND") {
			t.Errorf("%s: listed in the help but not dispatched (rc %d)", c.name, rc)
		}
	}
	for name := range listed {
		if !dispatched[name] {
			t.Errorf("%s: in the help but not a command", name)
		}
	}
}

func TestScenarioDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"scenario", "--has", "smoke"}, &out, &errb); rc != 0 {
		t.Errorf("--has smoke: rc %d", rc)
	}
	if rc := run([]string{"scenario", "--has", "no-such"}, &out, &errb); rc != 1 {
		t.Errorf("--has no-such: rc %d", rc)
	}
	if rc := run([]string{"scenario", "no-such"}, &out, &errb); rc != 127 {
		t.Errorf("no-such: rc %d", rc)
	}
	out.Reset()
	run([]string{"scenario", "--list"}, &out, &errb)
	if names := strings.Fields(out.String()); len(names) != len(scenarios) {
		t.Errorf("--list: %q", names)
	}
}

func TestParseGoTestV(t *testing.T) {
	out := `=== RUN   TestA
--- PASS: TestA (0.00s)
=== RUN   TestB
=== RUN   TestB/sub
    --- PASS: TestB/sub (0.01s)
    --- SKIP: TestB/other (0.00s)
        x_test.go:9: needs a VM
--- FAIL: TestB (0.02s)
md above 4 TiB: md101 component 5368709120 KiB, array 5497558138880 bytes
    md above 4 TiB: indented is not a note
FAIL`
	r := parseGoTestV([]byte(out))
	if r.summary() != "pass=2 fail=1 skip=1" {
		t.Errorf("summary %q", r.summary())
	}
	if !reflect.DeepEqual(r.failed, []string{"TestB"}) || spaced(r.skipped) != "TestB/other " {
		t.Errorf("failed %q skipped %q", r.failed, r.skipped)
	}
	if len(r.notes) != 1 || !strings.HasPrefix(r.notes[0], "md above 4 TiB: md101") {
		t.Errorf("notes %q", r.notes)
	}
}

func TestMigrateParsers(t *testing.T) {
	mem := "MemTotal:        2014164 kB\nMemAvailable:    1873940 kB\nUnevictable:           0 kB\nShmem:             17120 kB\n"
	if got := meminfoFacts(mem); got != "MemAvailable:=1918914560 Unevictable:=0 Shmem:=17530880 " {
		t.Errorf("meminfoFacts = %q", got)
	}
	res := `{"event":"result","recovered_bytes":260046848,"recovery_bytes_per_second":6.31e+07,"Ejected":true,"x":{"recovered_bytes":5}}`
	for key, want := range map[string]string{"recovered_bytes": "5", "recovery_bytes_per_second": "6.31e+07", "missing": ""} {
		if got := jsonNum(res, key); got != want {
			t.Errorf("jsonNum(%s) = %q, want %q", key, got, want)
		}
	}
	jsonl := []byte(`{"event":"step","Ejected":false}` + "\n" + res + "\n")
	if got := ejected(jsonl); !reflect.DeepEqual(got, []string{"true"}) {
		t.Errorf("ejected = %q", got)
	}
	if lastResult(jsonl) != res {
		t.Error("lastResult")
	}
	if got := cowKinds([]byte("{\n  \"COWKind\": \"deleted-file\",\n  \"COWBacking\": \"/overlay\"\n}")); !reflect.DeepEqual(got, []string{"deleted-file"}) {
		t.Errorf("cowKinds = %q", got)
	}
	if got := prefixedValues([]byte("written=10\nacked=9\n"), "acked="); !reflect.DeepEqual(got, []string{"9"}) {
		t.Errorf("prefixedValues = %q", got)
	}
}

func TestRefuseParsers(t *testing.T) {
	losetup := "/dev/loop1: [0007]:3 (/run/initramfs/squashfs/LiveOS/rootfs.img)\n/dev/loop0: [2049]:12 (/run/initramfs/live/LiveOS/squashfs.img)\n"
	if got := squashfsLoop(losetup); got != "/dev/loop0" {
		t.Errorf("squashfsLoop = %q", got)
	}
	text := []byte("Dry run: nothing was changed.\n==> step\nDry run: nothing was changed. (no)\n")
	if countExactLines(text, "Dry run: nothing was changed.") != 1 || countLinesPrefixed(text, "==> ") != 1 || countLinesWith(text, "Dry run") != 2 {
		t.Error("line counters")
	}
}

func TestParseSyncCompleted(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"70656 / 139264\n", 70656, true},
		{"0 / 507904", 0, true},
		{"none\n", 0, false},
		{"", 0, false},
		{"x / 5", 0, false},
	} {
		got, ok := parseSyncCompleted(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSyncCompleted(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
