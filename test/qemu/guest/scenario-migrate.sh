# shellcheck shell=sh
# migrate: the end-to-end proof, live side. While lmtest writer appends
# fsync'ed records to a file on / (the md array), run
# `livemigrate migrate --target TARGET --yes --json` and keep writing a little
# after it returns. Reports how many records were acknowledged (acked=N): the
# verify scenario checks them after booting TARGET alone. Also reports:
#  - the target's raw sequential write speed, measured before the migration
#    in this same guest, as the yardstick for md's recovery speed;
#  - mdadm --detail against livemigrate status, before, while md copies, and
#    after;
#  - data written in the live session (it must survive onto the target);
#  - memory before and after, and whether the live stack is gone.
#   lmtest.target=DEV  (default /dev/vda)   lmtest.speed=fast|gentle
#   lmtest.finalize=1  (default: --no-finalize)
#   lmtest.ui=tui      the wizard instead of the CLI, driven in tmux with the
#                      same choices (tui-lib.sh); no JSON events then, but
#                      its screens (tui_options, tui_review, tui_final)
set -u
target=$(cmdline_get lmtest.target /dev/vda)
speed=$(cmdline_get lmtest.speed fast)
md=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -n1)

# meminfo: after sync and dropping the page cache, so MemAvailable moves
# with what the COW holds rather than with cached reads.
meminfo() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	awk '/^(MemAvailable|MemFree|Cached|Buffers|AnonPages|Shmem|Unevictable|SReclaimable|SUnreclaim|KernelStack|PageTables|Percpu|VmallocUsed):/ { printf "%s=%.0f ", $1, $2 * 1024 }' /proc/meminfo
}
# zram_state DEV: a zram device as its own sysfs shows it, read here and
# not taken from livemigrate: "dev=zramN disksize=B mem_used=B" (mm_stat's
# third column: the RAM it holds), or "dev=zramN gone".
zram_state() {
	if [ -e "/sys/block/$1/disksize" ]; then
		echo "dev=$1 disksize=$(cat "/sys/block/$1/disksize") mem_used=$(awk '{ print $3 }' "/sys/block/$1/mm_stat")"
	else
		echo "dev=$1 gone"
	fi
}
# num KEY: a number from the last "result" event of migrate --json.
num() { grep '"event":"result"' /run/migrate.jsonl | tail -n1 | sed -n "s/.*\"$1\":\([0-9.e+]*\).*/\1/p"; }

livemigrate status
fact pre_status_rc "$?"
fact pre_mdcompare "$(lmtest mdcompare --md "$md" 2>&1 | tr '\n' ' ')"

# The yardstick: raw O_DIRECT sequential writes to the (still blank) target.
fact raw "$(lmtest rawwrite --dev "$target" --size 128M 2>&1 | tr '\n' ' ')"
# And how fast the source reads: the live snapshot over loop over squashfs.
# The first read fills the page cache of the lower layers, as md's would.
fact src_read "$(lmtest rawread --dev /dev/mapper/live-rw --size 128M 2>&1 | tr '\n' ' ')"
echo 3 >/proc/sys/vm/drop_caches

# Something the user did in the live session: it lands in the RAM COW now
# and must be on the target after the next boot.
dd if=/dev/urandom of=/root/session-data bs=1M count=16 2>/dev/null
sync
fact session_sha "$(sha256sum /root/session-data | cut -d' ' -f1)"
fact pre_cow "$(DM_DISABLE_UDEV=1 dmsetup status live-rw 2>&1)"
# The COW device (5th word of the snapshot table: MAJ:MIN), if it is zram.
cowdev=$(basename "$(readlink -f "/sys/dev/block/$(DM_DISABLE_UDEV=1 dmsetup table live-rw | awk '{ print $5 }')" 2>/dev/null)" 2>/dev/null)
case $cowdev in zram*) fact pre_zram "$(zram_state "$cowdev")" ;; esac
fact pre_cow_kind "$(livemigrate status --json | sed -n 's/.*"COWKind": "\([a-z-]*\)".*/\1/p')"
livemigrate status
fact pre_mem "$(meminfo)"

lmtest writer --file /root/records --acked /run/acked --interval 20ms >/run/writer.out 2>&1 &
wpid=$!
sleep 2

a0=$(cat /run/acked)
t0=$(cut -d' ' -f1 /proc/uptime)
# --no-finalize unless lmtest.finalize=1: the busybox root is no
# distribution (no GRUB, no initramfs generator).
# With it: lmtest.hostname=NAME gives --hostname NAME, lmtest.password=WORD
# a --password-file holding WORD for the live user.
fin=--no-finalize
if [ "$(cmdline_get lmtest.finalize 0)" = 1 ]; then
	fin=
	h=$(cmdline_get lmtest.hostname)
	[ -n "$h" ] && fin="--hostname $h"
	pw=$(cmdline_get lmtest.password)
	if [ -n "$pw" ]; then
		printf '%s\n' "$pw" >/run/lmtest-password
		fin="$fin --password-file /run/lmtest-password"
	fi
fi
# lmtest.signal_finalize=SIG: once finalize is rebuilding the initramfs,
# SIG goes to livemigrate's whole process group, as Ctrl+C at a terminal
# does (setsid makes it a group of its own, led by livemigrate).
sigfin=$(cmdline_get lmtest.signal_finalize)
setsid=
[ -n "$sigfin" ] && setsid=setsid
ui=$(cmdline_get lmtest.ui cli)
if [ "$ui" = tui ]; then
	# The person at the wizard: the target (a whole disk is partitioned,
	# as the wizard proposes), the set-up choices, the default fast speed
	# (lmtest.speed is not asked for here), the device name typed; then
	# watch it to the Done screen and quit. The subshell exits with the
	# wizard's exit code, or 1 if the screens were not as expected.
	# shellcheck source-path=SCRIPTDIR source=tui-lib.sh
	. /usr/lib/lmtest/tui-lib.sh
	: >/run/migrate.jsonl
	(
		tui_start && tui_choose "$target" &&
			tui_options 0 "$(cmdline_get lmtest.finalize 0)" "$(cmdline_get lmtest.hostname)" "$(cmdline_get lmtest.password)" &&
			tui_confirm "$target" && tui_follow 1800
		r=$?
		[ "$r" = 0 ] && r=$(tui_quit)
		tm kill-server 2>/dev/null
		exit "${r:-1}"
	) >/run/migrate.err 2>&1 &
else
	# shellcheck disable=SC2086 # $fin: words without spaces; $setsid: one optional word
	$setsid livemigrate migrate --target "$target" --yes --json --speed "$speed" $fin >/run/migrate.jsonl 2>/run/migrate.err &
fi
mpid=$!
# Its steps and messages (not the progress ticks) on the console as they
# happen: a migration that hangs shows where.
# (A shell loop, not awk: mawk reads a pipe in blocks.)
tail -f /run/migrate.jsonl 2>/dev/null | while IFS= read -r l; do
	case $l in *'"event":"progress"'*) ;; *) echo "migrate: $l" ;; esac
done >/dev/console 2>&1 &
tpid=$!
# lmtest.psdump=N (debugging): every N seconds, the processes on the console.
psdump=$(cmdline_get lmtest.psdump 0) ticks=0
# While md copies, compare mdadm's view with livemigrate's every half second.
# A sample is taken twice before it counts as a mismatch: the two tools read
# the kernel a moment apart, and recovery moves in between.
ok=0 bad=0 rec=0
while kill -0 "$mpid" 2>/dev/null; do
	ticks=$((ticks + 1))
	if [ -n "$sigfin" ] && grep -q '"message":"Build a regular initramfs without the live hooks…"' /run/migrate.jsonl; then
		# /bin/kill: dash's builtin takes no process group ("-PID").
		/bin/kill -s "$sigfin" -- "-$mpid"
		fact finalize_signal "$sigfin sent to process group $mpid during the initramfs rebuild (kill rc=$?)"
		sigfin=
	fi
	if [ "$psdump" -gt 0 ] && [ $((ticks % (psdump * 2))) = 0 ]; then
		{ ps -eo pid,etime,stat,wchan:24,args 2>/dev/null || ps; } | grep -v '\[.*\]$' >/dev/console 2>&1
	fi
	if grep -q recover "/sys/block/${md#/dev/}/md/sync_action" 2>/dev/null; then
		if lmtest mdcompare --md "$md" >/run/mdc 2>&1 || lmtest mdcompare --md "$md" >/run/mdc 2>&1; then
			ok=$((ok + 1))
			grep -q recover "/sys/block/${md#/dev/}/md/sync_action" && rec=$((rec + 1))
		elif kill -0 "$mpid" 2>/dev/null && grep -q recover "/sys/block/${md#/dev/}/md/sync_action"; then
			bad=$((bad + 1))
			fact during_mdcompare_bad_sample "$(tr '\n' ' ' </run/mdc)"
		fi
	fi
	sleep 0.5
done
wait "$mpid"
rc=$?
kill "$tpid" 2>/dev/null; pkill -f "tail -f /run/migrate.jsonl" 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
a1=$(cat /run/acked)
fact migrate_rc "$rc"
if [ "$ui" = tui ]; then
	for f in options review progress final; do
		[ -f "/run/$f.txt" ] && fact_file "tui_$f" "/run/$f.txt"
	done
	# What the wizard's plan said about the live user's password.
	fact tui_plan_password "$(grep -o "the live user's password you chose\|the live user locked until you set a password" /run/plan.txt 2>&1 | head -n1)"
	# What a partition install writes outside its partition (GRUB in the
	# MBR and after it), listed where the wizard shows the plan.
	fact tui_plan_outside "$(grep -o "Also writes, outside [^ ]*:" /run/plan.txt | head -n1) $(grep -o "GRUB's boot code in the MBR of [^ ]*" /run/plan.txt | head -n1)"
fi
fact during_mdcompare "ok=$ok bad=$bad recovering=$rec"
# Records fsync'ed while migrate ran: the writes md had to put on both legs
# (during recovery) or carry across the leg switch.
fact acked_during_migrate "$((a1 - a0))"
fact migrate_seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
fact migrate_events "$(wc -l </run/migrate.jsonl)"
fact migrate_progress_events "$(grep -c '"event":"progress"' /run/migrate.jsonl)"
fact recovered_bytes "$(num recovered_bytes)"
fact recovery_bps "$(num recovery_bytes_per_second)"
fact recovery_seconds "$(num recovery_seconds)"
fact cow_freed "$(num COWBytesFreed)"
fact mem_avail_release "$(num MemAvailableBefore) $(num MemAvailableAfter)"
fact ejected "$(grep '"event":"result"' /run/migrate.jsonl | grep -o '"Ejected":[a-z]*' | cut -d: -f2)"
fact migrate_last "$(tail -n1 /run/migrate.jsonl)"
fact late_interrupt_warnings "$(grep -c "after the point of no return" /run/migrate.jsonl)"
[ -s /run/migrate.err ] && fact_file migrate_err /run/migrate.err
echo "--- migrate output (last 12 lines)"
tail -n 12 /run/migrate.jsonl

# Keep writing onto the target-only array for a moment, then stop.
sleep 2
kill -TERM "$wpid"
wait "$wpid"
wrc=$?
fact writer_rc "$wrc"
fact acked "$(sed -n 's/^acked=//p' /run/writer.out)"
fact_file writer_out /run/writer.out

fact post_mem "$(meminfo)"
case $cowdev in zram*) fact post_zram "$(zram_state "$cowdev")" ;; esac
fact post_mdcompare "$(lmtest mdcompare --md "$md" 2>&1 | tr '\n' ' ')"
fact_file post_mdstat /proc/mdstat
livemigrate status
fact post_status_rc "$?"
fact post_status "$(livemigrate status --json 2>&1 | tr -d '\n')"
fact post_dm "$(DM_DISABLE_UDEV=1 dmsetup ls 2>&1 | tr '\n' ' ')"
fact post_loops "$(losetup -a 2>&1 | tr '\n' ' ')"
fact post_live_mounted "$(awk '$2 ~ "^/run/initramfs" { print $2 }' /proc/mounts | tr '\n' ' ')"
# The drive's own answer on whether the disc is still in.
fact post_cd "$(lmtest cdstatus --dev /dev/sr0 2>&1)"
fact post_root_size "$(df -k / | awk 'NR == 2 { print $2 }')"
fact post_session_sha "$(sha256sum /root/session-data | cut -d' ' -f1)"
# The writer is judged, not only logged: it exits 0 on SIGTERM and
# non-zero when a write or fsync failed; and some records must have been
# acknowledged while migrate ran, or the run proved nothing about writes
# during the copy and the leg switch. (The host checks both facts too.)
[ "$wrc" = 0 ] || echo "migrate scenario: FAIL: the writer exited $wrc" >/dev/console
[ "$((a1 - a0))" -gt 0 ] || echo "migrate scenario: FAIL: no record acknowledged while migrate ran" >/dev/console
[ "$rc" = 0 ] && [ "$wrc" = 0 ] && [ "$((a1 - a0))" -gt 0 ]
