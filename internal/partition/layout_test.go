package partition

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// counting is a deterministic stand-in for crypto/rand.
type counting struct{ b byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		c.b++
		p[i] = c.b
	}
	return len(p), nil
}

func TestGUID(t *testing.T) {
	// On-disk bytes of the ESP type, as the UEFI specification lists them.
	disk := GUID{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}
	if TypeESP != disk {
		t.Fatalf("TypeESP bytes % x, want % x", TypeESP[:], disk[:])
	}
	if s := TypeESP.String(); s != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Errorf("String() = %s", s)
	}
	for _, g := range []GUID{TypeBIOSBoot, TypeLinuxRoot, TypeLinuxRootARM64, TypeLinuxData} {
		if back, err := ParseGUID(strings.ToUpper(g.String())); err != nil || back != g {
			t.Errorf("ParseGUID(String()) of %s = %s, %v", g, back, err)
		}
	}
	for _, bad := range []string{"", "c12a7328f81f11d2ba4b00a0c93ec93b", "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}", "c12a7328-f81f-11d2-ba4b-00a0c93ec93g", "c12a7328-f81f1-1d2-ba4b-00a0c93ec93b"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
	g, err := newGUID(&counting{})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.String(); s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Errorf("random GUID %s is not version 4, variant 10", s)
	}
	if _, err := newGUID(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Error("short random source accepted")
	}
}

func TestPlanInstall(t *testing.T) {
	const (
		mib512  = mib / 512
		mib4096 = mib / 4096
	)
	tests := []struct {
		name       string
		diskBytes  uint64
		ss         uint32
		minRoot    uint64
		wantRoot   [2]uint64 // start, sectors
		wantErr    string
		wantSmall  bool
		wantStarts [3]uint64
	}{
		{
			name: "300MiB/512", diskBytes: 300 * mib, ss: 512, minRoot: 10 * mib,
			wantStarts: [3]uint64{mib512, 2 * mib512, 258 * mib512},
			wantRoot:   [2]uint64{258 * mib512, 300*mib512 - 34 - 258*mib512 + 1},
		},
		{
			name: "300MiB/4096", diskBytes: 300 * mib, ss: 4096, minRoot: 10 * mib,
			wantStarts: [3]uint64{mib4096, 2 * mib4096, 262 * mib4096},
			wantRoot:   [2]uint64{262 * mib4096, 300*mib4096 - 6 - 262*mib4096 + 1},
		},
		{
			// Root exactly minRoot: 258 MiB of head, the root, and
			// 33 sectors of backup entries and header.
			name: "exact fit/512", diskBytes: 268*mib + 33*512, ss: 512, minRoot: 10 * mib,
			wantStarts: [3]uint64{mib512, 2 * mib512, 258 * mib512},
			wantRoot:   [2]uint64{258 * mib512, 10 * mib512},
		},
		{
			name: "exact fit/4096", diskBytes: 272*mib + 5*4096, ss: 4096, minRoot: 10 * mib,
			wantStarts: [3]uint64{mib4096, 2 * mib4096, 262 * mib4096},
			wantRoot:   [2]uint64{262 * mib4096, 10 * mib4096},
		},
		{name: "one sector short/512", diskBytes: 268*mib + 32*512, ss: 512, minRoot: 10 * mib, wantSmall: true,
			wantErr: "the disk is 268 MiB (281034752 bytes), the install needs 268 MiB (281035264 bytes)"},
		{name: "one sector short/4096", diskBytes: 272*mib + 4*4096, ss: 4096, minRoot: 10 * mib, wantSmall: true,
			wantErr: "(285229056 bytes), the install needs 272 MiB (285233152 bytes)"},
		{name: "tiny disk", diskBytes: 64 * mib, ss: 512, minRoot: 1 << 30, wantSmall: true,
			wantErr: "the disk is 64 MiB (67108864 bytes), the install needs 1.3 GiB (1344291328 bytes): 1.0 GiB for the root filesystem plus 258 MiB"},
		{name: "odd size", diskBytes: 300*mib + 100, ss: 512, wantErr: "not a whole number of 512-byte sectors"},
		{name: "bad sector size", diskBytes: 300 * mib, ss: 1000, wantErr: "sector size 1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := PlanInstall(tc.diskBytes, tc.ss, tc.minRoot, &counting{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if errors.Is(err, ErrTooSmall) != tc.wantSmall {
					t.Errorf("errors.Is(err, ErrTooSmall) = %v", !tc.wantSmall)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.DiskSectors*uint64(l.SectorSize) != tc.diskBytes || l.SectorSize != tc.ss {
				t.Errorf("geometry %d x %d", l.DiskSectors, l.SectorSize)
			}
			if len(l.Parts) != 3 {
				t.Fatalf("%d partitions", len(l.Parts))
			}
			align := uint64(mib) / uint64(tc.ss)
			wantType := []GUID{TypeBIOSBoot, TypeESP, TypeLinuxRoot}
			for i, p := range l.Parts {
				if p.Number != i+1 || p.Start != tc.wantStarts[i] || p.Start%align != 0 || p.Type != wantType[i] {
					t.Errorf("partition %d: %+v", i+1, p)
				}
			}
			if p := l.Parts[0]; p.Sectors*uint64(tc.ss) != mib || p.Name != "BIOS boot" {
				t.Errorf("BIOS boot: %+v", p)
			}
			if p := l.Parts[1]; p.Sectors*uint64(tc.ss) != map[uint32]uint64{512: 256 * mib, 4096: 260 * mib}[tc.ss] || p.Name != "EFI System" {
				t.Errorf("ESP: %+v", p)
			}
			root := l.Parts[2]
			if root.Start != tc.wantRoot[0] || root.Sectors != tc.wantRoot[1] || root.End() != l.LastUsableLBA() {
				t.Errorf("root start %d sectors %d end %d, want %v ending at last usable LBA %d", root.Start, root.Sectors, root.End(), tc.wantRoot, l.LastUsableLBA())
			}
			if root.Sectors*uint64(tc.ss) < tc.minRoot {
				t.Errorf("root %d bytes < min %d", root.Sectors*uint64(tc.ss), tc.minRoot)
			}
			seen := map[GUID]bool{l.DiskGUID: true}
			for _, p := range l.Parts {
				if seen[p.GUID] {
					t.Errorf("GUID %s repeated", p.GUID)
				}
				seen[p.GUID] = true
			}
			again, _ := PlanInstall(tc.diskBytes, tc.ss, tc.minRoot, &counting{})
			if again.DiskGUID != l.DiskGUID || again.Parts[2].GUID != root.GUID {
				t.Error("same random source gave different GUIDs")
			}
		})
	}
}

func TestPlanInstallCryptoRand(t *testing.T) {
	a, err := PlanInstall(300*mib, 512, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := PlanInstall(300*mib, 512, 0, nil)
	if a.DiskGUID == b.DiskGUID || a.DiskGUID.IsZero() {
		t.Errorf("crypto/rand GUIDs %s, %s", a.DiskGUID, b.DiskGUID)
	}
}

func TestDescribe(t *testing.T) {
	l, err := PlanInstall(20<<30, 512, 1<<30, &counting{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/dev/vdb1  1.0 MiB  BIOS boot",
		"/dev/vdb2  256 MiB  EFI System",
		"/dev/vdb3   20 GiB  livemigrate root",
	}
	if got := l.Describe("/dev/vdb"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Describe:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	l.Parts[2].Name = ""
	if got := l.Describe(""); !strings.HasPrefix(got[0], "part 1  ") || !strings.HasSuffix(got[2], "Linux root (x86-64)") {
		t.Errorf("Describe without disk or name: %q", got)
	}
}

func TestValidate(t *testing.T) {
	base := func() Layout {
		return Layout{SectorSize: 512, DiskSectors: 1000, Parts: []Part{
			{Number: 1, Type: TypeLinuxData, Start: 34, Sectors: 100},
			{Number: 2, Type: TypeLinuxData, Start: 134, Sectors: 100},
		}}
	}
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*Layout)
		want string
	}{
		{"duplicate", func(l *Layout) { l.Parts[1].Number = 1 }, "appears twice"},
		{"number 0", func(l *Layout) { l.Parts[0].Number = 0 }, "outside 1..128"},
		{"number 129", func(l *Layout) { l.Parts[0].Number = 129 }, "outside 1..128"},
		{"overlap", func(l *Layout) { l.Parts[1].Start = 133 }, "partitions 1 (LBA 34-133) and 2 (LBA 133-232) overlap"},
		{"before first usable", func(l *Layout) { l.Parts[0].Start = 33 }, "before the first usable LBA 34"},
		{"past last usable", func(l *Layout) { l.Parts[1].Sectors = 966 - 134 + 2 }, "past the last usable LBA 966"},
		{"wrapping", func(l *Layout) { l.Parts[1].Sectors = ^uint64(0) }, "past the last usable"},
		{"empty", func(l *Layout) { l.Parts[1].Sectors = 0 }, "partition 2 is empty"},
		{"zero type", func(l *Layout) { l.Parts[0].Type = GUID{} }, "zero type GUID"},
		{"long name", func(l *Layout) { l.Parts[0].Name = strings.Repeat("x", 37) }, "37 UTF-16 units"},
		{"NUL", func(l *Layout) { l.Parts[0].Name = "a\x00b" }, "contains NUL"},
		{"sector size", func(l *Layout) { l.SectorSize = 520 }, "sector size 520"},
		{"tiny disk", func(l *Layout) { l.DiskSectors = 67; l.Parts = nil }, "too small for a GPT"},
	}
	for _, tc := range tests {
		l := base()
		tc.mod(&l)
		if err := l.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// 36 UTF-16 units fit, counting a surrogate pair as two.
	l := base()
	l.Parts[0].Name = strings.Repeat("é", 34) + "😀"
	if err := l.Validate(); err != nil {
		t.Error(err)
	}
	l.Parts[0].Name += "x"
	if err := l.Validate(); err == nil {
		t.Error("37 units with a surrogate pair accepted")
	}
}

func TestPartitionPath(t *testing.T) {
	for _, tc := range []struct {
		disk string
		want string
	}{
		{"/dev/sdb", "/dev/sdb3"},
		{"/dev/vdb", "/dev/vdb3"},
		{"/dev/xvda", "/dev/xvda3"},
		{"/dev/nvme0n1", "/dev/nvme0n1p3"},
		{"/dev/loop0", "/dev/loop0p3"},
		{"/dev/loop12", "/dev/loop12p3"},
		{"/dev/mmcblk0", "/dev/mmcblk0p3"},
		{"/dev/md127", "/dev/md127p3"},
		{"/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001", "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part3"},
	} {
		if got := PartitionPath(tc.disk, 3); got != tc.want {
			t.Errorf("PartitionPath(%s, 3) = %s, want %s", tc.disk, got, tc.want)
		}
	}
	if got := PartitionPath("/dev/sda", 12); got != "/dev/sda12" {
		t.Errorf("two-digit number: %s", got)
	}
}

func TestInstallLayout(t *testing.T) {
	l, err := PlanInstall(8<<30, 512, 1<<30, &counting{})
	if err != nil {
		t.Fatal(err)
	}
	if esp, root, ok := InstallLayout(l); !ok || esp != 2 || root != 3 {
		t.Errorf("PlanInstall's own table: esp %d root %d ok %v", esp, root, ok)
	}
	renamed := l
	renamed.Parts = append([]Part(nil), l.Parts...)
	renamed.Parts[2].Name = "root"
	if _, _, ok := InstallLayout(renamed); ok {
		t.Error("a root partition not named by livemigrate taken for a whole-disk install")
	}
	four := l
	four.Parts = append(append([]Part(nil), l.Parts...), Part{Number: 4, Type: TypeLinuxData})
	if _, _, ok := InstallLayout(four); ok {
		t.Error("a table with a fourth partition taken for a whole-disk install")
	}
	if _, _, ok := InstallLayout(Layout{}); ok {
		t.Error("an empty table taken for a whole-disk install")
	}
}
