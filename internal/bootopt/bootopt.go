// Package bootopt owns livemigrate's kernel command line options: it splits
// the command line the way the kernel does, reads the rd.livemigrate.*
// options and the live medium's root=live: spec, and says plainly what is
// wrong with an invalid one, so the boot hooks can show the reason and fall
// back to a normal live boot instead of hanging.
package bootopt

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Options are the boot-time settings.
type Options struct {
	// Wrap is false when rd.livemigrate=0: boot the live system as it is.
	Wrap bool
	// MD is the md device to build, "md127" by default.
	MD string
	// COW is where the snapshot's copy-on-write data lives: "ram" (a sparse
	// file in RAM, what dmsquash-live does) or "zram" (compressed RAM: the
	// session lasts longer on small machines).
	COW string
	// COWSize is the COW's size in bytes; 0 means the default, which is
	// resolved against the machine's memory by Resolve.
	COWSize uint64
	// COWPercent is set instead of COWSize for "50%" (of MemTotal).
	COWPercent uint64
	// Live is the medium spec from root=live:SPEC (CDLABEL=X, LABEL=X,
	// UUID=X, /dev/sr0), "" when the command line has none.
	Live string
	// Problems lists every invalid option, each as a sentence. The hooks
	// print them and boot without the wrap.
	Problems []string
}

// Defaults for COW sizes, in percent of MemTotal. A sparse RAM file only
// takes what is written, so its size is a ceiling; zram's disksize counts
// uncompressed data, which typically compresses 2-3:1.
const (
	DefaultRAMPercent  = 50
	DefaultZramPercent = 100
)

// Split splits a kernel command line into words: whitespace separates them,
// and double quotes group a value that contains spaces (the quotes are
// dropped), as the kernel's own parser does.
func Split(cmdline string) []string {
	var out []string
	var b strings.Builder
	inQuote, inWord := false, false
	for _, r := range cmdline {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, b.String())
	}
	return out
}

var mdName = regexp.MustCompile(`^md[0-9]{1,3}$`)

// Parse reads the options from a kernel command line. The last occurrence
// of an option wins, as with the kernel's own parameters.
func Parse(cmdline string) Options {
	o := Options{Wrap: true, MD: "md127", COW: "ram"}
	var sizeArg string
	for _, w := range Split(cmdline) {
		key, val, hasVal := strings.Cut(w, "=")
		switch key {
		case "root":
			// The last root= wins: a later plain root= means no live medium.
			o.Live, _ = strings.CutPrefix(val, "live:")
			if o.Live == val {
				o.Live = ""
			}
		case "rd.livemigrate":
			switch val {
			case "1", "yes", "on", "":
				o.Wrap = true
			case "0", "no", "off":
				o.Wrap = false
			default:
				o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate=%s: want 1 or 0", val))
			}
		case "rd.livemigrate.md":
			v := strings.TrimPrefix(val, "/dev/")
			if !mdName.MatchString(v) {
				o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate.md=%s: want an md device name such as md127", val))
				continue
			}
			o.MD = v
		case "rd.livemigrate.cow":
			switch val {
			case "ram", "zram":
				o.COW = val
			default:
				o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate.cow=%s: want ram or zram", val))
			}
		case "rd.livemigrate.cowsize":
			if !hasVal || val == "" {
				o.Problems = append(o.Problems, "rd.livemigrate.cowsize needs a size, e.g. 2G or 50%")
				continue
			}
			sizeArg = val
		default:
			if strings.HasPrefix(key, "rd.livemigrate.") {
				o.Problems = append(o.Problems, fmt.Sprintf("%s: unknown option (known: rd.livemigrate, rd.livemigrate.md, rd.livemigrate.cow, rd.livemigrate.cowsize)", key))
			}
		}
	}
	if sizeArg != "" {
		if p, ok := strings.CutSuffix(sizeArg, "%"); ok {
			n, err := strconv.ParseUint(p, 10, 64)
			if err != nil || n == 0 || n > 400 {
				o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate.cowsize=%s: want a percentage of RAM from 1%% to 400%%", sizeArg))
			} else {
				o.COWPercent = n
			}
		} else if n, err := ParseSize(sizeArg); err != nil {
			o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate.cowsize=%s: %v", sizeArg, err))
		} else if n < 16<<20 {
			o.Problems = append(o.Problems, fmt.Sprintf("rd.livemigrate.cowsize=%s: at least 16M is needed", sizeArg))
		} else {
			o.COWSize = n
		}
	}
	return o
}

// ParseSize reads 512, 64K, 512M, 2G, 1T (binary units; a trailing B or iB
// is allowed).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("want a size such as 2G, 512M or 50%%")
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}

// Resolve turns a percentage or the default into bytes for a machine with
// memTotal bytes of RAM.
func (o Options) Resolve(memTotal uint64) uint64 {
	if o.COWSize > 0 {
		return o.COWSize
	}
	p := o.COWPercent
	if p == 0 {
		p = DefaultRAMPercent
		if o.COW == "zram" {
			p = DefaultZramPercent
		}
	}
	return memTotal * p / 100 &^ (1<<20 - 1)
}

// Shell renders the options as shell assignments for the boot scripts,
// every value single-quoted so nothing on the command line is executed.
func (o Options) Shell(memTotal uint64) string {
	vars := map[string]string{
		"LM_WRAP":     "0",
		"LM_MD":       o.MD,
		"LM_COW":      o.COW,
		"LM_COWSIZE":  strconv.FormatUint(o.Resolve(memTotal), 10),
		"LM_LIVE":     o.Live,
		"LM_PROBLEMS": strings.Join(o.Problems, "; "),
	}
	if o.Wrap && len(o.Problems) == 0 {
		vars["LM_WRAP"] = "1"
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, Quote(vars[k]))
	}
	return b.String()
}

// Quote single-quotes s for a POSIX shell.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
