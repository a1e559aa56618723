package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// confirmModel is the dialog that q and ctrl+c open. Cancelling a rollout
// leaves remote jobs running and half a fleet updated, so it is never one
// keystroke.
type confirmModel struct {
	open bool
}

// View renders the dialog box; overlay puts it over the body.
func (c *confirmModel) View(st Styles, h help.Model, keys keyMap, w int) string {
	inner := min(56, max(w-6, 20))
	body := []string{
		st.DialogTitle.Render("Cancel the rollout?"),
		"",
	}
	// Say exactly what an interrupt does (plan format: send nothing more
	// that changes state, record every unfinished job): jobs already
	// running on Clanforge are not stopped, and at 3 a.m. nobody should
	// believe they were.
	body = append(body, wrapText("Nothing new will start and nothing more is sent to Clanforge. Jobs already running there keep running: each is recorded and listed at the end, and --resume picks them up. Exit status 130.", inner)...)
	body = append(body, "", h.ShortHelpView(confirmKeys{keys}.ShortHelp()))
	return st.Dialog.Width(inner + 4).Render(strings.Join(body, "\n"))
}

// overlay draws box centred over the lines of base (each w cells wide).
func overlay(base []string, box string, w int) []string {
	boxLines := strings.Split(box, "\n")
	bw := lipgloss.Width(box)
	top := max((len(base)-len(boxLines))/2, 0)
	left := max((w-bw)/2, 0)
	out := append([]string(nil), base...)
	for i, bl := range boxLines {
		y := top + i
		if y >= len(out) {
			break
		}
		if bw >= w {
			// A terminal narrower than the box: the box wins, clipped.
			out[y] = clip(bl, w)
			continue
		}
		line := padRight(out[y], w)
		out[y] = ansi.Truncate(line, left, "") + bl + ansi.TruncateLeft(line, left+bw, "")
	}
	return out
}
