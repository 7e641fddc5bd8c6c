package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"strings"
	"testing"
)

// image lays an encoded layout out as a whole disk in memory.
func image(t testing.TB, l Layout) []byte {
	t.Helper()
	primary, backup, off, err := Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, l.Bytes())
	copy(img, primary)
	copy(img[off:], backup)
	return img
}

// sparseDisk serves an encoded layout without allocating the whole disk,
// for layouts planned for real disk sizes.
type sparseDisk struct {
	size            uint64
	primary, backup []byte
	backupOff       uint64
}

func (d sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if uint64(off)+uint64(len(p)) > d.size {
		return 0, io.EOF
	}
	clear(p)
	for _, c := range []struct {
		b   []byte
		off uint64
	}{{d.primary, 0}, {d.backup, d.backupOff}} {
		lo, hi := max(uint64(off), c.off), min(uint64(off)+uint64(len(p)), c.off+uint64(len(c.b)))
		if lo < hi {
			copy(p[lo-uint64(off):], c.b[lo-c.off:hi-c.off])
		}
	}
	return len(p), nil
}

// small is a layout that exercises what PlanInstall does not: gaps,
// sparse entry numbers, the last entry, attributes and non-ASCII names.
func small(ss uint32) Layout {
	k := uint64(4096 / ss)
	return Layout{
		DiskGUID:    MustParseGUID("01234567-89ab-cdef-0123-456789abcdef"),
		SectorSize:  ss,
		DiskSectors: 64 * k,
		Parts: []Part{
			{Number: 1, Name: "eins", Type: TypeESP, GUID: MustParseGUID("11111111-2222-4333-8444-555555555555"), Start: 8 * k, Sectors: 4 * k, Attrs: 1},
			{Number: 5, Name: "Ünïcødé 😀 " + strings.Repeat("x", 22), Type: TypeLinuxData, GUID: MustParseGUID("21111111-2222-4333-8444-555555555555"), Start: 20 * k, Sectors: 1, Attrs: 1 << 60},
			{Number: 128, Type: TypeLinuxRoot, GUID: MustParseGUID("31111111-2222-4333-8444-555555555555"), Start: 30 * k, Sectors: 16 * k},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, ss := range []uint32{512, 4096} {
		l := small(ss)
		img := image(t, l)
		got, err := Decode(bytes.NewReader(img), ss, l.DiskSectors)
		if err != nil {
			t.Fatalf("%d: %v", ss, err)
		}
		if !reflect.DeepEqual(got, l) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", ss, got, l)
		}

		planned, err := PlanInstall(20<<30, ss, 1<<30, &counting{})
		if err != nil {
			t.Fatal(err)
		}
		primary, backup, off, err := Encode(planned)
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 + entriesBytes/uint64(ss); uint64(len(primary)) != want*uint64(ss) {
			t.Errorf("%d: primary is %d bytes, want %d sectors", ss, len(primary), want)
		}
		if off+uint64(len(backup)) != planned.Bytes() {
			t.Errorf("%d: backup at %d+%d does not end at the disk's end %d", ss, off, len(backup), planned.Bytes())
		}
		got, err = Decode(sparseDisk{planned.Bytes(), primary, backup, off}, ss, planned.DiskSectors)
		if err != nil {
			t.Fatalf("%d: %v", ss, err)
		}
		if !reflect.DeepEqual(got, planned) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", ss, got, planned)
		}
	}
}

// The protective MBR, headers and first entry, checked against the UEFI
// specification's offsets rather than against Decode.
func TestEncodeBytes(t *testing.T) {
	l := small(512)
	img := image(t, l)
	le := binary.LittleEndian
	if img[510] != 0x55 || img[511] != 0xAA || img[446+4] != 0xEE || le.Uint32(img[446+8:]) != 1 || le.Uint32(img[446+12:]) != 511 {
		t.Errorf("protective MBR record % x", img[446:462])
	}
	h := img[512:1024]
	if string(h[:8]) != "EFI PART" || le.Uint32(h[8:]) != 0x10000 || le.Uint32(h[12:]) != 92 {
		t.Errorf("header start % x", h[:16])
	}
	for off, want := range map[int]uint64{24: 1, 32: 511, 40: 34, 48: 478, 72: 2} {
		if got := le.Uint64(h[off:]); got != want {
			t.Errorf("header offset %d = %d, want %d", off, got, want)
		}
	}
	if le.Uint32(h[80:]) != 128 || le.Uint32(h[84:]) != 128 || le.Uint32(h[88:]) != crc32.ChecksumIEEE(img[1024:1024+16384]) {
		t.Error("entry array fields")
	}
	e := img[1024:]
	if !bytes.Equal(e[:16], TypeESP[:]) || le.Uint64(e[32:]) != 64 || le.Uint64(e[40:]) != 95 || le.Uint64(e[48:]) != 1 || string(e[56:64]) != "e\x00i\x00n\x00s\x00" {
		t.Errorf("entry 1 % x", e[:64])
	}
	b := img[511*512:]
	if string(b[:8]) != "EFI PART" || le.Uint64(b[24:]) != 511 || le.Uint64(b[32:]) != 1 || le.Uint64(b[72:]) != 479 {
		t.Error("backup header")
	}
	if !bytes.Equal(img[479*512:511*512], img[2*512:34*512]) {
		t.Error("backup entries differ from primary")
	}
}

// fixCRCs recomputes the entry-array and header CRCs of both headers
// wherever they are plausible, so tests (and the fuzzer) can reach the
// checks behind the CRCs.
func fixCRCs(img []byte, ss uint32) {
	le := binary.LittleEndian
	n := uint64(len(img)) / uint64(ss)
	if n < 3 {
		return
	}
	for _, lba := range []uint64{1, n - 1} {
		h := img[lba*uint64(ss):][:ss]
		if string(h[:8]) != signature {
			continue
		}
		num, size, at := uint64(le.Uint32(h[80:])), uint64(le.Uint32(h[84:])), le.Uint64(h[72:])
		if bytes := num * size; num <= 1<<16 && size <= 1<<16 && at < n && bytes <= uint64(len(img))-at*uint64(ss) {
			le.PutUint32(h[88:], crc32.ChecksumIEEE(img[at*uint64(ss):][:bytes]))
		}
		if hs := le.Uint32(h[12:]); hs >= 20 && hs <= ss {
			clear(h[16:20])
			le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hs]))
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	le := binary.LittleEndian
	const ss = 512
	// entry edits both copies of entry n, as a tool that wrote a bad
	// table consistently would.
	entry := func(img []byte, n int, f func(e []byte)) {
		f(img[2*ss+(n-1)*128:][:128])
		f(img[479*ss+(n-1)*128:][:128])
	}
	tests := []struct {
		name  string
		mod   func(img []byte)
		fix   bool
		want  string
		noGPT bool
	}{
		{name: "signature", mod: func(b []byte) { b[ss] = 'X' }, want: `no "EFI PART" signature`, noGPT: true},
		{name: "blank", mod: func(b []byte) { clear(b) }, want: "no GPT", noGPT: true},
		{name: "header CRC", mod: func(b []byte) { b[ss+40]++ }, want: "primary header (LBA 1): CRC32 is"},
		{name: "backup header CRC", mod: func(b []byte) { b[511*ss+40]++ }, want: "backup header (LBA 511): CRC32 is"},
		{name: "backup missing", mod: func(b []byte) { clear(b[511*ss:]) }, want: "no backup header at the last LBA 511"},
		{name: "entries CRC", mod: func(b []byte) { b[2*ss+60]++ }, want: "primary entry array at LBA 2: CRC32 is"},
		{name: "backup entries CRC", mod: func(b []byte) { b[479*ss+60]++ }, want: "backup entry array at LBA 479: CRC32 is"},
		{name: "no MBR signature", mod: func(b []byte) { b[511] = 0 }, want: "no MBR signature"},
		{name: "no protective partition", mod: func(b []byte) { b[446+4] = 0x83 }, want: "no protective (type 0xEE)"},
		{name: "my LBA", fix: true, mod: func(b []byte) { le.PutUint64(b[ss+24:], 2) }, want: "primary header (LBA 1) says it is at LBA 2"},
		{name: "alternate LBA", fix: true, mod: func(b []byte) { le.PutUint64(b[ss+32:], 510) }, want: "backup header at LBA 510, but the disk's last LBA is 511"},
		{name: "backup alternate", fix: true, mod: func(b []byte) { le.PutUint64(b[511*ss+32:], 2) }, want: "with its primary at LBA 2"},
		{name: "usable range", fix: true, mod: func(b []byte) { le.PutUint64(b[ss+48:], 511) }, want: "usable range LBA 34-511"},
		{name: "headers disagree", fix: true, mod: func(b []byte) { b[511*ss+56]++ }, want: "disagrees with the primary"},
		{name: "entries overlap usable", fix: true, mod: func(b []byte) {
			le.PutUint64(b[ss+40:], 20)
			le.PutUint64(b[511*ss+40:], 20)
		}, want: "not between the header and the first usable LBA 20"},
		{name: "entry size", fix: true, mod: func(b []byte) { le.PutUint32(b[ss+84:], 100) }, want: "entries must be 128*2^n"},
		{name: "huge array", fix: true, mod: func(b []byte) { le.PutUint32(b[ss+80:], 1<<30) }, want: "1 byte to 4 MiB"},
		{name: "overlap", fix: true, mod: func(b []byte) { entry(b, 5, func(e []byte) { le.PutUint64(e[32:], 95) }) }, want: "partitions 1 (LBA 64-95) and 5 (LBA 95-160) overlap"},
		{name: "nested overlap", fix: true, mod: func(b []byte) { entry(b, 1, func(e []byte) { le.PutUint64(e[40:], 200) }) }, want: "partitions 1 (LBA 64-200) and 5 (LBA 160-160) overlap"},
		{name: "past last usable", fix: true, mod: func(b []byte) { entry(b, 128, func(e []byte) { le.PutUint64(e[40:], 479) }) }, want: "partition 128 (LBA 240, 240 sectors) runs past the last usable LBA 478"},
		{name: "before first usable", fix: true, mod: func(b []byte) { entry(b, 1, func(e []byte) { le.PutUint64(e[32:], 33) }) }, want: "partition 1 starts at LBA 33, before the first usable LBA 34"},
		{name: "end before start", fix: true, mod: func(b []byte) { entry(b, 1, func(e []byte) { le.PutUint64(e[40:], 7) }) }, want: "partition 1 ends at LBA 7, before its start LBA 64"},
		{name: "huge end", fix: true, mod: func(b []byte) { entry(b, 1, func(e []byte) { le.PutUint64(e[40:], ^uint64(0)) }) }, want: "runs past the last usable"},
	}
	l := small(ss) // 512 sectors: partitions at 64-95, 160 and 240-367
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image(t, l)
			tc.mod(img)
			if tc.fix {
				fixCRCs(img, ss)
			}
			_, err := Decode(bytes.NewReader(img), ss, 512)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrNoGPT) != tc.noGPT || errors.Is(err, ErrInvalid) == tc.noGPT {
				t.Errorf("err %v: ErrNoGPT %v, ErrInvalid %v", err, errors.Is(err, ErrNoGPT), errors.Is(err, ErrInvalid))
			}
		})
	}

	// Sizes that disagree with the image: a disk that grew after
	// partitioning, and an image shorter than the disk claims.
	img := image(t, l)
	if _, err := Decode(bytes.NewReader(append(img, make([]byte, ss)...)), ss, 513); err == nil || !strings.Contains(err.Error(), "disk resized") {
		t.Errorf("grown disk: %v", err)
	}
	if _, err := Decode(bytes.NewReader(img[:400*ss]), ss, 512); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated image: %v", err)
	}
	if _, err := Decode(bytes.NewReader(img), 4096, 64); !errors.Is(err, ErrNoGPT) {
		t.Errorf("512-byte GPT read as 4096: %v", err)
	}
}

// A table from another tool may use a different entry count; Decode reads
// it but Encode only writes 128 entries.
func TestDecodeOtherEntryCount(t *testing.T) {
	le := binary.LittleEndian
	l := small(512)
	img := image(t, l)
	for _, lba := range []int{1, 511} {
		le.PutUint32(img[lba*512+80:], 4) // entries 1..4 remain, 5 and 128 fall off
	}
	fixCRCs(img, 512)
	got, err := Decode(bytes.NewReader(img), 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Parts) != 1 || got.Parts[0] != l.Parts[0] {
		t.Errorf("parts %+v", got.Parts)
	}
}
