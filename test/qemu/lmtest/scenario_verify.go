package main

import (
	"os"
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioVerify: the end-to-end proof, target side (booted from the target
// disk alone, plain mode, after the initramfs ran e2fsck -fn on it). Every
// record the writer acknowledged during the migration must be there, in
// order, intact; the data written in the live session and the live root's
// payload must be byte for byte what they were; no md array and no dm
// device may exist: the target is a plain filesystem.
//
//	lmtest.upto=N  the acked=N of the migrate scenario
func scenarioVerify() int {
	upto := g.Cmdline("lmtest.upto", "0")
	root := g.RootMount()
	g.Fact("root_mount", root.Source+" "+root.FSType)
	g.Fact("root_size", dfSizeKiB())
	// grep -c '^md' /proc/mdstat: nothing at all when there is no mdstat.
	if b, err := os.ReadFile("/proc/mdstat"); err == nil {
		g.Fact("mdstat_arrays", strconv.Itoa(countLinesPrefixed(b, "md")))
	} else {
		g.Fact("mdstat_arrays", "")
	}
	g.Fact("dm_devices", strconv.Itoa(len(g.Glob("/sys/block/dm-*"))))
	g.Fact("session_sha", sha256Word("/root/session-data"))
	if g.Exists("/usr/share/lmtest/payload") {
		g.Fact("payload_sha", sha256File("/usr/share/lmtest/payload"))
	}
	out, rc := self("verify", "--file", "/root/records", "--upto", upto)
	out = strings.TrimRight(out, "\n")
	g.Say("%s", out)
	g.Fact("verify", g.FirstLine([]byte(out)))
	g.Fact("verify_rc", strconv.Itoa(rc))
	if n, err := strconv.Atoi(upto); rc != 0 || err != nil || n <= 0 {
		return 1
	}
	return 0
}

// sha256Word is `sha256sum FILE 2>&1 | cut -d' ' -f1`: the hash, or the
// first word of the complaint ("sha256sum:") when the file cannot be read,
// which the host reports as a mismatch.
func sha256Word(path string) string {
	if s := sha256File(path); s != "" {
		return s
	}
	return "sha256sum:"
}

// dfSizeKiB is `df -k / | awk 'NR == 2 { print $2 }'`: the root
// filesystem's size in KiB as df reports it.
func dfSizeKiB() string {
	lines := strings.Split(g.Out("df", "-k", "/"), "\n")
	if len(lines) < 2 {
		return ""
	}
	if f := strings.Fields(lines[1]); len(f) >= 2 {
		return f[1]
	}
	return ""
}
