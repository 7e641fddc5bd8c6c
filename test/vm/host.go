package vm

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Host runs a host tool (sfdisk, mkfs.ext4, blkid, ...) with stdin and
// returns its stdout; its stderr goes to ours, as the shell harness's did.
func Host(stdin, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// SHA256 is the hex sha256 of a file's contents ("" when unreadable).
func SHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Sparse creates (or replaces) path as a sparse file of size bytes.
func Sparse(path string, size int64) error {
	os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

// RandomBytes is n bytes from the host's random source.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// WriteAt writes data into path at off without truncating it (dd
// conv=notrunc); all-zero MiB blocks are skipped, leaving holes, as
// conv=sparse does.
func WriteAt(path string, off int64, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const blk = 1 << 20
	zero := make([]byte, blk)
	for i := 0; i < len(data); i += blk {
		end := min(i+blk, len(data))
		if bytes.Equal(data[i:end], zero[:end-i]) {
			continue
		}
		if _, err := f.WriteAt(data[i:end], off+int64(i)); err != nil {
			return err
		}
	}
	return nil
}

// Zero writes n zero bytes into path at off (dd if=/dev/zero conv=notrunc).
func Zero(path string, off, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(make([]byte, n), off)
	return err
}

// NeedPkgs installs the host packages that are missing (lib.sh's
// need_pkgs: dpkg-query first, apt only when needed).
func NeedPkgs(pkgs ...string) error {
	lib := QemuDir() + "/lib.sh"
	cmd := exec.Command("bash", append([]string{"-c", `set -euo pipefail; . "$0"; need_pkgs "$@"`, lib}, pkgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
