package dmmirror

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	devmapper "github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/overlay"
)

// SrcName is the dm device that holds the snapshot while it is a leg of the
// mirror; its UUID is UUIDPrefix plus the live device's name, so that Find
// knows it for ours after a crash.
const (
	SrcName    = "livemigrate-src"
	UUIDPrefix = "LIVEMIGRATE-SRC-"
)

// Throttle is dm-mirror's module parameter for the share of time its copy
// may use (percent, 100 = as fast as it can). It applies to every mirror.
var Throttle = "/sys/module/dm_mirror/parameters/raid1_resync_throttle"

// Mirror is one run-time mirror under a live device, as the kernel shows it.
type Mirror struct {
	Live          string         // live device's dm name (live-rw)
	LiveDev       overlay.Dev    // its number
	Snapshot      overlay.Target // live-rw's own snapshot table, devices as major:minor
	Src           overlay.Dev    // SrcName's number (zero before Insert made it)
	Target        overlay.Dev    // leg 1
	Sectors       uint64         // the mirror's length: the snapshot's
	RegionSectors uint64
}

// Options of Insert.
type Options struct {
	// RegionSectors is dm-mirror's region size; 0 picks RegionSectors(size).
	RegionSectors uint64
}

// Available reports whether the kernel can run a mirror: the mirror and
// snapshot targets are registered (after modprobe dm-mirror), or why not.
func Available() error {
	types, err := overlay.TargetTypes()
	if err != nil {
		return err
	}
	for _, t := range []string{"mirror", "snapshot", "linear"} {
		if _, ok := types[t]; !ok {
			return fmt.Errorf("the kernel has no dm %q target (modprobe dm-mirror)", t)
		}
	}
	return nil
}

func devOf(devno uint64, name string) overlay.Dev {
	d := overlay.Dev{Major: unix.Major(devno), Minor: unix.Minor(devno)}
	d.Name = "dm-" + strconv.FormatUint(uint64(d.Minor), 10)
	if name != "" {
		d.Path = "/dev/mapper/" + name
	}
	return d
}

func majmin(d overlay.Dev) string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// liveSnapshot reads live's info and its one snapshot target.
func liveSnapshot(live string) (overlay.Dev, overlay.Target, *devmapper.DeviceInfo, error) {
	info, err := devmapper.InfoByName(live)
	if err != nil {
		return overlay.Dev{}, overlay.Target{}, nil, fmt.Errorf("dm device %s: %w", live, err)
	}
	d := devOf(info.DevNo, live)
	ts, err := overlay.KernelQuerier{}.DMTable(d)
	if err != nil {
		return d, overlay.Target{}, info, err
	}
	if len(ts) != 1 || ts[0].Type != "snapshot" || ts[0].Start != 0 {
		return d, overlay.Target{}, info, fmt.Errorf("%s is not one dm snapshot (its table: %s)", live, describe(ts))
	}
	return d, ts[0], info, nil
}

func describe(ts []overlay.Target) string {
	var b []string
	for _, t := range ts {
		b = append(b, fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params))
	}
	if len(b) == 0 {
		return "none"
	}
	return strings.Join(b, "; ")
}

// lockMemory keeps the pages this process has mapped in RAM until the
// returned function runs: while live-rw is suspended, a page fault on a
// file of the root filesystem (this binary's own code) would wait for the
// resume this process is to issue. New anonymous memory needs no file, so
// MCL_CURRENT is enough, and MCL_FUTURE would fault in whole heap arenas.
func lockMemory() (func(), error) {
	if err := unix.Mlockall(unix.MCL_CURRENT); err != nil {
		return nil, fmt.Errorf("lock memory before suspending the root device: %w", err)
	}
	return func() { _ = unix.Munlockall() }, nil
}

// Insert puts a mirror under the live snapshot device live: its snapshot
// moves to SrcName and live becomes a mirror of SrcName onto target. On an
// error nothing is left changed, or the error says what is. It starts only
// from Untouched: what an interrupted run left is Settle's to undo first.
func Insert(live string, target overlay.Dev, opt Options) (*Mirror, error) {
	liveDev, snap, info, err := liveSnapshot(live)
	if err != nil {
		return nil, err
	}
	if info.Flags&unix.DM_SUSPEND_FLAG != 0 {
		return nil, fmt.Errorf("%s is suspended: something else is changing it", live)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		return nil, fmt.Errorf("a dm device %s exists already: a migration was interrupted (Settle finishes or undoes it; livemigrate status shows it)", SrcName)
	}
	if info.Flags&unix.DM_INACTIVE_PRESENT_FLAG != 0 {
		return nil, fmt.Errorf("%s has a table loaded that is not live: something else is changing it", live)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	size, err := overlay.DeviceSize(target.Path)
	if err != nil {
		return nil, fmt.Errorf("size of the target %s: %w", target.Path, err)
	}
	if size/512 < snap.Length {
		return nil, fmt.Errorf("the target %s has %d sectors, %s needs %d", target.Path, size/512, live, snap.Length)
	}
	region := opt.RegionSectors
	if region == 0 {
		region = RegionSectors(snap.Length)
	}
	m := &Mirror{Live: live, LiveDev: liveDev, Snapshot: snap, Target: target, Sectors: snap.Length, RegionSectors: region}

	// Everything that can be prepared while live runs: the source device
	// with the snapshot table (not resumed, so it holds no exceptions yet)
	// and live's mirror table, loaded inactive.
	if err := devmapper.Create(SrcName, UUIDPrefix+live); err != nil {
		return nil, fmt.Errorf("create %s: %w", SrcName, err)
	}
	undo := func(err error, clearLive bool) error {
		var also []string
		if clearLive {
			if cerr := overlay.ClearTable(live); cerr != nil {
				also = append(also, cerr.Error())
			}
		}
		if rerr := devmapper.Remove(SrcName); rerr != nil {
			also = append(also, fmt.Sprintf("remove %s: %v", SrcName, rerr))
		}
		if len(also) > 0 {
			return fmt.Errorf("%w; undoing it also failed: %s", err, strings.Join(also, "; "))
		}
		return err
	}
	if err := overlay.LoadTable(SrcName, []overlay.Target{snap}); err != nil {
		return nil, undo(fmt.Errorf("load the snapshot table into %s: %w", SrcName, err), false)
	}
	sinfo, err := devmapper.InfoByName(SrcName)
	if err != nil {
		return nil, undo(fmt.Errorf("query %s: %w", SrcName, err), false)
	}
	m.Src = devOf(sinfo.DevNo, SrcName)
	params, err := MirrorParams(majmin(m.Src), majmin(target), region)
	if err != nil {
		return nil, undo(err, false)
	}
	if err := overlay.LoadTable(live, []overlay.Target{{Length: snap.Length, Type: "mirror", Params: params}}); err != nil {
		return nil, undo(fmt.Errorf("load the mirror table into %s (%s): %w", live, params, err), false)
	}

	unlock, err := lockMemory()
	if err != nil {
		return nil, undo(err, true)
	}
	defer unlock()
	// From here to the resume of live, the root is frozen: no file I/O.
	if err := devmapper.Suspend(live); err != nil {
		return nil, undo(fmt.Errorf("suspend %s: %w", live, err), true)
	}
	if err := devmapper.Resume(SrcName); err != nil {
		// No handover happened: live keeps its exceptions.
		err = fmt.Errorf("hand the snapshot over to %s: %w", SrcName, err)
		if rerr := resumeWithoutSrc(live); rerr != nil {
			return nil, fmt.Errorf("%w; %v", err, rerr)
		}
		return nil, err
	}
	if err := devmapper.Resume(live); err != nil {
		// The exceptions are on SrcName now: hand them back.
		err = fmt.Errorf("resume %s with the mirror: %w", live, err)
		if berr := m.restore(); berr != nil {
			return nil, fmt.Errorf("%w; restoring the snapshot failed too: %v", err, berr)
		}
		return nil, err
	}
	return m, nil
}

// resumeWithoutSrc resumes a suspended live on its own snapshot table when
// SrcName never took the exceptions over: live's loaded mirror table goes
// first (it holds SrcName open), then SrcName, whose snapshot table is a
// pending handover destination; while that exists the kernel refuses to
// resume the source ("Unable to resume snapshot source until handover
// completes").
func resumeWithoutSrc(live string) error {
	var errs []error
	if err := overlay.ClearTable(live); err != nil {
		errs = append(errs, err)
	}
	if _, err := devmapper.InfoByName(SrcName); err == nil {
		if err := devmapper.Remove(SrcName); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", SrcName, err))
		}
	}
	if err := devmapper.Resume(live); err != nil {
		errs = append(errs, fmt.Errorf("resume %s: %w: the root device is suspended", live, err))
	}
	return errors.Join(errs...)
}

// Status reads the mirror's status from the kernel.
func (m *Mirror) Status() (Status, error) {
	ts, err := overlay.KernelQuerier{}.DMStatus(m.LiveDev)
	if err != nil {
		return Status{}, err
	}
	if len(ts) != 1 || ts[0].Type != "mirror" {
		return Status{}, fmt.Errorf("%s is not a mirror now (its status: %s)", m.Live, describe(ts))
	}
	return ParseStatus(ts[0].Params)
}

// ErrNotInSync is Switch's answer when the target does not yet hold
// everything, or a leg has failed.
var ErrNotInSync = errors.New("the target is not in sync")

// Switch makes live a linear map of the whole target (growTo sectors, at
// least the mirror's length; 0 means the mirror's length) once the mirror
// is in sync, and removes SrcName. The sync is checked again while live is
// suspended, so no write can slip in between.
func (m *Mirror) Switch(growTo uint64) error {
	if growTo == 0 {
		growTo = m.Sectors
	}
	if growTo < m.Sectors {
		return fmt.Errorf("switch %s: %d sectors is less than the mirror's %d", m.Live, growTo, m.Sectors)
	}
	st, err := m.Status()
	if err != nil {
		return err
	}
	if !st.InSync() {
		return fmt.Errorf("%w: %d/%d regions, legs %s", ErrNotInSync, st.InSyncRegions, st.Regions, st.Health)
	}
	lin := []overlay.Target{{Length: growTo, Type: "linear", Params: majmin(m.Target) + " 0"}}
	if err := overlay.LoadTable(m.Live, lin); err != nil {
		return fmt.Errorf("load the linear table into %s: %w", m.Live, err)
	}
	unlock, err := lockMemory()
	if err != nil {
		return errors.Join(err, overlay.ClearTable(m.Live))
	}
	defer unlock()
	if err := devmapper.Suspend(m.Live); err != nil {
		return errors.Join(fmt.Errorf("suspend %s: %w", m.Live, err), overlay.ClearTable(m.Live))
	}
	st, err = m.Status()
	if err == nil && !st.InSync() {
		err = fmt.Errorf("%w once suspended: %d/%d regions, legs %s", ErrNotInSync, st.InSyncRegions, st.Regions, st.Health)
	}
	if err != nil {
		cerr := overlay.ClearTable(m.Live)
		if rerr := devmapper.Resume(m.Live); rerr != nil {
			return fmt.Errorf("%w; resuming %s with the mirror failed: %v (clear: %v): the root device is suspended", err, m.Live, rerr, cerr)
		}
		return errors.Join(err, cerr)
	}
	if err := devmapper.Resume(m.Live); err != nil {
		return fmt.Errorf("resume %s on the target: %w", m.Live, err)
	}
	unlock()
	return m.removeSrc()
}

// removeSrc removes SrcName once nothing uses it.
func (m *Mirror) removeSrc() error {
	if err := devmapper.Remove(SrcName); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("remove %s: %w", SrcName, err)
	}
	return nil
}

// Abort puts the session back on its snapshot: live gets the snapshot
// table again and, with SrcName suspended, takes the exceptions back on
// resume; SrcName is removed. The target is left as the copy left it.
func (m *Mirror) Abort() error {
	return m.restore()
}

func (m *Mirror) restore() error {
	if err := overlay.LoadTable(m.Live, []overlay.Target{m.Snapshot}); err != nil {
		return fmt.Errorf("load the snapshot table into %s again: %w", m.Live, err)
	}
	unlock, err := lockMemory()
	if err != nil {
		return errors.Join(err, overlay.ClearTable(m.Live))
	}
	defer unlock()
	if err := suspendIfNeeded(m.Live); err != nil {
		return errors.Join(err, overlay.ClearTable(m.Live))
	}
	if err := suspendIfNeeded(SrcName); err != nil {
		cerr := overlay.ClearTable(m.Live)
		return errors.Join(err, cerr, devmapper.Resume(m.Live))
	}
	if err := devmapper.Resume(m.Live); err != nil {
		return fmt.Errorf("resume %s on its snapshot: %w (%s is suspended, %s holds the snapshot)", m.Live, err, m.Live, SrcName)
	}
	unlock()
	return m.removeSrc()
}

func suspendIfNeeded(name string) error {
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return fmt.Errorf("dm device %s: %w", name, err)
	}
	if info.Flags&unix.DM_SUSPEND_FLAG != 0 {
		return nil
	}
	if err := devmapper.Suspend(name); err != nil {
		return fmt.Errorf("suspend %s: %w", name, err)
	}
	return nil
}

// SetThrottle sets the share of time (1..100 percent) dm-mirror's copy may
// take; it applies to the mirror at once, without a reload.
func SetThrottle(percent int) error {
	if percent < 1 || percent > 100 {
		return fmt.Errorf("mirror copy throttle %d%%: want 1..100", percent)
	}
	if err := os.WriteFile(Throttle, []byte(strconv.Itoa(percent)), 0); err != nil {
		return fmt.Errorf("set the mirror's copy throttle: %w", err)
	}
	return nil
}
