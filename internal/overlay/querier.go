package overlay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Target is one line of a dm table: "<start> <length> <type> <params>",
// start and length in sectors. Params is the table line or the status line,
// depending on which was asked for.
type Target struct {
	Start, Length uint64
	Type          string
	Params        string
}

// LoopStatus is what LOOP_GET_STATUS64 says about a bound loop: which file
// it reads (st_dev and st_ino, to recognise the file again) and its flags.
type LoopStatus struct {
	BackingMajor, BackingMinor uint32
	BackingInode               uint64
	Flags                      uint32 // unix.LO_FLAGS_*
}

// Querier asks the kernel what sysfs does not show. Read-only.
type Querier interface {
	// DMTable returns the live table of dm device d (DM_TABLE_STATUS with
	// DM_STATUS_TABLE_FLAG): devices appear as major:minor.
	DMTable(d Dev) ([]Target, error)
	// DMStatus returns the targets' status lines (DM_TABLE_STATUS).
	DMStatus(d Dev) ([]Target, error)
	// LoopStatus returns LOOP_GET_STATUS64 of loop d.
	LoopStatus(d Dev) (LoopStatus, error)
}

// KernelQuerier answers from the running kernel through /dev/mapper/control
// and the loop device nodes.
type KernelQuerier struct{}

// DMTable implements Querier.
func (KernelQuerier) DMTable(d Dev) ([]Target, error) {
	return dmTableStatus(d, unix.DM_STATUS_TABLE_FLAG)
}

// DMStatus implements Querier.
func (KernelQuerier) DMStatus(d Dev) ([]Target, error) {
	return dmTableStatus(d, 0)
}

// LoopStatus implements Querier.
func (KernelQuerier) LoopStatus(d Dev) (LoopStatus, error) {
	f, err := openDevNode(d, os.O_RDONLY)
	if err != nil {
		return LoopStatus{}, err
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return LoopStatus{}, &os.PathError{Op: "LOOP_GET_STATUS64", Path: f.Name(), Err: err}
	}
	return LoopStatus{
		BackingMajor: unix.Major(info.Device),
		BackingMinor: unix.Minor(info.Device),
		BackingInode: info.Inode,
		Flags:        info.Flags,
	}, nil
}

// openDevNode opens d's node, trying Path then /dev/<name>.
func openDevNode(d Dev, flag int) (*os.File, error) {
	var first error
	for _, p := range []string{d.Path, "/dev/" + d.Name} {
		if p == "" || p == "/dev/" {
			continue
		}
		f, err := os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
		if err == nil {
			return f, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("device %s has no node", d)
	}
	return nil, first
}

// dmTableStatus is DM_TABLE_STATUS, which devmapper.go lacks. The device is
// named by its number so that a stale name cannot pick another device. The
// kernel writes, from data_start on, one dm_target_spec per target followed
// by its NUL-terminated string; spec.next is the offset of the next spec
// from data_start (not from the spec), see retrieve_status in dm-ioctl.c.
func dmTableStatus(d Dev, flags uint32) ([]Target, error) {
	ctl, err := openDMControl()
	if err != nil {
		return nil, fmt.Errorf("query dm %s: %w", d, err)
	}
	defer ctl.Close()
	size := 16 * 1024
	for {
		buf, hdr := newDMIoctl(size, flags)
		hdr.Dev = unix.Mkdev(d.Major, d.Minor)
		if err := dmIoctl(ctl, unix.DM_TABLE_STATUS, "DM_TABLE_STATUS", buf); err != nil {
			return nil, fmt.Errorf("query dm %s (%d:%d): %w", d, d.Major, d.Minor, err)
		}
		if hdr.Flags&unix.DM_BUFFER_FULL_FLAG != 0 {
			if size >= 4<<20 {
				return nil, fmt.Errorf("query dm %s: table larger than %d bytes", d, size)
			}
			size *= 4
			continue
		}
		return parseTargetSpecs(buf, hdr.Data_start, hdr.Data_size, hdr.Target_count)
	}
}

// parseTargetSpecs decodes the result area of a DM_TABLE_STATUS reply.
// Bounds are checked against the buffer so a confused reply cannot crash us.
//
// A reply with no targets is an empty table whatever its data fields say:
// asked for an inactive table a device does not have, the kernel answers
// with data_size at the bare header (305) and data_start past it (312).
func parseTargetSpecs(buf []byte, dataStart, dataSize, count uint32) ([]Target, error) {
	if count == 0 {
		return nil, nil
	}
	if int(dataSize) > len(buf) || dataStart > dataSize {
		return nil, fmt.Errorf("dm reply: data %d..%d outside buffer of %d", dataStart, dataSize, len(buf))
	}
	out := buf[dataStart:dataSize]
	var ts []Target
	off := 0
	for i := uint32(0); i < count; i++ {
		if off+unix.SizeofDmTargetSpec > len(out) {
			return nil, errors.New("dm reply: target spec beyond data")
		}
		// struct dm_target_spec: u64 sector_start, u64 length, s32 status,
		// u32 next, char target_type[16]; decoded by hand so that a reply
		// at an odd offset cannot fault on strict-alignment machines.
		spec := out[off : off+unix.SizeofDmTargetSpec]
		start := binary.NativeEndian.Uint64(spec[0:])
		length := binary.NativeEndian.Uint64(spec[8:])
		next := int(binary.NativeEndian.Uint32(spec[20:]))
		typ := spec[24:40]
		if n := bytes.IndexByte(typ, 0); n >= 0 {
			typ = typ[:n]
		}
		str := out[off+unix.SizeofDmTargetSpec:]
		if n := bytes.IndexByte(str, 0); n >= 0 {
			str = str[:n]
		}
		ts = append(ts, Target{Start: start, Length: length, Type: string(typ), Params: string(str)})
		if i+1 < count && next <= off {
			return nil, errors.New("dm reply: target list does not advance")
		}
		off = next
	}
	return ts, nil
}
