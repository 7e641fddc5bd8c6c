package engine

import (
	"github.com/livemigrate/livemigrate/internal/bootopt"
	"github.com/livemigrate/livemigrate/internal/mdraid"
	"github.com/livemigrate/livemigrate/internal/procfs"
)

// The initrd side of the md-hook method: what 'livemigrate boot' runs
// before / is mounted, with no udev and usually no mdadm.

// BootWrap builds the array the md-hook method migrates later: leg in
// slot 0 of a RAID1 in build mode (no superblock), slot 1 empty for the
// target. It returns the array's node; a bad array name is a *Refusal
// (ExitUsage).
func BootWrap(leg, md string) (string, error) {
	name, err := mdraid.NameOf(md)
	if err != nil {
		return "", &Refusal{Code: ExitUsage, Reason: err.Error()}
	}
	if err := mdraid.Default.Build(name, []string{leg, ""}); err != nil {
		return "", err
	}
	return "/dev/" + name, nil
}

// BootOptions turns the kernel command line into the shell assignments the
// boot hook reads; sizes relative to RAM are resolved against MemTotal.
func BootOptions(cmdline string) string {
	var mem uint64
	if m, err := procfs.ReadMeminfo("/"); err == nil {
		mem = m["MemTotal"]
	}
	return bootopt.Parse(cmdline).Shell(mem)
}
