// Package finalize owns turning the migrated root into an installed system,
// on the running system after the filesystem has grown: the ESP and
// /etc/fstab, a regular initramfs without the live hooks, the boot loader
// for BIOS and UEFI, and the scrubbing of what belonged only to the live
// session (autologin, passwordless sudo, empty passwords, machine-id, SSH
// host keys). Each action detects what the distribution ships and says
// what is missing instead of guessing, and records what it finished
// (StatePath) so that a rerun does only what is left. File edits work
// below a root directory so they are tested on fake trees; commands go
// through a Runner.
package finalize

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Env is what finalize works on.
type Env struct {
	Root     string // "/" on the running system
	Run      Runner
	LookPath func(string) (string, error)

	Disk    string // the whole disk that boots: GRUB for BIOS goes there
	RootDev string // the partition (or disk) / now lives on, e.g. /dev/vdb3
	// RootBlock is the block device / is mounted from now (the array,
	// /dev/md127); "" means the device of / (st_dev), which btrfs does
	// not report (its mounts have an anonymous device number).
	RootBlock string
	ESP       string // the EFI system partition to format and mount, "" for none
	FSUUID    string // UUID of the root filesystem (the new one, once fs-uuid gave it)
	// NewUUID: give the root filesystem a new UUID first (PlanUUID said
	// it can); else UUIDWhy says why it keeps the medium's.
	NewUUID bool
	UUIDWhy string
	// UUIDIoctl replaces FSUUIDIoctl in tests.
	UUIDIoctl func(dir string, set *[16]byte) ([16]byte, error)
	FSType    string
	Hostname  string // "" keeps the current one
	// LiveUser is the live session's user; "" finds it (autologin, or uid 1000).
	LiveUser string
	// Password, when set, becomes the live user's password; otherwise the
	// account is locked and finalize says how to set one.
	Password string
	// GrubRoot replaces the device node GRUB's tools use for / in tests
	// (see grubRootScript); it returns the node and a cleanup.
	GrubRoot func() (string, func() error, error)

	st      *state // what earlier runs finished (StatePath)
	espUUID string // the ESP's FAT volume id, once known
}

func (e *Env) path(p string) string { return filepath.Join(e.Root, p) }

func (e *Env) lookPath(name string) (string, error) {
	if e.LookPath != nil {
		return e.LookPath(name)
	}
	// Search the target root's usual directories, not this process's PATH.
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(e.path(p)); err == nil && st.Mode()&0o111 != 0 && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not installed", name)
}

// Family is the distribution family, which decides the tool names.
type Family string

const (
	Debian  Family = "debian"
	Fedora  Family = "fedora"
	Unknown Family = "unknown"
)

// DetectFamily reads /etc/os-release (ID, ID_LIKE).
func (e *Env) DetectFamily() Family {
	b, _ := os.ReadFile(e.path("/etc/os-release"))
	return FamilyFromOSRelease(string(b))
}

// FamilyFromOSRelease maps os-release's ID and ID_LIKE to a family.
func FamilyFromOSRelease(s string) Family {
	ids := ""
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && (k == "ID" || k == "ID_LIKE") {
			ids += " " + strings.Trim(v, `"'`)
		}
	}
	switch {
	case strings.Contains(ids, "debian") || strings.Contains(ids, "ubuntu"):
		return Debian
	case strings.Contains(ids, "fedora") || strings.Contains(ids, "rhel") || strings.Contains(ids, "centos"):
		return Fedora
	}
	return Unknown
}

// Action is one finalize step.
type Action struct {
	Name  string
	Title string
	Run   func(e *Env) (string, error)
}

// Actions lists what finalize does, in order.
func Actions() []Action {
	return []Action{
		{"fs-uuid", "Give the root filesystem its own UUID", (*Env).fsUUID},
		{"esp", "Format and mount the EFI system partition", (*Env).esp},
		{"fstab", "Write /etc/fstab by UUID", (*Env).fstab},
		{"machine-id", "Give the installed system its own machine-id", (*Env).machineID},
		{"ssh-host-keys", "Regenerate the SSH host keys", (*Env).sshKeys},
		{"live-user", "Remove autologin and passwordless sudo of the live session", (*Env).liveUser},
		{"hostname", "Set the hostname", (*Env).hostname},
		{"live-packages", "Remove the live system's boot packages (live-boot, live-config, casper)", (*Env).livePackages},
		{"initramfs", "Build a regular initramfs without the live hooks", (*Env).initramfs},
		{"bootloader", "Install the GRUB boot loader", (*Env).bootloader},
	}
}

// Result of one action.
type Result struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Message string `json:"message"`
	Err     string `json:"error,omitempty"`
}

// Run runs every action, reporting each through emit as it starts and ends;
// it goes on past failures (a missing SSH server must not stop the boot
// loader) and returns them joined.
//
// What an earlier run of the same installation finished (StatePath) is not
// done again: each action checks its record, and the system itself, and
// says "already done by an earlier run" instead.
func Run(e *Env, emit func(r Result, done bool)) ([]Result, error) {
	if e.Run == nil {
		e.Run = ExecRunner
	}
	e.st = e.loadState()
	var out []Result
	var errs []error
	for i, a := range Actions() {
		r := Result{Name: a.Name, Title: a.Title}
		if emit != nil {
			emit(r, false)
		}
		msg, err := a.Run(e)
		if i == 0 && e.st.Ignored != "" {
			msg += fmt.Sprintf(" (an earlier record in %s was ignored: %s)", StatePath, e.st.Ignored)
		}
		if serr := e.saveState(); serr != nil {
			err = errors.Join(err, serr)
		}
		r.Message = msg
		if err != nil {
			r.Err = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", a.Name, err))
		}
		if emit != nil {
			emit(r, true)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// espBusyTries and espBusyWait bound the retries of mkfs.vfat on an ESP
// that is busy for a moment.
var (
	espBusyTries = 10
	espBusyWait  = time.Second
)

// esp formats the EFI system partition and mounts it on /boot/efi. It
// formats only a partition that is blank (as partitioning left it: the
// partition writer zeroes the start and end of every new partition) or
// that this installation began formatting; one that holds any other
// filesystem is refused, whatever the plan calls it.
func (e *Env) esp() (string, error) {
	if e.ESP == "" {
		return "no EFI system partition in partition mode: skipped", nil
	}
	fs, err := e.probe(e.ESP)
	if err != nil {
		return "", err
	}
	mounted, other := e.mountedOn("/boot/efi", e.ESP)
	var msg string
	switch rec, began := e.done("esp"), e.started("esp"); {
	case rec != nil:
		if fs["TYPE"] != "vfat" || fs["UUID"] != rec["uuid"] {
			return "", fmt.Errorf("%s was formatted by an earlier run (FAT volume id %s) but now holds %s: not formatting it again; check what changed it", e.ESP, rec["uuid"], describeFS(fs))
		}
		msg = fmt.Sprintf("%s: %s holds its FAT32 filesystem (volume id %s), not formatted again", EarlierRun, e.ESP, fs["UUID"])
	case fs != nil && began == nil:
		return "", fmt.Errorf("%s already holds %s, which this installation did not create: not formatting it (the partition the plan made for the ESP would be blank); check that it is the disk you meant", e.ESP, describeFS(fs))
	case fs != nil && mounted && fs["TYPE"] == "vfat":
		// Formatted and mounted by an earlier run that stopped before
		// recording it.
		msg = fmt.Sprintf("%s: %s formatted FAT32 (volume id %s), not formatted again", EarlierRun, e.ESP, fs["UUID"])
	default:
		// Blank, or an earlier run of this installation was formatting it.
		if mounted {
			return "", fmt.Errorf("%s is mounted on /boot/efi but holds %s: not formatting a mounted partition", e.ESP, describeFS(fs))
		}
		mkfs, err := e.lookPath("mkfs.vfat")
		if err != nil {
			return "", fmt.Errorf("cannot format %s: mkfs.vfat is missing (install dosfstools)", e.ESP)
		}
		if err := e.start("esp", map[string]string{"dev": e.ESP}); err != nil {
			return "", err
		}
		format := func() ([]byte, error) { return e.run(mkfs, "-F", "32", "-n", "EFI", e.ESP) }
		out, err := format()
		busy := 0
		for ; err != nil && bytes.Contains(out, []byte("Device or resource busy")) && busy < espBusyTries; busy++ {
			// Something held the partition for a moment: seen when
			// finalize runs as the installed system boots (the copy
			// method's finishing service), beside udev's coldplug. Let
			// udev's queue drain, then try again.
			if ua, lerr := e.lookPath("udevadm"); lerr == nil {
				_, _ = e.run(ua, "settle", "--timeout=30")
			}
			time.Sleep(espBusyWait)
			out, err = format()
		}
		if err != nil {
			if busy > 0 {
				return "", fmt.Errorf("%w (still busy after %d more tries; see what holds %s with lsblk and fuser)", err, busy, e.ESP)
			}
			return "", err
		}
		if fs, err = e.probe(e.ESP); err != nil {
			return "", err
		}
		if fs["TYPE"] != "vfat" || !fsUUIDToken(fs["UUID"]) {
			return "", fmt.Errorf("formatted %s, but blkid then found %s", e.ESP, describeFS(fs))
		}
		msg = fmt.Sprintf("%s formatted FAT32 (volume id %s)", e.ESP, fs["UUID"])
		if busy > 0 {
			msg += fmt.Sprintf(" (busy at first: formatted at try %d)", busy+1)
		}
	}
	e.espUUID = fs["UUID"]
	if !mounted {
		if other != "" {
			return "", fmt.Errorf("/boot/efi already has %s mounted on it, not the ESP %s: unmount it and run again", other, e.ESP)
		}
		if err := os.MkdirAll(e.path("/boot/efi"), 0o755); err != nil {
			return "", err
		}
		if _, err := e.run("mount", "-t", "vfat", "-o", "umask=0077", e.ESP, "/boot/efi"); err != nil {
			return "", err
		}
		msg += "; mounted on /boot/efi"
	} else {
		msg += "; mounted on /boot/efi already"
	}
	e.record("esp", map[string]string{"dev": e.ESP, "uuid": fs["UUID"]})
	return msg, nil
}

// probe asks blkid what dev holds, reading the device itself (-p), not
// its cache. It returns nil for a device with no signature at all.
func (e *Env) probe(dev string) (map[string]string, error) {
	out, err := e.run("blkid", "-p", "-o", "export", dev)
	if exitCode(err) == 2 { // blkid: nothing found
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read what %s holds: %w", dev, err)
	}
	kv := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	if kv["TYPE"] == "" && kv["PTTYPE"] == "" {
		return nil, nil
	}
	return kv, nil
}

func describeFS(fs map[string]string) string {
	if fs == nil {
		return "no filesystem"
	}
	if fs["TYPE"] == "" {
		return "a " + fs["PTTYPE"] + " partition table"
	}
	d := "a " + fs["TYPE"] + " filesystem"
	if fs["UUID"] != "" {
		d += " (UUID " + fs["UUID"] + ")"
	}
	return d
}

// mountedOn reports whether dev is mounted on dir, and otherwise what is.
func (e *Env) mountedOn(dir, dev string) (bool, string) {
	b, _ := os.ReadFile(e.path("/proc/self/mounts"))
	other := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[1] != dir {
			continue
		}
		if f[0] == dev || sameDevice(f[0], dev) {
			return true, ""
		}
		other = f[0]
	}
	return false, other
}

func sameDevice(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil || sa.Mode()&os.ModeDevice == 0 {
		return false
	}
	ra, ok1 := sa.Sys().(*syscall.Stat_t)
	rb, ok2 := sb.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && ra.Rdev == rb.Rdev
}

func (e *Env) fstab() (string, error) {
	if e.FSUUID == "" {
		return "", errors.New("the root filesystem has no UUID to mount it by")
	}
	old, _ := os.ReadFile(e.path("/etc/fstab"))
	fsType := e.FSType
	if fsType == "" {
		fsType = "auto"
	}
	pass := "1"
	if fsType == "xfs" || fsType == "btrfs" {
		pass = "0" // their fsck is a no-op
	}
	espUUID := e.espUUID
	if e.ESP != "" && espUUID == "" {
		fs, err := e.probe(e.ESP)
		if err != nil {
			return "", err
		}
		if fs["TYPE"] != "vfat" {
			return "", fmt.Errorf("the EFI system partition %s holds %s, not its FAT filesystem", e.ESP, describeFS(fs))
		}
		espUUID = fs["UUID"]
	}
	if e.ESP != "" && !fsUUIDToken(espUUID) {
		return "", fmt.Errorf("cannot read the UUID of the EFI system partition %s (blkid said %q)", e.ESP, espUUID)
	}
	lines := FstabFor(string(old), fmt.Sprintf("UUID=%s / %s defaults 0 %s", e.FSUUID, fsType, pass), espUUID)
	msg := "root by UUID=" + e.FSUUID
	if espUUID != "" {
		msg += ", /boot/efi by UUID=" + espUUID
	}
	if string(old) == lines {
		if e.done("fstab") != nil {
			return EarlierRun + ": " + msg, nil
		}
		return msg + " (already so)", nil
	}
	if err := WriteFileAtomic(e.path("/etc/fstab"), []byte(lines), 0o644); err != nil {
		return "", err
	}
	e.record("fstab", nil)
	return msg, nil
}

// FstabFor rewrites an fstab for the installed system: the live session's
// entries for / and /boot/efi (and anything naming the live medium or the
// live overlay) go, the user's other entries stay, and root (and the ESP
// when there is one) are added by UUID.
func FstabFor(old, rootLine, espUUID string) string {
	if !fsUUIDToken(espUUID) {
		espUUID = "" // not a UUID blkid prints: no ESP line rather than a broken one
	}
	var keep []string
	for _, l := range strings.Split(old, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			if f[1] == "/" || (espUUID != "" && f[1] == "/boot/efi") ||
				strings.Contains(f[0], "live-rw") || strings.Contains(f[0], "/dev/md127") ||
				strings.HasPrefix(f[1], "/run/initramfs") {
				continue
			}
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, l)
	}
	out := []string{"# written by livemigrate for the installed system", rootLine}
	if espUUID != "" {
		out = append(out, fmt.Sprintf("UUID=%s /boot/efi vfat umask=0077 0 1", espUUID))
	}
	for _, l := range keep {
		if l == "# written by livemigrate for the installed system" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// fsUUIDToken reports whether s looks like a filesystem UUID as blkid
// prints it (hex groups with hyphens; FAT's are 8 hex digits with one).
func fsUUIDToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == '-') {
			return false
		}
	}
	return true
}

func (e *Env) machineID() (string, error) {
	cur, _ := os.ReadFile(e.path("/etc/machine-id"))
	if rec := e.done("machine-id"); rec != nil && rec["id"] != "" && strings.TrimSpace(string(cur)) == rec["id"] {
		return fmt.Sprintf("%s: machine-id %s kept", EarlierRun, rec["id"]), nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := WriteFileAtomic(e.path("/etc/machine-id"), []byte(id+"\n"), 0o444); err != nil {
		return "", err
	}
	// D-Bus keeps a copy on older systems; a link makes it follow.
	dbus := e.path("/var/lib/dbus/machine-id")
	if st, err := os.Lstat(dbus); err == nil && st.Mode().IsRegular() {
		if err := WriteFileAtomic(dbus, []byte(id+"\n"), 0o444); err != nil {
			return "", err
		}
	}
	e.record("machine-id", map[string]string{"id": id})
	return "new machine-id " + id + " (in use from the next boot)", nil
}

func (e *Env) sshKeys() (string, error) {
	keys, _ := filepath.Glob(e.path("/etc/ssh/ssh_host_*_key*"))
	if rec := e.done("ssh-host-keys"); rec != nil && len(keys) > 0 && rec["keys"] == e.hostKeySums(keys) {
		return fmt.Sprintf("%s: its %d host key files kept", EarlierRun, len(keys)), nil
	}
	if len(keys) == 0 {
		if _, err := e.lookPath("sshd"); err != nil {
			return "no SSH server installed: nothing to do", nil
		}
	}
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return "", err
		}
	}
	kg, err := e.lookPath("ssh-keygen")
	if err != nil {
		return fmt.Sprintf("removed %d live host keys; ssh-keygen is missing, so sshd makes new ones at its next start", len(keys)), nil
	}
	if _, err := e.run(kg, "-A"); err != nil {
		return "", err
	}
	made, _ := filepath.Glob(e.path("/etc/ssh/ssh_host_*_key*"))
	e.record("ssh-host-keys", map[string]string{"keys": e.hostKeySums(made)})
	return fmt.Sprintf("replaced %d host key files shared with every copy of the live image", len(keys)), nil
}

// hostKeySums identifies a set of host key files by their names and
// contents (SHA-256), so a rerun knows its own keys from the live image's.
func (e *Env) hostKeySums(files []string) string {
	sort.Strings(files)
	var parts []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(b)
		parts = append(parts, filepath.Base(f)+":"+hex.EncodeToString(sum[:8]))
	}
	return strings.Join(parts, ",")
}

func (e *Env) hostname() (string, error) {
	if e.Hostname == "" {
		return "kept", nil
	}
	if !ValidHostname(e.Hostname) {
		return "", fmt.Errorf("hostname %q: use letters, digits and hyphens, at most 63 characters", e.Hostname)
	}
	old, _ := os.ReadFile(e.path("/etc/hostname"))
	if err := WriteFileAtomic(e.path("/etc/hostname"), []byte(e.Hostname+"\n"), 0o644); err != nil {
		return "", err
	}
	hosts, _ := os.ReadFile(e.path("/etc/hosts"))
	if err := WriteFileAtomic(e.path("/etc/hosts"), []byte(HostsFor(string(hosts), strings.TrimSpace(string(old)), e.Hostname)), 0o644); err != nil {
		return "", err
	}
	return "hostname " + e.Hostname, nil
}

// ValidHostname is RFC 1123's label rule.
func ValidHostname(h string) bool {
	if h == "" || len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// HostsFor replaces the old hostname on the 127.0.1.1 line (Debian's
// convention) or adds that line.
func HostsFor(hosts, old, name string) string {
	var out []string
	done := false
	for _, l := range strings.Split(strings.TrimRight(hosts, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 1 && f[0] == "127.0.1.1" {
			out = append(out, "127.0.1.1\t"+name)
			done = true
			continue
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if !done {
		out = append(out, "127.0.1.1\t"+name)
	}
	_ = old
	return strings.Join(out, "\n") + "\n"
}

// WriteFileAtomic writes p through a temporary file renamed over it, so a
// reader sees the old contents or the new, never part of them.
func WriteFileAtomic(p string, b []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".livemigrate-tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// sortedGlob is filepath.Glob, sorted, below the root.
func (e *Env) sortedGlob(pattern string) []string {
	ms, _ := filepath.Glob(e.path(pattern))
	sort.Strings(ms)
	return ms
}
