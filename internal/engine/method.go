package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/livemigrate/livemigrate/internal/finalize"
)

// Method is one way of moving the running root onto the target. Given what
// the system shows, it says whether it can move this root (and if not, why
// not, as a Refusal), and lays the migration out as steps: the plan that
// --dry-run prints. What the steps do, the events they emit, the exit codes,
// resuming from what the kernel shows and the abort rules are the Runner's,
// shared by every method.
type Method interface {
	// Name is the method's name in plans and messages.
	Name() string
	// Applies returns nil when the method can move sys's root, else why not.
	Applies(sys *System) *Refusal
	// Plan checks the target against sys and returns the plan. It is pure.
	Plan(sys *System, tgt Target, req Request) (*Plan, error)
}

// Methods are the ways livemigrate knows, tried in this order; the first
// that applies plans the migration: md via the boot hook, then a dm-mirror
// inserted at run time under a stock live system's dm snapshot, then a
// file copy with a soft-reboot for a file-based root (overlayfs).
var Methods = []Method{mdHook{}, dmMirror{}, copyMethod{}}

// mdHook is the way the livemigrate boot hook prepares: / on a build-mode
// RAID1 whose one leg is live-rw. The target is hot-added as the second
// leg, md copies, the live leg leaves, the array and the filesystem grow.
type mdHook struct{}

func (mdHook) Name() string { return "md-hook" }

func (mdHook) Applies(sys *System) *Refusal {
	if sys.NotLive != "" {
		if sys.FileRoot != nil {
			// The copy method's root: its refusal says more.
			return notOurs(refuse(ExitNotLive, "", sys.NotLive, notLiveHint))
		}
		return refuse(ExitNotLive, "", sys.NotLive, notLiveHint)
	}
	if sys.Array == nil {
		return notOurs(refuse(ExitNotLive, "", "/ is not on an md array", ""))
	}
	return nil
}

// Preflight decides whether req may run on sys and returns the plan of the
// first method that applies (or of the one req.Method forces). It is pure:
// everything it needs was gathered before, and it writes nothing. It checks
// the whole request first, so a face only collects what the user typed and
// every face refuses the same.
func Preflight(sys *System, tgt Target, req Request) (*Plan, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	if req.Method != "" {
		m := MethodNamed(req.Method)
		if r := m.Applies(sys); r != nil {
			forced := *r
			forced.Reason = "--method " + m.Name() + ": " + r.Reason
			if auto := applying(sys); auto != nil {
				forced.Hint = "leave --method out: the " + auto.Name() + " method applies to this system"
			}
			return nil, &forced
		}
		return planWith(m, sys, tgt, req)
	}
	var why *Refusal
	for _, m := range Methods {
		if r := m.Applies(sys); r != nil {
			if why == nil || why.other && !r.other {
				why = r
			}
			continue
		}
		return planWith(m, sys, tgt, req)
	}
	if why == nil {
		return nil, refuse(ExitNotLive, "", "no way to migrate this system is known", "")
	}
	return nil, why
}

func planWith(m Method, sys *System, tgt Target, req Request) (*Plan, error) {
	if req.FS != "" && m.Name() != MethodCopy {
		return nil, refuse(ExitUsage, "", fmt.Sprintf("--fs %s: only the copy method makes a new filesystem; the %s method this system takes keeps the live root's", req.FS, m.Name()), "leave --fs out")
	}
	p, err := m.Plan(sys, tgt, req)
	if p != nil {
		p.Method = m.Name()
	}
	return p, err
}

// applying is the first method that applies to sys, or nil.
func applying(sys *System) Method {
	for _, m := range Methods {
		if m.Applies(sys) == nil {
			return m
		}
	}
	return nil
}

// MethodNamed is the method called name, or nil.
func MethodNamed(name string) Method {
	for _, m := range Methods {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// MethodNames lists the methods' names, in order, for help and messages.
func MethodNames() []string {
	var out []string
	for _, m := range Methods {
		out = append(out, m.Name())
	}
	return out
}

const notLiveHint = "boot a live medium whose / is a dm snapshot (dracut's dmsquash-live) or has the livemigrate hook (docs/user-guide.md), or install with your distribution's installer"

// notOurs marks a Method's refusal as "not this kind of root".
func notOurs(r *Refusal) *Refusal {
	r.other = true
	return r
}

// check refuses a request that no system could run, in the order the
// options are listed in livemigrate(8).
func (req Request) check() error {
	if req.Speed != "" {
		if _, err := ParseSpeed(string(req.Speed)); err != nil {
			return refuse(ExitUsage, "", err.Error(), "")
		}
	}
	if req.PasswordFrom != "" && req.Password == "" {
		return refuse(ExitUsage, "", req.PasswordFrom+" is empty", "")
	}
	if req.Hostname != "" && !finalize.ValidHostname(req.Hostname) {
		return refuse(ExitUsage, "", fmt.Sprintf("--hostname %q: use letters, digits and hyphens, at most 63 characters", req.Hostname), "")
	}
	if req.FS != "" && !slices.Contains(CopyFSTypes, req.FS) {
		return refuse(ExitUsage, "", fmt.Sprintf("--fs %q: not a filesystem livemigrate makes", req.FS), "use one of "+strings.Join(CopyFSTypes, ", "))
	}
	if req.Method != "" && MethodNamed(req.Method) == nil {
		return refuse(ExitUsage, "", fmt.Sprintf("--method %q: no such method", req.Method), "use one of "+strings.Join(MethodNames(), ", ")+", or leave it out to take the first that applies")
	}
	if strings.TrimSpace(req.Target) == "" {
		return refuse(ExitUsage, "", "no target device given", "name one with --target, e.g. --target /dev/sdb2 (see lsblk)")
	}
	return nil
}
