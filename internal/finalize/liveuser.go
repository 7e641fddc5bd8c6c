package finalize

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var autologinRe = regexp.MustCompile(`--autologin[= ]+([A-Za-z0-9_.-]+)`)

// liveUser removes what let the live session in without a password, keeps
// the account and its files, and either sets the password the user chose
// or locks the account and says how to set one.
func (e *Env) liveUser() (string, error) {
	var did []string
	user := e.LiveUser
	// getty autologin drop-ins (tty and serial).
	for _, f := range append(e.sortedGlob("/etc/systemd/system/getty@*.service.d/*.conf"),
		e.sortedGlob("/etc/systemd/system/serial-getty@*.service.d/*.conf")...) {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), "--autologin") {
			continue
		}
		if m := autologinRe.FindStringSubmatch(string(b)); m != nil && user == "" {
			user = m[1]
		}
		if err := os.Remove(f); err != nil {
			return "", err
		}
		_ = os.Remove(filepath.Dir(f)) // only if now empty
		did = append(did, "getty autologin ("+strings.TrimPrefix(f, e.Root)+")")
	}
	// Display managers.
	gdmOn := regexp.MustCompile(`(?mi)^[ \t]*AutomaticLoginEnable[ \t]*=[ \t]*true[ \t]*$`)
	lightdmOn := regexp.MustCompile(`(?m)^[ \t]*autologin-user[ \t]*=[ \t]*\S.*$`)
	sddmOn := regexp.MustCompile(`(?m)^[ \t]*User[ \t]*=[ \t]*\S.*$`)
	for _, dm := range []struct {
		glob    string
		on      *regexp.Regexp
		repl    string
		section string // only files with this section
	}{
		{"/etc/gdm3/daemon.conf", gdmOn, "AutomaticLoginEnable=false", ""},
		{"/etc/gdm/custom.conf", gdmOn, "AutomaticLoginEnable=false", ""},
		{"/etc/lightdm/lightdm.conf", lightdmOn, "#autologin-user=", ""},
		{"/etc/lightdm/lightdm.conf.d/*.conf", lightdmOn, "#autologin-user=", ""},
		{"/etc/sddm.conf", sddmOn, "#User=", "[Autologin]"},
		{"/etc/sddm.conf.d/*.conf", sddmOn, "#User=", "[Autologin]"},
	} {
		for _, f := range e.sortedGlob(dm.glob) {
			b, err := os.ReadFile(f)
			if err != nil || !dm.on.Match(b) || (dm.section != "" && !strings.Contains(string(b), dm.section)) {
				continue
			}
			if err := writeFileAtomic(f, dm.on.ReplaceAll(b, []byte(dm.repl)), 0o644); err != nil {
				return "", err
			}
			did = append(did, "display manager autologin ("+strings.TrimPrefix(f, e.Root)+")")
		}
	}
	// Passwordless sudo rules.
	for _, f := range e.sortedGlob("/etc/sudoers.d/*") {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), "NOPASSWD") {
			continue
		}
		kept := DropNopasswd(string(b))
		if strings.TrimSpace(stripComments(kept)) == "" {
			err = os.Remove(f)
		} else {
			err = writeFileAtomic(f, []byte(kept), 0o440)
		}
		if err != nil {
			return "", err
		}
		did = append(did, "passwordless sudo ("+strings.TrimPrefix(f, e.Root)+")")
	}
	if user == "" {
		user = e.userByUID(1000)
	}
	msg := "removed " + strings.Join(did, ", ")
	if len(did) == 0 {
		msg = "no autologin or passwordless sudo found"
	}
	if user == "" {
		return msg + "; no live user found", nil
	}
	if e.Password != "" {
		if err := e.chpasswd(user, e.Password); err != nil {
			return "", fmt.Errorf("set the password of %s: %w", user, err)
		}
		return msg + fmt.Sprintf("; the account %q keeps its files and now has the password you chose", user), nil
	}
	if _, err := e.run("passwd", "-l", user); err != nil {
		return "", fmt.Errorf("lock the account %s: %w", user, err)
	}
	return msg + fmt.Sprintf("; the account %q keeps its files but has no password and is locked: set one as root with 'passwd %s' before you reboot, or you cannot log in", user, user), nil
}

// chpasswd sets user's password, passing it on standard input so it never
// appears in a process list, through e.Run like every other command (its
// process group and time bound).
func (e *Env) chpasswd(user, password string) error {
	_, err := e.Run(Cmd{Name: "chpasswd", Stdin: []byte(user + ":" + password + "\n")})
	return err
}

// DropNopasswd removes the sudoers lines that grant NOPASSWD.
func DropNopasswd(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "NOPASSWD") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
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
