package overlay

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// asStatusReply copies a DM_TABLE_LOAD buffer and rewrites each spec.next
// from "bytes from this spec" (load) to "bytes from data_start" (what a
// DM_TABLE_STATUS reply carries), so parseTargetSpecs can read it back.
func asStatusReply(t *testing.T, load []byte) []byte {
	t.Helper()
	buf := bytes.Clone(load)
	count := binary.NativeEndian.Uint32(buf[20:])
	data := buf[unix.SizeofDmIoctl:]
	off := 0
	for range count {
		next := int(binary.NativeEndian.Uint32(data[off+20:]))
		binary.NativeEndian.PutUint32(data[off+20:], uint32(off+next))
		off += next
	}
	if off != len(data) {
		t.Fatalf("specs end at %d, data is %d bytes", off, len(data))
	}
	return buf
}

func TestBuildTableLoad(t *testing.T) {
	targets := []Target{
		{Start: 0, Length: 2097152, Type: "snapshot", Params: "7:1 7:2 PO 8"}, // 12 bytes + NUL -> 16
		{Start: 2097152, Length: 8, Type: "linear", Params: "7:1 0"},          // 5 + NUL -> 8
		{Start: 2097160, Length: 16, Type: "zero", Params: ""},                // NUL -> 8
		{Start: 2097176, Length: 8, Type: "error", Params: "1234567"},         // exactly 8
	}
	buf, err := buildTableLoad("live-rw", false, targets)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	sizes := []int{40 + 16, 40 + 8, 40 + 8, 40 + 8}
	want := unix.SizeofDmIoctl
	for _, s := range sizes {
		want += s
	}
	if len(buf) != want {
		t.Fatalf("len = %d, want %d", len(buf), want)
	}
	for i, v := range []uint32{4, 0, 0} {
		if got := ne.Uint32(buf[4*i:]); got != v {
			t.Errorf("version[%d] = %d, want %d", i, got, v)
		}
	}
	if got := ne.Uint32(buf[12:]); got != uint32(want) {
		t.Errorf("data_size = %d, want %d", got, want)
	}
	if got := ne.Uint32(buf[16:]); got != unix.SizeofDmIoctl {
		t.Errorf("data_start = %d, want %d", got, unix.SizeofDmIoctl)
	}
	if got := ne.Uint32(buf[20:]); got != uint32(len(targets)) {
		t.Errorf("target_count = %d", got)
	}
	if got := ne.Uint32(buf[28:]); got != 0 {
		t.Errorf("flags = %#x, want 0", got)
	}
	if got := ne.Uint64(buf[40:]); got != 0 {
		t.Errorf("dev = %#x, want 0", got)
	}
	name := buf[48 : 48+128]
	if !bytes.Equal(name[:8], []byte("live-rw\x00")) || bytes.Count(name, []byte{0}) != 128-7 {
		t.Errorf("name field = %q", name)
	}
	if !bytes.Equal(buf[48+128:unix.SizeofDmIoctl], make([]byte, unix.SizeofDmIoctl-48-128)) {
		t.Error("uuid/data fields not zero")
	}

	off := unix.SizeofDmIoctl
	for i, tg := range targets {
		spec := buf[off : off+unix.SizeofDmTargetSpec]
		if got := ne.Uint64(spec[0:]); got != tg.Start {
			t.Errorf("target %d sector_start = %d, want %d", i, got, tg.Start)
		}
		if got := ne.Uint64(spec[8:]); got != tg.Length {
			t.Errorf("target %d length = %d, want %d", i, got, tg.Length)
		}
		if got := int32(ne.Uint32(spec[16:])); got != 0 {
			t.Errorf("target %d status = %d", i, got)
		}
		if got := ne.Uint32(spec[20:]); got != uint32(sizes[i]) {
			t.Errorf("target %d next = %d, want %d (relative to this spec)", i, got, sizes[i])
		}
		typ := make([]byte, 16)
		copy(typ, tg.Type)
		if !bytes.Equal(spec[24:40], typ) {
			t.Errorf("target %d target_type = %q, want %q", i, spec[24:40], typ)
		}
		params := buf[off+unix.SizeofDmTargetSpec : off+sizes[i]]
		if len(params)%8 != 0 {
			t.Errorf("target %d params area %d bytes, not 8-aligned", i, len(params))
		}
		if string(params[:len(tg.Params)]) != tg.Params || !bytes.Equal(params[len(tg.Params):], make([]byte, len(params)-len(tg.Params))) {
			t.Errorf("target %d params = %q, want %q NUL-padded", i, params, tg.Params)
		}
		if (off-unix.SizeofDmIoctl)%8 != 0 {
			t.Errorf("target %d spec at unaligned offset %d", i, off)
		}
		off += sizes[i]
	}

	reply := asStatusReply(t, buf)
	got, err := parseTargetSpecs(reply, ne.Uint32(reply[16:]), ne.Uint32(reply[12:]), ne.Uint32(reply[20:]))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, targets) {
		t.Errorf("round trip = %+v, want %+v", got, targets)
	}

	ro, err := buildTableLoad("live-rw", true, targets[:1])
	if err != nil {
		t.Fatal(err)
	}
	if got := ne.Uint32(ro[28:]); got != unix.DM_READONLY_FLAG {
		t.Errorf("read-only flags = %#x, want %#x", got, unix.DM_READONLY_FLAG)
	}
}

func TestBuildTableLoadLimits(t *testing.T) {
	one := []Target{{Length: 8, Type: "zero"}}
	if _, err := buildTableLoad(strings.Repeat("n", 127), false, one); err != nil {
		t.Errorf("127-byte name: %v", err)
	}
	if _, err := buildTableLoad("x", false, []Target{{Length: 8, Type: strings.Repeat("t", 15)}}); err != nil {
		t.Errorf("15-byte type: %v", err)
	}
	for _, c := range []struct {
		what    string
		name    string
		targets []Target
		want    string
	}{
		{"128-byte name", strings.Repeat("n", 128), one, "name"},
		{"empty name", "", one, "name"},
		{"slash in name", "a/b", one, "name"},
		{"16-byte type", "x", []Target{{Length: 8, Type: strings.Repeat("t", 16)}}, "type"},
		{"empty type", "x", []Target{{Length: 8}}, "type"},
		{"NUL in params", "x", []Target{{Length: 8, Type: "zero", Params: "a\x00b"}}, "NUL"},
		{"no targets", "x", nil, "no targets"},
	} {
		if _, err := buildTableLoad(c.name, false, c.targets); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.what, err, c.want)
		}
	}
}

func TestSnapshotParams(t *testing.T) {
	o, c := Dev{Major: 7, Minor: 1}, Dev{Major: 7, Minor: 2}
	for _, x := range []struct {
		opts SnapshotOptions
		want string
	}{
		{SnapshotOptions{Persistent: true, Overflow: true, ChunkSectors: 8}, "7:1 7:2 PO 8"},
		{SnapshotOptions{Persistent: true, ChunkSectors: 8}, "7:1 7:2 P 8"},
		{SnapshotOptions{ChunkSectors: 16}, "7:1 7:2 N 16"},
	} {
		got := snapshotParams(o, c, x.opts)
		if got != x.want {
			t.Errorf("snapshotParams(%+v) = %q, want %q", x.opts, got, x.want)
		}
		// What we load is what the table parser reads back.
		if _, _, _, _, err := ParseSnapshotTable(got); err != nil {
			t.Errorf("ParseSnapshotTable(%q): %v", got, err)
		}
	}
}

func TestCreateSnapshotOptsRejects(t *testing.T) {
	if _, err := CreateSnapshotOpts("x", "/dev/null", "/dev/null", SnapshotOptions{Overflow: true, ChunkSectors: 8}); err == nil || !strings.Contains(err.Error(), "persistent") {
		t.Errorf("overflow without persistence: %v", err)
	}
	if _, err := blockDevNumber("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("blockDevNumber(/dev/null): %v", err)
	}
}

func FuzzBuildTableLoad(f *testing.F) {
	f.Add("live-rw", "snapshot", "7:1 7:2 PO 8", "linear", "7:1 0", uint64(2097152), uint64(8))
	f.Add("x", "zero", "", "error", "1234567", uint64(1), uint64(1))
	f.Fuzz(func(t *testing.T, name, typ1, p1, typ2, p2 string, len1, len2 uint64) {
		targets := []Target{
			{Start: 0, Length: len1, Type: typ1, Params: p1},
			{Start: len1, Length: len2, Type: typ2, Params: p2},
		}
		buf, err := buildTableLoad(name, false, targets)
		if err != nil {
			return
		}
		if len(buf)%8 != 0 {
			t.Fatalf("buffer of %d bytes", len(buf))
		}
		reply := asStatusReply(t, buf)
		ne := binary.NativeEndian
		got, err := parseTargetSpecs(reply, ne.Uint32(reply[16:]), ne.Uint32(reply[12:]), ne.Uint32(reply[20:]))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, targets) {
			t.Errorf("round trip = %+v, want %+v", got, targets)
		}
	})
}

// A DM_LIST_VERSIONS reply as the kernel lays it out: records of u32 next,
// u32 version[3], the NUL-terminated name padded to 8 bytes; next counts
// from the record's start and is 0 on the last.
func TestParseTargetVersions(t *testing.T) {
	rec := func(name string, v [3]uint32, last bool) []byte {
		n := (16 + len(name) + 1 + 7) &^ 7
		b := make([]byte, n)
		if !last {
			binary.LittleEndian.PutUint32(b, uint32(n))
		}
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4+4*i:], x)
		}
		copy(b[16:], name)
		return b
	}
	head := make([]byte, 8)
	buf := append(append(append(head, rec("mirror", [3]uint32{1, 14, 0}, false)...), rec("snapshot", [3]uint32{1, 16, 0}, false)...), rec("linear", [3]uint32{1, 4, 0}, true)...)
	got, err := parseTargetVersions(buf, 8, uint32(len(buf)))
	if err != nil || len(got) != 3 || got["mirror"] != [3]uint32{1, 14, 0} || got["linear"] != [3]uint32{1, 4, 0} {
		t.Fatalf("parseTargetVersions = %v, %v", got, err)
	}
	bad := append([]byte(nil), buf...)
	binary.LittleEndian.PutUint32(bad[8:], 4) // next inside the record's own header
	if _, err := parseTargetVersions(bad, 8, uint32(len(bad))); err == nil {
		t.Error("a record pointing into itself was accepted")
	}
	if _, err := parseTargetVersions(buf, 8, uint32(len(buf)+1)); err == nil {
		t.Error("a reply longer than the buffer was accepted")
	}
}
