package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The testdata samples are real: `lmtest scenario mdsamples` (see the README)
// walked the root array of a booted test live system (built by
// `livemigrate boot snapshot/wrap`) through a migration with mdadm and
// recorded mdadm --detail and livemigrate status --json at each step.
var mdSamples = []struct {
	name    string
	level   string
	sizeKiB int64
	total   int
	active  int
	working int
	failed  int
	spare   int
	state   []string
	rebuild int
	members []MDMember
}{
	{"degraded", "raid1", 53248, 1, 1, 1, 0, 0, []string{"clean", "degraded"}, -1, []MDMember{
		{0, 253, 0, 0, []string{"active", "sync"}, "/dev/dm-0"},
		{-1, 0, 0, 1, []string{"removed"}, ""},
	}},
	{"recovering", "raid1", 53248, 2, 1, 2, 0, 1, []string{"clean", "degraded", "recovering"}, 5, []MDMember{
		{0, 253, 0, 0, []string{"active", "sync"}, "/dev/dm-0"},
		{2, 254, 0, 1, []string{"spare", "rebuilding"}, "/dev/vda"},
	}},
	{"insync", "raid1", 53248, 2, 2, 2, 0, 0, []string{"clean"}, -1, []MDMember{
		{0, 253, 0, 0, []string{"active", "sync"}, "/dev/dm-0"},
		{2, 254, 0, 1, []string{"active", "sync"}, "/dev/vda"},
	}},
	{"faulty", "raid1", 53248, 2, 1, 1, 1, 0, []string{"clean", "degraded"}, -1, []MDMember{
		{-1, 0, 0, 0, []string{"removed"}, ""},
		{2, 254, 0, 1, []string{"active", "sync"}, "/dev/vda"},
		{0, 253, 0, -1, []string{"faulty"}, "/dev/dm-0"},
	}},
	{"removed", "raid1", 53248, 1, 1, 1, 0, 0, []string{"clean", "degraded"}, -1, []MDMember{
		{-1, 0, 0, 0, []string{"removed"}, ""},
		{2, 254, 0, 1, []string{"active", "sync"}, "/dev/vda"},
	}},
	{"grown", "raid1", 131072, 1, 1, 1, 0, 0, []string{"clean", "degraded"}, -1, []MDMember{
		{-1, 0, 0, 0, []string{"removed"}, ""},
		{2, 254, 0, 1, []string{"active", "sync"}, "/dev/vda"},
	}},
	{"resized", "raid1", 131072, 1, 1, 1, 0, 0, []string{"active", "degraded"}, -1, []MDMember{
		{-1, 0, 0, 0, []string{"removed"}, ""},
		{2, 254, 0, 1, []string{"active", "sync"}, "/dev/vda"},
	}},
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMDDetail(t *testing.T) {
	for _, tc := range mdSamples {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseMDDetail(string(readTestdata(t, "mdadm-detail-"+tc.name+".txt")))
			if err != nil {
				t.Fatal(err)
			}
			if d.Device != "/dev/md127" || d.Level != tc.level || d.ArraySizeKiB != tc.sizeKiB ||
				d.UsedDevSizeKiB != tc.sizeKiB || d.RaidDevices != 2 {
				t.Errorf("header: device %q level %q size %d used %d raid %d",
					d.Device, d.Level, d.ArraySizeKiB, d.UsedDevSizeKiB, d.RaidDevices)
			}
			if d.Version != "" {
				t.Errorf("build arrays have no version, got %q", d.Version)
			}
			got := []int{d.TotalDevices, d.ActiveDevices, d.WorkingDevices, d.FailedDevices, d.SpareDevices}
			want := []int{tc.total, tc.active, tc.working, tc.failed, tc.spare}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("counts total/active/working/failed/spare = %v, want %v", got, want)
			}
			if !reflect.DeepEqual(d.State, tc.state) {
				t.Errorf("state %q, want %q", d.State, tc.state)
			}
			if d.RebuildPercent != tc.rebuild {
				t.Errorf("rebuild %d, want %d", d.RebuildPercent, tc.rebuild)
			}
			if !reflect.DeepEqual(d.Members, tc.members) {
				t.Errorf("members\n got %+v\nwant %+v", d.Members, tc.members)
			}
		})
	}
}

func TestParseMDDetailErrors(t *testing.T) {
	for name, text := range map[string]string{
		"empty":     "",
		"no level":  "/dev/md0:\n  Raid Devices : 2\n",
		"bad count": "/dev/md0:\n  Raid Level : raid1\n  Raid Devices : two\n",
		"bad row":   "/dev/md0:\n  Raid Level : raid1\n    Number   Major   Minor   RaidDevice State\n  x 1 2 3 active\n",
		"short row": "/dev/md0:\n  Raid Level : raid1\n    Number   Major   Minor   RaidDevice State\n  0 1 2\n",
	} {
		if _, err := ParseMDDetail(text); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMemberRole(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"active", "sync"}, "in_sync"},
		{[]string{"in_sync"}, "in_sync"},
		{[]string{"in_sync,write_mostly"}, "in_sync"},
		{[]string{"spare", "rebuilding"}, "rebuilding"},
		{[]string{"spare"}, "spare"},
		{[]string{"faulty"}, "faulty"},
		{[]string{"faulty", "in_sync"}, "faulty"},
		{[]string{"removed"}, "removed"},
		{nil, "unknown"},
	} {
		if got := memberRole(tc.words); got != tc.want {
			t.Errorf("memberRole(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// Every real status sample agrees with the mdadm sample of the same moment.
func TestCompareMDSamples(t *testing.T) {
	for _, tc := range mdSamples {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseMDDetail(string(readTestdata(t, "mdadm-detail-"+tc.name+".txt")))
			if err != nil {
				t.Fatal(err)
			}
			sv, err := parseStatusJSON(readTestdata(t, "status-"+tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if sv.Level != "raid1" || sv.RaidDevices != 2 || sv.SizeKiB != tc.sizeKiB || len(sv.Members) == 0 {
				t.Fatalf("status not understood: %+v", sv)
			}
			if diffs := compareMD(d, sv, nil); len(diffs) != 0 {
				t.Errorf("diffs: %q", diffs)
			}
		})
	}
}

// Status JSON that disagrees with mdadm is caught, field by field.
func TestCompareMDMismatch(t *testing.T) {
	d, err := ParseMDDetail(string(readTestdata(t, "mdadm-detail-recovering.txt")))
	if err != nil {
		t.Fatal(err)
	}
	base := string(readTestdata(t, "status-recovering.json"))
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"level", `"level": "raid1"`, `"level": "raid0"`, "level"},
		{"size", `"size_bytes": 54525952`, `"size_bytes": 54530048`, "size"},
		{"raid disks", `"raid_disks": 2`, `"raid_disks": 3`, "raid devices"},
		{"degraded", `"degraded": 1`, `"degraded": 0`, "degraded"},
		{"member state", `"states": ["spare"]`, `"states": ["faulty"]`, "state"},
		{"member slot", `"slot": 1`, `"slot": 0`, "slot"},
		{"unknown member", `"major": 254`, `"major": 8`, "unknown to mdadm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := compactJSON(base)
			from := compactJSON(tc.from)
			if !strings.Contains(js, from) {
				t.Fatalf("sample has no %s", from)
			}
			sv, err := parseStatusJSON([]byte(strings.Replace(js, from, compactJSON(tc.to), 1)))
			if err != nil {
				t.Fatal(err)
			}
			diffs := compareMD(d, sv, nil)
			if len(diffs) == 0 || !strings.Contains(strings.Join(diffs, ";"), tc.want) {
				t.Errorf("diffs %q, want one about %q", diffs, tc.want)
			}
		})
	}
}

// A field that is compared must be there on both sides: dropped from the
// status JSON or from mdadm's output, it is a difference, not "empty
// equals empty".
func TestCompareMDMissingField(t *testing.T) {
	mdText := string(readTestdata(t, "mdadm-detail-recovering.txt"))
	base := compactJSON(string(readTestdata(t, "status-recovering.json")))
	d, err := ParseMDDetail(mdText)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, drop, want string }{
		{"level", `"level":"raid1",`, "status: level missing"},
		{"size", `"size_bytes":54525952,`, "status: array size missing"},
		{"raid disks", `"raid_disks":2,`, "status: raid devices missing"},
		{"degraded", `"degraded":1,`, "status: degraded missing"},
		{"member slot", `"slot":1,`, "slot missing"},
		{"member state", `"states":["spare"],`, "state missing"},
	} {
		t.Run("status "+tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.drop) {
				t.Fatalf("sample has no %s", tc.drop)
			}
			js := strings.Replace(base, tc.drop, "", 1)
			sv, err := parseStatusJSON([]byte(js))
			if err != nil {
				t.Fatal(err)
			}
			diffs := compareMD(d, sv, nil)
			if !strings.Contains(strings.Join(diffs, ";"), tc.want) {
				t.Errorf("diffs %q, want %q", diffs, tc.want)
			}
		})
	}
	sv, err := parseStatusJSON([]byte(`{"array":{"level":"raid1","raid_disks":2,"size_bytes":54525952,"degraded":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if diffs := compareMD(d, sv, nil); !strings.Contains(strings.Join(diffs, ";"), "status: members missing") {
		t.Errorf("no members: diffs %q", diffs)
	}
	svFull, err := parseStatusJSON([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, want string }{
		{"Array Size", "mdadm: Array Size missing"},
		{"Raid Devices", "mdadm: Raid Devices missing"},
		{"Active Devices", "mdadm: Active Devices missing"},
	} {
		t.Run("mdadm "+tc.line, func(t *testing.T) {
			var kept []string
			for _, l := range strings.Split(mdText, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), tc.line+" :") {
					kept = append(kept, l)
				}
			}
			d2, err := ParseMDDetail(strings.Join(kept, "\n"))
			if err != nil {
				t.Fatal(err)
			}
			diffs := compareMD(d2, svFull, nil)
			if !strings.Contains(strings.Join(diffs, ";"), tc.want) {
				t.Errorf("diffs %q, want %q", diffs, tc.want)
			}
		})
	}
	d3, err := ParseMDDetail(mdText[:strings.Index(mdText, "Number")])
	if err != nil {
		t.Fatal(err)
	}
	if diffs := compareMD(d3, svFull, nil); !strings.Contains(strings.Join(diffs, ";"), "mdadm: member table missing") {
		t.Errorf("no mdadm members: diffs %q", diffs)
	}
}

// compactJSON strips insignificant blanks so samples and snippets compare
// textually whatever the pretty-printing. Snippets are not valid JSON on
// their own, so for them just drop the blanks after ':' and ','.
func compactJSON(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err == nil {
		return b.String()
	}
	return strings.NewReplacer(": ", ":", ", ", ",").Replace(s)
}

// Other plausible shapes of the status JSON are still understood.
func TestParseStatusJSONShapes(t *testing.T) {
	d, err := ParseMDDetail(string(readTestdata(t, "mdadm-detail-insync.txt")))
	if err != nil {
		t.Fatal(err)
	}
	devno := func(path string) (uint32, uint32, error) {
		switch path {
		case "/dev/mapper/live-rw":
			return 253, 0, nil
		case "/dev/vda":
			return 254, 0, nil
		}
		return 0, 0, os.ErrNotExist
	}
	for name, js := range map[string]string{
		"flat, paths": `{"Level":"raid1","RaidDisks":2,"ArraySizeKiB":53248,"Degraded":0,
			"Members":[{"Path":"/dev/mapper/live-rw","State":"in_sync","Slot":0},
			           {"Path":"/dev/vda","State":"in_sync","Slot":1}]}`,
		"md object, devno": `{"md":{"level":1,"raid_devices":2,"array_size_sectors":106496,"degraded":false,
			"devices":[{"dev":"253:0","state":["in_sync"],"raid_disk":0},{"dev_t":"254:0","state":"active sync","index":1}]}}`,
	} {
		sv, err := parseStatusJSON([]byte(js))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diffs := compareMD(d, sv, devno); len(diffs) != 0 {
			t.Errorf("%s: diffs %q", name, diffs)
		}
	}
	if _, err := parseStatusJSON([]byte("not json")); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "512K": 512 << 10, "256M": 256 << 20, "1G": 1 << 30, "2t": 2 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "1.5G", "12X"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestRawPatternDistinct(t *testing.T) {
	a, b := make([]byte, rawChunk), make([]byte, rawChunk)
	rawPattern(0, a)
	rawPattern(1, b)
	if bytes.Equal(a, b) {
		t.Fatal("chunks 0 and 1 have the same pattern")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := encodeRecord(42, time.Unix(1, 2))
	if len(r) != RecordSize {
		t.Fatalf("record is %d bytes", len(r))
	}
	if err := checkRecord(r, 42); err != nil {
		t.Fatal(err)
	}
	if err := checkRecord(r, 43); err == nil {
		t.Error("record 42 accepted as 43")
	}
	for _, off := range []int{0, 9, 20, 100, 479, 500} {
		c := bytes.Clone(r)
		c[off] ^= 1
		if err := checkRecord(c, 42); err == nil {
			t.Errorf("flip at %d not detected", off)
		}
	}
	// A record that is internally consistent but carries another record's
	// payload (e.g. a stale block) is caught by the payload check.
	other := encodeRecord(7, time.Unix(1, 2))
	copy(r[payloadOff:sumOff], other[payloadOff:sumOff])
	sum := sha256.Sum256(r[:sumOff])
	copy(r[sumOff:], sum[:])
	if err := checkRecord(r, 42); err == nil || !strings.Contains(err.Error(), "payload") {
		t.Errorf("foreign payload: %v", err)
	}
	if err := checkRecord(make([]byte, RecordSize), 1); err == nil || !strings.Contains(err.Error(), "zeroes") {
		t.Errorf("zero block: %v", err)
	}
}

func TestWriterAndVerify(t *testing.T) {
	dir := t.TempDir()
	file, acked := filepath.Join(dir, "rec"), filepath.Join(dir, "acked")
	n, err := writeRecords(context.Background(), file, acked, 0, 50)
	if err != nil || n != 50 {
		t.Fatalf("writeRecords = %d, %v", n, err)
	}
	if b, _ := os.ReadFile(acked); strings.TrimSpace(string(b)) != "50" {
		t.Errorf("acked file says %q", b)
	}
	// Resuming appends after the last whole record.
	if n, err = writeRecords(context.Background(), file, acked, 0, 10); err != nil || n != 60 {
		t.Fatalf("resume = %d, %v", n, err)
	}
	// Cancelled before the first record: nothing new, no error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err = writeRecords(ctx, file, acked, 0, 0); err != nil || n != 60 {
		t.Fatalf("cancelled = %d, %v", n, err)
	}

	verify := func(upto uint64) verifyResult {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		res, err := verifyRecords(f, upto)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verify(60); res.OK != 60 || res.Bad != 0 || res.Extra != 0 {
		t.Errorf("all: %+v", res)
	}
	if res := verify(40); res.OK != 40 || res.Bad != 0 || res.Extra != 20 {
		t.Errorf("upto 40: %+v", res)
	}
	if res := verify(70); res.OK != 60 || res.Bad != 10 || !strings.Contains(res.FirstBad, "61: file ends") {
		t.Errorf("upto 70: %+v", res)
	}

	// Damage record 17: verify names it and counts it.
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XX"), 16*RecordSize+300); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if res := verify(60); res.OK != 59 || res.Bad != 1 || !strings.HasPrefix(res.FirstBad, "17:") {
		t.Errorf("damaged: %+v", res)
	}

	// A torn file (not whole records) is refused by the writer.
	if err := os.WriteFile(file, make([]byte, 700), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeRecords(context.Background(), file, acked, 0, 1); err == nil {
		t.Error("torn file accepted")
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run(nil, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no args: rc %d, %q", rc, errb.String())
	}
	if rc := run([]string{"nope"}, &out, &errb); rc != 2 {
		t.Errorf("unknown command: rc %d", rc)
	}
	if rc := run([]string{"verify"}, &out, &errb); rc != 1 {
		t.Errorf("verify without --file: rc %d", rc)
	}
}

func TestMDCompareFiles(t *testing.T) {
	var out, errb bytes.Buffer
	rc := run([]string{"mdcompare", "--mdadm-output", "testdata/mdadm-detail-recovering.txt",
		"--status-json", "testdata/status-recovering.json"}, &out, &errb)
	if rc != 0 || strings.TrimSpace(out.String()) != "mdcompare=ok" {
		t.Errorf("rc %d out %q err %q", rc, out.String(), errb.String())
	}
	out.Reset()
	rc = run([]string{"mdcompare", "--mdadm-output", "testdata/mdadm-detail-insync.txt",
		"--status-json", "testdata/status-removed.json"}, &out, &errb)
	if rc != 1 || !strings.HasPrefix(out.String(), "mdcompare=mismatch: ") {
		t.Errorf("rc %d out %q", rc, out.String())
	}
}
