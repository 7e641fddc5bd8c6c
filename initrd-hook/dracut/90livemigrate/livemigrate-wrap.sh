#!/bin/sh
# dracut pre-mount hook of the livemigrate module (sourced by dracut).
# live-rw exists now; / is not mounted yet. Build the md array around
# live-rw and point the root mount at the array. Anything that goes wrong
# is said on the console and the live system boots as it would without
# livemigrate: never a hang, never a half-built root.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

lm_fallback() {
	warn "livemigrate: $*"
	warn "livemigrate: booting the live system without the md layer; installing it with 'livemigrate migrate' will not be possible in this session"
}

lm_wrap() {
	[ -b /dev/mapper/live-rw ] || return 0 # not a dmsquash-live boot
	_opts=$(livemigrate boot options) || {
		lm_fallback "cannot read the boot options"
		return 0
	}
	eval "$_opts"
	if [ -n "$LM_PROBLEMS" ]; then
		lm_fallback "invalid boot options: $LM_PROBLEMS"
		sleep 5 # let the reason be read on a console that scrolls on
		return 0
	fi
	if [ "$LM_WRAP" != 1 ]; then
		info "livemigrate: rd.livemigrate=0: not wrapping live-rw"
		return 0
	fi
	if [ "$LM_COW" = zram ]; then
		# Swap dmsquash-live's COW file for compressed RAM while live-rw is
		# still unused: nothing has been written to it yet.
		if modprobe zram 2>/dev/null && _z=$(livemigrate boot zram --size "$LM_COWSIZE"); then
			_old=$(livemigrate boot recow --name live-rw --cow "$_z" --detach-old) &&
				info "livemigrate: COW of live-rw is now $_z (was $_old)" ||
				warn "livemigrate: could not move the COW to zram; keeping $_old"
		else
			warn "livemigrate: no zram device; keeping dmsquash-live's COW"
		fi
	fi
	if ! _md=$(livemigrate boot wrap --leg /dev/mapper/live-rw --md "/dev/$LM_MD"); then
		lm_fallback "could not build /dev/$LM_MD around live-rw"
		return 0
	fi
	info "livemigrate: / will be $_md (RAID1: live-rw + an empty slot for the install target)"
	if [ -n "$DRACUT_SYSTEMD" ]; then
		# dracut-dmsquash-generator made sysroot.mount with What=live-rw, which
		# md now holds open: mounting it would fail with EBUSY.
		mkdir -p /run/systemd/system/sysroot.mount.d
		printf '[Mount]\nWhat=%s\n' "$_md" >/run/systemd/system/sysroot.mount.d/90-livemigrate.conf
		systemctl daemon-reload
	else
		# Without systemd, dmsquash-live left a mount hook and /dev/root.
		for _h in "$hookdir"/mount/*.sh; do
			[ -f "$_h" ] && sed -i "s#/dev/mapper/live-rw#$_md#g" "$_h"
		done
		ln -sf "$_md" /dev/root
	fi
}

lm_wrap
unset -f lm_wrap lm_fallback
