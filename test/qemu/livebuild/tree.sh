#!/bin/bash
# tree.sh BASE: what the copy tests derive from the image live-build made
# (BASE is mkiso.sh's cached $LM_CACHE/livebuild/KEY, holding base.iso),
# each made once and cached in BASE/tree-KEY (KEY: this script and the
# manifest format, test/qemu/lmtest/manifest.go):
#
#   manifest.gz   the manifest of live/filesystem.squashfs's tree (`lmtest
#                 manifest`: type, mode, owner, size, mtime, SHA-256,
#                 xattrs of every entry), made here on the host from the
#                 image itself, the truth the targets are checked against;
#   root.tar      the same tree as a tar archive with xattrs and ACLs, the
#                 root tarball of the tmpfs-root boot (mkiso.sh);
#   initrd-tools/ GNU tar from that tree and the libraries it needs, in
#                 usr/lib/tmpfsroot, for that boot's unpacking.
#
# Prints the directory.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"

base=${1:?usage: tree.sh BASE}
[[ -f $base/base.iso ]] || die "$base/base.iso missing: run mkiso.sh"
need_pkgs squashfs-tools xorriso tar
lmtest=$REPO_ROOT/bin/lmtest
[[ -x $lmtest ]] || die "$lmtest missing; run make build"
key=$(cat "$0" "$REPO_ROOT/test/qemu/lmtest/manifest.go" | sha256sum | cut -c1-12)
tree=$base/tree-$key
if [[ -f $tree/done ]]; then
	echo "$tree"
	exit 0
fi
T=$EPOCHREALTIME
log "deriving the manifest and the root tarball from $base/base.iso in $tree"
rm -rf "$base"/tree-*
mkdir -p "$tree" "$LM_CACHE/tmp"
work=$(mktemp -d "$LM_CACHE/tmp/lbtree.XXXXXX")
trap 'rm -rf "$work"' EXIT
xorriso -osirrox on -indev "$base/base.iso" -extract /live/filesystem.squashfs "$work/filesystem.squashfs" >"$work/xorriso.log" 2>&1 || {
	cat "$work/xorriso.log" >&2
	die "xorriso could not extract live/filesystem.squashfs from $base/base.iso"
}
# As root, unsquashfs restores owners, modes, times and xattrs.
unsquashfs -no-progress -d "$work/root" "$work/filesystem.squashfs" >/dev/null
rm -f "$work/filesystem.squashfs"
"$lmtest" manifest --root "$work/root" --out "$tree/manifest.gz"
tar --xattrs --xattrs-include='*' --acls --numeric-owner -C "$work/root" -cf "$tree/root.tar" .

# GNU tar for the initramfs (busybox's keeps no xattrs): the binary and
# what ldd says it loads, less what every initramfs-tools image has (the C
# library and its loader), in a directory of its own (usr/lib/tmpfsroot,
# run with LD_LIBRARY_PATH): the initramfs's usr/bin/tar is a hard link
# to busybox, which a file of the same name in a later cpio archive
# would overwrite.
own=$tree/initrd-tools/usr/lib/tmpfsroot
mkdir -p "$own"
cp -a "$work/root/usr/bin/tar" "$own/tar"
chroot "$work/root" /usr/bin/ldd /usr/bin/tar | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name lib; do
	case $name in libc.so.*) continue ;; esac
	install -m 0644 "$(readlink -f "$work/root/$lib")" "$own/$name"
done
find "$tree/initrd-tools" -type f | sed "s|^$tree/initrd-tools/||" >"$tree/initrd-tools.list"
touch "$tree/done"
log "manifest $(zcat "$tree/manifest.gz" | wc -l) entries, root.tar $(du -h "$tree/root.tar" | cut -f1), initramfs tools: $(tr '\n' ' ' <"$tree/initrd-tools.list"); $(since "$T") s"
echo "$tree"
