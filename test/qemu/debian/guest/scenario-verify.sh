# shellcheck shell=sh
# verify (Debian, booted from the migrated target alone): the harness's
# verify scenario (records acknowledged during the migration, the live
# session's data, no md array, no dm device), plus: / is the plain target,
# and dpkg --verify finds every packaged file byte for byte as shipped
# (an independent check that md copied the whole root).
#   lmtest.upto=N  lmtest.session_sha=S  (see harness-verify.sh)
set -u
fact root_source "$(findmnt -n -o SOURCE /)"
fact root_fstype "$(findmnt -n -o FSTYPE /)"
fact_file mdstat /proc/mdstat
fact dm_ls "$(dmsetup ls 2>&1 | tr '\n' ' ')"
fact analyze "$(systemd-analyze time 2>&1 | head -n1)"
# shellcheck source-path=SCRIPTDIR source=../../guest/scenario-verify.sh
. /usr/lib/lmtest/harness-verify.sh
vrc=$?
# The harness counts arrays in /proc/mdstat; on a plain Debian target md
# is not even loaded and the file does not exist: that is "none" too.
if [ -e /proc/mdstat ]; then n=$(grep -c '^md' /proc/mdstat); else n=0; fi
fact mdstat_arrays "$n"
t0=$(cut -d' ' -f1 /proc/uptime)
dpkg --verify >/run/dpkg-verify 2>&1
fact dpkg_verify_rc "$?"
fact dpkg_verify_lines "$(wc -l </run/dpkg-verify)"
fact dpkg_verify_seconds "$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')"
head -n 20 /run/dpkg-verify >/run/dpkg-verify.head
fact_file dpkg_verify /run/dpkg-verify.head
[ "$vrc" = 0 ]
