package finalize

import (
	"fmt"
	"strings"
)

// LivePackages are the live systems' own boot machinery: live-boot's
// initramfs scripts and live-config's first-boot setup (Debian), casper
// (Ubuntu). An installed system boots without them; left in, live-config
// would make its live user again at every boot.
var LivePackages = []string{"live-boot", "live-boot-initramfs-tools", "live-config", "live-config-systemd", "live-config-sysvinit", "live-tools", "casper"}

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
	if _, err := e.run(dpkg, append([]string{"--purge"}, installed...)...); err != nil {
		return "", fmt.Errorf("remove %s: %w", strings.Join(installed, ", "), err)
	}
	e.record("live-packages", map[string]string{"removed": strings.Join(installed, " ")})
	return "removed " + strings.Join(installed, ", "), nil
}
