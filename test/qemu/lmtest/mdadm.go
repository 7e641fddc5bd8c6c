package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// MDDetail is what `mdadm --detail DEV` says about an array. mdadm is the
// independent referee in the tests; livemigrate itself never parses it.
type MDDetail struct {
	Device         string
	Version        string
	Level          string // "raid1"
	ArraySizeKiB   int64  // "Array Size : 261120 (255.00 MiB 267.39 MB)"
	UsedDevSizeKiB int64
	RaidDevices    int
	TotalDevices   int
	ActiveDevices  int
	WorkingDevices int
	FailedDevices  int
	SpareDevices   int
	State          []string // "clean, degraded, recovering" split
	RebuildPercent int      // -1 when no "Rebuild Status"/"Resync Status"
	Members        []MDMember
	// Fields holds every "Key : value" line, for anything not modelled.
	Fields map[string]string
}

// MDMember is one row of the device table at the end of mdadm --detail.
type MDMember struct {
	Number     int // -1 for "-"
	Major      uint32
	Minor      uint32
	RaidDevice int      // slot; -1 for "-" (spares, faulty)
	State      []string // e.g. ["active", "sync"], ["spare", "rebuilding"], ["removed"]
	Device     string   // "" for a removed slot
}

// StateString joins the state words as mdadm prints them.
func (m MDMember) StateString() string { return strings.Join(m.State, " ") }

// ParseMDDetail parses the text output of mdadm --detail for one array.
func ParseMDDetail(text string) (*MDDetail, error) {
	d := &MDDetail{RebuildPercent: -1, Fields: map[string]string{}}
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case trim == "":
			continue
		case d.Device == "" && strings.HasPrefix(trim, "/dev/") && strings.HasSuffix(trim, ":"):
			d.Device = strings.TrimSuffix(trim, ":")
			continue
		case strings.HasPrefix(trim, "Number") && strings.Contains(trim, "RaidDevice"):
			inTable = true
			continue
		}
		if inTable {
			m, err := parseMemberRow(trim)
			if err != nil {
				return nil, err
			}
			d.Members = append(d.Members, m)
			continue
		}
		k, v, ok := strings.Cut(trim, " : ")
		if !ok {
			// "Version :" with nothing after it (build arrays).
			if k2, ok2 := strings.CutSuffix(trim, " :"); ok2 {
				k, v, ok = k2, "", true
			}
		}
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		d.Fields[k] = v
		var err error
		switch k {
		case "Version":
			d.Version = v
		case "Raid Level":
			d.Level = v
		case "Array Size":
			d.ArraySizeKiB, err = leadingInt(v)
		case "Used Dev Size":
			d.UsedDevSizeKiB, err = leadingInt(v)
		case "Raid Devices":
			d.RaidDevices, err = atoi(v)
		case "Total Devices":
			d.TotalDevices, err = atoi(v)
		case "Active Devices":
			d.ActiveDevices, err = atoi(v)
		case "Working Devices":
			d.WorkingDevices, err = atoi(v)
		case "Failed Devices":
			d.FailedDevices, err = atoi(v)
		case "Spare Devices":
			d.SpareDevices, err = atoi(v)
		case "State":
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					d.State = append(d.State, s)
				}
			}
		case "Rebuild Status", "Resync Status", "Reshape Status", "Check Status":
			var p int64
			p, err = leadingInt(strings.TrimSuffix(strings.Fields(v + " x")[0], "%"))
			d.RebuildPercent = int(p)
		}
		if err != nil {
			return nil, fmt.Errorf("mdadm --detail: %s: %w", k, err)
		}
	}
	if d.Level == "" {
		return nil, fmt.Errorf("mdadm --detail: no Raid Level in output")
	}
	return d, nil
}

// parseMemberRow reads "0  253  0  0  active sync  /dev/dm-0" and the like.
func parseMemberRow(row string) (MDMember, error) {
	f := strings.Fields(row)
	if len(f) < 5 {
		return MDMember{}, fmt.Errorf("mdadm --detail: short member row %q", row)
	}
	var m MDMember
	var err error
	if m.Number, err = dashInt(f[0]); err != nil {
		return m, fmt.Errorf("member row %q: %w", row, err)
	}
	maj, err1 := strconv.ParseUint(f[1], 10, 32)
	min, err2 := strconv.ParseUint(f[2], 10, 32)
	if err1 != nil || err2 != nil {
		return m, fmt.Errorf("member row %q: bad major/minor", row)
	}
	m.Major, m.Minor = uint32(maj), uint32(min)
	if m.RaidDevice, err = dashInt(f[3]); err != nil {
		return m, fmt.Errorf("member row %q: %w", row, err)
	}
	rest := f[4:]
	if last := rest[len(rest)-1]; strings.HasPrefix(last, "/") {
		m.Device = last
		rest = rest[:len(rest)-1]
	}
	m.State = rest
	return m, nil
}

func atoi(s string) (int, error) { return strconv.Atoi(strings.TrimSpace(s)) }

func dashInt(s string) (int, error) {
	if s == "-" {
		return -1, nil
	}
	return strconv.Atoi(s)
}

// leadingInt parses the number at the start of "261120 (255.00 MiB ...)".
func leadingInt(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, fmt.Errorf("empty value")
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// memberRole reduces a member's state words (mdadm's or the kernel's sysfs
// dev-*/state words) to one role for comparison:
// "in_sync", "rebuilding", "spare", "faulty", "removed" or "unknown".
func memberRole(words []string) string {
	has := map[string]bool{}
	for _, w := range words {
		for _, p := range strings.FieldsFunc(strings.ToLower(w), func(r rune) bool {
			return r == ',' || r == ' '
		}) {
			has[p] = true
		}
	}
	switch {
	case has["faulty"]:
		return "faulty"
	case has["removed"]:
		return "removed"
	case has["rebuilding"] || has["recovering"]:
		return "rebuilding"
	case has["spare"]:
		return "spare"
	case has["in_sync"] || has["sync"] || has["active"]:
		return "in_sync"
	}
	return "unknown"
}
