package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/finalize"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/procfs"
)

// NextRoot is where systemd's soft-reboot looks for the root to switch
// into (systemd 254+).
const NextRoot = "/run/nextroot"

// SwitchRecord is what the switch service writes to SwitchFile as it
// goes: the installed system and the tests read it back. The times are
// CLOCK_MONOTONIC seconds, which a soft-reboot does not reset.
type SwitchRecord struct {
	Target       string      `json:"target"`
	Started      float64     `json:"started_monotonic"`
	Stopped      float64     `json:"session_stopped_monotonic,omitempty"` // the session's services were stopped
	SoftReboot   float64     `json:"soft_reboot_monotonic,omitempty"`     // soft-reboot asked for
	StopSeconds  float64     `json:"stop_seconds,omitempty"`
	Pass2        *CopyReport `json:"pass2,omitempty"`
	Pass2Removed uint64      `json:"pass2_removed"`
	State        string      `json:"state"` // stopping, copying, switching, failed
	Error        string      `json:"error,omitempty"`
}

func monotonic() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func saveSwitch(r *SwitchRecord) {
	b, _ := json.MarshalIndent(r, "", "  ")
	_ = finalize.WriteFileAtomic(SwitchFile, b, 0o644)
}

// LoadSwitch reads the switch's record; nil when there is none.
func LoadSwitch() *SwitchRecord {
	b, err := os.ReadFile(SwitchFile)
	if err != nil {
		return nil
	}
	var r SwitchRecord
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

func loadPlan(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.Method != MethodCopy || p.Copy == nil {
		return nil, fmt.Errorf("%s is not a copy method plan", path)
	}
	return &p, nil
}

// Switch is the switch service (livemigrate-switch.service, 'livemigrate
// switch-root'): it stops the session (isolates SwitchTarget), applies
// the upper layer again over the target and deletes what the session
// removed since the first pass, writes the installed system's fstab and
// finishing service, mounts the target on /run/nextroot and asks systemd
// for a soft-reboot. Anything failing before the soft-reboot puts the
// session back (isolates default.target) and unmounts the target.
func Switch(planPath string, log io.Writer) error {
	p, err := loadPlan(planPath)
	if err != nil {
		return err
	}
	c := p.Copy
	rec := &SwitchRecord{Target: p.Target, Started: monotonic(), State: "stopping"}
	saveSwitch(rec)
	fail := func(err error) error {
		rec.State, rec.Error = "failed", err.Error()
		saveSwitch(rec)
		fmt.Fprintf(log, "livemigrate switch-root: %v; starting the session again\n", err)
		_ = unix.Unmount(NextRoot, 0)
		_ = runCmd("systemctl", "--no-block", "isolate", "default.target")
		_ = unmountAll(c.Staging)
		return err
	}
	if err := runCmd("systemctl", "isolate", SwitchTarget); err != nil {
		return fail(err)
	}
	rec.Stopped = monotonic()
	rec.StopSeconds = rec.Stopped - rec.Started
	rec.State = "copying"
	saveSwitch(rec)
	fmt.Fprintf(log, "livemigrate switch-root: the session stopped in %.1fs; copying what changed since the first pass\n", rec.StopSeconds)
	p1, err := loadPass1()
	if err != nil {
		return fail(err)
	}
	var rep CopyReport
	err = withTree(c, func() error {
		var err error
		rep, err = copyLayers(context.Background(), c, false, nil, p1, nil, nil)
		rec.Pass2 = &rep
		if err != nil {
			return err
		}
		// Gone from the root itself, not from what is mounted over it.
		from := "/"
		if c.Tree != "" {
			from = c.Tree
		}
		rec.Pass2Removed, err = removeGone(c.Staging, from, p1.Names)
		return err
	})
	if err != nil {
		return fail(err)
	}
	removed := rec.Pass2Removed
	if err := installFinish(p); err != nil {
		return fail(err)
	}
	if err := syncDir(c.Staging); err != nil {
		return fail(err)
	}
	if err := unmountAll(c.Staging); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(NextRoot, 0o755); err != nil {
		return fail(err)
	}
	if err := unix.Mount(p.Target, NextRoot, p.FSType, 0, ""); err != nil {
		return fail(fmt.Errorf("mount %s on %s: %w", p.Target, NextRoot, err))
	}
	rec.State, rec.SoftReboot = "switching", monotonic()
	saveSwitch(rec)
	fmt.Fprintf(log, "livemigrate switch-root: %d names copied again (%d unchanged since the first pass), %d deleted, %d removed; soft-rebooting into %s\n", rep.Entries, rep.Unchanged, rep.Deleted, removed, p.Target)
	if err := runCmd("systemctl", "--no-block", "soft-reboot"); err != nil {
		return fail(err)
	}
	return nil
}

// removeGone deletes from the target what the first pass copied from the
// upper layer (or the tmpfs root) and the session has removed since from
// the root seen at from: a name only the upper layer had leaves no
// whiteout when it goes.
func removeGone(staging, from string, names []string) (uint64, error) {
	var n uint64
	for _, rel := range names {
		if rel == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(from, rel)); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		t := filepath.Join(staging, rel)
		if _, err := os.Lstat(t); err != nil {
			continue
		}
		if err := os.RemoveAll(t); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func loadPass1() (*pass1, error) {
	b, err := os.ReadFile(CopyPass1File)
	if err != nil {
		return nil, fmt.Errorf("what the first pass copied: %w", err)
	}
	var p pass1
	if err := json.Unmarshal(b, &p); err != nil || p.UpperStarted.IsZero() {
		return nil, fmt.Errorf("what the first pass copied (%s): %v", CopyPass1File, err)
	}
	return &p, nil
}

// finishUnit runs 'livemigrate finish' once the installed system is up.
const finishUnit = `[Unit]
Description=livemigrate: finish the migration on the installed system
ConditionPathExists=%s
After=local-fs.target systemd-udev-trigger.service

[Service]
# exec, not oneshot: multi-user.target (which wants it) is reached
# without waiting for finalize, which rebuilds an initramfs.
Type=exec
# Finalize formats the ESP: not while udev's coldplug still has the
# disk's partitions open (mkfs.vfat found the ESP busy once).
ExecStartPre=-/usr/bin/udevadm settle --timeout=60
ExecStart=%s finish
StandardOutput=journal+console
Nice=10

[Install]
WantedBy=multi-user.target
`

// installFinish writes the installed system's fstab, its copy of the
// plan and its finishing service onto the target.
func installFinish(p *Plan) error {
	c := p.Copy
	t := func(rel string) string { return filepath.Join(c.Staging, rel) }
	old, _ := os.ReadFile(t("etc/fstab"))
	opts := "defaults"
	pass := "1"
	if p.FSType == "ext4" {
		opts = "errors=remount-ro"
	}
	if p.FSType != "ext4" {
		pass = "0"
	}
	root := fmt.Sprintf("UUID=%s / %s %s 0 %s", c.FSUUID, p.FSType, opts, pass)
	if err := finalize.WriteFileAtomic(t("etc/fstab"), []byte(finalize.FstabFor(string(old), root, "")), 0o644); err != nil {
		return err
	}
	exe := c.Executable
	if exe == "" {
		exe = "/usr/bin/livemigrate"
	}
	if _, err := os.Stat(t(exe)); err != nil {
		// Not on the target (run from somewhere the copy leaves out):
		// put this one there.
		b, err := os.ReadFile("/proc/self/exe")
		if err != nil {
			return err
		}
		exe = "/usr/local/sbin/livemigrate"
		if err := finalize.WriteFileAtomic(t(exe), b, 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(CopyPlanFile)
	if err != nil {
		return err
	}
	if err := finalize.WriteFileAtomic(t(InstalledPlanFile), b, 0o600); err != nil {
		return err
	}
	unit := fmt.Sprintf(finishUnit, InstalledPlanFile, exe)
	if err := finalize.WriteFileAtomic(t("etc/systemd/system/"+FinishUnit), []byte(unit), 0o644); err != nil {
		return err
	}
	wants := t("etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, FinishUnit)
	_ = os.Remove(link)
	return os.Symlink("/etc/systemd/system/"+FinishUnit, link)
}

// FinishResult is what 'livemigrate finish' did, kept in FinishFile.
type FinishResult struct {
	Result *Result       `json:"result,omitempty"`
	Switch *SwitchRecord `json:"switch,omitempty"`
	Error  string        `json:"error,omitempty"`
	Code   int           `json:"code"`
}

// FinishFile keeps the finishing service's outcome on the installed
// system.
const FinishFile = "/var/lib/livemigrate/finish.json"

// Finish is the installed system's side of the copy method ('livemigrate
// finish', run by FinishUnit): on the root the switch moved to, it runs
// the plan's Installed steps (finalize, then the release of the medium)
// and, when they are done, disables itself.
func Finish(ctx context.Context, emit func(Event)) (*Result, error) {
	p, err := loadPlan(InstalledPlanFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, refuse(ExitNotLive, "", "no copy migration to finish here ("+InstalledPlanFile+" does not exist)", "")
	}
	if err != nil {
		return nil, err
	}
	if err := onTarget(p); err != nil {
		return nil, err
	}
	lk, err := Lock()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	if p.Finalize != nil {
		if b, err := os.ReadFile(CopySecretFile); err == nil {
			p.Finalize.Password = string(b)
		}
	}
	r := &Runner{K: NewSysKernel(overlay.ReleaseOptions{}), OnInstalled: true, Eject: p.Copy.Eject, NoRelease: p.Copy.NoRelease, MountPoint: "/", Emit: emit}
	res, err := r.Run(ctx, p)
	out := FinishResult{Result: res, Switch: LoadSwitch(), Code: ExitCode(err)}
	if err != nil {
		out.Error = err.Error()
	}
	b, _ := json.MarshalIndent(&out, "", "  ")
	if werr := finalize.WriteFileAtomic(FinishFile, b, 0o644); werr != nil && err == nil {
		err = werr
	}
	if err == nil {
		_ = os.Remove(CopySecretFile)
		_ = os.Remove("/etc/systemd/system/multi-user.target.wants/" + FinishUnit)
		_ = os.Rename(InstalledPlanFile, InstalledPlanFile+".done")
	}
	return res, err
}

// onTarget refuses to finish anywhere but on the root the plan switched
// to: / must be the filesystem the plan made.
func onTarget(p *Plan) error {
	ms, err := procfs.ReadMountinfo("/")
	if err != nil {
		return err
	}
	var src string
	for _, m := range ms {
		if m.MountPoint == "/" {
			src = m.Source
		}
	}
	want, _ := filepath.EvalSymlinks("/dev/disk/by-uuid/" + p.Copy.FSUUID)
	got, _ := filepath.EvalSymlinks(src)
	if src != p.Target && (want == "" || got != want) {
		return refuse(ExitNotLive, "", fmt.Sprintf("/ is %s, not %s (filesystem UUID %s), where the copy migration switched to", src, p.Target, p.Copy.FSUUID), "")
	}
	return nil
}
