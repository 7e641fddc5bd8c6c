# shellcheck shell=sh
# fault-cow: a small copy-on-write store (lm.cowsize= from the host, a bit
# above twice what livemigrate estimates the migration needs), then a power
# cut. Disks by serial: fa-main (whole-disk target), fa-pc (whole-disk
# target of the power cut). Both write-throttled by the host.
#   cowwarn   migrate fa-main; while md copies, write lmtest.fill MiB to /
#             until a "copy-on-write space is getting low" warning event
#             appears, then SIGINT -> 130, live session intact
#   powercut  migrate fa-pc (finalize on); at >= 20% report powercut_now=PCT and wait:
#             the host kills QEMU (the disk is examined by faults.sh, then
#             booted alone, then seen from a fresh live session)
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

main=$(disk_by_serial fa-main)
pc=$(disk_by_serial fa-pc)
fill=$(cmdline_get lmtest.fill 24)
fact disks "main=$main pc=$pc fill=${fill}MiB"
[ -n "$main" ] && [ -n "$pc" ] || exit 1
args="--yes --json --no-finalize"

writer_start
fact pre_md "$(md_state)"
fact pre_cow "$(dmsetup status live-rw 2>&1)"
livemigrate status >/run/st.txt 2>&1
fact pre_status "$(grep -E '^  (COW|headroom)' /run/st.txt | sed 's/  */ /g' | tr '\n' ' ')"
records pre

# shellcheck disable=SC2086
mig cowwarn --target "$main" $args
until_pct cowwarn 90 1
sleep 1.5
fact cowwarn_cowplan "$(grep -m1 '"event":"plan"' /run/cowwarn.jsonl | grep -oE '"cow_(need|free)_bytes":[0-9]+' | tr '\n' ' ')"
fact cowwarn_early "$(grep -c 'copy-on-write space is getting low' /run/cowwarn.jsonl) warnings before writing, at $(pct cowwarn)%"
dd if=/dev/zero of=/root/fill bs=1M count="$fill" conv=fsync 2>/run/dd.err &
ddpid=$!
i=0 seen=no
while alive "$mpid" && [ "$i" -lt 900 ]; do
	if grep -q 'copy-on-write space is getting low' /run/cowwarn.jsonl; then
		seen=yes
		break
	fi
	p=$(pct cowwarn)
	[ -n "$p" ] && [ "$p" -ge 85 ] && break
	sleep 0.1
	i=$((i + 1))
done
kill -INT "$mpid"
fact cowwarn_sent "INT at $(pct cowwarn)%, warning seen=$seen"
finish cowwarn
wait "$ddpid"
fact cowwarn_dd "rc=$? $(tail -n1 /run/dd.err)"
fact cowwarn_cow "$(dmsetup status live-rw 2>&1)"
# The fill file takes root filesystem space the writer needs (the live
# root is a tight image); its COW chunks stay allocated anyway.
rm -f /root/fill
sync

# The power cut: the host kills QEMU once md has copied a fifth of fa-pc.
records powercut
# With finalize on, as a user would run it: the cut comes long before
# finalize, and the disk must still not pass for an installed system.
mig powercut --target "$pc" --yes --json
until_ev powercut 60 '"event":"plan"'
fact powercut_plan_finalize "$(grep -m1 '"event":"plan"' /run/powercut.jsonl | grep -c '"step":"finalize"')"
if until_pct powercut 90 20; then
	fact powercut_events "$(sed -nE 's/.*"event":"([a-z-]+)"(,"step":"([a-z-]+)")?.*/\1:\3/p' /run/powercut.jsonl | uniq | tr '\n' ' ')"
	fact powercut_md "$(md_state)"
	fact powercut_now "$(pct powercut)"
	sleep 120
	fact powercut_missed "the host did not cut the power within 120 s"
else
	fact powercut_missed "migrate ended or never reached 20%"
fi
finish powercut
exit 1
