package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// needLoop skips unless the test can bind real loop devices.
func needLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
}

func TestSetupAndDetachLoop(t *testing.T) {
	needLoop(t)
	for _, readOnly := range []bool{true, false} {
		file := filepath.Join(t.TempDir(), "rootfs.img")
		if err := os.WriteFile(file, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := SetupLoop(file, readOnly)
		if err != nil {
			t.Fatalf("SetupLoop(%s, %v): %v", file, readOnly, err)
		}
		t.Cleanup(func() { _ = DetachLoop(d) })
		if !d.isLoop() || d.Major != 7 || d.Path != "/dev/"+d.Name {
			t.Errorf("SetupLoop returned %+v", d)
		}

		h := Host{Root: "/"}
		if b, err := h.loopBacking(d); err != nil || b != file {
			t.Errorf("backing_file of %s = %q, %v; want %q", d, b, err, file)
		}
		wantRO := map[bool]string{true: "1", false: "0"}[readOnly]
		if ro, err := h.readFile("/sys/class/block/" + d.Name + "/ro"); err != nil || strings.TrimSpace(ro) != wantRO {
			t.Errorf("ro of %s = %q, %v; want %s", d, ro, err, wantRO)
		}
		if got, err := h.resolve(Dev{Major: d.Major, Minor: d.Minor}); err != nil || got.Name != d.Name {
			t.Errorf("resolve(%d:%d) = %+v, %v", d.Major, d.Minor, got, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(file, &st); err != nil {
			t.Fatal(err)
		}
		ls, err := KernelQuerier{}.LoopStatus(d)
		if err != nil {
			t.Errorf("LoopStatus(%s): %v", d, err)
		} else if ls.BackingInode != st.Ino || unix.Mkdev(ls.BackingMajor, ls.BackingMinor) != st.Dev {
			t.Errorf("LoopStatus(%s) = %+v, file is dev %d ino %d", d, ls, st.Dev, st.Ino)
		}
		if readOnly && ls.Flags&unix.LO_FLAGS_READ_ONLY == 0 {
			t.Errorf("LoopStatus(%s) flags %#x lack LO_FLAGS_READ_ONLY", d, ls.Flags)
		}
		if readOnly {
			// A read-only loop must refuse writes, or the origin is not safe.
			f, err := os.OpenFile(d.Path, os.O_WRONLY, 0)
			if err == nil {
				_, werr := f.Write(make([]byte, 512))
				f.Close()
				if werr == nil {
					t.Errorf("wrote to read-only %s", d)
				}
			}
		}

		if err := DetachLoop(d); err != nil {
			t.Fatalf("DetachLoop(%s): %v", d, err)
		}
		if b, err := h.loopBacking(d); err != nil || b != "" {
			t.Errorf("after DetachLoop, backing_file of %s = %q, %v", d, b, err)
		}
		// Detaching again is not an error: the loop is already free.
		if err := DetachLoop(d); err != nil {
			t.Errorf("second DetachLoop(%s): %v", d, err)
		}
	}
}

func TestDetachLoopHeldIsDeferred(t *testing.T) {
	needLoop(t)
	file := filepath.Join(t.TempDir(), "cow.img")
	if err := os.WriteFile(file, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := SetupLoop(file, false)
	if err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	err = DetachLoop(d)
	held.Close()
	t.Cleanup(func() { _ = DetachLoop(d) })
	if err == nil {
		// Older kernels detach at once even when open; nothing to check.
		return
	}
	if !strings.Contains(err.Error(), d.Name) {
		t.Errorf("DetachLoop error does not name %s: %v", d, err)
	}
	if !errors.Is(err, ErrDetachDeferred) {
		t.Errorf("DetachLoop of a held loop: %v, want ErrDetachDeferred", err)
	}
}

func TestEnsureBlockNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mknod")
	}
	p := filepath.Join(t.TempDir(), "mapper", "live-rw")
	for i := 0; i < 2; i++ { // second call finds the node and keeps it
		if err := ensureBlockNode(p, 253, 1); err != nil {
			t.Fatalf("ensureBlockNode: %v", err)
		}
	}
	if err := ensureBlockNode(p, 253, 2); err != nil { // stale node replaced
		t.Fatalf("ensureBlockNode over a stale node: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(253, 2) {
		t.Errorf("node %s: mode %o rdev %d:%d", p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
}

func TestCreateSnapshotRejectsBadChunk(t *testing.T) {
	if _, err := CreateSnapshot("x", "/dev/null", "/dev/null", true, 3); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Errorf("chunk 3: %v", err)
	}
	if _, err := CreateSnapshot("x", "/nonexistent", "/dev/null", true, 8); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Errorf("missing origin: %v", err)
	}
}
