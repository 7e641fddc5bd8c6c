# shellcheck shell=sh
# fault-cowfull: a live session with a small copy-on-write store
# (lm.cowsize=96M from the host) and, as fa-pc, the disk whose migration
# the power cut of fault-cow interrupted.
#   halfdisk   `livemigrate status` must not show fa-pc as part of anything,
#              and `migrate --dry-run --target fa-pc` must treat it as a
#              target to overwrite (no "Continuing")
#   cowfull    write lmtest.fill MiB to /, then migrate -> 16 with a
#              message saying how much COW is left and how much is needed;
#              the sha256 of every disk (/dev/vd*, whole, past the page
#              cache) before and after the refusal: cowfull_sums_same
# shellcheck source-path=SCRIPTDIR source=scenario-fault-lib.sh
. /usr/lib/lmtest/scenario-fault-lib.sh

pc=$(disk_by_serial fa-pc)
fill=$(cmdline_get lmtest.fill 40)
fact disks "pc=$pc fill=${fill}MiB"
[ -n "$pc" ] || exit 1
n=${pc#/dev/}

writer_start
records pre
fact pre_md "$(md_state)"
livemigrate status >/run/st.txt 2>&1
fact halfdisk_status "rc=$? $(grep -E '^(  slot|Array)' /run/st.txt | sed 's/  */ /g; s/$/ | /' | tr -d '\n')"
fact halfdisk_in_status "$(grep -c "$n" /run/st.txt)"
fact halfdisk_holders "$(for h in /sys/block/"$n"/holders/* /sys/block/"$n"/"$n"*/holders/*; do [ -e "$h" ] && printf '%s ' "${h##*/}"; done)"
fact halfdisk_parts "$(for p in /sys/block/"$n"/"$n"*; do [ -e "$p" ] && printf '%s ' "${p##*/}"; done)"
fact halfdisk_blkid "$(blkid "${pc}3" 2>&1)"
livemigrate migrate --target "$pc" --dry-run --no-finalize >/run/dry.out 2>/run/dry.err
fact halfdisk_dry_rc "$?"
fact halfdisk_dry "$(grep -E '^Plan|Continuing|This destroys|^    - ' /run/dry.out | sed 's/  */ /g; s/$/ | /' | tr -d '\n')$(head -n1 /run/dry.err)"
fact halfdisk_shape "$(shape)"

dd if=/dev/zero of=/root/fill bs=1M count="$fill" conv=fsync 2>/dev/null
fact cowfull_cow "$(dmsetup status live-rw 2>&1)"
livemigrate status >/run/st.txt 2>&1
fact cowfull_headroom "$(grep -E '^  headroom' /run/st.txt | sed 's/  */ /g')"
# sums FILE: sha256 of every virtio disk, whole, read past the page cache.
sums() {
	echo 3 >/proc/sys/vm/drop_caches
	sha256sum /dev/vd? >"$1" 2>&1
}
sums /run/cowfull.sums.before
mig cowfull --target "$pc" --yes --json --no-finalize
finish cowfull 120
sums /run/cowfull.sums.after
if cmp -s /run/cowfull.sums.before /run/cowfull.sums.after && grep -q '^[0-9a-f]\{64\}  /dev/vd' /run/cowfull.sums.before; then
	fact cowfull_sums_same "yes: $(wc -l </run/cowfull.sums.before) disks"
else
	fact cowfull_sums_same no
	fact_file cowfull_sums_before /run/cowfull.sums.before
	fact_file cowfull_sums_after /run/cowfull.sums.after
fi
# Deleting files does not give the COW back (dm snapshots never free
# chunks), which is why the refusal's hint does not suggest it: check both.
rm -f /root/fill
sync
fact cowfull_after_rm "$(dmsetup status live-rw 2>&1)"
timeout 60 livemigrate migrate --target "$pc" --dry-run --no-finalize >/run/dry2.out 2>/run/dry2.err
fact cowfull_after_rm_dry "rc=$? $(head -n1 /run/dry2.err)"
fact cowfull_pc_holders "$(for h in /sys/block/"$n"/holders/* /sys/block/"$n"/"$n"*/holders/*; do [ -e "$h" ] && printf '%s ' "${h##*/}"; done)"
writer_stop
fact post_shape "$(shape)"
exit 0
