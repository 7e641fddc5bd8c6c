#!/bin/bash
# tui.sh: the wizard's proof. Boots the live medium with an empty target
# disk; the "tui" scenario runs `livemigrate` (no arguments) in tmux, drives
# it with send-keys onto /dev/vda and reads its screens with capture-pane
# until the Done screen. Then checks, as e2e.sh does, that the migration
# happened: the array holds the target alone, the live stack is gone, the
# target has the live root's filesystem. Keeps the captured screens in
# $LM_OUT/tui/ (final.txt, progress.txt, targets.txt, review.txt).
#
#   tui.sh [--no-build] [--target-size 1G]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=1 tsize=1G
while (($#)); do
	case $1 in
	--no-build) build=0 ;;
	--target-size) tsize=$2; shift ;;
	*) die "tui.sh: unknown argument $1" ;;
	esac
	shift
done

"$QEMU_DIR/fetch.sh"
if ((build)); then make -C "$REPO_ROOT" build >&2; fi
"$QEMU_DIR/mkinitrd.sh" "$LM_OUT/initrd.img"
LM_ROOTFS_PAYLOAD_MIB=${LM_ROOTFS_PAYLOAD_MIB:-64} "$QEMU_DIR/mklive.sh" "$LM_OUT/live.iso"
# shellcheck source=/dev/null
. "$LM_OUT/live.env"

target=$LM_OUT/tui-target.img
rm -f "$target"
truncate -s "$tsize" "$target"

vm=$LM_OUT/tui-live
shots=$LM_OUT/tui
mkdir -p "$shots"
rc=0
"$QEMU_DIR/run-vm.sh" --dir "$vm" --cdrom "$LM_OUT/live.iso" --disk "$target" --timeout 300 \
	--append "lm.live=LIVETEST lmtest.scenario=tui lmtest.target=/dev/vda" \
	--expect scenario_rc=0 --expect tui_rc=0 || rc=$?
F=$vm/facts.txt
for k in final progress targets review stuck; do
	facts_lines "$F" "tui_$k" >"$shots/$k.txt"
	[[ -s $shots/$k.txt ]] || rm -f "$shots/$k.txt"
done
if ((rc != 0)); then
	log "wizard run failed (run-vm.sh exit $rc); timeout: '$(facts_get "$F" tui_timeout)'"
	[[ -f $shots/stuck.txt ]] && { log "screen when it got stuck:"; cat "$shots/stuck.txt" >&2; }
	[[ -f $shots/final.txt ]] && { log "last screen:"; cat "$shots/final.txt" >&2; }
	exit 1
fi

bad=0
fail() { log "FAIL: $*"; bad=1; }
grep -qF "Done: / now lives on /dev/vda" "$shots/final.txt" || fail "final screen is not the Done screen"
[[ -f $shots/progress.txt ]] || fail "no progress screen was captured during the copy"
[[ $(facts_get "$F" post_md_members | tr -d ' ') == vda ]] || fail "array members after: '$(facts_get "$F" post_md_members)', want vda alone"
[[ $(facts_get "$F" post_mdcompare) == "mdcompare=ok "* ]] || fail "post_mdcompare: $(facts_get "$F" post_mdcompare)"
[[ $(facts_get "$F" post_dm) == "No devices found"* ]] || fail "dm devices left: $(facts_get "$F" post_dm)"
[[ -z $(facts_get "$F" post_loops | tr -d ' ') ]] || fail "loops left: $(facts_get "$F" post_loops)"
[[ -z $(facts_get "$F" post_live_mounted | tr -d ' ') ]] || fail "live mounts left"
uuid=$(blkid -o value -s UUID "$target")
[[ $uuid == "$ROOTFS_UUID" ]] || fail "target UUID '$uuid' is not the live root's ($ROOTFS_UUID)"
e2fsck -fn "$target" >&2 || fail "host e2fsck found problems on the target"
((bad == 0)) || die "the wizard's migration is not as expected (see $vm)"
log "progress screen (copy at $(facts_get "$F" tui_progress_percent)%):"
cat "$shots/progress.txt" >&2
log "final screen:"
cat "$shots/final.txt" >&2
log "tui OK; screens in $shots"
