package guest

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCmdlineGet(t *testing.T) {
	text := "BOOT_IMAGE=/vmlinuz lm.live=LIVETEST lmtest.scenario=migrate lmtest.target=/dev/vda\nlmtest.scenario=verify lmtest.empty= quiet\n"
	for _, c := range []struct{ name, def, want string }{
		{"lmtest.scenario", "smoke", "migrate"}, // the first word wins
		{"lmtest.target", "", "/dev/vda"},
		{"lmtest.empty", "x", ""}, // present but empty is not the default
		{"lmtest.missing", "dflt", "dflt"},
		{"quiet", "no", "no"}, // a flag without "=" is no value
		{"lmtest", "d", "d"},  // a prefix of a name is not the name
	} {
		if got := CmdlineGet(text, c.name, c.def); got != c.want {
			t.Errorf("CmdlineGet(%q, %q) = %q, want %q", c.name, c.def, got, c.want)
		}
	}
}

func TestParseMounts(t *testing.T) {
	text := "rootfs / rootfs rw 0 0\n/dev/md127 / ext4 rw,relatime 0 0\n/dev/loop0 /run/initramfs/squashfs squashfs ro 0 0\n\n"
	got := ParseMounts(text)
	want := []Mount{{"rootfs", "/", "rootfs", "rw"}, {"/dev/md127", "/", "ext4", "rw,relatime"}, {"/dev/loop0", "/run/initramfs/squashfs", "squashfs", "ro"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMounts = %+v", got)
	}
}

func TestFactsProtocol(t *testing.T) {
	port := filepath.Join(t.TempDir(), "ttyS1")
	var con bytes.Buffer
	oldPort, oldCon := FactsPort, Console
	FactsPort, Console = port, &con
	defer func() { FactsPort, Console = oldPort, oldCon }()

	Fact("a", "1 2")
	FactLines("f", []byte("x\n\ny=z")) // the last line has no newline
	FactLines("none", nil)
	Factf("n", "%d", 7)
	b, _ := os.ReadFile(port)
	want := "a=1 2\nf.1=x\nf.2=\nf.3=y=z\nf.lines=3\nnone.lines=0\nn=7\n"
	if string(b) != want {
		t.Errorf("facts port:\n%s\nwant:\n%s", b, want)
	}
	if con.String() != "fact: a=1 2\nfact: f.1=x\nfact: f.2=\nfact: f.3=y=z\nfact: f.lines=3\nfact: none.lines=0\nfact: n=7\n" {
		t.Errorf("console: %q", con.String())
	}
}

func TestRunShellSemantics(t *testing.T) {
	r := Sh("sh", "-c", "echo out; echo err >&2; exit 3")
	if r.RC != 3 || r.Out() != "out" || r.FirstErr() != "err" {
		t.Errorf("Sh: %+v", r)
	}
	if got := OneLine("sh", "-c", "echo a; echo b >&2"); got != "a b " {
		t.Errorf("OneLine = %q", got)
	}
	if r := Sh("/nonexistent/cmd"); r.RC != 127 {
		t.Errorf("missing command: rc %d", r.RC)
	}
	if r := Sh("sh", "-c", "kill -TERM $$"); r.RC != 143 {
		t.Errorf("killed by SIGTERM: rc %d, want 143", r.RC)
	}
	if r := (Cmd{Args: []string{"sleep", "5"}, Timeout: 50 * time.Millisecond}).Run(); r.RC != 124 {
		t.Errorf("timeout: rc %d, want 124", r.RC)
	}
	if CountLines([]byte("a\nb\nc")) != 2 || FirstLine([]byte("x\ny")) != "x" {
		t.Error("CountLines/FirstLine")
	}
}

func TestTUIScreenParsers(t *testing.T) {
	screen := "Choose the disk\n  /dev/vdb  1 GiB\n▸ /dev/vda  2 GiB  blank\n"
	if !CursorOn(screen, "/dev/vda") || CursorOn(screen, "/dev/vdb") || CursorOn(screen, "/dev/vd") {
		t.Error("CursorOn")
	}
	for s, want := range map[string]int{
		"Copying\n  ████   42.5%  100 MiB of 250 MiB, 3 s left\n": 42,
		"Copying\n  100.0%  250 MiB of 250 MiB\n":                 100,
		"no progress here\n": -1,
	} {
		if got := ProgressPercent(s); got != want {
			t.Errorf("ProgressPercent(%q) = %d, want %d", s, got, want)
		}
	}
	if got := OneSpaced("Plan:   install\n  onto x\n"); got != "Plan: install onto x " {
		t.Errorf("OneSpaced = %q", got)
	}
}
