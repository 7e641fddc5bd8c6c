package overlay

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"
)

// Actuator does what changes the kernel's state during release. Each
// method names its device by kernel identity; "already gone" may be
// reported as ENXIO/ENOENT/EINVAL and Release treats it as success.
type Actuator interface {
	RemoveDM(name string) error                 // DM_DEV_REMOVE
	DetachLoop(d Dev) error                     // LOOP_CLR_FD, then wait for the detach
	Unmount(mountpoint string, flags int) error // umount2
	Unlink(path string) error
	ResetZram(d Dev) error // /sys/block/zramN/reset: frees its memory
	Eject(d Dev) error     // unlock the door, then CDROMEJECT
}

// SysActuator acts on the running kernel.
type SysActuator struct{}

// RemoveDM implements Actuator.
// udev's blkid probe of a device that just changed can hold it open for a
// moment, so EBUSY is retried briefly, as dmsetup --retry does.
func (SysActuator) RemoveDM(name string) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = devmapper.Remove(name); !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("remove dm device %s: %w", name, err)
	}
	return nil
}

// DetachLoop implements Actuator.
func (SysActuator) DetachLoop(d Dev) error { return DetachLoop(d) }

// Unmount implements Actuator.
func (SysActuator) Unmount(mountpoint string, flags int) error {
	if err := unix.Unmount(mountpoint, flags); err != nil {
		return &os.PathError{Op: "umount", Path: mountpoint, Err: err}
	}
	return nil
}

// Unlink implements Actuator.
func (SysActuator) Unlink(path string) error { return os.Remove(path) }

// ResetZram implements Actuator.
func (SysActuator) ResetZram(d Dev) error {
	p := "/sys/block/" + d.Name + "/reset"
	if err := os.WriteFile(p, []byte("1\n"), 0); err != nil {
		return fmt.Errorf("reset zram %s: %w", d, err)
	}
	return nil
}

// Linux <linux/cdrom.h>; x/sys/unix does not carry them.
const (
	cdromEject    = 0x5309
	cdromLockDoor = 0x5329
)

// Eject implements Actuator. O_NONBLOCK lets the open succeed with no disc
// or an open tray. A door left locked by the live session would make the
// eject fail, so it is unlocked first; that failing alone is not fatal.
func (SysActuator) Eject(d Dev) error {
	f, err := openDevNode(d, os.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eject %s: %w", d, err)
	}
	defer f.Close()
	lockErr := unix.IoctlSetInt(int(f.Fd()), cdromLockDoor, 0)
	if err := unix.IoctlSetInt(int(f.Fd()), cdromEject, 0); err != nil {
		if lockErr != nil {
			err = errors.Join(err, fmt.Errorf("unlock door: %w", lockErr))
		}
		return &os.PathError{Op: "CDROMEJECT", Path: f.Name(), Err: err}
	}
	return nil
}

// isGone reports errors that mean the thing to release is not there any
// more: no such dm device or loop binding (ENXIO), no node (ENOENT,
// ENODEV), not a mount point (EINVAL from umount).
func isGone(err error) bool {
	return errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist)
}
