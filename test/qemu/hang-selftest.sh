#!/bin/bash
# hang-selftest.sh: proves run-vm.sh's emulator-hang handling without a
# VM, in seconds. A fake qemu-system-x86_64 first on PATH plays, per
# invocation, one of:
#   hang          a few early-boot console lines, then silence (the TCG
#                 hang seen after "IP idents hash table entries")
#   ok            console lines, scenario_start + scenario_rc=0, exit 0
#   scenario-hang scenario_start on the facts port, then silence
#   init-hang     "Run /init as init process" on the console, then silence
#   panic         the kernel panics early ("IO-APIC + timer doesn't work!"),
#                 QEMU exits 0 (-no-reboot)
#   init-panic    a panic after "Run /init as init process"
#   early-exit    QEMU exits 0 with no scenario_start
# and each case checks run-vm.sh's exit status, how often QEMU ran, the
# "EMULATOR HANG" log line, $LM_OUT/vm-retries.log and retries.sh's
# summary line. Prints "hang selftest: N cases, F failed".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/out"
cat >"$tmp/bin/qemu-system-x86_64" <<'EOF'
#!/bin/bash
# fake QEMU: the Nth run plays word N of $FAKEQ_PLAN (comma-separated).
con='' facts=''
while (($#)); do
	if [[ $1 == -serial && $2 == file:* ]]; then
		if [[ -z $con ]]; then con=${2#file:}; else facts=${2#file:}; fi
	fi
	shift
done
n=$(($(cat "$FAKEQ_STATE" 2>/dev/null || echo 0) + 1))
echo "$n" >"$FAKEQ_STATE"
IFS=, read -ra plan <<<"$FAKEQ_PLAN"
what=${plan[n - 1]:-ok}
: >"$facts"
printf '[    0.000000] Linux version 6.1.0 (fake)\r\n[    0.310000] IP idents hash table entries: 32768 (order: 6, 262144 bytes, linear)\r\n' >"$con"
case $what in
hang) exec sleep 600 ;;
ok)
	printf '[    2.000000] Run /init as init process\r\n' >>"$con"
	printf 'initrd_start=2.0\nscenario_start=fake\nscenario_rc=0\n' >>"$facts"
	exit 0
	;;
scenario-hang)
	printf 'initrd_start=2.0\nscenario_start=fake\n' >>"$facts"
	exec sleep 600
	;;
init-hang)
	printf '[    2.000000] Run /init as init process\r\n' >>"$con"
	exec sleep 600
	;;
panic)
	printf "[    0.016000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug\r\n" >>"$con"
	exit 0
	;;
init-panic)
	printf '[    2.000000] Run /init as init process\r\n[    2.100000] Kernel panic - not syncing: Attempted to kill init!\r\n' >>"$con"
	exit 0
	;;
early-exit) exit 0 ;;
esac
EOF
chmod +x "$tmp/bin/qemu-system-x86_64"
: >"$tmp/kernel"
: >"$tmp/initrd"

n=0 failed=0
# run_case NAME PLAN WANT_RC WANT_RUNS WANT_NEW_RETRY_LINES [RUN-VM-ARGS...]
run_case() {
	local name=$1 plan=$2 want_rc=$3 want_runs=$4 want_retries=$5 rc=0 runs before after why=()
	shift 5
	n=$((n + 1))
	before=$(wc -l <"$tmp/out/vm-retries.log" 2>/dev/null || echo 0)
	rm -f "$tmp/state"
	PATH=$tmp/bin:$PATH LM_OUT=$tmp/out LM_ACCEL=tcg LM_HANG_SECS=1 FAKEQ_PLAN=$plan FAKEQ_STATE=$tmp/state \
		"$QEMU_DIR/run-vm.sh" --dir "$tmp/out/vm-$name" --kernel "$tmp/kernel" --initrd "$tmp/initrd" \
		--timeout 4 --append "fake" "$@" >"$tmp/$name.log" 2>&1 || rc=$?
	runs=$(cat "$tmp/state" 2>/dev/null || echo 0)
	after=$(wc -l <"$tmp/out/vm-retries.log" 2>/dev/null || echo 0)
	((rc == want_rc)) || why+=("exit $rc, want $want_rc")
	((runs == want_runs)) || why+=("QEMU ran $runs times, want $want_runs")
	((after - before == want_retries)) || why+=("$((after - before)) lines added to vm-retries.log, want $want_retries")
	if ((want_retries > 0)); then
		local kind=hang pat='IP idents hash table entries'
		[[ $plan == panic* ]] && kind=panic pat="Kernel panic - not syncing: IO-APIC"
		grep -q "EMULATOR ${kind^^}: .*retrying once" "$tmp/$name.log" || why+=("no 'EMULATOR ${kind^^} ... retrying once' log line")
		tail -n1 "$tmp/out/vm-retries.log" | grep -q "$tmp/out/vm-$name kind=$kind .*last=.*$pat" ||
			why+=("retry line lacks the dir or the last console line: $(tail -n1 "$tmp/out/vm-retries.log")")
		[[ -s $tmp/out/vm-$name/console.log.hang1 ]] || why+=("the hung attempt's console was not kept")
	else
		! grep -qE 'EMULATOR (HANG|PANIC): ' "$tmp/$name.log" || why+=("retried although it must not")
	fi
	if ((${#why[@]})); then
		failed=$((failed + 1))
		log "FAIL $name: ${why[*]}"
		sed 's/^/    /' "$tmp/$name.log" >&2
	else
		log "ok   $name (exit $rc, $runs QEMU runs)"
	fi
}

LM_OUT=$tmp/out "$QEMU_DIR/retries.sh" --reset
zero=$(LM_OUT=$tmp/out "$QEMU_DIR/retries.sh")
n=$((n + 1))
[[ $zero == "vm retries: 0 ()" ]] || { failed=$((failed + 1)); log "FAIL summary with no retries: '$zero'"; }

run_case hang-then-ok hang,ok 0 2 1
run_case hang-twice hang,hang 124 2 1
run_case after-scenario scenario-hang 124 1 0
run_case kernel-window-userspace init-hang 124 1 0 --retry-window kernel
run_case kernel-window-early hang,ok 0 2 1 --retry-window kernel
run_case window-none hang 124 1 0 --retry-window none
run_case no-hang ok 0 1 0
run_case panic-then-ok panic,ok 0 2 1
run_case panic-twice panic,panic 6 2 1
run_case panic-after-init init-panic 6 1 0
run_case panic-window-none panic 6 1 0 --retry-window none
run_case early-exit early-exit 6 1 0

sum=$(LM_OUT=$tmp/out "$QEMU_DIR/retries.sh")
n=$((n + 1))
[[ $sum == "vm retries: 5 (vm-hang-then-ok (hang): "*"; vm-hang-twice (hang): "*"; vm-kernel-window-early (hang): "*"; vm-panic-then-ok (panic): "*"; vm-panic-twice (panic): "*")" ]] ||
	{ failed=$((failed + 1)); log "FAIL summary: '$sum'"; }
log "summary of this self-test's retries: $sum"
echo "hang selftest: $n cases, $failed failed"
((failed == 0))
