package finalize

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every install from one live image has the image's filesystem UUID, so
// two disks installed from one medium collide in one machine (fstab,
// GRUB's search and the initramfs find / by it). ext4 can take a new UUID
// while mounted (EXT4_IOC_SETFSUUID, Linux 6.0) when its checksums do not
// depend on it: with metadata_csum_seed, or with no checksums at all. GRUB
// reads metadata_csum_seed from 2.12 on. XFS and btrfs change their UUID
// only unmounted (xfs_admin -U, btrfstune -m), which a running root never
// is.

// FSFacts are what decides whether the root filesystem can take a new UUID
// while mounted.
type FSFacts struct {
	Type string // ext4, xfs, btrfs...
	// ext4 only:
	CsumSeed     bool // metadata_csum_seed: checksums seeded apart from the UUID
	Checksums    bool // metadata_csum or gdt_csum (uninit_bg)
	StableInodes bool // stable_inodes (fscrypt's IV_INO_LBLK policies)
	// Kernel is the running kernel's release (uname -r).
	Kernel string
	// Grub is the version of the GRUB finalize installs ("" unknown;
	// GrubVersion reads it).
	Grub string
}

// UUIDPlan says whether finalize gives the root filesystem a new UUID and,
// when not, why. Warning is set when the installed system could not boot
// at all as it is (GRUB too old for the filesystem's features).
type UUIDPlan struct {
	New     bool
	Why     string
	Warning string
}

// PlanUUID decides for the root filesystem f.
func PlanUUID(f FSFacts) UUIDPlan {
	switch f.Type {
	case "ext4":
	case "xfs":
		return UUIDPlan{Why: "XFS changes its UUID only unmounted (xfs_admin -U); the medium's UUID is kept"}
	case "btrfs":
		return UUIDPlan{Why: "btrfs changes its fsid only unmounted (btrfstune -m); the medium's UUID is kept"}
	default:
		return UUIDPlan{Why: fmt.Sprintf("%s cannot change its UUID while mounted; the medium's UUID is kept", orUnknown(f.Type))}
	}
	grub := f.Grub
	var warn string
	if f.CsumSeed && grub != "" && versionLess(grub, "2.12") {
		warn = fmt.Sprintf("GRUB %s cannot read ext4 with metadata_csum_seed, which this filesystem has: the installed system will not boot through it", grub)
	}
	switch {
	case f.Kernel == "":
		return UUIDPlan{Why: "the kernel's release is unknown; the medium's UUID is kept", Warning: warn}
	case !kernelAtLeast(f.Kernel, 6, 0):
		return UUIDPlan{Why: "Linux " + f.Kernel + " cannot change a mounted ext4's UUID (6.0 can); the medium's UUID is kept", Warning: warn}
	case f.StableInodes:
		return UUIDPlan{Why: "the filesystem has stable_inodes (encryption keyed to it); the medium's UUID is kept", Warning: warn}
	case f.Checksums && !f.CsumSeed:
		return UUIDPlan{Why: "its checksums are seeded by the UUID (no metadata_csum_seed), so it changes only unmounted (tune2fs -U); the medium's UUID is kept", Warning: warn}
	case warn != "":
		return UUIDPlan{Why: "GRUB " + grub + " cannot read it with a new UUID either; the medium's UUID is kept", Warning: warn}
	}
	return UUIDPlan{New: true}
}

func orUnknown(s string) string {
	if s == "" {
		return "this filesystem"
	}
	return s
}

// GrubVersion reads the version of the GRUB installed below root from its
// modinfo.sh (grub_version="2.12"), "" when there is none.
func GrubVersion(root string) (string, error) {
	var last error
	for _, p := range []string{"/usr/lib/grub/i386-pc/modinfo.sh", "/usr/lib/grub/x86_64-efi/modinfo.sh"} {
		b, err := os.ReadFile(root + p)
		if err != nil {
			last = err
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "grub_version="); ok {
				return strings.Trim(v, `"'`), nil
			}
		}
	}
	return "", last
}

// versionLess compares dotted numeric versions ("2.06" < "2.12").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(leadingDigits(as[i]))
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(leadingDigits(bs[i]))
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func kernelAtLeast(release string, major, minor int) bool {
	p := strings.SplitN(release, ".", 3)
	if len(p) < 2 {
		return false
	}
	x, err1 := strconv.Atoi(p[0])
	y, err2 := strconv.Atoi(leadingDigits(p[1]))
	if err1 != nil || err2 != nil {
		return false
	}
	return x > major || x == major && y >= minor
}

// EXT4_IOC_GETFSUUID and EXT4_IOC_SETFSUUID: _IOR/_IOW('f', 44, struct
// fsuuid), struct fsuuid being { __u32 fsu_len; __u32 fsu_flags; __u8
// fsu_uuid[]; } (8 bytes before the UUID).
const (
	ext4IocGetFSUUID = 0x8008662c
	ext4IocSetFSUUID = 0x4008662c
)

type fsuuid struct {
	Len, Flags uint32
	UUID       [16]byte
}

// FSUUIDIoctl gets (set == nil) or sets the UUID of the ext4 filesystem
// mounted at dir, returning the UUID it has after the call.
func FSUUIDIoctl(dir string, set *[16]byte) ([16]byte, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return [16]byte{}, err
	}
	defer unix.Close(fd)
	arg := fsuuid{Len: 16}
	req := uintptr(ext4IocGetFSUUID)
	if set != nil {
		arg.UUID, req = *set, ext4IocSetFSUUID
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return [16]byte{}, e
	}
	if set != nil {
		return FSUUIDIoctl(dir, nil)
	}
	return arg.UUID, nil
}

// FormatUUID is the canonical 8-4-4-4-12 lower-case form.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// randomUUID is a version 4 UUID.
func randomUUID() ([16]byte, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return u, err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, false
	}
	for i := 0; i < 16; i++ {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return u, false
		}
		u[i] = byte(v)
	}
	return u, true
}

// fsUUID is the "fs-uuid" action: a new UUID for the root filesystem
// when the plan said it can take one, else what the plan said. It is the
// first action: fstab, the initramfs and GRUB's configuration are then
// written with the new UUID (e.FSUUID).
//
// Cut short, it recognises its own change: the UUID it is about to set is
// recorded (Started) before the ioctl, so a rerun that finds the
// filesystem with that UUID knows the change went through.
func (e *Env) fsUUID() (string, error) {
	if !e.NewUUID {
		why := e.UUIDWhy
		if why == "" {
			why = "the plan keeps it"
		}
		return fmt.Sprintf("kept %s: %s", e.FSUUID, why), nil
	}
	ioc := e.UUIDIoctl
	if ioc == nil {
		ioc = FSUUIDIoctl
	}
	cur, err := ioc(e.path("/"), nil)
	if err != nil {
		return "", fmt.Errorf("read the root filesystem's UUID (EXT4_IOC_GETFSUUID): %w", err)
	}
	now := FormatUUID(cur)
	if rec := e.done("fs-uuid"); rec != nil && rec["new"] == now {
		e.FSUUID = now
		return fmt.Sprintf("%s: the root filesystem's UUID is %s (the medium's was %s)", EarlierRun, now, rec["old"]), nil
	}
	if rec := e.started("fs-uuid"); rec != nil && rec["new"] == now {
		e.FSUUID = now
		e.record("fs-uuid", map[string]string{"old": rec["old"], "new": now})
		return fmt.Sprintf("%s: the root filesystem's UUID is %s (the medium's was %s)", EarlierRun, now, rec["old"]), nil
	}
	u, err := randomUUID()
	if err != nil {
		return "", err
	}
	want := FormatUUID(u)
	if err := e.start("fs-uuid", map[string]string{"old": now, "new": want}); err != nil {
		return "", err
	}
	got, err := ioc(e.path("/"), &u)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return "", fmt.Errorf("the kernel refused a new UUID for the root filesystem (EXT4_IOC_SETFSUUID: %w); it keeps %s, which every install from this medium shares", err, now)
		}
		return "", fmt.Errorf("set the root filesystem's UUID (EXT4_IOC_SETFSUUID): %w; it keeps %s", err, now)
	}
	if FormatUUID(got) != want {
		return "", fmt.Errorf("the root filesystem's UUID is %s after setting %s", FormatUUID(got), want)
	}
	e.FSUUID = want
	e.record("fs-uuid", map[string]string{"old": now, "new": want})
	// udev's /dev/disk/by-uuid link follows the superblock on a change
	// event; GRUB's tools make their own link when there is none.
	if ua, err := e.lookPath("udevadm"); err == nil {
		if dev, err := e.rootDevNum(); err == nil {
			_, _ = e.run(ua, "trigger", "--action=change", "--settle", fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev)))
		}
	}
	return fmt.Sprintf("the root filesystem's UUID is now %s (the medium's, %s, is shared by every install from it)", want, now), nil
}
