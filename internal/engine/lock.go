package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Lock makes sure only one livemigrate changes the system at a time. The
// lock lives in /run, which the kernel empties at boot, and is released by
// the kernel when the process dies, so a killed run never blocks the next.
func Lock() (*os.File, error) {
	const path = "/run/livemigrate.lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := os.ReadFile(path)
			return nil, &Refusal{Code: ExitLocked, Reason: fmt.Sprintf("another livemigrate is running (pid %s)", strings.TrimSpace(string(pid))), Hint: "wait for it to finish, or watch it with 'livemigrate status'"}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}
