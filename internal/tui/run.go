package tui

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// Run shows the wizard on the terminal in, out and returns the process exit
// code. SIGTERM and SIGHUP stop it as ctrl+c would, without the question:
// a run is aborted cleanly before the point of no return and finished after
// it. Run returns only once a started migration has ended.
func Run(eng Engine, in *os.File, out *os.File) int {
	r := lipgloss.NewRenderer(out)
	lipgloss.SetDefaultRenderer(r) // the bubbles components draw with it
	m := New(eng, Options{Renderer: r, Term: os.Getenv("TERM")})
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen(), tea.WithoutSignalHandler())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	go func() {
		for range sig {
			p.Send(Interrupt{})
		}
	}()

	fm, err := p.Run()
	close(m.gone)
	final, ok := fm.(Model)
	if !ok {
		final = m
	}
	code := final.ExitCode()
	if run := final.Migration(); run != nil && final.state == stProgress {
		// The screen went away while md was copying (the program failed):
		// do what an interrupt does, and wait for the engine to finish.
		fmt.Fprintln(out, "livemigrate: the wizard stopped during the migration; stopping it safely...")
		run.Cancel()
		_, rerr := run.Wait()
		code = engine.ExitCode(rerr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "livemigrate: wizard: %v\n", err)
		if code == 0 {
			code = engine.ExitFailure
		}
	}
	// The alternate screen is gone: leave the outcome in the scrollback.
	if s := final.Summary(); s != "" {
		fmt.Fprint(out, s)
	}
	return code
}

// Summary is the final screen's text, printed after the wizard closes so
// that the result (and the UUID to boot with) stays on the terminal.
func (m Model) Summary() string {
	var body []string
	switch m.state {
	case stDone:
		body, _ = m.viewDone()
	case stError:
		body, _ = m.viewError()
	case stOverview:
		if m.sys != nil && m.sys.NotLive != "" {
			body, _ = m.viewOverview()
		}
	default:
		if m.exit == engine.ExitInterrupted {
			return "livemigrate: stopped; nothing was changed.\n"
		}
	}
	if len(body) == 0 {
		return ""
	}
	return strings.Join(body, "\n") + "\n"
}
