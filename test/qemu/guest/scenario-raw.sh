# shellcheck shell=sh
# raw: sequential O_DIRECT write speed of a spare disk and a read-back check
# of every MiB (lmtest rawwrite/rawverify). Destroys lmtest.target's data.
#   lmtest.target=DEV (default /dev/vda)   lmtest.size=SIZE (default 256M)
set -u
dev=$(cmdline_get lmtest.target /dev/vda)
size=$(cmdline_get lmtest.size 256M)
out=$(lmtest rawwrite --dev "$dev" --size "$size" 2>&1)
rc=$?
echo "$out"
fact rawwrite "$out"
fact rawwrite_rc "$rc"
[ "$rc" = 0 ] || exit "$rc"
echo 3 >/proc/sys/vm/drop_caches
out=$(lmtest rawverify --dev "$dev" --size "$size" 2>&1)
rc=$?
echo "$out"
fact rawverify "$out"
fact rawverify_rc "$rc"
exit "$rc"
