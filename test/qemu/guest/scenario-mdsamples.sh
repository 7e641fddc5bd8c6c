# shellcheck shell=sh
# mdsamples: walk the root array through the states a migration passes
# (degraded, recovering, in sync, live leg faulty, removed, grown) using
# mdadm as the driver, and at each state report mdadm --detail, livemigrate
# status --json and lmtest mdcompare's verdict. The outputs become the
# parser samples in lmtest/testdata; the verdicts check livemigrate's view.
# Needs a spare disk at least as big as the array (lmtest.target=, default
# /dev/vda).
set -u
md=/dev/md127
sysmd=/sys/block/md127/md
target=$(cmdline_get lmtest.target /dev/vda)
i=0

sample() {
	i=$((i + 1))
	mdadm --detail "$md" >/tmp/detail 2>&1
	fact_file "sample$i.$1.mdadm" /tmp/detail
	if command -v livemigrate >/dev/null; then
		livemigrate status --json >/tmp/status.json 2>&1
		fact "sample$i.$1.status" "$(tr -d '\n' </tmp/status.json)"
		fact "sample$i.$1.mdcompare" "$(lmtest mdcompare --md "$md" 2>&1 | tr '\n' ' ')"
	fi
}

wait_idle() {
	n=0
	while [ "$(cat $sysmd/sync_action)" != idle ] && [ $n -lt 600 ]; do
		sleep 0.5
		n=$((n + 1))
	done
}

sample degraded
# Slow recovery right down so the "recovering" state can be sampled.
echo 1000 >$sysmd/sync_speed_max
check add mdadm "$md" --add "$target" || exit 1
sleep 2
sample recovering
# "system" (not "max") restores the system-wide limit.
echo system >$sysmd/sync_speed_max
wait_idle
sample insync
live=$(mdadm --detail "$md" | awk '$NF ~ /^\/dev\/(dm-|mapper)/ { print $NF; exit }')
check fail mdadm "$md" --fail "$live" || exit 1
sample faulty
check remove mdadm "$md" --remove "$live" || exit 1
sample removed
check grow mdadm --grow "$md" --size=max || exit 1
wait_idle
sample grown
check resize resize2fs "$md"
sample resized
