package overlay

import (
	"encoding/binary"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSnapshotStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    Usage
		wantErr bool
	}{
		{in: "1024/67108864 16", want: Usage{UsedSectors: 1024, TotalSectors: 67108864, MetadataSectors: 16}},
		{in: "  0/2097152 0\n", want: Usage{TotalSectors: 2097152}},
		{in: "2097152/2097152 4112", want: Usage{UsedSectors: 2097152, TotalSectors: 2097152, MetadataSectors: 4112}},
		{in: "Invalid", want: Usage{Invalid: true}},
		{in: "Overflow", want: Usage{Overflow: true}},
		{in: "Merge failed", want: Usage{MergeFailed: true}},
		{in: "Unknown", want: Usage{Unknown: true}},
		{in: "", wantErr: true},
		{in: "1024 16", wantErr: true},
		{in: "1024/ 16", wantErr: true},
		{in: "a/b c", wantErr: true},
		{in: "1/2 3 4", wantErr: true},
		{in: "-1/2 3", wantErr: true},
		{in: "invalid", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSnapshotStatus(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSnapshotStatus(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSnapshotStatus(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestUsageHelpers(t *testing.T) {
	u := Usage{UsedSectors: 25, TotalSectors: 100}
	if u.FreeSectors() != 75 || u.UsedFraction() != 0.25 || u.Failed() {
		t.Errorf("helpers of %+v: free %d fraction %v failed %v", u, u.FreeSectors(), u.UsedFraction(), u.Failed())
	}
	if f := (Usage{Overflow: true}).UsedFraction(); f != 1 {
		t.Errorf("overflowed snapshot fraction = %v, want 1", f)
	}
	if f := (Usage{}).UsedFraction(); f != 0 {
		t.Errorf("empty usage fraction = %v", f)
	}
}

func TestParseSnapshotTable(t *testing.T) {
	tests := []struct {
		in          string
		origin, cow string
		persistent  bool
		chunk       uint64
		wantErr     bool
	}{
		{in: "7:1 7:2 P 8", origin: "7:1", cow: "7:2", persistent: true, chunk: 8},
		{in: "7:1 7:2 PO 8", origin: "7:1", cow: "7:2", persistent: true, chunk: 8},
		{in: "7:1 252:0 N 16", origin: "7:1", cow: "252:0", chunk: 16},
		{in: "/dev/loop1 /dev/loop2 p 8", origin: "/dev/loop1", cow: "/dev/loop2", persistent: true, chunk: 8},
		{in: "7:1 7:2 P 8 1 discard_zeroes_cow", origin: "7:1", cow: "7:2", persistent: true, chunk: 8},
		{in: "7:1 7:2 P 8 2 discard_zeroes_cow discard_passdown_origin", origin: "7:1", cow: "7:2", persistent: true, chunk: 8},
		{in: "7:1 7:2 P 8 2 discard_zeroes_cow", wantErr: true},
		{in: "7:1 7:2 X 8", wantErr: true},
		{in: "7:1 7:2 P", wantErr: true},
		{in: "7:1 7:2 P eight", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		o, c, p, ch, err := ParseSnapshotTable(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSnapshotTable(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && (o != tt.origin || c != tt.cow || p != tt.persistent || ch != tt.chunk) {
			t.Errorf("ParseSnapshotTable(%q) = %q %q %v %d", tt.in, o, c, p, ch)
		}
	}
}

func TestParseZramMMStat(t *testing.T) {
	tests := []struct {
		in      string
		want    ZramMMStat
		wantErr bool
	}{
		{in: "       0        0        0        0        0        0        0        0        0\n"},
		{in: "4096 1024 8192 0 8192 1 0 0 0", want: ZramMMStat{OrigDataSize: 4096, ComprDataSize: 1024, MemUsedTotal: 8192, MemUsedMax: 8192, SamePages: 1}},
		{in: "1 2 3 4 5 6 7", want: ZramMMStat{1, 2, 3, 4, 5, 6, 7, 0, 0}},
		{in: "1 2 3 4 5 6 7 8 9 10", want: ZramMMStat{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{in: "1 2", wantErr: true},
		{in: "1 2 x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseZramMMStat(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseZramMMStat(%q) error = %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseZramMMStat(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// targetReply lays out a DM_TABLE_STATUS result the way dm-ioctl.c's
// retrieve_status does: spec, string, padding to 8; next counts from the
// start of the data area.
func targetReply(ts []Target) (buf []byte, start, size uint32) {
	buf = make([]byte, unix.SizeofDmIoctl, 4096)
	start = unix.SizeofDmIoctl
	for _, t := range ts {
		spec := make([]byte, unix.SizeofDmTargetSpec)
		binary.NativeEndian.PutUint64(spec[0:], t.Start)
		binary.NativeEndian.PutUint64(spec[8:], t.Length)
		copy(spec[24:], t.Type)
		specAt := len(buf)
		buf = append(buf, spec...)
		buf = append(buf, t.Params...)
		buf = append(buf, 0)
		for len(buf)%8 != 0 {
			buf = append(buf, 0)
		}
		binary.NativeEndian.PutUint32(buf[specAt+20:], uint32(len(buf))-start)
	}
	return buf, start, uint32(len(buf))
}

// The kernel's reply for an inactive table a device does not have: no
// targets, data_start past data_size (seen under kernel 6.1).
func TestParseTargetSpecsNoTable(t *testing.T) {
	got, err := parseTargetSpecs(make([]byte, 16384), 312, 305, 0)
	if err != nil || got != nil {
		t.Errorf("no table: %v, %v; want an empty table", got, err)
	}
}

func TestParseTargetSpecs(t *testing.T) {
	want := []Target{
		{Start: 0, Length: 2097152, Type: "snapshot", Params: "7:1 7:2 PO 8"},
		{Start: 2097152, Length: 8, Type: "linear", Params: "7:1 0"},
	}
	buf, start, size := targetReply(want)
	got, err := parseTargetSpecs(buf, start, size, uint32(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseTargetSpecs = %+v, want %+v", got, want)
	}
	if _, err := parseTargetSpecs(buf, start, size, 3); err == nil {
		t.Error("parseTargetSpecs with a count beyond the data: no error")
	}
	if _, err := parseTargetSpecs(buf[:100], start, size, 1); err == nil {
		t.Error("parseTargetSpecs with data beyond the buffer: no error")
	}
}
