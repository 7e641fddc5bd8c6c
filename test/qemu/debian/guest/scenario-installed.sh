# shellcheck shell=sh
# installed (Debian, the migrated target booted by its firmware through the
# GRUB that finalize installed, no medium, no -kernel): everything the
# verify scenario checks (records, session data, no md, no dm, dpkg
# --verify), plus what makes it an installed system rather than a copied
# live one. The host compares the identities with the live session's.
#   scenario words come from /etc/lmtest/cmdline (the live session wrote it)
set -u
# shellcheck source-path=SCRIPTDIR source=scenario-verify.sh
(. /usr/lib/lmtest/scenario-verify.sh)
vrc=$?
fact firmware "$([ -d /sys/firmware/efi ] && echo uefi || echo bios)"
fact kernel_cmdline "$(cat /proc/cmdline)"
fact machine_id "$(cat /etc/machine-id 2>&1)"
fact ssh_fp "$(for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k" 2>&1 | cut -d' ' -f2; done | sort | tr '\n' ',')"
fact hostname "$(hostname)"
# Live-only state that must be gone: passwordless sudo, autologin (in
# unit files and as running logins), the live boot mode in the initramfs.
fact nopasswd "$(grep -rls NOPASSWD /etc/sudoers /etc/sudoers.d | tr '\n' ' ')"
# finalize edited /etc/sudoers itself: it must still parse (sudo refuses
# to run at all otherwise) and keep its mode.
if visudo -c >/run/visudo 2>&1; then
	fact sudoers_check ok
else
	fact sudoers_check "$(tr '\n' ' ' </run/visudo)"
fi
fact sudoers_mode "$(stat -c %a /etc/sudoers 2>&1)"
# Accounts anyone can log in to without a password (an empty field in
# /etc/shadow, or in /etc/passwd), and the image's guest account.
fact empty_passwords "$(awk -F: '$2 == "" { print $1 }' /etc/shadow /etc/passwd 2>&1 | tr '\n' ' ')"
fact guest_user "$(passwd -S guest 2>&1 | cut -d' ' -f1,2)"
fact autologin_units "$(grep -rls -- --autologin /etc/systemd/system /lib/systemd/system 2>/dev/null | tr '\n' ' ')"
fact autologin_running "$(pgrep -c -f '^/bin/login -p -f' || true)"
fact sessions "$(loginctl list-sessions --no-legend 2>/dev/null | wc -l)"
fact live_user "$(passwd -S live 2>&1 | cut -d' ' -f1,2)"
# Whether the live user's password is the one chosen during the migration
# (lmtest.password), and not just any: crypt(3) of it against the shadow
# hash, and of a wrong one as the control.
pwcheck() {
	perl -e 'my ($u, $pw) = @ARGV; open(my $f, "<", "/etc/shadow") or die "shadow: $!\n";
		while (<$f>) { my @x = split /:/; next unless $x[0] eq $u;
			my $c = crypt($pw, $x[1]); print defined($c) && $c eq $x[1] ? "matches" : "differs"; exit }
		print "no such user"' live "$1" 2>&1
}
pw=$(cmdline_get lmtest.password)
if [ -n "$pw" ]; then
	fact live_password "$(pwcheck "$pw")"
	fact live_password_wrong "$(pwcheck "not-$pw")"
fi
fact initrd_live "$(lsinitramfs "/boot/initrd.img-$(uname -r)" 2>&1 | grep -c livemigrate)"
fact initrd_md "$(lsinitramfs "/boot/initrd.img-$(uname -r)" 2>&1 | grep -c 'raid1.ko')"
fact_file fstab /etc/fstab
fact esp "$(findmnt -n -o SOURCE,FSTYPE /boot/efi 2>&1)"
fact esp_removable "$( (cd /boot/efi/EFI/BOOT 2>/dev/null && echo *) || echo "no /boot/efi/EFI/BOOT")"
fact grub_cfg_root "$(grep -m1 -o 'root=[^ ]*' /boot/grub/grub.cfg 2>&1)"
lsblk -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT >/run/lsblk 2>&1
fact_file lsblk /run/lsblk
fact failed_units "$(systemctl --failed --no-legend --plain 2>&1 | tr '\n' ' ')"
[ "$vrc" = 0 ]
