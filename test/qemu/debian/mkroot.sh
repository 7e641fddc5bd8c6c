#!/bin/bash
# mkroot.sh: the root filesystem of a real Debian live system (bookworm, or
# the suite LM_DEBIAN_SUITE names), made
# with mmdebstrap from Debian packages, cached as a tarball. Prints the path
# of the tarball on stdout; its KVER (the kernel version) is in the
# neighbouring .env file.
#
#   mkroot.sh [--force]
#
# The tarball is $LM_CACHE/debian/root-KEY.tar, KEY a hash of the package
# list, this script, configure-root.sh and the host's apt sources: change any and a new root is
# made; otherwise a second run takes no time at all. Downloaded .debs are
# kept in $LM_CACHE/debian/debs-SUITE (a cold rebuild with a warm deb cache skips
# the downloads), and the package lists of the build in
# $LM_CACHE/debian/lists-KEY, with the .debs of the initrd generators
# (dracut, dracut-live) already downloaded: mkinitrd.sh installs them in a
# copy of the root without touching the network.
#
# What is in the image, and why:
#  - systemd-sysv, udev, kmod, util-linux, procps, iproute2, login/passwd:
#    a normal small Debian system; dbus + libpam-systemd so that logind
#    runs and the autologin sessions are real sessions (as on live media);
#  - linux-image-amd64 (pulls in initramfs-tools: Debian's default
#    generator, one of the flavours under test);
#  - e2fsprogs, mdadm, dmsetup: livemigrate's referees in the tests;
#  - sudo + openssh-server: the live user's sudo and the SSH host keys are
#    live-only state that a later issue must scrub on the target;
#  - a user "live" with passwordless sudo and autologin on tty1 and ttyS0,
#    hostname debian-live: what real live media do.
# Not baked in: masking mdadm-shutdown/dracut-shutdown (the tests do that
# on the kernel command line; a real live system has them).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
DEB_DIR=$QEMU_DIR/debian

force=0
while (($#)); do
	case $1 in
	--force) force=1 ;;
	*) die "mkroot.sh: unknown argument $1" ;;
	esac
	shift
done

# LM_DEBIAN_SUITE: bookworm (Debian 12, the default) or trixie (Debian 13).
SUITE=${LM_DEBIAN_SUITE:-bookworm}
# The host's own deb822 sources (a pinned snapshot or a mirror), so the
# guest is built from the same archive state as the host tools; for another
# suite, the same sources with the suite names changed.
SOURCES=${LM_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[[ -r $SOURCES ]] || die "no apt sources at $SOURCES (set LM_DEBIAN_SOURCES)"
if [[ -z ${LM_DEBIAN_SOURCES:-} ]] && ! grep -q "^Suites:.*\b$SUITE\b" "$SOURCES"; then
	host_suite=$(sed -n 's/^Suites: *\([a-z]*\).*/\1/p' "$SOURCES" | head -n1)
	[[ -n $host_suite ]] || die "cannot tell the suite of $SOURCES (set LM_DEBIAN_SOURCES to a deb822 file for $SUITE)"
	mkdir -p "$LM_CACHE/debian"
	sed "/^Suites:/s/\b$host_suite\b/$SUITE/g" "$SOURCES" >"$LM_CACHE/debian/sources-$SUITE"
	SOURCES=$LM_CACHE/debian/sources-$SUITE
fi
PKGS=(systemd-sysv linux-image-amd64 udev kmod util-linux e2fsprogs mdadm
	dmsetup procps iproute2 sudo openssh-server login passwd
	dbus libpam-systemd less
	# What finalize needs to make an install bootable on its own: GRUB's
	# tools and both platforms' files (not grub-pc, whose postinst would
	# want a disk), and mkfs.vfat for the ESP.
	grub2-common grub-pc-bin grub-efi-amd64-bin dosfstools
	# The test drives the wizard in a tmux session (lmtest.ui=tui).
	tmux
	# The XFS and btrfs live roots (LM_ROOTFS_FS): their checkers for the
	# installed system's boot (fsck.xfs, btrfs in the initramfs).
	xfsprogs btrfs-progs)
# Downloaded (not installed) so that mkinitrd.sh can install the dracut
# flavour offline in its own copy of the root.
EXTRA_DEBS=(dracut dracut-live)

need_pkgs mmdebstrap

key=$( {
	printf '%s\n' "$SUITE" "${PKGS[@]}" -- "${EXTRA_DEBS[@]}"
	cat "$0" "$DEB_DIR/configure-root.sh" "$SOURCES"
} | sha256sum | cut -c1-16)
cdir=$LM_CACHE/debian
tarball=$cdir/root-$key.tar
envf=$cdir/root-$key.env
lists=$cdir/lists-$key
# Per suite: a bookworm and a trixie build never see each other's .debs.
debs=$cdir/debs-$SUITE
if ((!force)) && [[ -s $tarball && -s $envf && -d $lists ]]; then
	log "cached root $tarball"
	echo "$tarball"
	exit 0
fi
mkdir -p "$debs" "$lists" "$cdir/tmp"

# Hooks run by mmdebstrap with the root directory as $1. They are plain
# shell strings; keep them here, readable, instead of a hook directory.
hooks=(
	# Reuse the .debs of earlier runs: what is already in
	# /var/cache/apt/archives is not downloaded again (and, with
	# --skip=essential/unlink, not deleted after the essential stage).
	--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && find '$debs' -maxdepth 1 -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives/\" {} +"
	--skip=essential/unlink
	# The initrd generators of the other flavour: download only.
	--customize-hook="chroot \"\$1\" apt-get install -y -qq --download-only ${EXTRA_DEBS[*]}"
	--customize-hook="sync-out /var/cache/apt/archives '$debs'"
	--customize-hook="sync-out /var/lib/apt/lists '$lists'"
	--customize-hook="ls \"\$1/lib/modules\" >'$cdir/tmp/kver.$key'"
	# The live system's configuration (users, autologin, timers).
	--customize-hook="'$DEB_DIR/configure-root.sh' \"\$1\""
)

log "mmdebstrap $SUITE (${#PKGS[@]} packages asked for) -> $tarball"
t=$EPOCHREALTIME
TMPDIR=$cdir/tmp mmdebstrap --mode=root --variant=minbase \
	--include="$(
		IFS=,
		echo "${PKGS[*]}"
	)" \
	--aptopt='Acquire::Languages "none"' \
	"${hooks[@]}" \
	"$SUITE" "$cdir/tmp/root-$key.tar" "$SOURCES" >&2
# (mmdebstrap picks the output format from the name: it must end in .tar.)
mv "$cdir/tmp/root-$key.tar" "$tarball"
kver=$(head -n1 "$cdir/tmp/kver.$key")
rm -f "$cdir/tmp/kver.$key"
[[ -n $kver ]] || die "no kernel in the new root"
cat >"$envf" <<ENV
KVER=$kver
ROOT_KEY=$key
ROOT_TARBALL=$tarball
ROOT_LISTS=$lists
ROOT_DEBS=$debs
ENV
log "root built in $(since "$t") s: $(du -h "$tarball" | cut -f1), kernel $kver"
echo "$tarball"
