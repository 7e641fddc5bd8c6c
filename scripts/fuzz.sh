#!/bin/bash
# fuzz.sh [BUDGET]: run every fuzz target of the project for BUDGET each
# (default 100000x: that many executions), one at a time: go test -fuzz takes
# one target per run. The seed corpora always run as part of the unit tests;
# this explores beyond them for a bounded amount of work, so CI stays inside
# its budget.
#
# The budget is a count, not a duration: with a duration, Go's fuzz
# coordinator (go1.26) can report "context deadline exceeded" as a failure
# when its deadline fires while a worker is busy (golang/go#75804, fixed in
# go1.27), which a loaded CI machine hit. A count has no deadline to race;
# a slow machine just takes longer.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
GO=${GO:-scripts/go.sh}
t=${1:-100000x}
n=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name for $t"
	"$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" -fuzzminimizetime=200x "$pkg"
	n=$((n + 1))
done < <(grep -rho --include='*_test.go' -H '^func Fuzz[A-Za-z0-9_]*' internal cmd test | sed 's/func //' | sort -u)
echo "fuzz: $n targets, $t each, no failures"
