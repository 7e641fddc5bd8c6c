package engine

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/partition"
)

// TargetID is what identifies the device a plan was made for and the user
// confirmed: its number, its size and, for a whole disk, its partition
// table. A device node can be another device by the time the first write
// comes (a disk swapped, a partition deleted and made again), so the
// first write compares this with what the device open in the hold shows.
type TargetID struct {
	Path      string `json:"path"`
	Major     uint32 `json:"major"`
	Minor     uint32 `json:"minor"`
	SizeBytes uint64 `json:"size_bytes"`
	// Table is a digest of the whole disk's partition table ("none" when
	// it has no GPT); empty for a partition.
	Table string `json:"table,omitempty"`
}

func (id TargetID) String() string {
	s := fmt.Sprintf("%d:%d, %s", id.Major, id.Minor, humanize.IBytes(id.SizeBytes))
	if id.Table != "" {
		s += ", partition table " + id.Table
	}
	return s
}

// tableDigest names a partition table by a short digest of its contents.
func tableDigest(l *partition.Layout) string {
	if l == nil {
		return "none"
	}
	b, _ := json.Marshal(l)
	return fmt.Sprintf("%x", sha256.Sum256(b))[:16]
}

// Hold is the target open exclusively (O_EXCL on a block device): while it
// is held nothing can mount it, build md or dm on it, or partition it with
// a tool that opens exclusively, and the plan stays about this device.
type Hold struct {
	f  *os.File
	id TargetID
}

// HoldTarget opens the device p writes first (the whole disk in whole-disk
// mode, else the partition) exclusively and checks it is still the one
// p was planned for. A plan that continues a run has nothing to hold: md
// already holds its target. nil, nil then.
func HoldTarget(p *Plan) (*Hold, error) {
	if p.TargetID == nil {
		return nil, nil
	}
	id := *p.TargetID
	flags := os.O_RDONLY | unix.O_EXCL | unix.O_CLOEXEC
	if p.Copy != nil && p.Copy.Earlier != "" {
		// The earlier copy run's staging mount holds the device (nothing
		// else can claim it while it is mounted) until the plan's first
		// step unmounts it: check it through a shared open.
		flags &^= unix.O_EXCL
	}
	f, err := os.OpenFile(id.Path, flags, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, refuse(ExitInUse, id.Path, "is in use: something opened it exclusively since it was checked (mounted, or taken by md, dm or a partitioning tool)", "close what uses it, then try again; nothing was written")
		}
		return nil, refuse(ExitTargetChanged, id.Path, fmt.Sprintf("cannot be opened any more: %v", err), "check the device (lsblk) and run the command again; nothing was written")
	}
	h := &Hold{f: f, id: id}
	if err := h.Verify(p); err != nil {
		f.Close()
		return nil, err
	}
	return h, nil
}

// Verify compares the held device with p's target.
func (h *Hold) Verify(p *Plan) error {
	if h == nil || h.f == nil {
		return nil
	}
	now, err := h.read()
	if err != nil {
		return refuse(ExitTargetChanged, h.id.Path, "cannot be checked again: "+err.Error(), "run the command again; nothing was written")
	}
	want := h.id
	if p.TargetID != nil {
		want = *p.TargetID
	}
	if now != want {
		return refuse(ExitTargetChanged, want.Path, fmt.Sprintf("changed since it was checked: it was %s, it is now %s", want, now),
			"nothing was written; look at the device again (lsblk) and run the command again")
	}
	return nil
}

func (h *Hold) read() (TargetID, error) {
	id := TargetID{Path: h.id.Path}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.f.Fd()), &st); err != nil {
		return id, os.NewSyscallError("fstat", err)
	}
	id.Major, id.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, h.f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&id.SizeBytes))); e != 0 {
		return id, os.NewSyscallError("ioctl BLKGETSIZE64", e)
	}
	if h.id.Table != "" {
		if l, err := partition.ReadTableFile(h.f, h.id.Path); err == nil {
			id.Table = tableDigest(&l)
		} else {
			id.Table = tableDigest(nil)
		}
	}
	return id, nil
}

// Close lets go of the device.
func (h *Hold) Close() error {
	if h == nil || h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}
