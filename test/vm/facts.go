package vm

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Facts are the key=value lines a guest wrote to its facts port (ttyS1),
// read from DIR/facts.txt. A key may repeat; the last value counts, as
// the shell harness's facts_get read it.
type Facts map[string]string

// ReadFacts parses a facts file. A missing file is no facts, not an error:
// a guest that never started writes none.
func ReadFacts(path string) Facts {
	f := Facts{}
	b, err := os.ReadFile(path)
	if err != nil {
		return f
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		f[k] = v
	}
	return f
}

// Get is the value of key, "" when the guest did not report it.
func (f Facts) Get(key string) string { return f[key] }

// Has tells whether the guest's last report of key has a value (an empty
// last value counts as not reported, as it did for facts_get).
func (f Facts) Has(key string) bool { return f[key] != "" }

// Lines is the multi-line value the guest sent with fact_file KEY (lines
// KEY.1= ... KEY.N=), in order; a missing line is empty.
func (f Facts) Lines(key string) []string {
	max := 0
	for k := range f {
		rest, ok := strings.CutPrefix(k, key+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n > max {
			max = n
		}
	}
	out := make([]string, 0, max)
	for i := 1; i <= max; i++ {
		out = append(out, f[key+"."+strconv.Itoa(i)])
	}
	return out
}

// Keys lists the keys with prefix, sorted.
func (f Facts) Keys(prefix string) []string {
	var ks []string
	for k := range f {
		if strings.HasPrefix(k, prefix) && f[k] != "" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// Glob reports whether s matches the shell pattern pat as bash's [[ s ==
// pat ]] does: * and ? match any character, '/' included; [...] is a class.
func Glob(s, pat string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			re.WriteString("(?s:.*)")
		case '?':
			re.WriteString("(?s:.)")
		case '[':
			j := strings.IndexByte(pat[i+1:], ']')
			if j < 0 {
				re.WriteString(`\[`)
				continue
			}
			class := pat[i+1 : i+1+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			re.WriteString("[" + class + "]")
			i += j + 1
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, err := regexp.MatchString(re.String(), s)
	return err == nil && ok
}
