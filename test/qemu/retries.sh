#!/bin/bash
# retries.sh: the emulator-hang retries run-vm.sh made, for the end of
# make test. Prints one line, also when there were none:
#   vm retries: N (DIR (hang|panic): last console line; ...)
# from $LM_OUT/vm-retries.log (one line per retry, written by run-vm.sh).
#
#   retries.sh [--reset]   --reset empties the log first (start of a run)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

f=$LM_OUT/vm-retries.log
if [[ ${1:-} == --reset ]]; then
	mkdir -p "$LM_OUT"
	: >"$f"
	exit 0
fi
[[ $# == 0 ]] || die "retries.sh: unknown argument $1"
n=0 list=()
if [[ -s $f ]]; then
	# "TIME DIR kind=hang|panic window=W last=LINE"
	while read -r _ d kind _ last; do
		n=$((n + 1))
		list+=("${d#"$LM_OUT"/} (${kind#kind=}): ${last#last=}")
	done <"$f"
fi
joined=$(printf '%s; ' "${list[@]}")
echo "vm retries: $n (${joined%; })"
