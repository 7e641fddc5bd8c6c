#!/bin/bash
# mkiso.sh [OUTDIR]: a Debian live medium as Debian itself builds its
# official live images: live-build (`lb config && lb build`), live-boot in
# the initramfs, / an overlayfs of live/filesystem.squashfs under a tmpfs
# upper layer (redirect_dir=on). No block device holds the root: the copy
# method's medium (issue 14).
#
# The lb build (debootstrap, the packages, mksquashfs, GRUB for BIOS and
# UEFI) runs once per input and is cached in $LM_CACHE/livebuild/KEY,
# keyed by live-build's version, the lb config arguments and the package
# list. Each call then adds the binaries under test as a second squashfs,
# live/lmtest.squashfs (livemigrate, lmtest, lmtest.service and its
# runner): live-boot stacks every live/*.squashfs as a lower layer, so the
# root has two lower layers, as casper's layered media do, and the image
# Debian would ship stays byte for byte what lb built. xorriso adds the
# file to lb's ISO and keeps its boot records (GRUB, BIOS and UEFI).
#
# OUTDIR (default $LM_OUT/livebuild-trixie) gets live.iso, vmlinuz and
# initrd.img (for a direct kernel boot with -cdrom: GRUB skipped, faster
# under TCG) and live.env (kernel version, sizes, the append line). The
# test layer carries the image's manifest (tree.sh) for the checks on the
# targets.
#
# The same system also boots with / a tmpfs (no medium at all, as a
# diskless system does): initrd-tmpfs.img is lb's initramfs plus our
# boot=tmpfsroot script (tmpfsroot) and GNU tar, and the root is unpacked
# from two raw disks, tree.sh's root.tar of the image and layer.tar of the
# test layer (TMPFS_* in live.env).
#
# Knobs: LM_LB_SUITE (trixie); LM_LB_FIRMWARE_APPEND, the words the
# ISO's own GRUB menu adds to the kernel command line (default
# lmtest.scenario=copy-migrate).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"

suite=${LM_LB_SUITE:-trixie}
outdir=${1:-$LM_OUT/livebuild-$suite}
need_pkgs live-build debootstrap squashfs-tools xorriso mtools dosfstools grub-pc-bin grub-efi-amd64-bin libcap2-bin cpio
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# What the image holds: a console system with live-boot and live-config,
# and what the copy tests compare with (rsync, unsquashfs) or look at
# (getcap for ping's capability, getfattr, dpkg's own checks), and GRUB's
# tools, which the copy method's finalize runs in the installed system to
# make it boot alone.
packages=(live-boot live-config live-config-systemd systemd-sysv udev kmod
	e2fsprogs xfsprogs btrfs-progs dosfstools fdisk rsync squashfs-tools
	attr acl libcap2-bin iputils-ping procps
	grub-pc-bin grub-efi-amd64-bin grub2-common)
lb_args=(--distribution "$suite" --mode debian --archive-areas main
	--debian-installer none --binary-images iso-hybrid
	--bootloaders "grub-efi grub-pc" --firmware-binary false
	--firmware-chroot false --apt-recommends false --memtest none
	--mirror-bootstrap http://deb.debian.org/debian
	--mirror-binary http://deb.debian.org/debian
	--security false --updates false --linux-packages linux-image
	--cache-packages true)
lb_version=$(dpkg-query -W -f '${Version}' live-build)
key=$(printf '%s\n' "$lb_version" "${lb_args[@]}" "${packages[@]}" | sha256sum | cut -c1-16)
base=$LM_CACHE/livebuild/$suite-$key

T=$EPOCHREALTIME
if [[ ! -f $base/done ]]; then
	log "building the $suite live-build image in $base (lb build; minutes)"
	rm -rf "$base"
	mkdir -p "$base/lb"
	(
		cd "$base/lb"
		lb config "${lb_args[@]}" >"$base/lb-config.log" 2>&1
		printf '%s\n' "${packages[@]}" >config/package-lists/lmtest.list.chroot
		lb build >"$base/lb-build.log" 2>&1
	) || die "lb build failed: see $base/lb-config.log and $base/lb-build.log"
	iso=$(find "$base/lb" -maxdepth 1 -name '*.iso' | head -n 1)
	[[ -n $iso ]] || die "lb build made no ISO (see $base/lb-build.log)"
	mv "$iso" "$base/base.iso"
	cp "$base/lb/binary/live/"vmlinuz-* "$base/vmlinuz"
	cp "$base/lb/binary/live/"initrd.img-* "$base/initrd.img"
	basename "$base/lb/binary/live/"vmlinuz-* | sed 's/^vmlinuz-//' >"$base/kver"
	unsquashfs -s "$base/lb/binary/live/filesystem.squashfs" >"$base/squashfs.txt"
	# lb's chroot and caches are not needed again.
	rm -rf "$base/lb"
	touch "$base/done"
fi
took_base=$(since "$T")
# The image's manifest and root tarball (tree.sh, cached beside the base).
tree=$("$QEMU_DIR/livebuild/tree.sh" "$base")

# The layer under test.
t=$EPOCHREALTIME
mkdir -p "$LM_CACHE/tmp"
work=$(mktemp -d "$LM_CACHE/tmp/lbiso.XXXXXX")
trap 'rm -rf "$work"' EXIT
layer=$work/layer
for b in lmtest livemigrate; do
	src=$REPO_ROOT/bin/$b
	[[ -x $src ]] || die "$src missing; run make build"
	file -b "$src" | grep -q 'statically linked' || die "$src is not static"
	install -D -m 0755 "$src" "$layer/usr/bin/$b"
done
install -D -m 0644 "$QEMU_DIR/guest/lib.sh" "$layer/usr/lib/lmtest/lib.sh"
install -D -m 0755 "$QEMU_DIR/debian/guest/run" "$layer/usr/lib/lmtest/run"
install -D -m 0644 "$QEMU_DIR/debian/guest/lmtest.service" "$layer/etc/systemd/system/lmtest.service"
# The truth the targets' copies of the image are checked against.
install -D -m 0644 "$tree/manifest.gz" "$layer/usr/lib/lmtest/manifest.gz"
# A file with a capability in the image (trixie's ping has none: it uses
# ICMP sockets), which the copy must keep.
install -D -m 0755 /bin/true "$layer/usr/lib/lmtest/capable"
setcap cap_net_raw+ep "$layer/usr/lib/lmtest/capable"
# As on the Debian test media (debian/mkiso.sh): GRUB and the kernel on
# the serial console, for the installed system grub-mkconfig configures
# when finalize runs it (the firmware boot's console log, and the
# harness's hang detection, need it), with tsc=reliable as every guest
# under TCG (test/vm's TCGArgs); and MODULES=dep, so that
# update-initramfs under TCG packs the modules this machine needs rather
# than most of them.
install -D -m 0644 /dev/stdin "$layer/etc/default/grub.d/lmtest-serial.cfg" <<'CFG'
GRUB_TIMEOUT=1
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=tty0 console=ttyS0,115200 tsc=reliable"
CFG
install -D -m 0644 /dev/stdin "$layer/etc/initramfs-tools/conf.d/lmtest-tcg.conf" <<'CFG'
MODULES=dep
CFG
install -d "$layer/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/lmtest.service "$layer/etc/systemd/system/multi-user.target.wants/lmtest.service"
mksquashfs "$layer" "$work/lmtest.squashfs" -quiet -noappend -all-root -comp gzip >/dev/null
# A firmware boot of the ISO goes through lb's GRUB, whose menu waits on
# the screen with "quiet splash": the test's menu boots the live system
# at once, on the serial console, with the copy method's scenario (direct
# kernel boots never read it).
kver=$(cat "$base/kver")
cat >"$work/grub.cfg" <<GRUB
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Live system (amd64), lmtest" {
	linux	/live/vmlinuz-$kver boot=live components console=ttyS0,115200 panic=1 tsc=reliable findiso=\${iso_path} ${LM_LB_FIRMWARE_APPEND:-lmtest.scenario=copy-migrate}
	initrd	/live/initrd.img-$kver
}
GRUB
rm -f "$outdir/live.iso"
xorriso -indev "$base/base.iso" -outdev "$outdir/live.iso" \
	-map "$work/lmtest.squashfs" /live/lmtest.squashfs \
	-map "$work/grub.cfg" /boot/grub/grub.cfg \
	-boot_image any replay >"$work/xorriso.log" 2>&1 || {
	cat "$work/xorriso.log" >&2
	die "xorriso could not add the test layer"
}
cp "$base/vmlinuz" "$base/initrd.img" "$outdir/"

# The tmpfs-root boot of the same system: lb's initramfs with a boot
# script of ours (boot=tmpfsroot) and GNU tar appended as a second cpio
# archive (the kernel unpacks each in turn), the image's tree as one raw
# disk holding root.tar and the test layer as another holding layer.tar,
# unpacked in that order into a tmpfs mounted as /.
tar --xattrs --xattrs-include='*' --numeric-owner -C "$layer" -cf "$outdir/layer.tar" usr etc
add=$work/initrd-add
mkdir -p "$add/scripts"
cp -a "$tree/initrd-tools/." "$add/"
install -m 0644 "$QEMU_DIR/livebuild/tmpfsroot" "$add/scripts/tmpfsroot"
cp "$base/initrd.img" "$outdir/initrd-tmpfs.img"
# The kernel takes the next archive only at a 4-byte boundary (zeros
# between archives are skipped); lb's compressed one ends anywhere.
truncate -s %512 "$outdir/initrd-tmpfs.img"
(cd "$add" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >>"$outdir/initrd-tmpfs.img"
sq_bytes=$(awk '/^Filesystem size/ { print $3; exit }' "$base/squashfs.txt")
cat >"$outdir/live.env" <<ENV
LIVE_ISO=$outdir/live.iso
LIVE_KERNEL=$outdir/vmlinuz
LIVE_INITRD=$outdir/initrd.img
LIVE_SUITE=$suite
LIVE_KVER=$kver
LIVE_APPEND=boot=live components
SQUASHFS_BYTES=$sq_bytes
LB_VERSION=$lb_version
LB_BASE=$base
TMPFS_INITRD=$outdir/initrd-tmpfs.img
TMPFS_ROOT_TAR=$tree/root.tar
TMPFS_LAYER_TAR=$outdir/layer.tar
TMPFS_APPEND=boot=tmpfsroot tmpfsroot.tar=/dev/disk/by-id/virtio-rootbase,/dev/disk/by-id/virtio-rootlayer
ROOT_TAR_BYTES=$(stat -c %s "$tree/root.tar")
ENV
log "live-build medium $outdir/live.iso: $(du -h "$outdir/live.iso" | cut -f1), kernel $kver, image squashfs $sq_bytes bytes; base ${took_base} s, test layer $(since "$t") s"
