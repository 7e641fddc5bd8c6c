package finalize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// kernels lists the kernel versions installed on the root: those with both
// modules and an image in /boot.
func (e *Env) kernels() []string {
	var out []string
	ents, _ := os.ReadDir(e.path("/lib/modules"))
	for _, d := range ents {
		v := d.Name()
		for _, img := range []string{"/boot/vmlinuz-" + v, "/lib/modules/" + v + "/vmlinuz"} {
			if _, err := os.Stat(e.path(img)); err == nil {
				out = append(out, v)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Where the live hooks live, packaged or installed by hand.
var liveHookFiles = []string{
	"/etc/initramfs-tools/hooks/livemigrate",
	"/etc/initramfs-tools/scripts/livemigrate",
	"/usr/share/initramfs-tools/hooks/livemigrate",
	"/usr/share/initramfs-tools/scripts/livemigrate",
}

// DracutInstalledConf keeps the live modules out of every initramfs dracut
// builds from now on. hostonly stays off: / is still on the md array while
// this runs, and a host-only image would look for it at the next boot.
const DracutInstalledConf = `# Written by livemigrate: this system was installed from a live session.
# Its initramfs mounts / directly; the live boot modules are not needed.
omit_dracutmodules+=" livemigrate dmsquash-live dmsquash-live-ntfs "
hostonly="no"
`

// MkosiDropIns are where livemigrate's mkosi-initrd drop-in
// (initrd-hook/systemd/mkosi-initrd) is installed by hand or by a package:
// it adds the binary and the boot units to every initrd mkosi-initrd builds.
var MkosiDropIns = []string{
	"/etc/mkosi-initrd/mkosi.conf.d/50-livemigrate.conf",
	"/usr/lib/mkosi-initrd/mkosi.conf.d/50-livemigrate.conf",
}

// kernelInstallGenerator is initrd_generator= of kernel-install's
// configuration (/etc first, then /usr/lib), or "".
func (e *Env) kernelInstallGenerator() string {
	for _, f := range []string{"/etc/kernel/install.conf", "/usr/lib/kernel/install.conf"} {
		b, err := os.ReadFile(e.path(f))
		if err != nil {
			continue
		}
		gen := ""
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == "initrd_generator" {
				gen = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
		return gen
	}
	return ""
}

func (e *Env) initramfs() (string, error) {
	ks := e.kernels()
	if len(ks) == 0 {
		return "", errors.New("no installed kernel found in /lib/modules with an image in /boot: install the distribution's kernel package")
	}
	// Minutes under emulation: not again for the same kernels. (A kernel
	// installed since gets its initramfs from its own package's hooks.)
	if rec := e.done("initramfs"); rec != nil && rec["kernels"] == strings.Join(ks, " ") {
		return fmt.Sprintf("%s: the initramfs for %s was rebuilt without the live hooks", EarlierRun, strings.Join(ks, ", ")), nil
	}
	// A system that chose mkosi-initrd (kernel-install's
	// initrd_generator=) gets its initrd from it, whatever else is
	// installed: without livemigrate's drop-in, as /boot/initrd.img-KVER,
	// the name GRUB's 10_linux looks for first.
	if e.kernelInstallGenerator() == "mkosi-initrd" {
		mk, err := e.lookPath("mkosi-initrd")
		if err != nil {
			return "", errors.New("kernel-install names mkosi-initrd as the initrd generator (initrd_generator= in /etc/kernel/install.conf), but mkosi-initrd is missing: install mkosi, or name another generator")
		}
		var removed []string
		for _, f := range MkosiDropIns {
			if err := os.Remove(e.path(f)); err == nil {
				removed = append(removed, f)
			}
		}
		for _, k := range ks {
			if _, err := e.run(mk, "--kernel-version", k, "--kernel-image", "/boot/vmlinuz-"+k, "--output-dir", "/boot", "--output", "initrd.img-"+k); err != nil {
				return "", fmt.Errorf("%w (mkosi-initrd builds the initrd from packages: it needs the distribution's package mirror)", err)
			}
		}
		e.record("initramfs", map[string]string{"kernels": strings.Join(ks, " ")})
		msg := fmt.Sprintf("mkosi-initrd: rebuilt the initrd for %s as /boot/initrd.img-KVER", strings.Join(ks, ", "))
		if len(removed) > 0 {
			msg += " without livemigrate's drop-in (" + strings.Join(removed, ", ") + " removed)"
		}
		return msg, nil
	}
	if dr, err := e.lookPath("dracut"); err == nil {
		if err := WriteFileAtomic(e.path("/etc/dracut.conf.d/90-livemigrate-installed.conf"), []byte(DracutInstalledConf), 0o644); err != nil {
			return "", err
		}
		for _, k := range ks {
			if _, err := e.run(dr, "--force", "--kver", k); err != nil {
				return "", err
			}
		}
		e.record("initramfs", map[string]string{"kernels": strings.Join(ks, " ")})
		return fmt.Sprintf("dracut: rebuilt the initramfs for %s without the live modules", strings.Join(ks, ", ")), nil
	}
	if ui, err := e.lookPath("update-initramfs"); err == nil {
		var removed []string
		for _, f := range liveHookFiles {
			if err := os.Remove(e.path(f)); err == nil {
				removed = append(removed, f)
			}
		}
		var byTrigger []string
		for _, k := range ks {
			if len(removed) == 0 && e.rebuiltByTrigger(k) {
				byTrigger = append(byTrigger, k)
				continue
			}
			mode := "-u"
			if _, err := os.Stat(e.path("/boot/initrd.img-" + k)); err != nil {
				mode = "-c"
			}
			if _, err := e.run(ui, mode, "-k", k); err != nil {
				return "", err
			}
		}
		e.record("initramfs", map[string]string{"kernels": strings.Join(ks, " ")})
		msg := fmt.Sprintf("initramfs-tools: rebuilt the initramfs for %s", strings.Join(ks, ", "))
		if len(byTrigger) == len(ks) {
			msg = fmt.Sprintf("initramfs-tools: the initramfs for %s was rebuilt by dpkg's trigger when the live packages were removed, without their scripts", strings.Join(ks, ", "))
		} else if len(byTrigger) > 0 {
			msg += fmt.Sprintf(" (%s by dpkg's trigger when the live packages were removed)", strings.Join(byTrigger, ", "))
		}
		if len(removed) > 0 {
			msg += " after removing the live boot mode (" + strings.Join(removed, ", ") + ")"
		}
		return msg, nil
	}
	return "", errors.New("neither dracut nor update-initramfs is installed, and kernel-install names no mkosi-initrd: install one (initramfs-tools on Debian, dracut on Fedora)")
}

// GRUB cannot use the running root's device: the md array is in build
// mode, with no superblock, so grub-install and grub-probe fail with "disk
// `md127' not found" (they recognise md by the /dev/md name and then look
// for its metadata). GRUB treats any other block device node as a plain
// disk and reads it directly, and reading the array is reading the target
// partition (RAID1 without a superblock keeps the data at offset 0). So
// GRUB's tools run in a private mount namespace, chrooted into a second
// mount of the same filesystem (the kernel hands back the mounted
// superblock: one filesystem, two mount points) made through a node of
// another name. For that mount GRUB writes a core image that finds /boot
// by filesystem UUID (its cross-disk method), and grub-mkconfig writes
// root=UUID=. The namespace, and with it every mount, ends with the
// command.
//
// The run-time mirror leaves / on live-rw, a device-mapper linear map of
// the target partition. GRUB's tools recognise device-mapper by its major
// in /proc/devices, follow a linear map to what it maps, and take that
// partition for a disk they then cannot place ("cannot find a GRUB drive
// for /dev/livemigrate-root"). Reading live-rw is reading the partition
// (offset 0), so the namespace gets a /proc/devices without
// device-mapper's line: the node is then a plain disk to GRUB, as the md
// array's is.
const grubRootScript = `set -eu
node=$1 fstype=$2 esp=$3
shift 3
r=/run/livemigrate/grub-root
mkdir -p "$r"
mount -t "$fstype" "$node" "$r"
for d in dev proc sys; do mount --rbind "/$d" "$r/$d"; done
mount --bind /run "$r/run"
maj=$((0x$(stat -L -c %t "$node")))
if awk -v m="$maj" '$1 == m && $2 == "device-mapper" { f = 1 } END { exit !f }' /proc/devices; then
	grep -v ' device-mapper$' /proc/devices >/run/livemigrate/grub-devices
	mount --bind /run/livemigrate/grub-devices "$r/proc/devices"
fi
if [ -n "$esp" ]; then mount --bind "$esp" "$r$esp"; fi
exec chroot "$r" "$@"
`

// GrubRootNode is the array's second device node (see grubRootScript):
// in /dev (the chroot shares it, and /run is mounted nodev, where a device
// node cannot be opened), under a name that does not start with /dev/md.
const GrubRootNode = "/dev/livemigrate-root"

// grubRoot prepares the node for the running root's device and, if udev
// made no /dev/disk/by-uuid link for the filesystem (grub-mkconfig writes
// root=/dev/... without one), a temporary one. It returns the node and
// the cleanup.
//
// btrfs keeps one path per member device, and a mount through another
// path to the same device renames it (fs/btrfs/volumes.c,
// device_list_add): after the chroot's mount, the running / is shown in
// mountinfo as mounted from GrubRootNode, a node the cleanup removes, so
// findmnt, df and livemigrate itself would look for a device that is
// gone. The cleanup gives the device its name back by scanning RootBlock
// (BTRFS_IOC_SCAN_DEV: the same device under a new path takes the path)
// and checks that mountinfo agrees.
func (e *Env) grubRoot() (string, func() error, error) {
	if e.GrubRoot != nil {
		return e.GrubRoot()
	}
	dev, err := e.rootDevNum()
	if err != nil {
		return "", nil, err
	}
	_ = os.Remove(GrubRootNode)
	if err := unix.Mknod(GrubRootNode, unix.S_IFBLK|0o600, int(dev)); err != nil {
		return "", nil, fmt.Errorf("a device node for / (%d:%d) at %s: %w", unix.Major(dev), unix.Minor(dev), GrubRootNode, err)
	}
	var link string
	if e.FSUUID != "" {
		l := "/dev/disk/by-uuid/" + e.FSUUID
		if _, err := os.Stat(l); err != nil {
			if os.MkdirAll(filepath.Dir(l), 0o755) == nil && os.Symlink(GrubRootNode, l) == nil {
				link = l
			}
		}
	}
	return GrubRootNode, func() error {
		if link != "" {
			_ = os.Remove(link)
		}
		_ = os.Remove(GrubRootNode)
		if e.FSType != "btrfs" || e.RootBlock == "" {
			return nil
		}
		return e.btrfsRename(e.RootBlock)
	}, nil
}

// btrfsRename names the running root's btrfs device path again (see
// grubRoot) and checks mountinfo shows it so.
func (e *Env) btrfsRename(path string) error {
	fix := fmt.Sprintf("run 'btrfs device scan %s' to name it again", path)
	if err := BtrfsScanDev(path); err != nil {
		return fmt.Errorf("GRUB is installed, but btrfs still names / by %s, which is gone: %v; %s", GrubRootNode, err, fix)
	}
	src, err := rootSource(e.Root)
	if err != nil {
		return fmt.Errorf("GRUB is installed, but / could not be checked after naming it %s again: %v", path, err)
	}
	if src != path {
		return fmt.Errorf("GRUB is installed, but btrfs names / by %s, not %s; %s", src, path, fix)
	}
	return nil
}

// rootSource is the source field of /'s mount in root's
// /proc/self/mountinfo.
func rootSource(root string) (string, error) {
	mounts, err := procfs.ReadMountinfo(root)
	if err != nil {
		return "", err
	}
	src := ""
	for _, m := range mounts {
		if m.MountPoint == "/" {
			src = m.Source
		}
	}
	if src == "" {
		return "", errors.New("mountinfo has no mount at /")
	}
	return src, nil
}

// btrfsIocScanDev is BTRFS_IOC_SCAN_DEV, _IOW(0x94, 4, struct
// btrfs_ioctl_vol_args), the call behind 'btrfs device scan PATH'.
const btrfsIocScanDev = 0x50009404

// BtrfsScanDev tells btrfs about the device at path (through
// /dev/btrfs-control), as 'btrfs device scan PATH' does. A variable so
// tests can replace it.
var BtrfsScanDev = func(path string) error {
	var args struct {
		Fd   int64
		Name [4088]byte
	}
	if len(path) >= len(args.Name) {
		return fmt.Errorf("path too long: %s", path)
	}
	copy(args.Name[:], path)
	f, err := os.OpenFile("/dev/btrfs-control", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), btrfsIocScanDev, uintptr(unsafe.Pointer(&args))); errno != 0 {
		return fmt.Errorf("BTRFS_IOC_SCAN_DEV %s: %w", path, errno)
	}
	return nil
}

// rootDevNum is the device number of the block device / is mounted from:
// RootBlock's, else st_dev of / (not a block device on btrfs).
func (e *Env) rootDevNum() (uint64, error) {
	var st unix.Stat_t
	if e.RootBlock != "" {
		if err := unix.Stat(e.RootBlock, &st); err != nil {
			return 0, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return 0, fmt.Errorf("%s is not a block device", e.RootBlock)
		}
		return st.Rdev, nil
	}
	if err := unix.Stat(e.path("/"), &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}

func (e *Env) bootloader() (string, error) {
	fam := e.DetectFamily()
	install, mkconfig, cfg, libdir := "grub-install", "grub-mkconfig", "/boot/grub/grub.cfg", "/usr/lib/grub"
	if fam == Fedora {
		install, mkconfig, cfg = "grub2-install", "grub2-mkconfig", "/boot/grub2/grub.cfg"
	}
	gi, err := e.lookPath(install)
	if err != nil {
		return "", fmt.Errorf("%s is missing: install GRUB (Debian: grub-pc-bin and grub-efi-amd64-bin; Fedora: grub2-pc and grub2-efi-x64)", install)
	}
	gm, err := e.lookPath(mkconfig)
	if err != nil {
		return "", fmt.Errorf("%s is missing: install the GRUB tools package", mkconfig)
	}
	us, err := e.lookPath("unshare")
	if err != nil {
		return "", errors.New("unshare is missing: install util-linux")
	}
	if e.Disk == "" {
		return "", errors.New("no boot disk known")
	}
	// The same disk, ESP and kernels as a finished earlier run: its boot
	// code and menu stand.
	ident := map[string]string{"disk": e.Disk, "esp": e.ESP, "kernels": strings.Join(e.kernels(), " ")}
	if rec := e.done("bootloader"); rec != nil && rec["disk"] == ident["disk"] && rec["esp"] == ident["esp"] && rec["kernels"] == ident["kernels"] {
		msg := EarlierRun + ": " + rec["did"]
		return msg, nil
	}
	bios, efi := e.hasDir(libdir, "i386-pc"), e.ESP != "" && e.hasDir(libdir, "x86_64-efi")
	var missing []string
	if !bios {
		missing = append(missing, "BIOS (install grub-pc-bin)")
	}
	if e.ESP != "" && !efi {
		missing = append(missing, "UEFI (install grub-efi-amd64-bin)")
	}
	if !bios && !efi {
		return "", fmt.Errorf("GRUB has no platform files for %s", strings.Join(missing, " or "))
	}
	node, cleanup, err := e.grubRoot()
	if err != nil {
		return "", err
	}
	// On every way out; on success before the record, so a rerun after a
	// failed cleanup does the whole step again.
	cleaned := false
	defer func() {
		if !cleaned {
			_ = cleanup()
		}
	}()
	fsType := e.FSType
	if fsType == "" {
		fsType = "auto"
	}
	espDir := ""
	if efi {
		espDir = "/boot/efi"
	}
	inRoot := func(args ...string) error {
		out, err := e.run(us, append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", grubRootScript, "livemigrate-grub", node, fsType, espDir}, args...)...)
		if err != nil {
			// Name the GRUB command, not the namespace script around it.
			return fmt.Errorf("%s (run on %s, chrooted into a second mount of /): %s", strings.Join(args, " "), node, lastLines(out, 3))
		}
		return nil
	}
	// The partition table modules go into the core image by name: GRUB
	// probes the filesystem's own device, which has none, but at boot it
	// must look inside the disk's partitions for the UUID.
	mods := "--modules=part_gpt part_msdos"
	var did []string
	if bios {
		if err := inRoot(gi, "--target=i386-pc", mods, "--boot-directory=/boot", e.Disk); err != nil {
			return "", err
		}
		did = append(did, "BIOS on "+e.Disk)
	}
	if efi {
		// --removable: firmware finds EFI/BOOT/BOOTX64.EFI without an NVRAM
		// entry, which this machine's firmware may not even be the one to boot.
		if err := inRoot(gi, "--target=x86_64-efi", mods, "--efi-directory=/boot/efi", "--boot-directory=/boot", "--removable", "--no-nvram"); err != nil {
			return "", err
		}
		did = append(did, "UEFI on "+e.ESP+" (removable path)")
	}
	if err := inRoot(gm, "-o", cfg); err != nil {
		return "", err
	}
	cleaned = true
	if err := cleanup(); err != nil {
		return "", err
	}
	msg := "GRUB for " + strings.Join(did, " and ")
	if len(missing) > 0 {
		msg += "; not for " + strings.Join(missing, ", ")
	}
	ident["did"] = msg
	e.record("bootloader", ident)
	return msg, nil
}

func (e *Env) hasDir(base string, names ...string) bool {
	for _, b := range []string{base, "/usr/lib/grub2", "/usr/share/grub2"} {
		st, err := os.Stat(e.path(filepath.Join(append([]string{b}, names...)...)))
		if err == nil && st.IsDir() {
			return true
		}
	}
	return false
}
