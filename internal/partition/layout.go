// Package partition owns partitioning a whole target disk for an install:
// planning the GPT layout (pure), encoding and decoding GPT (pure, fuzzed),
// writing it to the device and making the kernel see the new partitions.
//
// GPT is written here rather than by a library or by sgdisk so that the
// parser that reads whatever is on a user's disk is ours to fuzz, and so the
// plan shown before anything happens is the exact bytes that get written.
package partition

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/dustin/go-humanize"
)

// ErrTooSmall is wrapped by PlanInstall when the disk cannot hold the
// install, so callers can map it to the same exit code as a small target
// partition.
var ErrTooSmall = errors.New("disk too small")

const (
	mib = 1 << 20

	// The entry array is always 128 entries of 128 bytes: the minimum
	// the UEFI specification allows (16 KiB), and what every
	// partitioning tool writes, so other tools never need to move it.
	numEntries   = 128
	entrySize    = 128
	entriesBytes = numEntries * entrySize
	nameUnits    = 36 // UTF-16 code units in an entry's name field

	biosBootBytes = 1 * mib
)

// espBytes is the EFI system partition's size. FAT32 needs at least 65525
// clusters and a cluster is at least a sector, so on 4096-byte sectors 256
// MiB is too few (mkfs.fat warns and some firmware would read it as FAT16);
// 260 MiB is the size Windows uses on such disks for the same reason.
func espBytes(sectorSize uint32) uint64 {
	if sectorSize >= 4096 {
		return 260 * mib
	}
	return 256 * mib
}

// Part is one GPT partition.
type Part struct {
	Number  int    // 1-based; the entry index plus one, and the kernel's partition number
	Name    string // GPT partition name, at most 36 UTF-16 code units
	Type    GUID   // partition type GUID
	GUID    GUID   // unique partition GUID
	Start   uint64 // first LBA
	Sectors uint64 // length in LBAs
	Attrs   uint64
}

// End is the last LBA of the partition (inclusive, as GPT stores it).
func (p Part) End() uint64 { return p.Start + p.Sectors - 1 }

// Layout is a whole-disk GPT. It always describes a table of 128 entries of
// 128 bytes starting at LBA 2, whatever the sector size.
type Layout struct {
	DiskGUID    GUID
	SectorSize  uint32
	DiskSectors uint64
	Parts       []Part
}

// Bytes is the size of the disk the layout was made for.
func (l Layout) Bytes() uint64 { return l.DiskSectors * uint64(l.SectorSize) }

// EntrySectors is how many sectors one copy of the entry array takes.
func (l Layout) EntrySectors() uint64 { return entrySectors(l.SectorSize) }

// FirstUsableLBA is the first LBA after the primary header and entries.
func (l Layout) FirstUsableLBA() uint64 { return 2 + l.EntrySectors() }

// LastUsableLBA is the last LBA before the backup entries and header.
func (l Layout) LastUsableLBA() uint64 { return l.DiskSectors - 2 - l.EntrySectors() }

// Part returns partition n, if the layout has it.
func (l Layout) Part(n int) (Part, bool) {
	for _, p := range l.Parts {
		if p.Number == n {
			return p, true
		}
	}
	return Part{}, false
}

func entrySectors(sectorSize uint32) uint64 {
	return (entriesBytes + uint64(sectorSize) - 1) / uint64(sectorSize)
}

func checkSectorSize(ss uint32) error {
	if ss < 512 || ss > 65536 || ss&(ss-1) != 0 {
		return fmt.Errorf("sector size %d is not a power of two between 512 and 65536", ss)
	}
	return nil
}

// Validate checks that l can be written as a GPT: sane geometry, and
// partitions numbered 1..128 without duplicates, inside the usable range and
// not overlapping.
func (l Layout) Validate() error {
	if err := checkSectorSize(l.SectorSize); err != nil {
		return err
	}
	if l.DiskSectors > math.MaxUint64/uint64(l.SectorSize) {
		return fmt.Errorf("disk of %d sectors of %d bytes is larger than 2^64 bytes", l.DiskSectors, l.SectorSize)
	}
	if min := 4 + 2*l.EntrySectors(); l.DiskSectors < min {
		return fmt.Errorf("disk of %d sectors is too small for a GPT (needs at least %d sectors of %d bytes)", l.DiskSectors, min, l.SectorSize)
	}
	seen := make(map[int]bool)
	for _, p := range l.Parts {
		if p.Number < 1 || p.Number > numEntries {
			return fmt.Errorf("partition number %d is outside 1..%d", p.Number, numEntries)
		}
		if seen[p.Number] {
			return fmt.Errorf("partition number %d appears twice", p.Number)
		}
		seen[p.Number] = true
		if p.Type.IsZero() {
			return fmt.Errorf("partition %d has the zero type GUID, which GPT reads as an unused entry", p.Number)
		}
		if strings.ContainsRune(p.Name, 0) {
			return fmt.Errorf("partition %d: name %q contains NUL, which ends a GPT name", p.Number, p.Name)
		}
		if n := len(utf16.Encode([]rune(p.Name))); n > nameUnits {
			return fmt.Errorf("partition %d: name %q is %d UTF-16 units, GPT holds %d", p.Number, p.Name, n, nameUnits)
		}
	}
	return checkExtents(l.Parts, l.FirstUsableLBA(), l.LastUsableLBA())
}

// checkExtents is shared by Validate and Decode: every partition lies in
// [first, last] and no two share an LBA.
func checkExtents(parts []Part, first, last uint64) error {
	for _, p := range parts {
		if p.Sectors == 0 {
			return fmt.Errorf("partition %d is empty", p.Number)
		}
		if p.Start < first {
			return fmt.Errorf("partition %d starts at LBA %d, before the first usable LBA %d", p.Number, p.Start, first)
		}
		if p.Start > last || p.Sectors-1 > last-p.Start {
			return fmt.Errorf("partition %d (LBA %d, %d sectors) runs past the last usable LBA %d", p.Number, p.Start, p.Sectors, last)
		}
	}
	s := append([]Part(nil), parts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	for i := 1; i < len(s); i++ {
		if s[i].Start <= s[i-1].End() {
			return fmt.Errorf("partitions %d (LBA %d-%d) and %d (LBA %d-%d) overlap",
				s[i-1].Number, s[i-1].Start, s[i-1].End(), s[i].Number, s[i].Start, s[i].End())
		}
	}
	return nil
}

// rootType is the Discoverable Partitions root type for the architecture we
// run on, which is the architecture of the system being installed; unknown
// architectures get the generic Linux data type rather than a wrong root.
func rootType(goarch string) GUID {
	switch goarch {
	case "amd64":
		return TypeLinuxRoot
	case "arm64":
		return TypeLinuxRootARM64
	}
	return TypeLinuxData
}

// installRootName names the root partition PlanInstall makes; InstallLayout
// recognises a whole-disk install by it.
const installRootName = "livemigrate root"

// PlanInstall lays out a whole disk of diskBytes for an install: partition 1
// BIOS boot (1 MiB, where GRUB puts its core image on BIOS machines),
// partition 2 an EFI system partition (256 MiB, 260 MiB on 4096-byte
// sectors; formatted FAT32 by the caller),
// partition 3 the root partition from there to the last usable LBA. Starts
// are 1 MiB aligned; the root's end is not, because nothing gains from it
// and the user would lose up to a MiB. GUIDs are drawn from rnd
// (crypto/rand when nil).
func PlanInstall(diskBytes uint64, sectorSize uint32, minRootBytes uint64, rnd io.Reader) (Layout, error) {
	if err := checkSectorSize(sectorSize); err != nil {
		return Layout{}, fmt.Errorf("plan partitions: %w", err)
	}
	ss := uint64(sectorSize)
	if diskBytes%ss != 0 {
		return Layout{}, fmt.Errorf("plan partitions: disk size %d bytes is not a whole number of %d-byte sectors", diskBytes, ss)
	}
	l := Layout{SectorSize: sectorSize, DiskSectors: diskBytes / ss}
	align := mib / ss
	p1 := align
	p2 := p1 + biosBootBytes/ss
	p3 := p2 + espBytes(sectorSize)/ss
	rootSectors := max((minRootBytes+ss-1)/ss, 1)
	// The root must end at or before the last usable LBA, which leaves
	// the backup entries and header after it.
	needSectors := p3 + rootSectors + 1 + l.EntrySectors()
	if l.DiskSectors < needSectors {
		need := needSectors * ss
		return Layout{}, fmt.Errorf("plan partitions: %w: the disk is %s (%d bytes), the install needs %s (%d bytes): %s for the root filesystem plus %s for the BIOS boot and EFI system partitions and the GPT; choose a larger disk",
			ErrTooSmall, humanize.IBytes(diskBytes), diskBytes, humanize.IBytes(need), need,
			humanize.IBytes(rootSectors*ss), humanize.IBytes(need-rootSectors*ss))
	}
	rnd = randOrDefault(rnd)
	var err error
	if l.DiskGUID, err = newGUID(rnd); err != nil {
		return Layout{}, fmt.Errorf("plan partitions: %w", err)
	}
	l.Parts = []Part{
		{Number: 1, Name: "BIOS boot", Type: TypeBIOSBoot, Start: p1, Sectors: p2 - p1},
		{Number: 2, Name: "EFI System", Type: TypeESP, Start: p2, Sectors: p3 - p2},
		{Number: 3, Name: installRootName, Type: rootType(runtime.GOARCH), Start: p3, Sectors: l.LastUsableLBA() - p3 + 1},
	}
	for i := range l.Parts {
		if l.Parts[i].GUID, err = newGUID(rnd); err != nil {
			return Layout{}, fmt.Errorf("plan partitions: %w", err)
		}
	}
	if err := l.Validate(); err != nil {
		return Layout{}, fmt.Errorf("plan partitions: internal error: %w", err)
	}
	return l, nil
}

// Describe returns one line per partition for the plan shown before
// anything is written, e.g. "/dev/vdb1  1.0 MiB  BIOS boot". disk is the
// whole-disk path the partition paths derive from; empty gives "part 1".
func (l Layout) Describe(disk string) []string {
	type row struct{ path, size, what string }
	var rows []row
	wp, ws := 0, 0
	for _, p := range l.Parts {
		r := row{path: fmt.Sprintf("part %d", p.Number), size: humanize.IBytes(p.Sectors * uint64(l.SectorSize)), what: p.Name}
		if disk != "" {
			r.path = PartitionPath(disk, p.Number)
		}
		if r.what == "" {
			r.what = TypeName(p.Type)
		}
		wp, ws = max(wp, len(r.path)), max(ws, len(r.size))
		rows = append(rows, r)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%-*s  %*s  %s", wp, r.path, ws, r.size, r.what)
	}
	return out
}

// TypeName names the well-known partition types, or returns the GUID.
func TypeName(t GUID) string {
	switch t {
	case TypeBIOSBoot:
		return "BIOS boot"
	case TypeESP:
		return "EFI System"
	case TypeLinuxRoot:
		return "Linux root (x86-64)"
	case TypeLinuxRootARM64:
		return "Linux root (ARM64)"
	case TypeLinuxData:
		return "Linux filesystem"
	}
	return t.String()
}
