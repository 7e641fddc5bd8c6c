package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/treecopy"
)

// A manifest describes a tree, one line per entry, sorted by path:
//
//	TYPE MODE UID GID SIZE MTIME DATA XATTRS PATH
//
// TYPE is f, d, l, c, b, p or s; MODE the permission bits in octal (with
// setuid, setgid, sticky); SIZE a regular file's length (0 otherwise);
// MTIME seconds.nanoseconds for files and symlinks ("-" for the rest,
// whose times the running system changes); DATA a file's SHA-256, a
// symlink's target or a device's major:minor ("-" for the rest); XATTRS
// a hash of the entry's extended attributes, names and values (ACLs and
// file capabilities are xattrs), "-" when it has none; PATH relative to
// the tree, "." for its root. DATA and PATH are escaped (escapeField) so
// that the fields split on spaces.
//
// `lmtest manifest --root DIR` writes the manifest of an image's tree on
// the host (the truth, made from the squashfs the medium ships, not from
// anything livemigrate touched); `lmtest manifest-check` compares a tree
// in the guest against it.
type manifestEntry struct {
	typ                byte
	mode               uint32
	uid, gid           uint32
	size               int64
	mtime, data, xattr string
	path               string
}

func (e manifestEntry) String() string {
	return fmt.Sprintf("%c %04o %d %d %d %s %s %s %s", e.typ, e.mode, e.uid, e.gid, e.size, e.mtime, escapeField(e.data), e.xattr, escapeField(e.path))
}

func parseManifestLine(l string) (manifestEntry, error) {
	f := strings.Split(l, " ")
	if len(f) != 9 || len(f[0]) != 1 {
		return manifestEntry{}, fmt.Errorf("not a manifest line: %q", l)
	}
	var e manifestEntry
	e.typ = f[0][0]
	mode, err1 := strconv.ParseUint(f[1], 8, 32)
	uid, err2 := strconv.ParseUint(f[2], 10, 32)
	gid, err3 := strconv.ParseUint(f[3], 10, 32)
	size, err4 := strconv.ParseInt(f[4], 10, 64)
	data, err5 := unescapeField(f[6])
	path, err6 := unescapeField(f[8])
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return manifestEntry{}, fmt.Errorf("manifest line %q: %w", l, err)
	}
	e.mode, e.uid, e.gid, e.size, e.mtime, e.data, e.xattr, e.path = uint32(mode), uint32(uid), uint32(gid), size, f[5], data, f[7], path
	return e, nil
}

// escapeField writes bytes that would break the line's fields (space and
// below, %, DEL and above) as %XX; "" is "%".
func escapeField(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '%' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeField(s string) (string, error) {
	if s == "%" {
		return "", nil
	}
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// describe is the manifest entry of root/rel, without DATA for a regular
// file (hashed apart, by the workers).
func describe(root, rel string) (manifestEntry, error) {
	full := filepath.Join(root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return manifestEntry{}, err
	}
	e := manifestEntry{mode: st.Mode & 07777, uid: st.Uid, gid: st.Gid, mtime: "-", data: "-", path: rel}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.typ, e.size = 'f', st.Size
		e.mtime = fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	case unix.S_IFDIR:
		e.typ = 'd'
	case unix.S_IFLNK:
		e.typ = 'l'
		e.mtime = fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		t, err := os.Readlink(full)
		if err != nil {
			return manifestEntry{}, err
		}
		e.data = t
	case unix.S_IFCHR, unix.S_IFBLK:
		e.typ = 'c'
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.typ = 'b'
		}
		e.data = fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		e.typ = 'p'
	case unix.S_IFSOCK:
		e.typ = 's'
	default:
		return manifestEntry{}, fmt.Errorf("%s: unknown file type %o", full, st.Mode&unix.S_IFMT)
	}
	x, err := xattrHash(full)
	if err != nil {
		return manifestEntry{}, err
	}
	e.xattr = x
	return e, nil
}

// xattrHash hashes path's extended attributes (not following a symlink),
// sorted by name; "-" when there are none. It reads them as the copy
// does (treecopy.ListXattrs, GetXattr).
func xattrHash(path string) (string, error) {
	names, err := treecopy.ListXattrs(path)
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "-", nil
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		v, err := treecopy.GetXattr(path, name)
		if err != nil {
			return "", fmt.Errorf("read extended attribute %s of %s: %w", name, path, err)
		}
		fmt.Fprintf(h, "%s=%x\n", name, v)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashAll fills in DATA of the regular files among es, with workers.
func hashAll(root string, es []manifestEntry, workers int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sum, err := fileSHA256(filepath.Join(root, es[i].path))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				es[i].data = sum
			}
		}()
	}
	for i := range es {
		if es[i].typ == 'f' {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	return first
}

// cmdManifest: lmtest manifest --root DIR [--out FILE.gz]
func cmdManifest(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("manifest", flag.ContinueOnError)
	root := fl.String("root", "", "the tree to describe")
	out := fl.String("out", "", "write the manifest here, gzipped (default: standard output, plain)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return errors.New("--root is required")
	}
	var es []manifestEntry
	err := filepath.WalkDir(*root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(*root, p)
		e, err := describe(*root, rel)
		if err != nil {
			return err
		}
		es = append(es, e)
		return nil
	})
	if err != nil {
		return err
	}
	if err := hashAll(*root, es, 4); err != nil {
		return err
	}
	sort.Slice(es, func(i, j int) bool { return es[i].path < es[j].path })
	w := stdout
	var gz *gzip.Writer
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			return err
		}
		gz = gzip.NewWriter(f)
		w = gz
	}
	bw := bufio.NewWriter(w)
	for _, e := range es {
		fmt.Fprintln(bw, e.String())
	}
	err = bw.Flush()
	if gz != nil {
		err = errors.Join(err, gz.Close(), f.Close())
	}
	return err
}

// readManifest reads a manifest, gzipped or not.
func readManifest(path string) ([]manifestEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = gz
	}
	var es []manifestEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		e, err := parseManifestLine(sc.Text())
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, sc.Err()
}

// manifestDiff says how got differs from want ("" when it does not), field
// by field.
func manifestDiff(want, got manifestEntry) string {
	var d []string
	if want.typ != got.typ {
		return fmt.Sprintf("type %c->%c", want.typ, got.typ)
	}
	if want.mode != got.mode {
		d = append(d, fmt.Sprintf("mode %04o->%04o", want.mode, got.mode))
	}
	if want.uid != got.uid || want.gid != got.gid {
		d = append(d, fmt.Sprintf("owner %d:%d->%d:%d", want.uid, want.gid, got.uid, got.gid))
	}
	if want.size != got.size {
		d = append(d, fmt.Sprintf("size %d->%d", want.size, got.size))
	}
	if want.data != got.data {
		d = append(d, "data")
	}
	if want.mtime != got.mtime {
		d = append(d, "mtime "+want.mtime+"->"+got.mtime)
	}
	if want.xattr != got.xattr {
		d = append(d, "xattrs "+want.xattr+"->"+got.xattr)
	}
	return strings.Join(d, ",")
}

// cmdManifestCheck: lmtest manifest-check --manifest FILE [--root /]
// [--report FILE] [--expect-missing FILE]. Every entry of the manifest is
// looked up under root; prints one line of counts, and the report gets one
// line per entry that differs ("differ PATH WHAT") or is missing ("missing
// PATH"; one --expect-missing lists, such as a removed package's files, is
// counted as removed instead).
func cmdManifestCheck(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("manifest-check", flag.ContinueOnError)
	manifest := fl.String("manifest", "", "the manifest (lmtest manifest), gzipped or not")
	root := fl.String("root", "/", "the tree to check")
	report := fl.String("report", "", "write the entries that differ or are missing here")
	workers := fl.Int("workers", 4, "files hashed at once")
	gone := fl.String("expect-missing", "", "a file of absolute paths (dpkg -L) whose absence is counted as removed, not missing")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *manifest == "" {
		return errors.New("--manifest is required")
	}
	want, err := readManifest(*manifest)
	if err != nil {
		return err
	}
	removedOK := map[string]bool{}
	if *gone != "" {
		b, err := os.ReadFile(*gone)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") && l != "/" {
				removedOK[strings.TrimPrefix(l, "/")] = true
			}
		}
	}
	got := make([]manifestEntry, len(want))
	present := make([]bool, len(want))
	var bytes int64
	for i, w := range want {
		e, err := describe(*root, w.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return err
		}
		got[i], present[i] = e, true
		if e.typ == 'f' {
			bytes += e.size
		}
	}
	if err := hashAll(*root, got, *workers); err != nil {
		return err
	}
	var lines []string
	var ok, differ, missing, removed, files int
	for i, w := range want {
		if !present[i] && removedOK[w.path] {
			removed++
			continue
		}
		if !present[i] {
			missing++
			lines = append(lines, "missing "+escapeField(w.path))
			continue
		}
		if got[i].typ == 'f' {
			files++
		}
		if d := manifestDiff(w, got[i]); d != "" {
			differ++
			lines = append(lines, "differ "+escapeField(w.path)+" "+d)
			continue
		}
		ok++
	}
	if *report != "" {
		if err := os.WriteFile(*report, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "entries=%d ok=%d differ=%d missing=%d removed=%d files_hashed=%d bytes_hashed=%d\n", len(want), ok, differ, missing, removed, files, bytes)
	return nil
}
