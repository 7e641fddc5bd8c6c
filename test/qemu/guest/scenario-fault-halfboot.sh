# shellcheck shell=sh
# fault-halfboot: runs only if a disk whose copy was cut off by a power cut
# got this far (booted alone with root=UUID=, the /sbin/init on it started
# and found this script). Reports what the system looks like from inside.
fact halfboot_root "$(awk '$2 == "/" { print $1, $3, $4 }' /proc/mounts | tail -n1)"
fact halfboot_records "$(ls -l /root/records 2>&1)"
fact halfboot_mdstat "$(grep -c '^md' /proc/mdstat 2>/dev/null)"
fact halfboot_dmesg "$(dmesg | grep -iE 'ext4|error' | tail -n 5 | tr '\n' ' ')"
exit 0
