package resize

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// HeadSize is how much of a device ParseSuperblock wants: enough to reach the
// btrfs superblock at 64 KiB, with room to spare.
const HeadSize = 128 << 10

// minHead is the least ParseSuperblock accepts: it covers the ext superblock,
// the last of the three to start. A device this small holds no filesystem
// worth growing.
const minHead = 2048

// Probe is what a superblock says about its filesystem.
type Probe struct {
	Type      FSType
	UUID      string // canonical lower-case 8-4-4-4-12
	Label     string
	BlockSize uint32
	Blocks    uint64 // filesystem size in its blocks
	Size      uint64 // bytes; Blocks*BlockSize except for btrfs, where it is total_bytes exactly

	Ext   ExtInfo   // zero unless Type is ext2, ext3 or ext4
	Btrfs BtrfsInfo // zero unless Type is btrfs
}

// ExtInfo holds the ext2/3/4 superblock fields that decide how, and how far,
// the filesystem can grow.
type ExtInfo struct {
	Features          ExtFeatures
	FirstDataBlock    uint32
	BlocksPerGroup    uint32
	InodesPerGroup    uint32
	ReservedGDTBlocks uint16
}

// BtrfsInfo identifies the device whose superblock was read within its
// filesystem, because BTRFS_IOC_RESIZE addresses devices by devid.
type BtrfsInfo struct {
	NumDevices    uint64
	DevID         uint64
	DevTotalBytes uint64 // this device's share of the filesystem
}

// ExtFeatures are the three ext feature words as stored on disk.
type ExtFeatures struct {
	Compat, Incompat, ROCompat uint32
}

// ext feature bits, from the on-disk format (e2fsprogs lib/ext2fs/ext2_fs.h).
const (
	extCompatHasJournal   = 0x0004
	extCompatResizeInode  = 0x0010
	extCompatSparseSuper2 = 0x0200
	extCompatStableInodes = 0x0800

	extIncompatFiletype   = 0x0002
	extIncompatRecover    = 0x0004
	extIncompatJournalDev = 0x0008
	extIncompatMetaBG     = 0x0010
	extIncompatExtents    = 0x0040
	extIncompat64Bit      = 0x0080
	extIncompatFlexBG     = 0x0200
	extIncompatCsumSeed   = 0x2000

	extROCompatSparseSuper  = 0x0001
	extROCompatLargeFile    = 0x0002
	extROCompatBtreeDir     = 0x0004
	extROCompatGdtCsum      = 0x0010
	extROCompatBigalloc     = 0x0200
	extROCompatMetadataCsum = 0x0400
)

func (f ExtFeatures) HasJournal() bool       { return f.Compat&extCompatHasJournal != 0 }
func (f ExtFeatures) ResizeInode() bool      { return f.Compat&extCompatResizeInode != 0 }
func (f ExtFeatures) SparseSuper2() bool     { return f.Compat&extCompatSparseSuper2 != 0 }
func (f ExtFeatures) MetaBG() bool           { return f.Incompat&extIncompatMetaBG != 0 }
func (f ExtFeatures) Is64Bit() bool          { return f.Incompat&extIncompat64Bit != 0 }
func (f ExtFeatures) FlexBG() bool           { return f.Incompat&extIncompatFlexBG != 0 }
func (f ExtFeatures) MetadataCsumSeed() bool { return f.Incompat&extIncompatCsumSeed != 0 }
func (f ExtFeatures) Bigalloc() bool         { return f.ROCompat&extROCompatBigalloc != 0 }
func (f ExtFeatures) MetadataCsum() bool     { return f.ROCompat&extROCompatMetadataCsum != 0 }
func (f ExtFeatures) GdtCsum() bool          { return f.ROCompat&extROCompatGdtCsum != 0 }
func (f ExtFeatures) StableInodes() bool     { return f.Compat&extCompatStableInodes != 0 }

// String lists the features this package cares about, in dumpe2fs spelling.
func (f ExtFeatures) String() string {
	var names []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{f.HasJournal(), "has_journal"},
		{f.ResizeInode(), "resize_inode"},
		{f.SparseSuper2(), "sparse_super2"},
		{f.MetaBG(), "meta_bg"},
		{f.Is64Bit(), "64bit"},
		{f.FlexBG(), "flex_bg"},
		{f.MetadataCsumSeed(), "metadata_csum_seed"},
		{f.Bigalloc(), "bigalloc"},
		{f.MetadataCsum(), "metadata_csum"},
	} {
		if x.on {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, " ")
}

// ParseSuperblock identifies the filesystem whose first bytes are head
// (ideally HeadSize of them) and reads its identity and size. It does no I/O.
// More than one valid superblock is an error: guessing which one is live
// could grow the wrong filesystem over the other.
func ParseSuperblock(head []byte) (Probe, error) {
	if len(head) < minHead {
		return Probe{}, fmt.Errorf("superblock area is %d bytes, need at least %d", len(head), minHead)
	}
	type parser struct {
		t     FSType
		match func([]byte) bool
		parse func([]byte) (Probe, error)
	}
	var found []Probe
	var errs []error
	for _, p := range []parser{
		{Ext4, matchExt, parseExt},
		{XFS, matchXFS, parseXFS},
		{Btrfs, matchBtrfs, parseBtrfs},
	} {
		if !p.match(head) {
			continue
		}
		pr, err := p.parse(head)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found = append(found, pr)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		var names []string
		for _, f := range found {
			names = append(names, string(f.Type))
		}
		return Probe{}, fmt.Errorf("several filesystem signatures (%s): refusing to guess; wipe the stale ones with wipefs",
			strings.Join(names, ", "))
	case len(errs) > 0:
		return Probe{}, errors.Join(errs...)
	}
	return Probe{}, ErrNoFilesystem
}

// ext2/3/4: the superblock starts at byte 1024, little-endian.
const (
	extSBOffset = 1024
	extMagic    = 0xEF53
)

func matchExt(h []byte) bool {
	return binary.LittleEndian.Uint16(h[extSBOffset+0x38:]) == extMagic
}

func parseExt(h []byte) (Probe, error) {
	sb := h[extSBOffset : extSBOffset+1024]
	le := binary.LittleEndian
	p := Probe{
		UUID:  formatUUID(sb[0x68:0x78]),
		Label: cString(sb[0x78:0x88]),
		Ext: ExtInfo{
			FirstDataBlock: le.Uint32(sb[0x14:]),
			BlocksPerGroup: le.Uint32(sb[0x20:]),
			InodesPerGroup: le.Uint32(sb[0x28:]),
		},
	}
	// Revision 0 superblocks end before the feature words; whatever bytes
	// follow are not features.
	if le.Uint32(sb[0x4C:]) >= 1 {
		p.Ext.Features = ExtFeatures{
			Compat:   le.Uint32(sb[0x5C:]),
			Incompat: le.Uint32(sb[0x60:]),
			ROCompat: le.Uint32(sb[0x64:]),
		}
		p.Ext.ReservedGDTBlocks = le.Uint16(sb[0xCE:])
	}
	f := p.Ext.Features
	if f.Incompat&extIncompatJournalDev != 0 {
		return Probe{}, errors.New("ext: external journal device, not a filesystem")
	}
	// ext4 caps blocks at 64 KiB (s_log_block_size 6).
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 {
		return Probe{}, fmt.Errorf("ext: block size 2^(10+%d) is out of range", logBS)
	}
	p.BlockSize = 1024 << logBS
	p.Blocks = uint64(le.Uint32(sb[0x04:]))
	if f.Is64Bit() {
		p.Blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	if p.Blocks == 0 || p.Ext.BlocksPerGroup == 0 || p.Ext.InodesPerGroup == 0 {
		return Probe{}, fmt.Errorf("ext: implausible geometry (%d blocks, %d blocks and %d inodes per group)",
			p.Blocks, p.Ext.BlocksPerGroup, p.Ext.InodesPerGroup)
	}
	// Same rule as blkid: the journal makes ext3, anything ext3 does not
	// know makes ext4.
	const ext3Incompat = extIncompatFiletype | extIncompatRecover | extIncompatMetaBG
	const ext3ROCompat = extROCompatSparseSuper | extROCompatLargeFile | extROCompatBtreeDir
	switch {
	case f.Incompat&^ext3Incompat != 0 || f.ROCompat&^ext3ROCompat != 0:
		p.Type = Ext4
	case f.HasJournal():
		p.Type = Ext3
	default:
		p.Type = Ext2
	}
	return p, setSize(&p)
}

// XFS: the superblock is at byte 0, big-endian.
func matchXFS(h []byte) bool { return string(h[0:4]) == "XFSB" }

func parseXFS(h []byte) (Probe, error) {
	be := binary.BigEndian
	p := Probe{
		Type:      XFS,
		BlockSize: be.Uint32(h[4:]),
		Blocks:    be.Uint64(h[8:]),
		UUID:      formatUUID(h[32:48]),
		Label:     cString(h[108:120]),
	}
	blockLog := h[120]
	if p.BlockSize < 512 || p.BlockSize > 65536 || blockLog >= 32 || p.BlockSize != 1<<blockLog {
		return Probe{}, fmt.Errorf("xfs: block size %d (log %d) is out of range", p.BlockSize, blockLog)
	}
	if h[126] != 0 {
		return Probe{}, errors.New("xfs: mkfs.xfs never finished on this device (sb_inprogress set)")
	}
	if p.Blocks == 0 {
		return Probe{}, errors.New("xfs: superblock says zero data blocks")
	}
	return p, setSize(&p)
}

// btrfs: the primary superblock is at 64 KiB, little-endian.
const (
	btrfsSBOffset = 64 << 10
	btrfsSBSize   = 4096
)

func matchBtrfs(h []byte) bool {
	return len(h) >= btrfsSBOffset+btrfsSBSize &&
		string(h[btrfsSBOffset+0x40:btrfsSBOffset+0x48]) == "_BHRfS_M"
}

func parseBtrfs(h []byte) (Probe, error) {
	sb := h[btrfsSBOffset : btrfsSBOffset+btrfsSBSize]
	le := binary.LittleEndian
	// A superblock records where it lives; a copy found elsewhere (a btrfs
	// image stored inside another filesystem) says otherwise.
	if at := le.Uint64(sb[0x30:]); at != btrfsSBOffset {
		return Probe{}, fmt.Errorf("btrfs: superblock claims to live at byte %d, not %d", at, btrfsSBOffset)
	}
	const devItem = 0xC9
	p := Probe{
		Type:      Btrfs,
		UUID:      formatUUID(sb[0x20:0x30]),
		Label:     cString(sb[0x12B : 0x12B+256]),
		BlockSize: le.Uint32(sb[0x90:]),
		Size:      le.Uint64(sb[0x70:]),
		Btrfs: BtrfsInfo{
			NumDevices:    le.Uint64(sb[0x88:]),
			DevID:         le.Uint64(sb[devItem:]),
			DevTotalBytes: le.Uint64(sb[devItem+8:]),
		},
	}
	if p.BlockSize < 512 || p.BlockSize > 65536 || bits.OnesCount32(p.BlockSize) != 1 {
		return Probe{}, fmt.Errorf("btrfs: sector size %d is out of range", p.BlockSize)
	}
	if p.Size == 0 || p.Btrfs.NumDevices == 0 || p.Btrfs.DevID == 0 {
		return Probe{}, fmt.Errorf("btrfs: implausible superblock (%d bytes, %d devices, devid %d)",
			p.Size, p.Btrfs.NumDevices, p.Btrfs.DevID)
	}
	p.Blocks = p.Size / uint64(p.BlockSize)
	return p, nil
}

// setSize fills Size, refusing values a corrupt superblock could make wrap.
func setSize(p *Probe) error {
	hi, lo := bits.Mul64(p.Blocks, uint64(p.BlockSize))
	if hi != 0 {
		return fmt.Errorf("%s: %d blocks of %d bytes overflow 64 bits", p.Type, p.Blocks, p.BlockSize)
	}
	p.Size = lo
	return nil
}

func formatUUID(b []byte) string {
	const hex = "0123456789abcdef"
	var s strings.Builder
	for i, c := range b[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s.WriteByte('-')
		}
		s.WriteByte(hex[c>>4])
		s.WriteByte(hex[c&15])
	}
	return s.String()
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
