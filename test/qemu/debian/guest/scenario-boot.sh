# shellcheck shell=sh
# boot: what the booted Debian live system looks like. Reports the boot time
# as systemd sees it, where / comes from, the md and dm state, livemigrate's
# own view, and that the live user is logged in (autologin) on the consoles.
set -u
# "Startup finished in 3.1s (kernel) + 10.2s (initrd) + 25.0s (userspace) = ..."
fact analyze "$(systemd-analyze time 2>&1 | head -n1)"
# The time multi-user.target was reached (monotonic, from systemd itself).
fact multi_user_us "$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target)"
fact initrd_us "$(systemctl show -P InitRDTimestampMonotonic 2>/dev/null)"
fact userspace_us "$(systemctl show -P UserspaceTimestampMonotonic 2>/dev/null)"
fact root_source "$(findmnt -n -o SOURCE /)"
fact root_fstype "$(findmnt -n -o FSTYPE /)"
fact root_opts "$(findmnt -n -o OPTIONS /)"
fact root_size "$(df -k / | awk 'NR == 2 { print $2 }')"
fact_file mdstat /proc/mdstat
fact status "$(livemigrate status --json 2>&1 | tr -d '\n')"
fact status_rc "$(livemigrate status --json >/dev/null 2>&1; echo $?)"
fact live_rw_table "$(dmsetup table live-rw 2>&1)"
fact live_rw_status "$(dmsetup status live-rw 2>&1)"
fact dm_ls "$(dmsetup ls 2>&1 | tr '\n' ' ')"
fact loops "$(losetup -a 2>&1 | tr '\n' ' ')"
fact live_mounts "$(awk '$2 ~ "^/run/initramfs" { print $1 ":" $2 }' /proc/mounts | tr '\n' ' ')"
lsblk -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT >/run/lsblk 2>&1
fact_file lsblk /run/lsblk
fact hostname "$(hostname)"
fact kernel "$(uname -r)"
# Autologin: the live user's sessions (tty1 and ttyS0).
fact sessions "$(loginctl list-sessions --no-legend 2>&1 | awk '{ print $3 "@" $NF }' | sort | tr '\n' ' ')"
fact sudo_live "$(su live -c 'sudo -n id -u' 2>&1)"
fact ssh_host_keys "$(find /etc/ssh -name 'ssh_host_*_key' | wc -l)"
fact failed_units_n "$(systemctl --failed --no-legend --plain | wc -l)"
fact mem "$(awk '/^(MemTotal|MemAvailable|Shmem):/ { printf "%s%d ", $1, $2 }' /proc/meminfo)"
true
