# shellcheck shell=sh
# tui: the wizard, driven as a person would. `livemigrate` with no arguments
# runs in an 80x24 tmux session; keys go in with `tmux send-keys`, screens
# come out with `tmux capture-pane`. It chooses TARGET as a bare disk and
# turns off "make it boot on its own" (this busybox root is no distribution,
# as e2e's --raw-disk --no-finalize), keeps the fast
# speed, types the device name, and waits for the Done screen. Reports the
# wizard's exit code (tui_rc), the last progress screen seen at 30% or more
# (tui_progress) and the final screen (tui_final), and what is left of the
# live stack afterwards, as the migrate scenario does.
#   lmtest.target=DEV (default /dev/vda)
set -u
target=$(cmdline_get lmtest.target /dev/vda)
md=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -n1)
# shellcheck source-path=SCRIPTDIR source=tui-lib.sh
. /usr/lib/lmtest/tui-lib.sh

tui_start || exit 1
tui_choose "$target" || exit 1
# The bare disk, "make it boot on its own" off.
tui_options 1 0 "" "" || exit 1
tui_confirm "$target" || exit 1
tui_follow 300 || exit 1
[ -f /run/progress.txt ] && fact_file tui_progress /run/progress.txt
fact_file tui_final /run/final.txt
fact_file tui_targets /run/targets.txt
fact_file tui_review /run/review.txt

fact tui_rc "$(tui_quit)"

fact_file post_mdstat /proc/mdstat
members=
for d in "/sys/block/${md#/dev/}/md"/dev-*; do
	[ -e "$d" ] && members="$members${d##*/dev-} "
done
fact post_md_members "$members"
fact post_dm "$(DM_DISABLE_UDEV=1 dmsetup ls 2>&1 | tr '\n' ' ')"
fact post_loops "$(losetup -a 2>&1 | tr '\n' ' ')"
fact post_live_mounted "$(awk '$2 ~ "^/run/initramfs" { print $2 }' /proc/mounts | tr '\n' ' ')"
fact post_mdcompare "$(lmtest mdcompare --md "$md" 2>&1 | tr '\n' ' ')"
[ "$(cat /run/tui.rc 2>/dev/null)" = 0 ]
