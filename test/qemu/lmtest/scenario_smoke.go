package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioSmoke: is the live stack what the initramfs claims, and does the
// facts port carry data intact? Reports facts only; the host (smoke.sh)
// decides.
func scenarioSmoke() int {
	g.Fact("kernel", g.Read("/proc/sys/kernel/osrelease"))
	root := g.RootMount()
	g.Fact("root_mount", strings.TrimSpace(strings.Join([]string{root.Source, root.FSType, root.Options}, " ")))
	g.FactFile("mdstat", "/proc/mdstat")
	md := root.Source
	if g.Exists(g.MDDir(md)) {
		g.Fact("md_level", g.MDAttr(md, "level"))
		g.Fact("md_raid_disks", g.MDAttr(md, "raid_disks"))
		g.Fact("md_degraded", g.MDAttr(md, "degraded"))
		g.Fact("md_metadata", g.MDAttr(md, "metadata_version"))
		for _, m := range g.MDMembers(md) {
			if st := g.MDDir(md) + "/" + m + "/state"; g.Exists(st) {
				g.Fact("md_member_"+m, g.Read(st))
			}
		}
	}
	if _, err := exec.LookPath("dmsetup"); err == nil {
		g.Fact("dm_table", dmAll("table", "live-rw"))
		g.Fact("dm_status", dmAll("status", "live-rw"))
	}
	// The loops' backing files as the kernel sees them: the COW should show
	// "/overlay (deleted)", like dracut's after switch_root.
	for _, b := range g.Glob("/sys/block/loop*/loop/backing_file") {
		g.Fact("backing_"+filepath.Base(filepath.Dir(filepath.Dir(b))), g.Read(b))
	}
	// Round trip: a known 256-character line; the host compares it exactly.
	pat := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
	g.Fact("echo", strings.Repeat(pat, 4))
	// The product binary, if this image has one.
	if isExec("/usr/bin/livemigrate") {
		g.Fact("lm_status", g.OneLine("livemigrate", "status", "--json"))
		g.Fact("mdcompare", selfLine("mdcompare", "--md", md))
	}
	// Writing to / works (it is the md array over live-rw).
	if os.WriteFile("/root/smoke", []byte("hello\n"), 0o644) == nil {
		syscall.Sync()
		g.Fact("root_write", "ok")
	}
	return 0
}

// dmAll is $(DM_DISABLE_UDEV=1 dmsetup ARGS 2>&1).
func dmAll(args ...string) string {
	c := g.DM(args...)
	c.Combined = true
	return c.Run().Out()
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
