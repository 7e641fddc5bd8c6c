package fileroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// live-boot's mounts, as a trixie live-build medium shows them.
const liveBootMountinfo = `22 1 0:21 / / rw,noatime - overlay overlay rw,lowerdir=/run/live/rootfs/lmtest.squashfs:/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work,redirect_dir=on
24 22 0:5 / /dev rw,nosuid - devtmpfs udev rw
26 22 0:24 / /run rw,nosuid,nodev - tmpfs tmpfs rw
30 26 11:0 / /run/live/medium ro,noatime - iso9660 /dev/sr0 ro
31 26 7:0 / /run/live/rootfs/filesystem.squashfs ro,noatime - squashfs /dev/loop0 ro
32 26 7:1 / /run/live/rootfs/lmtest.squashfs ro,noatime - squashfs /dev/loop1 ro
33 26 0:27 / /run/live/overlay rw,noatime - tmpfs tmpfs rw,size=1536000k
`

func TestFindLiveBoot(t *testing.T) {
	ms, err := procfs.ParseMountinfo(strings.NewReader(liveBootMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	sys := t.TempDir()
	for _, l := range []struct{ loop, file string }{{"loop0", "/run/live/medium/live/filesystem.squashfs"}, {"loop1", "/run/live/medium/live/lmtest.squashfs"}} {
		d := filepath.Join(sys, "sys/block", l.loop, "loop")
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "backing_file"), []byte(l.file+"\n"), 0o644)
	}
	r, err := Find(sys, ms)
	if err != nil {
		t.Fatal(err)
	}
	if r.FSType != "overlay" || r.Medium != "/dev/sr0" || !r.MediumIsCD || r.UpperMount != "/run/live/overlay" {
		t.Errorf("root %+v", r)
	}
	var got []string
	for _, m := range r.Live {
		got = append(got, m.MountPoint+"="+m.Role+"/"+m.Loop)
	}
	// Deepest first, the medium last: the order they can be unmounted in.
	want := "/run/live/rootfs/lmtest.squashfs=lower layer 1//dev/loop1 /run/live/rootfs/filesystem.squashfs=lower layer 2//dev/loop0 /run/live/overlay=upper layer/ /run/live/medium=medium/"
	if strings.Join(got, " ") != want {
		t.Errorf("live mounts:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	// Not a file root: nothing.
	ms[0].FSType = "ext4"
	if r, err := Find(sys, ms); r != nil || err != nil {
		t.Errorf("ext4 root: %+v, %v", r, err)
	}
}

func TestMeasureCountsLinksOnce(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "a"), make([]byte, 64<<10), 0o644)
	os.Link(filepath.Join(d, "a"), filepath.Join(d, "b"))
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	u, err := Measure(d)
	if err != nil {
		t.Fatal(err)
	}
	// The root, sub, a and b are four names; a's blocks count once.
	if u.Entries != 4 || u.Bytes < 64<<10 || u.Bytes >= 2*(64<<10) {
		t.Errorf("usage %+v", u)
	}
}
