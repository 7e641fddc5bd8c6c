package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEscapeField(t *testing.T) {
	for _, s := range []string{"", "plain", "with space", "100%", "tab\there", "new\nline", "é"} {
		e := escapeField(s)
		if strings.ContainsAny(e, " \t\n") {
			t.Errorf("escapeField(%q) = %q keeps a separator", s, e)
		}
		back, err := unescapeField(e)
		if err != nil || back != s {
			t.Errorf("unescapeField(escapeField(%q)) = %q, %v", s, back, err)
		}
	}
	for _, bad := range []string{"%4", "%zz", "a%"} {
		if _, err := unescapeField(bad); err == nil {
			t.Errorf("unescapeField(%q) took a bad escape", bad)
		}
	}
}

// TestManifestCheck: a tree checked against its own manifest matches; a
// changed file, a changed mode, a removed file and a changed symlink are
// each reported, and nothing else.
func TestManifestCheck(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/a b"), []byte("one"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/c"), []byte("two"), 0o644))
	must(os.WriteFile(filepath.Join(root, "usr/bin/gone"), []byte("three"), 0o644))
	must(os.Symlink("a b", filepath.Join(root, "usr/bin/link")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	man := filepath.Join(t.TempDir(), "manifest.gz")
	var out bytes.Buffer
	must(cmdManifest([]string{"--root", root, "--out", man}, &out))
	es, err := readManifest(man)
	must(err)
	if len(es) != 8 || es[0].path != "." {
		t.Fatalf("manifest has %d entries, first %q: %v", len(es), es[0].path, es)
	}
	report := filepath.Join(t.TempDir(), "report")
	out.Reset()
	must(cmdManifestCheck([]string{"--manifest", man, "--root", root, "--report", report}, &out))
	if got := strings.TrimSpace(out.String()); got != "entries=8 ok=8 differ=0 missing=0 removed=0 files_hashed=3 bytes_hashed=11" {
		t.Fatalf("unchanged tree: %s", got)
	}
	// Same length, other content, same mtime: only the hash tells.
	st, _ := os.Stat(filepath.Join(root, "usr/bin/c"))
	must(os.WriteFile(filepath.Join(root, "usr/bin/c"), []byte("TWO"), 0o644))
	must(os.Chtimes(filepath.Join(root, "usr/bin/c"), st.ModTime(), st.ModTime()))
	must(os.Chmod(filepath.Join(root, "usr/bin/a b"), 0o700))
	must(os.Remove(filepath.Join(root, "usr/bin/gone")))
	must(os.Remove(filepath.Join(root, "usr/bin/link")))
	must(os.Symlink("c", filepath.Join(root, "usr/bin/link")))
	out.Reset()
	must(cmdManifestCheck([]string{"--manifest", man, "--root", root, "--report", report}, &out))
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, "entries=8 ok=4 differ=3 missing=1 removed=0 ") {
		t.Errorf("changed tree: %s", got)
	}
	// A package's file, removed on purpose.
	gone := filepath.Join(t.TempDir(), "gone")
	must(os.WriteFile(gone, []byte("/\n/usr\n/usr/bin/gone\n"), 0o644))
	out.Reset()
	must(cmdManifestCheck([]string{"--manifest", man, "--root", root, "--expect-missing", gone}, &out))
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, "entries=8 ok=4 differ=3 missing=0 removed=1 ") {
		t.Errorf("with the removed file expected: %s", got)
	}
	b, _ := os.ReadFile(report)
	rep := string(b)
	for _, want := range []string{"differ usr/bin/a%20b mode 0755->0700", "differ usr/bin/c data", "missing usr/bin/gone", "differ usr/bin/link data"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}
