package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// confirmModel is the dialog that q and ctrl+c open. Cancelling a rollout
// leaves remote jobs to be cancelled cleanly, so it is never one keystroke.
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
	body = append(body, wrapText("Nothing new will start. Running jobs are cancelled cleanly and the view stays until the engine has stopped; unfinished jobs are listed at the end.", inner)...)
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
