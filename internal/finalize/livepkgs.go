package finalize

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// LivePackages are the live systems' own boot machinery: live-boot's
// initramfs scripts and live-config's first-boot setup (Debian), casper
// (Ubuntu). An installed system boots without them; left in, live-config
// would make its live user again at every boot.
var LivePackages = []string{"live-boot", "live-boot-initramfs-tools", "live-config", "live-config-systemd", "live-config-sysvinit", "live-tools", "casper"}

// rebuiltByTrigger reports whether kernel k's initramfs was written by
// dpkg's initramfs-tools trigger while this installation's live-packages
// action ran (after it started), and holds none of live-boot's scripts.
func (e *Env) rebuiltByTrigger(k string) bool {
	rec := e.done("live-packages")
	if rec == nil || rec["started"] == "" {
		return false
	}
	ns, err := strconv.ParseInt(rec["started"], 10, 64)
	if err != nil {
		return false
	}
	img := "/boot/initrd.img-" + k
	st, err := os.Stat(e.path(img))
	// Inode times come from the kernel's coarse clock, a tick behind
	// time.Now: a second of slack (the image's own initramfs is days
	// older).
	if err != nil || !st.ModTime().After(time.Unix(0, ns).Add(-time.Second)) {
		return false
	}
	ls, err := e.lookPath("lsinitramfs")
	if err != nil {
		return false
	}
	out, err := e.run(ls, img)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(l, "scripts/live") || strings.Contains(l, "/live-boot/") || strings.HasSuffix(l, "scripts/casper") {
			return false
		}
	}
	return true
}

// livePackages purges whichever of LivePackages dpkg has installed.
func (e *Env) livePackages() (string, error) {
	q, err := e.lookPath("dpkg-query")
	if err != nil {
		return "no dpkg: no live packages to remove", nil
	}
	// dpkg-query exits 1 when some names are unknown; what it prints for
	// the others is the answer.
	out, _ := e.run(q, append([]string{"-W", "-f", "${Package} ${db:Status-Abbrev}\n"}, LivePackages...)...)
	var installed []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (strings.HasPrefix(f[1], "i") || strings.HasPrefix(f[1], "r") && strings.HasSuffix(f[1], "c")) {
			installed = append(installed, f[0])
		}
	}
	if len(installed) == 0 {
		if e.done("live-packages") != nil {
			return EarlierRun + ": the live packages were removed", nil
		}
		return "none of " + strings.Join(LivePackages, ", ") + " is installed", nil
	}
	dpkg, err := e.lookPath("dpkg")
	if err != nil {
		return "", err
	}
	// Removing live-boot's initramfs scripts fires initramfs-tools'
	// trigger, which rebuilds the newest kernel's initramfs (minutes under
	// emulation): the initramfs action does not build it again (see
	// rebuiltByTrigger).
	started := time.Now()
	if _, err := e.run(dpkg, append([]string{"--purge"}, installed...)...); err != nil {
		return "", fmt.Errorf("remove %s: %w", strings.Join(installed, ", "), err)
	}
	e.record("live-packages", map[string]string{"removed": strings.Join(installed, " "), "started": strconv.FormatInt(started.UnixNano(), 10)})
	return "removed " + strings.Join(installed, ", "), nil
}
