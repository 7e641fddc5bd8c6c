package vm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RetriesLog is Out()/vm-retries.log: one line per emulator retry,
// "TIME DIR kind=hang|panic window=W last=LINE", which make test's last
// line ("vm retries: N (...)", Retries, printed by test/vm/cmd/retries)
// counts.
func RetriesLog() string { return filepath.Join(Out(), "vm-retries.log") }

func appendRetry(dir, kind, window, last string) error {
	if err := os.MkdirAll(Out(), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(RetriesLog(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %s kind=%s window=%s last=%s\n",
		time.Now().UTC().Format("2006-01-02T15:04:05Z"), dir, kind, window, last)
	return err
}

// Retries is the summary of RetriesLog, also when there were none:
//
//	vm retries: N (DIR (hang|panic): last console line; ...)
//
// with DIR relative to Out().
func Retries() string {
	var list []string
	if f, err := os.Open(RetriesLog()); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			// bash's read splits on runs of blanks and keeps the rest.
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 {
				continue
			}
			last := ""
			if i := strings.Index(sc.Text(), " last="); i >= 0 {
				last = sc.Text()[i+len(" last="):]
			}
			dir := strings.TrimPrefix(fields[1], Out()+"/")
			list = append(list, fmt.Sprintf("%s (%s): %s", dir, strings.TrimPrefix(fields[2], "kind="), last))
		}
	}
	return fmt.Sprintf("vm retries: %d (%s)", len(list), strings.Join(list, "; "))
}
