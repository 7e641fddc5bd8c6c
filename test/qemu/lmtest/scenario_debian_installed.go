package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

var raid1ko = regexp.MustCompile(`raid1.ko`)

// scenarioDebianInstalled: the migrated target booted by its firmware
// through the GRUB that finalize installed (no medium, no -kernel):
// everything the verify scenario checks, plus what makes it an installed
// system rather than a copied live one. The host compares the identities
// with the live session's. The scenario words come from /etc/lmtest/cmdline
// (the live session wrote it).
func scenarioDebianInstalled() int {
	vrc := scenarioDebianVerify()
	if g.Exists("/sys/firmware/efi") {
		g.Fact("firmware", "uefi")
	} else {
		g.Fact("firmware", "bios")
	}
	g.Fact("kernel_cmdline", g.Read("/proc/cmdline"))
	g.Fact("machine_id", g.All("cat", "/etc/machine-id"))
	g.Fact("ssh_fp", sshFingerprints())
	g.Fact("hostname", g.Out("hostname"))
	// Live-only state that must be gone: passwordless sudo, autologin (in
	// unit files and as running logins), the live boot mode in the
	// initramfs.
	g.Fact("nopasswd", nopasswdFiles())
	// finalize edited /etc/sudoers itself: it must still parse (sudo
	// refuses to run at all otherwise) and keep its mode.
	vc := g.Cmd{Args: []string{"visudo", "-c"}, Combined: true}.Run()
	_ = os.WriteFile("/run/visudo", vc.Stdout, 0o644)
	if vc.RC == 0 {
		g.Fact("sudoers_check", "ok")
	} else {
		g.Fact("sudoers_check", strings.ReplaceAll(string(vc.Stdout), "\n", " "))
	}
	g.Fact("sudoers_mode", g.All("stat", "-c", "%a", "/etc/sudoers"))
	// Accounts anyone can log in to without a password, and the image's
	// guest account.
	g.Fact("empty_passwords", emptyPasswords())
	g.Fact("guest_user", cutWords(g.All("passwd", "-S", "guest"), 2))
	g.Fact("autologin_units", strings.ReplaceAll(string(g.Sh("grep", "-rls", "--", "--autologin", "/etc/systemd/system", "/lib/systemd/system").Stdout), "\n", " "))
	g.Fact("autologin_running", g.Out("pgrep", "-c", "-f", "^/bin/login -p -f"))
	g.Fact("sessions", strconv.Itoa(g.CountLines(g.Sh("loginctl", "list-sessions", "--no-legend").Stdout)))
	g.Fact("live_user", cutWords(g.All("passwd", "-S", "live"), 2))
	// Whether the live user's password is the one chosen during the
	// migration (lmtest.password), and not just any: crypt(3) of it
	// against the shadow hash, and of a wrong one as the control.
	if pw := g.Cmdline("lmtest.password", ""); pw != "" {
		g.Fact("live_password", pwcheck(pw))
		g.Fact("live_password_wrong", pwcheck("not-"+pw))
	}
	initrd := g.Cmd{Args: []string{"lsinitramfs", "/boot/initrd.img-" + g.Read("/proc/sys/kernel/osrelease")}, Combined: true}.Run().Stdout
	g.Fact("initrd_live", strconv.Itoa(countLinesWith(initrd, "livemigrate")))
	g.Fact("initrd_md", strconv.Itoa(countLinesIf(initrd, raid1ko.MatchString)))
	g.FactFile("fstab", "/etc/fstab")
	g.Fact("esp", g.All("findmnt", "-n", "-o", "SOURCE,FSTYPE", "/boot/efi"))
	if st, err := os.Stat("/boot/efi/EFI/BOOT"); err == nil && st.IsDir() {
		names := strings.TrimSpace(g.Names("/boot/efi/EFI/BOOT"))
		if names == "" {
			names = "*"
		}
		g.Fact("esp_removable", names)
	} else {
		g.Fact("esp_removable", "no /boot/efi/EFI/BOOT")
	}
	g.Fact("grub_cfg_root", g.All("grep", "-m1", "-o", "root=[^ ]*", "/boot/grub/grub.cfg"))
	factLsblk("lsblk")
	g.Fact("failed_units", g.OneLine("systemctl", "--failed", "--no-legend", "--plain"))
	return vrc
}

// cutWords is `cut -d' ' -f1-N` of each line, lines joined by newlines.
func cutWords(text string, n int) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Split(l, " ")
		out = append(out, strings.Join(f[:min(n, len(f))], " "))
	}
	return strings.Join(out, "\n")
}

// pwcheck says whether pw is the live user's password: crypt(3) of it
// against the shadow hash, by perl (Go's standard library has no crypt).
func pwcheck(pw string) string {
	return g.All("perl", "-e", `my ($u, $pw) = @ARGV; open(my $f, "<", "/etc/shadow") or die "shadow: $!\n";
		while (<$f>) { my @x = split /:/; next unless $x[0] eq $u;
			my $c = crypt($pw, $x[1]); print defined($c) && $c eq $x[1] ? "matches" : "differs"; exit }
		print "no such user"`, "live", pw)
}
