package treecopy

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// ListXattrs is the names of path's extended attributes (not following a
// symlink); none where the filesystem has no extended attributes.
func ListXattrs(path string) ([]string, error) {
	size := 1024
	for {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			size *= 4
			if size > 1<<20 {
				return nil, fmt.Errorf("list extended attributes of %s: more than %d bytes of names", path, size)
			}
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list extended attributes of %s: %w", path, err)
		}
		var names []string
		for _, n := range strings.Split(string(buf[:n]), "\x00") {
			if n != "" {
				names = append(names, n)
			}
		}
		return names, nil
	}
}

// GetXattr reads attribute name of path (not following a symlink).
func GetXattr(path, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			size *= 16
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// copyXattrs gives dst every extended attribute src has, but overlayfs's
// own (trusted.overlay.*, and user.overlay.* when skipOverlayUser: an
// upper layer's, or a directory's, where a userxattr overlay keeps them).
func copyXattrs(src, dst string, skipOverlayUser bool) error {
	names, err := ListXattrs(src)
	if vanished(err) {
		return nil // the source went away after its data was read
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, "trusted.overlay.") || (skipOverlayUser && strings.HasPrefix(n, "user.overlay.")) {
			continue
		}
		v, err := GetXattr(src, n)
		if errors.Is(err, unix.ENODATA) || vanished(err) {
			continue // removed since it was listed
		}
		if err != nil {
			return fmt.Errorf("read extended attribute %s: %w", n, err)
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil {
			return fmt.Errorf("set extended attribute %s on %s: %w", n, dst, err)
		}
	}
	return nil
}
