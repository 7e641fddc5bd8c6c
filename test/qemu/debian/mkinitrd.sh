#!/bin/bash
# mkinitrd.sh FLAVOUR OUT: build one initrd flavour for the Debian live
# system from the cached root (mkroot.sh), each in its own fresh copy of the
# root so that the generators never see each other's configuration:
#
#   dracut            apt-get install dracut dracut-live (offline: mkroot.sh
#                     downloaded them), then
#                     dracut --no-hostonly --add "dmsquash-live $LM_DRACUT_MODULES"
#   dracut-nosystemd  the same with --omit systemd (dracut's shell init)
#   dracut-nohook     dracut with dmsquash-live as shipped, no livemigrate
#                     module: / is live-rw itself (livemigrate's dm-mirror
#                     method)
#   initramfs-tools   Debian's default generator (already in the root, it
#                     comes with the kernel), with the livemigrate hook and
#                     boot mode from initrd-hook/initramfs-tools if present
#   mkosi             (trixie) apt-get install mkosi (online), then
#                     mkosi-initrd with initrd-hook/systemd's drop-in: an
#                     initrd of Debian packages (systemd, udev, no dracut,
#                     no initramfs-tools) whose boot step is livemigrate's
#                     generator and livemigrate-live.service. mkosi
#                     downloads the packages from the root's own apt
#                     sources; they are kept in $LM_CACHE/debian/mkosi-debs
#
# LM_DRACUT_MODULES (default: "livemigrate" when
# initrd-hook/dracut/90livemigrate exists) names extra dracut modules; the
# livemigrate module is copied into the copy of the root from initrd-hook/.
# LM_INITRD_HOOKS=0 leaves the livemigrate initramfs-tools hooks out.
# Both need bin/livemigrate (static; `make build`), installed in the copy as
# /usr/bin/livemigrate, where the hooks pick it up.
#
# Cached as $LM_CACHE/debian/initrd-FLAVOUR-KEY.img, KEY a hash of the root,
# this script, the hook files and the livemigrate binary.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
DEB_DIR=$QEMU_DIR/debian

flavour=${1:?usage: mkinitrd.sh dracut|dracut-nosystemd|dracut-nohook|initramfs-tools|mkosi OUT}
out=${2:?usage: mkinitrd.sh FLAVOUR OUT}
# LM_INITRD_HOOK_DIR: another copy of initrd-hook/ (to try a change).
hookdir=${LM_INITRD_HOOK_DIR:-$REPO_ROOT/initrd-hook}
lmbin=${LM_BIN:-$REPO_ROOT/bin/livemigrate}

tarball=$("$DEB_DIR/mkroot.sh")
# shellcheck source=/dev/null
. "${tarball%.tar}.env"

# What goes in, per flavour: the inputs of the cache key.
inputs=("$0")
case $flavour in
dracut | dracut-nosystemd | dracut-nohook)
	[[ $flavour == dracut-nohook ]] && LM_DRACUT_MODULES=
	if [[ -z ${LM_DRACUT_MODULES+set} ]]; then
		LM_DRACUT_MODULES=
		[[ -d $hookdir/dracut/90livemigrate ]] && LM_DRACUT_MODULES=livemigrate
	fi
	mods="dmsquash-live${LM_DRACUT_MODULES:+ $LM_DRACUT_MODULES}"
	if [[ " $mods " == *" livemigrate "* ]]; then
		inputs+=("$hookdir"/dracut/90livemigrate/* "$lmbin")
	fi
	desc="dracut --add '$mods'"
	;;
initramfs-tools)
	use_hooks=${LM_INITRD_HOOKS:-1}
	[[ -f $hookdir/initramfs-tools/hooks/livemigrate ]] || use_hooks=0
	if ((use_hooks)); then
		inputs+=("$hookdir"/initramfs-tools/hooks/livemigrate "$hookdir"/initramfs-tools/scripts/livemigrate "$lmbin")
	fi
	desc="mkinitramfs (livemigrate hooks: $use_hooks)"
	;;
mkosi)
	# The units need the binary: there is no mkosi flavour without them.
	inputs+=("$hookdir"/systemd/livemigrate-live.service "$hookdir"/systemd/mkosi-initrd/mkosi.conf.d/50-livemigrate.conf "$lmbin")
	[[ -L $hookdir/systemd/livemigrate-generator ]] || die "missing $hookdir/systemd/livemigrate-generator"
	desc="mkosi-initrd with initrd-hook/systemd"
	;;
*) die "mkinitrd.sh: unknown flavour $flavour" ;;
esac
for f in "${inputs[@]}"; do [[ -r $f ]] || die "missing $f"; done
key=$( {
	echo "$ROOT_KEY $flavour ${mods:-} ${use_hooks:-}"
	cat "${inputs[@]}"
} | sha256sum | cut -c1-16)
cached=$LM_CACHE/debian/initrd-$flavour-$key.img
mkdir -p "$(dirname "$out")"
if [[ -s $cached ]]; then
	log "cached initrd $flavour: $cached"
	cp "$cached" "$out"
	exit 0
fi

mkdir -p "$LM_CACHE/tmp"
work=$(mktemp -d "$LM_CACHE/tmp/initrd-$flavour.XXXXXX")
root=$work/root
mounts=()
cleanup() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
# chroot_mount TYPE SRC DIR [OPTS]: mount inside the copy, undone on exit.
chroot_mount() {
	mkdir -p "$root$3"
	mount ${4:+-o "$4"} -t "$1" "$2" "$root$3"
	mounts+=("$root$3")
}

t0=$EPOCHREALTIME
mkdir -p "$root"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball"
log "root copy for $flavour in $(since "$t0") s"
# mkosi's sandbox pivots into the root, which must be a mount point.
if [[ $flavour == mkosi ]]; then
	mount --bind "$root" "$root"
	mounts+=("$root")
fi
# The generators look at /proc (mounts, cmdline), /sys (modules) and /dev.
chroot_mount proc proc /proc
chroot_mount sysfs sysfs /sys
mkdir -p "$root/dev"
mount --bind /dev "$root/dev"
mounts+=("$root/dev")
if [[ -x $lmbin ]]; then
	file -b "$lmbin" | grep -q 'statically linked' || die "$lmbin is not static"
	install -m 0755 "$lmbin" "$root/usr/bin/livemigrate"
fi

t1=$EPOCHREALTIME
case $flavour in
dracut | dracut-nosystemd | dracut-nohook)
	# Offline install: the package lists and .debs of the root's own build.
	# No recommends (lvm2, nfs, iscsi, python...): mkroot.sh downloaded
	# exactly the hard dependencies, and the initrd needs none of those.
	cp -a "$ROOT_LISTS/." "$root/var/lib/apt/lists/"
	mount --bind "$ROOT_DEBS" "$root/var/cache/apt/archives"
	mounts+=("$root/var/cache/apt/archives")
	# Installing dracut makes its postinst build an initrd for every
	# kernel (about as long as our own build); we throw that one away,
	# so tell dracut's kernel hook to skip it.
	chroot "$root" env DEBIAN_FRONTEND=noninteractive INITRD=No \
		apt-get install -y -qq --no-download --no-install-recommends -o APT::Sandbox::User=root \
		dracut dracut-live >&2
	log "dracut installed in $(since "$t1") s"
	if [[ " $mods " == *" livemigrate "* ]]; then
		rm -rf "$root/usr/lib/dracut/modules.d/90livemigrate"
		cp -r "$hookdir/dracut/90livemigrate" "$root/usr/lib/dracut/modules.d/90livemigrate"
		chmod 0755 "$root"/usr/lib/dracut/modules.d/90livemigrate/*.sh
	fi
	args=(--force --no-hostonly --add "$mods" --kver "$KVER")
	[[ $flavour == dracut-nosystemd ]] && args+=(--omit systemd)
	t2=$EPOCHREALTIME
	chroot "$root" dracut "${args[@]}" /tmp/initrd.img >&2
	log "dracut ${args[*]}: $(since "$t2") s"
	;;
initramfs-tools)
	if ((use_hooks)); then
		install -m 0755 "$hookdir/initramfs-tools/hooks/livemigrate" "$root/etc/initramfs-tools/hooks/livemigrate"
		install -m 0644 "$hookdir/initramfs-tools/scripts/livemigrate" "$root/etc/initramfs-tools/scripts/livemigrate"
	fi
	t2=$EPOCHREALTIME
	chroot "$root" mkinitramfs -o /tmp/initrd.img "$KVER" >&2
	log "mkinitramfs: $(since "$t2") s"
	;;
mkosi)
	[[ -x $lmbin ]] || die "$lmbin missing; run make build"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	# apt's and mkosi's downloads, kept between builds.
	mkdir -p "$LM_CACHE/debian/mkosi-debs"
	mount --bind "$LM_CACHE/debian/mkosi-debs" "$root/var/cache/apt/archives"
	mounts+=("$root/var/cache/apt/archives")
	# Installing mkosi triggers update-initramfs, which this throwaway copy
	# does not need; mkosi-initrd wants a firmware tree to copy (the root
	# has no firmware packages).
	sed -i 's/^update_initramfs=.*/update_initramfs=no/' "$root/etc/initramfs-tools/update-initramfs.conf"
	mkdir -p "$root/usr/lib/firmware"
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	chroot "$root" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends -o APT::Sandbox::User=root -o APT::Keep-Downloaded-Packages=true mkosi >&2
	mkosi_version=$(chroot "$root" mkosi --version)
	log "mkosi installed in $(since "$t1") s ($mkosi_version)"
	# bookworm's mkosi 14 has neither mkosi-initrd's config nor these options.
	if ! [[ $mkosi_version =~ ^mkosi\ ([0-9]+) ]] || ((BASH_REMATCH[1] < 25)); then
		die "the mkosi flavour needs mkosi 25 or later (Debian trixie: LM_DEBIAN_SUITE=trixie); this root has $mkosi_version"
	fi
	# As a livemigrate package would install them (the drop-in's paths).
	install -D -m 0644 "$hookdir/systemd/livemigrate-live.service" "$root/usr/lib/livemigrate/systemd/livemigrate-live.service"
	cp -P "$hookdir/systemd/livemigrate-generator" "$root/usr/lib/livemigrate/systemd/livemigrate-generator"
	install -D -m 0644 "$hookdir/systemd/mkosi-initrd/mkosi.conf.d/50-livemigrate.conf" "$root/etc/mkosi-initrd/mkosi.conf.d/50-livemigrate.conf"
	# What mkosi-initrd runs (mkosi/initrd.py), but for one thing: it adds
	# the modules loaded on the build host (--kernel-modules-include=host),
	# which reads /proc/modules, and this machine's kernel has no modules
	# (and a live medium must not depend on its build host anyway). So:
	# mkosi's initrd config (--include=mkosi-initrd) and our drop-in
	# (--include=/etc/mkosi-initrd), the kernel's modules and image (for
	# the module filter), the root's own apt sources (the sandbox tree,
	# with mkosi's default repositories blanked: they include
	# debian-debug, which this archive does not serve), and the metadata
	# apt-get update just fetched.
	sandbox=/tmp/lm-mkosi-sandbox
	mkdir -p "$root$sandbox/etc"
	cp -a "$root/etc/apt" "$root$sandbox/etc/"
	: >"$root$sandbox/etc/apt/sources.list.d/mkosi.sources"
	mkosi_args=(--force --directory "" --format cpio --output initrd --output-directory /tmp/mkosi-out
		--extra-tree "/usr/lib/modules/$KVER:/usr/lib/modules/$KVER"
		--extra-tree "/boot/vmlinuz-$KVER:/usr/lib/modules/$KVER/vmlinuz"
		--kernel-modules-exclude='.*' --build-sources ""
		--include=mkosi-initrd --include=/etc/mkosi-initrd
		--workspace-dir=/var/tmp --package-cache-dir=/var --cache-only=metadata
		--sandbox-tree "$sandbox")
	t2=$EPOCHREALTIME
	chroot "$root" mkosi "${mkosi_args[@]}" build >&2
	log "mkosi --include=mkosi-initrd (kernel $KVER): $(since "$t2") s"
	# initrd is a link to initrd.cpio.zst.
	cp -L "$root/tmp/mkosi-out/initrd" "$root/tmp/initrd.img"
	;;
esac
install -m 0644 "$root/tmp/initrd.img" "$cached.tmp"
mv "$cached.tmp" "$cached"
cp "$cached" "$out"
log "initrd $flavour ($desc): $(du -h "$out" | cut -f1), $(since "$t0") s in all"
