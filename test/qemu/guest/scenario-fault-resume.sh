# shellcheck shell=sh
# fault-resume: continuations on a stack another tool built (faults.sh boot
# 8: lm.stack=tools, md7 by mdadm --build, the live leg in slot 1). The
# target is partition 3 of a GPT disk whose partitions 1 and 2 hold data
# (the host checksums them before and after the boot).
#  1. migrate --target PART3 --no-finalize, SIGKILL at 20% of the copy
#     (kill9);
#  2. the same migration asked for by the disk's name, with finalize, as
#     a dry run and for real: refused (17) naming PART3, nothing written
#     (bydisk_dry, bydisk); the wizard's target list greys the disk out
#     with the same reason (wiz_targets);
#  3. md finishes the copy on its own; then the live leg is failed by hand
#     through sysfs, the state a crash between failing and removing it
#     leaves (failed_state);
#  4. migrate --target PART3 --no-finalize again, its JSON read through a
#     pipe by a reader that quits at step-start remove-live-leg, then
#     SIGINT: with the reader gone and the signal past the point of no
#     return it must still finish, exit 0 (resume).
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

gpt=$(disk_by_serial fr-gpt)
part=${gpt}3
live=''
for _m in "$mdsys"/dev-dm-*; do [ -e "$_m" ] && live=${_m##*/dev-}; done
fact disks "gpt=$gpt part=$part md=$md live=$live live_slot=$(cat "$mdsys/dev-$live/slot" 2>/dev/null)"
[ -n "$gpt" ] && [ -b "$part" ] || exit 1

writer_start
fact pre_md "$(md_state)"
records pre

# 1. SIGKILL mid-copy of a partition install.
mig kill9 --target "$part" --yes --json --no-finalize
if until_pct kill9 180 20; then
	kill -9 "$mpid"
	fact kill9_sent "SIGKILL at $(pct kill9)%"
fi
finish kill9 30

# 2. The disk's name: refused, as a dry run and for real.
livemigrate migrate --target "$gpt" --dry-run >/run/bydisk_dry.out 2>&1
fact bydisk_dry_rc "$?"
fact bydisk_dry "$(tr '\n' ' ' </run/bydisk_dry.out | cut -c1-400)"
mig bydisk --target "$gpt" --yes --json
finish bydisk 60

# 2b. The wizard's list of targets: the disk greyed out with that reason.
. /usr/lib/lmtest/tui-lib.sh
if tui_start && tm send-keys -t lm Enter && tui_wait "Choose the disk" 30; then
	tr '\n' ' ' </run/screen.txt | tr -s ' ' >/run/wiz-targets.txt
	fact wiz_targets "$(cut -c1-900 /run/wiz-targets.txt)"
fi
tm send-keys -t lm C-c
sleep 1
tm kill-session -t lm 2>/dev/null

# 3. md completes the copy by itself; then the live leg is failed by hand.
_i=0
while [ "$_i" -lt 3000 ]; do
	[ "$(cat "$mdsys/dev-${part#/dev/}/state" 2>/dev/null)" = in_sync ] && [ "$(cat "$mdsys/sync_action")" = idle ] && break
	sleep 0.1
	_i=$((_i + 1))
done
fact synced_after "$((_i / 10))s: $(md_state)"
_frc=0
echo faulty >"$mdsys/dev-$live/state" || _frc=failed
fact failed_state "rc=$_frc $(md_state)"
livemigrate status >/run/status-failed.txt 2>&1
fact failed_status "rc=$? $(grep '^  slot' /run/status-failed.txt | sed 's/  */ /g' | tr '\n' '|')"
records failed

# 4. Rerun through a pipe whose reader quits at the point of no return,
#    then SIGINT.
rm -f /run/resume.pipe /run/resume.jsonl /run/resume.err
mkfifo /run/resume.pipe
: >/run/resume.jsonl
livemigrate migrate --target "$part" --yes --json --no-finalize >/run/resume.pipe 2>/run/resume.err &
mpid=$!
fact resume_cmd "livemigrate migrate --target $part --yes --json --no-finalize | reader"
while read -r _l; do
	echo "$_l" >>/run/resume.jsonl
	case $_l in *'"event":"step-start","step":"remove-live-leg"'*) break ;; esac
done </run/resume.pipe
# The pipe's only reader is gone: the next event livemigrate writes gets
# EPIPE (or SIGPIPE, which would kill it).
kill -INT "$mpid" 2>/dev/null && fact resume_sent "SIGINT after step-start remove-live-leg, reader gone"
finish resume 120
sleep 1
writer_stop
fact post_shape "$(shape)"
exit 0
