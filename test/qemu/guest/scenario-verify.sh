# shellcheck shell=sh
# verify: the end-to-end proof, target side (booted from the target disk
# alone, plain mode, after the initramfs ran e2fsck -fn on it). Every record
# the writer acknowledged during the migration must be there, in order,
# intact; the data written in the live session and the live root's payload
# must be byte for byte what they were; no md array and no dm device may
# exist: the target is a plain filesystem.
#   lmtest.upto=N          the acked=N of the migrate scenario
#   lmtest.session_sha=S   sha256 of /root/session-data in the live session
#   lmtest.payload_sha=S   sha256 of /usr/share/lmtest/payload on the medium
set -u
upto=$(cmdline_get lmtest.upto 0)
fact root_mount "$(awk '$2 == "/" { print $1, $3 }' /proc/mounts | tail -n1)"
fact root_size "$(df -k / | awk 'NR == 2 { print $2 }')"
fact mdstat_arrays "$(grep -c '^md' /proc/mdstat 2>/dev/null || true)"
n=0
for d in /sys/block/dm-*; do [ -e "$d" ] && n=$((n + 1)); done
fact dm_devices "$n"
fact session_sha "$(sha256sum /root/session-data 2>&1 | cut -d' ' -f1)"
if [ -f /usr/share/lmtest/payload ]; then
	fact payload_sha "$(sha256sum /usr/share/lmtest/payload | cut -d' ' -f1)"
fi
out=$(lmtest verify --file /root/records --upto "$upto" 2>&1)
rc=$?
echo "$out"
fact verify "$(echo "$out" | head -n1)"
fact verify_rc "$rc"
[ "$rc" = 0 ] && [ "$upto" -gt 0 ]
