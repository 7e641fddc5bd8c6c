package mdraid

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSyncCompleted(t *testing.T) {
	tests := []struct {
		in      string
		want    *Progress
		wantErr bool
	}{
		{"none", nil, false},
		{"none\n", nil, false},
		{"0 / 1736704", &Progress{0, 1736704}, false},
		{"868352 / 1736704\n", &Progress{868352, 1736704}, false},
		{"10737418240 / 10737418240", &Progress{10737418240, 10737418240}, false},
		{"delayed", &Progress{}, false},
		{"pending", &Progress{}, false},
		{"12 / 10", nil, true},
		{"12", nil, true},
		{"a / 10", nil, true},
		{"1 / b", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseSyncCompleted(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseSyncCompleted(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSyncCompleted(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseSpeedLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    SpeedLimit
		wantErr bool
	}{
		{"1000 (system)", SpeedLimit{1000, false}, false},
		{"200000 (local)\n", SpeedLimit{200000, true}, false},
		{"5000", SpeedLimit{5000, false}, false},
		{"", SpeedLimit{}, true},
		{"x (local)", SpeedLimit{}, true},
		{"10 (other)", SpeedLimit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseSpeedLimit(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSpeedLimit(%q) = %+v, %v; want %+v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseSlotStatesDev(t *testing.T) {
	if n, err := ParseSlot("none"); err != nil || n != -1 {
		t.Errorf("ParseSlot(none) = %d, %v", n, err)
	}
	if n, err := ParseSlot("1\n"); err != nil || n != 1 {
		t.Errorf("ParseSlot(1) = %d, %v", n, err)
	}
	for _, bad := range []string{"", "-1", "x"} {
		if _, err := ParseSlot(bad); err == nil {
			t.Errorf("ParseSlot(%q) accepted", bad)
		}
	}
	if got := ParseStates("in_sync,write_mostly\n"); !reflect.DeepEqual(got, []string{"in_sync", "write_mostly"}) {
		t.Errorf("ParseStates = %q", got)
	}
	if got := ParseStates(""); got != nil {
		t.Errorf("ParseStates(empty) = %q", got)
	}
	if maj, min, err := ParseDevNumber("253:1\n"); err != nil || maj != 253 || min != 1 {
		t.Errorf("ParseDevNumber = %d:%d %v", maj, min, err)
	}
	for _, bad := range []string{"", "253", "a:1", "1:b", "1:2:3"} {
		if _, _, err := ParseDevNumber(bad); err == nil {
			t.Errorf("ParseDevNumber(%q) accepted", bad)
		}
	}
}

func TestNameOf(t *testing.T) {
	for in, want := range map[string]string{"/dev/md127": "md127", "md0": "md0", "/dev/md/127": "md127"} {
		if got, err := NameOf(in); err != nil || got != want {
			t.Errorf("NameOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/dev/sda", "mdx", "/dev/md-1"} {
		if _, err := NameOf(bad); err == nil {
			t.Errorf("NameOf(%q) accepted", bad)
		}
	}
}

// fakeArray writes a sysfs tree for md127 recovering onto vdb, with the live
// leg dm-1 in sync, as the kernel shows it mid-migration.
func fakeArray(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w := func(rel, v string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("block/md127/dev", "9:127")
	w("block/md127/size", "1736704")
	md := "block/md127/md/"
	w(md+"level", "raid1")
	w(md+"metadata_version", "none")
	w(md+"array_state", "clean")
	w(md+"raid_disks", "2")
	w(md+"component_size", "868352")
	w(md+"degraded", "1")
	w(md+"sync_action", "recover")
	w(md+"sync_completed", "434176 / 1736704")
	w(md+"sync_speed", "51234")
	w(md+"sync_speed_min", "200000 (local)")
	w(md+"sync_speed_max", "200000 (system)")
	w("devices/virtual/block/dm-1/dev", "253:1")
	w("devices/pci/virtio2/block/vdb/dev", "254:16")
	w(md+"dev-dm-1/state", "in_sync")
	w(md+"dev-dm-1/slot", "0")
	w(md+"dev-dm-1/size", "868352")
	w(md+"dev-dm-1/recovery_start", "none")
	w(md+"dev-vdb/state", "spare")
	w(md+"dev-vdb/slot", "1")
	w(md+"dev-vdb/size", "2097152")
	w(md+"dev-vdb/recovery_start", "434176")
	if err := os.Symlink("../../../../devices/virtual/block/dm-1", filepath.Join(root, md, "dev-dm-1/block")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../devices/pci/virtio2/block/vdb", filepath.Join(root, md, "dev-vdb/block")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadRecovering(t *testing.T) {
	root := fakeArray(t)
	a, err := Sys{Root: root}.Read("md127")
	if err != nil {
		t.Fatal(err)
	}
	if a.Level != "raid1" || a.RaidDisks != 2 || a.Degraded != 1 || a.Metadata != "none" {
		t.Errorf("array header = %+v", a)
	}
	if a.Major != 9 || a.Minor != 127 || a.SizeBytes != 1736704*512 || a.ComponentKiB != 868352 {
		t.Errorf("sizes = %d:%d %d %d", a.Major, a.Minor, a.SizeBytes, a.ComponentKiB)
	}
	if !a.Recovering() || a.SyncCompleted == nil || a.SyncCompleted.Fraction() != 0.25 {
		t.Errorf("recovery = %v %+v", a.SyncAction, a.SyncCompleted)
	}
	if a.SpeedMin != (SpeedLimit{200000, true}) || a.SpeedMax.Local {
		t.Errorf("speed = %+v %+v", a.SpeedMin, a.SpeedMax)
	}
	if len(a.Members) != 2 {
		t.Fatalf("members = %+v", a.Members)
	}
	live, tgt := a.Members[0], a.Members[1]
	if live.Name != "dm-1" || !live.InSync() || live.Rebuilding() || live.Major != 253 || live.Minor != 1 {
		t.Errorf("live leg = %+v", live)
	}
	if tgt.Name != "vdb" || tgt.InSync() || !tgt.Rebuilding() || tgt.RecoveryStart != 434176 || tgt.Slot != 1 {
		t.Errorf("target = %+v", tgt)
	}
	if m, ok := a.MemberByDev(254, 16); !ok || m.Name != "vdb" {
		t.Errorf("MemberByDev = %+v %v", m, ok)
	}
	// The live leg is smaller, so it bounds growth until it is failed.
	if n, err := MaxComponentKiB(a); err != nil || n != 868352 {
		t.Errorf("MaxComponentKiB = %d, %v", n, err)
	}
	a.Members[0].States = []string{"faulty"}
	if n, err := MaxComponentKiB(a); err != nil || n != 2097152 {
		t.Errorf("MaxComponentKiB after fail = %d, %v", n, err)
	}
}

// A member md removes while Read runs is listed by ReadDir and gone when its
// files are read; a dangling dev-X link stands in for that directory here.
func TestReadSkipsMemberRemovedMeanwhile(t *testing.T) {
	root := fakeArray(t)
	md := filepath.Join(root, "block/md127/md")
	if err := os.Symlink("dev-removed-meanwhile", filepath.Join(md, "dev-dm-0")); err != nil {
		t.Fatal(err)
	}
	a, err := Sys{Root: root}.Read("md127")
	if err != nil {
		t.Fatalf("Read with a member removed meanwhile: %v", err)
	}
	if len(a.Members) != 2 || a.Members[0].Name != "dm-1" || a.Members[1].Name != "vdb" {
		t.Errorf("members = %+v", a.Members)
	}
	// A member whose state file is missing while its directory stays is
	// not a race but a broken tree: that is still an error.
	if err := os.Remove(filepath.Join(md, "dev-vdb/state")); err != nil {
		t.Fatal(err)
	}
	if _, err := (Sys{Root: root}).Read("md127"); err == nil {
		t.Error("want an error for a member without a state file")
	}
}

// A leg md is removing answers ENODEV from its attributes while its
// directory lingers (seen on an mdadm-built md7 under load: "read
// /sys/block/md7/md/dev-dm-1/state: no such device", which ended a
// migration at grow-array). It is not a member any more.
func TestReadSkipsMemberAnsweringENODEV(t *testing.T) {
	root := fakeArray(t)
	state := filepath.Join(root, "block/md127/md/dev-dm-1/state")
	for _, file := range []string{"state", "slot", "size"} {
		t.Run(file, func(t *testing.T) {
			gone := filepath.Join(root, "block/md127/md/dev-dm-1", file)
			readFile = func(p string) ([]byte, error) {
				if p == gone {
					return nil, &os.PathError{Op: "read", Path: p, Err: unix.ENODEV}
				}
				return os.ReadFile(p)
			}
			defer func() { readFile = os.ReadFile }()
			a, err := Sys{Root: root}.Read("md127")
			if file != "state" {
				// slot and size are optional reads: the member is
				// still listed, from what its state said.
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read with a member answering ENODEV: %v", err)
			}
			if len(a.Members) != 1 || a.Members[0].Name != "vdb" {
				t.Errorf("members = %+v, want only vdb", a.Members)
			}
		})
	}
	// Any other read error of a member is still an error.
	readFile = func(p string) ([]byte, error) {
		if p == state {
			return nil, &os.PathError{Op: "read", Path: p, Err: unix.EIO}
		}
		return os.ReadFile(p)
	}
	defer func() { readFile = os.ReadFile }()
	if _, err := (Sys{Root: root}).Read("md127"); err == nil {
		t.Error("want an error for EIO from a member's state")
	}
}

func TestReadNotArray(t *testing.T) {
	if _, err := (Sys{Root: t.TempDir()}).Read("md127"); err == nil {
		t.Fatal("want error for a missing array")
	}
}

func TestMaxComponentAbove4TiB(t *testing.T) {
	const fiveTiBKiB = 5 << 30
	a := &Array{Members: []Member{{Name: "loop0", Slot: 0, States: []string{"in_sync"}, SizeKiB: fiveTiBKiB}}}
	if n, err := MaxComponentKiB(a); err != nil || n != fiveTiBKiB {
		t.Errorf("MaxComponentKiB = %d, %v", n, err)
	}
	if _, err := MaxComponentKiB(&Array{}); err == nil {
		t.Error("want error with no members")
	}
}

func FuzzParseSyncCompleted(f *testing.F) {
	for _, s := range []string{"none", "0 / 10", "5 / 5\n", "delayed", " / ", "18446744073709551615 / 18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSyncCompleted(s)
		if err == nil && p != nil && p.Done > p.Total {
			t.Fatalf("%q: done %d > total %d", s, p.Done, p.Total)
		}
	})
}

func FuzzParseSpeedLimit(f *testing.F) {
	for _, s := range []string{"1000 (system)", "2 (local)", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseSpeedLimit(s) })
}

// mdstat's progress is finer than sync_completed (md moves that only at
// checkpoints): Read takes it from the array's own block of /proc/mdstat,
// and Copied prefers it unless it is behind.
func TestReadPositionFromMdstat(t *testing.T) {
	root := fakeArray(t)
	proc := t.TempDir()
	mdstat := `Personalities : [raid1]
md126 : active raid1 vdc[1] vdd[0]
      102400 blocks [2/1] [U_]
      [=>...................]  recovery =  9.0% (9216/102400) finish=0.1min speed=9216K/sec

md127 : active raid1 vdb[1] dm-1[0]
      868352 blocks [2/1] [U_]
      [=====>...............]  recovery = 27.5% (238796/868352) finish=0.2min speed=51234K/sec

unused devices: <none>
`
	if err := os.WriteFile(filepath.Join(proc, "mdstat"), []byte(mdstat), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Sys{Root: root, Proc: proc}.Read("md127")
	if err != nil {
		t.Fatal(err)
	}
	if a.Position == nil || *a.Position != (Progress{Done: 238796 * 2, Total: 868352 * 2}) {
		t.Fatalf("position = %+v", a.Position)
	}
	if c := a.Copied(); c != a.Position {
		t.Errorf("Copied = %+v, want the position %+v", c, a.Position)
	}
	// sync_completed ahead (a checkpoint just written, mdstat read first):
	// the larger wins.
	a.SyncCompleted = &Progress{Done: 600000, Total: 1736704}
	if c := a.Copied(); c != a.SyncCompleted {
		t.Errorf("Copied = %+v, want sync_completed", c)
	}
	// Without Proc, or without md127's block, there is no position.
	if b, _ := (Sys{Root: root}).Read("md127"); b.Position != nil || b.Copied() != b.SyncCompleted {
		t.Errorf("no proc: position %+v", b.Position)
	}
	if p := ParseMdstatProgress(mdstat, "md12"); p != nil {
		t.Errorf("md12 matched md127's or md126's block: %+v", p)
	}
	if p := ParseMdstatProgress(mdstat, "md126"); p == nil || p.Done != 9216*2 {
		t.Errorf("md126 = %+v", p)
	}
	if p := ParseMdstatProgress("md127 : active raid1 vdb[1] dm-1[0]\n      868352 blocks [2/2] [UU]\n", "md127"); p != nil {
		t.Errorf("no progress line: %+v", p)
	}
}
