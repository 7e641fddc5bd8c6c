package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CDROM_DRIVE_STATUS and its answers (linux/cdrom.h).
const (
	cdromDriveStatus = 0x5326
	cdsSlotCurrent   = 0x7fffffff // CDSL_CURRENT
)

var cdStatusNames = map[int]string{0: "no_info", 1: "no_disc", 2: "tray_open", 3: "drive_not_ready", 4: "disc_ok"}

// cmdCDStatus asks the drive itself whether a disc is in it: the referee for
// livemigrate's eject, independent of what livemigrate reports and of any
// cached blocks of the device.
func cmdCDStatus(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cdstatus", flag.ContinueOnError)
	dev := fs.String("dev", "/dev/sr0", "CD-ROM device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// O_NONBLOCK opens a drive with no disc or an open tray.
	f, err := os.OpenFile(*dev, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := unix.IoctlRetInt(int(f.Fd()), cdromDriveStatus)
	if err != nil {
		// CDROM_DRIVE_STATUS takes the slot as its argument, not a pointer.
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cdromDriveStatus, cdsSlotCurrent)
		if errno != 0 {
			return fmt.Errorf("CDROM_DRIVE_STATUS on %s: %w", *dev, errno)
		}
		st = int(r)
	}
	name, ok := cdStatusNames[st]
	if !ok {
		name = fmt.Sprintf("unknown_%d", st)
	}
	fmt.Fprintf(stdout, "cd_status=%s\n", name)
	return nil
}
