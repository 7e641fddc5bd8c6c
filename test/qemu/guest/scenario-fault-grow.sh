# shellcheck shell=sh
# fault-grow: a signal after the point of no return. Migrate fa-main (whole
# disk) and send lmtest.sig (INT or TERM) when the step lmtest.at starts
# (grow-array or grow-filesystem): the migration must finish (exit 0), say
# in a warning event that the interrupt was noted, and leave / on the
# target alone with every record intact.
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

main=$(disk_by_serial fa-main)
sig=$(cmdline_get lmtest.sig INT)
at=$(cmdline_get lmtest.at grow-array)
name=$(cmdline_get lmtest.case grow)
fact disks "main=$main sig=$sig at=$at case=$name"
[ -n "$main" ] || exit 1

writer_start
fact pre_md "$(md_state)"
records pre
mig "$name" --target "$main" --yes --json --no-finalize
if until_ev "$name" 180 "\"event\":\"step-start\",\"step\":\"$at\""; then
	kill "-$sig" "$mpid"
	fact "${name}_sent" "$sig on step-start $at"
fi
finish "$name"
fact "${name}_result" "$(grep -c '"event":"result"' "/run/$name.jsonl")"
sleep 1
writer_stop
fact post_shape "$(shape)"
exit 0
