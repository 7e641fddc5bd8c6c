#!/bin/sh
# /init of the livemigrate test initramfs (busybox sh, PID 1).
#
# Modes, chosen by the kernel command line:
#   lm.live=LABEL   live mode: build the dm snapshot live-rw over
#                   LiveOS/rootfs.img from the iso9660 medium labelled LABEL,
#                   wrap it in a one-leg md RAID1 build-mode array, mount that
#                   as / (what a livemigrate-aware dracut hook will do).
#   root=DEV        plain mode: mount DEV (UUID=, LABEL= or a /dev path) as /.
#   lm.probe=1      write "probe=ok" to the facts port and power off (used by
#                   the host to find out whether a KVM guest boots at all).
# Other options:
#   lm.cowsize=SIZE size of the sparse COW file /overlay (default 1G)
#   lm.cow=zram     the COW in compressed RAM (zram) instead of /overlay
#   lm.stack=tools  build live-rw and the array with dmsetup/mdadm instead of
#                   livemigrate (the independent reference, for comparison)
#   lm.stack=nohook build live-rw with dmsetup and mount it as / directly, as
#                   a stock dmsquash-live does (no array: the run-time mirror)
#   lm.md=DEV       array device (default /dev/md127)
#   lm.mdorder=missing-first  with lm.stack=tools: the live leg in slot 1,
#                   slot 0 missing (mdadm --build ... missing live-rw)
#   lm.fsck=1       plain mode: e2fsck -fn the root first, report on ttyS1
#   lm.wait=SECS    how long to wait for the medium/root (default 60)
#   lm.shell=1      on failure drop to a shell instead of powering off
#   ro              mount the root read-only (default read-write)
# ttyS0 is the console, ttyS1 the "facts" port: key=value lines the host reads.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# The kernel opened /dev/console from the cpio's node; reopen it from
# devtmpfs anyway so a missing node cannot leave us without output.
exec </dev/console >/dev/console 2>&1

msg() { echo "lm-initrd: $*"; }

# fact KEY VALUE: one machine-readable line on the facts port. Opening and
# closing the tty each time waits for the UART to drain on close, so nothing
# is lost when we power off right after.
fact() { [ -c /dev/ttyS1 ] && echo "$1=$2" >/dev/ttyS1; }

# Parse the command line (busybox sh has no arrays; one pass with case).
live='' root='' cowsize=1G cowkind=ram stack=livemigrate md=/dev/md127 mdorder=live-first fsck=0 wait=60
shell=0 probe=0 rootmode=rw rootfstype=''
# shellcheck disable=SC2013 # the command line is words, split on purpose
for arg in $(cat /proc/cmdline); do
	case $arg in
	lm.live=*) live=${arg#lm.live=} ;;
	root=*) root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	lm.cowsize=*) cowsize=${arg#lm.cowsize=} ;;
	lm.cow=*) cowkind=${arg#lm.cow=} ;;
	lm.stack=*) stack=${arg#lm.stack=} ;;
	lm.md=*) md=${arg#lm.md=} ;;
	lm.mdorder=*) mdorder=${arg#lm.mdorder=} ;;
	lm.fsck=*) fsck=${arg#lm.fsck=} ;;
	lm.wait=*) wait=${arg#lm.wait=} ;;
	lm.shell=*) shell=${arg#lm.shell=} ;;
	lm.probe=*) probe=${arg#lm.probe=} ;;
	ro) rootmode=ro ;;
	rw) rootmode=rw ;;
	esac
done

# fail REASON: say why loudly on both ports, then shell or power off, so a
# test never hangs silently until the host's timeout.
fail() {
	# fail may run inside $(...): talk to the console, not the capture.
	exec </dev/console >/dev/console 2>&1
	msg "FATAL: $*"
	fact initrd_fail "$*"
	if [ "$shell" = 1 ]; then
		msg "dropping to a shell (lm.shell=1); exit it to power off"
		setsid cttyhack sh
	fi
	sync
	poweroff -f
}

# The facts port is a plain 16550; raw mode stops the tty from mangling lines.
stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null

if [ "$probe" = 1 ]; then
	fact probe ok
	poweroff -f
fi
fact initrd_start "$(cut -d' ' -f1 /proc/uptime)"

# Load the modules in the order mkinitrd.sh resolved (dependencies first,
# crc32c_generic before ext4). Already-loaded or built-in ones are fine.
kver=$(uname -r)
while read -r ko; do
	case $ko in '' | '#'*) continue ;; esac
	out=$(insmod "/lib/modules/$kver/$ko" 2>&1) || case $out in
	*'File exists'*) ;;
	*) msg "insmod $ko: $out" ;;
	esac
done </lib/modules/"$kver"/lm.load

# wait_for WHAT CMD...: retry CMD (which prints a device) every 0.5 s for up
# to $wait seconds; print the device or fail with a message naming WHAT.
wait_for() {
	what=$1
	shift
	i=0
	while [ "$i" -lt $((wait * 2)) ]; do
		if dev=$("$@" 2>/dev/null) && [ -n "$dev" ] && [ -b "$dev" ]; then
			echo "$dev"
			return 0
		fi
		[ "$i" = 10 ] && msg "waiting up to ${wait}s for $what" >&2
		sleep 0.5
		i=$((i + 1))
	done
	fail "$what did not appear within ${wait}s"
}

# resolve SPEC: UUID=/LABEL= through findfs, anything else is a path.
resolve() {
	case $1 in
	UUID=* | LABEL=*) findfs "$1" ;;
	*) echo "$1" ;;
	esac
}

# newloop [-r] FILE: attach FILE to the next free loop device and print it.
# busybox losetup does not print the device it picked, so ask first; nothing
# else allocates loops concurrently in here.
newloop() {
	ro=
	[ "$1" = -r ] && ro=-r && shift
	l=$(losetup -f) || return 1
	losetup $ro "$l" "$1" || return 1
	echo "$l"
}

move_and_switch() {
	# Checked before /dev moves: fail reports on /dev/ttyS1, which must
	# still be there for the host to learn why the boot stopped.
	[ -x /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || fail "no /sbin/init on the new root"
	for d in run dev proc sys; do
		mkdir -p "/newroot/$d" 2>/dev/null
		mount --move "/$d" "/newroot/$d" || fail "cannot move /$d into the new root"
	done
	fact initrd_switch "$(cut -d' ' -f1 /newroot/proc/uptime)"
	# switch_root empties the initramfs; /overlay survives only as the open,
	# deleted backing file of the COW loop (as with dracut).
	exec switch_root /newroot /sbin/init
}

# dmsetup_live_rw builds live-rw over $origin and $cow with dmsetup, with
# the table dracut's dmsquash-live uses (persistent, overflow, chunk 8),
# and sets snap to its node.
dmsetup_live_rw() {
	export DM_DISABLE_UDEV=1
	sectors=$(blockdev --getsz "$origin") || fail "cannot size $origin"
	dmsetup create live-rw --table "0 $sectors snapshot $origin $cow PO 8" ||
		fail "dmsetup create live-rw failed"
	dmsetup mknodes live-rw
	snap=/dev/mapper/live-rw
}

mkdir -p /newroot

if [ -n "$live" ]; then
	msg "live mode: medium LABEL=$live, COW $cowsize, stack by $stack"
	medium=$(wait_for "medium LABEL=$live" findfs "LABEL=$live")
	msg "medium is $medium"
	mkdir -p /run/initramfs/live /run/initramfs/squashfs
	mount -t iso9660 -o ro "$medium" /run/initramfs/live ||
		fail "cannot mount $medium"
	img=/run/initramfs/live/LiveOS/squashfs.img
	[ -f "$img" ] || fail "no LiveOS/squashfs.img on $medium"
	sqloop=$(newloop -r "$img") || fail "cannot loop $img"
	# squashfs, or EROFS (lorax's erofs-ext4 packs rootfs.img so, under
	# the same name).
	mount -t squashfs -o ro "$sqloop" /run/initramfs/squashfs 2>/dev/null ||
		{ modprobe erofs && mount -t erofs -o ro "$sqloop" /run/initramfs/squashfs; } ||
		fail "cannot mount $img (squashfs or erofs)"
	rootimg=/run/initramfs/squashfs/LiveOS/rootfs.img
	[ -f "$rootimg" ] || fail "no LiveOS/rootfs.img in the squashfs"
	origin=$(newloop -r "$rootimg") || fail "cannot loop $rootimg"
	# The COW store, as dracut makes it: a sparse file in the initramfs root
	# on its own loop device.
	if [ "$cowkind" = zram ]; then
		modprobe zram || fail "no zram module"
		cow=$(livemigrate boot zram --size "$cowsize") || fail "livemigrate boot zram failed"
	else
		truncate -s "$cowsize" /overlay || fail "cannot create /overlay ($cowsize)"
		cow=$(newloop /overlay) || fail "cannot loop /overlay"
	fi
	msg "origin $origin, COW $cow"
	fact live_origin "$origin"
	fact live_cow "$cow"

	case $stack in
	livemigrate)
		[ -x /bin/livemigrate ] || fail "no /bin/livemigrate in this initramfs"
		snap=$(livemigrate boot snapshot --origin "$origin" --cow "$cow" --name live-rw) ||
			fail "livemigrate boot snapshot failed"
		snap=$(echo "$snap" | tail -n1)
		[ -b "$snap" ] || fail "livemigrate boot snapshot printed '$snap', not a block device"
		arr=$(livemigrate boot wrap --leg "$snap" --md "$md") ||
			fail "livemigrate boot wrap failed"
		arr=$(echo "$arr" | tail -n1)
		;;
	tools)
		# The reference stack built with the distribution's own tools.
		dmsetup_live_rw
		mkdir -p /run/mdadm
		if [ "$mdorder" = missing-first ]; then
			legs="missing $snap"
		else
			legs="$snap missing"
		fi
		# shellcheck disable=SC2086 # two words on purpose
		mdadm --build "$md" --level=1 --raid-devices=2 $legs ||
			fail "mdadm --build $md $legs failed"
		arr=$md
		;;
	nohook)
		# A stock dmsquash-live root: live-rw built as dracut builds it and
		# mounted as / itself, with no array above it (no livemigrate
		# hook): livemigrate's run-time mirror has to go under it.
		dmsetup_live_rw
		arr=$snap
		;;
	*) fail "unknown lm.stack=$stack" ;;
	esac
	[ -b "$arr" ] || fail "array '$arr' is not a block device"
	msg "root array $arr over $snap"
	fact live_snapshot "$snap"
	fact live_array "$arr"
	mount -t ext4 -o "$rootmode" "$arr" /newroot || fail "cannot mount $arr"
	move_and_switch
fi

if [ -n "$root" ]; then
	msg "plain mode: root=$root"
	dev=$(wait_for "root $root" resolve "$root")
	msg "root is $dev"
	fact root_dev "$dev"
	if [ "$fsck" = 1 ]; then
		# -f: check even if clean; -n: never change anything (a referee).
		out=$(e2fsck -fn "$dev" 2>&1)
		rc=$?
		echo "$out"
		fact fsck_rc "$rc"
		fact fsck "$(echo "$out" | tail -n1)"
	fi
	if [ -n "$rootfstype" ]; then
		mount -t "$rootfstype" -o "$rootmode" "$dev" /newroot || fail "cannot mount $dev"
	else
		mount -o "$rootmode" "$dev" /newroot || fail "cannot mount $dev"
	fi
	move_and_switch
fi

fail "no lm.live=, root= or lm.probe= on the kernel command line"
