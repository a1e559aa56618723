package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
)

// helpModel is the `?` pane: every key, grouped, and what the row symbols
// mean.
type helpModel struct {
	open  bool
	model help.Model
}

func newHelp(st Styles) helpModel {
	h := help.New()
	h.Styles = st.Help
	return helpModel{model: h}
}

// footer is the one-line key reminder.
func (h *helpModel) footer(keys keyMap, w int) string {
	h.model.SetWidth(w)
	return h.model.ShortHelpView(keys.ShortHelp())
}

// View renders exactly ht lines.
func (h *helpModel) View(st Styles, keys keyMap, w, ht int) []string {
	h.model.SetWidth(w)
	lines := []string{st.Title.Render("Keys"), ""}
	lines = append(lines, strings.Split(h.model.FullHelpView(keys.FullHelp()), "\n")...)
	lines = append(lines, "",
		st.Title.Render("Rows"),
		"",
		"  "+st.Failed.Render("✗")+" failed   "+st.Cancelled.Render("⊘")+" cancelled   "+st.Running.Render("▶")+" running   "+
			st.Waiting.Render("·")+" waiting   "+st.Done.Render("✓")+" done   "+st.Skipped.Render("↷")+" skipped",
		"  Failed rows come first, then running, then waiting, then finished;",
		"  inside a group rows keep plan order. Machine — is an image's own step",
		"  (version, mirror).",
		"",
		st.Faint.Render("? or esc closes this help"),
	)
	out := make([]string, 0, ht)
	for _, l := range lines {
		if len(out) == ht {
			break
		}
		out = append(out, clip(l, w))
	}
	for len(out) < ht {
		out = append(out, "")
	}
	return out
}
