package partition

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// GUID holds a GUID in its on-disk byte order: the first three fields are
// little-endian, the last two big-endian, as the UEFI specification stores
// them in GPT headers and entries. Keeping the disk order means Encode and
// Decode copy bytes and only String/ParseGUID deal with the text form.
type GUID [16]byte

// Partition type GUIDs (UEFI specification and the Discoverable Partitions
// Specification).
var (
	TypeBIOSBoot       = MustParseGUID("21686148-6449-6E6F-744E-656564454649")
	TypeESP            = MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	TypeLinuxRoot      = MustParseGUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") // x86-64 root
	TypeLinuxRootARM64 = MustParseGUID("B921B045-1DF0-41C3-AF44-4C6F280D3FAE")
	TypeLinuxData      = MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
)

// IsZero reports whether g is all zeroes, which in a GPT entry marks the
// entry unused.
func (g GUID) IsZero() bool { return g == GUID{} }

// String returns the canonical text form in lower case, the spelling blkid
// and udev use, so "/dev/disk/by-partuuid/"+g.String() names the partition.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

// ParseGUID reads the text form (either case, no braces).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	f := strings.Split(s, "-")
	if len(s) != 36 || len(f) != 5 || len(f[0]) != 8 || len(f[1]) != 4 || len(f[2]) != 4 || len(f[3]) != 4 || len(f[4]) != 12 {
		return g, fmt.Errorf("parse GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	b, err := hex.DecodeString(strings.Join(f, ""))
	if err != nil {
		return g, fmt.Errorf("parse GUID %q: %w", s, err)
	}
	// Text order is big-endian throughout; swap the first three fields
	// into disk order.
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// newGUID draws a version 4 (random) GUID from rnd.
func newGUID(rnd io.Reader) (GUID, error) {
	var g GUID
	if _, err := io.ReadFull(rnd, g[:]); err != nil {
		return g, fmt.Errorf("generate GUID: %w", err)
	}
	// The version nibble is the top of the third field, which sits
	// little-endian in byte 7; the variant is the top of byte 8.
	g[7] = g[7]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

func randOrDefault(rnd io.Reader) io.Reader {
	if rnd == nil {
		return rand.Reader
	}
	return rnd
}
