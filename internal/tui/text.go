package tui

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/x/ansi"
)

// wrap breaks plain text into lines of at most width cells. A line that
// starts with spaces, "- " or "N. " continues under its text, so a plan's
// numbered steps stay readable when they wrap.
func wrap(s string, width int) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, wrapLine(line, width)...)
	}
	return out
}

func wrapLine(line string, width int) []string {
	if width < 10 {
		width = 10
	}
	if ansi.StringWidth(line) <= width {
		return []string{line}
	}
	indent := hangingIndent(line)
	if indent > width/2 {
		indent = 0
	}
	pad := strings.Repeat(" ", indent)
	var out []string
	cur := line[:leadingSpaces(line)]
	words := strings.Fields(line)
	first := true
	for _, w := range words {
		sep := " "
		if first {
			sep = ""
		}
		if ansi.StringWidth(cur)+len(sep)+ansi.StringWidth(w) > width && strings.TrimSpace(cur) != "" {
			out = append(out, cur)
			cur, sep = pad, ""
		}
		for ansi.StringWidth(cur)+len(sep)+ansi.StringWidth(w) > width {
			// A word longer than a line: break it.
			room := width - ansi.StringWidth(cur) - len(sep)
			out = append(out, cur+sep+ansi.Truncate(w, room, ""))
			w = ansi.TruncateLeft(w, room, "")
			cur, sep = pad, ""
		}
		cur += sep + w
		first = false
	}
	return append(out, cur)
}

func leadingSpaces(s string) int {
	return len(s) - len(strings.TrimLeft(s, " "))
}

// hangingIndent is where a wrapped line's continuation starts.
func hangingIndent(line string) int {
	n := leadingSpaces(line)
	rest := line[n:]
	if strings.HasPrefix(rest, "- ") {
		return n + 2
	}
	i := 0
	for i < len(rest) && unicode.IsDigit(rune(rest[i])) {
		i++
	}
	if i > 0 && strings.HasPrefix(rest[i:], ". ") {
		return n + i + 2
	}
	return n
}

// fit cuts every line to width and the block to height lines, padding it to
// exactly height lines so the help bar stays at the bottom.
func fit(lines []string, width, height int) []string {
	out := make([]string, 0, height)
	for _, l := range lines {
		if len(out) == height {
			break
		}
		out = append(out, ansi.Truncate(l, width, "…"))
	}
	for len(out) < height {
		out = append(out, "")
	}
	return out
}

// duration prints an ETA or elapsed time the way people say it.
func duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
