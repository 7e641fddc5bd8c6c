package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unicode/utf16"
)

// Errors Decode wraps, so preflight can tell a blank or MBR disk from a
// damaged GPT.
var (
	ErrNoGPT   = errors.New("no GPT")
	ErrInvalid = errors.New("invalid GPT")
)

const (
	headerSize  = 92
	revision1_0 = 0x00010000
	signature   = "EFI PART"

	// Decode refuses larger entry arrays: real tables are 16 KiB, and the
	// cap bounds what a hostile header can make us read.
	maxEntriesBytes = 4 << 20
)

// header is the part of a GPT header Decode checks and Encode writes.
type header struct {
	myLBA, altLBA       uint64
	firstLBA, lastLBA   uint64
	diskGUID            GUID
	entriesLBA          uint64
	numEntries, entSize uint32
	entriesCRC          uint32
}

func (h header) marshal(sectorSize uint32) []byte {
	b := make([]byte, sectorSize)
	copy(b[0:8], signature)
	le := binary.LittleEndian
	le.PutUint32(b[8:], revision1_0)
	le.PutUint32(b[12:], headerSize)
	le.PutUint64(b[24:], h.myLBA)
	le.PutUint64(b[32:], h.altLBA)
	le.PutUint64(b[40:], h.firstLBA)
	le.PutUint64(b[48:], h.lastLBA)
	copy(b[56:72], h.diskGUID[:])
	le.PutUint64(b[72:], h.entriesLBA)
	le.PutUint32(b[80:], h.numEntries)
	le.PutUint32(b[84:], h.entSize)
	le.PutUint32(b[88:], h.entriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:headerSize]))
	return b
}

// protectiveMBR makes LBA 0 claim the whole disk with one type 0xEE
// partition. Without it Linux ignores the GPT (unless booted with "gpt"),
// and MBR-only tools see a full disk instead of free space.
func protectiveMBR(sectorSize uint32, diskSectors uint64) []byte {
	b := make([]byte, sectorSize)
	r := b[446:462]
	r[1], r[2], r[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	r[4] = 0xEE
	r[5], r[6], r[7] = 0xFF, 0xFF, 0xFF // CHS cannot express the end; the spec allows this
	binary.LittleEndian.PutUint32(r[8:], 1)
	binary.LittleEndian.PutUint32(r[12:], uint32(min(diskSectors-1, math.MaxUint32)))
	b[510], b[511] = 0x55, 0xAA
	return b
}

// Encode returns the bytes of l as a GPT. primary goes at offset 0: the
// protective MBR (LBA 0), the header (LBA 1) and the entry array (from LBA
// 2). backup goes at byte offset backupOffset: the entry array followed by
// the backup header in the disk's last LBA.
func Encode(l Layout) (primary, backup []byte, backupOffset uint64, err error) {
	if err := l.Validate(); err != nil {
		return nil, nil, 0, fmt.Errorf("encode GPT: %w", err)
	}
	ss := l.SectorSize
	es := l.EntrySectors()
	entries := make([]byte, es*uint64(ss))
	le := binary.LittleEndian
	for _, p := range l.Parts {
		e := entries[(p.Number-1)*entrySize:][:entrySize]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], p.GUID[:])
		le.PutUint64(e[32:], p.Start)
		le.PutUint64(e[40:], p.End())
		le.PutUint64(e[48:], p.Attrs)
		for i, u := range utf16.Encode([]rune(p.Name)) {
			le.PutUint16(e[56+2*i:], u)
		}
	}
	last := l.DiskSectors - 1
	h := header{
		myLBA: 1, altLBA: last,
		firstLBA: l.FirstUsableLBA(), lastLBA: l.LastUsableLBA(),
		diskGUID:   l.DiskGUID,
		entriesLBA: 2, numEntries: numEntries, entSize: entrySize,
		entriesCRC: crc32.ChecksumIEEE(entries[:entriesBytes]),
	}
	primary = append(protectiveMBR(ss, l.DiskSectors), h.marshal(ss)...)
	primary = append(primary, entries...)

	h.myLBA, h.altLBA, h.entriesLBA = last, 1, last-es
	backup = append(append([]byte(nil), entries...), h.marshal(ss)...)
	return primary, backup, h.entriesLBA * uint64(ss), nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// Decode reads and checks the GPT of a disk of diskSectors sectors: the
// protective MBR, both headers (signature, CRC, my/alternate LBA, usable
// range, agreement with each other), both entry arrays (CRC) and the
// partitions (inside the usable range, no overlap). It accepts tables made
// by other tools (any entry count and size the specification allows), but
// only a layout of 128x128 entries re-encodes to the same bytes.
func Decode(r io.ReaderAt, sectorSize uint32, diskSectors uint64) (Layout, error) {
	if err := checkSectorSize(sectorSize); err != nil {
		return Layout{}, fmt.Errorf("decode GPT: %w", err)
	}
	ss := uint64(sectorSize)
	if diskSectors < 3 || diskSectors > math.MaxInt64/ss {
		return Layout{}, invalid("disk of %d sectors cannot hold a GPT", diskSectors)
	}
	read := func(lba, n uint64) ([]byte, error) {
		b := make([]byte, n*ss)
		if k, err := r.ReadAt(b, int64(lba*ss)); k < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read LBA %d-%d: %w", lba, lba+n-1, err)
		}
		return b, nil
	}
	last := diskSectors - 1

	mbr, err := read(0, 1)
	if err != nil {
		return Layout{}, err
	}
	hb, err := read(1, 1)
	if err != nil {
		return Layout{}, err
	}
	if !bytes.Equal(hb[:8], []byte(signature)) {
		return Layout{}, fmt.Errorf("%w: LBA 1 has no \"EFI PART\" signature", ErrNoGPT)
	}
	if err := checkProtectiveMBR(mbr); err != nil {
		return Layout{}, err
	}
	p, err := parseHeader(hb, "primary header (LBA 1)")
	if err != nil {
		return Layout{}, err
	}
	if p.myLBA != 1 {
		return Layout{}, invalid("primary header (LBA 1) says it is at LBA %d", p.myLBA)
	}
	if p.altLBA != last {
		return Layout{}, invalid("primary header puts the backup header at LBA %d, but the disk's last LBA is %d (disk resized or image truncated?)", p.altLBA, last)
	}
	if p.firstLBA < 2 || p.firstLBA > p.lastLBA || p.lastLBA >= last {
		return Layout{}, invalid("usable range LBA %d-%d does not fit a disk of %d sectors", p.firstLBA, p.lastLBA, diskSectors)
	}
	if p.entSize < entrySize || p.entSize&(p.entSize-1) != 0 || p.numEntries == 0 ||
		uint64(p.numEntries)*uint64(p.entSize) > maxEntriesBytes {
		return Layout{}, invalid("entry array of %d entries of %d bytes: entries must be 128*2^n bytes and the array 1 byte to 4 MiB", p.numEntries, p.entSize)
	}
	arrayBytes := uint64(p.numEntries) * uint64(p.entSize)
	arraySectors := (arrayBytes + ss - 1) / ss
	if p.entriesLBA < 2 || !fits(p.entriesLBA, arraySectors, p.firstLBA) {
		return Layout{}, invalid("primary entry array (LBA %d, %d sectors) is not between the header and the first usable LBA %d", p.entriesLBA, arraySectors, p.firstLBA)
	}

	bb, err := read(last, 1)
	if err != nil {
		return Layout{}, err
	}
	if !bytes.Equal(bb[:8], []byte(signature)) {
		return Layout{}, invalid("no backup header at the last LBA %d", last)
	}
	b, err := parseHeader(bb, fmt.Sprintf("backup header (LBA %d)", last))
	if err != nil {
		return Layout{}, err
	}
	switch {
	case b.myLBA != last || b.altLBA != 1:
		return Layout{}, invalid("backup header at LBA %d says it is at LBA %d with its primary at LBA %d", last, b.myLBA, b.altLBA)
	case b.diskGUID != p.diskGUID || b.firstLBA != p.firstLBA || b.lastLBA != p.lastLBA ||
		b.numEntries != p.numEntries || b.entSize != p.entSize || b.entriesCRC != p.entriesCRC:
		return Layout{}, invalid("backup header at LBA %d disagrees with the primary header", last)
	case b.entriesLBA <= p.lastLBA || !fits(b.entriesLBA, arraySectors, last):
		return Layout{}, invalid("backup entry array (LBA %d, %d sectors) is not between the last usable LBA %d and the backup header", b.entriesLBA, arraySectors, p.lastLBA)
	}

	var entries []byte
	for _, h := range []struct {
		lba   uint64
		which string
	}{{p.entriesLBA, "primary"}, {b.entriesLBA, "backup"}} {
		a, err := read(h.lba, arraySectors)
		if err != nil {
			return Layout{}, err
		}
		if c := crc32.ChecksumIEEE(a[:arrayBytes]); c != p.entriesCRC {
			return Layout{}, invalid("%s entry array at LBA %d: CRC32 is %#08x, header says %#08x", h.which, h.lba, c, p.entriesCRC)
		}
		if entries == nil {
			entries = a[:arrayBytes]
		}
	}

	l := Layout{DiskGUID: p.diskGUID, SectorSize: sectorSize, DiskSectors: diskSectors}
	le := binary.LittleEndian
	for i := range int(p.numEntries) {
		e := entries[i*int(p.entSize):][:entrySize]
		var pt Part
		copy(pt.Type[:], e[0:16])
		if pt.Type.IsZero() {
			continue
		}
		pt.Number = i + 1
		copy(pt.GUID[:], e[16:32])
		pt.Start = le.Uint64(e[32:])
		end := le.Uint64(e[40:])
		if end < pt.Start {
			return Layout{}, invalid("partition %d ends at LBA %d, before its start LBA %d", pt.Number, end, pt.Start)
		}
		pt.Sectors = end - pt.Start + 1
		pt.Attrs = le.Uint64(e[48:])
		units := make([]uint16, 0, nameUnits)
		for j := 0; j < nameUnits; j++ {
			u := le.Uint16(e[56+2*j:])
			if u == 0 {
				break
			}
			units = append(units, u)
		}
		pt.Name = string(utf16.Decode(units))
		l.Parts = append(l.Parts, pt)
	}
	if err := checkExtents(l.Parts, p.firstLBA, p.lastLBA); err != nil {
		return Layout{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return l, nil
}

// fits reports whether [start, start+n) ends at or before limit, without
// overflowing on hostile values.
func fits(start, n, limit uint64) bool {
	return start <= limit && n <= limit-start
}

func checkProtectiveMBR(b []byte) error {
	if b[510] != 0x55 || b[511] != 0xAA {
		return invalid("LBA 0 has no MBR signature, so the kernel will not read the GPT")
	}
	for i := range 4 {
		if b[446+16*i+4] == 0xEE {
			return nil
		}
	}
	return invalid("the MBR in LBA 0 has no protective (type 0xEE) partition, so the kernel will not read the GPT")
}

func parseHeader(b []byte, which string) (header, error) {
	le := binary.LittleEndian
	var h header
	if rev := le.Uint32(b[8:]); rev>>16 != 1 {
		return h, invalid("%s: revision %#08x is not 1.x", which, rev)
	}
	size := le.Uint32(b[12:])
	if size < headerSize || uint64(size) > uint64(len(b)) {
		return h, invalid("%s: header size %d is outside %d..%d", which, size, headerSize, len(b))
	}
	stored := le.Uint32(b[16:])
	c := append([]byte(nil), b[:size]...)
	clear(c[16:20])
	if got := crc32.ChecksumIEEE(c); got != stored {
		return h, invalid("%s: CRC32 is %#08x, header says %#08x", which, got, stored)
	}
	h.myLBA = le.Uint64(b[24:])
	h.altLBA = le.Uint64(b[32:])
	h.firstLBA = le.Uint64(b[40:])
	h.lastLBA = le.Uint64(b[48:])
	copy(h.diskGUID[:], b[56:72])
	h.entriesLBA = le.Uint64(b[72:])
	h.numEntries = le.Uint32(b[80:])
	h.entSize = le.Uint32(b[84:])
	h.entriesCRC = le.Uint32(b[88:])
	return h, nil
}
