package finalize

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// StatePath is where finalize records, on the installed root, which
// actions it finished. Rerunning finalize after a failure (exit 23: install
// what it names, run the same migrate again) must only do what is left: a
// second machine-id or set of SSH host keys would replace the first run's,
// locking the live user again would undo the password the user set as
// advised, and formatting the ESP again would wipe what was installed on it.
const StatePath = "/var/lib/livemigrate/finalize.json"

// state is the record. It belongs to one installation in one live session:
// the filesystem UUID is shared by every install from one image, and a
// rerun only happens in the live session that ran finalize first (the
// installed system, booted, has no live leg to migrate), so the boot id and
// the root device bind it. A record that does not match is ignored.
type state struct {
	FSUUID  string `json:"fs_uuid"`
	RootDev string `json:"root_dev"`
	BootID  string `json:"boot_id"`
	// Done: action name -> what it did (the ESP's FAT volume id, the
	// machine-id, the host keys' checksums, the kernels...).
	Done map[string]map[string]string `json:"done"`
	// Started: actions that began a change a rerun must recognise as its
	// own (the ESP being formatted: a partition with a filesystem this
	// record does not account for is never formatted).
	Started map[string]map[string]string `json:"started,omitempty"`
	// Ignored says why an earlier record was not used ("" if none).
	Ignored string `json:"-"`
}

func (e *Env) bootID() string {
	b, _ := os.ReadFile(e.path("/proc/sys/kernel/random/boot_id"))
	return strings.TrimSpace(string(b))
}

// loadState reads the record of an earlier run of this installation.
func (e *Env) loadState() *state {
	s := &state{FSUUID: e.FSUUID, RootDev: e.RootDev, BootID: e.bootID(),
		Done: map[string]map[string]string{}, Started: map[string]map[string]string{}}
	b, err := os.ReadFile(e.path(StatePath))
	if err != nil {
		return s
	}
	var old state
	switch {
	case json.Unmarshal(b, &old) != nil:
		s.Ignored = "unreadable"
	case old.FSUUID != s.FSUUID && !old.gaveUUID(s.FSUUID) || old.RootDev != s.RootDev || old.BootID != s.BootID:
		s.Ignored = fmt.Sprintf("it is of another installation or boot (%s on %s, boot %s)", old.FSUUID, old.RootDev, old.BootID)
	default:
		// Keyed by the medium's UUID, also once fs-uuid gave a new one.
		s.FSUUID = old.FSUUID
		if old.Done != nil {
			s.Done = old.Done
		}
		if old.Started != nil {
			s.Started = old.Started
		}
	}
	return s
}

// gaveUUID: this record's fs-uuid action set (or was setting) uuid.
func (s *state) gaveUUID(uuid string) bool {
	return uuid != "" && (s.Done["fs-uuid"]["new"] == uuid || s.Started["fs-uuid"]["new"] == uuid)
}

func (e *Env) saveState() error {
	if e.st == nil {
		return nil
	}
	b, err := json.MarshalIndent(e.st, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(e.path(StatePath), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record finalize's progress in %s: %w", StatePath, err)
	}
	return nil
}

// done is the record of action name from an earlier run, nil if none.
func (e *Env) done(name string) map[string]string {
	if e.st == nil {
		return nil
	}
	return e.st.Done[name]
}

// record notes that action name finished (Run saves it when it ends).
func (e *Env) record(name string, what map[string]string) {
	if e.st == nil {
		return
	}
	if what == nil {
		what = map[string]string{}
	}
	what["at"] = time.Now().UTC().Format(time.RFC3339)
	e.st.Done[name] = what
	delete(e.st.Started, name)
}

// start notes, and saves at once, that action name is about to change
// something it must recognise as its own if it is cut short.
func (e *Env) start(name string, what map[string]string) error {
	if e.st == nil {
		return nil
	}
	e.st.Started[name] = what
	return e.saveState()
}

func (e *Env) started(name string) map[string]string {
	if e.st == nil {
		return nil
	}
	return e.st.Started[name]
}

// EarlierRun is how an action's message begins when an earlier run of
// finalize already did it.
const EarlierRun = "already done by an earlier run"
