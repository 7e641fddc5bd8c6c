package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	devmapper "github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/livemigrate/livemigrate/internal/procfs"
)

// SetupZram makes a zram device of size bytes (uncompressed capacity) for a
// compressed COW and returns it. It takes the first algorithm in algos the
// kernel offers. zram must be loaded (modprobe zram).
func SetupZram(size uint64, algos []string) (Dev, error) {
	if size == 0 {
		return Dev{}, errors.New("set up zram: size 0")
	}
	name, err := freeZram()
	if err != nil {
		return Dev{}, fmt.Errorf("set up zram: %w", err)
	}
	dir := "/sys/block/" + name
	offered, _ := os.ReadFile(dir + "/comp_algorithm")
	for _, a := range algos {
		if strings.Contains(" "+strings.NewReplacer("[", "", "]", "").Replace(string(offered))+" ", " "+a+" ") {
			if err := os.WriteFile(dir+"/comp_algorithm", []byte(a), 0); err == nil {
				break
			}
		}
	}
	if err := os.WriteFile(dir+"/disksize", []byte(strconv.FormatUint(size, 10)), 0); err != nil {
		return Dev{}, fmt.Errorf("set up %s: disksize %d: %w", name, size, err)
	}
	d, err := Host{Root: "/"}.resolve(Dev{Name: name})
	if err != nil {
		return Dev{}, fmt.Errorf("set up %s: %w", name, err)
	}
	if err := ensureBlockNode(d.Path, d.Major, d.Minor); err != nil {
		return Dev{}, fmt.Errorf("set up %s: %w", name, err)
	}
	return d, nil
}

// freeZram returns an unused zram device (disksize 0), adding one through
// zram-control when all are taken.
func freeZram() (string, error) {
	ms, _ := filepath.Glob("/sys/block/zram*")
	for _, m := range ms {
		if v, err := os.ReadFile(m + "/disksize"); err == nil && strings.TrimSpace(string(v)) == "0" {
			return filepath.Base(m), nil
		}
	}
	b, err := os.ReadFile("/sys/class/zram-control/hot_add")
	if err != nil {
		return "", fmt.Errorf("no free zram device and cannot add one (is the zram module loaded?): %w", err)
	}
	return "zram" + strings.TrimSpace(string(b)), nil
}

// ReplaceCOW rebuilds the snapshot name over the same origin with newCOW as
// its copy-on-write store, and returns the old COW device so the caller can
// release it. It is for the initramfs, before anything mounted the
// snapshot: it refuses when the snapshot is open, since its data would be
// lost.
func ReplaceCOW(name, newCOW string) (old Dev, err error) {
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: %w", name, err)
	}
	if info.OpenCount > 0 {
		return Dev{}, fmt.Errorf("replace the COW of %s: it is open (%d users); only an unused snapshot can change its COW", name, info.OpenCount)
	}
	h := Host{Root: "/"}
	snap, err := h.resolve(Dev{Major: unix.Major(info.DevNo), Minor: unix.Minor(info.DevNo)})
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: %w", name, err)
	}
	ts, err := KernelQuerier{}.DMTable(snap)
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: %w", name, err)
	}
	if len(ts) != 1 || ts[0].Type != "snapshot" {
		return Dev{}, fmt.Errorf("replace the COW of %s: not a snapshot (%s)", name, describeTargets(ts))
	}
	origin, cow, persistent, chunk, err := ParseSnapshotTable(ts[0].Params)
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: %w", name, err)
	}
	omaj, omin, err := procfs.ParseDevNumber(origin)
	if err != nil {
		return Dev{}, err
	}
	cmaj, cmin, err := procfs.ParseDevNumber(cow)
	if err != nil {
		return Dev{}, err
	}
	od, err := h.resolve(Dev{Major: omaj, Minor: omin})
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: origin: %w", name, err)
	}
	old, err = h.resolve(Dev{Major: cmaj, Minor: cmin})
	if err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: old COW: %w", name, err)
	}
	if err := ensureBlockNode(od.Path, od.Major, od.Minor); err != nil {
		return Dev{}, err
	}
	if err := removeDMRetry(name); err != nil {
		return Dev{}, fmt.Errorf("replace the COW of %s: remove it: %w", name, err)
	}
	opts := SnapshotOptions{Persistent: true, Overflow: true, ChunkSectors: chunk}
	if _, err := CreateSnapshotOpts(name, od.Path, newCOW, opts); err != nil {
		// Put the old snapshot back so the live boot can go on as before.
		opts.Persistent, opts.Overflow = persistent, persistent
		if ensureBlockNode(old.Path, old.Major, old.Minor) == nil {
			if _, rerr := CreateSnapshotOpts(name, od.Path, old.Path, opts); rerr != nil {
				return Dev{}, fmt.Errorf("replace the COW of %s: %w; restoring the old snapshot also failed: %v", name, err, rerr)
			}
		}
		return Dev{}, fmt.Errorf("replace the COW of %s (old one restored): %w", name, err)
	}
	return old, nil
}

// removeDMRetry removes a dm device, retrying while udev briefly holds it.
func removeDMRetry(name string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = devmapper.Remove(name); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}
