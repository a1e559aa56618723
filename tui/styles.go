package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// Styles holds every style the view uses, so that colour decisions live in
// one place. Colours are the terminal's own 16 ANSI colours (not RGB values)
// so that they follow the user's terminal theme; with colour off (NO_COLOR or
// Options.NoColor) only attributes such as bold and reverse remain, which the
// NO_COLOR convention allows and which keep the banner and the selection
// visible.
type Styles struct {
	Color bool

	Title  lipgloss.Style
	Faint  lipgloss.Style
	Label  lipgloss.Style
	Banner lipgloss.Style // abort/interrupt banner: must be unmistakable
	Notice lipgloss.Style // milder banner (finished, resumed)

	ColHeader lipgloss.Style
	Selected  lipgloss.Style

	Failed    lipgloss.Style
	Running   lipgloss.Style
	Waiting   lipgloss.Style
	Done      lipgloss.Style
	Skipped   lipgloss.Style
	Cancelled lipgloss.Style
	Err       lipgloss.Style

	BarFull  lipgloss.Style
	BarEmpty lipgloss.Style

	Dialog      lipgloss.Style
	DialogTitle lipgloss.Style
	Pane        lipgloss.Style
	Prompt      lipgloss.Style

	Help help.Styles
}

// NewStyles returns the style set; color=false gives a set without any
// colour.
func NewStyles(color bool) Styles {
	s := Styles{Color: color}
	plain := lipgloss.NewStyle()
	s.Title = plain.Bold(true)
	s.Label = plain
	s.ColHeader = plain.Bold(true)
	s.Selected = plain.Reverse(true)
	s.Banner = plain.Bold(true).Reverse(true)
	s.Notice = plain.Bold(true)
	s.Faint = plain
	s.Failed = plain.Bold(true)
	s.Running = plain
	s.Waiting = plain
	s.Done = plain
	s.Skipped = plain
	s.Cancelled = plain.Bold(true)
	s.Err = plain
	s.BarFull = plain
	s.BarEmpty = plain
	s.DialogTitle = plain.Bold(true)
	s.Dialog = plain.Border(lipgloss.RoundedBorder()).Padding(0, 1)
	s.Pane = plain
	s.Prompt = plain.Bold(true)
	s.Help = help.Styles{
		Ellipsis:       plain,
		ShortKey:       plain.Bold(true),
		ShortDesc:      plain,
		ShortSeparator: plain,
		FullKey:        plain.Bold(true),
		FullDesc:       plain,
		FullSeparator:  plain,
	}
	if !color {
		return s
	}

	red := lipgloss.Color("1")
	green := lipgloss.Color("2")
	yellow := lipgloss.Color("3")
	blue := lipgloss.Color("4")
	cyan := lipgloss.Color("6")
	grey := lipgloss.Color("8")

	s.Title = s.Title.Foreground(cyan)
	s.Faint = s.Faint.Foreground(grey)
	s.Label = s.Label.Foreground(grey)
	s.Banner = plain.Bold(true).Foreground(lipgloss.Color("15")).Background(red)
	s.Notice = s.Notice.Foreground(yellow)
	s.ColHeader = s.ColHeader.Foreground(grey)
	s.Failed = s.Failed.Foreground(red)
	s.Running = s.Running.Foreground(blue)
	s.Waiting = s.Waiting.Foreground(grey)
	s.Done = s.Done.Foreground(green)
	s.Skipped = s.Skipped.Foreground(yellow)
	s.Cancelled = s.Cancelled.Foreground(yellow)
	s.Err = s.Err.Foreground(red)
	s.BarFull = s.BarFull.Foreground(blue)
	s.BarEmpty = s.BarEmpty.Foreground(grey)
	s.Dialog = s.Dialog.BorderForeground(red)
	s.DialogTitle = s.DialogTitle.Foreground(red)
	s.Prompt = s.Prompt.Foreground(cyan)
	s.Help.ShortKey = s.Help.ShortKey.Foreground(cyan)
	s.Help.FullKey = s.Help.FullKey.Foreground(cyan)
	s.Help.ShortDesc = s.Help.ShortDesc.Foreground(grey)
	s.Help.ShortSeparator = s.Help.ShortSeparator.Foreground(grey)
	s.Help.Ellipsis = s.Help.Ellipsis.Foreground(grey)
	return s
}
