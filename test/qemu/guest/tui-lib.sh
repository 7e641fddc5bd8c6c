# shellcheck shell=sh
# Driving the wizard as a person would: `livemigrate` with no arguments in
# an 80x24 tmux session; keys go in with `tmux send-keys`, screens come out
# with `tmux capture-pane`. Used by the tui scenario (busybox guest) and by
# the migrate scenario's lmtest.ui=tui (Debian guest). Needs lib.sh's fact.

tm() { tmux -u "$@"; }
tui_screen() { tm capture-pane -p -t lm >/run/screen.txt 2>/dev/null; }

# tui_wait TEXT SECONDS: poll the screen until it shows TEXT; on a timeout
# report the screen (tui_timeout, tui_stuck) and fail.
tui_wait() {
	_n=$(($2 * 4))
	while [ "$_n" -gt 0 ]; do
		tui_screen
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

# tui_start: the wizard in its tmux session; its exit code lands in
# /run/tui.rc. Waits for the overview and keeps it in /run/overview.txt.
tui_start() {
	export TERM=xterm-256color HOME=/root LANG=C.UTF-8
	rm -f /run/tui.rc
	tm new-session -d -s lm -x 80 -y 24 "livemigrate; echo \$? >/run/tui.rc; sleep 600" || {
		fact tui_start failed
		return 1
	}
	tui_wait "Headroom" 60 || return 1
	cp /run/screen.txt /run/overview.txt
}

# tui_choose DEV: from the overview to DEV's options screen. The cursor
# starts on the first usable device; it is moved onto DEV.
tui_choose() {
	tm send-keys -t lm Enter
	tui_wait "Choose the disk" 30 || return 1
	_i=0
	while ! grep -Eq "^(>|▸) +$1 " /run/screen.txt; do
		_i=$((_i + 1))
		[ "$_i" -gt 12 ] && {
			fact tui_timeout "cursor to $1"
			fact_file tui_stuck /run/screen.txt
			return 1
		}
		tm send-keys -t lm Down
		sleep 0.3
		tui_screen
	done
	cp /run/screen.txt /run/targets.txt
	tm send-keys -t lm Enter
	tui_wait "Options for $1" 30
}

# tui_options BARE FINALIZE HOSTNAME PASSWORD: fill the options screen, top
# to bottom, and go on to the review. BARE=1 picks the bare disk (a whole
# disk only); FINALIZE=0 turns "make it boot on its own" off; HOSTNAME and
# PASSWORD (typed twice) may be empty.
tui_options() {
	if [ "$1" = 1 ]; then
		tm send-keys -t lm Space
		tui_wait "(*) the bare disk" 10 || return 1
	fi
	tm send-keys -t lm Down
	if [ "$2" = 0 ]; then
		tm send-keys -t lm Space
		tui_wait "[ ] make it boot" 10 || return 1
	else
		tm send-keys -t lm Down
		[ -n "$3" ] && tm send-keys -t lm -l "$3"
		tm send-keys -t lm Down
		[ -n "$4" ] && tm send-keys -t lm -l "$4"
		tm send-keys -t lm Down
		[ -n "$4" ] && tm send-keys -t lm -l "$4"
		[ -n "$3" ] && { tui_wait "hostname:      $3" 10 || return 1; }
		tui_screen
		cp /run/screen.txt /run/options.txt
		# The password is masked: its characters never reach the screen.
		if [ -n "$4" ] && grep -qF -- "$4" /run/options.txt; then
			fact tui_password_shown yes
			return 1
		fi
	fi
	tm send-keys -t lm Enter
	tui_wait "Plan: install" 60 || return 1
	cp /run/screen.txt /run/review.txt
	# The whole plan, scrolled through (/run/plan.txt, one line).
	cp /run/screen.txt /run/review-all.txt
	_i=0
	while [ "$_i" -lt 12 ]; do
		tm send-keys -t lm PageDown
		sleep 0.2
		tui_screen
		cat /run/screen.txt >>/run/review-all.txt
		_i=$((_i + 1))
	done
	tr '\n' ' ' </run/review-all.txt | tr -s ' ' >/run/plan.txt
}

# tui_confirm DEV: type the device name on the review screen.
tui_confirm() {
	tm send-keys -t lm -l "$1"
	tm send-keys -t lm Enter
	tui_wait "Installing onto $1" 20
}

# tui_follow SECONDS: watch the run until the Done screen; keep a progress
# screen from the middle of the copy (/run/progress.txt, the first at 30%
# or more) and the last one (/run/final.txt). Fails on the failure or
# stopped screens.
tui_follow() {
	_best=-1 _n=0
	while ! grep -qF "Done: / now lives on" /run/screen.txt; do
		_pc=$(sed -n 's/.* \([0-9]*\)\.[0-9]%  .* of .*/\1/p' /run/screen.txt | head -n1)
		if [ -n "$_pc" ] && [ "$_pc" -lt 100 ] && [ "$_best" -lt 30 ] && grep -qF "left" /run/screen.txt; then
			cp /run/screen.txt /run/progress.txt
			_best=$_pc
		fi
		if grep -qF "The migration failed" /run/screen.txt || grep -qF "Stopped" /run/screen.txt; then
			cp /run/screen.txt /run/final.txt
			fact_file tui_final /run/screen.txt
			return 1
		fi
		_n=$((_n + 1))
		[ "$_n" -gt $(($1 * 4)) ] && {
			fact tui_timeout Done
			fact_file tui_stuck /run/screen.txt
			return 1
		}
		sleep 0.25
		tui_screen
	done
	cp /run/screen.txt /run/final.txt
	fact tui_progress_percent "$_best"
}

# tui_quit: q on the Done screen; prints the wizard's exit code.
tui_quit() {
	tm send-keys -t lm q
	_i=0
	while [ ! -s /run/tui.rc ] && [ "$_i" -lt 40 ]; do
		sleep 0.25
		_i=$((_i + 1))
	done
	cat /run/tui.rc 2>/dev/null
	tm kill-server 2>/dev/null
}
