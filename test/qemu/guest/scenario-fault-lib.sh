# shellcheck shell=sh
# Helpers shared by the fault scenarios (scenario-fault-*.sh), sourced by
# them; run as a scenario of its own it only defines functions. The host
# side is test/qemu/faults.sh, which judges every fact reported here.
#
# A case NAME runs `livemigrate migrate` in the background with its JSON
# events in /run/NAME.jsonl and its stderr in /run/NAME.err, and reports:
#   NAME_rc        exit status (137 when this scenario killed it)
#   NAME_err       stderr, lines joined with " | "
#   NAME_events    event:step sequence, repeated progress samples squeezed
#   NAME_warnings  the warning events' messages, joined with " | "
#   NAME_plan      the plan event's "resume" field (empty for a fresh run)
#   NAME_md        md's members, sync_action, degraded and speed limits
#   NAME_legs      the "slot" lines of `livemigrate status`, joined with " | "
#   NAME_status    `livemigrate status` exit status and its "Live stack" line
#   NAME_shape     live-only | migrated:DEV | other:...  (from sysfs and dm)
#   NAME_records   acked=N and lmtest verify's counts for records 1..N
set -u
export DM_DISABLE_UDEV=1
md=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -n1)
mdname=${md#/dev/}
mdsys=/sys/block/$mdname/md

# disk_by_serial SERIAL: /dev/vdX of the virtio disk with that serial.
disk_by_serial() {
	for _d in /sys/block/vd*; do
		[ "$(cat "$_d/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${_d##*/}"; return 0; }
	done
	return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null
}

# md_state: the array as sysfs shows it, on one line.
md_state() {
	printf 'members='
	for _m in "$mdsys"/dev-*; do
		[ -e "$_m" ] && printf '%s(%s),' "${_m##*/dev-}" "$(cat "$_m/state")"
	done
	printf ' sync_action=%s degraded=%s min=%s max=%s\n' "$(cat "$mdsys/sync_action")" \
		"$(cat "$mdsys/degraded")" "$(cat "$mdsys/sync_speed_min")" "$(cat "$mdsys/sync_speed_max")"
}

# shape: "live-only" when the only member is live-rw, in sync, nothing
# copying; "migrated:NAME" when the only member is NAME (not dm), in sync,
# and live-rw no longer exists; else "other:" and the sysfs picture.
shape() {
	_n=0 _leg='' _st=''
	for _m in "$mdsys"/dev-*; do
		[ -e "$_m" ] || continue
		_n=$((_n + 1))
		_leg=${_m##*/dev-}
		_st=$(cat "$_m/state")
	done
	_act=$(cat "$mdsys/sync_action")
	if [ "$_n" = 1 ] && [ "$_st" = in_sync ] && [ "$_act" = idle ]; then
		if [ "$(cat "/sys/block/$_leg/dm/name" 2>/dev/null)" = live-rw ]; then
			echo live-only
			return
		fi
		if [ ! -e "/sys/block/$_leg/dm" ] && ! dmsetup info live-rw >/dev/null 2>&1; then
			echo "migrated:/dev/$_leg"
			return
		fi
	fi
	echo "other: $(md_state)"
}

# writer_start: lmtest writer appends fsync'ed records to /root/records for
# the whole boot; /run/acked holds the highest acknowledged one.
writer_start() {
	lmtest writer --file /root/records --acked /run/acked --interval 20ms >/run/writer.out 2>&1 &
	wpid=$!
	sleep 1
}

# records NAME: every acknowledged record so far must read back intact from
# the array (page cache dropped first, so the bytes come from the legs).
records() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	_a=$(cat /run/acked 2>/dev/null)
	_w=dead
	if alive "$wpid"; then _w=alive; else _w="dead ($(tr '\n' ' ' </run/writer.out))"; fi
	fact "$1_records" "acked=$_a writer=$_w $(lmtest verify --file /root/records --upto "${_a:-0}" 2>&1 | tr '\n' ' ')"
}

# writer_stop: stop the writer and check every record it acknowledged.
writer_stop() {
	kill -TERM "$wpid" 2>/dev/null
	wait "$wpid"
	fact writer_rc "$?"
	fact_file writer_out /run/writer.out
	records final
}

# mig NAME ARGS...: start `livemigrate migrate ARGS...` in the background.
mig() {
	_name=$1
	shift
	rm -f "/run/$_name.jsonl" "/run/$_name.err"
	: >"/run/$_name.jsonl"
	livemigrate migrate "$@" >"/run/$_name.jsonl" 2>"/run/$_name.err" &
	mpid=$!
	fact "${_name}_pid" "$mpid"
	fact "${_name}_cmd" "livemigrate migrate $*"
}

# until_ev NAME SECS REGEX: wait until a JSON line of NAME matches REGEX.
# Fails on timeout, or when the process exited without printing it.
until_ev() {
	_i=0
	while [ "$_i" -lt $(($2 * 20)) ]; do
		grep -qE "$3" "/run/$1.jsonl" 2>/dev/null && return 0
		alive "$mpid" || { grep -qE "$3" "/run/$1.jsonl" 2>/dev/null; return; }
		sleep 0.05
		_i=$((_i + 1))
	done
	return 1
}

# pct NAME: the integer percent of NAME's last progress event.
pct() {
	grep '"event":"progress"' "/run/$1.jsonl" 2>/dev/null | tail -n1 | sed -n 's/.*"percent":\([0-9]*\).*/\1/p'
}

# until_pct NAME SECS PCT: wait until recovery progress reaches PCT percent.
until_pct() {
	_i=0
	while [ "$_i" -lt $(($2 * 10)) ]; do
		_p=$(pct "$1")
		[ -n "$_p" ] && [ "$_p" -ge "$3" ] && return 0
		alive "$mpid" || return 1
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

# finish NAME [SECS]: wait (bounded) for the migrate of NAME and report it.
finish() {
	_i=0 _t=${2:-180}
	while alive "$mpid" && [ "$_i" -lt $((_t * 10)) ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	# A process seen alive once more gets a second look a moment later
	# before it is called hung (exit of a multi-threaded process).
	if alive "$mpid" && sleep 1 && alive "$mpid"; then
		fact "$1_hung" "still running after $((_i / 10))s (uptime $(cut -d' ' -f1 /proc/uptime)): $(cut -c1-40 "/proc/$mpid/stat" 2>&1); killed"
		kill -9 "$mpid"
	fi
	wait "$mpid"
	_rc=$?
	fact "$1_rc" "$_rc"
	report "$1"
}

# report NAME: everything about NAME's run and the state it left.
report() {
	fact "$1_err" "$(sed 's/$/ | /' "/run/$1.err" | tr -d '\n')"
	fact "$1_events" "$(sed -nE 's/.*"event":"([a-z-]+)"(,"step":"([a-z-]+)")?.*/\1:\3/p' "/run/$1.jsonl" | uniq | tr '\n' ' ')"
	fact "$1_warnings" "$(grep '"event":"warning"' "/run/$1.jsonl" | sed -nE 's/.*"message":"(([^"\\]|\\.)*)".*/\1/p' | sed 's/$/ | /' | tr -d '\n')"
	fact "$1_plan" "$(grep -m1 '"event":"plan"' "/run/$1.jsonl" | sed -n 's/.*"resume":"\([^"]*\)".*/\1/p')"
	fact "$1_lastpct" "$(pct "$1")"
	fact "$1_md" "$(md_state)"
	fact "$1_shape" "$(shape)"
	livemigrate status >/run/status.txt 2>&1
	_src=$?
	fact "$1_legs" "$(grep '^  slot' /run/status.txt | sed 's/  */ /g; s/$/ | /' | tr -d '\n')"
	fact "$1_status" "rc=$_src $(grep -E '^(Live stack|  COW|  headroom)' /run/status.txt | sed 's/  */ /g' | tr '\n' ' ')"
	records "$1"
	echo "--- case $1: rc=${_rc:-?}"
	cat "/run/$1.err"
	grep -v '"event":"progress"' "/run/$1.jsonl" | cut -c1-300
}
