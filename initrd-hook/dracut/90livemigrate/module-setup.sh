#!/bin/bash
# dracut module "livemigrate": after dmsquash-live has built the live
# snapshot live-rw, wrap it in a build-mode md RAID1 array (slot 1 empty for
# the install target) and make the root mount use the array, so that
# `livemigrate migrate` can later move / onto a disk without a reboot.
# Included only when asked for: dracut --add "dmsquash-live livemigrate".

check() {
	require_binaries livemigrate || return 1
	# 255: never pulled in by hostonly guessing; only on request.
	return 255
}

depends() {
	echo dmsquash-live
	return 0
}

installkernel() {
	hostonly='' instmods md_mod raid1 dm_mod dm_snapshot zram loop
}

install() {
	# A static binary: no libraries to chase.
	inst "$(command -v livemigrate)" /usr/bin/livemigrate
	# pre-mount: after the initqueue (where dmsquash-live builds live-rw),
	# before / is mounted (sysroot.mount, or the mount hooks without systemd).
	inst_hook pre-mount 50 "$moddir/livemigrate-wrap.sh"
}
