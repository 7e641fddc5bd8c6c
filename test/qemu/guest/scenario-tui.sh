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
export TERM=xterm-256color HOME=/root LANG=C.UTF-8

tm() { tmux -u "$@"; }
screen() { tm capture-pane -p -t lm >/run/screen.txt 2>/dev/null; }
# wait_for TEXT SECONDS: poll the screen until it shows TEXT.
wait_for() {
	_n=$(($2 * 4))
	while [ "$_n" -gt 0 ]; do
		screen
		grep -qF -- "$1" /run/screen.txt && return 0
		sleep 0.25
		_n=$((_n - 1))
	done
	echo "tui: timed out waiting for '$1'; screen:"
	cat /run/screen.txt
	fact tui_timeout "$1"
	fact_file tui_stuck /run/screen.txt
	return 1
}

rm -f /run/tui.rc
tm new-session -d -s lm -x 80 -y 24 "livemigrate; echo \$? >/run/tui.rc; sleep 600" || { fact tui_start failed; exit 1; }

wait_for "Headroom" 60 || exit 1
screen
cp /run/screen.txt /run/overview.txt
tm send-keys -t lm Enter
wait_for "Choose the disk" 30 || exit 1
# The cursor starts on the first usable device; move it onto TARGET.
i=0
while ! grep -Eq "^(>|▸) +$target " /run/screen.txt; do
	i=$((i + 1))
	[ "$i" -gt 12 ] && { fact tui_timeout "cursor to $target"; fact_file tui_stuck /run/screen.txt; exit 1; }
	tm send-keys -t lm Down
	sleep 0.3
	screen
done
cp /run/screen.txt /run/targets.txt
tm send-keys -t lm Enter
wait_for "Options for $target" 30 || exit 1
tm send-keys -t lm Space # the bare disk, no partition table
wait_for "(*) the bare disk" 10 || exit 1
tm send-keys -t lm Down Space # "make it boot on its own" off
wait_for "[ ] make it boot" 10 || exit 1
tm send-keys -t lm Enter
wait_for "Plan: install" 60 || exit 1
cp /run/screen.txt /run/review.txt
tm send-keys -t lm -l "$target"
tm send-keys -t lm Enter
wait_for "Installing onto $target" 20 || exit 1

# Follow the run; keep a progress screen from the middle of the copy.
best=-1
n=0
while ! grep -qF "Done: / now lives on" /run/screen.txt; do
	pc=$(sed -n 's/.* \([0-9]*\)\.[0-9]%  .* of .*/\1/p' /run/screen.txt | head -n1)
	# Every copy screen until one at 30% or more.
	if [ -n "$pc" ] && [ "$pc" -lt 100 ] && [ "$best" -lt 30 ] && grep -qF "left" /run/screen.txt; then
		cp /run/screen.txt /run/progress.txt
		best=$pc
	fi
	if grep -qF "The migration failed" /run/screen.txt || grep -qF "Stopped" /run/screen.txt; then
		fact_file tui_final /run/screen.txt
		exit 1
	fi
	n=$((n + 1))
	[ "$n" -gt 1200 ] && { fact tui_timeout Done; fact_file tui_stuck /run/screen.txt; exit 1; }
	sleep 0.25
	screen
done
cp /run/screen.txt /run/final.txt
fact tui_progress_percent "$best"
[ -f /run/progress.txt ] && fact_file tui_progress /run/progress.txt
fact_file tui_final /run/final.txt
fact_file tui_targets /run/targets.txt
fact_file tui_review /run/review.txt

tm send-keys -t lm q
i=0
while [ ! -s /run/tui.rc ] && [ "$i" -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
fact tui_rc "$(cat /run/tui.rc 2>/dev/null)"
tm kill-server 2>/dev/null

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
