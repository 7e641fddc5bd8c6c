package resize

import (
	"runtime"
	"testing"
)

// TestIoctlNumbers pins the request numbers to those printed by a C program
// built against linux/btrfs.h and xfslibs-dev 6.1's xfs/xfs_fs.h on amd64
// (_IOW('f', 16, __u64) for EXT4_IOC_RESIZE_FS, which is not in the UAPI).
func TestIoctlNumbers(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("numbers recorded for 64-bit asm-generic layouts, not %s", runtime.GOARCH)
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"EXT4_IOC_RESIZE_FS", ext4IocResizeFS, 0x40086610},
		{"XFS_IOC_FSGEOMETRY_V1", xfsIocFSGeometryV1, 0x80705864},
		{"XFS_IOC_FSGROWFSDATA", xfsIocFSGrowFSData, 0x4010586e},
		{"BTRFS_IOC_RESIZE", btrfsIocResize, 0x50009403},
		{"BTRFS_IOC_DEV_INFO", btrfsIocDevInfo, 0xd000941e},
		{"BTRFS_IOC_FS_INFO", btrfsIocFSInfo, 0x8400941f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
