#!/bin/bash
# refuse.sh: preflight turns bad targets away, in one boot of the live medium.
#  1. Build the images and eight small sparse disks: one sector too small,
#     4096-byte logical blocks, read-only, partitioned with an ext4
#     partition (the guest mounts it), one the guest makes the leg of another
#     md array, one the guest makes an LVM physical volume with an active
#     logical volume, and two blank ones (larger than, and exactly, the live
#     root).
#  2. Boot the live medium with the "refuse" scenario: it runs
#     `livemigrate migrate --target X --yes` (no --dry-run: a missing check
#     would really migrate) against each bad disk, against paths that are not
#     block devices, against the live stack itself, with usage errors, and
#     --dry-run against the good disks.
#  3. Compare every exit code with the table in livemigrate(8), check that
#     each message names the device, that the live array, dm, loops, mounts
#     and md's speed limits are as they were, that `livemigrate status` still
#     works, and that no disk image changed by a single byte.
# Prints a table and "refuse summary: N cases, P passed, F failed"; exits
# non-zero on any failure.
#
#   refuse.sh [--no-build]
# LM_ROOTFS_PAYLOAD_MIB (default 0) as for mklive.sh.
#
# The disks need device properties (serial, logical_block_size, readonly),
# so they go to run-vm.sh as --qemu-arg rather than --disk.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

parse_build_flag refuse.sh "$@"
t_start=$EPOCHREALTIME

"$QEMU_DIR/fetch.sh"
if ((build)); then make -C "$REPO_ROOT" build >&2; fi
"$QEMU_DIR/mkinitrd.sh" "$LM_OUT/initrd.img"
LM_ROOTFS_PAYLOAD_MIB=${LM_ROOTFS_PAYLOAD_MIB:-0} "$QEMU_DIR/mklive.sh" "$LM_OUT/live.iso"
# shellcheck source=/dev/null
. "$LM_OUT/live.env"
need_pkgs fdisk

# The disks. Serial numbers tell them apart in the guest.
disks=$LM_OUT/refuse-disks
rm -rf "$disks"
mkdir -p "$disks"
big=$((ROOTFS_BYTES + 16 * 1024 * 1024)) # multiple of 4 MiB, like ROOTFS_BYTES
declare -A size=(
	[rf-small]=$((ROOTFS_BYTES - 512))
	[rf-4k]=$big
	[rf-ro]=$big
	[rf-parted]=$big
	[rf-mdmem]=$big
	[rf-lvm]=$big
	[rf-good]=$((ROOTFS_BYTES + 400 * 1024 * 1024)) # room for the boot partitions too
	[rf-exact]=$ROOTFS_BYTES
	[rf-hold]=$((ROOTFS_BYTES + 400 * 1024 * 1024))
)
serials=(rf-small rf-4k rf-ro rf-parted rf-mdmem rf-lvm rf-good rf-exact rf-hold)
for s in "${serials[@]}"; do truncate -s "${size[$s]}" "$disks/$s.img"; done

# rf-parted: one partition from 1 MiB to the end (still larger than the
# live root), ext4 with a file in it, made on the host.
sfdisk -q "$disks/rf-parted.img" <<<'label: dos
start=2048, type=83' >&2
pstart=$((2048 * 512))
psize=$(($(sfdisk -d "$disks/rf-parted.img" | sed -n 's/.*start= *2048, size= *\([0-9]*\).*/\1/p') * 512))
((psize >= ROOTFS_BYTES)) || die "partition ($psize bytes) smaller than the live root"
mkdir -p "$disks/fs"
head -c 1M /dev/urandom >"$disks/fs/keep-me"
truncate -s "$psize" "$disks/part.fs"
mkfs.ext4 -q -F -L refusepart -E lazy_itable_init=0,lazy_journal_init=0 -d "$disks/fs" "$disks/part.fs"
dd if="$disks/part.fs" of="$disks/rf-parted.img" bs=1M seek=$((pstart / 1048576)) conv=notrunc,sparse status=none
keep_sha=$(sha256sum "$disks/fs/keep-me" | cut -d' ' -f1)
rm -rf "$disks/fs" "$disks/part.fs"

# The guest mounts rf-parted and puts LVM on rf-lvm, so their images change
# by the guest's own hand: the guest hashes those itself. Every other image must stay identical.
# rf-hold: a GPT the guest zeroes (first and last MiB) while migrate holds
# the disk and waits for its confirmation; afterwards the image must be
# exactly that, nothing else written.
sfdisk -q "$disks/rf-hold.img" <<<'label: gpt
start=2048, size=65536, name=keep' >&2
head -c 8M /dev/urandom | dd of="$disks/rf-hold.img" bs=1M seek=2 conv=notrunc status=none
cp --sparse=always "$disks/rf-hold.img" "$disks/rf-hold.expected"
hold_mib=$((size[rf-hold] / 1048576))
dd if=/dev/zero of="$disks/rf-hold.expected" bs=1M count=1 conv=notrunc status=none
dd if=/dev/zero of="$disks/rf-hold.expected" bs=1M seek=$((hold_mib - 1)) count=1 conv=notrunc status=none

declare -A sha_before
for s in "${serials[@]}"; do sha_before[$s]=$(sha256sum "$disks/$s.img" | cut -d' ' -f1); done

extra=()
for s in "${serials[@]}"; do
	drive="if=none,id=$s,file=$disks/$s.img,format=raw,cache=unsafe"
	dev="virtio-blk-pci,drive=$s,serial=$s"
	case $s in
	rf-ro) drive+=",readonly=on" ;;
	rf-4k) dev+=",logical_block_size=4096,physical_block_size=4096" ;;
	esac
	extra+=(-drive "$drive" -device "$dev")
done
qargs=()
for a in "${extra[@]}"; do qargs+=(--qemu-arg "$a"); done

vm=$LM_OUT/refuse
mkdir -p "$vm"
printf '%q ' "${extra[@]}" >"$vm/cmdline.extra"
vmrc=0
"$QEMU_DIR/run-vm.sh" --dir "$vm" --cdrom "$LM_OUT/live.iso" --timeout 300 "${qargs[@]}" \
	--append "lm.live=$LIVE_LABEL lmtest.scenario=refuse" || vmrc=$?
F=$vm/facts.txt
fv() { facts_get "$F" "$1"; }

# name, expected code, whether the first stderr line must name the target.
cases=(
	"too_small 13 dev"
	"blocksize_4k 15 dev"
	"read_only 14 dev"
	"part_mounted 12 dev"
	"disk_with_mounted_part 12 dev"
	"md_member 12 dev"
	"lvm_member 12 dev"
	"nonexistent 10 dev"
	"regular_file 10 dev"
	"char_device 10 dev"
	"medium 11 dev"
	"array 11 dev"
	"symlink_to_array 11 dev"
	"live_rw 11 dev"
	"origin_loop 11 dev"
	"cow_loop 11 dev"
	"squashfs_loop 11 dev"
	"metachar 10 dev"
	"empty_target 2 -"
	"no_target 2 -"
	"unknown_flag 2 -"
	"bad_speed 2 -"
	"positional_arg 2 -"
	"good_dry_run 0 -"
	"exact_dry_run 0 -"
	"exact_whole_disk 13 dev"
)
n=0 passed=0 failed=0
rows=()
problems=()
for c in "${cases[@]}"; do
	read -r name want named <<<"$c"
	n=$((n + 1))
	line=$(fv "case_$name")
	got=${line%% *}
	msg=${line#"$got"}
	msg=${msg# }
	target=$(fv "case_${name}_target")
	out=$(fv "case_${name}_stdout")
	why=()
	[[ -n $line ]] || why+=("no result")
	[[ -z $line || $got == "$want" ]] || why+=("exit $got, want $want")
	if ((want != 0)); then
		[[ $msg == "livemigrate "* ]] || why+=("first stderr line does not start with 'livemigrate'")
		[[ $named != dev || $msg == *"$target"* ]] || why+=("message does not name $target")
		[[ ${out:-0} == 0 ]] || why+=("printed $out bytes on stdout (a plan?)")
		# A Go format verb left in the text (%d) or fmt's own complaint (%!).
		[[ ! $msg =~ %[-+#0-9.]*[a-zA-Z!] ]] || why+=("broken format in the message: '${BASH_REMATCH[0]}'")
	else
		[[ -z $msg ]] || why+=("stderr not empty")
		plan=$(fv "${name%_dry_run}_plan")
		[[ $plan == "Plan: install the running live system onto $target "* ||
			$plan == "Plan: install the running live system onto the whole disk $target "* ]] || why+=("no plan for $target: '$plan'")
		[[ $(fv "${name%_dry_run}_dry_line") == 1 ]] || why+=("no 'Dry run: nothing was changed.' line")
	fi
	if [[ $name == metachar && $(fv metachar_pwned) != no ]]; then why+=("/tmp/pwned exists: the path was run by a shell"); fi
	if ((${#why[@]} == 0)); then
		passed=$((passed + 1))
		verdict=ok
	else
		failed=$((failed + 1))
		verdict="FAIL: $(IFS=';'; echo "${why[*]}")"
	fi
	rows+=("$(printf '%-24s %4s %4s  %-6s %s' "$name" "$want" "${got:--}" "${verdict%%:*}" "${msg:-(plan on stdout)}")")
	[[ $verdict == ok ]] || problems+=("$name: ${verdict#FAIL: }")
done

# Nothing written: global checks, each counted as one more case.
check() { # NAME OK-CONDITION-RESULT DETAIL
	n=$((n + 1))
	if [[ $2 == ok ]]; then
		passed=$((passed + 1))
		rows+=("$(printf '%-24s %4s %4s  %-6s %s' "$1" - - ok "$3")")
	else
		failed=$((failed + 1))
		rows+=("$(printf '%-24s %4s %4s  %-6s %s' "$1" - - FAIL "$3")")
		problems+=("$1: $3")
	fi
}
is() { if [[ $1 == "$2" ]]; then echo ok; else echo bad; fi; }
check vm_ran "$(is "$vmrc/$(fv scenario_rc)" 0/0)" "run-vm.sh rc=$vmrc, scenario_rc=$(fv scenario_rc)$(s=$(fv refuse_setup); [[ -z $s ]] || echo ": $s")"
check state_unchanged "$(is "$(fv state_same)" yes)" "md127 members/limits, mdstat, dm, loops, mounts, holders: $(fv state_same)$(facts_lines "$F" state_diff | tr '\n' ' ')"
check md_one_live_leg "$( [[ $(fv md_members) == 1 && $(fv md_live_leg) == live-rw ]] && echo ok)" "members=$(fv md_members): $(fv md_member_list)leg=$(fv md_live_leg)"
check status_after "$(is "$(fv post_status_rc)" 0)" "livemigrate status rc before=$(fv pre_status_rc) after=$(fv post_status_rc)"
check guest_sums "$(is "$(fv sums_same)" yes)" "sha256 of the disk with the mounted partition and of the LVM disk, whole, in the guest: $(fv sums_same)"
check part_fs_intact "$( [[ $(fv part_fsck_rc) == 0 && $(fv part_keep_sha_after) == "$keep_sha" ]] && echo ok)" "e2fsck -fn rc=$(fv part_fsck_rc), file on it intact=$( [[ $(fv part_keep_sha_after) == "$keep_sha" ]] && echo yes || echo no)"
changed=()
for s in "${serials[@]}"; do
	[[ $s == rf-parted || $s == rf-lvm ]] && continue
	want_sha=${sha_before[$s]}
	[[ $s == rf-hold ]] && want_sha=$(sha256sum "$disks/rf-hold.expected" | cut -d' ' -f1)
	[[ $(sha256sum "$disks/$s.img" | cut -d' ' -f1) == "$want_sha" ]] || changed+=("$s")
done
hold_rc=$(fv hold_result)
hold_dev=$(fv hold_target)
check target_changed "$([[ ${hold_rc%% *} == 19 && $hold_rc == *"livemigrate migrate: $hold_dev: changed since it was checked"* ]] && echo ok)" "exit and first stderr line: $hold_rc"
check target_held "$([[ $(fv hold_prompt) == 1 && $(fv hold_mkfs) != rc=0* && $(fv hold_steps) == 0 ]] && echo ok)" "prompt seen: $(fv hold_prompt); mkfs.ext4 while held: $(fv hold_mkfs); steps run: $(fv hold_steps); rf-hold = its GPT zeroed by dd, nothing else written: $([[ " ${changed[*]} " == *" rf-hold "* ]] && echo NO || echo yes)"
check host_images_same "$( ((${#changed[@]} == 0)) && echo ok)" "sha256 of the $((${#serials[@]} - 2)) other disk images on the host: ${changed[*]:-all unchanged}"

# A second, short boot by UEFI (OVMF, direct kernel boot): a partition
# install is refused with 28 and writes nothing; the whole disk is offered.
need_pkgs ovmf
uimg=$disks/rf-uefi.img
truncate -s "$((ROOTFS_BYTES + 400 * 1024 * 1024))" "$uimg"
sfdisk -q "$uimg" <<<"label: dos
start=2048, size=65536, type=83
start=67584, type=83" >&2
head -c 8M /dev/urandom | dd of="$uimg" bs=1M seek=1 conv=notrunc status=none
usha=$(sha256sum "$uimg" | cut -d' ' -f1)
uvm=$LM_OUT/refuse-uefi
mkdir -p "$uvm"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$uvm/vars.fd"
uvmrc=0
# OVMF loads a bzImage (an EFI stub), not the PVH vmlinux of the other
# boots; and under OVMF the guest finds no CD on the IDE bus (seen: ata2
# probed, no device), so the medium is a read-only virtio disk here.
"$QEMU_DIR/run-vm.sh" --dir "$uvm" --timeout 300 \
	--kernel "$(kernel_root)/boot/vmlinuz-$(kernel_version)" \
	--qemu-arg -drive --qemu-arg "if=none,id=rf-live,file=$LM_OUT/live.iso,format=raw,readonly=on" \
	--qemu-arg -device --qemu-arg "virtio-blk-pci,drive=rf-live,serial=rf-live" \
	--qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" \
	--qemu-arg -drive --qemu-arg "if=pflash,format=raw,unit=1,file=$uvm/vars.fd" \
	--qemu-arg -drive --qemu-arg "if=none,id=rf-uefi,file=$uimg,format=raw,cache=unsafe" \
	--qemu-arg -device --qemu-arg "virtio-blk-pci,drive=rf-uefi,serial=rf-uefi" \
	--append "lm.live=$LIVE_LABEL lmtest.scenario=refuse-uefi" || uvmrc=$?
UF=$uvm/facts.txt
upart=$(facts_get "$UF" uefi_part)
udev=$(facts_get "$UF" uefi_disk)
check uefi_partition "$([[ $uvmrc == 0 && $(facts_get "$UF" uefi) == yes && ${upart%% *} == 28 && $upart == *"${udev}2: this machine starts by UEFI"* && $(facts_get "$UF" uefi_part_stdout) == 0 ]] && echo ok)" "run-vm rc=$uvmrc, efi=$(facts_get "$UF" uefi): $upart"
check uefi_whole_disk "$([[ $(facts_get "$UF" uefi_disk_dry) == "0 "* && $(facts_get "$UF" uefi_disk_dry) != "0 0 "* ]] && echo ok)" "dry run of $udev: $(facts_get "$UF" uefi_disk_dry)"
check uefi_disk_same "$(is "$(sha256sum "$uimg" | cut -d' ' -f1)" "$usha")" "sha256 of the MBR disk on the host after the UEFI boot"

printf '%-24s %4s %4s  %-6s %s\n' case want got result "first stderr line"
printf '%s\n' "${rows[@]}"
for p in "${problems[@]}"; do log "FAIL $p"; done
t_vm=$(awk -F= '$1 == "total" { print $2 }' "$vm/timing" 2>/dev/null)
t_boot=$(awk -F= '$1 == "boot_to_scenario" { print $2 }' "$vm/timing" 2>/dev/null)
log "VM ${t_vm:-?} s (boot to scenario ${t_boot:-?} s); whole run $(since "$t_start") s; facts in $F"
echo "refuse summary: $n cases, $passed passed, $failed failed"
((failed == 0))
