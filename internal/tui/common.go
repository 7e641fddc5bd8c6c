package tui

import (
	"fmt"

	"github.com/charmbracelet/lipgloss"
)

// common is what every screen shares with the top model: the styles and
// the terminal's size. The screens hold a pointer to it; only the top model
// writes it, when the terminal is resized.
type common struct {
	r     *lipgloss.Renderer
	th    theme
	width int
	high  int
}

func (c *common) para(s string) []string { return wrap(s, c.width) }

// bodyHeight is what is left for a screen between the header (and the
// blank line under it) and the help bar.
func (c *common) bodyHeight() int {
	h := c.high - 3
	if h < 3 {
		h = 3
	}
	return h
}

// window shows room lines of lines from line scroll on, the last of them
// saying which lines these are, when lines do not fit; scrolls tells.
func (c *common) window(lines []string, room, scroll int) (shown []string, scrolls bool) {
	if room >= len(lines) || room < 2 {
		return lines, false
	}
	off := min(scroll, len(lines)-room+1)
	more := fmt.Sprintf("(lines %d-%d of %d; pgup/pgdn to scroll)", off+1, off+room-1, len(lines))
	return append(lines[off:off+room-1:off+room-1], c.th.dim.Render(more)), true
}
