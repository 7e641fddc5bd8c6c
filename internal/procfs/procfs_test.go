package procfs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	in := `1 0 9:127 / / rw,relatime shared:1 - ext4 /dev/md127 rw
30 25 11:0 / /run/initramfs/live ro,relatime shared:13 master:2 - iso9660 /dev/sr0 ro,norock,check=r
31 25 7:0 / /run/initramfs/squash\040fs ro,relatime - squashfs /dev/loop0 ro,errors=continue
40 1 8:17 /sub\134dir /mnt/a\011b\012c rw - vfat /dev/sdb1
41 1 0:50 / /mnt/nosuper rw - fuse.x src

`
	got, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 1, ParentID: 0, Major: 9, Minor: 127, Root: "/", MountPoint: "/", Options: "rw,relatime", Optional: []string{"shared:1"}, FSType: "ext4", Source: "/dev/md127", SuperOptions: "rw"},
		{ID: 30, ParentID: 25, Major: 11, Minor: 0, Root: "/", MountPoint: "/run/initramfs/live", Options: "ro,relatime", Optional: []string{"shared:13", "master:2"}, FSType: "iso9660", Source: "/dev/sr0", SuperOptions: "ro,norock,check=r"},
		{ID: 31, ParentID: 25, Major: 7, Minor: 0, Root: "/", MountPoint: "/run/initramfs/squash fs", Options: "ro,relatime", FSType: "squashfs", Source: "/dev/loop0", SuperOptions: "ro,errors=continue"},
		{ID: 40, ParentID: 1, Major: 8, Minor: 17, Root: `/sub\dir`, MountPoint: "/mnt/a\tb\nc", Options: "rw", FSType: "vfat", Source: "/dev/sdb1"},
		{ID: 41, ParentID: 1, Major: 0, Minor: 50, Root: "/", MountPoint: "/mnt/nosuper", Options: "rw", FSType: "fuse.x", Source: "src"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMountinfo:\n got %+v\nwant %+v", got, want)
	}

	for _, bad := range []string{
		"1 0 9:127 / / rw - ext4",            // no source
		"1 0 9:127 / / rw shared:1 ext4 x y", // no separator
		"x 0 9:127 / / rw - ext4 a b",
		"1 0 9-127 / / rw - ext4 a b",
		"1 0",
	} {
		if _, err := ParseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMountinfo(%q): no error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`a\040b`:   "a b",
		`\134`:     `\`,
		`a\04`:     `a\04`,
		`a\0x0`:    `a\0x0`,
		`trail\`:   `trail\`,
		`\040\040`: "  ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	in := "MemTotal:       24684092 kB\nMemAvailable:   24367184 kB\nHugePages_Total:       0\nweird line\nEmpty:\n"
	got, err := ParseMeminfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"MemTotal": 24684092 * 1024, "MemAvailable": 24367184 * 1024, "HugePages_Total": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMeminfo = %v, want %v", got, want)
	}
	for _, bad := range []string{"MemTotal: x kB", "MemTotal: 1 MB"} {
		if _, err := ParseMeminfo(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMeminfo(%q): no error", bad)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	for _, s := range []string{
		"1 0 9:127 / / rw,relatime shared:1 - ext4 /dev/md127 rw\n",
		"31 25 7:0 / /run/initramfs/squash\\040fs ro - squashfs /dev/loop0 ro\n",
		"40 1 8:17 /a\\134 /m\\011 rw a b c - vfat /dev/sdb1\n",
		"1 0 9:127 / / rw - ext4 x\n2\n",
		"\\", "- - - - - - - - -", "1 0 1:1 / / o -  - a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountinfo(strings.NewReader(s))
		if err == nil {
			for _, m := range ms {
				if m.FSType == "" && m.Source == "" {
					t.Fatalf("%q: mount with neither type nor source", s)
				}
			}
		}
	})
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`a\040b`, `\`, `\12`, `\777`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.Contains(s, `\`) && Unescape(s) != s {
			t.Fatalf("changed %q", s)
		}
		if len(Unescape(s)) > len(s) {
			t.Fatalf("grew %q", s)
		}
	})
}
