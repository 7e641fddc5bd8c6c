// Package tui owns the wizard that `livemigrate` opens on a terminal: a
// view over the engine. It shows the system, lets the user choose a target
// and options, shows the engine's plan for confirmation, and draws the run
// from the engine's events. Every decision (what may be a target, what the
// plan is, how the run goes) is the engine's, reached through Engine.
package tui

import (
	"errors"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

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

// Messages from commands and from the engine's goroutine.
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

// Interrupt asks the wizard to stop without asking anyone: the process got
// SIGTERM or SIGHUP. Before the point of no return a run is aborted
// cleanly; after it, the run finishes; then the wizard quits.
type Interrupt struct{}

// Model is the wizard.
type Model struct {
	eng   Engine
	th    theme
	keys  keyMap
	help  help.Model
	width int
	high  int

	state state
	sys   *engine.System
	cands []engine.Candidate
	err   error // Observe's error, a refusal, or the run's error
	exit  int

	// Choose the target.
	rows   []row
	cursor int
	chosen *engine.Candidate

	// Options.
	speed    engine.Speed
	finalize bool
	hostname textinput.Model
	password [2]textinput.Model // the live user's new password, typed twice
	focus    int                // optLayout ... optSpeed
	rawDisk  bool
	req      engine.Request // what the options asked for
	optNote  string         // a refusal from Preflight, shown on the options screen
	busy     bool           // a command is under way (preflight, start)

	// Review.
	plan     *engine.Plan
	input    textinput.Model
	scroll   int
	mismatch string
	changed  bool // the plan was made again because the system changed

	// Progress.
	run        Migration
	events     chan tea.Msg
	gone       chan struct{}
	steps      map[engine.StepKind]stepState
	prog       *engine.Progress
	bar        progress.Model
	started    *eventMsg // first event, for elapsed time
	last       *eventMsg
	warning    string
	stepNote   map[engine.StepKind]string // the last progress message of a step without a bar
	noReturn   bool                       // the irreversible step has started
	asking     bool                       // "stop the migration?" is shown
	aborting   bool
	leaving    bool // quit when the run ends
	note       string
	runSpeed   engine.Speed
	speedAsked engine.Speed // a toggle not yet confirmed by the engine
	recovering bool
	result     *engine.Result
}

type stepState int

const (
	stepTodo stepState = iota
	stepRunning
	stepDone
	stepFailed
)

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
	th := newTheme(r, o.Term)
	h := help.New()
	h.ShortSeparator = "  "
	h.Styles.ShortKey = th.strong
	h.Styles.ShortDesc = r.NewStyle()
	h.Styles.ShortSeparator = r.NewStyle()
	in := textinput.New()
	in.Prompt = "> "
	in.CharLimit = 128
	in.Width = 40
	in.TextStyle = th.input
	in.Cursor.Style = r.NewStyle().Reverse(true)
	in.Cursor.TextStyle = th.input
	field := func(limit int) textinput.Model {
		f := textinput.New()
		f.Prompt = ""
		f.CharLimit = limit
		f.Width = 30
		f.TextStyle = th.input
		f.PlaceholderStyle = th.dim
		f.Cursor.Style = r.NewStyle().Reverse(true)
		f.Cursor.TextStyle = th.input
		f.Cursor.SetMode(cursor.CursorStatic)
		return f
	}
	host := field(63)
	host.Placeholder = "keep the live one"
	var pw [2]textinput.Model
	for i := range pw {
		pw[i] = field(128)
		pw[i].EchoMode = textinput.EchoPassword
		pw[i].EchoCharacter = '*'
	}
	pw[0].Placeholder = "none: keep the account locked"
	in.Cursor.SetMode(cursor.CursorStatic)
	bar := progress.New(progress.WithoutPercentage(), progress.WithColorProfile(th.profile),
		progress.WithFillCharacters(th.full, th.empty), progress.WithSolidFill("12"), progress.WithWidth(40))
	if th.profile == termenv.Ascii {
		bar.FullColor, bar.EmptyColor = "", ""
	}
	return Model{
		eng: eng, th: th, keys: newKeyMap(), help: h, width: 80, high: 24,
		state: stLoading, speed: engine.SpeedFast, finalize: true, input: in, hostname: host, password: pw, bar: bar,
		events: make(chan tea.Msg, 256), gone: make(chan struct{}),
		steps: map[engine.StepKind]stepState{}, stepNote: map[engine.StepKind]string{},
	}
}

// ExitCode is the process exit code the wizard ended with: 0 after a
// migration, the engine's code after a failure or refusal, 130 when the
// user quit before anything changed or stopped the run.
func (m Model) ExitCode() int { return m.exit }

// Err is what ended the wizard badly, if anything.
func (m Model) Err() error { return m.err }

// Migration is the run under way or finished, nil if none was started.
func (m Model) Migration() Migration { return m.run }

func (m Model) Init() tea.Cmd {
	return m.observe()
}

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

// listen waits for the next message from the engine's goroutine.
func (m Model) listen() tea.Cmd {
	ch := m.events
	return func() tea.Msg { return <-ch }
}

// Update is the state machine: global keys first, then the screen's.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.high = msg.Width, msg.Height
		m.help.Width = msg.Width
		return m, nil
	case Interrupt:
		return m.interrupt()
	case tea.KeyMsg:
		if key.Matches(msg, m.keys.Interrupt) {
			return m.ctrlC()
		}
	case observedMsg:
		return m.observed(msg)
	case plannedMsg:
		return m.planned(msg)
	case startedMsg:
		return m.startedRun(msg)
	case eventMsg:
		m = m.event(engine.Event(msg))
		return m, m.listen()
	case finishedMsg:
		return m.finished(msg)
	case listenStop:
		return m, nil
	}
	switch m.state {
	case stOverview:
		return m.updateOverview(msg)
	case stTarget:
		return m.updateTarget(msg)
	case stOptions:
		return m.updateOptions(msg)
	case stReview:
		return m.updateReview(msg)
	case stProgress:
		return m.updateProgress(msg)
	case stDone, stError:
		if k, ok := msg.(tea.KeyMsg); ok {
			switch {
			case key.Matches(k, m.keys.Quit) || key.Matches(k, m.keys.Next):
				return m, tea.Quit
			case key.Matches(k, m.keys.PageUp):
				m.scroll = max(m.scroll-1, 0)
			case key.Matches(k, m.keys.PageDn):
				body, _ := m.viewDone()
				if m.state == stError {
					body, _ = m.viewError()
				}
				// Not past the last window, so pgup answers at once.
				m.scroll = min(m.scroll+1, max(len(body)-m.bodyHeight()+1, 0))
			}
		}
	}
	return m, nil
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
		switch {
		case m.aborting:
			m.note = "Already stopping: " + m.plan.Target + " is being taken out of the array."
		case m.noReturn:
			m.note = "Past the point of no return: / already lives on " + m.plan.Target + ". The migration finishes by itself; stopping now would leave a half state."
		case m.asking:
			return m.abort()
		default:
			m.asking = true
		}
		return m, nil
	case stDone, stError:
		return m, tea.Quit
	case stOverview:
		if m.sys != nil && m.sys.NotLive != "" {
			return m, tea.Quit // exit holds the refusal's code
		}
	case stLoading:
		if m.err != nil {
			return m, tea.Quit
		}
	}
	m.exit = engine.ExitInterrupted
	return m, tea.Quit
}

func (m Model) interrupt() (tea.Model, tea.Cmd) {
	if m.state != stProgress {
		return m.ctrlC()
	}
	m.leaving = true
	if !m.noReturn && !m.aborting {
		return m.abort()
	}
	return m, nil
}

func (m Model) abort() (tea.Model, tea.Cmd) {
	m.asking = false
	m.aborting = true
	m.note = "Stopping: taking " + m.plan.Target + " out of the array again; the live session stays as it is."
	if m.run != nil {
		m.run.Cancel()
	}
	return m, nil
}

func (m Model) observed(msg observedMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.err = msg.err
		m.exit = engine.ExitCode(msg.err)
		m.state = stError
		return m, nil
	}
	m.sys, m.cands = msg.sys, msg.cands
	if m.sys.NotLive != "" {
		m.exit = engine.ExitNotLive
		m.state = stOverview
		return m, nil
	}
	m.rows = buildRows(m.cands)
	m.cursor = m.firstUsable()
	if m.state == stLoading {
		m.state = stOverview
	}
	return m, nil
}

func (m Model) planned(msg plannedMsg) (tea.Model, tea.Cmd) {
	m.busy = false
	if msg.err != nil {
		m.optNote = msg.err.Error()
		return m, nil
	}
	m.plan = msg.plan
	m.state = stReview
	m.scroll = 0
	m.mismatch = ""
	m.changed = false
	m.input.Reset()
	return m, m.input.Focus()
}

func (m Model) startedRun(msg startedMsg) (tea.Model, tea.Cmd) {
	m.busy = false
	if msg.err != nil {
		var pc *PlanChanged
		if errors.As(msg.err, &pc) {
			m.plan = pc.Plan
			m.state = stReview
			m.changed = true
			m.input.Reset()
			return m, m.input.Focus()
		}
		m.err = msg.err
		m.exit = engine.ExitCode(msg.err)
		m.state = stError
		return m, nil
	}
	m.run = msg.run
	if m.aborting {
		m.run.Cancel()
	}
	return m, nil
}

func (m Model) finished(msg finishedMsg) (tea.Model, tea.Cmd) {
	m.result = msg.res
	m.aborting, m.asking = false, false
	m.scroll = 0
	if msg.err != nil {
		m.err = msg.err
		m.exit = engine.ExitCode(msg.err)
		m.state = stError
	} else {
		m.exit = engine.ExitOK
		m.state = stDone
	}
	if m.leaving {
		return m, tea.Quit
	}
	return m, nil
}

// View draws the current screen: a header, the screen's body and the help
// bar, fitted to the terminal.
func (m Model) View() string {
	var body []string
	var keys bindings
	switch m.state {
	case stLoading:
		body, keys = m.viewLoading()
	case stOverview:
		body, keys = m.viewOverview()
	case stTarget:
		body, keys = m.viewTarget()
	case stOptions:
		body, keys = m.viewOptions()
	case stReview:
		body, keys = m.viewReview()
	case stProgress:
		body, keys = m.viewProgress()
	case stDone:
		body, keys = m.viewDone()
	case stError:
		body, keys = m.viewError()
	}
	if m.state == stDone || m.state == stError {
		// A finalize report or a long error may not fit: it scrolls.
		var scrolls bool
		if body, scrolls = m.window(body, m.bodyHeight()); scrolls {
			keys = append(bindings{m.keys.PageUp, m.keys.PageDn}, keys...)
		}
	}
	lines := []string{m.header(), ""}
	lines = append(lines, fit(body, m.width, m.bodyHeight())...)
	lines = append(lines, fit([]string{m.help.ShortHelpView(keys)}, m.width, 1)...)
	return strings.Join(lines, "\n")
}

// bodyHeight is what is left for a screen between the header (and the
// blank line under it) and the help bar.
func (m Model) bodyHeight() int {
	h := m.high - 3
	if h < 3 {
		h = 3
	}
	return h
}
