package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/rollout/rollout/engine"
)

// confirmModel is the dialog that q and ctrl+c open (cancel), and that a
// (approve) and x (abort) open. Cancelling a rollout leaves remote jobs
// running and half a fleet updated; approving lets it go on to the rest of
// the fleet; aborting runs on_failure: none of them is ever one keystroke.
type confirmModel struct {
	open bool
	kind confirmKind
	// wait is the approval an approve dialog is about.
	wait engine.WaitInfo
}

type confirmKind uint8

const (
	confirmCancel confirmKind = iota
	confirmApprove
	confirmAbort
)

// View renders the dialog box; overlay puts it over the body.
func (c *confirmModel) View(st Styles, h help.Model, keys keyMap, w int) string {
	inner := min(56, max(w-6, 20))
	var body []string
	switch c.kind {
	case confirmApprove:
		body = c.approveBody(st, inner)
		body = append(body, "", h.ShortHelpView(decideKeys{keys, "yes, approve"}.ShortHelp()))
	case confirmAbort:
		body = []string{st.DialogTitle.Render("Abort the rollout?"), ""}
		body = append(body, wrapText("Nothing new will start; what runs now ends, on_failure runs, and the run exits with status 1. "+
			"The abort is recorded in the journal with your name.", inner)...)
		body = append(body, "", h.ShortHelpView(decideKeys{keys, "yes, abort"}.ShortHelp()))
	default:
		body = []string{st.DialogTitle.Render("Cancel the rollout?"), ""}
		// Say exactly what an interrupt does (plan format: send nothing
		// more that changes state, record every unfinished job): jobs
		// already running on Clanforge are not stopped, and at 3 a.m.
		// nobody should believe they were.
		body = append(body, wrapText("Nothing new will start and nothing more is sent to Clanforge. Jobs already running there keep running: each is recorded and listed at the end, and --resume picks them up. Exit status 130.", inner)...)
		body = append(body, "", h.ShortHelpView(confirmKeys{keys}.ShortHelp()))
	}
	return st.Dialog.Width(inner + 4).Render(strings.Join(body, "\n"))
}

// approveBody says what an approval lets happen: the wait, its question
// and where the rollout stands.
func (c *confirmModel) approveBody(st Styles, inner int) []string {
	w := c.wait
	body := []string{st.DialogTitle.Render(clip("Approve "+w.ID+"?", inner)), ""}
	if w.Message != "" {
		body = append(body, wrapText(w.Message, inner)...)
	}
	if w.Progress != "" {
		body = append(body, wrapText("Now: "+w.Progress+".", inner)...)
	}
	next := "The steps that wait for it start."
	if w.Wave >= 0 {
		next = fmt.Sprintf("The next wave of %s on %s starts.", w.Step, w.Image)
	}
	body = append(body, wrapText(next+" The approval is recorded in the journal with your name.", inner)...)
	return body
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
