package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// A root on the run-time mirror (livemigrate's dm-mirror method) is
// refereed by dmsetup, as the md path is by mdadm and /proc/mdstat.

// isMirrorRoot tells a root mounted from a device-mapper device (a stock
// dmsquash-live root, lm.stack=nohook) from one on an md array.
func isMirrorRoot(dev string) bool { return strings.HasPrefix(dev, "/dev/mapper/") }

// dmMirrorStatus is dmsetup's status line of a mirror: the copied and total
// regions, the legs' health, the legs; ok is false when it is no mirror.
type dmMirrorStatus struct {
	synced, regions int64
	health, legs    string
}

func dmsetupMirror(name string) (dmMirrorStatus, bool) {
	c := g.DM("status", name)
	c.Combined = true
	f := strings.Fields(string(c.Run().Stdout))
	// "0 LEN mirror 2 253:1 254:3 12/128 1 AA 1 core"
	if len(f) < 8 || f[2] != "mirror" || f[3] != "2" {
		return dmMirrorStatus{}, false
	}
	a, b, ok := strings.Cut(f[6], "/")
	s, err1 := strconv.ParseInt(a, 10, 64)
	t, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return dmMirrorStatus{}, false
	}
	return dmMirrorStatus{synced: s, regions: t, health: f[8], legs: f[4] + " " + f[5]}, true
}

// dmCompare holds livemigrate status --json's view of the mirror against
// dmsetup's, read just before and just after it: the same legs, regions
// and health, and a copied count between the two. copying is true when
// the mirror was mid-copy.
func dmCompare(name string) (ok, copying bool, detail string) {
	before, isMirror := dmsetupMirror(name)
	if !isMirror {
		return true, false, "not a mirror"
	}
	out := g.Cmd{Args: []string{"livemigrate", "status", "--json"}}.Run().Stdout
	after, _ := dmsetupMirror(name)
	var sys struct {
		Mirror *struct {
			State  string `json:"state"`
			Status *struct {
				Legs          []string
				InSyncRegions int64
				Regions       int64
				Health        string
			} `json:"mirror_status"`
		} `json:"mirror_root"`
	}
	if err := json.Unmarshal(out, &sys); err != nil || sys.Mirror == nil || sys.Mirror.Status == nil {
		return false, true, fmt.Sprintf("status --json has no mirror status (%v): %.200s", err, out)
	}
	st := sys.Mirror.Status
	copying = before.synced < before.regions
	detail = fmt.Sprintf("dmsetup %d/%d %s [%s] then %d/%d; status %d/%d %s [%s]", before.synced, before.regions, before.health, before.legs,
		after.synced, after.regions, st.InSyncRegions, st.Regions, st.Health, strings.Join(st.Legs, " "))
	// The health may change between the reads too (a leg failing).
	ok = st.Regions == before.regions && (st.Health == before.health || st.Health == after.health) && strings.Join(st.Legs, " ") == before.legs &&
		st.InSyncRegions >= before.synced && st.InSyncRegions <= max(after.synced, before.synced)
	return ok, copying, detail
}

// sampleMirrorCopy is sampleCopy for the mirror: dmsetup's copied regions
// every 100 ms while the copy runs, as bytes (regions times the region
// size the table says).
func sampleMirrorCopy(name string, stop <-chan struct{}) string {
	type pt struct {
		at   time.Time
		done int64
	}
	var first, last pt
	n := 0
	var regionBytes int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, ok := dmsetupMirror(name); ok && st.synced < st.regions || ok && n > 0 && st.synced == st.regions && last.done < st.synced*regionBytes {
			if regionBytes == 0 {
				c := g.DM("table", name)
				f := strings.Fields(string(c.Run().Stdout))
				// "0 LEN mirror core 1 REGION 2 ..."
				if len(f) > 5 {
					r, _ := strconv.ParseInt(f[5], 10, 64)
					regionBytes = r * 512
				}
			}
			now := time.Now()
			d := st.synced * regionBytes
			if n == 0 {
				first = pt{now, d}
			}
			last = pt{now, d}
			n++
		}
		select {
		case <-stop:
			secs := last.at.Sub(first.at).Seconds()
			bytes := last.done - first.done
			bps := rate(bytes, secs)
			return fmt.Sprintf("bytes=%d seconds=%.2f bps=%.0f samples=%d region_bytes=%d", bytes, secs, bps, n, regionBytes)
		case <-tick.C:
		}
	}
}
