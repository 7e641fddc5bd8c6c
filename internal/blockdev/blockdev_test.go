package blockdev

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const mountinfo = `22 1 9:127 / / rw,relatime shared:1 - ext4 /dev/md127 rw
23 22 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
30 23 11:0 / /run/initramfs/live ro,relatime shared:12 - iso9660 /dev/sr0 ro,nojoliet
31 23 7:0 / /run/initramfs/squashfs ro,relatime shared:13 - squashfs /dev/loop0 ro
40 22 8:17 / /media/my\040disk rw,relatime shared:20 master:3 - ext4 /dev/sdb1 rw
41 22 8:17 /sub /mnt/bind rw,relatime - ext4 /dev/sdb1 rw
42 22 0:45 / /srv rw,relatime - btrfs /dev/vdb rw
`

func TestSwapUses(t *testing.T) {
	swaps := "Filename\tType\tSize\tUsed\tPriority\n/dev/sdc2  partition\t1048572\t0\t-2\n"
	if !swapUses(swaps, []string{"sdc", "sdc1", "sdc2"}) {
		t.Error("sdc2 swap not seen")
	}
	if swapUses(swaps, []string{"sdb"}) {
		t.Error("sdb reported as swap")
	}
}

// fakeHost builds /sys and /proc for a disk sdb with partitions sdb1
// (mounted) and sdb2 (held by md127), a virtio disk vdb, and a 4Kn disk.
func fakeHost(t *testing.T) Host {
	t.Helper()
	root := t.TempDir()
	w := func(rel, v string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	sdb := "sys/devices/pci0000:00/0000:00:1d.0/usb2/2-1/host6/target6:0:0/6:0:0:0/block/sdb"
	w(sdb+"/dev", "8:16")
	w(sdb+"/size", "62521344")
	w(sdb+"/ro", "0")
	w(sdb+"/removable", "1")
	w(sdb+"/queue/logical_block_size", "512")
	w(sdb+"/queue/physical_block_size", "4096")
	w(sdb+"/device/model", "Flash Disk")
	w(sdb+"/sdb1/dev", "8:17")
	w(sdb+"/sdb1/partition", "1")
	w(sdb+"/sdb1/size", "2048000")
	w(sdb+"/sdb1/ro", "0")
	w(sdb+"/sdb2/dev", "8:18")
	w(sdb+"/sdb2/partition", "2")
	w(sdb+"/sdb2/size", "4096000")
	w(sdb+"/sdb2/ro", "0")
	if err := os.MkdirAll(filepath.Join(root, sdb, "sdb2/holders/md127"), 0o755); err != nil {
		t.Fatal(err)
	}
	link("../../"+strings.TrimPrefix(sdb, "sys/"), "sys/dev/block/8:16")
	link("../../"+strings.TrimPrefix(sdb, "sys/")+"/sdb1", "sys/dev/block/8:17")
	link("../../"+strings.TrimPrefix(sdb, "sys/")+"/sdb2", "sys/dev/block/8:18")
	vdb := "sys/devices/pci0000:00/0000:00:05.0/virtio3/block/vdb"
	w(vdb+"/dev", "254:16")
	w(vdb+"/size", "4194304")
	w(vdb+"/ro", "1")
	w(vdb+"/queue/logical_block_size", "4096")
	link("../../"+strings.TrimPrefix(vdb, "sys/"), "sys/dev/block/254:16")
	w("proc/self/mountinfo", strings.TrimSpace(mountinfo))
	w("proc/swaps", "Filename\tType\tSize\tUsed\tPriority")
	return Host{Root: root}
}

func TestInspectDev(t *testing.T) {
	h := fakeHost(t)
	disk, err := h.InspectDev("/dev/sdb", 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	if disk.Name != "sdb" || disk.Disk != "sdb" || disk.IsPartition || disk.SizeBytes != 62521344*512 {
		t.Errorf("disk = %+v", disk)
	}
	if disk.LogicalBlockSize != 512 || disk.PhysicalBlockSize != 4096 || !disk.Removable || disk.Transport != "usb" || disk.Model != "Flash Disk" {
		t.Errorf("disk details = %+v", disk)
	}
	if !reflect.DeepEqual(disk.Partitions, []string{"sdb1", "sdb2"}) {
		t.Errorf("partitions = %q", disk.Partitions)
	}
	if !reflect.DeepEqual(disk.PartMounts, []string{"/dev/sdb1 on /media/my disk", "/dev/sdb1 on /mnt/bind"}) {
		t.Errorf("partition mounts = %q", disk.PartMounts)
	}
	if !reflect.DeepEqual(disk.PartHolders, []string{"sdb2 held by md127"}) {
		t.Errorf("partition holders = %q", disk.PartHolders)
	}
	p1, err := h.InspectDev("/dev/sdb1", 8, 17)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.IsPartition || p1.Disk != "sdb" || p1.LogicalBlockSize != 512 || len(p1.Mounts) != 2 {
		t.Errorf("sdb1 = %+v", p1)
	}
	p2, _ := h.InspectDev("/dev/sdb2", 8, 18)
	if !reflect.DeepEqual(p2.Holders, []string{"md127"}) || len(p2.Mounts) != 0 {
		t.Errorf("sdb2 = %+v", p2)
	}
	v, _ := h.InspectDev("/dev/vdb", 254, 16)
	// btrfs: an anonymous device number (0:45); the source names vdb.
	if !v.ReadOnly || v.LogicalBlockSize != 4096 || v.Transport != "virtio" || !reflect.DeepEqual(v.Mounts, []string{"/srv"}) {
		t.Errorf("vdb = %+v", v)
	}
	if _, err := h.InspectDev("/dev/nope", 1, 99); err == nil {
		t.Error("unknown device accepted")
	}
}

func TestInspectKinds(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "file")
	os.WriteFile(reg, nil, 0o644)
	h := Host{Root: "/"}
	if _, err := h.Inspect(reg); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("regular file: %v", err)
	}
	if _, err := h.Inspect(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path accepted")
	}
	if _, err := h.Inspect("/dev/null"); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/null: %v", err)
	}
	if _, err := h.Inspect(""); err == nil {
		t.Error("empty path accepted")
	}
}
