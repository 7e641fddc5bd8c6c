package partition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needReferees skips the test when one of the referee tools is missing,
// except where referees are required (CI=true, or LM_REQUIRE_REFEREES=1,
// which make unit sets): there a referee that cannot run is a failure, not
// a silent pass.
func needReferees(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install gdisk fdisk, or make deps): %v", tool, err)
			if os.Getenv("CI") == "true" || os.Getenv("LM_REQUIRE_REFEREES") == "1" {
				t.Fatalf("referee required (CI=true or LM_REQUIRE_REFEREES=1): %s", msg)
			}
			t.Skip(msg)
		}
	}
}

// referee checks the GPT on path (an image file or a block device) with
// sgdisk and sfdisk, which share no code with this package or each other.
// Image files are read as 512-byte sectors by both tools, so 4096-byte
// layouts are refereed on a loop device (kernel_test.go).
func referee(t *testing.T, path string, l Layout) {
	t.Helper()
	needReferees(t, "sgdisk", "sfdisk")
	out, err := exec.Command("sgdisk", "-v", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s: %v\n%s", path, err, out)
	}

	out, err = exec.Command("sfdisk", "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", path, err)
	}
	var doc struct {
		PT struct {
			Label      string
			ID         string
			FirstLBA   uint64
			LastLBA    uint64
			SectorSize uint32
			Partitions []struct {
				Node  string
				Start uint64
				Size  uint64
				Type  string
				UUID  string
				Name  string
				Attrs string
			}
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("sfdisk --json %s: %v\n%s", path, err, out)
	}
	pt := doc.PT
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, l.DiskGUID.String()) || pt.SectorSize != l.SectorSize ||
		pt.FirstLBA != l.FirstUsableLBA() || pt.LastLBA != l.LastUsableLBA() {
		t.Errorf("sfdisk sees table %+v, want GPT %s, LBA %d-%d, %d-byte sectors", pt, l.DiskGUID, l.FirstUsableLBA(), l.LastUsableLBA(), l.SectorSize)
	}
	if len(pt.Partitions) != len(l.Parts) {
		t.Fatalf("sfdisk sees %d partitions, want %d:\n%s", len(pt.Partitions), len(l.Parts), out)
	}
	for i, p := range l.Parts {
		s := pt.Partitions[i]
		if s.Node != PartitionPath(path, p.Number) || s.Start != p.Start || s.Size != p.Sectors ||
			!strings.EqualFold(s.Type, p.Type.String()) || !strings.EqualFold(s.UUID, p.GUID.String()) || s.Name != p.Name {
			t.Errorf("sfdisk sees partition %+v, want %+v", s, p)
		}
	}
}

// TestRefereeImage writes planned layouts with Write into a sparse image
// that already holds another GPT and a filesystem signature, then has the
// referees read it.
func TestRefereeImage(t *testing.T) {
	needReferees(t, "sgdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300*mib); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-n", "1:0:+100M", "-n", "2:0:0", img).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	// An ext4 magic where our root partition will start.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x53, 0xEF}, 258*mib+1024+0x38); err != nil {
		t.Fatal(err)
	}
	f.Close()

	l, err := PlanInstall(300*mib, 512, 16*mib, &counting{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(img, l); err != nil {
		t.Fatal(err)
	}
	referee(t, img, l)

	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[258*mib:259*mib], make([]byte, mib)) {
		t.Error("old signature at the root partition's start survived")
	}
	got, err := Decode(bytes.NewReader(b), 512, l.DiskSectors)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != l.DiskGUID || len(got.Parts) != 3 {
		t.Errorf("decoded %+v", got)
	}

	if err := Write(img, Layout{SectorSize: 512, DiskSectors: l.DiskSectors - 1, Parts: nil}); err == nil || !strings.Contains(err.Error(), "plan again") {
		t.Errorf("size mismatch: %v", err)
	}
}
