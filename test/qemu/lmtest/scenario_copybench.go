package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livemigrate/livemigrate/internal/fileroot"
	"github.com/livemigrate/livemigrate/internal/procfs"
	"github.com/livemigrate/livemigrate/internal/treecopy"
	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// scenarioCopyBench (lmtest.scenario=copy-bench on the live-build
// medium: / an overlayfs of squashfs layers under a tmpfs upper): the copy
// method's data path against what the peers run, each onto a fresh ext4
// on the disk with serial cp-main, the page cache dropped before each,
// timed to the end of a sync:
//
//	treecopy    the lower layers from their own mounts (bottom one plain,
//	            the next applied over it), then the upper layer applied:
//	            internal/treecopy, as the copy method will run it
//	rsync       rsync -aHAXSx / (Calamares' unpackfs, Anaconda's live
//	            payload): through the merged overlay
//	unsquashfs  unsquashfs of the image's squashfs (the pristine image:
//	            none of the session's changes)
//
// Before them the session changes the root (files added, a directory of
// the image renamed, one deleted, a file edited), so the upper layer has
// whiteouts and a redirect. After treecopy, rsync in dry-run with
// --itemize-changes against / is the referee: every difference is listed
// (cb_diff), and ping's file capability is compared.
func scenarioCopyBench() int {
	tgt := g.DiskBySerial("cp-main")
	root := g.RootMount()
	g.Fact("cb_root", root.FSType+" "+root.Source)
	ms, err := procfs.ReadMountinfo("/")
	if err != nil {
		g.Fact("cb_error", err.Error())
		return 1
	}
	var layers fileroot.Layers
	for _, m := range ms {
		if m.MountPoint == "/" && m.FSType == "overlay" {
			layers, err = fileroot.ParseOverlayOptions(m.SuperOptions)
			g.Fact("cb_superopts", m.SuperOptions)
		}
	}
	if err != nil || len(layers.Lower) == 0 || tgt == "" {
		g.Fact("cb_error", fmt.Sprintf("layers %+v (%v), target %q", layers, err, tgt))
		return 1
	}
	g.Fact("cb_layers", fmt.Sprintf("lower=%s upper=%s", strings.Join(layers.Lower, ":"), layers.Upper))

	// What livemigrate says of this root today (the copy method is not
	// wired in yet).
	st := g.Cmd{Args: []string{"livemigrate", "status"}, Combined: true}.Run()
	g.Fact("cb_status", fmt.Sprintf("rc=%d %s", st.RC, g.FirstLine(st.Stdout)))
	dry := g.Sh("livemigrate", "migrate", "--target", tgt, "--dry-run")
	g.Fact("cb_dry", fmt.Sprintf("rc=%d %s", dry.RC, dry.FirstErr()))

	// The session's changes.
	_ = os.MkdirAll("/srv/session", 0o755)
	for i := 0; i < 200; i++ {
		_ = os.WriteFile(fmt.Sprintf("/srv/session/f%03d", i), []byte(strings.Repeat(strconv.Itoa(i), 2000)), 0o644)
	}
	_ = os.WriteFile("/etc/motd", []byte("changed in the live session\n"), 0o644)
	g.Fact("cb_setcap", strconv.Itoa(g.Sh("sh", "-c", "cp /usr/lib/lmtest/capable /usr/local/bin/capable2 && setcap cap_net_bind_service+ep /usr/local/bin/capable2").RC))
	g.Fact("cb_rename", strconv.Itoa(g.Sh("mv", "/usr/share/doc/dpkg", "/usr/share/doc/dpkg.renamed").RC))
	g.Fact("cb_delete", strconv.Itoa(g.Sh("rm", "-rf", "/usr/share/doc/systemd").RC))
	g.Fact("cb_redirects", strconv.Itoa(len(strings.Fields(g.Out("sh", "-c", "getfattr -R -h -n trusted.overlay.redirect --absolute-names "+layers.Upper+" 2>/dev/null | grep -c '^# file'")))))
	g.Fact("cb_used", usedBytes("/"))
	g.Fact("cb_squashfs", strings.Join(g.Glob("/run/live/medium/live/*.squashfs"), " "))

	mnt := "/mnt/cb"
	_ = os.MkdirAll(mnt, 0o755)
	fresh := func() bool {
		_ = syscall.Unmount(mnt, 0)
		if g.Sh("mkfs.ext4", "-F", "-q", tgt).RC != 0 || g.Sh("mount", tgt, mnt).RC != 0 {
			return false
		}
		g.DropCaches()
		return true
	}
	timed := func(name string, run func() error) {
		if !fresh() {
			g.Fact("cb_"+name, "setup failed")
			return
		}
		t0 := time.Now()
		err := run()
		syscall.Sync()
		secs := time.Since(t0).Seconds()
		used := usedBytes(mnt)
		files := strings.TrimSpace(g.Out("sh", "-c", "find "+mnt+" -xdev | wc -l"))
		g.Fact("cb_"+name, fmt.Sprintf("seconds=%.1f used=%s entries=%s err=%v", secs, used, files, err))
	}

	copyLayers := func() error {
		ctx := context.Background()
		bottom := layers.Lower[len(layers.Lower)-1]
		if err := treecopy.New(bottom, mnt, treecopy.Options{}).Run(ctx); err != nil {
			return err
		}
		for i := len(layers.Lower) - 2; i >= 0; i-- {
			if err := treecopy.New(layers.Lower[i], mnt, treecopy.Options{Upper: true}).Run(ctx); err != nil {
				return err
			}
		}
		if layers.Upper == "" {
			return nil
		}
		return treecopy.New(layers.Upper, mnt, treecopy.Options{Upper: true, Lower: bottom}).Run(ctx)
	}
	timed("treecopy", copyLayers)
	// The referee, while treecopy's result is mounted.
	diff := g.Cmd{Args: []string{"rsync", "-naHAXSx", "--delete", "--itemize-changes", "/", mnt + "/"}, Combined: true}.Run()
	var lines []string
	for _, l := range g.Lines(diff.Stdout) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	var mps []string
	now, _ := procfs.ReadMountinfo("/") // with the target's mount
	for _, m := range now {
		if m.MountPoint != "/" {
			mps = append(mps, strings.TrimPrefix(m.MountPoint, "/")+"/")
		}
	}
	g.Fact("cb_mountpoints", strings.Join(mps, " "))
	g.Fact("cb_diff_rc", strconv.Itoa(diff.RC))
	g.Fact("cb_diff_count", strconv.Itoa(len(lines)))
	g.FactLines("cb_diff", []byte(strings.Join(lines[:min(len(lines), 40)], "\n")))
	// getcap prints "NAME CAPS": compare the capabilities.
	capOf := func(p string) string {
		f := strings.Fields(g.Out("getcap", p))
		if len(f) < 2 {
			return "none"
		}
		return strings.Join(f[1:], " ")
	}
	g.Fact("cb_cap", capOf("/usr/lib/lmtest/capable")+" | "+capOf(filepath.Join(mnt, "usr/lib/lmtest/capable"))+" | "+
		capOf("/usr/local/bin/capable2")+" | "+capOf(filepath.Join(mnt, "usr/local/bin/capable2")))
	g.Fact("cb_session_files", strings.TrimSpace(g.Out("sh", "-c", "ls "+mnt+"/srv/session | wc -l")))
	g.Fact("cb_renamed", fmt.Sprintf("new=%v old=%v", g.Exists(mnt+"/usr/share/doc/dpkg.renamed/copyright"), g.Exists(mnt+"/usr/share/doc/dpkg")))

	rsync := func() error {
		r := g.Cmd{Args: []string{"rsync", "-aHAXSx", "/", mnt + "/"}, Combined: true}.Run()
		if r.RC != 0 {
			return fmt.Errorf("rsync exit %d: %s", r.RC, r.FirstErr())
		}
		return nil
	}
	unsquash := func() error {
		sq := g.Glob("/run/live/medium/live/filesystem.squashfs")
		if len(sq) != 1 {
			return fmt.Errorf("no live/filesystem.squashfs on the medium")
		}
		r := g.Cmd{Args: []string{"unsquashfs", "-f", "-no-progress", "-d", mnt, sq[0]}, Combined: true}.Run()
		if r.RC != 0 {
			return fmt.Errorf("unsquashfs exit %d", r.RC)
		}
		return nil
	}
	// Then each again in another order, so that neither always runs first
	// (the host's load moves): figures are per run, the host takes the
	// better of the two.
	timed("rsync", rsync)
	timed("unsquashfs", unsquash)
	timed("rsync2", rsync)
	timed("treecopy2", copyLayers)
	timed("unsquashfs2", unsquash)
	_ = syscall.Unmount(mnt, 0)
	return 0
}

// usedBytes is df's used bytes of the filesystem at path.
func usedBytes(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "0"
	}
	return strconv.FormatUint((st.Blocks-st.Bfree)*uint64(st.Bsize), 10)
}
