package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livemigrate/livemigrate/internal/overlay"
)

// StackFile keeps the live stack as it was found before the migration. The
// kernel can tell everything else again, but once live-rw is removed nothing
// in sysfs leads to the loops and mounts that were under it; a release that
// stopped half way (a busy medium) finds them here. /run is emptied at boot,
// so the file never outlives the session it describes.
const StackFile = "/run/livemigrate/stack.json"

// SaveStack writes s to path atomically.
func SaveStack(path string, s *overlay.Stack) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save live stack: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save live stack: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save live stack: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save live stack: %w", err)
	}
	return nil
}

// LoadStack reads what SaveStack wrote; (nil, nil) when there is none.
func LoadStack(path string) (*overlay.Stack, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load live stack: %w", err)
	}
	var s overlay.Stack
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("load live stack from %s: %w", path, err)
	}
	return &s, nil
}
