# shellcheck shell=sh
# refuse: preflight must turn bad targets away with their documented exit
# code and a message that names the device, and write nothing. Every refusal
# case runs WITHOUT --dry-run and WITH --yes, so a missing check would really
# hot-add the device and copy onto it; only the good disks use --dry-run.
#
# The host (refuse.sh) attaches extra virtio disks, told apart here by their
# serial numbers (/sys/block/vdX/serial):
#   rf-small   one 512-byte sector smaller than the live root      -> 13
#   rf-4k      4096-byte logical blocks (the array has 512)         -> 15
#   rf-ro      read-only                                            -> 14
#   rf-parted  msdos label, ext4 on partition 1, mounted here       -> 12 (both)
#   rf-mdmem   the only leg of another md array (/dev/md5, built)   -> 12
#   rf-lvm     an LVM physical volume with an active logical volume -> 12
#   rf-good    blank, larger than the live root: --dry-run          -> 0
#   rf-exact   blank, exactly the live root's size: --raw-disk --dry-run -> 0,
#              as a whole-disk install (boot partitions too)        -> 13
# The rest need no extra disk: paths that are not block devices, the live
# stack itself, and usage errors.
#
# Reports, for each case NAME: case_NAME="CODE FIRST-STDERR-LINE",
# case_NAME_target (the path given, if any), case_NAME_stdout (bytes) and
# case_NAME_stderr_lines. Around the cases: the state of md, dm, loops and
# mounts, and the regular file's size and mtime (state_same), md127's
# members, `livemigrate status` exit codes and the sha256 of the one disk
# the host cannot check itself (its partition is mounted here; frozen with
# fsfreeze so ext4 itself writes nothing during the cases). The host judges.
set -u

md=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -n1)
mdname=${md#/dev/}
fact refuse_root "$md"

# The extra disks, by serial.
for d in /sys/block/vd*; do
	[ -e "$d/serial" ] || continue
	s=$(cat "$d/serial")
	n=${d##*/}
	fact "disk_$s" "/dev/$n size=$(($(cat "$d/size") * 512)) lbs=$(cat "$d/queue/logical_block_size") ro=$(cat "$d/ro")"
	case $s in
	rf-small) small=/dev/$n ;;
	rf-4k) d4k=/dev/$n ;;
	rf-ro) ro=/dev/$n ;;
	rf-parted) parted=/dev/$n ;;
	rf-mdmem) mdmem=/dev/$n ;;
	rf-lvm) lvmdisk=/dev/$n ;;
	rf-good) good=/dev/$n ;;
	rf-exact) exact=/dev/$n ;;
	rf-hold) hold=/dev/$n ;;
	esac
done
for v in small d4k ro parted mdmem lvmdisk good exact hold; do
	eval "[ -n \"\${$v:-}\" ]" || {
		fact refuse_setup "disk for \$$v not found (serial missing?)"
		exit 1
	}
done
part=${parted}1
fact array_size "$(($(cat "/sys/block/$mdname/size") * 512))"

# The live stack's lower devices, from live-rw's table: "0 N snapshot O C P 8".
# Kernel names through /sys/dev/block, so no udev is needed.
# names DIR: the entries of DIR on one line.
names() { for _e in "$1"/*; do [ -e "$_e" ] && printf '%s ' "${_e##*/}"; done; }
devname() { basename "$(readlink -f "/sys/dev/block/$1")"; }
table=$(DM_DISABLE_UDEV=1 dmsetup table live-rw)
fact live_rw_table "$table"
# shellcheck disable=SC2086 # split the table into its fields
set -- $table
origin=/dev/$(devname "$4")
cow=/dev/$(devname "$5")
sqloop=$(losetup -a | awk -F: '/squashfs\.img/ { print $1; exit }')
fact live_stack "origin=$origin cow=$cow squashfs_loop=$sqloop"

# Targets that must be refused because something uses them.
mkdir -p /mnt/refuse-part
mount -t ext4 -o noinit_itable "$part" /mnt/refuse-part || {
	fact refuse_setup "mount $part failed"
	exit 1
}
fact part_keep_sha "$(sha256sum /mnt/refuse-part/keep-me | cut -d' ' -f1)"
# Frozen, ext4 writes nothing more of its own (superblock, journal), so any
# change to the disk's bytes from here on is someone else's; it stays
# mounted, so it is just as much in use.
fsfreeze --freeze /mnt/refuse-part || {
	fact refuse_setup "fsfreeze --freeze /mnt/refuse-part failed"
	exit 1
}
mdadm --build /dev/md5 --level=1 --raid-devices=1 --force "$mdmem" || {
	fact refuse_setup "mdadm --build /dev/md5 on $mdmem failed"
	exit 1
}
fact md5_holders "$(names "/sys/block/${mdmem#/dev/}/holders")"
# LVM as a distribution sets it up: a PV, a VG, an active LV (no udev here:
# lvm waits for no udev events and makes its own /dev nodes).
lvmcfg='activation { udev_sync=0 udev_rules=0 } devices { obtain_device_list_from_udev=0 }'
mkdir -p /run/lvm /etc/lvm
{ lvm pvcreate --config "$lvmcfg" "$lvmdisk" && lvm vgcreate --config "$lvmcfg" rfvg "$lvmdisk" &&
	lvm lvcreate --config "$lvmcfg" -y -L 8M -n keep rfvg; } >/run/lvm.out 2>&1 || {
	fact_file lvm_out /run/lvm.out
	fact refuse_setup "LVM on $lvmdisk failed"
	exit 1
}
lvmhold=$(names "/sys/block/${lvmdisk#/dev/}/holders")
lvmhold=${lvmhold%% *}
fact lvm_holder "$lvmhold $(cut -c1-4 "/sys/block/$lvmhold/dm/uuid" 2>&1)"
# A regular file big enough to take the live root, and a symlink to the array.
truncate -s "$(($(cat "/sys/block/$mdname/size") * 512 + 1048576))" /tmp/refuse-file
ln -sf "$md" /tmp/refuse-link-to-array
rm -f /tmp/pwned

# state FILE: everything a migration would change, and nothing that moves by
# itself during the live session.
state() {
	{
		echo "== mdstat"
		cat /proc/mdstat
		echo "== $mdname members"
		for m in /sys/block/"$mdname"/md/dev-*; do
			[ -e "$m" ] && echo "${m##*/} $(cat "$m/state")"
		done
		for a in level raid_disks degraded array_state component_size sync_action sync_speed_min sync_speed_max; do
			echo "$a=$(cat "/sys/block/$mdname/md/$a")"
		done |
			# md flips active <-> clean by itself as writes start and stop
			# (safe mode); any other state is a change.
			sed -E 's/^array_state=(active|clean)$/array_state=active-or-clean/'
		echo "== dm"
		DM_DISABLE_UDEV=1 dmsetup table
		echo "== loops"
		losetup -a
		echo "== mounts"
		cat /proc/mounts
		echo "== holders"
		for d in /sys/block/vd*; do echo "${d##*/}: $(names "$d/holders")"; done
		echo "== ro"
		for d in /sys/block/vd*; do echo "${d##*/}: $(cat "$d/ro")"; done
		echo "== refuse-file"
		stat -c '%s %Y' /tmp/refuse-file
	} >"$1" 2>&1
}
# sums FILE: sha256 of what the host cannot check after poweroff (the
# image of the mounted disk changes under the guest's own mount and
# unmount, the LVM disk under lvm's setup and teardown): those disks,
# whole, read past the page cache's old copy.
sums() {
	echo 3 >/proc/sys/vm/drop_caches
	sha256sum "$parted" "$lvmdisk" >"$1" 2>&1
}

livemigrate status >/dev/null 2>&1
fact pre_status_rc "$?"
state /run/refuse.state.before
t0=$(cut -d' ' -f1 /proc/uptime)
sums /run/refuse.sums.before
fact sums_seconds "$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')"
fact_file pre_mdstat /proc/mdstat

# run_case NAME TARGET ARGS...: run `livemigrate migrate ARGS...` and report.
# TARGET is what the message must name ("" when there is no device). Bounded,
# so that a missing check that starts a real migration cannot hang the test.
run_case() {
	_c=$1 _t=$2
	shift 2
	timeout 120 livemigrate migrate "$@" </dev/null >/run/rf.out 2>/run/rf.err
	_rc=$?
	fact "case_${_c}_target" "$_t"
	fact "case_${_c}_stdout" "$(wc -c </run/rf.out)"
	fact "case_${_c}_stderr_lines" "$(wc -l </run/rf.err)"
	fact "case_${_c}" "$_rc $(head -n1 /run/rf.err)"
	echo "--- case $_c: rc=$_rc"
	cat /run/rf.err
}

# Refusals (never --dry-run, always --yes).
run_case too_small "$small" --target "$small" --yes
run_case blocksize_4k "$d4k" --target "$d4k" --yes
run_case read_only "$ro" --target "$ro" --yes
run_case part_mounted "$part" --target "$part" --yes
run_case disk_with_mounted_part "$parted" --target "$parted" --yes
run_case md_member "$mdmem" --target "$mdmem" --yes
run_case lvm_member "$lvmdisk" --target "$lvmdisk" --yes
run_case nonexistent /dev/nonexistent-disk --target /dev/nonexistent-disk --yes
run_case regular_file /tmp/refuse-file --target /tmp/refuse-file --yes
run_case char_device /dev/null --target /dev/null --yes
run_case medium /dev/sr0 --target /dev/sr0 --yes
run_case array "$md" --target "$md" --yes
run_case symlink_to_array /tmp/refuse-link-to-array --target /tmp/refuse-link-to-array --yes
run_case live_rw /dev/mapper/live-rw --target /dev/mapper/live-rw --yes
run_case origin_loop "$origin" --target "$origin" --yes
run_case cow_loop "$cow" --target "$cow" --yes
run_case squashfs_loop "$sqloop" --target "$sqloop" --yes
# shellcheck disable=SC2016 # the $(...) is meant literally: it must stay text
meta='/tmp/a b;$(touch /tmp/pwned)'
run_case metachar "$meta" --target "$meta" --yes
if [ -e /tmp/pwned ]; then fact metachar_pwned yes; else fact metachar_pwned no; fi
# Usage errors: each would name a usable disk, so only the usage check
# stands between it and a migration.
run_case empty_target "" --target "" --yes
run_case no_target "" --yes
run_case unknown_flag "" --target "$good" --yes --bogus-flag
run_case bad_speed "" --target "$good" --yes --speed turbo
run_case positional_arg "" --yes "$good"

# The good disks: accepted, plan printed, nothing written (--dry-run).
run_case good_dry_run "$good" --target "$good" --dry-run
fact good_plan "$(head -n1 /run/rf.out)"
fact_file good_plan_text /run/rf.out
fact good_dry_line "$(grep -c '^Dry run: nothing was changed\.$' /run/rf.out)"
run_case exact_dry_run "$exact" --target "$exact" --raw-disk --dry-run
fact exact_plan "$(head -n1 /run/rf.out)"
fact exact_dry_line "$(grep -c '^Dry run: nothing was changed\.$' /run/rf.out)"
run_case exact_whole_disk "$exact" --target "$exact" --yes

# The target held from the check to the first write (rf-hold, a GPT disk):
# while migrate waits for the typed confirmation, an exclusive opener
# (mkfs.ext4) is turned away, and a partition table changed under it
# (zeroed by dd, which does not open exclusively) stops the run with 19
# before anything is written. The prompt needs a terminal: tmux.
export TERM=xterm-256color HOME=/root
rm -f /run/hold.out /run/hold.err /run/hold.rc
tmux new-session -d -s hold -x 120 -y 24 "livemigrate migrate --target $hold >/run/hold.out 2>/run/hold.err; echo \$? >/run/hold.rc"
_i=0
until grep -q "Type $hold to go on" /run/hold.out 2>/dev/null || [ "$_i" -gt 600 ]; do
	sleep 0.1
	_i=$((_i + 1))
done
fact hold_prompt "$(grep -c "Type $hold to go on" /run/hold.out 2>/dev/null)"
mkfs.ext4 -q -F "$hold" >/run/hold.mkfs 2>&1
fact hold_mkfs "rc=$? $(head -n1 /run/hold.mkfs)"
_sz=$(($(cat "/sys/block/${hold#/dev/}/size") / 2048))
dd if=/dev/zero of="$hold" bs=1M count=1 conv=fsync status=none
dd if=/dev/zero of="$hold" bs=1M seek=$((_sz - 1)) count=1 conv=fsync status=none
fact hold_zeroed "first and last MiB of $hold ($_sz MiB)"
tmux send-keys -t hold "$hold" Enter
_i=0
until [ -s /run/hold.rc ] || [ "$_i" -gt 600 ]; do
	sleep 0.1
	_i=$((_i + 1))
done
fact hold_target "$hold"
fact hold_result "$(cat /run/hold.rc 2>/dev/null || echo none) $(head -n1 /run/hold.err)"
fact hold_steps "$(grep -c '^==> ' /run/hold.out)"
tmux kill-session -t hold 2>/dev/null

# After: the same state, the same bytes, one member, status works.
state /run/refuse.state.after
if cmp -s /run/refuse.state.before /run/refuse.state.after; then
	fact state_same yes
else
	fact state_same no
	diff /run/refuse.state.before /run/refuse.state.after >/run/refuse.state.diff
	fact_file state_diff /run/refuse.state.diff
fi
sums /run/refuse.sums.after
if cmp -s /run/refuse.sums.before /run/refuse.sums.after; then
	fact sums_same yes
else
	fact sums_same no
	fact_file sums_before /run/refuse.sums.before
	fact_file sums_after /run/refuse.sums.after
fi
fact_file post_mdstat /proc/mdstat
n=0 members='' leg=''
for m in /sys/block/"$mdname"/md/dev-*; do
	[ -e "$m" ] || continue
	n=$((n + 1))
	members="$members${m##*/}($(cat "$m/state")) "
	leg=${m##*/dev-}
done
fact md_members "$n"
fact md_member_list "$members"
# The one member must be live-rw (a dm-N whose dm name is live-rw).
fact md_live_leg "$(cat "/sys/block/$leg/dm/name" 2>/dev/null)"
livemigrate status >/run/rf.status 2>&1
fact post_status_rc "$?"
fact_file post_status /run/rf.status
fact run_files "$(for f in /run/livemigrate*; do [ -e "$f" ] && printf '%s ' "$f"; done)"

# Leave the disks as found, and let e2fsck referee the mounted filesystem.
fact part_keep_sha_after "$(sha256sum /mnt/refuse-part/keep-me | cut -d' ' -f1)"
fsfreeze --unfreeze /mnt/refuse-part
umount /mnt/refuse-part
fact part_umount_rc "$?"
e2fsck -fn "$part" >/run/rf.fsck 2>&1
fact part_fsck_rc "$?"
mdadm --stop /dev/md5 >/dev/null 2>&1
fact md5_stop_rc "$?"
lvm vgchange --config "$lvmcfg" -an rfvg >/dev/null 2>&1
fact lvm_deactivate_rc "$?"
rm -f /tmp/refuse-file /tmp/refuse-link-to-array
exit 0
