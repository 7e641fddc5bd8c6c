package main

import (
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioRaw: sequential O_DIRECT write speed of a spare disk and a
// read-back check of every MiB (lmtest rawwrite/rawverify). Destroys
// lmtest.target's data.
//
//	lmtest.target=DEV (default /dev/vda)   lmtest.size=SIZE (default 256M)
func scenarioRaw() int {
	dev := g.Cmdline("lmtest.target", "/dev/vda")
	size := g.Cmdline("lmtest.size", "256M")
	for i, cmd := range []string{"rawwrite", "rawverify"} {
		if i > 0 {
			g.DropCaches()
		}
		out, rc := self(cmd, "--dev", dev, "--size", size)
		out = strings.TrimRight(out, "\n")
		g.Say("%s", out)
		g.Fact(cmd, out)
		g.Fact(cmd+"_rc", strconv.Itoa(rc))
		if rc != 0 {
			return rc
		}
	}
	return 0
}
