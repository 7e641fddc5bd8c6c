package finalize

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSys plays the commands finalize runs against a fake root: blkid and
// mkfs.vfat on one ESP, mount, passwd -l and chpasswd on the fake
// /etc/shadow, ssh-keygen -A, visudo. It records every command.
type fakeSys struct {
	t       *testing.T
	root    string
	calls   []string
	stdin   []string // the standard input of each command given one
	espUUID string   // "" while the ESP is blank
	formats int
	fail    map[string]error // command name (base) -> error
	visudo  error
	// busy: mkfs.vfat finds the ESP busy this many times first.
	busy int
	// out and then: a command's output, and what it does to the root
	// (by base name).
	out  map[string]string
	then map[string]func()
}

type exitErr int

func (e exitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

func (f *fakeSys) run(c Cmd) ([]byte, error) {
	f.calls = append(f.calls, c.String())
	if c.Stdin != nil {
		f.stdin = append(f.stdin, string(c.Stdin))
	}
	base := filepath.Base(c.Name)
	if err := f.fail[base]; err != nil {
		return nil, err
	}
	for _, a := range c.Args { // GRUB's tools run inside unshare
		if err := f.fail[filepath.Base(a)]; err != nil {
			return nil, err
		}
	}
	if do := f.then[base]; do != nil {
		do()
	}
	if o, ok := f.out[base]; ok {
		return []byte(o), nil
	}
	switch base {
	case "blkid":
		if f.espUUID == "" {
			return nil, exitErr(2)
		}
		return []byte("DEVNAME=/dev/vdb2\nLABEL=EFI\nUUID=" + f.espUUID + "\nTYPE=vfat\n"), nil
	case "mkfs.vfat":
		if f.busy > 0 {
			f.busy--
			return []byte("mkfs.fat 4.2 (2021-01-31)\nmkfs.vfat: unable to open /dev/vdb2: Device or resource busy\n"), exitErr(1)
		}
		f.formats++
		f.espUUID = fmt.Sprintf("AB12-CD3%d", f.formats+3)
	case "mount":
		m := filepath.Join(f.root, "/proc/self/mounts")
		old, _ := os.ReadFile(m)
		os.WriteFile(m, append(old, []byte(c.Args[len(c.Args)-2]+" "+c.Args[len(c.Args)-1]+" vfat rw 0 0\n")...), 0o644)
	case "passwd":
		f.shadow(c.Args[len(c.Args)-1], func(h string) string { return "!" + h })
	case "chpasswd":
		u, pw, _ := strings.Cut(strings.TrimSpace(string(c.Stdin)), ":")
		f.shadow(u, func(string) string { return "$y$fake$" + pw })
	case "ssh-keygen":
		for _, k := range []string{"ed25519", "rsa"} {
			n := fmt.Sprintf("%d", time.Now().UnixNano())
			os.WriteFile(filepath.Join(f.root, "/etc/ssh/ssh_host_"+k+"_key"), []byte("new "+n), 0o600)
			os.WriteFile(filepath.Join(f.root, "/etc/ssh/ssh_host_"+k+"_key.pub"), []byte("new pub "+n), 0o644)
		}
	case "visudo":
		if f.visudo != nil {
			return []byte("parse error in /etc/sudoers near line 3"), f.visudo
		}
	}
	return nil, nil
}

// shadow changes user's hash in the fake /etc/shadow.
func (f *fakeSys) shadow(user string, change func(string) string) {
	p := filepath.Join(f.root, "/etc/shadow")
	b, _ := os.ReadFile(p)
	ls := strings.Split(string(b), "\n")
	for i, l := range ls {
		if x := strings.Split(l, ":"); len(x) > 2 && x[0] == user {
			x[1] = change(x[1])
			ls[i] = strings.Join(x, ":")
		}
	}
	os.WriteFile(p, []byte(strings.Join(ls, "\n")), 0o640)
}

// fakeRoot is a Debian live root as a live image leaves it.
func fakeRoot(t *testing.T) (string, *[]string, *Env) {
	root, f, e := fakeRootSys(t)
	_ = f
	return root, &f.calls, e
}

func fakeRootSys(t *testing.T) (string, *fakeSys, *Env) {
	t.Helper()
	root := t.TempDir()
	w := func(p, s string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	w("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n", 0o644)
	w("/etc/fstab", "# live\n/dev/mapper/live-rw / ext4 defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\nUUID=abcd /data ext4 defaults 0 2\n", 0o644)
	w("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
	w("/etc/ssh/ssh_host_ed25519_key", "k", 0o600)
	w("/etc/ssh/ssh_host_ed25519_key.pub", "k", 0o644)
	w("/etc/systemd/system/getty@tty1.service.d/autologin.conf", "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin live --noclear %I $TERM\n", 0o644)
	w("/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin live --keep-baud 115200 %I $TERM\n", 0o644)
	w("/etc/systemd/system/getty@tty2.service.d/other.conf", "[Service]\nTTYVTDisallocate=no\n", 0o644)
	w("/etc/sudoers", "Defaults\tenv_reset\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n# live session\nlive ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
	w("/etc/sudoers.d/live", "live ALL=(ALL) NOPASSWD: ALL\n", 0o440)
	w("/etc/sudoers.d/admins", "%admins ALL=(ALL) ALL\nops ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n", 0o440)
	w("/etc/gdm3/daemon.conf", "[daemon]\nAutomaticLoginEnable = true\nAutomaticLogin = live\n", 0o644)
	w("/etc/lightdm/lightdm.conf", "[Seat:*]\nautologin-user=live\n", 0o644)
	w("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nlive:x:1000:1000:Live:/home/live:/bin/bash\nguest:x:1001:1001:Guest:/home/guest:/bin/bash\n", 0o644)
	w("/etc/shadow", "root:!:19000:0:99999:7:::\nlive::19000:0:99999:7:::\nguest::19000:0:99999:7:::\n", 0o640)
	w("/etc/hostname", "debian-live\n", 0o644)
	w("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian-live\n", 0o644)
	w("/proc/sys/kernel/random/boot_id", "5e1f0000-0000-4000-8000-000000000001\n", 0o444)
	w("/proc/self/mounts", "/dev/md127 / ext4 rw 0 0\n", 0o644)
	w("/lib/modules/6.1.0-56-amd64/modules.dep", "", 0o644)
	w("/boot/vmlinuz-6.1.0-56-amd64", "", 0o644)
	w("/boot/initrd.img-6.1.0-56-amd64", "", 0o644)
	w("/etc/initramfs-tools/hooks/livemigrate", "#!/bin/sh\n", 0o755)
	w("/etc/initramfs-tools/scripts/livemigrate", "", 0o644)
	for _, b := range []string{"/usr/sbin/update-initramfs", "/usr/sbin/grub-install", "/usr/sbin/grub-mkconfig", "/usr/bin/ssh-keygen", "/usr/sbin/mkfs.vfat", "/usr/bin/unshare", "/usr/sbin/visudo"} {
		w(b, "#!/bin/sh\n", 0o755)
	}
	if err := os.MkdirAll(filepath.Join(root, "/usr/lib/grub/i386-pc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "/usr/lib/grub/x86_64-efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeSys{t: t, root: root, fail: map[string]error{}}
	e := &Env{Root: root, Disk: "/dev/vdb", RootDev: "/dev/vdb3", ESP: "/dev/vdb2", FSUUID: "1111-root", FSType: "ext4",
		GrubRoot: func() (string, func() error, error) { return "/run/test-node", func() error { return nil }, nil },
		Run:      f.run}
	return root, f, e
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		return ""
	}
	return string(b)
}

func TestRunDebianWholeDisk(t *testing.T) {
	root, calls, e := fakeRoot(t)
	e.Hostname = "workstation"
	var events []string
	res, err := Run(e, func(r Result, done bool) {
		if done {
			events = append(events, r.Name)
		}
	})
	if err != nil {
		t.Fatalf("Run: %v (%+v)", err, res)
	}
	if strings.Join(events, ",") != "fs-uuid,esp,fstab,machine-id,ssh-host-keys,live-user,hostname,live-packages,initramfs,bootloader" {
		t.Errorf("events = %v", events)
	}
	fstab := read(t, root, "/etc/fstab")
	for _, want := range []string{"UUID=1111-root / ext4 defaults 0 1", "UUID=AB12-CD34 /boot/efi vfat umask=0077 0 1", "UUID=abcd /data ext4 defaults 0 2", "tmpfs /tmp"} {
		if !strings.Contains(fstab, want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	if strings.Contains(fstab, "live-rw") {
		t.Errorf("fstab keeps the live root:\n%s", fstab)
	}
	if id := read(t, root, "/etc/machine-id"); id == "0123456789abcdef0123456789abcdef\n" || len(strings.TrimSpace(id)) != 32 {
		t.Errorf("machine-id = %q", id)
	}
	if read(t, root, "/etc/ssh/ssh_host_ed25519_key.pub") == "k" {
		t.Error("the live image's host key is left")
	}
	for _, gone := range []string{"/etc/systemd/system/getty@tty1.service.d/autologin.conf", "/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", "/etc/initramfs-tools/hooks/livemigrate", "/etc/initramfs-tools/scripts/livemigrate"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s still there", gone)
		}
	}
	if read(t, root, "/etc/systemd/system/getty@tty2.service.d/other.conf") == "" {
		t.Error("unrelated getty drop-in removed")
	}
	// The rules stay and ask for the password.
	for f, want := range map[string]string{
		"/etc/sudoers.d/admins": "%admins ALL=(ALL) ALL\nops ALL=(ALL) PASSWD: /usr/bin/systemctl\n",
		"/etc/sudoers.d/live":   "live ALL=(ALL) PASSWD: ALL\n",
		"/etc/sudoers":          "Defaults\tenv_reset\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n# live session\nlive ALL=(ALL:ALL) PASSWD: ALL\n",
	} {
		if got := read(t, root, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
		if st, err := os.Stat(filepath.Join(root, f)); err != nil || st.Mode().Perm() != 0o440 {
			t.Errorf("%s mode: %v %v", f, st.Mode(), err)
		}
	}
	if s := read(t, root, "/etc/shadow"); !strings.Contains(s, "live:!:") || !strings.Contains(s, "guest:!:") {
		t.Errorf("shadow = %q", s)
	}
	if s := read(t, root, "/etc/gdm3/daemon.conf"); !strings.Contains(s, "AutomaticLoginEnable=false") {
		t.Errorf("gdm = %q", s)
	}
	if s := read(t, root, "/etc/lightdm/lightdm.conf"); strings.Contains(s, "\nautologin-user=live") {
		t.Errorf("lightdm = %q", s)
	}
	if read(t, root, "/etc/hostname") != "workstation\n" || !strings.Contains(read(t, root, "/etc/hosts"), "127.0.1.1\tworkstation") {
		t.Errorf("hostname/hosts = %q %q", read(t, root, "/etc/hostname"), read(t, root, "/etc/hosts"))
	}
	want := []string{
		"blkid -p -o export /dev/vdb2",
		"/usr/sbin/mkfs.vfat -F 32 -n EFI /dev/vdb2",
		"blkid -p -o export /dev/vdb2",
		"mount -t vfat -o umask=0077 /dev/vdb2 /boot/efi",
		"/usr/bin/ssh-keygen -A",
		"/usr/sbin/visudo -c -f /etc/sudoers",
		"/usr/sbin/visudo -c -f /etc/sudoers",
		"passwd -l live",
		"passwd -l guest",
		"/usr/sbin/update-initramfs -u -k 6.1.0-56-amd64",
		grubNS + "/usr/sbin/grub-install --target=i386-pc --modules=part_gpt part_msdos --boot-directory=/boot /dev/vdb",
		grubNS + "/usr/sbin/grub-install --target=x86_64-efi --modules=part_gpt part_msdos --efi-directory=/boot/efi --boot-directory=/boot --removable --no-nvram",
		grubNS + "/usr/sbin/grub-mkconfig -o /boot/grub/grub.cfg",
	}
	if strings.Join(*calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(*calls, "\n"), strings.Join(want, "\n"))
	}
	var lu Result
	for _, r := range res {
		if r.Name == "live-user" {
			lu = r
		}
	}
	for _, want := range []string{`"live" keeps its files`, "passwd live",
		"getty autologin (/etc/systemd/system/getty@tty1.service.d/autologin.conf:3, drop-in deleted)",
		"passwordless sudo (/etc/sudoers:6: NOPASSWD now PASSWD)",
		"passwordless sudo (/etc/sudoers.d/admins:2: NOPASSWD now PASSWD)",
		"GDM autologin (/etc/gdm3/daemon.conf:2 AutomaticLoginEnable = true)",
		"LightDM autologin (/etc/lightdm/lightdm.conf:2 autologin-user=live)",
		`the account "guest" had an empty password (/etc/shadow:3): locked`,
	} {
		if !strings.Contains(lu.Message, want) {
			t.Errorf("live-user message lacks %q:\n%s", want, lu.Message)
		}
	}
}

// grubNS is how GRUB's tools are started: in their own mount namespace,
// chrooted into the root mounted through /run/test-node (the fake node).
var grubNS = "/usr/bin/unshare --mount --propagation private /bin/sh -c " + grubRootScript + " livemigrate-grub /run/test-node ext4 /boot/efi "

func TestPasswordChosen(t *testing.T) {
	root, f, e := fakeRootSys(t)
	e.Password = "s3cret"
	if _, err := e.liveUser(); err != nil {
		t.Fatal(err)
	}
	// Through the runner, on standard input, never as an argument.
	if strings.Join(f.stdin, "|") != "live:s3cret\n" {
		t.Errorf("stdin given = %q", f.stdin)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "s3cret") || c == "passwd -l live" {
			t.Errorf("call %q", c)
		}
	}
	if !strings.Contains(read(t, root, "/etc/shadow"), "live:$y$fake$s3cret:") {
		t.Errorf("shadow = %q", read(t, root, "/etc/shadow"))
	}
}

func TestDracutAndMissingTools(t *testing.T) {
	root, calls, e := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "/usr/bin/dracut"), []byte("#!/bin/sh\n"), 0o755)
	if _, err := e.initramfs(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(t, root, "/etc/dracut.conf.d/90-livemigrate-installed.conf"), "omit_dracutmodules+=\" livemigrate dmsquash-live") {
		t.Error("dracut conf not written")
	}
	if (*calls)[len(*calls)-1] != "/usr/bin/dracut --force --kver 6.1.0-56-amd64" {
		t.Errorf("calls = %q", *calls)
	}
	os.RemoveAll(filepath.Join(root, "/usr/lib/grub/x86_64-efi"))
	msg, err := e.bootloader()
	if err != nil || !strings.Contains(msg, "not for UEFI (install grub-efi-amd64-bin)") {
		t.Errorf("bootloader = %q, %v", msg, err)
	}
	os.Remove(filepath.Join(root, "/usr/sbin/grub-install"))
	if _, err := e.bootloader(); err == nil || !strings.Contains(err.Error(), "grub-pc-bin") {
		t.Errorf("missing grub-install: %v", err)
	}
	e.ESP = ""
	if msg, err := e.esp(); err != nil || !strings.Contains(msg, "skipped") {
		t.Errorf("esp in partition mode = %q %v", msg, err)
	}
}

func TestFamilyAndHostname(t *testing.T) {
	for in, want := range map[string]Family{
		"ID=debian\n": Debian, "ID=ubuntu\nID_LIKE=debian\n": Debian, `ID="fedora"`: Fedora,
		"ID=rocky\nID_LIKE=\"rhel centos fedora\"\n": Fedora, "ID=arch\n": Unknown, "": Unknown,
	} {
		if got := FamilyFromOSRelease(in); got != want {
			t.Errorf("family(%q) = %s, want %s", in, got, want)
		}
	}
	for h, ok := range map[string]bool{"box": true, "my-box-2": true, "-x": false, "x-": false, "": false, "a.b": false, "a b": false, strings.Repeat("a", 64): false} {
		if ValidHostname(h) != ok {
			t.Errorf("ValidHostname(%q) = %v", h, !ok)
		}
	}
	if got := HostsFor("127.0.0.1 localhost\n", "", "box"); got != "127.0.0.1 localhost\n127.0.1.1\tbox\n" {
		t.Errorf("HostsFor = %q", got)
	}
}

func FuzzFstabFor(f *testing.F) {
	f.Add("/dev/mapper/live-rw / ext4 defaults 0 0\nUUID=x /data ext4 defaults 0 2\n", "AB")
	f.Fuzz(func(t *testing.T, old, esp string) {
		out := FstabFor(old, "UUID=r / ext4 defaults 0 1", esp)
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[1] == "/" && !strings.HasPrefix(f[0], "#") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d root entries in %q", n, out)
		}
	})
}

func TestExecRunnerTimeout(t *testing.T) {
	old := CommandTimeout
	CommandTimeout = 200 * time.Millisecond
	defer func() { CommandTimeout = old }()
	start := time.Now()
	_, err := ExecRunner(Cmd{Name: "sleep", Args: []string{"5"}})
	if err == nil || !strings.Contains(err.Error(), "sleep 5: still running after 200ms, stopped") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if _, err := ExecRunner(Cmd{Name: "false"}); err == nil || !strings.Contains(err.Error(), "false") {
		t.Errorf("false: %v", err)
	}
}

// TestESPBusy: an ESP busy for a moment (udev's coldplug beside the
// installed system's first boot) is formatted once udev settles; one that
// stays busy fails the step and says so.
func TestESPBusy(t *testing.T) {
	defer func(w time.Duration) { espBusyWait = w }(espBusyWait)
	espBusyWait = 0
	root, f, e := fakeRootSys(t)
	if err := os.WriteFile(filepath.Join(root, "/usr/bin/udevadm"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.busy = 2
	msg, err := e.esp()
	if err != nil || !strings.Contains(msg, "formatted FAT32") || !strings.Contains(msg, "busy at first: formatted at try 3") {
		t.Fatalf("esp after two busy tries: %q, %v", msg, err)
	}
	settles := 0
	for _, c := range f.calls {
		if strings.HasSuffix(c, "udevadm settle --timeout=30") {
			settles++
		}
	}
	if settles != 2 {
		t.Errorf("udevadm settle ran %d times, want 2: %v", settles, f.calls)
	}
	_, f, e = fakeRootSys(t)
	f.busy = espBusyTries + 1
	if _, err := e.esp(); err == nil || !strings.Contains(err.Error(), "still busy after 10 more tries") {
		t.Errorf("esp on a partition that stays busy: %v", err)
	}
	if f.formats != 0 {
		t.Errorf("formatted %d times", f.formats)
	}
}
