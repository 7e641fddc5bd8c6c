package tui

import "github.com/charmbracelet/bubbles/key"

// Every screen declares the keys it answers to once, in its own keys
// struct, and lists the ones that apply now for the help bar. The keys that
// mean the same on several screens are made here, so that q, esc and the
// scroll keys are one binding whatever the screen.

func quitKey() key.Binding {
	return key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit"))
}

func backKey() key.Binding {
	return key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back"))
}

// enterKey is enter, named for what it does on the screen.
func enterKey(does string) key.Binding {
	return key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", does))
}

// interruptKey is ctrl+c, which the top model answers on every screen; a
// screen names it in its help for what it does there.
func interruptKey(does string) key.Binding {
	return key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", does))
}

// scrollKeys move a text that does not fit by a line.
type scrollKeys struct{ Up, Down key.Binding }

func newScrollKeys() scrollKeys {
	return scrollKeys{
		Up:   key.NewBinding(key.WithKeys("pgup", "up"), key.WithHelp("pgup", "scroll up")),
		Down: key.NewBinding(key.WithKeys("pgdown", "down"), key.WithHelp("pgdn", "scroll down")),
	}
}

// bindings is the list of keys a screen shows; it satisfies help.KeyMap.
type bindings []key.Binding

func (b bindings) ShortHelp() []key.Binding  { return b }
func (b bindings) FullHelp() [][]key.Binding { return [][]key.Binding{b} }

// withHelp returns b with another help text, for keys whose meaning
// changes with the screen's state.
func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}
