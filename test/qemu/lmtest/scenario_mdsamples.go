package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioMDSamples walks the root array through the states a migration
// passes (degraded, recovering, in sync, live leg faulty, removed, grown)
// with mdadm as the driver, and at each state reports mdadm --detail,
// livemigrate status --json and lmtest mdcompare's verdict. The outputs
// become the parser samples in lmtest/testdata (see the README); the
// verdicts check livemigrate's view. Needs a spare disk at least as big as
// the array (lmtest.target=, default /dev/vda).
func scenarioMDSamples() int {
	const md = "/dev/md127"
	target := g.Cmdline("lmtest.target", "/dev/vda")
	_, lmErr := exec.LookPath("livemigrate")
	i := 0
	sample := func(name string) {
		i++
		key := fmt.Sprintf("sample%d.%s", i, name)
		g.FactLines(key+".mdadm", g.Cmd{Args: []string{"mdadm", "--detail", md}, Combined: true}.Run().Stdout)
		if lmErr == nil {
			st := g.Cmd{Args: []string{"livemigrate", "status", "--json"}, Combined: true}.Run().Stdout
			g.Fact(key+".status", strings.ReplaceAll(string(st), "\n", ""))
			g.Fact(key+".mdcompare", selfLine("mdcompare", "--md", md))
		}
	}
	setAttr := func(attr, v string) { _ = os.WriteFile(g.MDDir(md)+"/"+attr, []byte(v+"\n"), 0o644) }
	waitIdle := func() {
		for n := 0; g.MDAttr(md, "sync_action") != "idle" && n < 600; n++ {
			time.Sleep(500 * time.Millisecond)
		}
	}

	sample("degraded")
	// Slow recovery right down so the "recovering" state can be sampled.
	setAttr("sync_speed_max", "1000")
	if g.Check("add", "mdadm", md, "--add", target) != 0 {
		return 1
	}
	time.Sleep(2 * time.Second)
	sample("recovering")
	// "system" (not "max") restores the system-wide limit.
	setAttr("sync_speed_max", "system")
	waitIdle()
	sample("insync")
	live := liveLegOfDetail(g.Out("mdadm", "--detail", md))
	if g.Check("fail", "mdadm", md, "--fail", live) != 0 {
		return 1
	}
	sample("faulty")
	if g.Check("remove", "mdadm", md, "--remove", live) != 0 {
		return 1
	}
	sample("removed")
	if g.Check("grow", "mdadm", "--grow", md, "--size=max") != 0 {
		return 1
	}
	waitIdle()
	sample("grown")
	// resize_rc is the verdict here (the host reads it): the shell
	// scenario's status was its last sample's, 0.
	g.Check("resize", "resize2fs", md)
	sample("resized")
	return 0
}

// liveLegOfDetail is the first member row of mdadm --detail whose device is
// a dm one (the live leg): its last word.
func liveLegOfDetail(detail string) string {
	for _, l := range strings.Split(detail, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if d := f[len(f)-1]; strings.HasPrefix(d, "/dev/dm-") || strings.HasPrefix(d, "/dev/mapper") {
			return d
		}
	}
	return ""
}
