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
	// Approve and Abort open their confirmations; Confirm is their yes,
	// deliberately not enter or ctrl+c: approving or aborting a rollout
	// takes a key nobody presses by accident.
	Approve key.Binding
	Abort   key.Binding
	Confirm key.Binding
	// quitShort is what q does, in the footer.
	quitShort string
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
		Approve:  key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "approve")),
		Abort:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "abort rollout")),
		Confirm:  key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),

		quitShort: "cancel",
	}
}

// watchKeys are the keys of a watcher: q leaves the view, the run goes on.
func watchKeys() keyMap {
	k := defaultKeys()
	k.Quit = key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "leave (the rollout goes on)"))
	k.quitShort = "leave"
	return k
}

// ShortHelp is the footer line. It must fit 80 columns next to the
// position counter and the filter: the help model cuts what does not fit
// from the right, and "q cancel" is the one key nobody may have to guess.
// The arrows need no reminder; `?` lists them.
func (k keyMap) ShortHelp() []key.Binding {
	short := func(b key.Binding, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, desc))
	}
	return []key.Binding{short(k.Quit, k.quitShort), short(k.Open, "details"), short(k.Filter, "filter"),
		short(k.Failures, "failures"), short(k.Help, "help"),
		key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "move"))}
}

// controlHelp is the footer while the run waits for a person: approving
// and aborting come first, where nobody has to look for them.
func (k keyMap) controlHelp(approve, abort bool) []key.Binding {
	var out []key.Binding
	short := func(b key.Binding, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, desc))
	}
	if approve {
		out = append(out, k.Approve)
	}
	if abort {
		out = append(out, short(k.Abort, "abort"))
	}
	return append(out, k.ShortHelp()...)
}

// FullHelp is the `?` pane, one column per group.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Open, k.Back, k.Filter, k.Failures},
		{k.Approve, k.Abort, k.Help, k.Quit},
	}
}

// confirmKeys is the help shown inside the confirmation dialog.
type confirmKeys struct{ k keyMap }

func (c confirmKeys) ShortHelp() []key.Binding { return []key.Binding{c.k.Yes, c.k.No} }

// decideKeys is the help inside the approve and abort confirmations.
type decideKeys struct {
	k   keyMap
	yes string
}

func (c decideKeys) ShortHelp() []key.Binding {
	return []key.Binding{key.NewBinding(key.WithKeys(c.k.Confirm.Keys()...), key.WithHelp("y", c.yes)),
		key.NewBinding(key.WithKeys(c.k.No.Keys()...), key.WithHelp("n/esc", "no, go back"))}
}
func (c decideKeys) FullHelp() [][]key.Binding  { return [][]key.Binding{c.ShortHelp()} }
func (c confirmKeys) FullHelp() [][]key.Binding { return [][]key.Binding{c.ShortHelp()} }
