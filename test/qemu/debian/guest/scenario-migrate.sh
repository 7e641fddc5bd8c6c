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
# The live-only access finalize must remove (the image has all of it: the
# controls for the installed system's checks).
fact live_nopasswd "$(grep -rls NOPASSWD /etc/sudoers /etc/sudoers.d | tr '\n' ' ')"
fact live_empty_passwords "$(awk -F: '$2 == "" { print $1 }' /etc/shadow /etc/passwd 2>&1 | tr '\n' ' ')"
fact_file pre_mdstat /proc/mdstat
fact pre_live_rw_table "$(dmsetup table live-rw 2>&1)"
# lmtest.rerun=fail: the first run fails at its last action, as with a
# package missing (GRUB's grub-mkconfig hidden): migrate must exit 23;
# the package comes back and the rerun below must finish the install.
rerun=$(cmdline_get lmtest.rerun 0)
if [ "$rerun" = fail ]; then
	mv /usr/sbin/grub-mkconfig /usr/sbin/grub-mkconfig.lmtest-hidden
fi
# shellcheck source-path=SCRIPTDIR source=../../guest/scenario-migrate.sh
. /usr/lib/lmtest/harness-migrate.sh
mrc=$?
if [ "$rerun" = fail ]; then
	mv /usr/sbin/grub-mkconfig.lmtest-hidden /usr/sbin/grub-mkconfig
	# (rc: migrate's exit code, from the harness.) 23 is this run's success.
	[ "$rc" = 23 ] && mrc=0
fi
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
	# The password chosen for the live user goes along, so the installed
	# system can check that it is the one set (a test password).
	pw=$(cmdline_get lmtest.password)
	# lmtest.rerun=1 (or fail): the documented fix after exit 23 is to run
	# the same command again; it must only finish what is left. The person
	# first does as finalize advised (a password for the live user, by
	# hand), and leaves a file on the ESP; then the same migrate again.
	# Nothing the first run made may change: machine-id, SSH host keys,
	# the shadow hashes, the ESP (its FAT volume id, the file on it).
	if [ "$rerun" != 0 ]; then
		pw=lm-by-hand-pw
		echo "live:$pw" | chpasswd
		echo kept >/boot/efi/lmtest-marker && sync
		ids() {
			echo "machine-id $(cat /etc/machine-id)"
			echo "ssh $(ssh_fp)"
			echo "shadow $(getent shadow live guest | cut -d: -f1,2 | tr '\n' ' ')"
			echo "esp $(blkid -p -o value -s UUID "$(findmnt -n -o SOURCE /boot/efi)" 2>&1) $(cat /boot/efi/lmtest-marker 2>&1)"
		}
		ids >/run/ids-before
		fact_file rerun_ids_before /run/ids-before
		# shellcheck disable=SC2086 # $fin: words without spaces
		livemigrate migrate --target "$target" --yes --json --speed "$speed" $fin >/run/migrate2.jsonl 2>/run/migrate2.err
		fact rerun_rc "$?"
		grep '"event":"info"' /run/migrate2.jsonl | sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\"/"/g' >/run/finalize2.txt
		fact_file rerun_finalize /run/finalize2.txt
		fact rerun_last "$(tail -n1 /run/migrate2.jsonl)"
		[ -s /run/migrate2.err ] && fact_file rerun_err /run/migrate2.err
		ids >/run/ids-after
		fact_file rerun_ids_after /run/ids-after
		fact rerun_ids "$(cmp -s /run/ids-before /run/ids-after && echo unchanged || echo changed)"
	fi
	mkdir -p /etc/lmtest
	echo "lmtest.scenario=installed lmtest.upto=$(sed -n 's/^acked=//p' /run/writer.out) lmtest.end=poweroff${pw:+ lmtest.password=$pw}" >/etc/lmtest/cmdline
	sync
fi
[ "$mrc" = 0 ]
