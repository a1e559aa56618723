package tui

import "charm.land/bubbles/v2/key"

// keyMap lists every key the view reacts to. The bindings double as the help
// text shown by `?` and in the footer.
type keyMap struct {
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Home     key.Binding
	End      key.Binding
	Open     key.Binding
	Back     key.Binding
	Filter   key.Binding
	Failures key.Binding
	Help     key.Binding
	Quit     key.Binding
	Yes      key.Binding
	No       key.Binding
}

func defaultKeys() keyMap {
	return keyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "space"), key.WithHelp("pgdn", "page down")),
		Home:     key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("home", "first row")),
		End:      key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("end", "last row")),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back / clear filter")),
		Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Failures: key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "failures only")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "cancel rollout")),
		Yes:      key.NewBinding(key.WithKeys("y", "Y", "enter", "ctrl+c"), key.WithHelp("y", "yes, cancel")),
		No:       key.NewBinding(key.WithKeys("n", "N", "esc", "q"), key.WithHelp("n/esc", "no, keep going")),
	}
}

// ShortHelp is the footer line. It must fit 80 columns next to the
// position counter and the filter: the help model cuts what does not fit
// from the right, and "q cancel" is the one key nobody may have to guess.
// The arrows need no reminder; `?` lists them.
func (k keyMap) ShortHelp() []key.Binding {
	short := func(b key.Binding, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, desc))
	}
	return []key.Binding{short(k.Quit, "cancel"), short(k.Open, "details"), short(k.Filter, "filter"),
		short(k.Failures, "failures"), short(k.Help, "help"),
		key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "move"))}
}

// FullHelp is the `?` pane, one column per group.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Open, k.Back, k.Filter, k.Failures},
		{k.Help, k.Quit},
	}
}

// confirmKeys is the help shown inside the confirmation dialog.
type confirmKeys struct{ k keyMap }

func (c confirmKeys) ShortHelp() []key.Binding  { return []key.Binding{c.k.Yes, c.k.No} }
func (c confirmKeys) FullHelp() [][]key.Binding { return [][]key.Binding{c.ShortHelp()} }
