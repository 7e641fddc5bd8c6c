package finalize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDropNopasswd(t *testing.T) {
	in := "# NOPASSWD in a comment stays\n" +
		"Defaults env_reset\n" +
		"Defaults:live !authenticate\n" +
		"#1000 ALL=(ALL) NOPASSWD: ALL\n" +
		"ops ALL=(ALL) NOPASSWD:SETENV: /usr/bin/a, \\\n" +
		"    /usr/bin/b\n" +
		"web ALL = (root) ALL, \\\n" +
		"    NOPASSWD : /usr/bin/systemctl\n" +
		"Cmnd_Alias NOPASSWDX = /bin/true\n"
	out, notes := DropNopasswd(in)
	want := "# NOPASSWD in a comment stays\n" +
		"Defaults env_reset\n" +
		"# (livemigrate: no password-free sudo on an installed system) Defaults:live !authenticate\n" +
		"#1000 ALL=(ALL) PASSWD: ALL\n" +
		"ops ALL=(ALL) PASSWD:SETENV: /usr/bin/a, \\\n" +
		"    /usr/bin/b\n" +
		"web ALL = (root) ALL, \\\n" +
		"    PASSWD: /usr/bin/systemctl\n" +
		"Cmnd_Alias NOPASSWDX = /bin/true\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if strings.Join(notes, "|") != "3: Defaults:live !authenticate commented out|4: NOPASSWD now PASSWD|5: NOPASSWD now PASSWD|8: NOPASSWD now PASSWD" {
		t.Errorf("notes = %q", notes)
	}
}

// Included files (relative, #include and @includedir elsewhere) are found;
// an edit visudo rejects is put back and fails the action.
func TestSudoersIncludesAndVisudo(t *testing.T) {
	root, f, e := fakeRootSys(t)
	os.WriteFile(filepath.Join(root, "/etc/sudoers"), []byte("root ALL=(ALL) ALL\n#include sudoers.local\n@includedir /etc/sudo.extra\n"), 0o440)
	os.WriteFile(filepath.Join(root, "/etc/sudoers.local"), []byte("%wheel ALL=(ALL) NOPASSWD: ALL\n"), 0o440)
	os.MkdirAll(filepath.Join(root, "/etc/sudo.extra"), 0o755)
	os.WriteFile(filepath.Join(root, "/etc/sudo.extra/x"), []byte("Defaults !authenticate\n"), 0o440)
	did, failed := e.scrubSudoers()
	got := strings.Join(did, "|")
	for _, want := range []string{"/etc/sudoers.local:1: NOPASSWD now PASSWD", "/etc/sudo.extra/x:1: Defaults !authenticate commented out", "/etc/sudoers.d/live:1", "/etc/sudoers.d/admins:2"} {
		if !strings.Contains(got, want) {
			t.Errorf("did lacks %q: %s", want, got)
		}
	}
	if len(failed) != 0 {
		t.Errorf("failed = %q", failed)
	}

	root, f, e = fakeRootSys(t)
	calls := 0
	e.Run = func(c Cmd) ([]byte, error) {
		if filepath.Base(c.Name) == "visudo" {
			calls++
			if calls == 2 { // valid before the edit, not after
				return []byte("/etc/sudoers.d/live:1:1: syntax error"), errors.New("exit status 1")
			}
		}
		return f.run(c)
	}
	before := read(t, root, "/etc/sudoers")
	did, failed = e.scrubSudoers()
	if len(did) != 0 || len(failed) != 1 || !strings.Contains(failed[0], "did not pass visudo -c") || read(t, root, "/etc/sudoers") != before {
		t.Errorf("did %q failed %q sudoers %q", did, failed, read(t, root, "/etc/sudoers"))
	}
	calls = 0
	msg, err := e.liveUser()
	if err == nil || !strings.Contains(err.Error(), "live-only access left") {
		t.Errorf("liveUser = %q, %v", msg, err)
	}
}

// Autologin where distributions put it; one finalize cannot remove fails it.
func TestAutologinEverywhere(t *testing.T) {
	root, f, e := fakeRootSys(t)
	w := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	w("/etc/systemd/system/getty@.service.d/live-config_autologin.conf", "[Service]\nExecStart=\nExecStart=-/sbin/agetty -o '-p -f -- \\\\u' --noclear %I $TERM\n")
	w("/lib/systemd/system/getty@.service", "[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear - $TERM\n")
	w("/etc/systemd/system/getty@.service", "[Service]\nExecStart=-/sbin/agetty -a live --noclear - $TERM\n")
	w("/etc/inittab", "id:2:initdefault:\n1:2345:respawn:/sbin/agetty --autologin live --noclear 38400 tty1\n#2:23:respawn:/sbin/getty -a live tty2\n")
	w("/etc/sddm.conf.d/autologin.conf", "[Autologin]\nUser=live\nSession=plasma\n[Users]\nUser=notautologin\n")
	w("/etc/gdm3/custom.conf", "[daemon]\nTimedLoginEnable=true\nTimedLogin=live\n")
	w("/usr/share/lightdm/lightdm.conf.d/90-live.conf", "[Seat:*]\nautologin-guest=true\n")
	w("/etc/lxdm/lxdm.conf", "[base]\nautologin=live\n")
	user, did, failed := e.scrubAutologin()
	if user != "live" || len(failed) != 0 {
		t.Errorf("user %q failed %q", user, failed)
	}
	got := strings.Join(did, "|")
	for _, want := range []string{
		"getty@.service.d/live-config_autologin.conf:3, drop-in deleted",
		"/etc/systemd/system/getty@.service:2, an override of the distribution's unit: deleted",
		"getty autologin (/etc/inittab:2)",
		"SDDM autologin (/etc/sddm.conf.d/autologin.conf:2 User=live)",
		"GDM autologin (/etc/gdm3/custom.conf:2 TimedLoginEnable=true)",
		"LightDM autologin (/usr/share/lightdm/lightdm.conf.d/90-live.conf:2 autologin-guest=true)",
		"LXDM autologin (/etc/lxdm/lxdm.conf:2 autologin=live)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("did lacks %q:\n%s", want, strings.Join(did, "\n"))
		}
	}
	if s := read(t, root, "/etc/inittab"); !strings.Contains(s, "1:2345:respawn:/sbin/agetty --noclear 38400 tty1\n#2:23:respawn:/sbin/getty -a live tty2") {
		t.Errorf("inittab = %q", s)
	}
	if s := read(t, root, "/etc/sddm.conf.d/autologin.conf"); !strings.Contains(s, "#User=live") || !strings.Contains(s, "\nUser=notautologin") {
		t.Errorf("sddm = %q", s)
	}
	// Nothing is left to find.
	if _, did, failed := e.scrubAutologin(); len(did)+len(failed) != 0 {
		t.Errorf("second pass: %q %q", did, failed)
	}
	// A unit of its own, and the distribution's unit patched: not
	// removable by finalize, so it fails.
	w("/etc/systemd/system/kiosk-login.service", "[Service]\nExecStart=/sbin/agetty --autologin kiosk tty7\n")
	w("/lib/systemd/system/serial-getty@.service", "[Service]\nExecStart=-/sbin/agetty --autologin live --keep-baud %I $TERM\n")
	_, _, failed = e.scrubAutologin()
	if strings.Join(failed, "|") != "autologin in /etc/systemd/system/kiosk-login.service:2, a unit of its own: disable or edit it|autologin in the distribution's own unit /lib/systemd/system/serial-getty@.service:2: reinstall the package that ships it" {
		t.Errorf("failed = %q", failed)
	}
	if _, err := e.liveUser(); err == nil || !strings.Contains(err.Error(), "kiosk-login.service:2") {
		t.Errorf("liveUser: %v", err)
	}
	_ = f
}

// No live user found is fine only if no account is left without a
// password; one that cannot be locked fails finalize.
func TestEmptyPasswords(t *testing.T) {
	root, f, e := fakeRootSys(t)
	os.WriteFile(filepath.Join(root, "/etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nkiosk::1500:1500::/home/kiosk:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "/etc/shadow"), []byte("root:!:19000::::::\nkiosk:*:19000::::::\n"), 0o640)
	for _, g := range []string{"/etc/systemd/system/getty@tty1.service.d", "/etc/systemd/system/serial-getty@ttyS0.service.d"} {
		os.RemoveAll(filepath.Join(root, g))
	}
	os.Remove(filepath.Join(root, "/etc/gdm3/daemon.conf"))
	os.Remove(filepath.Join(root, "/etc/lightdm/lightdm.conf"))
	msg, err := e.liveUser()
	// The fake passwd -l only changes /etc/shadow: the empty field in
	// /etc/passwd stays, and finalize must say so and fail.
	if err == nil || !strings.Contains(err.Error(), `the account "kiosk" still has an empty password (/etc/passwd:2)`) || !strings.Contains(msg, "no live user found") {
		t.Errorf("liveUser = %q, %v", msg, err)
	}
	f.fail["passwd"] = errors.New("passwd: Authentication token manipulation error")
	os.WriteFile(filepath.Join(root, "/etc/shadow"), []byte("root:!:19000::::::\nkiosk::19000::::::\nlive::1::::::\n"), 0o640)
	if _, err := e.liveUser(); err == nil || !strings.Contains(err.Error(), `"kiosk" has an empty password (/etc/passwd:2) and could not be locked`) {
		t.Errorf("liveUser: %v", err)
	}
}
