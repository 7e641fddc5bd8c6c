package main

import "testing"

func TestDebianBootParsers(t *testing.T) {
	sessions := []byte("  3 1000 live seat0 tty1\n  c1 1000 live - ttyS0\n")
	if got := sessionSeats(sessions); got != "live@tty1 live@ttyS0 " {
		t.Errorf("sessionSeats = %q", got)
	}
	mem := "MemTotal:        2014164 kB\nMemFree: 1 kB\nMemAvailable:    1873940 kB\nShmem:             17120 kB\nShmemHugePages: 0 kB\n"
	if got := memKiB(mem); got != "MemTotal:2014164 MemAvailable:1873940 Shmem:17120 " {
		t.Errorf("memKiB = %q", got)
	}
}
