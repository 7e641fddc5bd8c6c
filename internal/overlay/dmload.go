package overlay

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of struct dm_ioctl and struct dm_target_spec (linux/dm-ioctl.h):
// DM_NAME_LEN and DM_MAX_TYPE_NAME, both counting the terminating NUL.
const (
	dmNameMax = len(unix.DmIoctl{}.Name) - 1
	dmTypeMax = len(unix.DmTargetSpec{}.Target_type) - 1
)

// dmVersion is the dm ioctl interface version we ask for: 4.0.0, the
// minimum that has every call we make.
var dmVersion = [3]uint32{4, 0, 0}

// newDMIoctl returns a zeroed buffer of size bytes (at least
// sizeof(struct dm_ioctl)), 8-byte aligned so that the header and the
// target specs after it can be addressed as structs, with the dm_ioctl
// header filled in: interface version, data_size = size, data_start right
// after the header, and flags. This is the one place our dm calls set the
// header up; callers add what is particular to their call (name, dev,
// target_count).
func newDMIoctl(size int, flags uint32) ([]byte, *unix.DmIoctl) {
	if size < unix.SizeofDmIoctl {
		size = unix.SizeofDmIoctl
	}
	words := make([]uint64, (size+7)/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	hdr := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	hdr.Version = dmVersion
	hdr.Data_size = uint32(size)
	hdr.Data_start = unix.SizeofDmIoctl
	hdr.Flags = flags
	return buf, hdr
}

// openDMControl opens /dev/mapper/control for dm ioctls.
func openDMControl() (*os.File, error) {
	return os.OpenFile("/dev/mapper/control", os.O_RDWR|unix.O_CLOEXEC, 0)
}

// dmIoctl issues dm ioctl req (named op in errors) with buf, which starts
// with a struct dm_ioctl; the kernel writes its reply into buf.
func dmIoctl(ctl *os.File, req uint, op string, buf []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), uintptr(req), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return os.NewSyscallError(op, errno)
	}
	return nil
}

// buildTableLoad lays out a DM_TABLE_LOAD request for device name: the
// dm_ioctl header, then per target a dm_target_spec followed by its
// NUL-terminated params padded to 8 bytes. Unlike in a DM_TABLE_STATUS
// reply, spec.next here counts from the start of the spec itself to the
// next spec (populate_table in dm-ioctl.c). Starts and lengths are in
// sectors.
func buildTableLoad(name string, readOnly bool, targets []Target) ([]byte, error) {
	switch {
	case name == "":
		return nil, errors.New("dm table load: empty device name")
	case len(name) > dmNameMax:
		return nil, fmt.Errorf("dm table load: device name of %d bytes, the limit is %d", len(name), dmNameMax)
	case strings.ContainsAny(name, "/\x00"):
		return nil, fmt.Errorf("dm table load: device name %q contains '/' or NUL", name)
	case len(targets) == 0:
		return nil, fmt.Errorf("dm table load %s: no targets", name)
	}
	size := unix.SizeofDmIoctl
	specSizes := make([]int, len(targets))
	for i, t := range targets {
		switch {
		case t.Type == "":
			return nil, fmt.Errorf("dm table load %s: target %d has no type", name, i)
		case len(t.Type) > dmTypeMax:
			return nil, fmt.Errorf("dm table load %s: target %d type %q is longer than %d bytes", name, i, t.Type, dmTypeMax)
		case strings.IndexByte(t.Type, 0) >= 0:
			return nil, fmt.Errorf("dm table load %s: target %d type %q contains NUL", name, i, t.Type)
		case strings.IndexByte(t.Params, 0) >= 0:
			return nil, fmt.Errorf("dm table load %s: target %d params contain NUL", name, i)
		}
		specSizes[i] = unix.SizeofDmTargetSpec + (len(t.Params)+1+7)&^7
		if specSizes[i] > math.MaxUint32-size {
			return nil, fmt.Errorf("dm table load %s: table too large", name)
		}
		size += specSizes[i]
	}
	flags := uint32(0)
	if readOnly {
		flags = unix.DM_READONLY_FLAG
	}
	buf, hdr := newDMIoctl(size, flags)
	hdr.Target_count = uint32(len(targets))
	copy(hdr.Name[:dmNameMax], name)
	off := unix.SizeofDmIoctl
	for i, t := range targets {
		// off is a multiple of 8 in an 8-byte aligned buffer.
		spec := (*unix.DmTargetSpec)(unsafe.Pointer(&buf[off]))
		spec.Sector_start = t.Start
		spec.Length = t.Length
		spec.Next = uint32(specSizes[i])
		copy(spec.Target_type[:dmTypeMax], t.Type)
		copy(buf[off+unix.SizeofDmTargetSpec:], t.Params) // NUL and padding: already zero
		off += specSizes[i]
	}
	return buf, nil
}

// loadTable loads targets as the inactive table of dm device name
// (DM_TABLE_LOAD); a resume makes it live. devmapper.go can only express
// the table lines it has types for, which for snapshots excludes "PO".
func loadTable(name string, readOnly bool, targets []Target) error {
	buf, err := buildTableLoad(name, readOnly, targets)
	if err != nil {
		return err
	}
	ctl, err := openDMControl()
	if err != nil {
		return fmt.Errorf("dm table load %s: %w", name, err)
	}
	defer ctl.Close()
	if err := dmIoctl(ctl, unix.DM_TABLE_LOAD, "DM_TABLE_LOAD", buf); err != nil {
		return fmt.Errorf("dm table load %s: %w", name, err)
	}
	return nil
}

// LoadTable loads targets as the inactive table of dm device name; a
// resume makes it live. For methods that rebuild a running stack
// (internal/dmmirror): the table lines name devices as major:minor.
func LoadTable(name string, targets []Target) error { return loadTable(name, false, targets) }

// ClearTable drops dm device name's inactive table (DM_TABLE_CLEAR), so
// that a resume keeps the live one. A device with no inactive table is
// left as it is.
func ClearTable(name string) error {
	if name == "" || len(name) > dmNameMax {
		return fmt.Errorf("dm table clear: bad device name %q", name)
	}
	ctl, err := openDMControl()
	if err != nil {
		return fmt.Errorf("dm table clear %s: %w", name, err)
	}
	defer ctl.Close()
	buf, hdr := newDMIoctl(unix.SizeofDmIoctl, 0)
	copy(hdr.Name[:dmNameMax], name)
	if err := dmIoctl(ctl, unix.DM_TABLE_CLEAR, "DM_TABLE_CLEAR", buf); err != nil {
		return fmt.Errorf("dm table clear %s: %w", name, err)
	}
	return nil
}

// InactiveTable returns the inactive (loaded, not yet resumed) table of dm
// device d, empty when it has none.
func InactiveTable(d Dev) ([]Target, error) {
	return dmTableStatus(d, unix.DM_STATUS_TABLE_FLAG|unix.DM_QUERY_INACTIVE_TABLE_FLAG)
}

// TargetTypes returns the dm target types the running kernel has
// registered (DM_LIST_VERSIONS), by name with their versions; a type whose
// module is not loaded is missing.
func TargetTypes() (map[string][3]uint32, error) {
	ctl, err := openDMControl()
	if err != nil {
		return nil, fmt.Errorf("dm target types: %w", err)
	}
	defer ctl.Close()
	size := 16 * 1024
	for {
		buf, hdr := newDMIoctl(size, 0)
		if err := dmIoctl(ctl, unix.DM_LIST_VERSIONS, "DM_LIST_VERSIONS", buf); err != nil {
			return nil, fmt.Errorf("dm target types: %w", err)
		}
		if hdr.Flags&unix.DM_BUFFER_FULL_FLAG != 0 {
			if size >= 1<<20 {
				return nil, errors.New("dm target types: reply too large")
			}
			size *= 4
			continue
		}
		return parseTargetVersions(buf, hdr.Data_start, hdr.Data_size)
	}
}

// parseTargetVersions decodes a DM_LIST_VERSIONS reply: from data_start,
// struct dm_target_versions { u32 next; u32 version[3]; char name[]; }
// records, next counting from the record's own start, 0 on the last.
func parseTargetVersions(buf []byte, dataStart, dataSize uint32) (map[string][3]uint32, error) {
	if int(dataSize) > len(buf) || dataStart > dataSize {
		return nil, fmt.Errorf("dm reply: data %d..%d outside buffer of %d", dataStart, dataSize, len(buf))
	}
	out := buf[dataStart:dataSize]
	types := map[string][3]uint32{}
	for off := 0; off+16 <= len(out); {
		le := func(i int) uint32 {
			b := out[off+i : off+i+4]
			return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		}
		next := int(le(0))
		name := out[off+16:]
		if next != 0 {
			if next < 16 || off+next > len(out) {
				return nil, fmt.Errorf("dm reply: target record at %d points to %d", off, off+next)
			}
			name = out[off+16 : off+next]
		}
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			name = name[:i]
		}
		if len(name) > 0 {
			types[string(name)] = [3]uint32{le(4), le(8), le(12)}
		}
		if next == 0 {
			break
		}
		off += next
	}
	return types, nil
}
