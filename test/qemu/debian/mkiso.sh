#!/bin/bash
# mkiso.sh [OUTDIR]: the Debian live medium, the way Fedora-style live media
# are laid out (what dracut's dmsquash-live expects):
#
#   live.iso (iso9660, volume id LIVETEST, BIOS + UEFI bootable by GRUB)
#     LiveOS/squashfs.img   lz4 squashfs holding LiveOS/rootfs.img (ext4, xfs or btrfs,
#                           sized tight: used space + a little slack)
#     boot/vmlinuz          the root's kernel
#     boot/initrd-F.img     one initrd per flavour F (mkinitrd.sh)
#     boot/grub/grub.cfg    one entry per flavour
#
# The live root is the cached Debian root (mkroot.sh) plus what the tests
# need: /usr/bin/livemigrate and /usr/bin/lmtest (static, `make build`;
# lmtest holds the scenarios), lmtest.service with /usr/lib/lmtest/{run,lib.sh}.
#
# OUTDIR (default $LM_OUT/debian) also gets vmlinuz, initrd-F.img (for
# direct kernel boot with -cdrom, which skips GRUB and saves time under
# TCG) and live.env (sizes, UUID, kernel version).
#
# Knobs: LM_FLAVOURS (default "dracut dracut-nosystemd initramfs-tools"),
# LM_LABEL (LIVETEST), LM_ROOTFS_EXTRA_MIB (free space in rootfs.img),
# LM_ROOTFS_MIN_FREE_MIB (64: free space rootfs.img must have),
# LM_ROOTFS_PAYLOAD_MIB (random data checked after migration),
# LM_GRUB_APPEND (added to every GRUB entry, e.g. a test scenario),
# LM_GRUB_DEFAULT (entry id to boot, default the first), LM_GRUB_TIMEOUT (3),
# LM_ISO_NAME (live.iso), LM_DEBIAN_SUITE (bookworm; passed to mkroot.sh),
# LM_ROOTFS_FS (ext4, xfs or btrfs), LM_ROOTFS_CSUM_SEED (see rootfs.img).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
DEB_DIR=$QEMU_DIR/debian

outdir=${1:-$LM_OUT/debian}
label=${LM_LABEL:-LIVETEST}
read -ra flavours <<<"${LM_FLAVOURS:-dracut dracut-nosystemd initramfs-tools}"
iso_name=${LM_ISO_NAME:-live.iso}
need_pkgs squashfs-tools xorriso mtools grub-common grub-pc-bin grub-efi-amd64-bin e2fsprogs
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

T=$EPOCHREALTIME
tarball=$("$DEB_DIR/mkroot.sh")
# shellcheck source=/dev/null
. "${tarball%.tar}.env"
declare -A took=()
took[root]=$(since "$T")

for f in "${flavours[@]}"; do
	t=$EPOCHREALTIME
	"$DEB_DIR/mkinitrd.sh" "$f" "$outdir/initrd-$f.img"
	took[initrd-$f]=$(since "$t")
done

mkdir -p "$LM_CACHE/tmp"
work=$(mktemp -d "$LM_CACHE/tmp/debiso.XXXXXX")
trap 'umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/root

t=$EPOCHREALTIME
mkdir -p "$root"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball"
took[extract]=$(since "$t")

# The binaries under test. lmtest is required (the scenarios need it);
# a live root without livemigrate still boots (for the pipeline itself).
for b in lmtest livemigrate; do
	src=$REPO_ROOT/bin/$b
	if [[ -x $src ]]; then
		file -b "$src" | grep -q 'statically linked' || die "$src is not static"
		install -m 0755 "$src" "$root/usr/bin/$b"
	elif [[ $b == lmtest ]]; then
		die "$src missing; run make build"
	else
		log "WARNING: $src missing; the live root has no livemigrate"
	fi
done
# The test hooks: the harness's fact helpers and the Debian runner, which
# starts the scenarios (lmtest's: `lmtest scenario debian-NAME`), and the
# service that starts it.
install -d "$root/usr/lib/lmtest"
install -m 0644 "$QEMU_DIR/guest/lib.sh" "$root/usr/lib/lmtest/"
install -m 0755 "$DEB_DIR/guest/run" "$root/usr/lib/lmtest/run"
install -m 0644 "$DEB_DIR/guest/lmtest.service" "$root/etc/systemd/system/lmtest.service"
ln -sf /etc/systemd/system/lmtest.service "$root/etc/systemd/system/multi-user.target.wants/lmtest.service"

# livemigrate as a distribution would ship it on the medium: its boot hooks
# installed (initramfs-tools and dracut), so finalize has live hooks to
# take out of the installed system's initramfs.
install -D -m 0755 "$REPO_ROOT/initrd-hook/initramfs-tools/hooks/livemigrate" "$root/usr/share/initramfs-tools/hooks/livemigrate"
install -D -m 0644 "$REPO_ROOT/initrd-hook/initramfs-tools/scripts/livemigrate" "$root/usr/share/initramfs-tools/scripts/livemigrate"
install -d "$root/usr/lib/dracut/modules.d"
cp -a "$REPO_ROOT/initrd-hook/dracut/90livemigrate" "$root/usr/lib/dracut/modules.d/"
# Test settings the installed system inherits, like a cloud image's:
# - GRUB and the kernel on the serial console too (the host reads ttyS0;
#   grub-mkconfig picks this up when finalize runs it), and tsc=reliable,
#   which every guest under TCG gets (test/vm's TCGArgs says why);
# - MODULES=dep for initramfs-tools: finalize's update-initramfs copies the
#   modules this machine needs instead of most of them. Under TCG every
#   process mkinitramfs forks costs milliseconds, and MODULES=most took
#   over 9 minutes; a real machine does it in seconds either way.
install -D -m 0644 /dev/stdin "$root/etc/default/grub.d/lmtest-serial.cfg" <<'CFG'
GRUB_TIMEOUT=1
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=tty0 console=ttyS0,115200 tsc=reliable"
CFG
install -D -m 0644 /dev/stdin "$root/etc/initramfs-tools/conf.d/lmtest-tcg.conf" <<'CFG'
MODULES=dep
CFG

payload_sha=
if ((${LM_ROOTFS_PAYLOAD_MIB:-0} > 0)); then
	install -d "$root/usr/share/lmtest"
	head -c "${LM_ROOTFS_PAYLOAD_MIB}M" /dev/urandom >"$root/usr/share/lmtest/payload"
	payload_sha=$(sha256sum "$root/usr/share/lmtest/payload" | cut -d' ' -f1)
fi

# rootfs.img, sized like real live images: used space + 8% + 64 MiB for
# the journal, metadata and a little room, in 4 MiB steps. A filesystem
# that nearly fills its image makes growing it on the target meaningful.
#  - ext4 (LM_ROOTFS_FS, the default): straight from the directory
#    (mkfs.ext4 -d, no loop mount). On trixie with metadata_csum_seed
#    (LM_ROOTFS_CSUM_SEED, default 1 unless the suite is bookworm): the
#    checksums do not depend on the UUID, so the kernel can give the
#    installed filesystem a new UUID while it is mounted; GRUB 2.12 reads
#    such a filesystem, bookworm's GRUB 2.06 does not.
#  - xfs, btrfs: made empty, mounted by loop and filled with cp -a.
t=$EPOCHREALTIME
rootfs_fs=${LM_ROOTFS_FS:-ext4}
SUITE=${LM_DEBIAN_SUITE:-bookworm}
csum_seed=${LM_ROOTFS_CSUM_SEED:-$([[ $SUITE == bookworm ]] && echo 0 || echo 1)}
case $rootfs_fs in
ext4) ;;
xfs) need_pkgs xfsprogs ;;
btrfs) need_pkgs btrfs-progs ;;
*) die "LM_ROOTFS_FS=$rootfs_fs: want ext4, xfs or btrfs" ;;
esac
used_kib=$(du -sk --apparent-size "$root" | cut -f1)
size_mib=$(((used_kib * 108 / 100 / 1024 + 64 + ${LM_ROOTFS_EXTRA_MIB:-0} + 3) / 4 * 4))
# XFS and btrfs spend more on metadata than ext4 (XFS's per-AG
# reservations, btrfs's duplicated metadata holding the small files):
# start from the blocks the files take, a quarter more, and 128 MiB.
if [[ $rootfs_fs != ext4 ]]; then
	used_blk_kib=$(du -sk "$root" | cut -f1)
	size_mib=$(((used_blk_kib * 125 / 100 / 1024 + 128 + ${LM_ROOTFS_EXTRA_MIB:-0} + 3) / 4 * 4))
fi
img=$work/sq/LiveOS/rootfs.img
mkdir -p "$(dirname "$img")"
# mkrootfs: make $img of $size_mib MiB holding $root; sets free_kib.
mkrootfs() {
	rm -f "$img"
	truncate -s "${size_mib}M" "$img"
	case $rootfs_fs in
	ext4)
		local feat=()
		((csum_seed)) && feat=(-O metadata_csum_seed)
		mkfs.ext4 -q -F -b 4096 -m 0 "${feat[@]}" -L debian-live -d "$root" "$img"
		free_kib=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Free blocks/ { print $2 * 4 }')
		;;
	xfs | btrfs)
		if [[ $rootfs_fs == xfs ]]; then
			mkfs.xfs -q -f -L debian-live "$img"
		else
			mkfs.btrfs -q -f -L debian-live "$img" >/dev/null
		fi
		local mnt=$work/mnt
		mkdir -p "$mnt"
		mount -o loop "$img" "$mnt"
		if cp -a "$root/." "$mnt/" 2>"$work/cp.err"; then
			sync -f "$mnt"
			free_kib=$(df --output=avail -k "$mnt" | tail -n1 | tr -d ' ')
		else
			log "rootfs.img: $size_mib MiB of $rootfs_fs is too small for the root ($(grep -c . "$work/cp.err") files not copied)"
			free_kib=0
		fi
		umount "$mnt"
		;;
	esac
}
# At least LM_ROOTFS_MIN_FREE_MIB (64) free once made: the session's writes
# land there. The estimate falls short on roots of many small files (a
# trixie root: 24 MiB free of 488), so a short image is made once more,
# larger by what it lacked.
min_free_kib=$((${LM_ROOTFS_MIN_FREE_MIB:-64} * 1024))
for try in 1 2 3; do
	mkrootfs
	((free_kib >= min_free_kib)) && break
	((try < 3)) || die "rootfs.img: only $free_kib KiB free in $size_mib MiB after a third try"
	log "rootfs.img: $free_kib KiB free in $size_mib MiB, less than $min_free_kib; making it larger"
	if ((free_kib == 0)); then
		size_mib=$(((size_mib * 5 / 4 + 64 + 3) / 4 * 4))
	else
		size_mib=$(((size_mib + (min_free_kib - free_kib) / 1024 + 3 + 4) / 4 * 4))
	fi
done
uuid=$(blkid -o value -s UUID "$img")
took[rootfs]=$(since "$t")

# lz4: larger than xz/zstd but made in seconds and cheap to read back under
# TCG (squashfs decompression is the slow part of md recovery there).
t=$EPOCHREALTIME
iso=$work/iso
mkdir -p "$iso/LiveOS" "$iso/boot/grub"
mksquashfs "$work/sq" "$iso/LiveOS/squashfs.img" -comp lz4 -noappend -no-xattrs -quiet >/dev/null
took[squashfs]=$(since "$t")

# shellcheck disable=SC2153 # KVER comes from the root's .env
install -m 0644 "$root/boot/vmlinuz-$KVER" "$iso/boot/vmlinuz"
install -m 0644 "$root/boot/vmlinuz-$KVER" "$outdir/vmlinuz"
for f in "${flavours[@]}"; do
	install -m 0644 "$outdir/initrd-$f.img" "$iso/boot/initrd-$f.img"
done

# grub.cfg: GRUB on the serial console as well (tests read ttyS0), one entry
# per flavour. The last console= is /dev/console, so ttyS0 is last.
{
	cat <<EOF
# Debian live test medium (livemigrate test/qemu/debian/mkiso.sh)
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=${LM_GRUB_TIMEOUT:-3}
set default=${LM_GRUB_DEFAULT:-0}
EOF
	for f in "${flavours[@]}"; do
		case $f in
		dracut | dracut-nosystemd | dracut-nohook) args="root=live:CDLABEL=$label rd.live.image" ;;
		initramfs-tools) args="boot=livemigrate root=live:CDLABEL=$label" ;;
		# mkosi-initrd: livemigrate's generator reads root=live: itself.
		mkosi) args="root=live:CDLABEL=$label" ;;
		esac
		cat <<EOF
menuentry "Debian live ($f)" --id $f {
	linux /boot/vmlinuz $args console=tty0 console=ttyS0,115200 tsc=reliable ${LM_GRUB_APPEND:-}
	initrd /boot/initrd-$f.img
}
EOF
	done
} >"$iso/boot/grub/grub.cfg"

t=$EPOCHREALTIME
grub-mkrescue -o "$outdir/$iso_name.tmp" "$iso" -- -volid "$label" >"$work/grub-mkrescue.log" 2>&1 ||
	{ cat "$work/grub-mkrescue.log" >&2; die "grub-mkrescue failed"; }
mv "$outdir/$iso_name.tmp" "$outdir/$iso_name"
took[iso]=$(since "$t")

cat >"$outdir/live.env" <<ENV
LIVE_ISO=$outdir/$iso_name
LIVE_LABEL=$label
LIVE_KVER=$KVER
LIVE_KERNEL=$outdir/vmlinuz
LIVE_FLAVOURS="${flavours[*]}"
LIVE_SUITE=$SUITE
ROOTFS_FS=$rootfs_fs
ROOTFS_CSUM_SEED=$([[ $rootfs_fs == ext4 ]] && echo "$csum_seed" || echo 0)
ROOTFS_UUID=$uuid
ROOTFS_MIB=$size_mib
ROOTFS_USED_KIB=$used_kib
ROOTFS_FREE_KIB=$free_kib
SQUASHFS_BYTES=$(stat -c %s "$iso/LiveOS/squashfs.img")
ISO_BYTES=$(stat -c %s "$outdir/$iso_name")
PAYLOAD_SHA256=$payload_sha
ENV
for k in "${!took[@]}"; do printf 'TOOK_%s=%s\n' "${k//-/_}" "${took[$k]}"; done >>"$outdir/live.env"
log "live medium $outdir/$iso_name: $(du -h "$outdir/$iso_name" | cut -f1); rootfs.img $size_mib MiB ($used_kib KiB used, $free_kib KiB free), squashfs $(du -h "$iso/LiveOS/squashfs.img" | cut -f1), UUID $uuid"
log "timings (s): $(for k in "${!took[@]}"; do printf '%s=%s ' "$k" "${took[$k]}"; done)"
