package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// The JSON side of mdcompare is read tolerantly: livemigrate's status
// schema is still being written, so fields are looked up under several
// plausible names (case, '_' and '-' ignored), either at the top level or
// under an "array"/"md"/"raid" object. Once the schema is documented the
// candidate lists can shrink to the real names.
var (
	keysArrayObj = []string{"array", "md", "raid", "mdarray"}
	keysLevel    = []string{"level", "raidlevel", "personality"}
	keysSizeKiB  = []string{"arraysizekib", "sizekib", "arraysizekb", "sizekb"}
	keysSizeSec  = []string{"arraysizesectors", "sizesectors", "sectors"}
	keysSizeB    = []string{"arraysizebytes", "sizebytes", "arraysize", "size", "bytes"}
	keysRaidDevs = []string{"raiddisks", "raiddevices", "slots", "ndisks"}
	keysDegraded = []string{"degraded"}
	keysMembers  = []string{"members", "devices", "disks", "legs", "components"}
	keysMemDev   = []string{"device", "path", "dev", "devname", "name"}
	keysMemState = []string{"state", "states", "role", "status"}
	keysMemSlot  = []string{"slot", "raiddisk", "raiddevice", "index"}
	keysMemMajor = []string{"major"}
	keysMemMinor = []string{"minor"}
	keysMemDevNo = []string{"devno", "devt", "majmin", "devnum"}
)

// statusView is what mdcompare could find in livemigrate's JSON.
type statusView struct {
	Level       string
	SizeKiB     int64 // -1: not given
	RaidDevices int   // -1: not given
	Degraded    int   // -1: not given
	Members     []statusMember
}

type statusMember struct {
	Device       string
	State        []string
	Slot         int  // -1: none
	HasSlot      bool // the JSON has a slot field (a number, -1 included)
	Major, Minor uint32
	HasDevNo     bool
}

func normKey(k string) string {
	k = strings.ToLower(k)
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(k)
}

// lookup returns obj's value under the first candidate key present.
func lookup(obj map[string]any, cands []string) (any, bool) {
	idx := map[string]any{}
	for k, v := range obj {
		idx[normKey(k)] = v
	}
	for _, c := range cands {
		if v, ok := idx[c]; ok && v != nil {
			return v, true
		}
	}
	return nil, false
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case float64:
		return int64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func asWords(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' })
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// parseStatusJSON extracts a statusView from livemigrate status --json.
func parseStatusJSON(data []byte) (*statusView, error) {
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("status JSON: %w", err)
	}
	obj := top
	if _, ok := lookup(top, keysLevel); !ok {
		if v, ok := lookup(top, keysArrayObj); ok {
			if m, ok := v.(map[string]any); ok {
				obj = m
			}
		}
	}
	sv := &statusView{SizeKiB: -1, RaidDevices: -1, Degraded: -1}
	if v, ok := lookup(obj, keysLevel); ok {
		switch x := v.(type) {
		case string:
			sv.Level = x
		case float64:
			sv.Level = fmt.Sprintf("raid%d", int(x))
		}
	}
	if v, ok := lookup(obj, keysSizeKiB); ok {
		if n, ok := asInt(v); ok {
			sv.SizeKiB = n
		}
	} else if v, ok := lookup(obj, keysSizeSec); ok {
		if n, ok := asInt(v); ok {
			sv.SizeKiB = n / 2
		}
	} else if v, ok := lookup(obj, keysSizeB); ok {
		if n, ok := asInt(v); ok {
			sv.SizeKiB = n / 1024
		}
	}
	if v, ok := lookup(obj, keysRaidDevs); ok {
		if n, ok := asInt(v); ok {
			sv.RaidDevices = int(n)
		}
	}
	if v, ok := lookup(obj, keysDegraded); ok {
		if n, ok := asInt(v); ok {
			sv.Degraded = int(n)
		}
	}
	if v, ok := lookup(obj, keysMembers); ok {
		list, _ := v.([]any)
		for _, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			sm := statusMember{Slot: -1}
			if v, ok := lookup(m, keysMemDev); ok {
				sm.Device, _ = v.(string)
			}
			if v, ok := lookup(m, keysMemState); ok {
				sm.State = asWords(v)
			}
			if v, ok := lookup(m, keysMemSlot); ok {
				if n, ok := asInt(v); ok {
					sm.Slot, sm.HasSlot = int(n), true
				}
			}
			maj, ok1 := lookup(m, keysMemMajor)
			min, ok2 := lookup(m, keysMemMinor)
			if ok1 && ok2 {
				a, oka := asInt(maj)
				b, okb := asInt(min)
				if oka && okb {
					sm.Major, sm.Minor, sm.HasDevNo = uint32(a), uint32(b), true
				}
			} else if v, ok := lookup(m, keysMemDevNo); ok {
				s, _ := v.(string)
				sm.Major, sm.Minor, sm.HasDevNo = parseDevNo(s)
			} else {
				// A "dev" field may hold "MAJ:MIN" rather than a name.
				sm.Major, sm.Minor, sm.HasDevNo = parseDevNo(sm.Device)
			}
			sv.Members = append(sv.Members, sm)
		}
	}
	return sv, nil
}

// parseDevNo reads "253:0".
func parseDevNo(s string) (uint32, uint32, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	x, e1 := strconv.ParseUint(a, 10, 32)
	y, e2 := strconv.ParseUint(b, 10, 32)
	if e1 != nil || e2 != nil {
		return 0, 0, false
	}
	return uint32(x), uint32(y), true
}

func normLevel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "raid" + s
	}
	return s
}

// devNoFunc resolves a device path to its major:minor (stat in the guest;
// a fake in unit tests).
type devNoFunc func(path string) (uint32, uint32, error)

// compareMD lists every disagreement between mdadm's view and livemigrate's.
// Every field it compares is required on both sides: a field missing from
// the status JSON or from mdadm's output is a difference of its own, never
// "empty equals empty" (a renamed JSON key must fail the comparison, not
// switch it off). Compared: level, array size, raid devices, degraded, and
// per member its device number, role and slot.
func compareMD(md *MDDetail, sv *statusView, devno devNoFunc) []string {
	var diffs []string
	missing := func(what string) { diffs = append(diffs, what+" missing") }
	switch {
	case sv.Level == "":
		missing("status: level")
	case md.Level == "":
		missing("mdadm: Raid Level")
	case normLevel(sv.Level) != normLevel(md.Level):
		diffs = append(diffs, fmt.Sprintf("level %q vs mdadm %q", sv.Level, md.Level))
	}
	_, mdSize := md.Fields["Array Size"]
	switch {
	case sv.SizeKiB < 0:
		missing("status: array size")
	case !mdSize:
		missing("mdadm: Array Size")
	case sv.SizeKiB != md.ArraySizeKiB:
		diffs = append(diffs, fmt.Sprintf("size %d KiB vs mdadm %d KiB", sv.SizeKiB, md.ArraySizeKiB))
	}
	_, mdRaid := md.Fields["Raid Devices"]
	switch {
	case sv.RaidDevices < 0:
		missing("status: raid devices")
	case !mdRaid:
		missing("mdadm: Raid Devices")
	case sv.RaidDevices != md.RaidDevices:
		diffs = append(diffs, fmt.Sprintf("raid devices %d vs mdadm %d", sv.RaidDevices, md.RaidDevices))
	}
	_, mdActive := md.Fields["Active Devices"]
	switch {
	case sv.Degraded < 0:
		missing("status: degraded")
	case !mdActive || !mdRaid:
		missing("mdadm: Active Devices")
	default:
		// Build arrays keep no superblock, so mdadm's "Active Devices"
		// is the number of in-sync slots; degraded is the rest.
		if want := md.RaidDevices - md.ActiveDevices; sv.Degraded != want {
			diffs = append(diffs, fmt.Sprintf("degraded %d vs mdadm %d", sv.Degraded, want))
		}
	}
	if len(sv.Members) == 0 {
		missing("status: members")
	}
	if len(md.Members) == 0 {
		missing("mdadm: member table")
	}
	if len(sv.Members) == 0 || len(md.Members) == 0 {
		return diffs
	}
	type key struct{ maj, min uint32 }
	got := map[key]statusMember{}
	for _, m := range sv.Members {
		if memberRole(m.State) == "removed" {
			continue
		}
		if !m.HasDevNo && m.Device != "" && devno != nil {
			if a, b, err := devno(m.Device); err == nil {
				m.Major, m.Minor, m.HasDevNo = a, b, true
			}
		}
		if !m.HasDevNo {
			diffs = append(diffs, fmt.Sprintf("member %q: cannot tell its device number", m.Device))
			continue
		}
		got[key{m.Major, m.Minor}] = m
	}
	seen := map[key]bool{}
	for _, mm := range md.Members {
		if memberRole(mm.State) == "removed" || (mm.Major == 0 && mm.Minor == 0) {
			continue
		}
		k := key{mm.Major, mm.Minor}
		seen[k] = true
		jm, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("mdadm member %s (%d:%d, %s) missing from status",
				mm.Device, mm.Major, mm.Minor, mm.StateString()))
			continue
		}
		if len(jm.State) == 0 {
			diffs = append(diffs, fmt.Sprintf("member %s: status: state missing", mm.Device))
		}
		if len(mm.State) == 0 {
			diffs = append(diffs, fmt.Sprintf("member %s: mdadm: state missing", mm.Device))
		}
		mr, jr := memberRole(mm.State), memberRole(jm.State)
		if mr == "unknown" || jr == "unknown" {
			diffs = append(diffs, fmt.Sprintf("member %s: state %q / mdadm %q not understood",
				mm.Device, strings.Join(jm.State, " "), mm.StateString()))
			continue
		}
		// The kernel calls a recovering member "spare" until it is in
		// sync; mdadm prints "spare rebuilding". Same thing.
		if mr != jr && !(mr == "rebuilding" && jr == "spare") {
			diffs = append(diffs, fmt.Sprintf("member %s: state %q vs mdadm %q",
				mm.Device, strings.Join(jm.State, " "), mm.StateString()))
		}
		if mm.RaidDevice >= 0 && !jm.HasSlot {
			diffs = append(diffs, fmt.Sprintf("member %s: status: slot missing (mdadm: %d)", mm.Device, mm.RaidDevice))
		} else if mm.RaidDevice >= 0 && jm.Slot != mm.RaidDevice {
			diffs = append(diffs, fmt.Sprintf("member %s: slot %d vs mdadm %d", mm.Device, jm.Slot, mm.RaidDevice))
		}
	}
	var extra []string
	for k, m := range got {
		if !seen[k] {
			extra = append(extra, fmt.Sprintf("status member %s (%d:%d) unknown to mdadm", m.Device, k.maj, k.min))
		}
	}
	sort.Strings(extra)
	return append(diffs, extra...)
}

func cmdMDCompare(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mdcompare", flag.ContinueOnError)
	md := fs.String("md", "/dev/md127", "array device")
	mdadmOut := fs.String("mdadm-output", "", "read mdadm --detail output from FILE instead of running mdadm")
	statusJSON := fs.String("status-json", "", "read the status JSON from FILE instead of running livemigrate")
	statusCmd := fs.String("status-cmd", "livemigrate status --json", "command that prints the status JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var mdText, js []byte
	var err error
	if *mdadmOut != "" {
		mdText, err = os.ReadFile(*mdadmOut)
	} else {
		mdText, err = exec.Command("mdadm", "--detail", *md).Output()
	}
	if err != nil {
		return fmt.Errorf("mdadm --detail %s: %w", *md, err)
	}
	if *statusJSON != "" {
		js, err = os.ReadFile(*statusJSON)
	} else {
		argv := strings.Fields(*statusCmd)
		if len(argv) == 0 {
			return errors.New("empty --status-cmd")
		}
		js, err = exec.Command(argv[0], argv[1:]...).Output()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", *statusCmd, err)
	}
	detail, err := ParseMDDetail(string(mdText))
	if err != nil {
		return err
	}
	sv, err := parseStatusJSON(js)
	if err != nil {
		return err
	}
	diffs := compareMD(detail, sv, rdev)
	if len(diffs) > 0 {
		fmt.Fprintf(stdout, "mdcompare=mismatch: %s\n", strings.Join(diffs, "; "))
		return errors.New("livemigrate status disagrees with mdadm")
	}
	fmt.Fprintln(stdout, "mdcompare=ok")
	return nil
}
