# shellcheck shell=sh
# refuse-uefi: the live system started by UEFI (OVMF, refuse.sh's second
# boot). A partition install must be refused (28) before anything is
# written, since its boot loader would have to go onto an EFI system
# partition shared with the disk's other systems; the whole disk is still
# offered, with its own ESP. The host checks the disk's checksum.
set -u
fact uefi "$([ -d /sys/firmware/efi ] && echo yes || echo no)"
d=''
for _s in /sys/block/vd*; do
	[ "$(cat "$_s/serial" 2>/dev/null)" = rf-uefi ] && d=/dev/${_s##*/}
done
fact uefi_disk "$d"
[ -n "$d" ] || exit 1
timeout 120 livemigrate migrate --target "${d}2" --yes </dev/null >/run/u.out 2>/run/u.err
fact uefi_part "$? $(head -n1 /run/u.err)"
fact uefi_part_stdout "$(wc -c </run/u.out)"
timeout 120 livemigrate migrate --target "$d" --dry-run </dev/null >/run/u.out 2>/run/u.err
fact uefi_disk_dry "$? $(grep -c 'EFI' /run/u.out) EFI lines; $(head -n1 /run/u.err)"
exit 0
