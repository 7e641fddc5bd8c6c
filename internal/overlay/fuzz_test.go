package overlay

import (
	"testing"
)

func FuzzParseSnapshotStatus(f *testing.F) {
	for _, s := range []string{"1024/67108864 16", "Invalid", "Overflow", "Merge failed", "Unknown", "", "1/", "/ 1", "18446744073709551615/1 1", "1/2 3 4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseSnapshotStatus(s)
		if err == nil {
			_ = u.UsedFraction()
			_ = u.FreeSectors()
		}
	})
}

func FuzzParseSnapshotTable(f *testing.F) {
	for _, s := range []string{"7:1 7:2 P 8", "7:1 7:2 PO 8", "7:1 7:2 N 16 1 discard_zeroes_cow", "7:1 7:2 P 8 99", "", "a b c d e f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, c, _, _, err := ParseSnapshotTable(s)
		if err == nil && (o == "" || c == "") {
			t.Errorf("ParseSnapshotTable(%q) accepted empty devices", s)
		}
	})
}

func FuzzParseTargetSpecs(f *testing.F) {
	buf, _, _ := targetReply([]Target{{Length: 8, Type: "snapshot", Params: "7:1 7:2 P 8"}})
	f.Add(buf, uint32(312), uint32(len(buf)), uint32(1))
	f.Add([]byte{}, uint32(0), uint32(0), uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, start, size, count uint32) {
		if count > 1000 {
			count = 1000
		}
		_, _ = parseTargetSpecs(b, start, size, count)
	})
}
