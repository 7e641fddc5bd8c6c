package fileroot

import (
	"reflect"
	"testing"
)

func TestParseOverlayOptions(t *testing.T) {
	for _, c := range []struct {
		name, opts string
		want       Layers
		bad        bool
	}{
		{name: "live-boot", opts: "rw,lowerdir=/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work,uuid=on",
			want: Layers{Lower: []string{"/run/live/rootfs/filesystem.squashfs/"}, Upper: "/run/live/overlay/rw", Work: "/run/live/overlay/work"}},
		{name: "casper, layered squashfs", opts: "rw,lowerdir=/installer.squashfs:/minimal.squashfs:/filesystem.squashfs,upperdir=/cow/upper,workdir=/cow/work",
			want: Layers{Lower: []string{"/installer.squashfs", "/minimal.squashfs", "/filesystem.squashfs"}, Upper: "/cow/upper", Work: "/cow/work"}},
		{name: "layers one by one (6.5+)", opts: "rw,relatime,lowerdir+=/a,lowerdir+=/b,datadir+=/d,upperdir=/u,workdir=/w",
			want: Layers{Lower: []string{"/a", "/b"}, Data: []string{"/d"}, Upper: "/u", Work: "/w"}},
		{name: "data-only layers", opts: "ro,lowerdir=/meta::/data1:/data2",
			want: Layers{Lower: []string{"/meta"}, Data: []string{"/data1", "/data2"}}},
		{name: "escaped names", opts: `rw,lowerdir=/run/with\040space:/a\134:colon,upperdir=/up\054comma,workdir=/w`,
			want: Layers{Lower: []string{"/run/with space", "/a:colon"}, Upper: "/up,comma", Work: "/w"}},
		{name: "no lower layer", opts: "rw,upperdir=/u,workdir=/w", bad: true},
		{name: "relative layer", opts: "rw,lowerdir=rootfs,upperdir=/u,workdir=/w", bad: true},
		{name: "empty layer name", opts: "ro,lowerdir=/a:::/b", bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseOverlayOptions(c.opts)
			if c.bad {
				if err == nil {
					t.Errorf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// Whatever a mount table holds, the parser answers without panicking, and
// what it accepts has a lower layer and absolute paths only.
func FuzzParseOverlayOptions(f *testing.F) {
	for _, s := range []string{
		"rw,lowerdir=/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work",
		"ro,lowerdir=/a\\134::/b::/c", "lowerdir+=/a,datadir+=/d", "lowerdir=", ",,,=", "lowerdir=::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseOverlayOptions(s)
		if err != nil {
			return
		}
		if len(l.Lower) == 0 {
			t.Fatalf("%q: accepted without a lower layer", s)
		}
		for _, p := range append(append(l.Lower, l.Data...), l.Upper) {
			if p != "" && p[0] != '/' {
				t.Fatalf("%q: accepted the relative layer %q", s, p)
			}
		}
	})
}
