package finalize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// liveUser removes what let anyone in without a password: autologin
// (getty, inittab, display managers), passwordless sudo (NOPASSWD and
// !authenticate, in /etc/sudoers and everything it includes), and empty
// password fields; it keeps the live user's account and files, and either
// sets the password the user chose or locks the account and says how to
// set one. Every change is reported with its file and line. What it cannot
// remove makes it fail (exit 23) rather than pass with the access left.
func (e *Env) liveUser() (string, error) {
	var did, failed []string
	user := e.LiveUser
	au, d, f := e.scrubAutologin()
	did, failed = append(did, d...), append(failed, f...)
	if user == "" {
		user = au
	}
	d, f = e.scrubSudoers()
	did, failed = append(did, d...), append(failed, f...)

	var parts []string
	if len(did) > 0 {
		parts = append(parts, "removed "+strings.Join(did, "; "))
	} else {
		parts = append(parts, "no autologin or passwordless sudo found")
	}
	// The live user's password: once only. A rerun must not lock again,
	// or overwrite, a password the user set after the first run.
	if rec := e.done("live-user"); rec != nil {
		switch rec["how"] {
		case "password":
			parts = append(parts, fmt.Sprintf("%s: the account %q got the password you chose; not set again (a password set since stays)", EarlierRun, rec["user"]))
		case "locked":
			parts = append(parts, fmt.Sprintf("%s: the account %q was locked; not locked again (a password set since stays)", EarlierRun, rec["user"]))
		default:
			parts = append(parts, EarlierRun)
		}
	} else {
		if user == "" {
			user = e.userByUID(1000)
		}
		switch {
		case user == "":
			parts = append(parts, "no live user found (autologin or uid 1000)")
			e.record("live-user", map[string]string{"how": "none"})
		case e.Password != "":
			if err := e.chpasswd(user, e.Password); err != nil {
				failed = append(failed, fmt.Sprintf("set the password of %s: %v", user, err))
				break
			}
			e.record("live-user", map[string]string{"user": user, "how": "password"})
			parts = append(parts, fmt.Sprintf("the account %q keeps its files and now has the password you chose", user))
		default:
			if _, err := e.run("passwd", "-l", user); err != nil {
				failed = append(failed, fmt.Sprintf("lock the account %s: %v", user, err))
				break
			}
			e.record("live-user", map[string]string{"user": user, "how": "locked"})
			parts = append(parts, fmt.Sprintf("the account %q keeps its files but has no password and is locked: set one as root with 'passwd %s' before you reboot, or you cannot log in", user, user))
		}
	}
	// Any other account without a password (a guest login, or one made in
	// the session) is locked; its files stay.
	d, f = e.lockEmptyPasswords()
	parts = append(parts, d...)
	failed = append(failed, f...)
	msg := strings.Join(parts, "; ")
	if len(failed) > 0 {
		return msg, errors.New("live-only access left: " + strings.Join(failed, "; "))
	}
	return msg, nil
}

// chpasswd sets user's password, passing it on standard input so it never
// appears in a process list, through e.Run like every other command (its
// process group and time bound).
func (e *Env) chpasswd(user, password string) error {
	_, err := e.Run(Cmd{Name: "chpasswd", Stdin: []byte(user + ":" + password + "\n")})
	return err
}

// emptyPasswords lists the accounts whose password field is empty, in
// /etc/shadow or /etc/passwd, as "name (file:line)".
func (e *Env) emptyPasswords() (names []string, where map[string]string) {
	where = map[string]string{}
	for _, file := range []string{"/etc/shadow", "/etc/passwd"} {
		b, _ := os.ReadFile(e.path(file))
		for i, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 2 && f[0] != "" && !strings.HasPrefix(f[0], "#") && f[1] == "" {
				if _, ok := where[f[0]]; !ok {
					names = append(names, f[0])
				}
				where[f[0]] = fmt.Sprintf("%s:%d", file, i+1)
			}
		}
	}
	return names, where
}

func (e *Env) lockEmptyPasswords() (did, failed []string) {
	names, where := e.emptyPasswords()
	for _, n := range names {
		if _, err := e.run("passwd", "-l", n); err != nil {
			failed = append(failed, fmt.Sprintf("the account %q has an empty password (%s) and could not be locked: %v", n, where[n], err))
			continue
		}
	}
	left, lw := e.emptyPasswords()
	bad := map[string]bool{}
	for _, n := range left {
		bad[n] = true
		if !containsPrefix(failed, fmt.Sprintf("the account %q", n)) {
			failed = append(failed, fmt.Sprintf("the account %q still has an empty password (%s) after 'passwd -l %s': set one or lock it by hand", n, lw[n], n))
		}
	}
	for _, n := range names {
		if !bad[n] {
			did = append(did, fmt.Sprintf("the account %q had an empty password (%s): locked, its files kept", n, where[n]))
		}
	}
	return did, failed
}

func containsPrefix(l []string, p string) bool {
	for _, s := range l {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// --- autologin -------------------------------------------------------------

var (
	// agetty/mingetty --autologin USER (or =USER), agetty -a USER.
	autologinOpt = regexp.MustCompile(`(^|\s)(--autologin(=|\s+)|-a\s+)([A-Za-z0-9_.$%-]+)`)
	// agetty's login options (-o/--login-options) with login's -f: no
	// authentication for whoever agetty hands over, even without
	// --autologin (Debian's own unit passes "-p -- \u").
	loginOptsRe = regexp.MustCompile(`(-o|--login-options)(=|\s+)('[^']*'|"[^"]*"|\S+)`)
)

// autologinIn reports whether a getty command line logs in without a
// password, and the user it names.
func autologinIn(line string) (bool, string) {
	if m := autologinOpt.FindStringSubmatch(line); m != nil {
		return true, m[4]
	}
	for _, m := range loginOptsRe.FindAllStringSubmatch(line, -1) {
		for _, w := range strings.Fields(strings.Trim(m[3], `'"`)) {
			if w == "-f" {
				return true, ""
			}
			if w == "--" {
				break
			}
		}
	}
	return false, ""
}

// scrubAutologin removes getty autologin (systemd units and drop-ins,
// /etc/inittab) and display-manager autologin. It returns the first user
// an autologin named.
func (e *Env) scrubAutologin() (user string, did, failed []string) {
	note := func(u string) {
		if user == "" && u != "" && !strings.ContainsAny(u, "$%") {
			user = u
		}
	}
	vendor := []string{"/usr/lib/systemd/system", "/lib/systemd/system"}
	// systemd: everything under /etc/systemd/system (drop-ins of any
	// getty unit, overrides, the distribution's own autologin units).
	var files []string
	_ = filepath.WalkDir(e.path("/etc/systemd/system"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, f := range files {
		rel := e.rel(f)
		n, u := execAutologin(f)
		if n == 0 {
			continue
		}
		note(u)
		dir := filepath.Dir(f)
		switch {
		case strings.HasSuffix(dir, ".d"):
			// A drop-in: removing it gives the unit back its own
			// ExecStart (which asks for a password).
			if err := os.Remove(f); err != nil {
				failed = append(failed, fmt.Sprintf("getty autologin in %s:%d: %v", rel, n, err))
				continue
			}
			_ = os.Remove(dir) // only if now empty
			did = append(did, fmt.Sprintf("getty autologin (%s:%d, drop-in deleted)", rel, n))
		case e.exists(vendor, filepath.Base(f)):
			// A full copy overriding the distribution's unit.
			if err := os.Remove(f); err != nil {
				failed = append(failed, fmt.Sprintf("getty autologin in %s:%d: %v", rel, n, err))
				continue
			}
			did = append(did, fmt.Sprintf("getty autologin (%s:%d, an override of the distribution's unit: deleted)", rel, n))
		default:
			failed = append(failed, fmt.Sprintf("autologin in %s:%d, a unit of its own: disable or edit it", rel, n))
		}
	}
	for _, dir := range vendor {
		for _, f := range e.sortedGlob(dir + "/*getty*.service") {
			if st, err := os.Lstat(f); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if n, u := execAutologin(f); n > 0 {
				note(u)
				failed = append(failed, fmt.Sprintf("autologin in the distribution's own unit %s:%d: reinstall the package that ships it", e.rel(f), n))
			}
		}
	}
	// sysvinit: getty lines in /etc/inittab.
	if b, err := os.ReadFile(e.path("/etc/inittab")); err == nil {
		lines := strings.Split(string(b), "\n")
		changed := false
		for i, l := range lines {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "#") || !strings.Contains(t, "getty") {
				continue
			}
			on, u := autologinIn(t)
			if !on {
				continue
			}
			note(u)
			nl := autologinOpt.ReplaceAllString(l, "")
			if on2, _ := autologinIn(nl); on2 {
				failed = append(failed, fmt.Sprintf("autologin in /etc/inittab:%d (login without authentication): edit it", i+1))
				continue
			}
			lines[i] = nl
			changed = true
			did = append(did, fmt.Sprintf("getty autologin (/etc/inittab:%d)", i+1))
		}
		if changed {
			if err := e.rewrite(e.path("/etc/inittab"), []byte(strings.Join(lines, "\n"))); err != nil {
				failed = append(failed, fmt.Sprintf("/etc/inittab: %v", err))
			}
		}
	}
	d, f, u := e.scrubDisplayManagers()
	note(u)
	return user, append(did, d...), append(failed, f...)
}

// execAutologin returns the line number of the first ExecStart= in a unit
// file that logs in without a password, and the user it names.
func execAutologin(f string) (int, string) {
	b, err := os.ReadFile(f)
	if err != nil {
		return 0, ""
	}
	for i, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "ExecStart") {
			continue
		}
		if !strings.Contains(t, "getty") {
			// Not a getty (whose -a is autologin); login -f itself is.
			if strings.Contains(t, "login ") && strings.Contains(t+" ", " -f ") {
				return i + 1, ""
			}
			continue
		}
		if on, u := autologinIn(t); on {
			return i + 1, u
		}
	}
	return 0, ""
}

func (e *Env) exists(dirs []string, name string) bool {
	for _, d := range dirs {
		if _, err := os.Stat(e.path(filepath.Join(d, name))); err == nil {
			return true
		}
	}
	return false
}

// dmRule turns one display-manager key off: in section (lower case; ""
// for any), key (case-insensitive) with a value that turns autologin on.
type dmRule struct {
	section, key string
	on           func(v string) bool
	off          func(line string) string
}

var (
	isTrue   = func(v string) bool { v = strings.ToLower(v); return v == "true" || v == "1" || v == "yes" }
	nonEmpty = func(v string) bool { return v != "" }
	falseOf  = func(key string) func(string) string { return func(string) string { return key + "=false" } }
	comment  = func(l string) string { return "#" + strings.TrimSpace(l) }
)

// The display managers' autologin settings, where each reads them.
var displayManagers = []struct {
	name  string
	globs []string
	rules []dmRule
}{
	{"GDM", []string{"/etc/gdm3/daemon.conf", "/etc/gdm3/custom.conf", "/etc/gdm/custom.conf", "/etc/gdm/daemon.conf"}, []dmRule{
		{"daemon", "AutomaticLoginEnable", isTrue, falseOf("AutomaticLoginEnable")},
		{"daemon", "TimedLoginEnable", isTrue, falseOf("TimedLoginEnable")},
	}},
	{"LightDM", []string{"/etc/lightdm/lightdm.conf", "/etc/lightdm/lightdm.conf.d/*.conf",
		"/usr/share/lightdm/lightdm.conf.d/*.conf", "/usr/local/share/lightdm/lightdm.conf.d/*.conf",
		"/etc/xdg/lightdm/lightdm.conf.d/*.conf"}, []dmRule{
		{"", "autologin-user", nonEmpty, comment},
		{"", "autologin-guest", isTrue, comment},
	}},
	{"SDDM", []string{"/etc/sddm.conf", "/etc/sddm.conf.d/*.conf", "/usr/lib/sddm/sddm.conf.d/*.conf"}, []dmRule{
		{"autologin", "User", nonEmpty, comment},
	}},
	{"LXDM", []string{"/etc/lxdm/lxdm.conf"}, []dmRule{
		{"base", "autologin", nonEmpty, comment},
	}},
}

func (e *Env) scrubDisplayManagers() (did, failed []string, user string) {
	for _, dm := range displayManagers {
		for _, g := range dm.globs {
			for _, f := range e.sortedGlob(g) {
				b, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				rel := e.rel(f)
				lines := strings.Split(string(b), "\n")
				section, changed := "", false
				for i, l := range lines {
					t := strings.TrimSpace(l)
					if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
						section = strings.ToLower(strings.Trim(t, "[]"))
						continue
					}
					k, v, ok := strings.Cut(t, "=")
					if !ok || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
						continue
					}
					k, v = strings.TrimSpace(k), strings.TrimSpace(v)
					for _, r := range dm.rules {
						if !strings.EqualFold(k, r.key) || (r.section != "" && section != r.section) || !r.on(v) {
							continue
						}
						if user == "" && r.on(v) && !isTrue(v) {
							user = v
						}
						lines[i] = r.off(l)
						changed = true
						did = append(did, fmt.Sprintf("%s autologin (%s:%d %s)", dm.name, rel, i+1, t))
					}
				}
				if changed {
					if err := e.rewrite(f, []byte(strings.Join(lines, "\n"))); err != nil {
						failed = append(failed, fmt.Sprintf("%s autologin in %s: %v", dm.name, rel, err))
					}
				}
			}
		}
	}
	return did, failed, user
}

// rewrite replaces a file's contents, keeping its mode and owner.
func (e *Env) rewrite(f string, b []byte) error {
	st, err := os.Stat(f)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(f, b, st.Mode().Perm()); err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return os.Chown(f, int(s.Uid), int(s.Gid))
	}
	return nil
}

// rel is f as the installed system names it (without the root prefix).
func (e *Env) rel(f string) string {
	r, err := filepath.Rel(e.path("/"), f)
	if err != nil || strings.HasPrefix(r, "..") {
		return f
	}
	return "/" + r
}

func (e *Env) userByUID(uid int) string {
	b, _ := os.ReadFile(e.path("/etc/passwd"))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[2] == fmt.Sprint(uid) {
			return f[0]
		}
	}
	return ""
}
