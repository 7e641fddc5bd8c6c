package engine

import (
	"errors"
	"os"
	"sort"
	"strings"

	"github.com/livemigrate/livemigrate/internal/blockdev"
	"github.com/livemigrate/livemigrate/internal/partition"
	"github.com/livemigrate/livemigrate/internal/resize"
)

// Candidate is a disk or partition the user might install onto, with the
// reason it cannot be chosen ("" when it can). The wizard lists them all,
// greying out the refused ones with their reason.
type Candidate struct {
	Path     string         `json:"path"`
	Info     *blockdev.Info `json:"info"`
	FS       *resize.Probe  `json:"fs,omitempty"`
	Refusal  *Refusal       `json:"refusal,omitempty"`
	Children []Candidate    `json:"partitions,omitempty"`
}

// Usable reports whether the candidate passed preflight.
func (c Candidate) Usable() bool { return c.Refusal == nil }

// Candidates lists the system's disks and their partitions (not loops, dm,
// md, zram or ram devices, which are never install targets) and runs
// preflight on each.
func (o Observer) Candidates(sys *System, speed Speed) []Candidate {
	h := o.host()
	ents, _ := os.ReadDir(o.path("sys/block"))
	var out []Candidate
	for _, e := range ents {
		name := e.Name()
		if skipDisk(name) {
			continue
		}
		c := o.candidate(h, sys, "/dev/"+name, speed)
		if c.Info != nil {
			for _, p := range c.Info.Partitions {
				c.Children = append(c.Children, o.candidate(h, sys, "/dev/"+p, speed))
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func skipDisk(name string) bool {
	for _, p := range []string{"loop", "dm-", "md", "zram", "ram", "nbd", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Target gathers what preflight needs to know of the device at path: its
// facts, the filesystem on it, and the partition table of the disk that
// holds it (the device itself when it is a whole disk).
func (o Observer) Target(path string) Target {
	in, err := o.host().Inspect(path)
	t := Target{Info: in, Err: err}
	if err != nil {
		return t
	}
	if p, err := resize.ProbeDevice(o.path(path)); err == nil {
		t.FS = &p
	}
	if in.Disk != "" {
		if l, err := partition.ReadTable(o.path("dev", in.Disk)); err == nil {
			t.Table = &l
		}
	}
	return t
}

func (o Observer) candidate(h blockdev.Host, sys *System, path string, speed Speed) Candidate {
	c := Candidate{Path: path}
	t := o.Target(path)
	c.Info, c.FS = t.Info, t.FS
	if _, err := Preflight(sys, t, Request{Target: path, Speed: speed}); err != nil {
		var r *Refusal
		if !errors.As(err, &r) {
			r = &Refusal{Code: ExitFailure, Device: path, Reason: err.Error()}
		}
		c.Refusal = r
	}
	return c
}
