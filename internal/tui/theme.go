package tui

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// theme holds the styles and marks. Plain is for terminals without colours
// (NO_COLOR, TERM=dumb) and the Linux console, whose font lacks most
// symbols: everything that colour or a glyph says is also said in ASCII
// text, so a plain screen loses nothing but looks.
type theme struct {
	plain   bool
	profile termenv.Profile

	title, current, dim, bad, good, warn, strong, input lipgloss.Style

	markDone, markRun, markTodo, markFail, cursor, sep string
	full, empty                                        rune
}

func newTheme(r *lipgloss.Renderer, term string) theme {
	p := r.ColorProfile()
	t := theme{profile: p, plain: p == termenv.Ascii || term == "linux" || term == "dumb"}
	t.title = r.NewStyle().Bold(true)
	t.current = r.NewStyle().Bold(true).Foreground(lipgloss.Color("12"))
	t.dim = r.NewStyle().Faint(true)
	t.bad = r.NewStyle().Foreground(lipgloss.Color("9")).Bold(true)
	t.good = r.NewStyle().Foreground(lipgloss.Color("10"))
	t.warn = r.NewStyle().Foreground(lipgloss.Color("11"))
	t.strong = r.NewStyle().Bold(true)
	t.input = r.NewStyle().Bold(true)
	if t.plain {
		t.markDone, t.markRun, t.markTodo, t.markFail = "[x]", "[>]", "[ ]", "[!]"
		t.cursor, t.sep = ">", ">"
		t.full, t.empty = '#', '.'
	} else {
		t.markDone, t.markRun, t.markTodo, t.markFail = " ✓ ", " ▸ ", " · ", " ✗ "
		t.cursor, t.sep = "▸", "›"
		t.full, t.empty = '█', '░'
	}
	return t
}
