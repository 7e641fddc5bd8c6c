# shellcheck shell=sh
# fault-live: faults and interruptions in one live session, which every
# aborted migration must leave intact for the next case. A writer appends
# fsync'ed records for the whole boot; after each case they are read back.
# The host (faults.sh) attaches write-throttled virtio disks, told apart by
# serial: fa-main (whole-disk target), fa-flaky (raw target under a dm
# device), fa-unplug (hot-pluggable, QMP id dev-fa-unplug). Cases, in order:
#   sig_prehot   SIGINT on step-start tune-recovery             -> 130
#   sig_recover  SIGTERM during recovery (>= 20%)               -> 130
#   two          a second migrate (same target, other target) and release
#                while the first copies -> 5; then SIGINT the first -> 130
#   flaky        dm table of the target swapped to "error" at >= 20% -> 20
#   unplug       the target disk hot-unplugged by the host (QMP
#                device_del after the fact qmp_unplug=fa-unplug) -> 20
#   kill9        SIGKILL during recovery; status; the same command again
#                (kill9_again: "resume" in its plan), SIGINT right after
#                step-done remove-live-leg -> 0, a complete migration
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

main=$(disk_by_serial fa-main)
fl=$(disk_by_serial fa-flaky)
up=$(disk_by_serial fa-unplug)
fact disks "main=$main flaky=$fl unplug=$up"
[ -n "$main" ] && [ -n "$fl" ] && [ -n "$up" ] || exit 1
args="--yes --json --no-finalize"

writer_start
fact pre_md "$(md_state)"
fact pre_shape "$(shape)"
records pre

# --- SIGINT before the hot-add.
# shellcheck disable=SC2086 # $args is words
mig sig_prehot --target "$main" $args
if until_ev sig_prehot 60 '"event":"step-start","step":"tune-recovery"'; then
	kill -INT "$mpid"
	fact sig_prehot_sent "INT on step-start tune-recovery"
fi
finish sig_prehot

# --- SIGTERM while md copies.
# shellcheck disable=SC2086
mig sig_recover --target "$main" $args
if until_pct sig_recover 90 20; then
	kill -TERM "$mpid"
	fact sig_recover_sent "TERM at $(pct sig_recover)%"
fi
finish sig_recover

# --- Two at once.
# shellcheck disable=SC2086
mig two --target "$main" $args
first=$mpid
if until_pct two 90 10; then
	p0=$(pct two)
	timeout 60 livemigrate migrate --target "$main" --yes --json --no-finalize >/run/two_same.out 2>/run/two_same.err
	fact two_same_rc "$?"
	fact two_same_err "$(head -n1 /run/two_same.err)"
	timeout 60 livemigrate migrate --target "$fl" --raw-disk --yes --json --no-finalize >/run/two_other.out 2>/run/two_other.err
	fact two_other_rc "$?"
	fact two_other_err "$(head -n1 /run/two_other.err)"
	timeout 60 livemigrate release >/run/two_release.out 2>/run/two_release.err
	fact two_release_rc "$?"
	fact two_release_err "$(head -n1 /run/two_release.err)"
	livemigrate status >/run/two_status.txt 2>&1
	fact two_status_during "rc=$? $(grep -E '^(  slot|Recovery)' /run/two_status.txt | sed 's/  */ /g' | tr '\n' ' ')"
	sleep 2
	fact two_first "pid=$first alive=$(alive "$first" && echo yes || echo no) pct_before=$p0 pct_after=$(pct two)"
	kill -INT "$first"
	fact two_sent "INT at $(pct two)%"
fi
finish two

# --- Write errors on the target: its dm table becomes "error" mid-copy.
sectors=$(blockdev --getsz "$fl")
dmsetup create flaky --table "0 $sectors linear $fl 0" && dmsetup mknodes flaky
fact flaky_dev "$(ls -l /dev/mapper/flaky 2>&1)"
# shellcheck disable=SC2086
mig flaky --target /dev/mapper/flaky --raw-disk $args
if until_pct flaky 90 20; then
	dmsetup suspend flaky &&
		dmsetup load flaky --table "0 $sectors error" &&
		dmsetup resume flaky
	fact flaky_sent "table swapped to error at $(pct flaky)%: rc=$?"
fi
finish flaky
fact flaky_dmesg "$(dmesg | grep -E 'md/raid1|md:' | tail -n 4 | tr '\n' ' ')"
dmsetup remove flaky
fact flaky_remove_rc "$?"

# --- The target disk disappears: the host unplugs it (QMP device_del).
# shellcheck disable=SC2086
mig unplug --target "$up" $args
if until_pct unplug 90 20; then
	fact qmp_unplug fa-unplug
	i=0
	while [ -e "/sys/block/${up#/dev/}" ] && [ "$i" -lt 150 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -e "/sys/block/${up#/dev/}" ]; then
		# Never unplugged: stop the migration before it completes, so
		# the next cases still have a live session.
		kill -INT "$mpid"
		fact unplug_gone "no after 15s, at $(pct unplug)%: migrate interrupted"
	else
		fact unplug_gone "yes after $((i / 10)).$((i % 10))s at $(pct unplug)%"
	fi
fi
finish unplug
# If livemigrate left the vanished leg in the array, take it out by hand
# (md's own sysfs), so that the cases after this one still have a clean
# live session; the unplug case has failed already.
for m in "$mdsys"/dev-*; do
	[ -e "$m" ] || continue
	case $(cat "$m/state") in *faulty*)
		echo remove >"$m/state"
		# shellcheck disable=SC2320 # the status of that write
		fact unplug_cleanup "${m##*/dev-} left in $md by livemigrate; removed by the test: rc=$?"
		;;
	esac
done
fact unplug_dmesg "$(dmesg | grep -E 'md/raid1|md:|virtio' | tail -n 4 | tr '\n' ' ')"

# --- SIGKILL mid-copy, then the same command again finishes it.
# shellcheck disable=SC2086
mig kill9 --target "$main" $args
if until_pct kill9 90 20; then
	kill -9 "$mpid"
	fact kill9_sent "KILL at $(pct kill9)%"
fi
wait "$mpid"
_rc=$?
fact kill9_rc "$_rc"
report kill9
livemigrate migrate --target "$main" --dry-run --no-finalize >/run/kill9_dry.out 2>&1
fact kill9_dry "rc=$? $(grep -E 'Continuing|This destroys' /run/kill9_dry.out | sed 's/  */ /g' | tr '\n' ' ')"
# shellcheck disable=SC2086
mig kill9_again --target "$main" $args
if until_ev kill9_again 120 '"event":"step-done","step":"remove-live-leg"'; then
	kill -INT "$mpid"
	fact kill9_again_sent "INT on step-done remove-live-leg"
fi
finish kill9_again
fact kill9_again_result "$(grep -c '"event":"result"' /run/kill9_again.jsonl)"

sleep 1
writer_stop
fact post_md "$(md_state)"
fact post_shape "$(shape)"
fact post_dm "$(dmsetup ls 2>&1 | tr '\n' ' ')"
exit 0
