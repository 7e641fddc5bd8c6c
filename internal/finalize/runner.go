package finalize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Cmd is one command finalize runs.
type Cmd struct {
	Name string
	Args []string
	// Stdin is the command's standard input: how chpasswd gets the
	// password, which must never be an argument (every process list shows
	// those). Nothing else is given one; errors never show it.
	Stdin []byte
}

func (c Cmd) String() string { return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " ")) }

// Runner runs a command and returns its combined output. Every command
// finalize runs goes through Env.Run, so each one gets ExecRunner's
// process group and time bound (finalize_test.go fails if one does not).
type Runner func(c Cmd) ([]byte, error)

// CommandTimeout bounds each command finalize runs. Rebuilding an
// initramfs under emulation takes minutes; anything past this is stuck,
// and a stuck finalize must fail with the command's name rather than hold
// the live stack (released after finalize) forever.
var CommandTimeout = 15 * time.Minute

// ExecRunner runs commands for real. It is the only place in this package
// that starts a process.
func ExecRunner(c Cmd) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Stdin = nil // nothing may wait for an answer
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	// Its own process group: Ctrl+C at the terminal signals the foreground
	// group, and finalize runs past the point of no return, where
	// livemigrate finishes instead of stopping. A killed update-initramfs
	// or grub-install would leave the system without a way to boot.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon a command leaves behind may hold the output pipe open:
	// stop waiting for it shortly after the command itself has ended.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return out, fmt.Errorf("%s: still running after %v, stopped: %s", c, CommandTimeout, lastLines(out, 3))
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", c, err, lastLines(out, 3))
	}
	return out, nil
}

// exitCode is the exit status a Runner's error carries, -1 if none.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
}

// run runs a command without input through e.Run.
func (e *Env) run(name string, args ...string) ([]byte, error) {
	return e.Run(Cmd{Name: name, Args: args})
}
