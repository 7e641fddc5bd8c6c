// Package livestack owns the systemd side of livemigrate's boot step, for
// initrds with no dracut and no initramfs-tools (mkosi-initrd): the
// generator that turns root=live: into units, and the build of the live
// stack those units run (medium, squashfs, live-rw, the md array), laid out
// the way dracut's dmsquash-live lays it out.
package livestack

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/livemigrate/livemigrate/internal/bootopt"
)

// ServiceName is the unit that builds the stack. It is shipped as a static
// file (initrd-hook/systemd/); the generator only enables it and points it
// at the medium.
const ServiceName = "livemigrate-live.service"

// ServicePath is where the static unit lives in the initrd.
const ServicePath = "/usr/lib/systemd/system/" + ServiceName

// LiveRW is the snapshot's node, what / is without the md layer.
const LiveRW = "/dev/mapper/live-rw"

// File is one thing the generator writes into its output directory: a unit
// or drop-in (Content), or a symlink (Link) that enables a unit.
type File struct {
	Name    string // relative to the generator's output directory
	Content string
	Link    string
}

// Plan is what the generator does for one command line.
type Plan struct {
	// Files to write; none when the command line asks for no live root.
	Files []File
	// Root is what sysroot.mount mounts: the array, or live-rw when the
	// options turn the md layer off.
	Root string
	// Notes are said on the console (the generator's stderr goes to kmsg):
	// invalid options and what was chosen instead.
	Notes []string
}

// Generate plans the generator's output for a kernel command line. A
// command line without root=live: gets an empty plan: the initrd's own
// generators handle the root. The plan is:
//
//   - livemigrate-live.service enabled by initrd-root-device.target, with
//     a drop-in that orders it after the medium's device unit (Wants=, not
//     Requires=: a missing medium is reported by the service itself);
//   - sysroot.mount (systemd-fstab-generator skips root=live:) with What=
//     the array, after and requiring the service, required by
//     initrd-root-fs.target;
//   - no job timeout for the array's device unit: the service's own
//     bounds decide when the boot gives up.
func Generate(cmdline string) (Plan, error) {
	o := bootopt.Parse(cmdline)
	var p Plan
	if o.Live == "" {
		return p, nil
	}
	dev, err := MediumPath(o.Live)
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("root=live:%s: %v; the live root cannot be set up", o.Live, err))
		return p, err
	}
	devUnit := UnitNameFromPath(dev, ".device")
	p.Root = "/dev/" + o.MD
	if len(o.Problems) > 0 {
		p.Notes = append(p.Notes, "invalid boot options: "+strings.Join(o.Problems, "; "))
	}
	if !o.Wrap || len(o.Problems) > 0 {
		p.Root = LiveRW
		p.Notes = append(p.Notes, "booting the live system without the md layer: / will be "+LiveRW)
	}

	var typ, flags string
	for _, w := range bootopt.Split(cmdline) {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case "rootfstype":
			typ = v
		case "rootflags":
			flags = v
		}
	}
	opts := "rw"
	if flags != "" {
		opts += "," + flags
	}

	head := fmt.Sprintf("# Written by livemigrate's generator for root=live:%s\n", o.Live)
	mount := head + `[Unit]
Description=Live root (livemigrate)
Documentation=man:livemigrate(8)
Before=initrd-root-fs.target
Requires=` + ServiceName + `
After=` + ServiceName + `

[Mount]
What=` + p.Root + `
Where=/sysroot
`
	if typ != "" {
		mount += "Type=" + typ + "\n"
	}
	mount += "Options=" + opts + "\n"

	dropin := head + `[Unit]
Wants=` + devUnit + `
After=` + devUnit + `
`
	// systemd queues the root device's job at boot, with the default
	// device timeout (90 s), but the device only appears once the service
	// has built it, after the medium showed up: on a slow medium the job
	// would time out first and fail sysroot.mount. The service bounds the
	// wait itself, and its failure fails sysroot.mount.
	rootDevUnit := UnitNameFromPath(p.Root, ".device")
	rootDev := head + `[Unit]
JobRunningTimeoutSec=infinity
`
	p.Files = []File{
		{Name: "sysroot.mount", Content: mount},
		{Name: rootDevUnit + ".d/50-livemigrate.conf", Content: rootDev},
		{Name: "initrd-root-fs.target.requires/sysroot.mount", Link: "../sysroot.mount"},
		{Name: ServiceName + ".d/50-medium.conf", Content: dropin},
		{Name: "initrd-root-device.target.wants/" + ServiceName, Link: ServicePath},
	}
	return p, nil
}

// Write puts the plan's files under dir (the generator's normal output
// directory). A file that is already there is an error, as with
// systemd's own generators: two generators must not both own a unit.
func (p Plan) Write(dir string) error {
	for _, f := range p.Files {
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if f.Link != "" {
			if err := os.Symlink(f.Link, path); err != nil {
				return err
			}
			continue
		}
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = fh.WriteString(f.Content)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// MediumPath is the device path udev gives the medium named by spec
// (CDLABEL=X, LABEL=X, UUID=X, or a /dev path), the path whose device unit
// the service waits for.
func MediumPath(spec string) (string, error) {
	key, val, _ := strings.Cut(spec, "=")
	switch {
	case strings.HasPrefix(spec, "/dev/"):
		return filepath.Clean(spec), nil
	case val == "":
	case key == "CDLABEL" || key == "LABEL":
		return "/dev/disk/by-label/" + UdevEncode(val), nil
	case key == "UUID":
		return "/dev/disk/by-uuid/" + UdevEncode(val), nil
	}
	return "", fmt.Errorf("want CDLABEL=, LABEL=, UUID= or a /dev path")
}

// UdevEncode encodes a label or UUID the way udev names its by-label and
// by-uuid links (blkid's ID_FS_LABEL_ENC): bytes other than ASCII letters,
// digits and #+-.:=@_ become \xNN, and so does a backslash; valid UTF-8
// sequences of more than one byte are kept.
func UdevEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x80 {
			if n := utf8SeqLen(s[i:]); n > 1 {
				b.WriteString(s[i : i+n])
				i += n
				continue
			}
		}
		if isAlnum(c) || strings.IndexByte("#+-.:=@_", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
		i++
	}
	return b.String()
}

// utf8SeqLen is the length of the valid UTF-8 sequence at the start of s,
// or 0 if there is none.
func utf8SeqLen(s string) int {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return 0
	}
	return n
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// UnitNameFromPath is systemd's unit name for a path (systemd-escape
// --path --suffix): slashes become dashes, and bytes other than ASCII
// letters, digits, ':', '_' and '.' (and a leading '.') become \xNN.
func UnitNameFromPath(p, suffix string) string {
	p = strings.Trim(filepath.Clean("/"+p), "/")
	if p == "" {
		return "-" + suffix
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			b.WriteString(`\x2e`)
		case isAlnum(c) || c == ':' || c == '_' || c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + suffix
}
