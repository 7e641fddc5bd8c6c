#!/bin/bash
# mkinitrd.sh OUT.img: build the test initramfs (gzip'd newc cpio): static
# busybox, the kernel modules the guests need, /bin/livemigrate, e2fsck,
# dmsetup and mdadm (the reference stack, lm.stack=tools) with their shared
# libraries, and initramfs/init.sh as /init. See init.sh for the modes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:?usage: mkinitrd.sh OUT.img}
kver=$(kernel_version)
stage=$(mktemp -d "${TMPDIR:-/tmp}/lm-initrd.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mk_skeleton "$stage"
# Debian binaries first, so busybox does not shadow them with applets.
copy_with_libs "$stage" e2fsck dmsetup mdadm
install_busybox "$stage"
install_modules "$stage" "$kver"

# The product binary. Built static by `make build` (CGO_ENABLED=0). Without
# it live mode can only use lm.stack=tools; say so instead of failing here,
# because the harness is useful before the binary exists.
lmbin=${LM_BIN:-$REPO_ROOT/bin/livemigrate}
if [[ -x $lmbin ]]; then
	file -b "$lmbin" | grep -q 'statically linked' ||
		die "$lmbin is not statically linked (build with CGO_ENABLED=0)"
	install -m 0755 "$lmbin" "$stage/usr/bin/livemigrate"
else
	log "WARNING: $lmbin missing; this initramfs can only boot lm.stack=tools"
fi

install -m 0755 "$QEMU_DIR/initramfs/init.sh" "$stage/init"
# The kernel gives /init its stdio from /dev/console in the cpio, before
# anything mounts devtmpfs.
mknod -m 0600 "$stage/dev/console" c 5 1
mknod -m 0666 "$stage/dev/null" c 1 3
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"

mkdir -p "$(dirname "$out")"
cpio_newc_gz "$stage" "$out"
log "initramfs $out: $(du -h "$out" | cut -f1), kernel $kver"
