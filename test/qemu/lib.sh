# shellcheck shell=bash
# Shared helpers for the QEMU test harness. Sourced, never executed.
#
# Everything heavy (Debian packages, the extracted kernel, built images) lives
# in $LM_CACHE, outside the git tree, so CI on the same machine reuses it.
# Scripts that source this file must already run with `set -euo pipefail`.

# QEMU_DIR and REPO_ROOT are used by the scripts that source this file.
QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034
REPO_ROOT=$(cd "$QEMU_DIR/../.." && pwd)
LM_CACHE=${LM_CACHE:-/var/cache/livemigrate}
LM_OUT=${LM_OUT:-$QEMU_DIR/out}
export LM_CACHE LM_OUT

# Root's tools live in sbin; CI shells do not always have it on PATH.
export PATH=$PATH:/usr/sbin:/sbin

# Never let apt or dpkg ask questions (CI has no stdin).
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# since T0 prints the seconds elapsed since T0 (an $EPOCHREALTIME value).
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'; }

# apt_update_once runs `apt-get update` at most once per process tree, so that
# a fresh machine (no package lists) works without paying for it every time.
apt_update_once() {
	if [[ -z ${LM_APT_UPDATED:-} ]]; then
		log "apt-get update"
		apt-get update -qq >&2
		export LM_APT_UPDATED=1
	fi
}

# need_pkgs PKG... installs the host packages that are missing, so the harness
# runs on a fresh Debian machine. dpkg-query is cheap; apt only runs if needed.
need_pkgs() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
			missing+=("$p")
		fi
	done
	((${#missing[@]} == 0)) && return 0
	log "installing host packages: ${missing[*]}"
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		apt_update_once
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi
}

# The host tools every stage needs. Listed once so fetch/build agree.
# gdisk (sgdisk) and fdisk (sfdisk) are the partition tables' referees in
# make unit (internal/partition), which fails without them.
# shellcheck disable=SC2034 # used by fetch.sh
HOST_PKGS=(qemu-system-x86 busybox-static mdadm e2fsprogs squashfs-tools
	xorriso cpio kmod dmsetup libc-bin file xfsprogs btrfs-progs fdisk gdisk lvm2
	qemu-utils erofs-utils)

# kernel_pkg prints the versioned kernel image package that linux-image-amd64
# currently depends on (e.g. linux-image-6.1.0-56-amd64). Resolved, never
# hardcoded, so a point release of Debian just moves the cache key.
kernel_pkg() {
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	if [[ -z $pkg ]]; then
		apt_update_once
		pkg=$(apt-cache depends linux-image-amd64 |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	fi
	[[ -n $pkg ]] || die "cannot resolve the kernel package behind linux-image-amd64"
	printf '%s\n' "$pkg"
}

# kernel_version prints the version of the kernel that fetch.sh extracted.
# fetch.sh records it in $LM_CACHE/kernel/current so later stages do not need
# apt at all (and stay consistent even if the archive moves on mid-run).
kernel_version() {
	local f=$LM_CACHE/kernel/current
	[[ -s $f ]] || die "no kernel in $LM_CACHE; run test/qemu/fetch.sh first"
	cat "$f"
}

# kernel_root prints the directory the kernel package was extracted into; it
# holds boot/vmlinuz-KVER and lib/modules/KVER.
kernel_root() { printf '%s/kernel/%s/root\n' "$LM_CACHE" "$(kernel_version)"; }

# apt_download PKG DIR fetches PKG's .deb into DIR unless one is already there
# and prints its path. apt-get download works on the current package lists and
# needs no root, but fails when the lists are missing: update once and retry.
apt_download() {
	local pkg=$1 dir=$2 deb
	mkdir -p "$dir"
	deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	if [[ -z $deb ]]; then
		log "apt-get download $pkg"
		# As root apt drops to the _apt user, which cannot write into our
		# cache; tell it not to bother (saves a warning, same result).
		local opt=()
		((EUID == 0)) && opt=(-o APT::Sandbox::User=root)
		if ! (cd "$dir" && apt-get download -qq "${opt[@]}" "$pkg" >&2); then
			apt_update_once
			(cd "$dir" && apt-get download -qq "${opt[@]}" "$pkg" >&2)
		fi
		deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	fi
	[[ -n $deb ]] || die "download of $pkg produced no .deb"
	printf '%s\n' "$deb"
}

# copy_with_libs DESTROOT BIN... copies host binaries into DESTROOT at the same
# path, plus every shared library ldd reports (and the dynamic loader), so
# Debian's own e2fsck/mdadm/... run inside the initramfs or the live root.
copy_with_libs() {
	local dest=$1 name bin lib
	shift
	for name in "$@"; do
		bin=$(command -v "$name") || die "host binary not found: $name"
		install -D -m 0755 "$bin" "$dest$bin"
		# ldd prints "name => /path (addr)" or "/path (addr)" for the loader;
		# statically linked binaries print "not a dynamic executable".
		while read -r lib; do
			[[ -e $dest$lib ]] && continue
			install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
		done < <(ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }')
	done
}

# mk_skeleton DESTROOT creates a merged-/usr root (bin, sbin, lib, lib64 are
# links into usr/, as on Debian bookworm) so that library paths ldd reports on
# the host resolve the same way inside the guest.
mk_skeleton() {
	local dest=$1 d
	mkdir -p "$dest"/usr/{bin,sbin,lib,lib64} "$dest"/{dev,proc,sys,run,tmp,etc,mnt,root,var}
	for d in bin sbin lib lib64; do
		[[ -L $dest/$d ]] || ln -s "usr/$d" "$dest/$d"
	done
	chmod 1777 "$dest/tmp"
}

# install_busybox DESTROOT installs the static busybox from the cache at
# /usr/bin/busybox with a symlink for every applet it was built with, except
# where DESTROOT already has a real binary of that name (e.g. Debian's
# e2fsck or blkid, which are more complete than the applets).
install_busybox() {
	local dest=$1 bb=$LM_CACHE/busybox/bin/busybox applet name
	[[ -x $bb ]] || die "no busybox in $LM_CACHE; run test/qemu/fetch.sh first"
	install -D -m 0755 "$bb" "$dest/usr/bin/busybox"
	# --list-full prints paths like "sbin/mdev" relative to /.
	while read -r applet; do
		case $applet in
		bin/* | sbin/* | usr/bin/* | usr/sbin/*) ;;
		*) continue ;; # linuxrc: not wanted
		esac
		name=${applet##*/}
		[[ -e $dest/usr/bin/$name || -e $dest/usr/sbin/$name ]] && continue
		ln -s /usr/bin/busybox "$dest/usr/${applet#usr/}"
	done < <("$bb" --list-full)
}

# cpio_newc_gz SRCDIR OUT packs SRCDIR as a gzip'd newc cpio (what the kernel
# unpacks as an initramfs). Owned by root whatever the builder's uid.
cpio_newc_gz() {
	local src=$1 out=$2
	(cd "$src" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -6 -n >"$out.tmp"
	mv "$out.tmp" "$out"
}

# Kernel modules the guests load at boot, in this order (each one's
# dependencies are resolved and loaded before it). crc32c_generic must be in
# before ext4 or mounting fails with "Cannot load crc32c"; the IDE (pc) and
# AHCI (q35) CD-ROM paths are both here so either machine type works.
LM_MODULES_BOOT=(virtio_pci virtio_blk
	ata_piix ahci sr_mod cdrom isofs
	loop squashfs crc32c_generic ext4
	dm_mod dm_snapshot md_mod raid1)
# Shipped (with modules.dep, for busybox modprobe) but only loaded on demand
# by a scenario: the other filesystems livemigrate grows, zram, dm-mirror
# (the run-time mirror, internal/dmmirror) and erofs (LM_CONTAINER=erofs).
LM_MODULES_EXTRA=(xfs btrfs zram dm_mirror erofs)

# install_modules DESTROOT KVER installs LM_MODULES_BOOT + LM_MODULES_EXTRA
# and their dependencies from the cached kernel into DESTROOT, writes the
# boot load order to lib/modules/KVER/lm.load (paths relative to that
# directory) and runs depmod so busybox modprobe works there too.
install_modules() {
	local dest=$1 kver=$2 kroot mod line path rel
	kroot=$(kernel_root)
	local src=$kroot/lib/modules/$kver dst=$dest/lib/modules/$kver
	local -A seen=()
	mkdir -p "$dst"
	: >"$dst/lm.load"
	for mod in "${LM_MODULES_BOOT[@]}" "${LM_MODULES_EXTRA[@]}"; do
		# kmod resolves dependencies and softdeps for us; built-in ones
		# print "builtin NAME" and need nothing.
		while read -r line; do
			[[ $line == insmod\ * ]] || continue
			path=${line#insmod }
			path=${path%% *} # drop module options from the host's modprobe.d
			rel=${path#"$src"/}
			# crc32c-intel is a softdep of ext4 but needs SSE4.2, which
			# QEMU's default TCG CPU lacks: crc32c_generic does the job.
			[[ $rel == */crc32c-intel.ko ]] && continue
			[[ -n ${seen[$rel]:-} ]] && continue
			seen[$rel]=1
			install -D -m 0644 "$path" "$dst/$rel"
			if [[ " ${LM_MODULES_EXTRA[*]} " != *" $mod "* ]]; then
				printf '%s\n' "$rel" >>"$dst/lm.load"
			fi
		done < <(modprobe -d "$kroot" -S "$kver" --show-depends "$mod")
	done
	cp "$src"/modules.order "$src"/modules.builtin "$src"/modules.builtin.modinfo "$dst/"
	depmod -b "$dest" "$kver"
}
