package finalize

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestEveryCommandThroughRunner: finalize starts processes only through
// Env.Run, so each gets ExecRunner's process group and time bound. The
// source check finds any other way to start one; the runs with tripwires
// first in PATH catch a command started by name behind the runner's back.
func TestEveryCommandThroughRunner(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == "os/exec" && f != "runner.go" {
				t.Errorf("%s imports os/exec: start commands through Env.Run", f)
			}
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					switch x.Name + "." + sel.Sel.Name {
					case "syscall.ForkExec", "syscall.Exec", "syscall.StartProcess", "os.StartProcess", "unix.Exec":
						t.Errorf("%s: %s.%s starts a process outside Env.Run", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
					}
				}
			}
			return true
		})
	}

	trip := t.TempDir()
	log := filepath.Join(trip, "ran")
	for _, n := range []string{"chpasswd", "passwd", "usermod", "mount", "blkid", "visudo", "mkfs.vfat", "ssh-keygen", "update-initramfs", "dracut", "grub-install", "grub-mkconfig", "unshare", "sh"} {
		if err := os.WriteFile(filepath.Join(trip, n), []byte("#!/bin/sh\necho \"$0 $*\" >>"+log+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", trip)
	for _, pw := range []string{"pw-through-stdin", ""} {
		_, f, e := fakeRootSys(t)
		e.Password = pw
		if _, err := Run(e, nil); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if b, err := os.ReadFile(log); err == nil {
			t.Errorf("commands ran outside the runner:\n%s", b)
		}
		calls := "\n" + strings.Join(f.calls, "\n") + "\n"
		for _, want := range []string{"passwd -l guest", "blkid -p -o export /dev/vdb2", "mount -t vfat -o umask=0077 /dev/vdb2 /boot/efi", "/usr/sbin/visudo -c -f /etc/sudoers"} {
			if !strings.Contains(calls, "\n"+want+"\n") {
				t.Errorf("%q not run through the runner: %q", want, f.calls)
			}
		}
		if pw != "" && (strings.Join(f.stdin, "|") != "live:"+pw+"\n" || !strings.Contains(calls, "\nchpasswd\n")) {
			t.Errorf("chpasswd not run through the runner with the password on stdin: %q %q", f.calls, f.stdin)
		}
		if pw == "" && !strings.Contains(calls, "\npasswd -l live\n") {
			t.Errorf("passwd -l live not run through the runner: %q", f.calls)
		}
	}
}

// ExecRunner: standard input reaches the command, never its error text,
// and the command runs in a process group of its own.
func TestExecRunnerStdinAndProcessGroup(t *testing.T) {
	out, err := ExecRunner(Cmd{Name: "cat", Stdin: []byte("live:secret\n")})
	if err != nil || string(out) != "live:secret\n" {
		t.Fatalf("cat = %q, %v", out, err)
	}
	_, err = ExecRunner(Cmd{Name: "sh", Args: []string{"-c", "cat >/dev/null; exit 3"}, Stdin: []byte("live:secret\n")})
	if err == nil || strings.Contains(err.Error(), "secret") || exitCode(err) != 3 {
		t.Errorf("err = %v (exit %d)", err, exitCode(err))
	}
	out, err = ExecRunner(Cmd{Name: "sh", Args: []string{"-c", "cut -d' ' -f5 /proc/$$/stat"}})
	if err != nil {
		t.Fatal(err)
	}
	if pg, _ := strconv.Atoi(strings.TrimSpace(string(out))); pg == 0 || pg == syscall.Getpgrp() {
		t.Errorf("the command's process group %q is finalize's (%d)", out, syscall.Getpgrp())
	}
}
