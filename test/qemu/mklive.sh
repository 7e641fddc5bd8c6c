#!/bin/bash
# mklive.sh OUT.iso: build the test live medium. A small root (static
# busybox, livemigrate, lmtest, Debian's mdadm/e2fsprogs/dmsetup with their
# libraries, the kernel modules, guest/init.sh as /sbin/init; the guest
# scenarios are lmtest's own) goes into an ext4 LiveOS/rootfs.img, that into an lz4
# LiveOS/squashfs.img, that onto an iso9660 image labelled LIVETEST (or
# $LM_LABEL). No boot loader: the tests boot the kernel directly.
# Also leaves OUT's directory a copy of rootfs.img and live.env (sizes, UUID).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:?usage: mklive.sh OUT.iso}
label=${LM_LABEL:-LIVETEST}
kver=$(kernel_version)
mkdir -p "$(dirname "$out")"
outdir=$(cd "$(dirname "$out")" && pwd)
mkdir -p "$LM_CACHE/tmp"
work=$(mktemp -d "$LM_CACHE/tmp/live.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

mk_skeleton "$root"
copy_with_libs "$root" mdadm e2fsck resize2fs blkid dumpe2fs mke2fs dmsetup
# The other filesystems livemigrate grows, for the package tests in the VM.
copy_with_libs "$root" mkfs.xfs xfs_repair mkfs.btrfs btrfs
# LVM, to make a disk an LVM physical volume (the refuse scenario).
copy_with_libs "$root" lvm
# tmux and a few terminal descriptions, for the wizard's test (scenario tui).
copy_with_libs "$root" tmux
for t in t/tmux-256color t/tmux s/screen s/screen-256color x/xterm x/xterm-256color l/linux; do
	for d in /usr/share/terminfo /lib/terminfo; do
		[[ -f $d/$t ]] && { install -D -m 0644 "$d/$t" "$root/usr/share/terminfo/$t"; break; }
	done
done
# tmux insists on a UTF-8 locale; glibc's C.UTF-8 is 400 KiB.
if [[ -d /usr/lib/locale/C.utf8 ]]; then mkdir -p "$root/usr/lib/locale" && cp -r /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"; fi
for t in ext2 ext3 ext4; do ln -sf mke2fs "$root/usr/sbin/mkfs.$t"; done
install_busybox "$root"
install_modules "$root" "$kver"

# The binaries under test. lmtest is required (the scenarios need it);
# livemigrate may not exist yet while the product is being written.
for b in lmtest livemigrate; do
	src=${REPO_ROOT}/bin/$b
	if [[ -x $src ]]; then
		file -b "$src" | grep -q 'statically linked' || die "$src is not static"
		install -m 0755 "$src" "$root/usr/bin/$b"
	elif [[ $b == lmtest ]]; then
		die "$src missing; run make build (or go build ./test/qemu/lmtest)"
	else
		log "WARNING: $src missing; the live root has no livemigrate"
	fi
done

# Package tests that need the real md/dm drivers (go test -c binaries from
# `make vmtest-bins`), run by the gotest scenario.
if compgen -G "$REPO_ROOT/bin/tests/*.test" >/dev/null; then
	install -d "$root/usr/lib/lmtest/tests"
	install -m 0755 "$REPO_ROOT"/bin/tests/*.test "$root/usr/lib/lmtest/tests/"
	# Each test binary runs in a copy of its package's testdata.
	for t in "$REPO_ROOT"/bin/tests/*.test; do
		pkg=$(basename "$t" .test)
		if [[ -d $REPO_ROOT/internal/$pkg/testdata ]]; then
			install -d "$root/usr/lib/lmtest/tests/$pkg"
			cp -r "$REPO_ROOT/internal/$pkg/testdata" "$root/usr/lib/lmtest/tests/$pkg/"
		fi
	done
fi

# Real data in the live root, so that md has something to copy that the
# target boot can check byte for byte (LM_ROOTFS_PAYLOAD_MIB, default none).
payload_sha=
if ((${LM_ROOTFS_PAYLOAD_MIB:-0} > 0)); then
	install -d "$root/usr/share/lmtest"
	head -c "${LM_ROOTFS_PAYLOAD_MIB}M" /dev/urandom >"$root/usr/share/lmtest/payload"
	payload_sha=$(sha256sum "$root/usr/share/lmtest/payload" | cut -d' ' -f1)
fi

# Guest side of the harness.
install -m 0755 "$QEMU_DIR/guest/init.sh" "$root/usr/sbin/init"
install -d "$root/usr/lib/lmtest"
install -m 0644 "$QEMU_DIR"/guest/lib.sh "$root/usr/lib/lmtest/"

# Just enough of /etc for the tools (e2fsck and mdadm look at mtab).
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\ndisk:x:6:\n' >"$root/etc/group"
printf 'root::1::::::\n' >"$root/etc/shadow"
echo lmtest >"$root/etc/hostname"
: >"$root/etc/fstab"
ln -sf /proc/self/mounts "$root/etc/mtab"
mkdir -p "$root/etc/mdadm"
# No udev and no superblocks here: keep mdadm from scanning for arrays.
printf 'AUTO -all\nDEVICE /dev/null\n' >"$root/etc/mdadm/mdadm.conf"
chmod 0700 "$root/root"

# rootfs.img: ext4 filled straight from the directory (no loop mount), sized
# tight like a real live image: used space + 15% + room for the journal and
# metadata, rounded up to 4 MiB. A filesystem that fills its image is what
# makes growing it on the target interesting. The fixed part (64 MiB) also
# leaves the writer room after fault-cowfull's 40 MiB fill: with 48 MiB the
# writer there hit ENOSPC once (a clean-clone run on 2026-12-03, loaded
# host), the filesystem's free space after the fill too close to what the
# records and ext4's reservations need.
used_kib=$(du -sk --apparent-size "$root" | cut -f1)
# The test payload is data, not system: it gets no share of the slack.
payload_kib=$(( ${LM_ROOTFS_PAYLOAD_MIB:-0} * 1024 ))
# LM_ROOTFS_EXTRA_MIB adds free space (sparse, costs nothing on the medium)
# for tests that want a longer md recovery.
size_mib=$(((((used_kib - payload_kib) * 115 / 100 + payload_kib * 102 / 100) / 1024 + 64 + ${LM_ROOTFS_EXTRA_MIB:-0} + 3) / 4 * 4))
img=$work/sq/LiveOS/rootfs.img
mkdir -p "$(dirname "$img")"
truncate -s "${size_mib}M" "$img"
mkfs.ext4 -q -F -b 4096 -m 0 -L liveroot -d "$root" "$img"
uuid=$(blkid -o value -s UUID "$img")

# lz4: much larger than zstd/xz but made in a second and cheap to read back
# under TCG, where squashfs decompression is the slow part of md recovery.
# LM_CONTAINER=erofs packs it into EROFS instead (lz4 too), under the same
# name, as lorax's --rootfs-type erofs-ext4 does.
mkdir -p "$work/iso/LiveOS"
case ${LM_CONTAINER:-squashfs} in
squashfs) mksquashfs "$work/sq" "$work/iso/LiveOS/squashfs.img" -comp lz4 -noappend -no-xattrs -quiet >/dev/null ;;
erofs) mkfs.erofs -zlz4 "$work/iso/LiveOS/squashfs.img" "$work/sq" >/dev/null ;;
*) die "LM_CONTAINER=$LM_CONTAINER: want squashfs or erofs" ;;
esac
xorriso -as mkisofs -quiet -V "$label" -R -J -o "$out.tmp" "$work/iso" 2>/dev/null
mv "$out.tmp" "$out"
cp --sparse=always "$img" "$outdir/rootfs.img"
cat >"$outdir/live.env" <<ENV
LIVE_ISO=$outdir/$(basename "$out")
LIVE_LABEL=$label
LIVE_KVER=$kver
ROOTFS_UUID=$uuid
ROOTFS_MIB=$size_mib
ROOTFS_USED_KIB=$used_kib
ROOTFS_BYTES=$(stat -c %s "$img")
PAYLOAD_SHA256=$payload_sha
ENV
log "live medium $out: $(du -h "$out" | cut -f1); rootfs.img ${size_mib} MiB (${used_kib} KiB used), UUID $uuid"
