// Package tui owns the wizard that `livemigrate` opens on a terminal: a
// view over the engine. It shows the system, lets the user choose a target
// and options, shows the engine's plan for confirmation, and draws the run
// from the engine's events. Every decision (what may be a target, what the
// plan is, how the run goes) is the engine's, reached through Engine.
//
// Each screen is its own model with its own state and keys (overview.go,
// target.go, options.go, review.go, progress.go, result.go). The top model
// here routes to the current one, answers the keys that mean the same
// everywhere (ctrl+c), follows the terminal's size, talks to the engine,
// and moves between screens when one says it is done with what it
// collected.
package tui

import (
	"errors"
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// state is the screen the wizard shows.
type state int

const (
	stLoading  state = iota // observing the system
	stOverview              // what livemigrate does, the live stack; or why it cannot run
	stTarget                // choose the disk or partition
	stOptions               // whole disk or partition, hostname, speed
	stReview                // the plan, confirmation by typing the device name
	stProgress              // the run, from Start to its end
	stDone                  // migrated
	stError                 // something failed or was stopped
)

// Messages from the engine's commands and goroutine.
type (
	observedMsg struct {
		sys   *engine.System
		cands []engine.Candidate
		err   error
	}
	plannedMsg struct {
		plan *engine.Plan
		err  error
	}
	startedMsg struct {
		run Migration
		err error
	}
	eventMsg    engine.Event
	listenStop  struct{}
	finishedMsg struct {
		res *engine.Result
		err error
	}
)

// Messages from the screens: each says the screen is done and carries what
// it collected.
type (
	goMsg        state                       // back, or on, with nothing new
	quitMsg      struct{}                    // the user quits before anything changed
	rescanMsg    struct{}                    // look at the system again
	chosenMsg    engine.Candidate            // the target
	requestMsg   engine.Request              // the options, for Preflight
	confirmedMsg struct{ plan *engine.Plan } // the device name was typed: start
)

// send is a command that delivers msg.
func send(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }

// Interrupt asks the wizard to stop without asking anyone: the process got
// SIGTERM or SIGHUP. Before the point of no return a run is aborted
// cleanly; after it, the run finishes; then the wizard quits.
type Interrupt struct{}

// Model is the wizard.
type Model struct {
	eng       Engine
	c         *common
	help      help.Model
	interrupt key.Binding // ctrl+c, on every screen

	state   state
	sys     *engine.System
	req     engine.Request // what the options asked for
	exit    int
	leaving bool // quit when the run ends

	// The engine's events, and the end of the wizard for its goroutine.
	events chan tea.Msg
	gone   chan struct{}

	overview overview
	target   target
	options  options
	review   review
	progress progress
	result   result
}

// Options tune New for tests and terminals.
type Options struct {
	// Renderer draws the styles; nil means lipgloss's default (stdout).
	Renderer *lipgloss.Renderer
	// Term is $TERM; "linux" and "dumb" get the plain rendering.
	Term string
}

// New returns the wizard over eng.
func New(eng Engine, o Options) Model {
	r := o.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	c := &common{r: r, th: newTheme(r, o.Term), width: 80, high: 24}
	h := help.New()
	h.ShortSeparator = "  "
	h.Styles.ShortKey = c.th.strong
	h.Styles.ShortDesc = r.NewStyle()
	h.Styles.ShortSeparator = r.NewStyle()
	return Model{
		eng: eng, c: c, help: h, interrupt: interruptKey("quit"), state: stLoading,
		events: make(chan tea.Msg, 256), gone: make(chan struct{}),
		options: newOptions(c), review: newReview(c),
	}
}

// ExitCode is the process exit code the wizard ended with: 0 after a
// migration, the engine's code after a failure or refusal, 130 when the
// user quit before anything changed or stopped the run.
func (m Model) ExitCode() int { return m.exit }

// Err is what ended the wizard badly, if anything.
func (m Model) Err() error { return m.result.err }

// Migration is the run under way or finished, nil if none was started.
func (m Model) Migration() Migration { return m.progress.run }

func (m Model) Init() tea.Cmd {
	return m.observe()
}

// Update answers what concerns the whole wizard (the size, ctrl+c, the
// engine, a screen moving on) and passes the rest to the current screen.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.width, m.c.high = msg.Width, msg.Height
		m.help.Width = msg.Width
		return m, nil
	case Interrupt:
		if m.state != stProgress {
			return m.ctrlC()
		}
		m.leaving = true
		m.progress = m.progress.interrupted()
		return m, nil
	case tea.KeyMsg:
		if key.Matches(msg, m.interrupt) {
			return m.ctrlC()
		}
	case observedMsg:
		return m.observed(msg), nil
	case plannedMsg:
		return m.planned(msg)
	case startedMsg:
		return m.startedRun(msg)
	case eventMsg:
		m.progress = m.progress.event(engine.Event(msg))
		return m, m.listen()
	case finishedMsg:
		return m.finished(msg)
	case listenStop:
		return m, nil
	case goMsg:
		m.state = state(msg)
		return m, nil
	case quitMsg:
		return m.quitBefore()
	case rescanMsg:
		return m, m.observe()
	case chosenMsg:
		m.options = m.options.forTarget(engine.Candidate(msg))
		m.state = stOptions
		return m, nil
	case requestMsg:
		m.req = engine.Request(msg)
		return m, m.preflight()
	case confirmedMsg:
		m.state = stProgress
		m.progress = newProgress(m.c, m.sys, msg.plan)
		return m, m.start(msg.plan)
	}
	var cmd tea.Cmd
	switch m.state {
	case stOverview:
		m.overview, cmd = m.overview.update(msg)
	case stTarget:
		m.target, cmd = m.target.update(msg)
	case stOptions:
		m.options, cmd = m.options.update(msg)
	case stReview:
		m.review, cmd = m.review.update(msg)
	case stProgress:
		m.progress, cmd = m.progress.update(msg)
	case stDone, stError:
		m.result, cmd = m.result.update(msg)
	}
	return m, cmd
}

// quitBefore leaves before anything was changed.
func (m Model) quitBefore() (tea.Model, tea.Cmd) {
	if m.exit == 0 {
		m.exit = engine.ExitInterrupted
	}
	return m, tea.Quit
}

// ctrlC always does something: before a run it quits, during the copy it
// asks (and a second ctrl+c aborts), past the point of no return it says
// why the run goes on, at the end it quits.
func (m Model) ctrlC() (tea.Model, tea.Cmd) {
	switch m.state {
	case stProgress:
		m.progress = m.progress.stop()
		return m, nil
	case stDone, stError:
		return m, tea.Quit
	}
	return m.quitBefore()
}

// failed shows err on the error screen.
func (m Model) failed(err error, plan *engine.Plan) Model {
	m.exit = engine.ExitCode(err)
	m.result = newResult(m.c, m.sys, plan, nil, err, m.progress.warning)
	m.state = stError
	return m
}

func (m Model) observed(msg observedMsg) Model {
	if msg.err != nil {
		return m.failed(msg.err, nil)
	}
	m.sys = msg.sys
	m.overview = newOverview(m.c, m.sys)
	if m.sys.NotLive != "" {
		m.exit = engine.ExitNotLive
		m.state = stOverview
		return m
	}
	m.target = newTarget(m.c, m.sys, msg.cands)
	if m.state == stLoading {
		m.state = stOverview
	}
	return m
}

func (m Model) planned(msg plannedMsg) (tea.Model, tea.Cmd) {
	m.options = m.options.checked(msg.err)
	if msg.err != nil {
		return m, nil
	}
	var cmd tea.Cmd
	m.review, cmd = m.review.show(msg.plan)
	m.state = stReview
	return m, cmd
}

func (m Model) startedRun(msg startedMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		var pc *PlanChanged
		if errors.As(msg.err, &pc) {
			var cmd tea.Cmd
			m.review, cmd = m.review.replanned(pc.Plan)
			m.state = stReview
			return m, cmd
		}
		return m.failed(msg.err, m.progress.plan), nil
	}
	m.progress = m.progress.startedRun(msg.run)
	return m, nil
}

func (m Model) finished(msg finishedMsg) (tea.Model, tea.Cmd) {
	m.result = newResult(m.c, m.sys, m.progress.plan, msg.res, msg.err, m.progress.warning)
	m.exit = engine.ExitCode(msg.err)
	m.state = stDone
	if msg.err != nil {
		m.state = stError
	}
	if m.leaving {
		return m, tea.Quit
	}
	return m, nil
}

var crumbs = []struct {
	name string
	of   []state
}{
	{"Overview", []state{stLoading, stOverview}},
	{"Target", []state{stTarget}},
	{"Options", []state{stOptions}},
	{"Review", []state{stReview}},
	{"Progress", []state{stProgress}},
	{"Done", []state{stDone, stError}},
}

// header names the wizard and shows where the user is.
func (m Model) header() string {
	th := m.c.th
	var parts []string
	cur := ""
	for _, c := range crumbs {
		here := false
		for _, s := range c.of {
			here = here || s == m.state
		}
		if here {
			cur = c.name
			parts = append(parts, th.current.Render("["+c.name+"]"))
		} else {
			parts = append(parts, th.dim.Render(c.name))
		}
	}
	full := th.title.Render("livemigrate") + "  " + strings.Join(parts, " "+th.sep+" ")
	if m.c.width >= 72 {
		return full
	}
	return th.title.Render("livemigrate") + ": " + cur
}

// View draws the current screen: a header, the screen's body and the help
// bar, fitted to the terminal.
func (m Model) View() string {
	var body []string
	var keys bindings
	switch m.state {
	case stLoading:
		body, keys = []string{"Looking at the running system..."}, bindings{m.interrupt}
	case stOverview:
		body, keys = m.overview.view()
	case stTarget:
		body, keys = m.target.view()
	case stOptions:
		body, keys = m.options.view()
	case stReview:
		body, keys = m.review.view()
	case stProgress:
		body, keys = m.progress.view()
	case stDone, stError:
		body, keys = m.result.view()
	}
	lines := []string{m.header(), ""}
	lines = append(lines, fit(body, m.c.width, m.c.bodyHeight())...)
	lines = append(lines, fit([]string{m.help.ShortHelpView(keys)}, m.c.width, 1)...)
	return strings.Join(lines, "\n")
}
