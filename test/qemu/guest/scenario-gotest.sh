# shellcheck shell=sh
# gotest: run the package tests that need the real kernel (md, dm, loop,
# online filesystem growth) inside the guest. They are `go test -c` binaries
# that skip themselves unless LIVEMIGRATE_VM=1. Reports per binary:
#   gotest_NAME_rc, gotest_NAME="pass=N fail=N skip=N", and each failing or
#   skipped test's name, so the host can insist that nothing was skipped.
set -u
modprobe xfs 2>/dev/null || echo "gotest: no xfs module"
modprobe btrfs 2>/dev/null || echo "gotest: no btrfs module"
export LIVEMIGRATE_VM=1
rc_all=0
for t in /usr/lib/lmtest/tests/*.test; do
	[ -x "$t" ] || continue
	name=$(basename "$t" .test)
	log=/run/gotest-$name.log
	echo "=== gotest: $name"
	dir=/usr/lib/lmtest/tests/$name
	[ -d "$dir" ] || dir=/tmp
	(cd "$dir" && "$t" -test.v -test.count=1 -test.timeout=8m) >"$log" 2>&1
	rc=$?
	cat "$log"
	pass=$(grep -c -- '^\s*--- PASS' "$log")
	fail=$(grep -c -- '^\s*--- FAIL' "$log")
	skip=$(grep -c -- '^\s*--- SKIP' "$log")
	fact "gotest_${name}_rc" "$rc"
	fact "gotest_${name}" "pass=$pass fail=$fail skip=$skip"
	fact "gotest_${name}_skipped" "$(grep -- '^\s*--- SKIP' "$log" | awk '{ print $3 }' | tr '\n' ' ')"
	fact "gotest_${name}_failed" "$(grep -- '^\s*--- FAIL' "$log" | awk '{ print $3 }' | tr '\n' ' ')"
	grep -h '^md above 4 TiB' "$log" | while IFS= read -r l; do fact gotest_note "$l"; done
	[ "$rc" = 0 ] || rc_all=1
done
[ "$rc_all" = 0 ]
