#!/bin/bash
# configure-root.sh ROOT: make a freshly bootstrapped Debian root behave like
# real live media (run by mkroot.sh as an mmdebstrap customize hook, with
# /proc, /sys and /dev mounted in ROOT). Nothing test-specific goes here:
# the test hooks (lmtest service, scenarios, binaries) are added by
# mkiso.sh, so that changing them does not rebuild the root.
set -euo pipefail
root=${1:?usage: configure-root.sh ROOT}

echo debian-live >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	debian-live
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF

# The live user: no password, passwordless sudo (live media do exactly
# this; it is live-only state a migrated system must not keep).
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo \
	--comment "Live user" live
chroot "$root" passwd --delete live >/dev/null
install -m 0440 /dev/stdin "$root/etc/sudoers.d/live" <<'EOF'
live ALL=(ALL) NOPASSWD: ALL
EOF
# Some media grant it in /etc/sudoers itself rather than in a drop-in
# (finalize must look there too, and keep the file valid).
printf '%s\n' '# live session: no password for the live user' \
	'live ALL=(ALL:ALL) NOPASSWD: ALL' >>"$root/etc/sudoers"
chroot "$root" visudo -c >/dev/null
# A second passwordless account (a guest login, as some media have):
# an empty password field in /etc/shadow is live-only access as well.
chroot "$root" useradd --create-home --shell /bin/bash --comment "Guest" guest
chroot "$root" passwd --delete guest >/dev/null
# root stays locked, as on real live media.
chroot "$root" passwd --lock root >/dev/null

# Autologin on the first VT and on the serial console. agetty's
# --autologin replaces the login prompt; the drop-ins reset ExecStart
# (an empty ExecStart= clears the unit's own line first).
install -d "$root/etc/systemd/system/getty@tty1.service.d" \
	"$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$root/etc/systemd/system/getty@tty1.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-p -f -- \\u' --noclear --autologin live %I $TERM
EOF
cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-p -f -- \\u' --keep-baud --autologin live 115200,57600,38400,9600 %I $TERM
EOF
# Serial console login even when the kernel console is elsewhere
# (the generator adds it anyway when console=ttyS0 is on the command line).
chroot "$root" systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1

# Periodic jobs that cost seconds of CPU under TCG and mean nothing on a
# live medium: apt's daily runs, man-db, e2scrub, fstrim, dpkg's database
# backup, mdadm's periodic array checks. Masked (not just disabled) so a
# package upgrade does not bring them back.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
	apt-daily.service apt-daily-upgrade.service man-db.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
	mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer \
	>/dev/null 2>&1

# An empty fstab: the initrd mounts / and nothing else is needed. The
# migrated system will need a real one (livemigrate's job, not the image's).
printf '# live system: / is mounted by the initrd\n' >"$root/etc/fstab"
# A live system has no machine id of its own; systemd makes a transient one.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
