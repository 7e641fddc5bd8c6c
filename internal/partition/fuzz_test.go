package partition

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode feeds Decode disk images made from Encode output and mutated.
// Each input is decoded as is and again with its CRCs repaired, so the
// fuzzer also reaches the checks behind the CRCs. Decode must never panic,
// and what it accepts must be a sane, non-overlapping table that survives
// Encode and Decode again unchanged.
//
// Inputs are whole disk images (50-64 KiB), which Go's default minimizer
// takes minutes over; run with a short -fuzzminimizetime:
//
//	go test ./internal/partition -run '^$' -fuzz FuzzDecode -fuzztime 2m -fuzzminimizetime 2s
func FuzzDecode(f *testing.F) {
	for _, l := range []Layout{
		{DiskGUID: GUID{1}, SectorSize: 512, DiskSectors: 100, Parts: []Part{
			{Number: 1, Name: "BIOS boot", Type: TypeBIOSBoot, GUID: GUID{2}, Start: 34, Sectors: 4},
			{Number: 2, Name: "EFI System", Type: TypeESP, GUID: GUID{3}, Start: 40, Sectors: 10, Attrs: 1},
			{Number: 3, Name: "livemigrate root", Type: TypeLinuxRoot, GUID: GUID{4}, Start: 50, Sectors: 17},
		}},
		{DiskGUID: GUID{5}, SectorSize: 512, DiskSectors: 68},
		{DiskGUID: GUID{6}, SectorSize: 4096, DiskSectors: 16, Parts: []Part{
			{Number: 1, Name: "eins", Type: TypeLinuxData, GUID: GUID{7}, Start: 6, Sectors: 2},
			{Number: 128, Name: "zwei", Type: TypeLinuxData, GUID: GUID{8}, Start: 8, Sectors: 2},
		}},
	} {
		f.Add(image(f, l), l.SectorSize == 4096)
	}
	f.Fuzz(func(t *testing.T, img []byte, big bool) {
		ss := uint32(512)
		if big {
			ss = 4096
		}
		check(t, img, ss)
		fixed := append([]byte(nil), img...)
		fixCRCs(fixed, ss)
		check(t, fixed, ss)
	})
}

func check(t *testing.T, img []byte, ss uint32) {
	n := uint64(len(img)) / uint64(ss)
	l, err := Decode(bytes.NewReader(img), ss, n)
	if err != nil {
		return
	}
	if l.SectorSize != ss || l.DiskSectors != n {
		t.Fatalf("geometry %d x %d, decoded from %d x %d", l.DiskSectors, l.SectorSize, n, ss)
	}
	seen := map[int]bool{}
	for i, p := range l.Parts {
		if seen[p.Number] || p.Number < 1 || p.Sectors == 0 || p.Start < 2 || p.End() >= n-1 || p.End() < p.Start {
			t.Fatalf("accepted partition %+v on a disk of %d sectors", p, n)
		}
		seen[p.Number] = true
		for _, q := range l.Parts[:i] {
			if p.Start <= q.End() && q.Start <= p.End() {
				t.Fatalf("accepted overlapping partitions %+v and %+v", q, p)
			}
		}
	}
	primary, backup, off, err := Encode(l)
	if err != nil {
		// Tables with other entry counts or usable ranges decode but
		// do not always fit our fixed geometry.
		return
	}
	again := make([]byte, len(img))
	copy(again, primary)
	copy(again[off:], backup)
	l2, err := Decode(bytes.NewReader(again), ss, n)
	if err != nil {
		t.Fatalf("re-encoded table rejected: %v", err)
	}
	if !reflect.DeepEqual(l, l2) {
		t.Fatalf("re-encode changed the layout:\n%+v\n%+v", l, l2)
	}
}
