#!/bin/bash
# fuzz.sh [TIME]: run every fuzz target of the project for TIME each
# (default 5s), one at a time: go test -fuzz takes one target per run. The
# seed corpora always run as part of the unit tests; this explores beyond
# them for a bounded time, so CI stays inside its budget.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
GO=${GO:-scripts/go.sh}
t=${1:-5s}
n=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name for $t"
	"$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" -fuzzminimizetime=1s "$pkg"
	n=$((n + 1))
done < <(grep -rho --include='*_test.go' -H '^func Fuzz[A-Za-z0-9_]*' internal cmd test | sed 's/func //' | sort -u)
echo "fuzz: $n targets, $t each, no failures"
