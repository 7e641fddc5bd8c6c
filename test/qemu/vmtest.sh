#!/bin/bash
# vmtest.sh: run the Go package tests that need the real md, dm and loop
# drivers and online filesystem growth (mdraid, overlay, resize) inside the
# test VM, booted from the live medium so md127 over live-rw is the root
# while they run. Fails when a test fails, and when one of the tests that
# only the VM can run was skipped there.
#
#   vmtest.sh [--no-build]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

parse_build_flag vmtest.sh "$@"

"$QEMU_DIR/fetch.sh"
if ((build)); then make -C "$REPO_ROOT" build vmtest-bins >&2; fi
"$QEMU_DIR/mkinitrd.sh" "$LM_OUT/initrd.img"
"$QEMU_DIR/mklive.sh" "$LM_OUT/live.iso"

dir=$LM_OUT/vmtest
"$QEMU_DIR/run-vm.sh" --dir "$dir" --cdrom "$LM_OUT/live.iso" --timeout 900 --mem 3072 \
	--append "lm.live=LIVETEST lmtest.scenario=gotest" || {
	grep -E '^(gotest_|scenario_rc)' "$dir/facts.txt" | tr -d '\r' >&2 || true
	die "package tests failed in the VM (console: $dir/console.log)"
}
F=$dir/facts.txt
bad=0
for pkg in mdraid overlay resize; do
	line=$(facts_get "$F" "gotest_$pkg")
	log "$pkg: $line; skipped: $(facts_get "$F" "gotest_${pkg}_skipped")"
	[[ $(facts_get "$F" "gotest_${pkg}_rc") == 0 ]] || { log "FAIL: $pkg tests failed: $(facts_get "$F" "gotest_${pkg}_failed")"; bad=1; }
	if ! [[ $line =~ pass=([0-9]+) ]] || ((BASH_REMATCH[1] == 0)); then
		log "FAIL: no $pkg test ran"
		bad=1
	fi
done
# These exist to run here; a skip means the proof did not happen.
for t in TestKernelMigrateCycle TestKernelAbove4TiB TestGrowLoop; do
	if tr -d '\r' <"$F" | grep -E '^gotest_[a-z]+_skipped=' | grep -qw "$t"; then
		log "FAIL: $t was skipped in the VM"
		bad=1
	fi
done
log "$(facts_get "$F" gotest_note)"
((bad == 0)) || die "vmtest failed (see $dir)"
log "vmtest OK"
