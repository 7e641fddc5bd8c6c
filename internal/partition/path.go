package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PartitionPath names partition n of disk the way the kernel (and so
// devtmpfs) does: a "p" goes between a disk name ending in a digit and the
// number (/dev/nvme0n1p3, /dev/loop0p3, /dev/mmcblk0p3), and nothing
// otherwise (/dev/sdb3, /dev/vdb3). udev's /dev/disk/by-* links use
// "-partN" instead.
func PartitionPath(disk string, n int) string {
	if strings.HasPrefix(disk, "/dev/disk/by-") {
		return fmt.Sprintf("%s-part%d", disk, n)
	}
	if base := filepath.Base(disk); base != "" {
		if c := base[len(base)-1]; c >= '0' && c <= '9' {
			return fmt.Sprintf("%sp%d", disk, n)
		}
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// WaitForPartition polls until path exists as a block device. After the
// kernel adds a partition, devtmpfs creates its node asynchronously, so the
// first mkfs or open can otherwise race it.
func WaitForPartition(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		fi, err := os.Stat(path)
		switch {
		case err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
			return nil
		case err == nil:
			return fmt.Errorf("wait for partition %s: it exists but is not a block device (%v)", path, fi.Mode())
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("wait for partition %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for partition %s: no device node after %v; check that the kernel lists it in /sys/class/block/%s and that devtmpfs is mounted on /dev",
				path, timeout, filepath.Base(path))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PartitionName is the kernel name of partition n of the disk named
// diskName (vdb, nvme0n1): vdb3, nvme0n1p3.
func PartitionName(diskName string, n int) string {
	return filepath.Base(PartitionPath("/dev/"+diskName, n))
}
