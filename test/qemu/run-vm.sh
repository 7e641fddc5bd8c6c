#!/bin/bash
# run-vm.sh: boot one test VM (direct kernel boot) and wait for it to power
# off. The console (ttyS0) goes to DIR/console.log, the facts port (ttyS1)
# to DIR/facts.txt. Exit status: 124 on the hard timeout, 4 when the
# initramfs failed (initrd_fail), 3 when an --expect fact is missing or
# different, 5 when the scenario reported scenario_rc other than 0, 6 when
# the guest never reported scenario_start (e.g. a kernel panic), else
# QEMU's own (0 after a clean poweroff).
#
#   run-vm.sh --dir DIR --append "CMDLINE" [--cdrom ISO] [--disk IMG]...
#             [--initrd IMG] [--kernel VMLINUZ] [--timeout SECS] [--mem MiB]
#             [--expect KEY=VALUE]... [--qemu-arg ARG]... [--firmware-boot]
#             [--retry-window scenario|kernel|none]
#
# --firmware-boot: no -kernel/-initrd/-append: the firmware boots the first
# disk the way a machine would (the installed system's own boot loader).
#
# Emulator hangs: a TCG guest has been seen to stop printing in early
# kernel boot (after "IP idents hash table entries") until the timeout,
# before any of our code ran. When the console does not grow for
# LM_HANG_SECS (default 150) while the boot is still inside its retry
# window, QEMU is killed and the boot runs once more from scratch; the
# retry is logged loudly ("EMULATOR HANG") and appended to
# $LM_OUT/vm-retries.log (test/qemu/retries.sh sums it up for make test).
# A second hang fails the boot (exit 124). A kernel panic before any of
# our code ran (no initrd_start fact, no "Run ... as init process" line),
# e.g. "IO-APIC + timer doesn't work!" on a loaded host, is retried once
# the same way ("EMULATOR PANIC"), except with --retry-window none. The
# first attempt's files are kept as DIR/*.hang1. The window is where a
# restart changes no disk:
#   scenario  (default) until the guest reports scenario_start: a live
#             boot, whose disks nothing writes before the scenario runs
#   kernel    until the kernel starts userspace (initrd_start on the facts
#             port, or "Run ... as init process" on the console): a boot
#             whose initramfs mounts a disk read-write before the scenario
#   none      never retry (e.g. a firmware boot of a disk: no reliable
#             mark of the kernel reaching userspace on a quiet console)
#
# Writes DIR/timing: wall seconds to the guest's scenario_start fact and to
# poweroff. LM_ACCEL=kvm|tcg skips the KVM probe; LM_VERBOSE=1 follows the
# console on stderr. Run one VM at a time (2 cores; TCG wants both).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

dir='' append='' cdrom='' initrd=$LM_OUT/initrd.img kernel='' timeout=300 mem=2048
disks=() expects=() qextra=() fwboot=0 window=scenario
while (($#)); do
	case $1 in
	--firmware-boot) fwboot=1; shift; continue ;;
	--dir) dir=$2 ;;
	--append) append=$2 ;;
	--cdrom) cdrom=$2 ;;
	--disk) disks+=("$2") ;;
	--initrd) initrd=$2 ;;
	--kernel) kernel=$2 ;;
	--timeout) timeout=$2 ;;
	--mem) mem=$2 ;;
	--expect) expects+=("$2") ;;
	--qemu-arg) qextra+=("$2") ;;
	--retry-window) window=$2 ;;
	*) die "run-vm.sh: unknown argument $1" ;;
	esac
	shift 2
done
[[ -n $dir ]] || die "run-vm.sh: --dir is required"
case $window in scenario | kernel | none) ;; *) die "run-vm.sh: --retry-window scenario|kernel|none, not $window" ;; esac
hang_secs=${LM_HANG_SECS:-150}
[[ -n $kernel ]] || kernel=$(kernel_image)
[[ -r $kernel && -r $initrd ]] || die "missing kernel $kernel or initrd $initrd"

mkdir -p "$dir"
rm -f "$dir"/{console.log,facts.txt,timing,qemu.log}{,.hang1}
read -ra accel <<<"$(qemu_accel_args "$kernel" "$initrd")"

args=(-nodefaults -display none -monitor none -no-reboot
	-machine pc "${accel[@]}" -smp 2 -m "$mem"
	-serial "file:$dir/console.log" -serial "file:$dir/facts.txt")
if ((fwboot)); then
	: # the firmware's own order: a blank or absent disk, then the CD
else
	# panic=1: a kernel panic reboots, and -no-reboot turns that into exit.
	# no_timer_check: the kernel's early check that the IO-APIC timer
	# ticks busy-waits a few ticks; under TCG on a loaded host the vCPU
	# can miss them and the kernel panics ("IO-APIC + timer doesn't
	# work!", seen in a faults.sh boot here) before our code runs. KVM
	# guests skip the check the same way.
	args+=(-kernel "$kernel" -initrd "$initrd" -append "console=ttyS0,115200 panic=1 no_timer_check $append")
fi
[[ -n $cdrom ]] && args+=(-drive "file=$cdrom,media=cdrom,readonly=on,if=ide,index=2")
for d in "${disks[@]}"; do
	# cache=unsafe: the host's page cache is fine for throwaway test disks
	# and keeps TCG runs from waiting on host fsyncs.
	args+=(-drive "file=$d,format=raw,if=virtio,cache=unsafe,discard=unmap")
done
# Devices that need properties (serial numbers, block sizes, read-only).
args+=("${qextra[@]}")
printf '%q ' qemu-system-x86_64 "${args[@]}" >"$dir/cmdline"
echo >>"$dir/cmdline"

# in_window: the guest has not yet got to where a restart could change a
# disk (see --retry-window above).
in_window() {
	case $window in
	none) return 1 ;;
	scenario) ! grep -q '^scenario_start=' "$dir/facts.txt" 2>/dev/null ;;
	kernel) before_our_code ;;
	esac
}

# before_our_code: the kernel has not started our initramfs (or init) yet.
before_our_code() {
	! grep -q '^initrd_start=' "$dir/facts.txt" 2>/dev/null &&
		! grep -aqE 'Run .* as init process' "$dir/console.log" 2>/dev/null
}

# boot_once: one QEMU run; sets rc, t_scen, hung=1 when the console
# stood still for hang_secs inside the retry window (QEMU killed then),
# and panicked=1 when the kernel panicked before our code ran.
boot_once() {
	local qpid tailpid='' size last_size=-1 last_change=$EPOCHSECONDS
	hung=0 panicked=0 t_scen=''
	timeout -k 5 "$timeout" qemu-system-x86_64 "${args[@]}" </dev/null >"$dir/qemu.log" 2>&1 &
	qpid=$!
	if [[ ${LM_VERBOSE:-0} == 1 ]]; then
		touch "$dir/console.log"
		tail -n +1 -f "$dir/console.log" >&2 &
		tailpid=$!
	fi
	# Poll for the guest reaching its scenario, to measure boot time from
	# the host's side (the guest's own clock under TCG is not to be
	# trusted), and for a console that stopped growing.
	while kill -0 "$qpid" 2>/dev/null; do
		if [[ -z $t_scen ]] && grep -q '^scenario_start=' "$dir/facts.txt" 2>/dev/null; then
			t_scen=$(since "$start")
		fi
		size=$(stat -c %s "$dir/console.log" 2>/dev/null || echo 0)
		if ((size != last_size)); then
			last_size=$size last_change=$EPOCHSECONDS
		elif ((EPOCHSECONDS - last_change >= hang_secs)) && in_window; then
			hung=1
			kill -TERM "$qpid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rc=0
	wait "$qpid" || rc=$?
	[[ -n $tailpid ]] && kill "$tailpid" 2>/dev/null
	if ((!hung)) && [[ $window != none ]] && grep -aq 'Kernel panic - not syncing' "$dir/console.log" 2>/dev/null &&
		before_our_code; then
		panicked=1
	fi
	return 0
}

# last_console_line: the console's last line with text, for the logs.
last_console_line() {
	tr -d '\r' <"$1" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | awk 'NF { l = $0 } END { print l }'
}

log "booting VM in $dir (${accel[*]}, timeout ${timeout}s, hang after ${hang_secs}s of console silence, retry window: $window)"
start=$EPOCHREALTIME
boot_once
if ((hung || panicked)); then
	last=$(last_console_line "$dir/console.log")
	if ((hung)); then
		kind=hang
		log "EMULATOR HANG: no console output for ${hang_secs}s before the guest's code ran ($window window), in $dir; last console line: '$last'; retrying once"
	else
		kind=panic
		last=$(tr -d '\r' <"$dir/console.log" | grep -a -m1 'Kernel panic - not syncing' | sed 's/^\[[ 0-9.]*\] //')
		log "EMULATOR PANIC: the kernel panicked before our code ran, in $dir: '$last'; retrying once"
	fi
	mkdir -p "$LM_OUT"
	printf '%s %s kind=%s window=%s last=%s\n' "$(date -u +%FT%TZ)" "$dir" "$kind" "$window" "$last" >>"$LM_OUT/vm-retries.log"
	for f in console.log facts.txt qemu.log; do
		[[ -e $dir/$f ]] && mv "$dir/$f" "$dir/$f.hang1"
	done
	start=$EPOCHREALTIME
	boot_once
	if ((hung)); then
		log "EMULATOR HANG again (no console output for ${hang_secs}s) in $dir; last console line: '$(last_console_line "$dir/console.log")'; failing"
		rc=124
	elif ((panicked)); then
		log "EMULATOR PANIC again in $dir; failing"
	fi
fi
t_end=$(since "$start")
printf 'boot_to_scenario=%s\ntotal=%s\nrc=%s\n' "${t_scen:-none}" "$t_end" "$rc" >"$dir/timing"
[[ -e $dir/console.log.hang1 ]] && printf 'retried_after_hang=1\n' >>"$dir/timing"
log "VM done rc=$rc, scenario started after ${t_scen:-never} s, total $t_end s"
if ((rc == 124)); then
	log "TIMEOUT after ${timeout}s or a second emulator hang; console tail:"
	tail -n 20 "$dir/console.log" >&2
	exit 124
fi
if [[ -s $dir/qemu.log ]]; then
	log "qemu said:"
	cat "$dir/qemu.log" >&2
fi
fail=$(facts_get "$dir/facts.txt" initrd_fail)
if [[ -n $fail ]]; then
	log "initramfs failed: $fail"
	exit 4
fi
# A boot that never got to its scenario (a panic, a guest that powered off
# early) is a failure even when no --expect asked for anything.
if ! grep -q '^scenario_start=' "$dir/facts.txt" 2>/dev/null; then
	log "the guest never reached its scenario (no scenario_start); console tail:"
	tail -n 20 "$dir/console.log" >&2
	exit 6
fi
for e in "${expects[@]}"; do
	got=$(facts_get "$dir/facts.txt" "${e%%=*}")
	if [[ $got != "${e#*=}" ]]; then
		log "expected ${e%%=*}=${e#*=}, got '${got}'; console tail:"
		tail -n 20 "$dir/console.log" >&2
		exit 3
	fi
done
src=$(facts_get "$dir/facts.txt" scenario_rc)
if [[ -n $src && $src != 0 ]]; then
	log "scenario $(facts_get "$dir/facts.txt" scenario_start) failed: scenario_rc=$src"
	exit 5
fi
exit "$rc"
