// Package overlay owns the live stack: everything under the root array's
// live leg. At run time that is the device-mapper snapshot live-rw, its
// origin (a read-only loop over LiveOS/rootfs.img, sometimes shared with a
// linear live-base), its copy-on-write store (a loop over a RAM-backed
// file, a zram device or a real block device), the squashfs that holds
// rootfs.img and the medium that holds the squashfs.
//
// The package discovers that stack from sysfs and /proc, measures how full
// the COW is, and releases the stack piece by piece once md no longer needs
// the live leg, so the RAM and the medium are given back. On the boot side it
// builds the loops and the snapshot inside an initramfs without udev.
//
// Reads of /sys, /proc and /dev go through Host, which is rooted at a
// directory so tests can use a fake tree. Anything that changes the kernel's
// state goes through Actuator; dm and loop queries go through Querier.
package overlay
