package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The file-ops writer works a directory the way a program does: it
// creates files, renames and deletes some, each made durable (the file
// and its directory fsynced) before it is logged as acknowledged. The log
// says what the directory must hold: each operation is written "I ..."
// (intended) before it starts and "A ..." once it is durable, so the one
// in flight when the writer is killed may have happened or not, and every
// one before it must have.
//
//	C NAME   create NAME (content: opContent(NAME))
//	R OLD NEW
//	D NAME

// opContent is what file NAME holds: a function of its first name alone.
func opContent(name string) []byte {
	s := sha256.Sum256([]byte(name))
	return []byte(strings.Repeat(fmt.Sprintf("%x\n", s), 8))
}

func cmdFileOps(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fileops", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to work in")
	logPath := fs.String("log", "", "the operations log")
	interval := fs.Duration("interval", 30*time.Millisecond, "pause between operations")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *logPath == "" {
		return errors.New("--dir and --log are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := fileOps(ctx, *dir, *logPath, *interval)
	fmt.Fprintf(stdout, "ops=%d\n", n)
	return err
}

func fileOps(ctx context.Context, dir, logPath string, interval time.Duration) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer lf.Close()
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	// live: names present now (by current name -> first name, which
	// decides the content).
	live := map[string]string{}
	var order []string
	n := 0
	do := func(op string, f func() error) error {
		if _, err := fmt.Fprintf(lf, "I %s\n", op); err != nil {
			return err
		}
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := d.Sync(); err != nil {
			return err
		}
		n++
		_, err := fmt.Fprintf(lf, "A %s\n", op)
		return err
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(interval):
		}
		var err error
		switch {
		case i%5 == 3 && len(order) > 2:
			// Rename the oldest file.
			old := order[0]
			nw := "r" + old
			err = do("R "+old+" "+nw, func() error { return os.Rename(filepath.Join(dir, old), filepath.Join(dir, nw)) })
			if err == nil {
				live[nw] = live[old]
				delete(live, old)
				order = append(order[1:], nw)
			}
		case i%7 == 6 && len(order) > 3:
			// Delete the second oldest.
			name := order[1]
			err = do("D "+name, func() error { return os.Remove(filepath.Join(dir, name)) })
			if err == nil {
				delete(live, name)
				order = append(order[:1], order[2:]...)
			}
		default:
			name := fmt.Sprintf("f%06d", i)
			err = do("C "+name, func() error {
				f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return err
				}
				if _, err := f.Write(opContent(name)); err != nil {
					f.Close()
					return err
				}
				if err := f.Sync(); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			})
			if err == nil {
				live[name] = name
				order = append(order, name)
			}
		}
		if err != nil {
			return n, err
		}
	}
}

// opsExpect replays an operations log: must maps each name that must be
// in the directory to its first name (its content); gone lists names that
// must not be there; maybe are the names the operation in flight touched
// (either outcome is right).
func opsExpect(log []byte) (must map[string]string, gone map[string]bool, maybe map[string]bool, acked int) {
	must, gone, maybe = map[string]string{}, map[string]bool{}, map[string]bool{}
	var pending string
	apply := func(op string) {
		f := strings.Fields(op)
		switch {
		case len(f) == 2 && f[0] == "C":
			must[f[1]] = f[1]
			delete(gone, f[1])
		case len(f) == 3 && f[0] == "R":
			must[f[2]] = must[f[1]]
			delete(must, f[1])
			gone[f[1]] = true
		case len(f) == 2 && f[0] == "D":
			delete(must, f[1])
			gone[f[1]] = true
		}
	}
	sc := bufio.NewScanner(strings.NewReader(string(log)))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "I "):
			pending = l[2:]
		case strings.HasPrefix(l, "A "):
			apply(l[2:])
			acked++
			pending = ""
		}
	}
	if pending != "" {
		for _, name := range strings.Fields(pending)[1:] {
			maybe[name] = true
			delete(must, name)
			delete(gone, name)
		}
	}
	return must, gone, maybe, acked
}

// verifyOps checks dir against the log: "ops_ok=N ops_bad=M extra=K",
// with the first few problems.
func verifyOps(dir string, log []byte) (string, bool) {
	must, gone, maybe, acked := opsExpect(log)
	var bad []string
	ok := 0
	for name, first := range must {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			bad = append(bad, "missing "+name)
		case string(b) != string(opContent(first)):
			bad = append(bad, "wrong content "+name)
		default:
			ok++
		}
	}
	for name := range gone {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			bad = append(bad, "still there "+name)
		}
	}
	ents, _ := os.ReadDir(dir)
	extra := 0
	for _, e := range ents {
		if _, ok := must[e.Name()]; !ok && !maybe[e.Name()] && !gone[e.Name()] {
			extra++
			bad = append(bad, "unexpected "+e.Name())
		}
	}
	sort.Strings(bad)
	s := fmt.Sprintf("acked=%d files_ok=%d bad=%d gone=%d in_flight=%d", acked, ok, len(bad), len(gone), len(maybe))
	if len(bad) > 0 {
		s += " first: " + strings.Join(bad[:min(len(bad), 5)], ", ")
	}
	return s, len(bad) == 0 && acked > 0
}
