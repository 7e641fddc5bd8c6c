#!/bin/sh
# /sbin/init of the test live system (busybox sh, PID 1), and of the target
# disk after migration (it is the same filesystem). It runs one scenario,
# reports on the facts port and powers off: no getty, no services.
#
#   lmtest.scenario=NAME  run `lmtest scenario NAME` if lmtest has NAME in Go,
#                         else /usr/lib/lmtest/scenario-NAME.sh (default smoke)
#   lmtest.shell=1        give a console shell after the scenario
# The scenario's exit status is reported as scenario_rc=N.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

# The initramfs moves /proc, /sys, /dev and /run over; mount only what is
# not there (e.g. when booted with init=/sbin/init on a plain disk by hand).
# Never mount over a moved /run: it holds /run/initramfs/{live,squashfs},
# which livemigrate must see and release. (busybox-static has no
# `mountpoint` applet, so ask /proc/self/mounts.)
[ -r /proc/self/mounts ] || mount -t proc -o nosuid,nodev,noexec proc /proc
mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }
mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mounted /dev || mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
mounted /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mounted /tmp || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
exec </dev/console >/dev/console 2>&1
hostname lmtest

# shellcheck source-path=SCRIPTDIR source=lib.sh
. /usr/lib/lmtest/lib.sh
stty -F /dev/ttyS1 raw -echo 2>/dev/null

scenario=$(cmdline_get lmtest.scenario smoke)
script=/usr/lib/lmtest/scenario-$scenario.sh
fact scenario_start "$scenario"
fact scenario_uptime "$(cut -d' ' -f1 /proc/uptime)"
echo "lmtest: running scenario $scenario"
if lmtest scenario --has "$scenario" 2>/dev/null; then
	lmtest scenario "$scenario"
	rc=$?
elif [ -f "$script" ]; then
	# A subshell, so a scenario that exits or fails cannot take init down.
	# shellcheck disable=SC1090 # the scenario is chosen at boot
	(. "$script")
	rc=$?
else
	echo "lmtest: no scenario $script"
	rc=127
fi
echo "lmtest: scenario $scenario finished rc=$rc"
fact scenario_rc "$rc"

if [ "$(cmdline_get lmtest.shell 0)" = 1 ]; then
	echo "lmtest: shell (lmtest.shell=1); exit to power off"
	setsid cttyhack sh
fi

# Leave the root filesystem clean for whoever looks at the disk next.
sync
mount -o remount,ro / || echo "lmtest: remount ro / failed"
fact poweroff "$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
