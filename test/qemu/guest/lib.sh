# shellcheck shell=sh
# Facts and the command line for the shell left in the guests: init.sh
# (busybox) and the Debian image's run. The scenarios themselves are
# `lmtest scenario NAME` (Go), whose guest.Fact writes facts the same way.

# fact KEY VALUE writes one "KEY=VALUE" line to the facts port (ttyS1),
# which the host reads from facts.txt. Each write opens and closes the tty;
# closing waits for the UART to drain, so a poweroff right after loses nothing.
fact() {
	echo "$1=$2" >/dev/ttyS1
	echo "fact: $1=$2"
}

# fact_file KEY FILE reports a multi-line file as KEY.1=..., KEY.2=... lines.
fact_file() {
	_n=0
	while IFS= read -r _l || [ -n "$_l" ]; do
		_n=$((_n + 1))
		fact "$1.$_n" "$_l"
	done <"$2"
	fact "$1.lines" "$_n"
}

# cmdline_get NAME [DEFAULT] prints the value of NAME=VALUE on the kernel
# command line, or DEFAULT. /etc/lmtest/cmdline adds words after the kernel's:
# a system that boots through its own boot loader (an installed target)
# gets its scenario from there, since the test cannot touch that command line.
cmdline_get() {
	# shellcheck disable=SC2013 # the command line is words, split on purpose
	for _a in $(cat /proc/cmdline /etc/lmtest/cmdline 2>/dev/null); do
		case $_a in "$1="*)
			echo "${_a#*=}"
			return 0
			;;
		esac
	done
	echo "${2:-}"
}
