// Package procfs owns the readers for the /proc files that several parts of
// livemigrate read (the mount table and meminfo) and the one way of finding
// such a file below a root directory. The parsers are pure and fuzzed.
package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	ID, ParentID int
	Major, Minor uint32 // st_dev of files on this mount
	Root         string // path inside the filesystem that is mounted here
	MountPoint   string
	Options      string
	Optional     []string // shared:N, master:N, propagate_from:N, unbindable
	FSType       string
	Source       string
	SuperOptions string
}

// ParseMountinfo parses /proc/self/mountinfo (proc(5)); the kernel escapes
// space, tab, newline and backslash in paths as \ooo octal, which is undone.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if strings.TrimSpace(t) == "" {
			continue
		}
		m, err := parseMountinfoLine(t)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", line, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

func parseMountinfoLine(t string) (Mount, error) {
	f := strings.Fields(t)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || len(f) < sep+3 {
		return Mount{}, fmt.Errorf("%q: too few fields", t)
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return Mount{}, fmt.Errorf("%q: mount id: %w", t, err)
	}
	if m.ParentID, err = strconv.Atoi(f[1]); err != nil {
		return Mount{}, fmt.Errorf("%q: parent id: %w", t, err)
	}
	if m.Major, m.Minor, err = ParseDevNumber(f[2]); err != nil {
		return Mount{}, fmt.Errorf("%q: %w", t, err)
	}
	m.Root = Unescape(f[3])
	m.MountPoint = Unescape(f[4])
	m.Options = f[5]
	if sep > 6 {
		m.Optional = f[6:sep]
	}
	m.FSType = Unescape(f[sep+1])
	m.Source = Unescape(f[sep+2])
	if len(f) > sep+3 {
		m.SuperOptions = f[sep+3]
	}
	return m, nil
}

// Unescape undoes the kernel's mangle(): \ followed by exactly three
// octal digits. Anything else is kept as is, so odd input cannot fail.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// ParseMeminfo parses /proc/meminfo. Values with a "kB" unit are returned
// in bytes; unitless ones (HugePages_Total) as the plain count.
func ParseMeminfo(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("meminfo %s: %w", key, err)
		}
		if len(f) > 1 {
			if f[1] != "kB" {
				return nil, fmt.Errorf("meminfo %s: unknown unit %q", key, f[1])
			}
			v *= 1024
		}
		out[strings.TrimSpace(key)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read meminfo: %w", err)
	}
	return out, nil
}

// ParseDevNumber parses a device number as sysfs, mountinfo and dm tables
// write it: "MAJOR:MINOR".
func ParseDevNumber(s string) (major, minor uint32, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, 0, fmt.Errorf("device number %q: want major:minor", s)
	}
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("device number %q: %w", s, err)
	}
	return uint32(ma), uint32(mi), nil
}

// Path is p below root, the way every reader of /proc, /sys and /dev finds
// its files: root is "/" (or "") on the running system and a directory
// that mimics one in tests.
func Path(root, p string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

// ReadMountinfo reads and parses root's /proc/self/mountinfo.
func ReadMountinfo(root string) ([]Mount, error) {
	f, err := os.Open(Path(root, "/proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountinfo(f)
}

// ReadMeminfo reads and parses root's /proc/meminfo.
func ReadMeminfo(root string) (map[string]uint64, error) {
	f, err := os.Open(Path(root, "/proc/meminfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMeminfo(f)
}
