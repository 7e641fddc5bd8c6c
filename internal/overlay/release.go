package overlay

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseOptions tune Release.
type ReleaseOptions struct {
	// Eject a CD medium once it is unmounted (the door is unlocked first).
	Eject bool
	// LazyUnmount detaches a busy mount (MNT_DETACH) instead of failing;
	// its memory and the medium are then freed only when the last user
	// exits, and a CD cannot be ejected in this run.
	LazyUnmount bool
	// DeleteDiskCOW also deletes a COW file that lives on a disk
	// filesystem (a persistent overlay). COW files in RAM are always
	// deleted: that is the point of releasing them.
	DeleteDiskCOW bool
	// KeepMedium leaves the medium mounted (and the disc in).
	KeepMedium bool
	// DryRun reports what would be done and does nothing.
	DryRun bool
	// UsageBefore is the COW usage measured by the caller; nil: Release
	// measures it while the snapshot still exists.
	UsageBefore *Usage
}

// StepResult is what became of one release step.
type StepResult string

const (
	StepDone        StepResult = "done"
	StepAlreadyGone StepResult = "already gone"
	StepDeferred    StepResult = "deferred" // the kernel frees it when its last user goes
	StepKept        StepResult = "kept"     // left alone on purpose
	StepBlocked     StepResult = "blocked"  // not tried: something it depends on is still there
	StepFailed      StepResult = "failed"
	StepPlanned     StepResult = "planned" // dry run
)

// ReleaseStep is one thing Release did or tried, e.g.
// "detach loop2 (COW of live-rw, backing /overlay (deleted))".
type ReleaseStep struct {
	What   string
	Result StepResult
	Err    error // set for failed and blocked steps, and why a step was kept
}

// ReleaseReport says what Release did and what it gave back.
type ReleaseReport struct {
	Steps              []ReleaseStep
	MemAvailableBefore uint64 // bytes, /proc/meminfo
	MemAvailableAfter  uint64
	COWBytesFreed      uint64 // RAM the COW held, per the usage measured before release
	Ejected            bool
}

// MemGained is MemAvailableAfter-MemAvailableBefore; negative when other
// activity used more than the release freed.
func (r ReleaseReport) MemGained() int64 {
	return int64(r.MemAvailableAfter) - int64(r.MemAvailableBefore)
}

// ErrDetachDeferred is wrapped by DetachLoop when the kernel accepted the
// detach but the loop is still open elsewhere: it goes when that user does.
var ErrDetachDeferred = errors.New("detach deferred until the last user closes it")

// Release takes the live stack apart from the top, after md has dropped the
// live leg: the snapshot, the other dm devices over the origin, the COW
// (and its RAM), the origin loop, the squashfs, the medium, the disc. Each
// step first checks whether its device is still there, so Release can be
// run again after a partial failure. It goes on past a failure as far as
// the steps do not depend on it, and returns all failures joined.
func Release(h Host, a Actuator, s *Stack, opts ReleaseOptions) (ReleaseReport, error) {
	r := &releaser{h: h, a: a, s: s, opts: opts}
	r.rep.MemAvailableBefore, _ = h.MemAvailable()

	var ramBefore uint64
	if opts.UsageBefore != nil {
		ramBefore = ramBytes(s, *opts.UsageBefore)
	} else if dmPresent(h, s.Snapshot, s.DMName) {
		if u, err := COWUsage(nil, h, s); err == nil {
			ramBefore = ramBytes(s, u)
		}
	}

	snapOK := r.removeDM(s.Snapshot, s.DMName, "the live snapshot",
		"the root array must have dropped the live leg first; check that nothing else opened /dev/mapper/"+s.DMName)
	sibOK := true
	for i, d := range s.Siblings {
		name := ""
		if i < len(s.SiblingNames) {
			name = s.SiblingNames[i]
		}
		if !r.removeDM(d, name, "also over origin "+s.OriginLoop.Name,
			"something has /dev/mapper/"+name+" open or mounted; close it") {
			sibOK = false
		}
	}
	if s.OriginDMName != "" && s.Origin != s.OriginLoop {
		if !r.blockedUnless(snapOK, fmt.Sprintf("remove dm device %s (%s, origin of %s)", s.OriginDMName, s.Origin, s.DMName), s.DMName) ||
			!r.removeDM(s.Origin, s.OriginDMName, "origin of "+s.DMName, "") {
			sibOK = false
		}
	}

	if r.releaseCOW(snapOK) {
		r.rep.COWBytesFreed = ramBefore
	}

	originOK := false
	what := fmt.Sprintf("detach %s (origin of %s, backing %s)", s.OriginLoop, s.DMName, s.OriginFile)
	if r.blockedUnless(snapOK && sibOK, what, s.DMName+" or another dm device over "+s.OriginLoop.Name) {
		originOK = r.detachLoop(what, s.OriginLoop, s.OriginFile)
	}
	if originOK && s.RAMImage != "" && sameFile(s.RAMImage, s.OriginFile) {
		r.deleteRAMImage()
	}

	mediumFree := originOK // nothing above the medium holds it any more
	if s.SquashfsMount == "" && s.SquashfsLoop.isLoop() {
		// Lazily unmounted already (dracut): the squashfs went away with
		// the origin loop; its own loop is what still holds the medium.
		what := fmt.Sprintf("detach %s (squashfs, backing %s, already unmounted)", s.SquashfsLoop, s.SquashfsFile)
		mediumFree = r.blockedUnless(originOK, what, s.OriginLoop.Name) && r.detachLoop(what, s.SquashfsLoop, s.SquashfsFile)
	}
	if s.SquashfsMount != "" {
		what := fmt.Sprintf("unmount %s (squashfs on %s)", s.SquashfsMount, s.SquashfsLoop)
		sqOK := r.blockedUnless(originOK, what, s.OriginLoop.Name) && r.unmount(what, s.SquashfsMount, s.SquashfsLoop)
		mediumFree = sqOK
		if s.SquashfsLoop.isLoop() {
			what := fmt.Sprintf("detach %s (squashfs, backing %s)", s.SquashfsLoop, s.SquashfsFile)
			mediumFree = r.blockedUnless(sqOK, what, "the mount "+s.SquashfsMount) && r.detachLoop(what, s.SquashfsLoop, s.SquashfsFile)
			if mediumFree && s.RAMImage != "" && sameFile(s.RAMImage, s.SquashfsFile) {
				r.deleteRAMImage()
			}
		}
	}

	if s.MediumMount != "" {
		what := fmt.Sprintf("unmount %s (medium %s)", s.MediumMount, s.Medium)
		switch {
		case opts.KeepMedium:
			r.add(what, StepKept, nil)
		default:
			holder := s.SquashfsLoop.Name
			if s.SquashfsLoop.IsZero() {
				holder = s.OriginLoop.Name
			}
			unmounted := r.blockedUnless(mediumFree, what, holder) && r.unmount(what, s.MediumMount, s.Medium)
			if s.Medium.isLoop() {
				w := fmt.Sprintf("detach %s (ISO file %s)", s.Medium, s.MediumFile)
				if r.blockedUnless(unmounted, w, "the mount "+s.MediumMount) {
					r.detachLoop(w, s.Medium, s.MediumFile)
				}
			}
			if opts.Eject && s.MediumIsCD {
				r.eject(unmounted && !r.lazy[s.MediumMount])
			}
		}
	}

	r.rep.MemAvailableAfter, _ = h.MemAvailable()
	if len(r.errs) > 0 {
		return r.rep, fmt.Errorf("release live stack: %w\nrun \"livemigrate release\" again once the above is dealt with", errors.Join(r.errs...))
	}
	return r.rep, nil
}

type releaser struct {
	h    Host
	a    Actuator
	s    *Stack
	opts ReleaseOptions
	rep  ReleaseReport
	errs []error
	lazy map[string]bool // mount points detached lazily in this run
}

func (r *releaser) add(what string, res StepResult, err error) {
	r.rep.Steps = append(r.rep.Steps, ReleaseStep{What: what, Result: res, Err: err})
	if res == StepFailed || res == StepBlocked {
		r.errs = append(r.errs, err)
	}
}

// blockedUnless records a blocked step when ok is false, so the report
// shows what was not even tried and why.
func (r *releaser) blockedUnless(ok bool, what, holder string) bool {
	if !ok {
		r.add(what, StepBlocked, fmt.Errorf("%s: not tried because %s could not be released", what, holder))
	}
	return ok
}

// run does one step: skip it if the device is gone, else act. It returns
// whether the thing is released (or, in a dry run, would be).
func (r *releaser) run(what string, present bool, act func() error, hint string) bool {
	if !present {
		r.add(what, StepAlreadyGone, nil)
		return true
	}
	if r.opts.DryRun {
		r.add(what, StepPlanned, nil)
		return true
	}
	err := act()
	switch {
	case err == nil:
		r.add(what, StepDone, nil)
		return true
	case errors.Is(err, ErrDetachDeferred):
		r.add(what, StepDeferred, err)
		return true
	case isGone(err):
		r.add(what, StepAlreadyGone, nil)
		return true
	}
	if hint != "" {
		err = fmt.Errorf("%s: %w; %s", what, err, hint)
	} else {
		err = fmt.Errorf("%s: %w", what, err)
	}
	r.add(what, StepFailed, err)
	return false
}

func (r *releaser) removeDM(d Dev, name, role, hint string) bool {
	what := fmt.Sprintf("remove dm device %s (%s, %s)", name, d, role)
	if hint == "" {
		hint = "something still has it open"
	}
	present := dmPresent(r.h, d, name)
	// A holder (the root array, if md still has the leg) makes removal
	// fail with a bare EBUSY; naming the holder says what to do.
	if holders, _ := r.h.holders(d); present && len(holders) > 0 && !r.opts.DryRun {
		r.add(what, StepFailed, fmt.Errorf("%s: still held by %s; it must let go first (for the root array: remove the live leg from it)", what, strings.Join(holders, ", ")))
		return false
	}
	return r.run(what, present, func() error { return r.a.RemoveDM(name) }, hint)
}

func (r *releaser) detachLoop(what string, d Dev, backing string) bool {
	return r.run(what, loopBoundTo(r.h, d, backing), func() error { return r.a.DetachLoop(d) },
		"something still has "+d.Path+" open; close it")
}

func (r *releaser) unmount(what, mp string, dev Dev) bool {
	present := mounted(r.h, mp, dev)
	hint := fmt.Sprintf("processes still use files under %s: find them with \"fuser -vm %s\", close them", mp, mp)
	if !r.opts.LazyUnmount {
		hint += ", or release with lazy unmount allowed to detach it now and free it when they exit"
	}
	return r.run(what, present, func() error {
		err := r.a.Unmount(mp, 0)
		if errors.Is(err, unix.EBUSY) && r.opts.LazyUnmount {
			if err := r.a.Unmount(mp, unix.MNT_DETACH); err != nil {
				return err
			}
			if r.lazy == nil {
				r.lazy = map[string]bool{}
			}
			r.lazy[mp] = true
			return fmt.Errorf("%s was busy and is detached lazily; it is freed when its last user exits: %w", mp, ErrDetachDeferred)
		}
		if errors.Is(err, unix.EINVAL) {
			// umount2 says EINVAL for "not a mount point": someone
			// unmounted it between our check and now.
			return os.ErrNotExist
		}
		return err
	}, hint)
}

// releaseCOW detaches or resets the COW store and deletes its file if that
// is what holds the memory. It returns whether the COW's memory is freed.
func (r *releaser) releaseCOW(snapOK bool) bool {
	s := r.s
	switch s.COWKind {
	case COWZram:
		what := fmt.Sprintf("reset %s (COW of %s)", s.COW, s.DMName)
		if !r.blockedUnless(snapOK, what, s.DMName) {
			return false
		}
		return r.run(what, zramInUse(r.h, s.COW), func() error { return r.a.ResetZram(s.COW) },
			"something still has "+s.COW.Path+" open")
	case COWBlock:
		r.add(fmt.Sprintf("keep COW device %s of %s", s.COW, s.DMName), StepKept,
			errors.New("a disk, not RAM: nothing to free; its contents are no longer needed"))
		return false
	}
	what := fmt.Sprintf("detach %s (COW of %s, backing %s)", s.COW, s.DMName, s.COWBacking)
	if !r.blockedUnless(snapOK, what, s.DMName) || !r.detachLoop(what, s.COW, s.COWBacking) {
		return false
	}
	if s.COWKind != COWFile {
		return true // unlinked already: detaching freed it
	}
	file := s.COWBacking
	what = "delete COW file " + file
	switch {
	case !ramFS(s.COWFSType) && !r.opts.DeleteDiskCOW:
		r.add(what, StepKept, fmt.Errorf("it is on %s, not in RAM; delete it by hand if the persistent overlay is no longer wanted", fsName(s.COWFSType)))
		return false
	case s.COWInode == 0 && !ramFS(s.COWFSType):
		r.add(what, StepKept, errors.New("cannot prove it is the file the loop used"))
		return false
	}
	present := fileIs(r.h, file, s.COWInode)
	return r.run(what, present, func() error { return r.a.Unlink(file) }, "")
}

func (r *releaser) deleteRAMImage() {
	f := r.s.RAMImage
	r.run("delete RAM copy "+f, fileIs(r.h, f, 0), func() error { return r.a.Unlink(f) }, "")
}

func (r *releaser) eject(ok bool) {
	d := r.s.Medium
	what := "eject " + d.Path
	if !ok {
		r.add(what, StepBlocked, fmt.Errorf("%s: not tried because %s is still mounted or in use; eject the disc by hand later (\"eject %s\")", what, r.s.MediumMount, d.Path))
		return
	}
	if size, err := r.h.readFile("/sys/class/block/" + d.Name + "/size"); err == nil && strings.TrimSpace(size) == "0" {
		r.add(what, StepAlreadyGone, nil)
		return
	}
	if r.opts.DryRun {
		r.add(what, StepPlanned, nil)
		return
	}
	if err := r.a.Eject(d); err != nil {
		r.add(what, StepFailed, fmt.Errorf("%s: %w; close programs using the drive and eject by hand (\"eject %s\")", what, err, d.Path))
		return
	}
	r.add(what, StepDone, nil)
	r.rep.Ejected = true
}

func fsName(t string) string {
	if t == "" {
		return "an unknown filesystem"
	}
	return t
}

func sameFile(a, b string) bool {
	return strings.TrimSuffix(a, deletedSuffix) == strings.TrimSuffix(b, deletedSuffix)
}

// dmPresent: dm names are unique, so dm-N still carrying the name means
// the same device is still there.
func dmPresent(h Host, d Dev, name string) bool {
	n, err := h.dmName(d)
	return err == nil && n == name
}

// loopBoundTo: a loop that is unbound, or rebound to another file, is no
// longer ours to detach.
func loopBoundTo(h Host, d Dev, backing string) bool {
	b, err := h.loopBacking(d)
	return err == nil && b != "" && sameFile(b, backing)
}

func mounted(h Host, mp string, d Dev) bool {
	ms, err := h.mounts()
	if err != nil {
		return true // cannot tell: try, and let umount say
	}
	_, ok := mountByDev(ms, d.Major, d.Minor, mp)
	return ok
}

func zramInUse(h Host, d Dev) bool {
	s, err := h.readFile("/sys/class/block/" + d.Name + "/disksize")
	return err == nil && strings.TrimSpace(s) != "0"
}

// fileIs: the file exists and, when ino is known, is still that inode.
func fileIs(h Host, p string, ino uint64) bool {
	var st unix.Stat_t
	if err := unix.Stat(h.path(p), &st); err != nil {
		return false
	}
	return ino == 0 || st.Ino == ino
}
