package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// The scenarios of the Debian live system (test/qemu/debian): started by
// /usr/lib/lmtest/run (lmtest.service) as `lmtest scenario debian-NAME`
// for lmtest.scenario=NAME, once systemd has finished the boot. The host
// side is TestDebian (test/suites/debian_test.go).

// findmnt is `findmnt -n -o COLUMN PATH`.
func findmnt(col, path string) string { return g.Out("findmnt", "-n", "-o", col, path) }

// scenarioDebianBoot: what the booted Debian live system looks like: the
// boot time as systemd sees it, where / comes from, the md and dm state,
// livemigrate's own view, and that the live user is logged in (autologin)
// on the consoles.
func scenarioDebianBoot() int {
	// "Startup finished in 3.1s (kernel) + 10.2s (initrd) + 25.0s (userspace) = ..."
	g.Fact("analyze", g.FirstLine([]byte(g.All("systemd-analyze", "time"))))
	// The time multi-user.target was reached (monotonic, from systemd).
	g.Fact("multi_user_us", g.Out("systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "multi-user.target"))
	g.Fact("initrd_us", g.Out("systemctl", "show", "-P", "InitRDTimestampMonotonic"))
	g.Fact("userspace_us", g.Out("systemctl", "show", "-P", "UserspaceTimestampMonotonic"))
	g.Fact("root_source", findmnt("SOURCE", "/"))
	g.Fact("root_fstype", findmnt("FSTYPE", "/"))
	g.Fact("root_opts", findmnt("OPTIONS", "/"))
	g.Fact("root_size", dfSizeKiB())
	g.FactFile("mdstat", "/proc/mdstat")
	st := g.Cmd{Args: []string{"livemigrate", "status", "--json"}, Combined: true}.Run()
	g.Fact("status", strings.ReplaceAll(string(st.Stdout), "\n", ""))
	g.Fact("status_rc", strconv.Itoa(g.Sh("livemigrate", "status", "--json").RC))
	g.Fact("live_rw_table", g.All("dmsetup", "table", "live-rw"))
	g.Fact("live_rw_status", g.All("dmsetup", "status", "live-rw"))
	g.Fact("dm_ls", g.OneLine("dmsetup", "ls"))
	g.Fact("loops", g.OneLine("losetup", "-a"))
	lm := ""
	for _, m := range g.Mounts() {
		if strings.HasPrefix(m.Target, "/run/initramfs") {
			lm += m.Source + ":" + m.Target + " "
		}
	}
	g.Fact("live_mounts", lm)
	factLsblk("lsblk")
	g.Fact("hostname", g.Out("hostname"))
	g.Fact("kernel", g.Read("/proc/sys/kernel/osrelease"))
	// Autologin: the live user's sessions (tty1 and ttyS0).
	g.Fact("sessions", sessionSeats(g.Cmd{Args: []string{"loginctl", "list-sessions", "--no-legend"}, Combined: true}.Run().Stdout))
	g.Fact("sudo_live", g.All("su", "live", "-c", "sudo -n id -u"))
	g.Fact("ssh_host_keys", strconv.Itoa(countFiles("/etc/ssh", "ssh_host_*_key")))
	g.Fact("failed_units_n", strconv.Itoa(g.CountLines(g.Sh("systemctl", "--failed", "--no-legend", "--plain").Stdout)))
	g.Fact("mem", memKiB(g.Read("/proc/meminfo")))
	return 0
}

// factLsblk reports lsblk's picture of the disks as KEY.N lines.
func factLsblk(key string) {
	r := g.Cmd{Args: []string{"lsblk", "-o", "NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT"}, Combined: true}.Run()
	_ = os.WriteFile("/run/lsblk", r.Stdout, 0o644)
	g.FactLines(key, r.Stdout)
}

// sessionSeats is "USER@TTY " for each line of loginctl list-sessions
// (third and last column), sorted.
func sessionSeats(out []byte) string {
	var s []string
	for _, l := range g.Lines(out) {
		f := strings.Fields(l)
		user, last := "", ""
		if len(f) >= 3 {
			user = f[2]
		}
		if len(f) > 0 {
			last = f[len(f)-1]
		}
		s = append(s, user+"@"+last)
	}
	sort.Strings(s)
	return spaced(s)
}

// memKiB is "MemTotal:N MemAvailable:N Shmem:N " (KiB, meminfo's order).
func memKiB(meminfo string) string {
	var b strings.Builder
	for _, l := range strings.Split(meminfo, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "MemTotal:" || f[0] == "MemAvailable:" || f[0] == "Shmem:") {
			b.WriteString(f[0] + f[1] + " ")
		}
	}
	return b.String()
}

// countFiles is `find DIR -name PATTERN | wc -l`.
func countFiles(dir, pattern string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if ok, _ := filepath.Match(pattern, d.Name()); ok {
				n++
			}
		}
		return nil
	})
	return n
}
