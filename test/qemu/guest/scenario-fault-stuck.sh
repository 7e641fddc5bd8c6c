# shellcheck shell=sh
# fault-stuck: a step past the point of no return that fails for real, and
# the rerun that finishes it. Migrate fa-main (whole disk, throttled by the
# host) and, while md copies, stop the writer and remount / read-only: an
# online resize cannot run on a read-only mount (the kernel would answer
# EROFS; livemigrate's check says so first, naming the remount to do), so
# grow-filesystem fails after its retries. The steps after it (restoring
# the speed limits, releasing the live stack) must still run, the exit code
# must be grow's (21) and the error event must list what is left. Then /
# is made writable again and the same command, run again, must do only
# what was left and exit 0 with the filesystem filling the disk.
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

main=$(disk_by_serial fa-main)
fact disks "main=$main"
[ -n "$main" ] || exit 1

writer_start
fact pre_md "$(md_state)"
records pre
mig stuck --target "$main" --yes --json --no-finalize
if until_ev stuck 180 '"event":"step-start","step":"recover"'; then
	writer_stop
	mount -o remount,ro /
	fact stuck_remount "rc=$? $(awk '$2 == "/" { print $4 }' /proc/mounts | tail -n1 | cut -d, -f1)"
fi
finish stuck 240
fact stuck_left "$(grep '"event":"error"' /run/stuck.jsonl | sed -n 's/.*"left":\[\([^]]*\)\].*/\1/p')"
fact stuck_failed "$(grep '"event":"step-failed"' /run/stuck.jsonl | sed -n 's/.*"step":"\([a-z-]*\)".*/\1/p' | tr '\n' ' ')"
fact stuck_fs_before "$(stat -f -c '%b*%S' /)"
fact stuck_array_bytes "$(($(cat "/sys/block/$mdname/size") * 512))"

mount -o remount,rw /
fact again_remount "rc=$? $(awk '$2 == "/" { print $4 }' /proc/mounts | tail -n1 | cut -d, -f1)"
mig again --target "$main" --yes --json --no-finalize
finish again 120
fact again_steps "$(grep '"event":"step-start"' /run/again.jsonl | sed -n 's/.*"step":"\([a-z-]*\)".*/\1/p' | tr '\n' ' ')"
fact again_fs "$(grep '"event":"result"' /run/again.jsonl | sed -n 's/.*"filesystem":{\([^}]*\)}.*/\1/p')"
fact again_fs_bytes "$(stat -f -c '%b*%S' /)"
fact again_array_bytes "$(($(cat "/sys/block/$mdname/size") * 512))"
exit 0
