package main

import (
	"fmt"
	"strconv"
	"time"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioRefuseUEFI: the live system started by UEFI (OVMF, refuse.sh's
// second boot). A partition install must be refused (28) before anything is
// written, since its boot loader would have to go onto an EFI system
// partition shared with the disk's other systems; the whole disk is still
// offered, with its own ESP. The host checks the disk's checksum.
func scenarioRefuseUEFI() int {
	if g.Exists("/sys/firmware/efi") {
		g.Fact("uefi", "yes")
	} else {
		g.Fact("uefi", "no")
	}
	d := g.DiskBySerial("rf-uefi")
	g.Fact("uefi_disk", d)
	if d == "" {
		return 1
	}
	migrate := func(args ...string) g.Result {
		return g.Cmd{Args: append([]string{"livemigrate", "migrate"}, args...), Timeout: 120 * time.Second}.Run()
	}
	r := migrate("--target", d+"2", "--yes")
	g.Fact("uefi_part", strconv.Itoa(r.RC)+" "+r.FirstErr())
	g.Fact("uefi_part_stdout", strconv.Itoa(len(r.Stdout)))
	r = migrate("--target", d, "--dry-run")
	g.Fact("uefi_disk_dry", fmt.Sprintf("%d %d EFI lines; %s", r.RC, countLinesWith(r.Stdout, "EFI"), r.FirstErr()))
	return 0
}
