// Package resize owns detecting the filesystem on a block device and growing
// it online to fill the device, through each filesystem's own kernel ioctl.
//
// It is the last step of a migration: by the time it runs, the data already
// lives on the target and the array has been grown. A failure here therefore
// never loses data; errors say so and tell the user how to finish by hand.
package resize

import (
	"errors"
	"fmt"
)

// FSType names a filesystem as blkid and mount(8) do.
type FSType string

// Filesystems this package can recognise.
const (
	Unknown FSType = ""
	Ext2    FSType = "ext2"
	Ext3    FSType = "ext3"
	Ext4    FSType = "ext4"
	XFS     FSType = "xfs"
	Btrfs   FSType = "btrfs"
)

var (
	// ErrNoFilesystem means no supported superblock was found.
	ErrNoFilesystem = errors.New("no ext2/ext3/ext4, XFS or btrfs superblock found")
	// ErrUnsupported means the filesystem cannot be grown online by this tool.
	ErrUnsupported = errors.New("online growth not supported")
	// ErrTooLarge means the device is larger than the filesystem can ever address.
	ErrTooLarge = errors.New("filesystem cannot address the whole device")
)

// Supported returns nil if Grow can grow t online. Otherwise the error names
// the filesystem and tells the user what to do; it wraps ErrUnsupported.
func Supported(t FSType) error {
	switch t {
	case Ext2, Ext3, Ext4, XFS, Btrfs:
		return nil
	case Unknown:
		return fmt.Errorf("filesystem type not recognised: %w; the migration itself is complete, "+
			"grow the filesystem by hand with its own tool to use the rest of the disk", ErrUnsupported)
	default:
		return fmt.Errorf("%s: %w; the migration itself is complete, "+
			"grow the filesystem by hand with its own tool to use the rest of the disk", t, ErrUnsupported)
	}
}
