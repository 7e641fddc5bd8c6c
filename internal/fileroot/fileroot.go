// Package fileroot reads what a file-based live root is made of, for the
// copy method: the layers of an overlayfs root (live-boot, casper,
// dracut's overlayfs mode, archiso) or a tmpfs root (NixOS, a root
// unpacked into RAM). No block device holds such a root whole, so it is
// copied file by file (internal/treecopy).
package fileroot

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// Layers are an overlayfs mount's directories, as its mount options name
// them.
type Layers struct {
	// Lower: the read-only layers, uppermost first, as overlayfs stacks
	// them; data-only layers (after "::", or datadir+=) are not in it.
	Lower []string `json:"lower"`
	// Data: data-only lower layers (metacopy files' data); a root that has
	// them is copied through the merged view, not layer by layer.
	Data []string `json:"data,omitempty"`
	// Upper and Work are "" for a read-only overlay.
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
}

// ParseOverlayOptions reads the layers out of an overlayfs mount's super
// options as /proc/self/mountinfo shows them. Two forms exist:
// "lowerdir=A:B::D" (the string given at mount time, ':' separating
// layers, "::" starting the data-only ones, '\:' a colon inside a name)
// and, for layers added one by one (kernel 6.5+), "lowerdir+=A" and
// "datadir+=D" once per layer. The kernel escapes ',', space, tab,
// newline and backslash in every value as \ooo.
func ParseOverlayOptions(superopts string) (Layers, error) {
	var l Layers
	seenLower := false
	for _, opt := range strings.Split(superopts, ",") {
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "lowerdir":
			seenLower = true
			lower, data, err := splitLowerdir(val)
			if err != nil {
				return Layers{}, err
			}
			l.Lower, l.Data = append(l.Lower, lower...), append(l.Data, data...)
		case "lowerdir+":
			seenLower = true
			l.Lower = append(l.Lower, procfs.Unescape(val))
		case "datadir+":
			l.Data = append(l.Data, procfs.Unescape(val))
		case "upperdir":
			l.Upper = procfs.Unescape(val)
		case "workdir":
			l.Work = procfs.Unescape(val)
		}
	}
	if !seenLower || len(l.Lower) == 0 {
		return Layers{}, fmt.Errorf("overlayfs options %q name no lower layer", superopts)
	}
	for _, p := range append(append(append([]string{}, l.Lower...), l.Data...), l.Upper) {
		if p != "" && !filepath.IsAbs(p) {
			return Layers{}, fmt.Errorf("overlayfs layer %q is a relative path (relative to where it was mounted from): it cannot be found from here", p)
		}
	}
	return l, nil
}

// splitLowerdir splits a legacy lowerdir= value into its layers and its
// data-only layers.
func splitLowerdir(val string) (lower, data []string, err error) {
	// The kernel showed a user's "\:" as "\134:" (the backslash escaped).
	const escColon = `\134:`
	var cur strings.Builder
	inData := false
	flush := func() {
		p := procfs.Unescape(cur.String())
		cur.Reset()
		if p == "" {
			return
		}
		if inData {
			data = append(data, p)
		} else {
			lower = append(lower, p)
		}
	}
	for i := 0; i < len(val); i++ {
		switch {
		case strings.HasPrefix(val[i:], escColon):
			cur.WriteByte(':')
			i += len(escColon) - 1
		case val[i] == ':':
			if cur.Len() == 0 && i > 0 && !inData {
				// "::": the layers after it hold data only.
				inData = true
				continue
			}
			flush()
		default:
			cur.WriteByte(val[i])
		}
	}
	flush()
	if strings.Contains(val, ":::") {
		return nil, nil, fmt.Errorf("overlayfs lowerdir %q: empty layer name", val)
	}
	return lower, data, nil
}
