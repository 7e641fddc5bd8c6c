package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/bootopt"
)

const rawChunk = 1 << 20 // 1 MiB, a multiple of any logical block size

// parseSize reads "256M", "1G", "512K", "4096" (binary units) as bytes,
// with the product's own parser of sizes.
func parseSize(s string) (int64, error) {
	n, err := bootopt.ParseSize(strings.TrimSpace(s))
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n), nil
}

// rawPattern fills chunk number i with a pattern unique to its offset, so
// rawverify finds misplaced or stale chunks, not just unreadable ones.
func rawPattern(i int64, p []byte) {
	for off := 0; off+16 <= len(p); off += 16 {
		binary.LittleEndian.PutUint64(p[off:], uint64(i))
		binary.LittleEndian.PutUint64(p[off+8:], uint64(off)^0x6c6d746573740000)
	}
}

// alignedBuf returns a page-aligned buffer, as O_DIRECT requires.
func alignedBuf(n int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { _ = unix.Munmap(b) }, nil
}

func rawFlags(args []string, name string) (string, int64, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	dev := fs.String("dev", "", "block device")
	size := fs.String("size", "256M", "bytes from the start of the device")
	if err := fs.Parse(args); err != nil {
		return "", 0, err
	}
	if *dev == "" {
		return "", 0, errors.New("--dev is required")
	}
	n, err := parseSize(*size)
	if err != nil {
		return "", 0, err
	}
	if n%rawChunk != 0 {
		return "", 0, fmt.Errorf("--size must be a multiple of 1 MiB")
	}
	return *dev, n, nil
}

func cmdRawWrite(args []string, stdout io.Writer) error {
	dev, size, err := rawFlags(args, "rawwrite")
	if err != nil {
		return err
	}
	fd, err := unix.Open(dev, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	buf, free, err := alignedBuf(rawChunk)
	if err != nil {
		return err
	}
	defer free()
	start := time.Now()
	var done int64
	for i := int64(0); done < size; i++ {
		rawPattern(i, buf)
		n, err := unix.Pwrite(fd, buf, done)
		if err != nil {
			return fmt.Errorf("write at %d: %w", done, err)
		}
		if n != len(buf) {
			return fmt.Errorf("short write at %d: %d bytes", done, n)
		}
		done += int64(n)
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "raw_write_bytes=%d raw_write_seconds=%.3f raw_write_bps=%.0f\n",
		done, el.Seconds(), float64(done)/el.Seconds())
	return nil
}

func cmdRawVerify(args []string, stdout io.Writer) error {
	dev, size, err := rawFlags(args, "rawverify")
	if err != nil {
		return err
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	buf, free, err := alignedBuf(rawChunk)
	if err != nil {
		return err
	}
	defer free()
	want := make([]byte, rawChunk)
	var bad, done int64
	first := int64(-1)
	start := time.Now()
	for i := int64(0); done < size; i++ {
		n, err := unix.Pread(fd, buf, done)
		if err != nil {
			return fmt.Errorf("read at %d: %w", done, err)
		}
		if n != len(buf) {
			return fmt.Errorf("short read at %d: %d bytes", done, n)
		}
		rawPattern(i, want)
		if !bytes.Equal(buf, want) {
			bad++
			if first < 0 {
				first = done
			}
		}
		done += int64(n)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "raw_verify_bytes=%d raw_verify_bad_mib=%d raw_read_bps=%.0f\n",
		done, bad, float64(done)/el.Seconds())
	if bad > 0 {
		return fmt.Errorf("%d MiB differ, first at byte %d", bad, first)
	}
	return nil
}

// rdev returns the device number of a block device path (following
// symlinks), for matching mdadm's Major/Minor columns.
func rdev(path string) (major, minor uint32, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device", path)
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), nil
}

// cmdRawRead times O_DIRECT sequential reads: run on the live snapshot it
// measures how fast md can possibly read its source, which with squashfs
// under emulation is usually what bounds recovery, not the target.
func cmdRawRead(args []string, stdout io.Writer) error {
	dev, size, err := rawFlags(args, "rawread")
	if err != nil {
		return err
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	buf, free, err := alignedBuf(rawChunk)
	if err != nil {
		return err
	}
	defer free()
	start := time.Now()
	var done int64
	for done < size {
		n, err := unix.Pread(fd, buf, done)
		if err != nil {
			return fmt.Errorf("read at %d: %w", done, err)
		}
		if n == 0 {
			break // end of device
		}
		done += int64(n)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "raw_read_bytes=%d raw_read_seconds=%.3f raw_read_bps=%.0f\n",
		done, el.Seconds(), float64(done)/el.Seconds())
	return nil
}
