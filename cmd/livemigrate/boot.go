package main

import (
	"fmt"
	"io"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/overlay"
)

// The boot subcommands run inside the initramfs, where there is no udev and
// usually no dmsetup or mdadm: the same static binary does the dm and md
// work so the boot scripts stay thin.

const bootUsage = `Usage: livemigrate boot COMMAND [options]

Initrd helpers. They are called by the livemigrate boot hooks and are not
meant to be run on a booted system.

Commands:
  snapshot --origin DEV --cow DEV [--name live-rw] [--chunk SECTORS] [--transient]
        build the live snapshot (dm-snapshot of the read-only origin with a
        copy-on-write store) and print its device node
  wrap --leg DEV [--md /dev/md127]
        build a RAID1 array in build mode (no superblock) with DEV in slot 0
        and slot 1 missing, and print the array's device node
`

func runBoot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, bootUsage)
		return engine.ExitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, bootUsage)
		return 0
	case "snapshot":
		return bootSnapshot(args[1:], stdout, stderr)
	case "wrap":
		return bootWrap(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "livemigrate boot: unknown command %q\n\n%s", args[0], bootUsage)
	return engine.ExitUsage
}

func bootSnapshot(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot snapshot", "--origin DEV --cow DEV [--name NAME] [--chunk SECTORS] [--transient]",
		"Build the live snapshot NAME over the read-only origin with a copy-on-write\nstore, like dracut's dmsquash-live does, and print /dev/mapper/NAME.")
	origin := fs.String("origin", "", "read-only origin device (loop over LiveOS/rootfs.img)")
	cow := fs.String("cow", "", "copy-on-write device (loop over a RAM file, or zram)")
	name := fs.String("name", "live-rw", "device-mapper name")
	chunk := fs.Uint64("chunk", 8, "snapshot chunk size in 512-byte sectors")
	transient := fs.Bool("transient", false, "non-persistent COW (N) instead of persistent (P)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if *origin == "" || *cow == "" {
		fmt.Fprintf(stderr, "livemigrate boot snapshot: --origin and --cow are required\n")
		return engine.ExitUsage
	}
	d, err := overlay.CreateSnapshot(*name, *origin, *cow, !*transient, *chunk)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot snapshot: %v\n", err)
		return engine.ExitFailure
	}
	fmt.Fprintln(stdout, d.Path)
	return 0
}

func bootWrap(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot wrap", "--leg DEV [--md /dev/md127]",
		"Wrap DEV in an md RAID1 array in build mode: no superblock is written, DEV\nis slot 0 and slot 1 stays empty for the target. Prints the array node.")
	leg := fs.String("leg", "", "the live root device, normally /dev/mapper/live-rw")
	md := fs.String("md", "/dev/md127", "the md device to create")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if *leg == "" {
		fmt.Fprintf(stderr, "livemigrate boot wrap: --leg is required\n")
		return engine.ExitUsage
	}
	name, err := mdraid.NameOf(*md)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot wrap: %v\n", err)
		return engine.ExitUsage
	}
	if err := mdraid.Default.Build(name, []string{*leg, ""}); err != nil {
		fmt.Fprintf(stderr, "livemigrate boot wrap: %v\n", err)
		return engine.ExitFailure
	}
	fmt.Fprintln(stdout, "/dev/"+name)
	return 0
}
