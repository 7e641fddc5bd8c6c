package finalize

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPlanUUID(t *testing.T) {
	trixie := FSFacts{Type: "ext4", CsumSeed: true, Checksums: true, Kernel: "6.12.57+deb13-amd64", Grub: "2.12"}
	for _, c := range []struct {
		name    string
		f       func(*FSFacts)
		new     bool
		why     string
		warning string
	}{
		{"trixie", func(*FSFacts) {}, true, "", ""},
		{"no checksums at all", func(f *FSFacts) { f.CsumSeed, f.Checksums, f.Grub = false, false, "2.06" }, true, "", ""},
		{"bookworm image", func(f *FSFacts) { f.CsumSeed, f.Kernel, f.Grub = false, "6.1.0-40-amd64", "2.06" }, false, "seeded by the UUID", ""},
		{"seed but GRUB 2.06", func(f *FSFacts) { f.Grub = "2.06" }, false, "GRUB 2.06 cannot read it", "will not boot"},
		{"kernel 5.10", func(f *FSFacts) { f.Kernel = "5.10.0-30-amd64" }, false, "Linux 5.10.0-30-amd64 cannot", ""},
		{"kernel unknown", func(f *FSFacts) { f.Kernel = "" }, false, "release is unknown", ""},
		{"stable_inodes", func(f *FSFacts) { f.StableInodes = true }, false, "stable_inodes", ""},
		{"xfs", func(f *FSFacts) { f.Type = "xfs" }, false, "xfs_admin -U", ""},
		{"btrfs", func(f *FSFacts) { f.Type = "btrfs" }, false, "btrfstune -m", ""},
		{"no GRUB in the root", func(f *FSFacts) { f.Grub = "" }, true, "", ""},
	} {
		f := trixie
		c.f(&f)
		p := PlanUUID(f)
		if p.New != c.new || !strings.Contains(p.Why, c.why) || (c.why == "") != (p.Why == "") ||
			!strings.Contains(p.Warning, c.warning) || (c.warning == "") != (p.Warning == "") {
			t.Errorf("%s: %+v", c.name, p)
		}
	}
	if !versionLess("2.06", "2.12") || versionLess("2.12", "2.12") || !versionLess("2.12", "2.12.1") || versionLess("2.14~rc1", "2.12") {
		t.Error("versionLess")
	}
}

// fakeUUID is an ext4 mount's UUID as EXT4_IOC_[GS]ETFSUUID sees it;
// crashAfterSet makes the next set take effect and then fail, as a run
// killed between the ioctl and saving its record would leave it.
type fakeUUID struct {
	u             [16]byte
	sets          int
	crashAfterSet bool
}

func (f *fakeUUID) ioctl(dir string, set *[16]byte) ([16]byte, error) {
	if set != nil {
		f.sets++
		f.u = *set
		if f.crashAfterSet {
			f.crashAfterSet = false
			return [16]byte{}, errors.New("killed")
		}
	}
	return f.u, nil
}

// A new UUID is set first, and fstab and GRUB are written with it; a
// rerun (the plan now sees the new UUID) says an earlier run gave it and
// sets no other, also when the first run was cut short right after the
// ioctl.
func TestNewUUIDThenRerun(t *testing.T) {
	medium, _ := parseUUID("c64bc65e-bb76-4303-a6fa-97591d931458")
	for _, crash := range []bool{false, true} {
		root, f, e := fakeRootSys(t)
		fu := &fakeUUID{u: medium, crashAfterSet: crash}
		e.FSUUID, e.NewUUID, e.UUIDIoctl = FormatUUID(medium), true, fu.ioctl
		f.fail["grub-install"] = errors.New("grub-install: error: cannot find a GRUB drive")
		res, _ := Run(e, nil)
		if fu.sets != 1 {
			t.Fatalf("crash=%v: %d sets", crash, fu.sets)
		}
		now := FormatUUID(fu.u)
		if now == FormatUUID(medium) || !strings.HasPrefix(now[14:], "4") {
			t.Fatalf("crash=%v: UUID %s", crash, now)
		}
		if !crash {
			if !strings.Contains(res[0].Message, "UUID is now "+now) || !strings.Contains(read(t, root, "/etc/fstab"), "UUID="+now+" / ext4") {
				t.Errorf("first run: %q, fstab:\n%s", res[0].Message, read(t, root, "/etc/fstab"))
			}
		} else if res[0].Err == "" {
			t.Errorf("the cut-short set did not fail: %+v", res[0])
		}
		// The rerun's plan reads the filesystem's UUID as it is now.
		delete(f.fail, "grub-install")
		e2 := *e
		e2.FSUUID, e2.st = now, nil
		res, err := Run(&e2, nil)
		if err != nil {
			t.Fatalf("crash=%v: rerun: %v", crash, err)
		}
		if fu.sets != 1 || !strings.HasPrefix(res[0].Message, EarlierRun) || !strings.Contains(res[0].Message, now) {
			t.Errorf("crash=%v: rerun set %d times: %q", crash, fu.sets, res[0].Message)
		}
		if !strings.Contains(read(t, root, "/etc/fstab"), "UUID="+now+" / ext4") {
			t.Errorf("crash=%v: fstab:\n%s", crash, read(t, root, "/etc/fstab"))
		}
		for _, r := range res[1:] {
			if r.Name == "machine-id" && !strings.Contains(r.Message, EarlierRun) {
				t.Errorf("crash=%v: machine-id made again after the UUID changed: %q", crash, r.Message)
			}
		}
	}
}

func TestNewUUIDKernelRefuses(t *testing.T) {
	_, _, e := fakeRootSys(t)
	e.NewUUID = true
	e.UUIDIoctl = func(dir string, set *[16]byte) ([16]byte, error) {
		if set != nil {
			return [16]byte{}, unix.EOPNOTSUPP
		}
		u, _ := parseUUID("c64bc65e-bb76-4303-a6fa-97591d931458")
		return u, nil
	}
	msg, err := e.fsUUID()
	if err == nil || !strings.Contains(err.Error(), "the kernel refused a new UUID") || !strings.Contains(err.Error(), "keeps c64bc65e") {
		t.Errorf("%q, %v", msg, err)
	}
}
