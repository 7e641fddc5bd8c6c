package main

import (
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioTUI: the wizard, driven as a person would (guest.TUI). It chooses
// lmtest.target (default /dev/vda) as a bare disk and turns off "make it
// boot on its own" (this busybox root is no distribution, as e2e's
// --raw-disk --no-finalize), keeps the fast speed, types the device name,
// and waits for the Done screen. Reports the wizard's exit code (tui_rc),
// the last progress screen seen at 30% or more (tui_progress) and the final
// screen (tui_final), and what is left of the live stack afterwards, as the
// migrate scenario does.
func scenarioTUI() int {
	target := g.Cmdline("lmtest.target", "/dev/vda")
	md := g.RootDevice()
	t := &g.TUI{Out: g.Console}
	for _, step := range []func() error{
		t.Start,
		func() error { return t.Choose(target) },
		// The bare disk, "make it boot on its own" off.
		func() error { return t.Options(true, false, "", "") },
		func() error { return t.Confirm(target) },
		func() error { return t.Follow(300) },
	} {
		if err := step(); err != nil {
			g.Say("%v", err)
			return 1
		}
	}
	if g.Exists("/run/progress.txt") {
		g.FactFile("tui_progress", "/run/progress.txt")
	}
	g.FactFile("tui_final", "/run/final.txt")
	g.FactFile("tui_targets", "/run/targets.txt")
	g.FactFile("tui_review", "/run/review.txt")
	g.Fact("tui_rc", t.Quit())

	g.FactFile("post_mdstat", "/proc/mdstat")
	members := ""
	for _, m := range g.MDMembers(md) {
		members += strings.TrimPrefix(m, "dev-") + " "
	}
	g.Fact("post_md_members", members)
	reportLiveStackGone(md)
	if g.Read("/run/tui.rc") != "0" {
		return 1
	}
	return 0
}

// reportLiveStackGone reports what is left of the live stack after a
// migration: dm devices, loops, the live mounts, and mdadm's view against
// livemigrate's.
func reportLiveStackGone(md string) {
	dm := g.DM("ls")
	dm.Combined = true
	g.Fact("post_dm", strings.ReplaceAll(string(dm.Run().Stdout), "\n", " "))
	g.Fact("post_loops", g.OneLine("losetup", "-a"))
	g.Fact("post_live_mounted", g.MountedUnder("/run/initramfs"))
	g.Fact("post_mdcompare", selfLine("mdcompare", "--md", md))
}
