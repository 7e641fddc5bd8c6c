#!/bin/bash
# smoke.sh: build everything and boot the live medium once under QEMU with
# the "smoke" scenario, then check on the host that the guest came up on the
# md array over live-rw over the loops, with the COW on "/overlay (deleted)",
# and that the facts port carried a long line intact.
#
#   smoke.sh [--stack livemigrate|tools] [--no-build]
#
# --stack tools builds live-rw and the array with dmsetup/mdadm in the
# initramfs instead of `livemigrate boot snapshot/wrap` (the reference).
# Prints timings; the VM's files are in test/qemu/out/smoke-STACK/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

stack=livemigrate build=1
while (($#)); do
	case $1 in
	--stack) stack=$2; shift ;;
	--no-build) build=0 ;;
	*) die "smoke.sh: unknown argument $1" ;;
	esac
	shift
done

t=$EPOCHREALTIME
"$QEMU_DIR/fetch.sh"
t_fetch=$(since "$t")

t=$EPOCHREALTIME
if ((build)); then
	if [[ $stack == tools ]]; then
		# The reference stack needs no livemigrate; take it if it builds.
		make -C "$REPO_ROOT" build >&2 ||
			{ log "livemigrate does not build; continuing with lmtest only"; \
			  (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/lmtest ./test/qemu/lmtest); }
	else
		make -C "$REPO_ROOT" build >&2
	fi
fi
"$QEMU_DIR/mkinitrd.sh" "$LM_OUT/initrd.img"
"$QEMU_DIR/mklive.sh" "$LM_OUT/live.iso"
t_build=$(since "$t")

kver=$(kernel_version)
dir=$LM_OUT/smoke-$stack
"$QEMU_DIR/run-vm.sh" --dir "$dir" --cdrom "$LM_OUT/live.iso" --timeout 300 \
	--append "lm.live=LIVETEST lm.stack=$stack lmtest.scenario=smoke" \
	--expect scenario_rc=0 --expect scenario_start=smoke

# What the guest must have seen.
facts=$dir/facts.txt
pat=0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/
bad=0
expect() { # expect KEY GLOB: the fact must match the shell pattern
	local got
	got=$(facts_get "$facts" "$1")
	# shellcheck disable=SC2053 # $2 is a glob on purpose
	if [[ $got != $2 ]]; then
		log "FAIL: $1='$got', want $2"
		bad=1
	fi
}
expect kernel "$kver"
expect root_mount '/dev/md127 ext4 rw*'
expect md_level raid1
expect md_raid_disks 2
expect md_degraded 1
expect md_metadata none
# Like dracut: persistent, overflow (PO), 4 KiB chunks.
expect dm_table '0 * snapshot 7:* 7:* PO 8'
expect echo "$pat$pat$pat$pat"
expect root_write ok
if [[ $stack == livemigrate ]]; then expect mdcompare 'mdcompare=ok*'; fi
grep -q '=/overlay (deleted)' "$facts" || { log "FAIL: no loop backed by '/overlay (deleted)'"; bad=1; }

printf 'smoke %s: kernel %s, fetch %ss, build %ss, boot-to-scenario %ss (guest uptime %ss), VM total %ss\n' \
	"$stack" "$kver" "$t_fetch" "$t_build" "$(facts_get "$dir/timing" boot_to_scenario)" \
	"$(facts_get "$facts" scenario_uptime)" "$(facts_get "$dir/timing" total)"
((bad == 0)) || die "smoke $stack: facts not as expected (see $dir)"
log "smoke $stack: OK"
