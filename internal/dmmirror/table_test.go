package dmmirror

import (
	"strings"
	"testing"
)

func TestRegionSectors(t *testing.T) {
	for _, c := range []struct{ sectors, want uint64 }{
		{0, 8192}, {131072, 8192}, {4096 * 8192, 8192}, {4096*8192 + 1, 16384},
		{4096 * 16384, 16384}, {1 << 40, 32768},
	} {
		if got := RegionSectors(c.sectors); got != c.want {
			t.Errorf("RegionSectors(%d) = %d, want %d", c.sectors, got, c.want)
		}
	}
}

func TestMirrorParams(t *testing.T) {
	p, err := MirrorParams("253:4", "8:17", 1024)
	if err != nil || p != "core 1 1024 2 253:4 0 8:17 0" {
		t.Errorf("MirrorParams = %q, %v", p, err)
	}
	for _, c := range [][3]string{{"253:4", "8:17", "1000"}, {"/dev/x", "8:17", "1024"}, {"253:4", "8", "1024"}} {
		var r uint64 = 1024
		if c[2] == "1000" {
			r = 1000
		}
		if _, err := MirrorParams(c[0], c[1], r); err == nil {
			t.Errorf("MirrorParams(%v) accepted", c)
		}
	}
	// What MirrorParams writes, ParseMirrorTable reads back.
	mt, err := ParseMirrorTable(p)
	if err != nil || mt.LogType != "core" || mt.RegionSectors != 1024 || strings.Join(mt.Legs, ",") != "253:4,8:17" || mt.Offsets[1] != 0 || len(mt.Features) != 0 {
		t.Errorf("ParseMirrorTable(%q) = %+v, %v", p, mt, err)
	}
}

func TestParseMirrorTable(t *testing.T) {
	mt, err := ParseMirrorTable("disk 2 253:9 2048 2 253:4 0 8:17 2048 1 handle_errors")
	if err != nil || mt.LogType != "disk" || mt.RegionSectors != 2048 || mt.Offsets[1] != 2048 || strings.Join(mt.Features, ",") != "handle_errors" {
		t.Errorf("disk log: %+v, %v", mt, err)
	}
	for _, bad := range []string{"", "core", "core 1", "core 1 1024", "core 1 1024 2 253:4 0", "core 1 x 2 a 0 b 0",
		"core 1 1024 2 253:4 0 8:17 x", "core 1 1024 2 253:4 0 8:17 0 2 handle_errors", "core 99 1"} {
		if _, err := ParseMirrorTable(bad); err == nil {
			t.Errorf("ParseMirrorTable(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus("2 253:4 7:5 12/128 1 AA 1 core")
	if err != nil || s.InSyncRegions != 12 || s.Regions != 128 || s.Health != "AA" || s.LogType != "core" || s.InSync() || s.Failed() != nil {
		t.Fatalf("copying: %+v, %v", s, err)
	}
	if got := s.Copied(1024, 100000); got != 12*1024 {
		t.Errorf("Copied = %d", got)
	}
	s, _ = ParseStatus("2 253:4 7:5 128/128 1 AA 1 core")
	if !s.InSync() || s.Copied(1024, 128*1024-7) != 128*1024-7 {
		t.Errorf("in sync: %+v", s)
	}
	s, _ = ParseStatus("2 253:4 7:5 128/128 1 AD 1 core")
	if s.InSync() || len(s.Failed()) != 1 || s.Failed()[0] != 1 {
		t.Errorf("dead leg: %+v", s)
	}
	for _, bad := range []string{"", "2 a b", "2 a b 3/2 1 AA 1 core", "2 a b 1-2 1 AA", "2 a b 1/2 2 AA", "2 a b 1/2 1 A", "2 a b 1/2 1 AX", "x"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		typ       string
		susp, src bool
		want      State
		err       bool
	}{
		{"snapshot", false, false, Untouched, false},
		{"snapshot", false, true, Leftover, false},
		{"mirror", false, true, Copying, false},
		{"mirror", false, false, 0, true},
		{"linear", false, true, Switched, false},
		{"linear", false, false, Switched, false},
		{"snapshot", true, true, Midway, false},
		{"raid", false, false, 0, true},
	} {
		got, err := Classify(c.typ, c.susp, c.src)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("Classify(%q, %v, %v) = %v, %v", c.typ, c.susp, c.src, got, err)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add("2 253:4 7:5 12/128 1 AA 1 core")
	f.Add("3 1:1 1:2 1:3 0/1 1 ADS 1 core")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStatus(s)
		if err != nil {
			return
		}
		if len(st.Health) != len(st.Legs) || st.InSyncRegions > st.Regions {
			t.Fatalf("%q: %+v", s, st)
		}
		_ = st.InSync()
		_ = st.Copied(1024, 1<<40)
	})
}

func FuzzParseMirrorTable(f *testing.F) {
	f.Add("core 1 1024 2 253:4 0 8:17 0")
	f.Add("disk 2 253:9 2048 2 253:4 0 8:17 2048 1 handle_errors")
	f.Fuzz(func(t *testing.T, s string) {
		mt, err := ParseMirrorTable(s)
		if err == nil && len(mt.Legs) != len(mt.Offsets) {
			t.Fatalf("%q: %+v", s, mt)
		}
	})
}
