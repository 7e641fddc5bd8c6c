package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap declares every key of the wizard once; each screen shows the ones
// it answers to in the help bar.
type keyMap struct {
	Up, Down       key.Binding
	PageUp, PageDn key.Binding
	Next           key.Binding
	Back           key.Binding
	Rescan         key.Binding
	Speed          key.Binding
	FocusNext      key.Binding
	FocusPrev      key.Binding
	Toggle         key.Binding
	Confirm        key.Binding
	Abort          key.Binding
	KeepWaiting    key.Binding
	Quit           key.Binding
	Interrupt      key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("up/k", "up")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("down/j", "down")),
		PageUp:      key.NewBinding(key.WithKeys("pgup", "up"), key.WithHelp("pgup", "scroll up")),
		PageDn:      key.NewBinding(key.WithKeys("pgdown", "down"), key.WithHelp("pgdn", "scroll down")),
		Next:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "next")),
		Back:        key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Rescan:      key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rescan")),
		Speed:       key.NewBinding(key.WithKeys("left", "right", " "), key.WithHelp("space", "change")),
		FocusNext:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next")),
		FocusPrev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "back up")),
		Toggle:      key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "fast/gentle")),
		Confirm:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "start")),
		Abort:       key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "abort")),
		KeepWaiting: key.NewBinding(key.WithKeys("esc", "w"), key.WithHelp("esc", "keep waiting")),
		Quit:        key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt:   key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
	}
}

// help is the list of bindings a screen shows; it satisfies help.KeyMap.
type bindings []key.Binding

func (b bindings) ShortHelp() []key.Binding  { return b }
func (b bindings) FullHelp() [][]key.Binding { return [][]key.Binding{b} }

// withHelp returns b with another help text, for keys whose meaning depends
// on the screen (enter, ctrl+c).
func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}
