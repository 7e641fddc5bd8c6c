# shellcheck shell=sh
# migrate (Debian live system): the harness's migrate scenario
# (test/qemu/guest/scenario-migrate.sh, installed as harness-migrate.sh:
# writer + `livemigrate migrate --target DEV --yes --json`, facts before,
# during, after), framed by what a systemd system adds: where / is, which
# units failed, and what systemd thinks of the mounts afterwards.
#   lmtest.target=DEV (default /dev/vda)   lmtest.speed=fast|gentle
set -u
# ssh_fp: the SSH host keys' fingerprints, one word.
ssh_fp() { for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k" 2>&1 | cut -d' ' -f2; done | sort | tr '\n' ','; }
fact pre_root_source "$(findmnt -n -o SOURCE /)"
# What every copy of the live image shares (or the session made up): an
# installed system must have its own.
fact live_machine_id "$(cat /etc/machine-id 2>&1)"
fact live_ssh_fp "$(ssh_fp)"
fact live_hostname "$(hostname)"
fact_file pre_mdstat /proc/mdstat
fact pre_live_rw_table "$(dmsetup table live-rw 2>&1)"
# shellcheck source-path=SCRIPTDIR source=../../guest/scenario-migrate.sh
. /usr/lib/lmtest/harness-migrate.sh
mrc=$?
fact post_root_source "$(findmnt -n -o SOURCE /)"
fact post_failed_units "$(systemctl --failed --no-legend --plain 2>&1 | tr '\n' ' ')"
fact post_system_state "$(systemctl is-system-running 2>&1)"
# systemd's mount units for the released live medium must not linger as
# "active" over nothing (it would try to unmount them at shutdown).
fact post_initramfs_units "$(systemctl list-units --no-legend --plain --all 'run-initramfs*' 2>&1 | tr '\n' ' ')"
lsblk -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT >/run/lsblk 2>&1
fact_file post_lsblk /run/lsblk
# The filesystem now under / (on the target, maybe in a partition
# livemigrate made): the next boot's root=UUID=.
fact post_root_uuid "$(findmnt -n -o UUID /)"
fact post_root_member "$(cd "/sys/block/${md#/dev/}/slaves" 2>&1 && echo *)"
# With finalize, the next boot is through the target's own GRUB, whose
# command line the test does not write: leave it the scenario (see
# lmtest.service and cmdline_get).
if [ "$mrc" = 0 ] && [ "$(cmdline_get lmtest.finalize 0)" = 1 ]; then
	# (A message may hold escaped quotes: the account \"live\".)
	grep '"event":"info"' /run/migrate.jsonl | sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\"/"/g' >/run/finalize.txt
	fact_file finalize /run/finalize.txt
	mkdir -p /etc/lmtest
	# The password chosen for the live user goes along, so the installed
	# system can check that it is the one set (a test password).
	pw=$(cmdline_get lmtest.password)
	echo "lmtest.scenario=installed lmtest.upto=$(sed -n 's/^acked=//p' /run/writer.out) lmtest.end=poweroff${pw:+ lmtest.password=$pw}" >/etc/lmtest/cmdline
	sync
fi
[ "$mrc" = 0 ]
