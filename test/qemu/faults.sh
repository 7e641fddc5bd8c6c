#!/bin/bash
# faults.sh: faults and interruptions during a migration, in nine boots.
# Every case checks the exit code, that the message says what happened and
# names the device, that the live session survived with every fsync-
# acknowledged writer record intact (lmtest writer/verify run for the whole
# of each live boot), and what `livemigrate status` shows afterwards: the
# live leg alone and in sync, or, past the point of no return, a complete
# migration. Target disks are write-throttled by QEMU (throttling.bps-write)
# so md's copy takes long enough to hit each moment.
#  1. fault-live (guest/scenario-fault-live.sh): SIGINT before the hot-add,
#     SIGTERM mid-copy, two livemigrate at once, the target's dm table
#     swapped to "error" mid-copy, the target disk hot-unplugged through
#     QMP (device_del) mid-copy, SIGKILL mid-copy and the same command
#     again, SIGINT right after the live leg was removed.
#  2. fault-cow (lm.cowsize just above twice the estimated need): a COW
#     warning while md copies and a fast writer fills it, SIGINT; then a
#     power cut: the host kills QEMU at 20% of a whole-disk migration.
#     The half-copied disk is examined on the host (no boot code in the
#     protective MBR, empty BIOS boot partition, no filesystem on the ESP).
#  3. the half-copied disk booted alone, root=UUID= (as e2e.sh boots a
#     migrated disk), on a throwaway QEMU snapshot: reported, not judged;
#     then through the firmware (SeaBIOS, no kernel given), as a machine
#     would: nothing of it may boot (judged in 6-power-cut).
#  4. fault-cowfull (lm.cowsize=96M): status and migrate --dry-run with the
#     half-copied disk attached (a target to overwrite, nothing to
#     continue); then the COW is filled and migrate refuses with 16.
#  5.-7. fault-grow: SIGINT on step-start grow-array, SIGTERM on step-start
#     grow-filesystem, SIGHUP on step-start release-live-stack: each must
#     finish the migration and say so in a warning event.
#  8. fault-resume (guest/scenario-fault-resume.sh) on md7 built by mdadm
#     with the live leg in slot 1: SIGKILL mid-copy of a partition install
#     on a GPT disk with data partitions; the same migration asked for by
#     the disk's name (refused, 17; the data partitions' and the GPT's
#     checksums unchanged on the host); the live leg failed by hand after
#     md finished the copy (a crash between fail and remove); the rerun,
#     read through a pipe whose reader quits at the point of no return,
#     then SIGINT: it must finish, exit 0.
#  9. fault-stuck (guest/scenario-fault-stuck.sh): / remounted read-only
#     mid-copy, so growing the filesystem fails for real past the point of
#     no return: the later steps still run, exit 21 lists what is left;
#     the rerun does only that and exits 0.
# Finalize cannot run in the busybox live root (no distribution), so no
# signal is sent during finalize here.
# Prints a table and "faults summary: N cases, P passed, F failed; records
# lost: K"; exits non-zero on any failure.
#
#   faults.sh [--no-build]
# LM_ROOTFS_PAYLOAD_MIB (default 0) as for mklive.sh; LM_FAULTS_BPS (default
# 8 MiB/s) is the throttled targets' write rate. Images go to $LM_OUT/faults.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

parse_build_flag faults.sh "$@"
t_start=$EPOCHREALTIME

need_pkgs socat fdisk
"$QEMU_DIR/fetch.sh"
if ((build)); then make -C "$REPO_ROOT" build >&2; fi
FO=$LM_OUT/faults
mkdir -p "$FO"
"$QEMU_DIR/mkinitrd.sh" "$FO/initrd.img"
LM_ROOTFS_PAYLOAD_MIB=${LM_ROOTFS_PAYLOAD_MIB:-0} "$QEMU_DIR/mklive.sh" "$FO/live.iso"
# shellcheck source=/dev/null
. "$FO/live.env"

MIB=1048576
BPS=${LM_FAULTS_BPS:-$((8 * MIB))}
NEED=$((64 * MIB + ROOTFS_BYTES / 32)) # engine.COWNeed
WHOLE=$((ROOTFS_BYTES + 512 * MIB))    # room for BIOS boot + ESP + root
RAW=$((ROOTFS_BYTES + 16 * MIB))
# fault-cow: a COW a little above twice the need, so the warning threshold
# (free < 2 x need) is crossed by writing, not at the start.
COW_WARN_MIB=$(((2 * NEED) / MIB + 12))
log "live root $ROOTFS_BYTES bytes; COW need $((NEED / MIB)) MiB; fault-cow COW ${COW_WARN_MIB} MiB; targets throttled to $((BPS / 1024)) KiB/s"

# disk SERIAL SIZE: a fresh sparse image.
disk() {
	rm -f "$FO/$1.img"
	truncate -s "$2" "$FO/$1.img"
}
# qdisk ARRAY SERIAL IMG [THROTTLE] [DRIVE-OPTS]: run-vm.sh arguments for a
# virtio disk with that serial (device id dev-SERIAL), appended to ARRAY.
qdisk() {
	local -n _a=$1
	local drive="if=none,id=d-$2,file=$3,format=raw,cache=unsafe"
	[[ -n ${4:-} ]] && drive+=",throttling.bps-write=$4"
	[[ -n ${5:-} ]] && drive+=",$5"
	_a+=(--qemu-arg -drive --qemu-arg "$drive" --qemu-arg -device --qemu-arg "virtio-blk-pci,drive=d-$2,serial=$2,id=dev-$2")
}

# qmp SOCKET COMMAND-JSON...: send commands to QEMU's monitor.
qmp() {
	local sock=$1
	shift
	{
		echo '{"execute":"qmp_capabilities"}'
		printf '%s\n' "$@"
		sleep 1
	} | timeout 10 socat -t 2 - "UNIX-CONNECT:$sock"
}

# boot DIR RUN-VM-ARGS...: one VM, with a QMP socket and a pid file, while
# the host watches the facts port: qmp_unplug=ID -> device_del ID;
# powercut_now=... -> kill -9 QEMU. Returns run-vm.sh's status.
boot() {
	local dir=$1 vpid rc=0 id unplugged=0 cut=0
	shift
	mkdir -p "$dir"
	rm -f "$dir"/{facts.txt,qemu.pid,qmp.sock,qmp.log,powercut}
	"$QEMU_DIR/run-vm.sh" --dir "$dir" --initrd "$FO/initrd.img" \
		--qemu-arg -qmp --qemu-arg "unix:$dir/qmp.sock,server=on,wait=off" \
		--qemu-arg -pidfile --qemu-arg "$dir/qemu.pid" "$@" &
	vpid=$!
	while kill -0 "$vpid" 2>/dev/null; do
		if ((!unplugged)); then
			id=$(facts_get "$dir/facts.txt" qmp_unplug)
			if [[ -n $id ]]; then
				unplugged=1
				log "QMP device_del $id"
				qmp "$dir/qmp.sock" "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"dev-$id\"}}" >>"$dir/qmp.log" 2>&1 || log "QMP failed (see $dir/qmp.log)"
			fi
		fi
		if ((!cut)) && [[ -n $(facts_get "$dir/facts.txt" powercut_now) && -s $dir/qemu.pid ]]; then
			cut=1
			log "power cut: kill -9 QEMU (pid $(cat "$dir/qemu.pid")) at $(facts_get "$dir/facts.txt" powercut_now)% of the copy"
			kill -9 "$(cat "$dir/qemu.pid")" 2>/dev/null || true
			echo yes >"$dir/powercut"
		fi
		sleep 0.2
	done
	wait "$vpid" || rc=$?
	return "$rc"
}

# --- Judging -------------------------------------------------------------
n=0 passed=0 failed=0 lost=0
rows=() problems=()
F=
f() { facts_get "$F" "$1"; }
# row CASE EXPECTED GOT WHY...: one line of the table; no WHY means pass.
row() {
	local c=$1 want=$2 got=$3
	shift 3
	n=$((n + 1))
	if (($# == 0)); then
		passed=$((passed + 1))
		rows+=("$(printf '%-18s %-44s %-28.60s %s' "$c" "$want" "$got" ok)")
	else
		failed=$((failed + 1))
		rows+=("$(printf '%-18s %-44s %-28.60s %s' "$c" "$want" "$got" FAIL)")
		problems+=("$c: $(IFS=';'; echo "$*")")
	fi
}
# recs KEY: append to why[] if the record check KEY lost anything; count.
recs() {
	local r bad
	r=$(f "$1_records")
	if [[ $r =~ records_ok=([0-9]+)\ records_bad=([0-9]+) ]]; then
		bad=${BASH_REMATCH[2]}
		lost=$((lost + bad))
		((bad == 0)) || why+=("$1: $bad records lost ($r)")
		[[ $r == *writer=alive* || ${2:-} == dead-ok ]] || why+=("$1: the writer died ($r)")
	else
		why+=("$1: no record check ($r)")
	fi
}
# live_only CASE: the array is back to the live leg alone, in sync.
live_only() {
	local legs
	legs=$(f "$1_legs")
	[[ $(f "$1_shape") == live-only ]] || why+=("$1: array is '$(f "$1_shape")'")
	[[ $(grep -o 'slot' <<<"$legs" | wc -l) == 1 && $legs == *"live leg"*"in sync"* ]] || why+=("$1: status legs '$legs'")
	[[ $(f "$1_status") == rc=0* ]] || why+=("$1: status '$(f "$1_status")'")
}
# migrated CASE: / lives on the target alone, the live stack is gone.
migrated() {
	local legs
	legs=$(f "$1_legs")
	[[ $(f "$1_shape") == migrated:* ]] || why+=("$1: array is '$(f "$1_shape")'")
	[[ $(grep -o 'slot' <<<"$legs" | wc -l) == 1 && $legs == *"in sync"* && $legs != *"live leg"* ]] || why+=("$1: status legs '$legs'")
	[[ $(f "$1_status") == "rc=0 Live stack: none"* ]] || why+=("$1: status '$(f "$1_status")'")
}
# limits CASE: md's speed limits are what they were before the case.
limits() {
	local pre now
	pre=$(f pre_md | sed 's/.* min=/min=/')
	now=$(f "$1_md" | sed 's/.* min=/min=/')
	[[ $pre == "$now" ]] || why+=("$1: speed limits '$now', before '$pre'")
}
# abort_case CASE CODE TARGET: an abort before the point of no return.
abort_case() {
	local c=$1 code=$2 tgt=$3 rc err
	rc=$(f "${c}_rc") err=$(f "${c}_err")
	[[ $rc == "$code" ]] || why+=("$c: exit '$rc', want $code")
	[[ $err == *"$tgt"* ]] || why+=("$c: stderr does not name $tgt: '$err'")
	[[ $err == *"live session intact"* ]] || why+=("$c: stderr does not say the live session is intact: '$err'")
	[[ $(f "${c}_hung") == "" ]] || why+=("$c: $(f "${c}_hung")")
	live_only "$c"
	limits "$c"
	recs "$c"
}
# done_case CASE WHEN: a signal past the point of no return: exit 0, a
# warning saying so, a result event, / on the target alone.
done_case() {
	local c=$1
	[[ $(f "${c}_rc") == 0 ]] || why+=("$c: exit '$(f "${c}_rc")': $(f "${c}_err")")
	[[ -n $(f "${c}_sent") ]] || why+=("$c: the signal was never sent")
	[[ $(f "${c}_warnings") == *"after the point of no return"* ]] || why+=("$c: no warning about the interrupt: '$(f "${c}_warnings")'")
	[[ $(f "${c}_result") == 1 || $(f "${c}_events") == *result:* ]] || why+=("$c: no result event")
	migrated "$c"
	recs "$c"
}

# --- Boot 1: fault-live ---------------------------------------------------
disk fa-main "$WHOLE"
disk fa-flaky "$RAW"
disk fa-unplug "$WHOLE"
q=()
qdisk q fa-main "$FO/fa-main.img" "$BPS"
qdisk q fa-flaky "$FO/fa-flaky.img" "$BPS"
qdisk q fa-unplug "$FO/fa-unplug.img" "$BPS"
v1=$FO/vm-live
rc1=0
boot "$v1" --cdrom "$FO/live.iso" --timeout 420 "${q[@]}" \
	--append "lm.live=$LIVE_LABEL lmtest.scenario=fault-live" || rc1=$?
F=$v1/facts.txt
main=$(f disks | sed -n 's/.*main=\([^ ]*\).*/\1/p')
up=$(f disks | sed -n 's/.*unplug=\([^ ]*\).*/\1/p')
why=()
[[ $rc1 == 0 && $(f scenario_rc) == 0 ]] || why+=("run-vm.sh rc=$rc1 scenario_rc=$(f scenario_rc)")
recs pre
row boot-live "boots, writer runs, records intact" "rc=$rc1" "${why[@]}"

why=()
[[ -n $(f sig_prehot_sent) ]] || why+=("no step-start tune-recovery seen")
abort_case sig_prehot 130 "$main"
row 4-sigint-prehot "130, target out, live leg only" "$(f sig_prehot_rc) $(f sig_prehot_shape)" "${why[@]}"
log "sig_prehot: stopped at: $(f sig_prehot_warnings)"

why=()
[[ -n $(f sig_recover_sent) ]] || why+=("recovery never reached 20%")
abort_case sig_recover 130 "$main"
row 4-sigterm-recover "130, target out, live leg only" "$(f sig_recover_rc) $(f sig_recover_shape)" "${why[@]}"

why=()
first_pid=$(f two_pid)
[[ $(f two_same_rc) == 5 ]] || why+=("second migrate (same target): exit '$(f two_same_rc)', want 5: $(f two_same_err)")
[[ $(f two_same_err) == *"another livemigrate is running (pid $first_pid)"* ]] || why+=("second migrate does not name pid $first_pid: '$(f two_same_err)'")
# Another target while the first runs: also 5, naming the running one (not
# "continue that migration", which the first is doing).
other=$(f two_other_rc)
[[ $other == 5 && $(f two_other_err) == *"another livemigrate is running (pid $first_pid)"* ]] ||
	why+=("second migrate (other target): exit '$other', want 5 naming pid $first_pid: $(f two_other_err)")
[[ $(f two_release_rc) == 5 && $(f two_release_err) == *"another livemigrate is running (pid $first_pid)"* ]] || why+=("release: exit '$(f two_release_rc)': $(f two_release_err)")
[[ $(f two_status_during) == rc=0*copying* ]] || why+=("status during: '$(f two_status_during)'")
if [[ $(f two_first) =~ alive=yes\ pct_before=([0-9]+)\ pct_after=([0-9]+) ]] && ((BASH_REMATCH[2] > BASH_REMATCH[1])); then :; else
	why+=("the first did not go on: '$(f two_first)'")
fi
abort_case two 130 "$main"
row 7-two-at-once "5 (pid), 5 other, release 5; first 130" "$(f two_same_rc)/$other/$(f two_release_rc); $(f two_rc)" "${why[@]}"

why=()
[[ $(f flaky_sent) == *"rc=0" ]] || why+=("table swap: '$(f flaky_sent)'")
abort_case flaky 20 /dev/mapper/flaky
[[ $(f flaky_err) == *"md failed"* || $(f flaky_err) == *"dropped"* ]] || why+=("stderr does not say md failed the device: '$(f flaky_err)'")
[[ $(f flaky_remove_rc) == 0 ]] || why+=("dmsetup remove flaky afterwards: rc=$(f flaky_remove_rc) (still held?)")
row 1-target-eio "20, names /dev/mapper/flaky, live leg only" "$(f flaky_rc) $(f flaky_shape)" "${why[@]}"

why=()
[[ $(f unplug_gone) == yes* ]] || why+=("the disk did not disappear: '$(f unplug_gone)' (qmp: $(tr '\n' ' ' <"$v1/qmp.log" 2>/dev/null))")
abort_case unplug 20 "$up"
[[ -z $(f unplug_cleanup) ]] || why+=("$(f unplug_cleanup)")
row 2-target-unplug "20, names $up, live leg only" "$(f unplug_rc) $(f unplug_shape)" "${why[@]}"

why=()
[[ -n $(f kill9_sent) ]] || why+=("recovery never reached 20%")
[[ $(f kill9_rc) == 137 ]] || why+=("killed migrate: exit '$(f kill9_rc)'")
[[ $(f kill9_legs) =~ live\ leg.*in\ sync && $(f kill9_legs) =~ target\ (copying|in\ sync) ]] || why+=("status after SIGKILL: '$(f kill9_legs)'")
[[ $(f kill9_dry) == rc=0*Continuing:* ]] || why+=("dry-run after SIGKILL: '$(f kill9_dry)'")
[[ -n $(f kill9_again_plan) ]] || why+=("the plan of the second run has no 'resume'")
recs kill9
done_case kill9_again
row 5-sigkill-rerun "status copying; rerun continues, 0" "$(f kill9_rc); $(f kill9_again_rc) $(f kill9_again_shape)" "${why[@]}"
log "kill9: plan of the rerun: $(f kill9_again_plan)"

why=()
[[ $(f kill9_again_sent) == *remove-live-leg* ]] || why+=("the signal was not sent on step-done remove-live-leg")
[[ $(f kill9_again_rc) == 0 && $(f kill9_again_warnings) == *"after the point of no return"* ]] || why+=("exit '$(f kill9_again_rc)', warnings '$(f kill9_again_warnings)'")
row 4-sigint-after-drop "0, warning, complete migration" "$(f kill9_again_rc) $(f kill9_again_shape)" "${why[@]}"
# md's speed limits after a killed run and a resumed one.
why=()
pre=$(f pre_md | sed 's/.* min=/min=/')
now=$(f kill9_again_md | sed 's/.* min=/min=/')
[[ $pre == "$now" ]] || why+=("after the resumed run md keeps '$now' (before the first run: '$pre')")
row 5-speed-restored "limits as before the killed run" "$now" "${why[@]}"
why=()
recs final dead-ok
row live-final-records "all records intact on the target" "$(f final_records | grep -o 'records_ok=[0-9]* records_bad=[0-9]*')" "${why[@]}"

# --- Boot 2: fault-cow, then the power cut --------------------------------
disk fa-main "$WHOLE"
disk fa-pc "$WHOLE"
q=()
qdisk q fa-main "$FO/fa-main.img" "$BPS"
qdisk q fa-pc "$FO/fa-pc.img" "$BPS"
v2=$FO/vm-cow
rc2=0
boot "$v2" --cdrom "$FO/live.iso" --timeout 300 "${q[@]}" \
	--append "lm.live=$LIVE_LABEL lm.cowsize=${COW_WARN_MIB}M lmtest.scenario=fault-cow lmtest.fill=24" || rc2=$?
F=$v2/facts.txt
why=()
[[ $(f cowwarn_early) == "0 warnings"* ]] || why+=("a COW warning before anything was written: $(f cowwarn_early)")
[[ $(f cowwarn_warnings) == *"copy-on-write space is getting low"*"Ctrl+C"* ]] || why+=("no COW warning event: '$(f cowwarn_warnings)'")
abort_case cowwarn 130 "$(f disks | sed -n 's/.*main=\([^ ]*\).*/\1/p')"
[[ $(f cowwarn_cow) != *Invalid* && $(f cowwarn_cow) != *Overflow* ]] || why+=("snapshot: $(f cowwarn_cow)")
row 3-cow-warn-sigint "warning event, then SIGINT: 130" "$(f cowwarn_rc) $(f cowwarn_shape)" "${why[@]}"
log "cowwarn: $(f cowwarn_cowplan); $(f cowwarn_early); $(f cowwarn_sent)"

# The power cut's disk, on the host: a GPT, but nothing that boots.
why=()
pcimg=$FO/fa-pc.img
[[ -f $v2/powercut ]] || why+=("no power cut: $(f powercut_missed) (run-vm rc=$rc2)")
[[ $(f powercut_events) == *recover* ]] || why+=("not cut during the copy: '$(f powercut_events)'")
recs powercut
bootcode=$(head -c 440 "$pcimg" | tr -d '\0' | wc -c)
((bootcode == 0)) || why+=("the protective MBR has $bootcode non-zero bytes of boot code")
pt=$(sfdisk -d "$pcimg" 2>/dev/null || true)
part() { awk -F'[:,=]' -v p="$1" '$1 ~ p" *$" { gsub(/ /, ""); print $3 * 512, $5 * 512 }' <<<"$pt"; }
read -r p1s p1z < <(part 1) || true
read -r p2s p2z < <(part 2) || true
read -r p3s p3z < <(part 3) || true
[[ -n ${p3z:-} ]] || why+=("no GPT with 3 partitions: '$pt'")
esp_type='' bb_nonzero='' root_id=''
if [[ -n ${p3z:-} ]]; then
	bb_nonzero=$(dd if="$pcimg" bs=512 skip=$((p1s / 512)) count=$((p1z / 512)) status=none | tr -d '\0' | wc -c)
	((bb_nonzero == 0)) || why+=("the BIOS boot partition holds $bb_nonzero non-zero bytes (GRUB core?)")
	l=$(losetup -f --show -r -o "$p2s" --sizelimit "$p2z" "$pcimg")
	esp_type=$(blkid -p -o value -s TYPE "$l" 2>/dev/null || true)
	losetup -d "$l"
	[[ -z $esp_type ]] || why+=("the ESP has a filesystem ($esp_type): an EFI binary could be on it")
	l=$(losetup -f --show -r -o "$p3s" --sizelimit "$p3z" "$pcimg")
	root_id=$(blkid -p -o export "$l" 2>/dev/null | grep -E '^(TYPE|UUID)=' | tr '\n' ' ' || true)
	e2fsck -fn "$l" >"$FO/pc-e2fsck.txt" 2>&1 && pc_fsck=0 || pc_fsck=$?
	losetup -d "$l"
fi
log "power-cut disk: boot code bytes $bootcode, BIOS boot non-zero ${bb_nonzero:-?}, ESP type '${esp_type}', root: ${root_id}; host e2fsck -fn rc=${pc_fsck:-?} ($(grep -c '?' "$FO/pc-e2fsck.txt" 2>/dev/null) problems, $(grep -E 'aborted|still has errors' "$FO/pc-e2fsck.txt" 2>/dev/null | tr '\n' ' '))"
pc_why=("${why[@]}")
pc_got="cut at $(f powercut_now)%, boot code ${bootcode}B, ESP '${esp_type:-none}'"

# --- Boot 3: the half-copied disk alone, root=UUID= (throwaway snapshot) --
q=()
qdisk q fa-pc "$pcimg" "" snapshot=on
v3=$FO/vm-halfboot
rc3=0
boot "$v3" --timeout 120 "${q[@]}" \
	--append "root=UUID=$ROOTFS_UUID lm.fsck=1 lm.wait=20 lmtest.scenario=fault-halfboot" || rc3=$?
F=$v3/facts.txt
fatal=$(grep -a 'lm-initrd: FATAL' "$v3/console.log" | tr -d '\r' | head -n1)
ext4err=$(grep -ac 'EXT4-fs error' "$v3/console.log" || true)
half="run-vm rc=$rc3; ${fatal:-no initramfs failure}; $ext4err EXT4-fs errors on the console; $(grep -a 'EXT4-fs (vda3)' "$v3/console.log" | tr -d '\r' | sed 's/^\[[ 0-9.]*\] //' | tr '\n' ' '); root_dev=$(f root_dev) fsck_rc=$(f fsck_rc) ($(f fsck)); initrd_fail='$(f initrd_fail)'; scenario_start='$(f scenario_start)' scenario_rc='$(f scenario_rc)'; root='$(f halfboot_root)'; records='$(f halfboot_records)'"
log "half-copied disk booted with root=UUID=: $half"
grep -aE 'EXT4-fs|Kernel panic|lm-initrd|lmtest:|Run /|init' "$v3/console.log" | tail -n 12 >"$FO/halfboot-console.txt" || true

# --- Boot 3b: the half-copied disk alone, through the firmware -------------
# As a machine would start it (SeaBIOS, no kernel given): with no boot code
# on it, nothing of it may run. A throwaway snapshot again.
q=()
qdisk q fa-pc "$pcimg" "" snapshot=on
v3b=$FO/vm-halfboot-fw
rc3b=0
boot "$v3b" --firmware-boot --retry-window none --timeout 45 "${q[@]}" || rc3b=$?
fw_facts=$(tr -d '\r' <"$v3b/facts.txt" 2>/dev/null | grep -c . || true)
fw_console=$(tr -d '\r' <"$v3b/console.log" 2>/dev/null | grep -ac 'Linux version' || true)
log "half-copied disk through the firmware: run-vm rc=$rc3b (124: nothing booted, the 45 s ran out), $fw_facts facts, $fw_console kernel banners"

# --- Boot 4: fault-cowfull, with the half-copied disk attached -------------
q=()
qdisk q fa-pc "$pcimg"
v4=$FO/vm-cowfull
rc4=0
pc_sha4=$(sha256sum "$pcimg" | cut -d' ' -f1) # nothing in boot 4 may write it
boot "$v4" --cdrom "$FO/live.iso" --timeout 240 "${q[@]}" \
	--append "lm.live=$LIVE_LABEL lm.cowsize=96M lmtest.scenario=fault-cowfull lmtest.fill=40" || rc4=$?
F=$v4/facts.txt
why=("${pc_why[@]}")
[[ $rc4 == 0 ]] || why+=("fault-cowfull: run-vm.sh rc=$rc4")
pcdev=$(f disks | sed -n 's/.*pc=\([^ ]*\).*/\1/p')
[[ $(f halfdisk_in_status) == 0 ]] || why+=("status mentions $pcdev: $(f halfdisk_status)")
[[ -z $(f halfdisk_holders | tr -d ' ') ]] || why+=("$pcdev is held by $(f halfdisk_holders)")
[[ $(f halfdisk_shape) == live-only ]] || why+=("array is '$(f halfdisk_shape)'")
[[ $(f halfdisk_dry_rc) == 0 ]] || why+=("dry-run exit '$(f halfdisk_dry_rc)': $(f halfdisk_dry)")
[[ $(f halfdisk_dry) == *"This destroys"*"partition table of $pcdev"* ]] || why+=("dry-run does not plan to overwrite it: '$(f halfdisk_dry)'")
[[ $(f halfdisk_dry) != *Continuing* ]] || why+=("dry-run would continue the cut migration: '$(f halfdisk_dry)'")
[[ $(facts_get "$v2/facts.txt" powercut_plan_finalize) == 1 ]] || why+=("the cut migration did not plan finalize (it must run as a user would)")
[[ $rc3b == 124 && $fw_facts == 0 && $fw_console == 0 ]] || why+=("the half-copied disk booted through the firmware: run-vm rc=$rc3b, $fw_facts facts, $fw_console kernel banners")
row 6-power-cut "finalize on: boots nothing, not an install" "$pc_got; dry-run $(f halfdisk_dry_rc)" "${why[@]}"

why=()
err=$(f cowfull_err)
abort_case_16() {
	[[ $(f cowfull_rc) == 16 ]] || why+=("exit '$(f cowfull_rc)', want 16: $err")
	[[ $err =~ only\ [0-9.]+\ [KMG]iB\ of\ copy-on-write\ space\ left,\ the\ migration\ needs\ about\ [0-9.]+\ [KMG]iB ]] || why+=("message does not say what is left and needed: '$err'")
	[[ $err != *"delete files"* ]] || why+=("the hint suggests deleting files, which frees no COW: '$err'")
	[[ -z $(f cowfull_pc_holders | tr -d ' ') ]] || why+=("$pcdev held by $(f cowfull_pc_holders) after the refusal")
	live_only cowfull
	recs cowfull
	recs final dead-ok
	# Like the refusal suite: every disk checksummed around the refusal
	# in the guest, and the image on the host across the whole boot
	# (status, dry-runs and the refusal all leave it as it was).
	[[ $(f cowfull_sums_same) == yes:* ]] || why+=("a disk changed across the refusal (guest sha256): $(facts_lines "$F" cowfull_sums_before | tr '\n' ' ') -> $(facts_lines "$F" cowfull_sums_after | tr '\n' ' ')")
	[[ $(sha256sum "$pcimg" | cut -d' ' -f1) == "$pc_sha4" ]] || why+=("$pcimg changed during the boot (host sha256)")
}
abort_case_16
row 3-cow-refuse "16, says left and needed" "$(f cowfull_rc) $(f cowfull_shape)" "${why[@]}"
log "cowfull: $(f cowfull_headroom); stderr: $err"
log "cowfull: after deleting the fill file (as the hint says): $(f cowfull_after_rm); dry-run: $(f cowfull_after_rm_dry)"

# --- Boots 5 and 6: signals during grow ------------------------------------
# grow-filesystem takes milliseconds here: its signal may land in the
# release, the last step. The third boot signals the release itself.
for spec in "INT grow-array sig_grow_array" "TERM grow-filesystem sig_grow_fs" "HUP release-live-stack sig_release"; do
	read -r sig at name <<<"$spec"
	disk fa-main "$WHOLE"
	q=()
	qdisk q fa-main "$FO/fa-main.img"
	v=$FO/vm-$name
	rc=0
	boot "$v" --cdrom "$FO/live.iso" --timeout 240 "${q[@]}" \
		--append "lm.live=$LIVE_LABEL lmtest.scenario=fault-grow lmtest.sig=$sig lmtest.at=$at lmtest.case=$name" || rc=$?
	F=$v/facts.txt
	why=()
	[[ $rc == 0 ]] || why+=("run-vm.sh rc=$rc")
	done_case "$name"
	recs final dead-ok
	row "4-sig${sig,,}-${at}" "0, warning, complete migration" "$(f "${name}_rc") $(f "${name}_shape") $(f "${name}_events" | grep -o 'warning:[a-z-]*' || echo no-warning)" "${why[@]}"
done
# --- Boot 8: fault-resume, on md7 built by mdadm (live leg in slot 1) -----
# The target is partition 3 of a GPT disk whose partitions 1 and 2 hold
# random data: their checksums must not change, whatever is asked for.
MIB32=$((32 * MIB))
disk fr-gpt "$((ROOTFS_BYTES + 128 * MIB))"
frimg=$FO/fr-gpt.img
sfdisk -q "$frimg" <<SFDISK >/dev/null
label: gpt
start=2048, size=$((MIB32 / 512)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data1
start=$((2048 + MIB32 / 512)), size=$((MIB32 / 512)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data2
start=$((2048 + 2 * MIB32 / 512)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
SFDISK
dd if=/dev/urandom of="$frimg" bs=1M seek=1 count=64 conv=notrunc status=none
# sums IMG: sha256 of partitions 1 and 2 and of the first MiB (MBR + GPT).
sums() {
	printf 'p1=%s p2=%s head=%s' \
		"$(dd if="$1" bs=1M skip=1 count=32 status=none | sha256sum | cut -c1-16)" \
		"$(dd if="$1" bs=1M skip=33 count=32 status=none | sha256sum | cut -c1-16)" \
		"$(dd if="$1" bs=1M count=1 status=none | sha256sum | cut -c1-16)"
}
fr_before=$(sums "$frimg")
q=()
qdisk q fr-gpt "$frimg" "$BPS"
v8=$FO/vm-resume
rc8=0
boot "$v8" --cdrom "$FO/live.iso" --timeout 360 "${q[@]}" \
	--append "lm.live=$LIVE_LABEL lm.stack=tools lm.md=/dev/md7 lm.mdorder=missing-first lmtest.scenario=fault-resume" || rc8=$?
F=$v8/facts.txt
fr_after=$(sums "$frimg")
frpart=$(f disks | sed -n 's/.*part=\([^ ]*\).*/\1/p')
frdisk=$(f disks | sed -n 's/.*gpt=\([^ ]*\).*/\1/p')
log "fault-resume: $(f disks); partitions 1-2 and GPT before: $fr_before; after: $fr_after"
why=()
[[ $rc8 == 0 && $(f scenario_rc) == 0 ]] || why+=("run-vm.sh rc=$rc8 scenario_rc=$(f scenario_rc)")
[[ $(f disks) == *"md=/dev/md7"*"live_slot=1"* ]] || why+=("not on mdadm's md7 with the live leg in slot 1: '$(f disks)'")
[[ -n $(f kill9_sent) && $(f kill9_rc) == 137 ]] || why+=("kill9: sent '$(f kill9_sent)', exit '$(f kill9_rc)'")
recs kill9
row 5-kill9-md7 "SIGKILL mid-copy on mdadm's md7" "$(f kill9_rc) $(f kill9_sent)" "${why[@]}"
why=()
for c in bydisk_dry bydisk; do
	[[ $(f "${c}_rc") == 17 ]] || why+=("$c: exit '$(f "${c}_rc")', want 17")
done
[[ $(f bydisk_err) == *"a migration into the partition $frpart is under way"*"--target $frpart"* ]] || why+=("bydisk: stderr does not name $frpart and what to type: '$(f bydisk_err)'")
[[ $(f bydisk_dry) == *"--target $frpart"* ]] || why+=("bydisk dry run: '$(f bydisk_dry)'")
[[ $(f bydisk_events) != *step-start* ]] || why+=("bydisk ran steps: $(f bydisk_events)")
[[ $fr_before == "$fr_after" ]] || why+=("partitions 1-2 or the GPT of $frdisk changed: before $fr_before, after $fr_after")
[[ $(f wiz_targets) == *"cannot be used: a migration into the partition $frpart is under way"* ]] || why+=("the wizard does not grey $frdisk out with that reason: '$(f wiz_targets)'")
recs bydisk
row 1-continue-by-disk "17 naming $frpart; wizard greys it; sums same" "$(f bydisk_dry_rc)/$(f bydisk_rc) $( [[ $fr_before == "$fr_after" ]] && echo same-sums || echo CHANGED)" "${why[@]}"
why=()
[[ $(f failed_state) == rc=0*"(faulty"* ]] || why+=("the live leg was not failed by hand: '$(f failed_state)'")
[[ $(f resume_plan) == *"live leg was already failed"* ]] || why+=("the rerun's plan does not say it continues from a failed live leg: '$(f resume_plan)'")
[[ $(f resume_rc) == 0 ]] || why+=("rerun: exit '$(f resume_rc)' (141 is SIGPIPE): $(f resume_err)")
[[ -n $(f resume_sent) ]] || why+=("SIGINT not sent: the reader never saw remove-live-leg (events $(f resume_events))")
[[ $(f resume_shape) == "migrated:$frpart" ]] || why+=("array is '$(f resume_shape)'")
[[ $(f resume_status) == "rc=0 Live stack: none"* ]] || why+=("status '$(f resume_status)'")
limits resume
recs resume
recs final dead-ok
row 3-rerun-failed-leg "0 from 'live leg failed, not removed'" "$(f resume_rc) $(f resume_shape)" "${why[@]}"
why=()
[[ $(f resume_rc) == 0 && -n $(f resume_sent) ]] || why+=("exit '$(f resume_rc)' with the reader gone and SIGINT '$(f resume_sent)'")
row 4-sigpipe-sigint "reader gone + SIGINT past no return: 0" "$(f resume_rc)" "${why[@]}"

# --- Boot 9: fault-stuck: grow fails past the point of no return -----------
# / is remounted read-only mid-copy, so the kernel refuses the online
# resize: the later steps must still run, exit 21 must list what is left,
# and the rerun (after / is writable again) must finish with exit 0.
disk fa-main "$WHOLE"
q=()
qdisk q fa-main "$FO/fa-main.img" "$BPS"
v9=$FO/vm-stuck
rc9=0
boot "$v9" --cdrom "$FO/live.iso" --timeout 360 "${q[@]}" \
	--append "lm.live=$LIVE_LABEL lmtest.scenario=fault-stuck" || rc9=$?
F=$v9/facts.txt
why=()
[[ $rc9 == 0 && $(f scenario_rc) == 0 ]] || why+=("run-vm.sh rc=$rc9 scenario_rc=$(f scenario_rc)")
[[ $(f stuck_remount) == "rc=0 ro" ]] || why+=("/ was not remounted read-only: '$(f stuck_remount)'")
[[ $(f stuck_rc) == 21 ]] || why+=("exit '$(f stuck_rc)', want 21: $(f stuck_err)")
[[ $(f stuck_failed) == "grow-filesystem " ]] || why+=("failed steps '$(f stuck_failed)', want grow-filesystem alone")
[[ $(f stuck_left) == '"grow-filesystem"' ]] || why+=("error event lists left '$(f stuck_left)'")
[[ $(f stuck_err) == *grow-filesystem* && $(f stuck_err) == *"run the same migrate command again"* ]] || why+=("stderr does not name the undone step and what to do: '$(f stuck_err)'")
[[ $(f stuck_events) == *step-done:restore-recovery-speed*step-done:release-live-stack* ]] || why+=("the steps after the failed one did not run: '$(f stuck_events)'")
migrated stuck
limits stuck
recs stuck dead-ok
recs final dead-ok
fs_before=$(($(f stuck_fs_before))) arr=$(f stuck_array_bytes)
((fs_before < arr - 64 * MIB)) || why+=("the filesystem ($fs_before bytes) was grown anyway (array $arr)")
row 4-grow-fails "21, later steps run, left: grow-filesystem" "$(f stuck_rc) $(f stuck_shape) left=$(f stuck_left)" "${why[@]}"
why=()
[[ $(f again_remount) == "rc=0 rw" ]] || why+=("/ not writable again: '$(f again_remount)'")
[[ $(f again_rc) == 0 ]] || why+=("rerun: exit '$(f again_rc)': $(f again_err)")
[[ $(f again_steps) == "grow-array grow-filesystem " ]] || why+=("rerun ran '$(f again_steps)', want grow-array grow-filesystem")
fs_after=$(($(f again_fs_bytes))) arr=$(f again_array_bytes)
((fs_after > arr - 64 * MIB && fs_after <= arr)) || why+=("after the rerun the filesystem is $fs_after bytes, the array $arr")
migrated again
row 4-grow-rerun "rerun does only what was left: 0" "$(f again_rc) fs=$((fs_after / MIB))MiB/$((arr / MIB))MiB" "${why[@]}"
log "fault-stuck: stderr: $(f stuck_err); rerun result: $(f again_fs)"

rows+=("$(printf '%-18s %-44s %-28s %s' 4-finalize "signal during finalize" "-" "not here (busybox root has no finalize): test/qemu/debian run.sh install, uefi run")")

printf '%-18s %-44s %-28s %s\n' case expected got result
printf '%s\n' "${rows[@]}"
for p in "${problems[@]}"; do log "FAIL $p"; done
log "half-copied disk, root=UUID= boot: $half"
log "whole run $(since "$t_start") s; VMs in $FO/vm-*"
echo "faults summary: $n cases, $passed passed, $failed failed; records lost: $lost"
((failed == 0 && lost == 0))
