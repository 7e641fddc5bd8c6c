package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/livemigrate/livemigrate/internal/bootopt"

	"github.com/livemigrate/livemigrate/internal/engine"
	"github.com/livemigrate/livemigrate/internal/livestack"
	"github.com/livemigrate/livemigrate/internal/overlay"
	"github.com/livemigrate/livemigrate/internal/procfs"
)

// The boot subcommands run inside the initramfs, where there is no udev and
// usually no dmsetup or mdadm: the same static binary does the dm and md
// work so the boot scripts stay thin.

const bootUsage = `Usage: livemigrate boot COMMAND [options]

Initrd helpers. They are called by the livemigrate boot hooks and are not
meant to be run on a booted system.

Commands:
  options [--cmdline FILE]
        read the rd.livemigrate.* options from the kernel command line and
        print them as shell assignments (LM_WRAP, LM_MD, LM_COW, LM_COWSIZE,
        LM_LIVE, LM_PROBLEMS); invalid options are named in LM_PROBLEMS and
        turn the wrap off
  loop --file FILE [--read-only] [--create SIZE]
        attach FILE to a free loop device (creating it sparse first with
        --create) and print the loop's node
  zram --size BYTES
        set up a zram device for a compressed COW and print its node
  recow --name live-rw --cow DEV [--detach-old]
        give an unused snapshot a new COW store (e.g. zram) and print the old
  snapshot --origin DEV --cow DEV [--name live-rw] [--chunk SECTORS] [--transient]
        build the live snapshot (dm-snapshot of the read-only origin with a
        copy-on-write store) and print its device node
  wrap --leg DEV [--md /dev/md127]
        build a RAID1 array in build mode (no superblock) with DEV in slot 0
        and slot 1 missing, and print the array's device node
  live [--cmdline FILE]
        the whole boot step for systemd initrds (livemigrate-live.service):
        find and mount the medium named by root=live:, attach the squashfs
        and LiveOS/rootfs.img, build live-rw over a RAM or zram COW and wrap
        it in md; if the array cannot be built, / falls back to live-rw
  generator NORMAL-DIR [EARLY-DIR LATE-DIR]
        systemd generator (also run as livemigrate-generator): for
        root=live: write sysroot.mount and enable livemigrate-live.service
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
	case "options":
		return bootOptions(args[1:], stdout, stderr)
	case "zram":
		return bootZram(args[1:], stdout, stderr)
	case "loop":
		return bootLoop(args[1:], stdout, stderr)
	case "recow":
		return bootRecow(args[1:], stdout, stderr)
	case "wrap":
		return bootWrap(args[1:], stdout, stderr)
	case "live":
		return bootLive(args[1:], stdout, stderr)
	case "generator":
		return bootGenerator(args[1:], stdout, stderr)
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
	node, err := engine.BootWrap(*leg, *md)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot wrap: %v\n", err)
		if engine.ExitCode(err) == engine.ExitUsage {
			return engine.ExitUsage
		}
		return engine.ExitFailure
	}
	fmt.Fprintln(stdout, node)
	return 0
}

func bootOptions(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot options", "[--cmdline FILE]",
		"Print livemigrate's kernel command line options as shell assignments.")
	file := fs.String("cmdline", "/proc/cmdline", "where to read the command line")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot options: %v\n", err)
		return engine.ExitFailure
	}
	fmt.Fprint(stdout, engine.BootOptions(string(b)))
	return 0
}

func bootZram(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot zram", "--size BYTES", "Set up a zram device (compressed RAM) and print its node.")
	size := fs.String("size", "", "uncompressed capacity, e.g. 2G or 2147483648")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	n, err := bootopt.ParseSize(*size)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot zram: --size %q: %v\n", *size, err)
		return engine.ExitUsage
	}
	// zstd compresses best, lzo-rle and lz4 are faster; take what the kernel has.
	d, err := overlay.SetupZram(n, []string{"zstd", "lzo-rle", "lz4", "lzo"})
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot zram: %v\n", err)
		return engine.ExitFailure
	}
	fmt.Fprintln(stdout, d.Path)
	return 0
}

func bootRecow(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot recow", "--name NAME --cow DEV [--detach-old]",
		"Rebuild the unused snapshot NAME over the same origin with DEV as its COW,\nand print the old COW device.")
	name := fs.String("name", "live-rw", "the snapshot's device-mapper name")
	cow := fs.String("cow", "", "the new COW device")
	detach := fs.Bool("detach-old", false, "detach the old COW if it is a loop device")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if *cow == "" {
		fmt.Fprintf(stderr, "livemigrate boot recow: --cow is required\n")
		return engine.ExitUsage
	}
	old, err := overlay.ReplaceCOW(*name, *cow)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot recow: %v\n", err)
		return engine.ExitFailure
	}
	if *detach && strings.HasPrefix(old.Name, "loop") {
		if err := overlay.DetachLoop(old); err != nil && !errors.Is(err, overlay.ErrDetachDeferred) {
			fmt.Fprintf(stderr, "livemigrate boot recow: detach the old COW %s: %v\n", old.Path, err)
		}
	}
	fmt.Fprintln(stdout, old.Path)
	return 0
}

func bootLoop(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot loop", "--file FILE [--read-only] [--create SIZE]",
		"Attach FILE to a free loop device and print the device. With --create the\nfile is first made, sparse, of SIZE: the way a RAM-backed COW file is made.")
	file := fs.String("file", "", "the backing file")
	ro := fs.Bool("read-only", false, "attach read-only")
	create := fs.String("create", "", "create FILE sparse with this size first (e.g. 2G)")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	if *file == "" {
		fmt.Fprintf(stderr, "livemigrate boot loop: --file is required\n")
		return engine.ExitUsage
	}
	if *create != "" {
		n, err := bootopt.ParseSize(*create)
		if err != nil {
			fmt.Fprintf(stderr, "livemigrate boot loop: --create %q: %v\n", *create, err)
			return engine.ExitUsage
		}
		f, err := os.OpenFile(*file, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		if err == nil {
			err = f.Truncate(int64(n))
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "livemigrate boot loop: create %s: %v\n", *file, err)
			return engine.ExitFailure
		}
	}
	d, err := overlay.SetupLoop(*file, *ro)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot loop: %v\n", err)
		return engine.ExitFailure
	}
	fmt.Fprintln(stdout, d.Path)
	return 0
}

func bootLive(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("boot live", "[--cmdline FILE]",
		"Build the live stack for root=live: (medium, squashfs, live-rw, md) the\nway dracut's dmsquash-live lays it out. Run by livemigrate-live.service.")
	file := fs.String("cmdline", "/proc/cmdline", "where to read the command line")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the medium's node")
	if code, done := parse(fs, args, stderr); done {
		return code
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate boot live: %v\n", err)
		return engine.ExitFailure
	}
	o := bootopt.Parse(string(b))
	if len(o.Problems) > 0 {
		fmt.Fprintf(stderr, "livemigrate: invalid boot options: %s\n", strings.Join(o.Problems, "; "))
	}
	var mem uint64
	if m, err := procfs.ReadMeminfo("/"); err == nil {
		mem = m["MemTotal"]
	}
	r, err := livestack.Build(livestack.Host{}, livestack.Config{Options: o, MemTotal: mem, MediumWait: *wait}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate: %v\nlivemigrate: the live root cannot be set up; the boot stops here\n", err)
		return engine.ExitFailure
	}
	fmt.Fprintln(stderr, r.Report())
	if r.Fallback != "" && len(o.Problems) > 0 {
		time.Sleep(5 * time.Second) // let the reason be read on a console that scrolls on
	}
	return 0
}

func bootGenerator(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: livemigrate boot generator NORMAL-DIR [EARLY-DIR LATE-DIR]\n")
		return engine.ExitUsage
	}
	// Only in the initrd: on the booted system / is already mounted.
	if _, err := os.Stat("/etc/initrd-release"); err != nil && os.Getenv("LM_GENERATOR_ANYWHERE") == "" {
		return 0
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fmt.Fprintf(stderr, "livemigrate-generator: %v\n", err)
		return engine.ExitFailure
	}
	p, err := livestack.Generate(string(b))
	for _, n := range p.Notes {
		fmt.Fprintf(stderr, "livemigrate-generator: %s\n", n)
	}
	if err != nil {
		return engine.ExitFailure
	}
	if err := p.Write(args[0]); err != nil {
		fmt.Fprintf(stderr, "livemigrate-generator: %v\n", err)
		return engine.ExitFailure
	}
	return 0
}
