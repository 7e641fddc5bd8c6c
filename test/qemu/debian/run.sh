#!/bin/bash
# run.sh: boot the Debian live medium (mkiso.sh) under QEMU, one VM at a
# time, and check what the guest reports on its facts port (ttyS1).
#
#   run.sh [--flavour dracut|dracut-nosystemd|initramfs-tools]
#          [--scenario boot|reboot|zram|migrate|grub-bios|grub-uefi]
#          [--no-build] [--no-images] [--timeout SECS] [--mem MiB]
#          [--target-size 4G] [--speed fast|gentle] [--append "ARGS"]
#          [--firmware bios|uefi] [--layout disk|partition]
#
#   boot      direct kernel boot (-kernel/-initrd + -cdrom), the "boot"
#             scenario, then `systemctl poweroff`
#   reboot    the same, ending with `systemctl reboot` (QEMU runs with
#             -no-reboot, so a completed reboot exits QEMU)
#   migrate   live boot with an empty target disk: `livemigrate migrate`
#             under a writer, `systemctl poweroff`; then the target alone
#             (direct kernel boot, root=UUID=, same flavour's initrd): the
#             "verify" scenario, ending with `systemctl reboot`
#   verify    only the second half of migrate (target of the last run)
#   grub-bios / grub-uefi
#             the ISO through GRUB (SeaBIOS / OVMF), "boot" scenario
#   install   live boot under --firmware bios|uefi, `livemigrate migrate`
#             WITH finalize onto --layout disk (a blank disk: whole-disk
#             mode) or partition (an MBR disk whose first partition holds
#             a filesystem with data, the target its second partition),
#             power off; then the firmware boots the target alone (no
#             medium, no -kernel, fresh UEFI variables) through the GRUB
#             finalize installed: the "installed" scenario, power off. The
#             host checks the data partition's checksum, e2fsck, and that
#             the identities differ from the live session's.
#
# Prints, per boot: host seconds to the scenario (≈ boot to multi-user +
# the wait for the boot to finish), systemd-analyze's line, seconds from
# the shutdown request to QEMU's exit, and how the guest ended (power
# down / restart, from the console). Files in $LM_OUT/debian/runs/NAME/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
DEB_DIR=$QEMU_DIR/debian

flavour=dracut scenario=boot build=1 images=1 timeout=300 mem=3072
tsize=4G speed=fast extra='' firmware=bios layout=disk
while (($#)); do
	case $1 in
	--flavour) flavour=$2; shift ;;
	--scenario) scenario=$2; shift ;;
	--no-build) build=0 ;;
	--no-images) images=0 ;;
	--timeout) timeout=$2; shift ;;
	--mem) mem=$2; shift ;;
	--target-size) tsize=$2; shift ;;
	--speed) speed=$2; shift ;;
	--append) extra=$2; shift ;;
	--firmware) firmware=$2; shift ;;
	--layout) layout=$2; shift ;;
	*) die "run.sh: unknown argument $1" ;;
	esac
	shift
done
case $flavour in
dracut | dracut-nosystemd | initramfs-tools) ;;
*) die "run.sh: unknown flavour $flavour" ;;
esac
[[ $firmware == bios || $firmware == uefi ]] || die "run.sh: --firmware bios|uefi, not $firmware"
[[ $layout == disk || $layout == partition ]] || die "run.sh: --layout disk|partition, not $layout"

out=$LM_OUT/debian
need_pkgs qemu-system-x86 ovmf e2fsprogs xorriso
if ((build)); then make -C "$REPO_ROOT" build >&2; fi
if ((images)); then "$DEB_DIR/mkiso.sh" "$out"; fi
# shellcheck source=/dev/null
. "$out/live.env"
initrd=$out/initrd-$flavour.img
[[ -s $initrd ]] || die "no $initrd (LM_FLAVOURS when building?)"

# The live boot line of each flavour. Shutdown for tests: mdadm-shutdown
# reruns the initrd generator and dracut-shutdown unpacks the initrd back
# to /run (tens of seconds under TCG each); a real system keeps them, the
# image does too, only the tests mask them. rd.emergency / panic: a failed
# initrd powers off instead of waiting at a shell until the host timeout.
case $flavour in
dracut*) live_args="root=live:CDLABEL=$LIVE_LABEL rd.live.image rd.emergency=poweroff" ;;
initramfs-tools) live_args="boot=livemigrate root=live:CDLABEL=$LIVE_LABEL" ;;
esac
test_args="systemd.mask=mdadm-shutdown.service systemd.mask=dracut-shutdown.service"
# Booting the target: a root that never shows up must end the boot (dracut
# with systemd waits without limit otherwise). Not rootdelay=: the
# initramfs-tools /init sleeps that long unconditionally (it gives up on a
# missing root after 30 s by itself, and panic=1 then ends the VM).
verify_args="rd.timeout=120 rd.emergency=poweroff"

# watch_end DIR: in the background, note the host time at which the guest
# says it is about to shut down (fact end=...), for the shutdown timing.
watch_end() {
	local dir=$1 start=$EPOCHREALTIME
	(
		while sleep 0.2; do
			if grep -q '^end=' "$dir/facts.txt" 2>/dev/null; then
				since "$start" >"$dir/t_end_request"
				break
			fi
		done
	) >/dev/null & # not our stdout: $(watch_end) would wait for the loop
	echo $!
}

# report NAME DIR: one summary line per boot, from the host's timing and
# the guest's facts and console.
report() {
	local name=$1 dir=$2 f=$2/facts.txt ending="none" t_req t_tot t_scen
	t_scen=$(awk -F= '$1 == "boot_to_scenario" { print $2 }' "$dir/timing" 2>/dev/null)
	t_tot=$(awk -F= '$1 == "total" { print $2 }' "$dir/timing" 2>/dev/null)
	t_req=$(cat "$dir/t_end_request" 2>/dev/null || echo '')
	if grep -q 'reboot: Power down' "$dir/console.log"; then ending="power-down"; fi
	if grep -q 'reboot: Restarting system' "$dir/console.log"; then ending="restart"; fi
	local shut=n/a
	[[ -n $t_req && -n $t_tot ]] && shut=$(awk -v a="$t_req" -v b="$t_tot" 'BEGIN { printf "%.1f", b - a }')
	log "[$name] boot to scenario ${t_scen:-?} s (host); $(facts_get "$f" analyze); shutdown ${shut} s; ended: $ending; total ${t_tot:-?} s"
	printf '%s\n' "$ending" >"$dir/ending"
	# Stop jobs that time out or units that fail on the way down are what
	# makes a shutdown with / on md on dm unclean.
	grep -aE 'A stop job is running|Failed (unmounting|deactivating|to (start|stop))|timed out|Timed out' "$dir/console.log" |
		tr -d '\r' | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' | sort -u | head -n 10 >&2 || true
}

# vm NAME EXPECTED_ENDING RUN-VM-ARGS...: one direct-kernel boot through
# ../run-vm.sh, with the shutdown watcher and the summary.
vm() {
	local name=$1 want=$2 dir=$out/runs/$1 wpid rc=0
	shift 2
	mkdir -p "$dir"
	rm -f "$dir"/{facts.txt,console.log,t_end_request}
	wpid=$(watch_end "$dir")
	"$QEMU_DIR/run-vm.sh" --dir "$dir" --kernel "$LIVE_KERNEL" --initrd "$initrd" --timeout "$timeout" --mem "$mem" "$@" || rc=$?
	kill "$wpid" 2>/dev/null || true
	report "$name" "$dir"
	((rc == 0)) || die "[$name] run-vm.sh failed (rc=$rc); see $dir"
	[[ $(cat "$dir/ending") == "$want" ]] || die "[$name] guest did not end with $want (see $dir/console.log)"
}

# ovmf_args DIR: QEMU arguments (one per line) for OVMF with a fresh copy
# of its variable store in DIR (no boot entries: an installed GRUB must be
# found on the removable path).
ovmf_args() {
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$1/vars.fd"
	printf '%s\n' -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" \
		-drive "if=pflash,format=raw,unit=1,file=$1/vars.fd"
}

# vm_ovmf_args DIR: the same, each behind --qemu-arg, for run-vm.sh.
vm_ovmf_args() {
	local a
	ovmf_args "$1" | while IFS= read -r a; do printf '%s\n' --qemu-arg "$a"; done
}

# grub_iso DIR ARGS: DIR/grubtest.iso, a copy of the ISO whose grub.cfg
# boots this flavour, with ARGS added to its kernel command line, by
# default: the same files (extracted with xorriso), remade with
# grub-mkrescue, in seconds. (Rewriting the ISO in place with xorriso's
# boot-image replay fails on grub-mkrescue's overlapping GPT entries.)
grub_iso() {
	local dir=$1 args=$2 iso=$1/grubtest.iso
	rm -rf "$dir/tree"
	xorriso -osirrox on -indev "$LIVE_ISO" -extract /LiveOS "$dir/tree/LiveOS" \
		-extract /boot/vmlinuz "$dir/tree/boot/vmlinuz" \
		-extract /boot/grub/grub.cfg "$dir/tree/boot/grub/grub.cfg" >"$dir/xorriso.log" 2>&1 ||
		{ cat "$dir/xorriso.log" >&2; die "xorriso could not read $LIVE_ISO"; }
	xorriso -osirrox on -indev "$LIVE_ISO" -extract "/boot/initrd-$flavour.img" "$dir/tree/boot/initrd-$flavour.img" >>"$dir/xorriso.log" 2>&1
	chmod -R u+w "$dir/tree"
	# Only this flavour's entry is kept (its initrd is the only one copied).
	awk -v f="$flavour" -v extra="$args" '
		/^menuentry / { keep = (index($0, "--id " f " {") > 0) }
		/^menuentry / || inentry { inentry = !/^}/; if (!keep) next }
		/^\tlinux / { $0 = $0 " " extra }
		/^set timeout=/ { $0 = "set timeout=1" }
		{ print }' "$dir/tree/boot/grub/grub.cfg" >"$dir/grub.cfg"
	cp "$dir/grub.cfg" "$dir/tree/boot/grub/grub.cfg"
	rm -f "$iso"
	grub-mkrescue -o "$iso" "$dir/tree" -- -volid "$LIVE_LABEL" >"$dir/grub-mkrescue.log" 2>&1 ||
		{ cat "$dir/grub-mkrescue.log" >&2; die "grub-mkrescue failed"; }
	rm -rf "$dir/tree"
}

# grub_vm NAME bios|uefi: boot the ISO through GRUB, "boot" scenario.
# Through run-vm.sh (--firmware-boot, no -kernel), like every other boot,
# so an emulator hang before the scenario is detected and retried once
# there (no disk is attached: a restart changes nothing).
grub_vm() {
	local name=$1 fw=$2 dir=$out/runs/$1 fwargs=()
	mkdir -p "$dir"
	rm -rf "$dir"/tree
	grub_iso "$dir" "$test_args lmtest.scenario=boot $extra"
	[[ $fw == uefi ]] && mapfile -t fwargs < <(vm_ovmf_args "$dir")
	log "booting $dir/grubtest.iso through GRUB ($fw)"
	vm "$name" power-down --firmware-boot --cdrom "$dir/grubtest.iso" "${fwargs[@]}" \
		--qemu-arg -boot --qemu-arg d --expect scenario_rc=0
	# GRUB's menu on the serial console proves it was GRUB that booted.
	grep -aq 'Debian live' "$dir/console.log" || die "[$name] no GRUB menu on the console"
}

# show_boot DIR: the facts of the "boot" scenario worth a look.
show_boot() {
	local f=$1/facts.txt k
	for k in system_state root_source root_fstype live_rw_table dm_ls status sessions sudo_live failed_units_n; do
		log "  $k: $(facts_get "$f" "$k")"
	done
	log "  mdstat: $(facts_lines "$f" mdstat | tr '\n' '|')"
}

# judge_writer NAME FACTS: the migrate scenario's writer exited 0 (it ends
# on SIGTERM; a failed write or fsync makes it exit non-zero) and some
# records were acknowledged while migrate ran.
judge_writer() {
	local name=$1 f=$2 wrc during
	wrc=$(facts_get "$f" writer_rc)
	during=$(facts_get "$f" acked_during_migrate)
	[[ $wrc == 0 ]] || die "[$name] the writer exited '$wrc', not 0: $(facts_lines "$f" writer_out | tr '\n' ' ')"
	[[ $during =~ ^[0-9]+$ && $during -gt 0 ]] || die "[$name] no record acknowledged while migrate ran (acked_during_migrate='$during')"
	log "  writer: exit $wrc, $during records acknowledged while migrate ran, $(facts_get "$f" acked) in all"
}

# host_fsck IMG UUID: the host's e2fsck as the last referee, on the
# partition (if any) of IMG that holds filesystem UUID. Loops at the
# partitions' offsets: this host may have no udev to make loopNpM nodes.
host_fsck() {
	local img=$1 uuid=$2 part='' rc=99 pstart psize loopdev
	while read -r pstart psize; do
		loopdev=$(losetup --find --show --read-only --offset $((pstart * 512)) --sizelimit $((psize * 512)) "$img")
		# -p: probe the device; the cache would answer for the loop
		# device's previous backing (it is reused at once).
		if [[ $(blkid -p -o value -s UUID "$loopdev" || true) == "$uuid" ]]; then
			part="$img (sectors $pstart+$psize)"
			rc=0
			e2fsck -fn "$loopdev" >&2 || rc=$?
		fi
		losetup -d "$loopdev"
		[[ -n $part ]] && break
	done < <(# "IMG3 : start=  528384, size= 7860191, type=..." per partition,
		# then the whole image (a target used without a partition table).
		sfdisk -d "$img" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\), *size= *\([0-9]*\).*/\1 \2/p'
		echo "0 $(($(stat -c %s "$img") / 512))")
	((rc == 0)) || die "host e2fsck on ${part:-$img (no filesystem $uuid found)} failed (rc=$rc)"
	log "host e2fsck -fn $part (UUID $uuid): clean"
}


case $scenario in
boot | reboot)
	end=poweroff want=power-down
	[[ $scenario == reboot ]] && end=reboot want=restart
	vm "$flavour-$scenario" "$want" --cdrom "$LIVE_ISO" \
		--append "$live_args $test_args lmtest.scenario=boot lmtest.end=$end $extra" \
		--expect scenario_rc=0
	show_boot "$out/runs/$flavour-$scenario"
	;;
zram)
	# The COW in compressed RAM (rd.livemigrate.cow=zram): dracut swaps
	# dmsquash-live's COW file for zram, initramfs-tools' boot mode makes
	# zram directly. status must show a zram COW with data compressed.
	vm "$flavour-zram" power-down --cdrom "$LIVE_ISO" \
		--append "$live_args $test_args rd.livemigrate.cow=zram rd.livemigrate.cowsize=2G lmtest.scenario=boot lmtest.end=poweroff $extra" \
		--expect scenario_rc=0
	show_boot "$out/runs/$flavour-zram"
	st=$(facts_get "$out/runs/$flavour-zram/facts.txt" status)
	[[ $st == *'"COWKind": "zram"'* ]] || die "$flavour zram: the COW is not zram: ${st:0:300}"
	[[ $(facts_get "$out/runs/$flavour-zram/facts.txt" root_source) == /dev/md127 ]] || die "$flavour zram: / is not on md127"
	if [[ $st =~ \"OrigDataBytes\":\ ([0-9]+),\ *\"ComprDataBytes\":\ ([0-9]+) ]] && ((BASH_REMATCH[2] > 0)); then
		log "$flavour zram: $((BASH_REMATCH[1] / 1024)) KiB of session data compressed to $((BASH_REMATCH[2] / 1024)) KiB"
	else
		die "$flavour zram: status shows no compressed data: ${st:0:300}"
	fi
	;;
grub-bios) grub_vm "$flavour-grub-bios" bios; show_boot "$out/runs/$flavour-grub-bios" ;;
grub-uefi) grub_vm "$flavour-grub-uefi" uefi; show_boot "$out/runs/$flavour-grub-uefi" ;;
migrate)
	target=$out/runs/$flavour-target.img
	rm -f "$target"
	truncate -s "$tsize" "$target"
	live=$out/runs/$flavour-migrate
	# The boot plus md copying the whole root (squashfs decompression under
	# TCG: minutes), so more than a plain boot's timeout.
	timeout0=$timeout
	timeout=$((timeout + 600))
	vm "$flavour-migrate" power-down --cdrom "$LIVE_ISO" --disk "$target" \
		--append "$live_args $test_args lmtest.scenario=migrate lmtest.target=/dev/vda lmtest.speed=$speed $extra" \
		--expect scenario_rc=0 --expect migrate_rc=0
	F=$live/facts.txt
	for k in pre_root_source migrate_seconds recovered_bytes recovery_bps acked post_root_source post_dm post_loops post_live_mounted post_failed_units post_system_state post_initramfs_units; do
		log "  $k: $(facts_get "$F" "$k")"
	done
	judge_writer "$flavour-migrate" "$F"
	;&
verify)
	# (Also on its own: the target and facts of the last migrate run.)
	target=$out/runs/$flavour-target.img
	F=$out/runs/$flavour-migrate/facts.txt
	[[ -s $target && -s $F ]] || die "no migrated target of $flavour; run --scenario migrate"
	acked=$(facts_get "$F" acked)
	session_sha=$(facts_get "$F" session_sha)
	# livemigrate may partition the target: the root is the filesystem
	# the guest had as / after the migration, found by its UUID.
	uuid=$(facts_get "$F" post_root_uuid)
	# (Older runs did not report it: take it from livemigrate's own status
	# after the migration, else the live root's, which livemigrate keeps.)
	[[ -n $uuid ]] || uuid=$(facts_get "$F" post_status | grep -o '"UUID": *"[^"]*"' | head -n1 | cut -d'"' -f4 || true)
	[[ -n $uuid ]] || uuid=$ROOTFS_UUID
	[[ -n $uuid ]] || die "cannot tell the target's root filesystem UUID"
	[[ $uuid == "$ROOTFS_UUID" ]] || log "note: target UUID $uuid is not the live root's ($ROOTFS_UUID)"
	timeout0=${timeout0:-$timeout}
	# The target alone: no medium, plain root=UUID=, then a clean reboot.
	# dpkg --verify reads every packaged file: allow for it.
	timeout=$((timeout0 + 300))
	# (--retry-window kernel: the initrd mounts the target read-write
	# before the scenario, so a hang is only retried before userspace.)
	vm "$flavour-verify" restart --disk "$target" --retry-window kernel \
		--append "root=UUID=$uuid rw $verify_args $test_args lmtest.scenario=verify lmtest.upto=$acked lmtest.end=reboot $extra" \
		--expect scenario_rc=0 --expect verify_rc=0 --expect dm_devices=0 \
		--expect "session_sha=$session_sha"
	V=$out/runs/$flavour-verify/facts.txt
	# No md array: /proc/mdstat lists none, or does not exist at all (no
	# md module loaded: the harness's count is then empty).
	[[ $(facts_get "$V" mdstat_arrays) =~ ^0?$ ]] || die "md arrays on the target: $(facts_lines "$V" mdstat | tr '\n' '|')"
	for k in root_source root_fstype verify dpkg_verify_rc dpkg_verify_lines dpkg_verify_seconds system_state; do
		log "  $k: $(facts_get "$V" "$k")"
	done
	host_fsck "$target" "$uuid"
	;;
install)
	name=$flavour-install-$firmware-$layout
	target=$out/runs/$name.img
	live=$out/runs/$name-live
	inst=$out/runs/$name-boot
	mkdir -p "$live" "$inst"
	rm -f "$target"
	truncate -s "$tsize" "$target"
	knobs="lmtest.finalize=1"
	tdev=/dev/vda root_part=/dev/vda3 data_sha=''
	if [[ $layout == partition ]]; then
		# An MBR disk as another system left it: a 256 MiB ext4 with files
		# the user cares about, then an empty partition for the root. MBR,
		# so BIOS GRUB embeds in the gap before the first partition.
		printf 'label: dos\nstart=2048, size=524288, type=83\nstart=526336, type=83\n' | sfdisk -q "$target"
		tmpd=$(mktemp -d)
		mkdir "$tmpd/files"
		head -c 8M /dev/urandom >"$tmpd/files/photos.bin"
		echo "the user's own notes" >"$tmpd/files/notes.txt"
		mkfs.ext4 -q -F -L userdata -d "$tmpd/files" "$tmpd/data.img" 256M >/dev/null
		dd if="$tmpd/data.img" of="$target" bs=1M seek=1 conv=notrunc status=none
		rm -rf "$tmpd"
		data_sha=$(dd if="$target" bs=1M skip=1 count=256 status=none | sha256sum | cut -d' ' -f1)
		log "data partition (sectors 2048+524288) sha256 $data_sha"
		tdev=/dev/vda2 root_part=/dev/vda2
	fi
	# What the person chose (lmtest.hostname, lmtest.password in --append;
	# lmtest.ui=tui for the wizard): checked on the installed system.
	want_host='' want_pw='' rerun=0
	for w in $extra; do
		case $w in
		lmtest.hostname=*) want_host=${w#*=} ;;
		lmtest.password=*) want_pw=${w#*=} ;;
		lmtest.rerun=*) rerun=${w#*=} ;;
		esac
	done
	# lmtest.rerun=1|fail: between the two runs the person set this
	# password by hand (scenario-migrate.sh); the rerun must keep it.
	# With fail, the first run fails at GRUB (exit 23) and the rerun
	# installs it.
	[[ $rerun != 0 ]] && want_pw=lm-by-hand-pw
	want_rc=0
	[[ $rerun == fail ]] && want_rc=23
	# Finalize rebuilds the initramfs and installs GRUB twice under TCG:
	# minutes more than a plain migrate.
	timeout0=$timeout
	timeout=$((timeout0 + 1500))
	live_cmd="$test_args lmtest.scenario=migrate lmtest.target=$tdev lmtest.speed=$speed $knobs $extra"
	if [[ $firmware == uefi ]]; then
		# UEFI: OVMF boots the ISO's GRUB (a direct kernel boot under OVMF
		# does not find the CD here), its entry carrying the scenario.
		mapfile -t fw < <(vm_ovmf_args "$live")
		grub_iso "$live" "$live_cmd"
		vm "$name-live" power-down --firmware-boot --cdrom "$live/grubtest.iso" --disk "$target" "${fw[@]}" \
			--expect scenario_rc=0 --expect "migrate_rc=$want_rc"
	else
		vm "$name-live" power-down --cdrom "$LIVE_ISO" --disk "$target" \
			--append "$live_args $live_cmd" --expect scenario_rc=0 --expect "migrate_rc=$want_rc"
	fi
	F=$live/facts.txt
	for k in migrate_seconds recovered_bytes acked post_root_source post_root_uuid; do
		log "  $k: $(facts_get "$F" "$k")"
	done
	log "  finalize: $(facts_lines "$F" finalize | tr '\n' '|')"
	judge_writer "$name-live" "$F"
	# The controls: the live image really has the live-only access that
	# the installed system is checked for below.
	[[ $(facts_get "$F" live_nopasswd) == *"/etc/sudoers "* ]] || die "[$name] the image has no NOPASSWD rule in /etc/sudoers: '$(facts_get "$F" live_nopasswd)'"
	[[ $(facts_get "$F" live_empty_passwords) == *"guest "* ]] || die "[$name] the image has no empty-password guest account: '$(facts_get "$F" live_empty_passwords)'"
	log "  live image: NOPASSWD in $(facts_get "$F" live_nopasswd); empty passwords: $(facts_get "$F" live_empty_passwords)"
	if [[ $rerun == fail ]]; then
		facts_lines "$F" finalize | grep -q 'Install the GRUB boot loader: FAILED: grub-mkconfig is missing' ||
			die "[$name] the first run did not fail at GRUB: $(facts_get "$F" migrate_last)"
		facts_lines "$F" rerun_finalize | grep 'Install the GRUB boot loader: ' | grep -v 'earlier run' | grep -q 'GRUB for BIOS' ||
			die "[$name] the rerun did not install GRUB: $(facts_lines "$F" rerun_finalize | tr '\n' '|')"
		log "  first run: exit 23 at GRUB (grub-mkconfig hidden); the rerun installed it"
	fi
	if [[ $rerun != 0 ]]; then
		# The same migrate again: exit 0, nothing the first run made is
		# made again, and each action says so.
		log "  rerun: $(facts_lines "$F" rerun_finalize | tr '\n' '|')"
		[[ $(facts_get "$F" rerun_rc) == 0 ]] || die "[$name] the rerun exited $(facts_get "$F" rerun_rc): $(facts_get "$F" rerun_last)"
		[[ $(facts_get "$F" rerun_ids) == unchanged ]] ||
			die "[$name] the rerun changed identities: $(facts_lines "$F" rerun_ids_before | tr '\n' '|') -> $(facts_lines "$F" rerun_ids_after | tr '\n' '|')"
		for a in 'EFI system partition' 'machine-id' 'SSH host keys' 'Remove autologin'; do
			facts_lines "$F" rerun_finalize | grep -F "$a" | grep -q 'earlier run' ||
				die "[$name] the rerun's '$a' does not say an earlier run did it"
		done
		log "  rerun: exit 0; unchanged: $(facts_lines "$F" rerun_ids_after | tr '\n' '|')"
	fi
	uuid=$(facts_get "$F" post_root_uuid)
	[[ -n $uuid ]] || die "[$name] the live session did not report the root UUID"
	if [[ $extra == *lmtest.signal_finalize=* ]]; then
		# The signal came during finalize (past the point of no return):
		# migrate finished (rc 0 above) and said it noted the interrupt.
		[[ $(facts_get "$F" finalize_signal) == *"(kill rc=0)" ]] || die "[$name] no signal was sent during finalize: $(facts_get "$F" finalize_signal)"
		(($(facts_get "$F" late_interrupt_warnings) >= 1)) || die "[$name] no warning about the interrupt"
		log "  $(facts_get "$F" finalize_signal): migrate exit 0, interrupt noted, finalize completed"
	fi

	# The target alone, booted by the firmware: no medium, no -kernel.
	fw=()
	[[ $firmware == uefi ]] && mapfile -t fw < <(vm_ovmf_args "$inst")
	timeout=$((timeout0 + 300))
	# (--retry-window none: a firmware boot of the target has no reliable
	# mark of the moment its root is mounted read-write.)
	vm "$name-boot" power-down --firmware-boot --disk "$target" "${fw[@]}" --retry-window none \
		--expect scenario_start=installed --expect scenario_rc=0 --expect verify_rc=0 \
		--expect dm_devices=0 --expect "session_sha=$(facts_get "$F" session_sha)" \
		--expect "firmware=$firmware" --expect "root_source=$root_part" \
		--expect nopasswd= --expect autologin_units= --expect autologin_running=0 \
		--expect sessions=0 --expect initrd_live=0 \
		--expect empty_passwords= --expect sudoers_check=ok --expect sudoers_mode=440 \
		--expect "guest_user=guest L"
	V=$inst/facts.txt
	for k in firmware kernel_cmdline root_source root_fstype verify machine_id hostname live_user guest_user empty_passwords nopasswd sudoers_check esp esp_removable grub_cfg_root initrd_live dpkg_verify_rc system_state failed_units; do
		log "  $k: $(facts_get "$V" "$k")"
	done
	log "  fstab: $(facts_lines "$V" fstab | tr '\n' '|')"
	[[ $(facts_get "$V" mdstat_arrays) =~ ^0?$ ]] || die "[$name] md arrays on the installed system: $(facts_lines "$V" mdstat | tr '\n' '|')"
	# GRUB's menu on the serial console: the firmware booted GRUB, which
	# booted the kernel (BOOT_IMAGE= is GRUB's mark on the command line).
	grep -aq 'GNU GRUB' "$inst/console.log" || die "[$name] no GRUB on the console"
	[[ $(facts_get "$V" kernel_cmdline) == *BOOT_IMAGE=* ]] || die "[$name] the kernel was not started by GRUB"
	# Identities: none shared with the live session.
	mid=$(facts_get "$V" machine_id) lmid=$(facts_get "$F" live_machine_id)
	[[ $mid =~ ^[0-9a-f]{32}$ && $mid != "$lmid" ]] || die "[$name] machine-id '$mid' (live: '$lmid')"
	fp=$(facts_get "$V" ssh_fp) lfp=$(facts_get "$F" live_ssh_fp)
	[[ $fp == *SHA256:* ]] || die "[$name] no SSH host keys on the installed system: '$fp'"
	IFS=, read -ra lfps <<<"$lfp"
	for x in "${lfps[@]}"; do
		[[ -z $x || $fp != *"$x"* ]] || die "[$name] SSH host key $x is the live image's"
	done
	if [[ -n $want_host ]]; then
		[[ $(facts_get "$V" hostname) == "$want_host" ]] || die "[$name] hostname $(facts_get "$V" hostname) (want $want_host)"
	else
		[[ $(facts_get "$V" hostname) == "$(facts_get "$F" live_hostname)" ]] || die "[$name] hostname $(facts_get "$V" hostname) (want the live one kept)"
	fi
	if [[ -n $want_pw ]]; then
		[[ $(facts_get "$V" live_user) == "live P" ]] || die "[$name] live user: $(facts_get "$V" live_user) (want a password set)"
		[[ $(facts_get "$V" live_password) == matches && $(facts_get "$V" live_password_wrong) == differs ]] ||
			die "[$name] the live user's password is not the one chosen: $(facts_get "$V" live_password) (wrong one: $(facts_get "$V" live_password_wrong))"
		log "  live user's password: the chosen one (a wrong one: $(facts_get "$V" live_password_wrong))"
	else
		[[ $(facts_get "$V" live_user) == "live L" ]] || die "[$name] live user: $(facts_get "$V" live_user) (want locked)"
	fi
	if [[ $extra == *lmtest.ui=tui* ]]; then
		# The wizard: its review announced what finalize then did, and
		# the password never reached a screen.
		grep -q '^tui_final\.[0-9]*=Done: / now lives on' "$F" || die "[$name] the wizard's last screen is not Done"
		if [[ -n $want_pw ]]; then
			[[ $(facts_get "$F" tui_plan_password) == "the live user's password you chose" ]] ||
				die "[$name] the wizard's plan did not announce the password: '$(facts_get "$F" tui_plan_password)'"
			! grep -q "^tui_.*$want_pw" "$F" || die "[$name] the password was shown on a wizard screen"
		fi
		log "  wizard: $(facts_lines "$F" tui_final | head -n 6 | tr '\n' '|')"
	fi
	if [[ $layout == partition && $extra == *lmtest.ui=tui* ]]; then
		[[ $(facts_get "$F" tui_plan_outside) == "Also writes, outside "*": GRUB's boot code in the MBR of /dev/"* ]] ||
			die "[$name] the wizard's plan does not list the writes outside the partition: '$(facts_get "$F" tui_plan_outside)'"
		log "  wizard's plan: $(facts_get "$F" tui_plan_outside)"
	fi
	if [[ $layout == partition ]]; then
		sha=$(dd if="$target" bs=1M skip=1 count=256 status=none | sha256sum | cut -d' ' -f1)
		[[ $sha == "$data_sha" ]] || die "[$name] the data partition changed: $data_sha -> $sha"
		log "data partition sha256 unchanged: $sha"
	else
		[[ $(facts_get "$V" esp) == *vfat* ]] || die "[$name] the ESP is not mounted on /boot/efi"
	fi
	log "identities: machine-id $lmid -> $mid; SSH host keys all new"
	host_fsck "$target" "$uuid"
	;;
*) die "run.sh: unknown scenario $scenario" ;;
esac
log "run.sh $flavour $scenario OK"
