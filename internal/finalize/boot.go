package finalize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// kernels lists the kernel versions installed on the root: those with both
// modules and an image in /boot.
func (e *Env) kernels() []string {
	var out []string
	ents, _ := os.ReadDir(e.path("/lib/modules"))
	for _, d := range ents {
		v := d.Name()
		for _, img := range []string{"/boot/vmlinuz-" + v, "/lib/modules/" + v + "/vmlinuz"} {
			if _, err := os.Stat(e.path(img)); err == nil {
				out = append(out, v)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Where the live hooks live, packaged or installed by hand.
var liveHookFiles = []string{
	"/etc/initramfs-tools/hooks/livemigrate",
	"/etc/initramfs-tools/scripts/livemigrate",
	"/usr/share/initramfs-tools/hooks/livemigrate",
	"/usr/share/initramfs-tools/scripts/livemigrate",
}

// DracutInstalledConf keeps the live modules out of every initramfs dracut
// builds from now on. hostonly stays off: / is still on the md array while
// this runs, and a host-only image would look for it at the next boot.
const DracutInstalledConf = `# Written by livemigrate: this system was installed from a live session.
# Its initramfs mounts / directly; the live boot modules are not needed.
omit_dracutmodules+=" livemigrate dmsquash-live dmsquash-live-ntfs "
hostonly="no"
`

func (e *Env) initramfs() (string, error) {
	ks := e.kernels()
	if len(ks) == 0 {
		return "", errors.New("no installed kernel found in /lib/modules with an image in /boot: install the distribution's kernel package")
	}
	if dr, err := e.lookPath("dracut"); err == nil {
		if err := writeFileAtomic(e.path("/etc/dracut.conf.d/90-livemigrate-installed.conf"), []byte(DracutInstalledConf), 0o644); err != nil {
			return "", err
		}
		for _, k := range ks {
			if _, err := e.Run(dr, "--force", "--kver", k); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("dracut: rebuilt the initramfs for %s without the live modules", strings.Join(ks, ", ")), nil
	}
	if ui, err := e.lookPath("update-initramfs"); err == nil {
		var removed []string
		for _, f := range liveHookFiles {
			if err := os.Remove(e.path(f)); err == nil {
				removed = append(removed, f)
			}
		}
		for _, k := range ks {
			mode := "-u"
			if _, err := os.Stat(e.path("/boot/initrd.img-" + k)); err != nil {
				mode = "-c"
			}
			if _, err := e.Run(ui, mode, "-k", k); err != nil {
				return "", err
			}
		}
		msg := fmt.Sprintf("initramfs-tools: rebuilt the initramfs for %s", strings.Join(ks, ", "))
		if len(removed) > 0 {
			msg += " after removing the live boot mode (" + strings.Join(removed, ", ") + ")"
		}
		return msg, nil
	}
	return "", errors.New("neither dracut nor update-initramfs is installed: install one (initramfs-tools on Debian, dracut on Fedora)")
}

func (e *Env) bootloader() (string, error) {
	fam := e.DetectFamily()
	install, mkconfig, cfg, libdir := "grub-install", "grub-mkconfig", "/boot/grub/grub.cfg", "/usr/lib/grub"
	if fam == Fedora {
		install, mkconfig, cfg = "grub2-install", "grub2-mkconfig", "/boot/grub2/grub.cfg"
	}
	gi, err := e.lookPath(install)
	if err != nil {
		return "", fmt.Errorf("%s is missing: install GRUB (Debian: grub-pc-bin and grub-efi-amd64-bin; Fedora: grub2-pc and grub2-efi-x64)", install)
	}
	gm, err := e.lookPath(mkconfig)
	if err != nil {
		return "", fmt.Errorf("%s is missing: install the GRUB tools package", mkconfig)
	}
	if e.Disk == "" {
		return "", errors.New("no boot disk known")
	}
	var did, missing []string
	if e.hasDir(libdir, "i386-pc") {
		if _, err := e.Run(gi, "--target=i386-pc", "--boot-directory=/boot", e.Disk); err != nil {
			return "", err
		}
		did = append(did, "BIOS on "+e.Disk)
	} else {
		missing = append(missing, "BIOS (install grub-pc-bin)")
	}
	if e.ESP != "" {
		if e.hasDir(libdir, "x86_64-efi") {
			// --removable: firmware finds EFI/BOOT/BOOTX64.EFI without an NVRAM
			// entry, which this machine's firmware may not even be the one to boot.
			if _, err := e.Run(gi, "--target=x86_64-efi", "--efi-directory=/boot/efi", "--boot-directory=/boot", "--removable", "--no-nvram"); err != nil {
				return "", err
			}
			did = append(did, "UEFI on "+e.ESP+" (removable path)")
		} else {
			missing = append(missing, "UEFI (install grub-efi-amd64-bin)")
		}
	}
	if len(did) == 0 {
		return "", fmt.Errorf("GRUB has no platform files for %s", strings.Join(missing, " or "))
	}
	if _, err := e.Run(gm, "-o", cfg); err != nil {
		return "", err
	}
	msg := "GRUB for " + strings.Join(did, " and ")
	if len(missing) > 0 {
		msg += "; not for " + strings.Join(missing, ", ")
	}
	return msg, nil
}

func (e *Env) hasDir(base string, names ...string) bool {
	for _, b := range []string{base, "/usr/lib/grub2", "/usr/share/grub2"} {
		st, err := os.Stat(e.path(filepath.Join(append([]string{b}, names...)...)))
		if err == nil && st.IsDir() {
			return true
		}
	}
	return false
}
