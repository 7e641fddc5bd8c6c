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
	case stDone, stError:
		body = m.result.lines()
	case stOverview:
		if m.sys != nil && m.sys.NotLive != "" {
			body, _ = m.overview.view()
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

// The commands below are the only place the wizard calls the engine.

func (m Model) observe() tea.Cmd {
	eng := m.eng
	return func() tea.Msg {
		sys, err := eng.Observe()
		if err != nil {
			return observedMsg{err: err}
		}
		var cands []engine.Candidate
		if sys.NotLive == "" {
			cands = eng.Candidates(sys, engine.SpeedFast)
		}
		return observedMsg{sys: sys, cands: cands}
	}
}

func (m Model) preflight() tea.Cmd {
	eng, sys, req := m.eng, m.sys, m.req
	return func() tea.Msg {
		p, err := eng.Preflight(sys, req)
		return plannedMsg{plan: p, err: err}
	}
}

// start hands the confirmed plan to the engine; its events arrive through
// m.events, then the run's end.
func (m Model) start(plan *engine.Plan) tea.Cmd {
	eng, req, ch, gone := m.eng, m.req, m.events, m.gone
	send := func(msg tea.Msg) {
		select {
		case ch <- msg:
		case <-gone:
		}
	}
	startCmd := func() tea.Msg {
		run, err := eng.Start(req, plan, func(e engine.Event) { send(eventMsg(e)) })
		if err != nil {
			send(listenStop{}) // release m.listen(): no event will come
		} else {
			go func() {
				res, err := run.Wait()
				send(finishedMsg{res: res, err: err})
			}()
		}
		return startedMsg{run: run, err: err}
	}
	return tea.Batch(startCmd, m.listen())
}

// listen waits for the next message from the engine's goroutine.
func (m Model) listen() tea.Cmd {
	ch := m.events
	return func() tea.Msg { return <-ch }
}
