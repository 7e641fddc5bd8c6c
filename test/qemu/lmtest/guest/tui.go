package guest

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// TUI drives the wizard as a person would: `livemigrate` with no arguments
// in an 80x24 tmux session; keys go in with `tmux send-keys`, screens come
// out with `tmux capture-pane`. Used by the tui scenario and by the migrate
// scenario's lmtest.ui=tui. The screens it keeps are files in /run
// (overview, targets, options, review, plan, progress, final .txt), which
// the scenarios report.
type TUI struct {
	Out    io.Writer // where its own messages go
	screen string    // the last capture, as /run/screen.txt holds it
}

// tuiEnv is what the wizard needs of its terminal; tmux's server takes it
// from the client that starts it.
var tuiEnv = []string{"TERM=xterm-256color", "HOME=/root", "LANG=C.UTF-8"}

func (t *TUI) tm(args ...string) int {
	return Cmd{Args: append([]string{"tmux", "-u"}, args...), Env: tuiEnv, Stdout: t.Out, Combined: true}.Run().RC
}

// Key sends tmux key names (Enter, Down, Space, PageDown, q, C-c).
func (t *TUI) Key(k ...string) { t.tm(append([]string{"send-keys", "-t", "lm"}, k...)...) }

// typeText types text literally.
func (t *TUI) typeText(s string) { t.tm("send-keys", "-t", "lm", "-l", s) }

// Screen captures the pane into /run/screen.txt and returns it.
func (t *TUI) Screen() string {
	r := Cmd{Args: []string{"tmux", "-u", "capture-pane", "-p", "-t", "lm"}, Env: tuiEnv}.Run()
	t.screen = string(r.Stdout)
	_ = os.WriteFile("/run/screen.txt", r.Stdout, 0o644)
	return t.screen
}

// keep saves the last screen as /run/NAME.txt.
func (t *TUI) keep(name string) { _ = os.WriteFile("/run/"+name+".txt", []byte(t.screen), 0o644) }

// stuck reports where the wizard was when a wait gave up.
func (t *TUI) stuck(what string) error {
	Fact("tui_timeout", what)
	FactLines("tui_stuck", []byte(t.screen))
	return fmt.Errorf("tui: timed out waiting for %q", what)
}

// Wait polls the screen until it shows text, for at most secs seconds.
func (t *TUI) Wait(text string, secs int) error {
	for n := secs * 4; n > 0; n-- {
		if strings.Contains(t.Screen(), text) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(t.Out, "tui: timed out waiting for '%s'; screen:\n%s", text, t.screen)
	return t.stuck(text)
}

// Start runs the wizard in its tmux session; its exit code lands in
// /run/tui.rc. Waits for the overview and keeps it.
func (t *TUI) Start() error {
	_ = os.Remove("/run/tui.rc")
	if t.tm("new-session", "-d", "-s", "lm", "-x", "80", "-y", "24", "livemigrate; echo $? >/run/tui.rc; sleep 600") != 0 {
		Fact("tui_start", "failed")
		return fmt.Errorf("tui: tmux new-session failed")
	}
	if err := t.Wait("Headroom", 60); err != nil {
		return err
	}
	t.keep("overview")
	return nil
}

// CursorOn says whether the screen's cursor row is on dev.
func CursorOn(screen, dev string) bool {
	return regexp.MustCompile(`(?m)^(>|▸) +` + regexp.QuoteMeta(dev) + ` `).MatchString(screen)
}

// Choose goes from the overview to dev's options screen. The cursor starts
// on the first usable device; it is moved onto dev.
func (t *TUI) Choose(dev string) error {
	t.Key("Enter")
	if err := t.Wait("Choose the disk", 30); err != nil {
		return err
	}
	for i := 1; !CursorOn(t.screen, dev); i++ {
		if i > 12 {
			return t.stuck("cursor to " + dev)
		}
		t.Key("Down")
		time.Sleep(300 * time.Millisecond)
		t.Screen()
	}
	t.keep("targets")
	t.Key("Enter")
	return t.Wait("Options for "+dev, 30)
}

// Options fills the options screen, top to bottom, and goes on to the
// review. bare picks the bare disk (a whole disk only); finalize false
// turns "make it boot on its own" off; hostname and password (typed twice)
// may be empty. The whole plan, scrolled through, lands in /run/plan.txt
// on one line.
func (t *TUI) Options(bare, finalize bool, hostname, password string) error {
	if bare {
		t.Key("Space")
		if err := t.Wait("(*) the bare disk", 10); err != nil {
			return err
		}
	}
	t.Key("Down")
	if !finalize {
		t.Key("Space")
		if err := t.Wait("[ ] make it boot", 10); err != nil {
			return err
		}
	} else {
		t.Key("Down")
		if hostname != "" {
			t.typeText(hostname)
		}
		for range 2 {
			t.Key("Down")
			if password != "" {
				t.typeText(password)
			}
		}
		if hostname != "" {
			if err := t.Wait("hostname:      "+hostname, 10); err != nil {
				return err
			}
		}
		t.Screen()
		t.keep("options")
		// The password is masked: its characters never reach the screen.
		if password != "" && strings.Contains(t.screen, password) {
			Fact("tui_password_shown", "yes")
			return fmt.Errorf("tui: the password is on the screen")
		}
	}
	t.Key("Enter")
	if err := t.Wait("Plan: install", 60); err != nil {
		return err
	}
	t.keep("review")
	all := t.screen
	for range 12 {
		t.Key("PageDown")
		time.Sleep(200 * time.Millisecond)
		all += t.Screen()
	}
	_ = os.WriteFile("/run/review-all.txt", []byte(all), 0o644)
	_ = os.WriteFile("/run/plan.txt", []byte(OneSpaced(all)), 0o644)
	return nil
}

// OneSpaced is text on one line with runs of spaces squeezed, as
// `tr '\n' ' ' | tr -s ' '` leaves it.
func OneSpaced(text string) string {
	s := strings.ReplaceAll(text, "\n", " ")
	var b strings.Builder
	for i, r := range s {
		if r == ' ' && i > 0 && s[i-1] == ' ' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Confirm types the device name on the review screen.
func (t *TUI) Confirm(dev string) error {
	t.typeText(dev)
	t.Key("Enter")
	return t.Wait("Installing onto "+dev, 20)
}

var progressPercent = regexp.MustCompile(`^.* ([0-9]*)\.[0-9]%  .* of .*$`)

// ProgressPercent is the whole percent on the first progress line of a
// screen ("... 42.0%  ... of ..."), or -1.
func ProgressPercent(screen string) int {
	for _, l := range strings.Split(screen, "\n") {
		if m := progressPercent.FindStringSubmatch(l); m != nil {
			if m[1] == "" {
				return -1
			}
			var n int
			fmt.Sscan(m[1], &n)
			return n
		}
	}
	return -1
}

// Follow watches the run until the Done screen, for at most secs seconds;
// keeps a progress screen from the middle of the copy (/run/progress.txt,
// the first at 30% or more) and the last one (/run/final.txt). Fails on
// the failure or stopped screens.
func (t *TUI) Follow(secs int) error {
	best := -1
	for n := 0; !strings.Contains(t.screen, "Done: / now lives on"); {
		if pc := ProgressPercent(t.screen); pc >= 0 && pc < 100 && best < 30 && strings.Contains(t.screen, "left") {
			t.keep("progress")
			best = pc
		}
		if strings.Contains(t.screen, "The migration failed") || strings.Contains(t.screen, "Stopped") {
			t.keep("final")
			FactLines("tui_final", []byte(t.screen))
			return fmt.Errorf("tui: the migration did not finish")
		}
		n++
		if n > secs*4 {
			return t.stuck("Done")
		}
		time.Sleep(250 * time.Millisecond)
		t.Screen()
	}
	t.keep("final")
	Fact("tui_progress_percent", fmt.Sprint(best))
	return nil
}

// Quit presses q on the Done screen and returns the wizard's exit code as
// /run/tui.rc holds it ("" if it did not end).
func (t *TUI) Quit() string {
	t.Key("q")
	for i := 0; i < 40 && Read("/run/tui.rc") == ""; i++ {
		time.Sleep(250 * time.Millisecond)
	}
	rc := Read("/run/tui.rc")
	t.Kill()
	return rc
}

// Kill ends the tmux server (and the wizard with it).
func (t *TUI) Kill() {
	Cmd{Args: []string{"tmux", "-u", "kill-server"}, Env: tuiEnv}.Run()
}
