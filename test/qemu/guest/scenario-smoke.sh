# shellcheck shell=sh
# Smoke scenario: is the live stack what the initramfs claims, and does the
# facts port carry data intact? Reports facts only; the host decides.
set -u
fact kernel "$(uname -r)"
fact root_mount "$(awk '$2 == "/" { print $1, $3, $4 }' /proc/mounts | tail -n1)"
fact_file mdstat /proc/mdstat
md=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -n1)
mdname=${md#/dev/}
if [ -d "/sys/block/$mdname/md" ]; then
	fact md_level "$(cat "/sys/block/$mdname/md/level")"
	fact md_raid_disks "$(cat "/sys/block/$mdname/md/raid_disks")"
	fact md_degraded "$(cat "/sys/block/$mdname/md/degraded" 2>/dev/null)"
	fact md_metadata "$(cat "/sys/block/$mdname/md/metadata_version")"
	for s in /sys/block/"$mdname"/md/dev-*/state; do
		[ -e "$s" ] && fact "md_member_$(basename "$(dirname "$s")")" "$(cat "$s")"
	done
fi
if command -v dmsetup >/dev/null; then
	fact dm_table "$(DM_DISABLE_UDEV=1 dmsetup table live-rw 2>&1)"
	fact dm_status "$(DM_DISABLE_UDEV=1 dmsetup status live-rw 2>&1)"
fi
# The loops' backing files as the kernel sees them: the COW should show
# "/overlay (deleted)", like dracut's after switch_root.
for b in /sys/block/loop*/loop/backing_file; do
	[ -e "$b" ] || continue
	l=${b#/sys/block/}
	fact "backing_${l%%/*}" "$(cat "$b")"
done
# Round trip: a known 256-character line; the host compares it exactly.
pat=0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/
fact echo "$pat$pat$pat$pat"
# The product binary, if this image has one.
if [ -x /usr/bin/livemigrate ]; then
	fact lm_status "$(livemigrate status --json 2>&1 | tr '\n' ' ')"
	fact mdcompare "$(lmtest mdcompare --md "$md" 2>&1 | tr '\n' ' ')"
fi
# Writing to / works (it is the md array over live-rw).
echo hello >/root/smoke && sync && fact root_write ok
