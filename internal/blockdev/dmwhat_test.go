package blockdev

import "testing"

func TestDMWhat(t *testing.T) {
	for _, c := range []struct{ uuid, name, want string }{
		{"LVM-Xy1eZ", "rfvg-keep", "LVM logical volume rfvg-keep"},
		{"CRYPT-LUKS2-0123-home", "home", "LUKS volume home"},
		{"", "live-rw", "dm device live-rw"},
		{"LVM-x", "", ""},
	} {
		if got := DMWhat(c.uuid, c.name); got != c.want {
			t.Errorf("DMWhat(%q, %q) = %q, want %q", c.uuid, c.name, got, c.want)
		}
	}
}
