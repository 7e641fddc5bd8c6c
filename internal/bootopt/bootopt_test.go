package bootopt

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		"":              nil,
		"  a  b\tc\n":   {"a", "b", "c"},
		`x="a b" y`:     {"x=a b", "y"},
		`"quoted word"`: {"quoted word"},
		`root=live:CDLABEL=LIVE rd.live.image quiet`: {"root=live:CDLABEL=LIVE", "rd.live.image", "quiet"},
		`a="unterminated rest`:                       {"a=unterminated rest"},
	} {
		if got := Split(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	const G = 1 << 30
	tests := []struct {
		in       string
		want     Options
		problems []string
	}{
		{"BOOT_IMAGE=/vmlinuz root=live:CDLABEL=LIVETEST rd.live.image",
			Options{Wrap: true, MD: "md127", COW: "ram", Live: "CDLABEL=LIVETEST"}, nil},
		{"rd.livemigrate=0", Options{Wrap: false, MD: "md127", COW: "ram"}, nil},
		{"rd.livemigrate rd.livemigrate.md=/dev/md5 rd.livemigrate.cow=zram rd.livemigrate.cowsize=2G",
			Options{Wrap: true, MD: "md5", COW: "zram", COWSize: 2 * G}, nil},
		{"rd.livemigrate.cowsize=75%", Options{Wrap: true, MD: "md127", COW: "ram", COWPercent: 75}, nil},
		{"rd.livemigrate.cowsize=1G rd.livemigrate.cowsize=512MiB", Options{Wrap: true, MD: "md127", COW: "ram", COWSize: 512 << 20}, nil},
		{"root=/dev/sda1", Options{Wrap: true, MD: "md127", COW: "ram"}, nil},
		{"rd.livemigrate=maybe", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"rd.livemigrate=maybe"}},
		{"rd.livemigrate.md=sda", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"rd.livemigrate.md=sda"}},
		{"rd.livemigrate.md=md127;reboot", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"rd.livemigrate.md=md127;reboot"}},
		{"rd.livemigrate.cow=disk", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"want ram or zram"}},
		{"rd.livemigrate.cowsize=lots", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"cowsize=lots"}},
		{"rd.livemigrate.cowsize=1M", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"at least 16M"}},
		{"rd.livemigrate.cowsize=0%", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"percentage"}},
		{"rd.livemigrate.cowsize=", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"needs a size"}},
		{"rd.livemigrate.cowsize=99999999999T", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"too large"}},
		{"rd.livemigrate.colour=blue", Options{Wrap: true, MD: "md127", COW: "ram"}, []string{"unknown option"}},
	}
	for _, tt := range tests {
		got := Parse(tt.in)
		probs := got.Problems
		got.Problems = nil
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if len(probs) != len(tt.problems) {
			t.Errorf("Parse(%q) problems = %q, want %d", tt.in, probs, len(tt.problems))
			continue
		}
		for i, p := range tt.problems {
			if !strings.Contains(probs[i], p) {
				t.Errorf("Parse(%q) problem %q lacks %q", tt.in, probs[i], p)
			}
		}
	}
}

func TestResolve(t *testing.T) {
	const mem = 4 << 30
	if got := Parse("").Resolve(mem); got != 2<<30 {
		t.Errorf("default ram = %d", got)
	}
	if got := Parse("rd.livemigrate.cow=zram").Resolve(mem); got != 4<<30 {
		t.Errorf("default zram = %d", got)
	}
	if got := Parse("rd.livemigrate.cowsize=25%").Resolve(mem); got != 1<<30 {
		t.Errorf("25%% = %d", got)
	}
	if got := Parse("rd.livemigrate.cowsize=3G").Resolve(mem); got != 3<<30 {
		t.Errorf("3G = %d", got)
	}
}

// The shell output must survive hostile values: run it through sh and read
// the variables back.
func TestShellQuoting(t *testing.T) {
	o := Parse(`root=live:CDLABEL=it's$(touch/tmp/x)"a b" rd.livemigrate.cow=x';reboot;'`)
	out := o.Shell(1 << 30)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	b, err := exec.Command(sh, "-c", out+`printf '%s\n%s\n%s\n' "$LM_WRAP" "$LM_LIVE" "$LM_PROBLEMS"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "0" {
		t.Errorf("LM_WRAP = %q with problems", lines[0])
	}
	if lines[1] != `CDLABEL=it's$(touch/tmp/x)a b` {
		t.Errorf("LM_LIVE = %q", lines[1])
	}
	if !strings.Contains(lines[2], "want ram or zram") {
		t.Errorf("LM_PROBLEMS = %q", lines[2])
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "root=live:CDLABEL=X rd.live.image", `a="b c`, "rd.livemigrate.cowsize=50%", "rd.livemigrate.md=md1 rd.livemigrate=0", "rd.livemigrate.cowsize=1T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o := Parse(s)
		if o.MD == "" || (o.COW != "ram" && o.COW != "zram") {
			t.Fatalf("%q: invalid result %+v", s, o)
		}
		if !mdName.MatchString(o.MD) {
			t.Fatalf("%q: md %q", s, o.MD)
		}
		_ = o.Shell(1 << 30)
	})
}
