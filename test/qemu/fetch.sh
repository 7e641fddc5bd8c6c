#!/bin/bash
# fetch.sh: fill $LM_CACHE (default /var/cache/livemigrate) with what the
# QEMU harness boots: the Debian kernel that linux-image-amd64 points at
# (vmlinuz + modules with a modules.dep) and busybox-static. Idempotent: a
# second run only resolves the package name and finds everything in place.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

need_pkgs "${HOST_PKGS[@]}"

# extract_vmlinux BZIMAGE OUT: unpack the ELF kernel from a bzImage. QEMU
# boots an ELF kernel with a PVH entry note directly (-kernel vmlinux),
# skipping SeaBIOS's loader and the in-guest decompression, which under TCG
# costs several seconds (XZ). Leaves no OUT when that is not possible, and
# the runner then boots the bzImage as usual.
extract_vmlinux() {
	local bz=$1 out=$2 magic off
	rm -f "$out"
	for magic in '\xfd\x37\x7a\x58\x5a\x00' '\x28\xb5\x2f\xfd' '\x1f\x8b\x08'; do
		off=$(LC_ALL=C grep -obUaP "$magic" "$bz" | head -n1 | cut -d: -f1) || true
		[[ -n $off ]] || continue
		# Trailing bytes after the stream make the decompressors complain;
		# what counts is whether an ELF came out.
		case $magic in
		*x7a*) tail -c +$((off + 1)) "$bz" | xz -dc --single-stream >"$out.tmp" 2>/dev/null || true ;;
		*x2f*) tail -c +$((off + 1)) "$bz" | zstd -dcq >"$out.tmp" 2>/dev/null || true ;;
		*) tail -c +$((off + 1)) "$bz" | gzip -dc >"$out.tmp" 2>/dev/null || true ;;
		esac
		# PVH entry point: Xen ELF note type 0x12 (XEN_ELFNOTE_PHYS32_ENTRY).
		if file -b "$out.tmp" | grep -q '^ELF 64-bit' &&
			readelf -n "$out.tmp" 2>/dev/null | grep -q '(0x00000012)'; then
			mv "$out.tmp" "$out"
			log "extracted PVH-bootable $(basename "$out") ($(du -h "$out" | cut -f1))"
			return 0
		fi
		rm -f "$out.tmp"
	done
	log "no PVH ELF kernel in $(basename "$bz"); VMs will boot the bzImage"
}

debs=$LM_CACHE/debs
pkg=$(kernel_pkg)
kver=${pkg#linux-image-}
kdir=$LM_CACHE/kernel/$kver
root=$kdir/root

if [[ ! -e $kdir/.done ]]; then
	need_pkgs xz-utils zstd binutils
	deb=$(apt_download "$pkg" "$debs")
	log "extracting $(basename "$deb")"
	rm -rf "$kdir"
	mkdir -p "$root"
	dpkg-deb -x "$deb" "$root"
	[[ -e $root/boot/vmlinuz-$kver ]] || die "$deb has no boot/vmlinuz-$kver"
	moddir=$root/lib/modules/$kver

	# Debian bookworm ships plain .ko files; newer kernels ship .ko.xz or
	# .ko.zst. busybox's modprobe/insmod cannot read compressed modules, so
	# decompress them here once and let depmod index the plain files.
	ncomp=$(find "$moddir" -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' | wc -l)
	if ((ncomp > 0)); then
		log "decompressing $ncomp compressed modules"
		find "$moddir" -name '*.ko.xz' -exec xz -d {} +
		find "$moddir" -name '*.ko.gz' -exec gzip -d {} +
		find "$moddir" -name '*.ko.zst' -exec zstd -q -d --rm {} +
	fi
	log "depmod $kver"
	depmod -b "$root" "$kver"
	extract_vmlinux "$root/boot/vmlinuz-$kver" "$kdir/vmlinux"
	touch "$kdir/.done"
fi
printf '%s\n' "$kver" >"$LM_CACHE/kernel/current.tmp"
mv "$LM_CACHE/kernel/current.tmp" "$LM_CACHE/kernel/current"

# busybox-static: the static binary both the initramfs and the live root use.
# Taken from the package (not the host's /bin) so the host need not have it.
bbdir=$LM_CACHE/busybox
if [[ ! -x $bbdir/bin/busybox ]]; then
	deb=$(apt_download busybox-static "$debs")
	tmp=$(mktemp -d)
	dpkg-deb -x "$deb" "$tmp"
	install -D -m 0755 "$tmp/bin/busybox" "$bbdir/bin/busybox"
	rm -rf "$tmp"
fi

log "kernel $kver ready in $kdir; busybox in $bbdir"
