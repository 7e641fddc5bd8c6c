package finalize

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var (
	includeRe  = regexp.MustCompile(`^[#@]include(dir)?\s+(.+?)\s*$`)
	nopasswdRe = regexp.MustCompile(`\bNOPASSWD\s*:`)
	defaultsRe = regexp.MustCompile(`^Defaults\b`)
	noAuthRe   = regexp.MustCompile(`!\s*authenticate\b`)
)

// sudoersFiles lists /etc/sudoers and every file it includes (#include,
// @include, #includedir, @includedir, recursively), then any file in
// /etc/sudoers.d the main file does not include, as root-relative paths.
func (e *Env) sudoersFiles() []string {
	var out []string
	seen := map[string]bool{}
	var visit func(p string)
	addDir := func(d string) {
		ents, _ := os.ReadDir(e.path(d))
		var names []string
		for _, en := range ents {
			if en.Type().IsRegular() {
				names = append(names, en.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			visit(filepath.Join(d, n))
		}
	}
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		b, err := os.ReadFile(e.path(p))
		if err != nil {
			return
		}
		out = append(out, p)
		for _, l := range logicalLines(string(b)) {
			m := includeRe.FindStringSubmatch(strings.TrimSpace(l.text))
			if m == nil {
				continue
			}
			t := strings.Trim(m[2], `"`)
			if h := e.shortHostname(); h != "" {
				t = strings.ReplaceAll(t, "%h", h)
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(filepath.Dir(p), t) // sudo 1.9: relative to the including file
			}
			if m[1] == "dir" {
				addDir(t)
			} else {
				visit(t)
			}
		}
	}
	visit("/etc/sudoers")
	addDir("/etc/sudoers.d")
	return out
}

func (e *Env) shortHostname() string {
	b, _ := os.ReadFile(e.path("/etc/hostname"))
	h, _, _ := strings.Cut(strings.TrimSpace(string(b)), ".")
	return h
}

// logicalLine is one sudoers line, continuation lines (a trailing
// backslash) joined; first and last are 0-based physical line numbers.
type logicalLine struct {
	text        string
	first, last int
}

func logicalLines(s string) []logicalLine {
	var out []logicalLine
	phys := strings.Split(s, "\n")
	for i := 0; i < len(phys); i++ {
		l := logicalLine{first: i}
		t := phys[i]
		for strings.HasSuffix(t, "\\") && i+1 < len(phys) {
			i++
			t = strings.TrimSuffix(t, "\\") + " " + phys[i]
		}
		l.text, l.last = t, i
		out = append(out, l)
	}
	return out
}

// isSudoersComment: '#' starts a comment, except "#include..." and a
// user spec by uid ("#1000 ALL=...").
func isSudoersComment(t string) bool {
	if !strings.HasPrefix(t, "#") {
		return t == ""
	}
	if strings.HasPrefix(t, "#include") {
		return true // a directive, no rule
	}
	return len(t) < 2 || t[1] < '0' || t[1] > '9'
}

// DropNopasswd rewrites sudoers text so that no rule skips the password:
// a NOPASSWD: tag becomes PASSWD: (the rule stays and asks for the
// password: dropping it could leave a system whose only admin rule was
// that line with no way to become root, root being locked on live media),
// and a Defaults line with !authenticate is commented out. It returns the
// new text and one note per changed line (1-based).
func DropNopasswd(s string) (string, []string) {
	phys := strings.Split(s, "\n")
	var notes []string
	for _, l := range logicalLines(s) {
		t := strings.TrimSpace(l.text)
		if isSudoersComment(t) {
			continue
		}
		if defaultsRe.MatchString(t) && noAuthRe.MatchString(t) {
			for i := l.first; i <= l.last; i++ {
				phys[i] = "# (livemigrate: no password-free sudo on an installed system) " + phys[i]
			}
			notes = append(notes, fmt.Sprintf("%d: %s commented out", l.first+1, strings.Join(strings.Fields(t), " ")))
			continue
		}
		for i := l.first; i <= l.last; i++ {
			if nopasswdRe.MatchString(phys[i]) {
				phys[i] = nopasswdRe.ReplaceAllString(phys[i], "PASSWD:")
				notes = append(notes, fmt.Sprintf("%d: NOPASSWD now PASSWD", i+1))
			}
		}
	}
	return strings.Join(phys, "\n"), notes
}

// scrubSudoers applies DropNopasswd to every sudoers file. When the
// installed root has visudo, the result must pass `visudo -c` (if the
// files did before): otherwise every file is put back as it was and the
// rule is reported as not removed, since sudo refuses to run at all with
// a sudoers file it cannot parse.
func (e *Env) scrubSudoers() (did, failed []string) {
	visudo, verr := e.lookPath("visudo")
	checked := verr == nil
	if checked {
		if _, err := e.run(visudo, "-c", "-f", "/etc/sudoers"); err != nil {
			checked = false // already invalid: do not blame the edit
		}
	}
	type orig struct {
		path string
		b    []byte
	}
	var changed []orig
	for _, p := range e.sudoersFiles() {
		full := e.path(p)
		b, err := os.ReadFile(full)
		if err != nil {
			continue
		}
		nb, notes := DropNopasswd(string(b))
		if len(notes) == 0 {
			continue
		}
		if err := e.rewrite(full, []byte(nb)); err != nil {
			failed = append(failed, fmt.Sprintf("passwordless sudo in %s: %v", p, err))
			continue
		}
		changed = append(changed, orig{full, b})
		for _, n := range notes {
			did = append(did, fmt.Sprintf("passwordless sudo (%s:%s)", p, n))
		}
	}
	if checked && len(changed) > 0 {
		if out, err := e.run(visudo, "-c", "-f", "/etc/sudoers"); err != nil {
			for _, c := range changed {
				_ = e.rewrite(c.path, c.b)
			}
			return nil, []string{fmt.Sprintf("passwordless sudo: the edited sudoers files did not pass visudo -c (%s), so they were put back: remove the NOPASSWD rules by hand (visudo)", lastLines(out, 2))}
		}
	}
	return did, failed
}
