package vm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Images are the busybox guest's boot files: the test initramfs and the
// live medium, with what mklive.sh reported about its root (live.env).
type Images struct {
	Initrd string
	ISO    string
	// Env is live.env: LIVE_LABEL, ROOTFS_UUID, ROOTFS_BYTES,
	// PAYLOAD_SHA256, ...
	Env map[string]string
}

// RootfsBytes is the live root's size in bytes.
func (im *Images) RootfsBytes() int64 {
	n, _ := strconv.ParseInt(im.Env["ROOTFS_BYTES"], 10, 64)
	return n
}

// keep is how many builds of each kind stay in the cache.
const keep = 4

// Fetch runs test/qemu/fetch.sh (the kernel and busybox into $LM_CACHE;
// seconds when they are there).
func Fetch() error { return runBuilder(nil, filepath.Join(QemuDir(), "fetch.sh")) }

// LiveImages builds, or reuses when nothing they are made of changed, the
// initramfs (mkinitrd.sh) and the live medium (mklive.sh) with payloadMiB
// MiB of random data in the live root (LM_ROOTFS_PAYLOAD_MIB overrides).
// Fetch first.
// They are kept under $LM_CACHE/images/KIND-HASH, HASH covering the
// builders, the guest files, bin/ and the kernel version.
func LiveImages(payloadMiB int) (*Images, error) { return LiveImagesIn(payloadMiB, "") }

// LiveImagesIn is LiveImages with rootfs.img packed in container:
// "squashfs" (or "") as dracut makes it, or "erofs" (lorax's erofs-ext4).
func LiveImagesIn(payloadMiB int, container string) (*Images, error) {
	if v := os.Getenv("LM_ROOTFS_PAYLOAD_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("LM_ROOTFS_PAYLOAD_MIB=%q", v)
		}
		payloadMiB = n
	}
	kver, err := KernelVersion()
	if err != nil {
		return nil, err
	}
	q, root := QemuDir(), RepoRoot()
	common := []string{"kernel " + kver, filepath.Join(q, "lib.sh")}
	initrd, err := cached("initrd", append(common,
		filepath.Join(q, "mkinitrd.sh"), filepath.Join(q, "initramfs"),
		envOr("LM_BIN", filepath.Join(root, "bin", "livemigrate"))),
		"initrd.img", filepath.Join(q, "mkinitrd.sh"), nil)
	if err != nil {
		return nil, err
	}
	extra := []string{
		"LM_ROOTFS_PAYLOAD_MIB=" + strconv.Itoa(payloadMiB),
		"LM_LABEL=" + os.Getenv("LM_LABEL"),
		"LM_ROOTFS_EXTRA_MIB=" + os.Getenv("LM_ROOTFS_EXTRA_MIB"),
	}
	if container != "" && container != "squashfs" {
		// Only then, so the squashfs images keep their cache keys.
		extra = append(extra, "LM_CONTAINER="+container)
	}
	inputs := append(common, filepath.Join(q, "mklive.sh"), filepath.Join(q, "guest"),
		filepath.Join(root, "bin", "lmtest"), filepath.Join(root, "bin", "livemigrate"),
		filepath.Join(root, "bin", "tests"))
	for _, d := range []string{"mdraid", "overlay", "resize"} {
		inputs = append(inputs, filepath.Join(root, "internal", d, "testdata"))
	}
	iso, err := cached("live", append(inputs, extra...), "live.iso", filepath.Join(q, "mklive.sh"), extra)
	if err != nil {
		return nil, err
	}
	env, err := ReadEnv(filepath.Join(filepath.Dir(iso), "live.env"))
	if err != nil {
		return nil, err
	}
	return &Images{Initrd: initrd, ISO: iso, Env: env}, nil
}

// cached returns DIR/out of the cache entry for inputs, running
// "builder DIR/out" (with env added) when there is none yet.
func cached(kind string, inputs []string, out, builder string, env []string) (string, error) {
	sum, err := hashInputs(inputs)
	if err != nil {
		return "", err
	}
	base := filepath.Join(Cache(), "images")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(base, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := filepath.Join(base, kind+"-"+sum[:16])
	path := filepath.Join(dir, out)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		Logf("%s %s: reused (inputs unchanged, %s)", kind, path, sum[:16])
		now := timeNow()
		_ = os.Chtimes(dir, now, now)
		return path, nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := runBuilder(env, builder, path); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".done"), []byte(strings.Join(inputs, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	prune(base, kind)
	return path, nil
}

// prune removes all but the newest keep entries of kind.
func prune(base, kind string) {
	ents, _ := filepath.Glob(filepath.Join(base, kind+"-*"))
	sort.Slice(ents, func(i, j int) bool {
		a, _ := os.Stat(ents[i])
		b, _ := os.Stat(ents[j])
		return a != nil && b != nil && a.ModTime().After(b.ModTime())
	})
	for i, e := range ents {
		if i >= keep {
			os.RemoveAll(e)
		}
	}
}

// hashInputs hashes each input: a path (file, or directory tree, by
// relative names and contents; a missing one hashes as missing) or, for
// anything not starting with '/', the string itself.
func hashInputs(inputs []string) (string, error) {
	h := sha256.New()
	for _, in := range inputs {
		if !strings.HasPrefix(in, "/") {
			fmt.Fprintf(h, "value %s\n", in)
			continue
		}
		// By the path inside the checkout, so that two worktrees with
		// the same contents share one build.
		name := in
		if rel, err := filepath.Rel(RepoRoot(), in); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
		fmt.Fprintf(h, "path %s\n", name)
		err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					fmt.Fprintf(h, "missing\n")
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(in, p)
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %s %o\n", rel, st.Mode().Perm())
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(h, f)
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func runBuilder(env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// ReadEnv reads a KEY=VALUE file (the live.env mklive.sh and mkiso.sh
// write), dropping double quotes around a value.
func ReadEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			env[k] = v
		}
	}
	return env, sc.Err()
}
