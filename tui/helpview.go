package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
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
	return h.footerOf(keys.ShortHelp(), w)
}

// footerOf is the one-line reminder of the given keys.
func (h *helpModel) footerOf(keys []key.Binding, w int) string {
	h.model.SetWidth(w)
	return h.model.ShortHelpView(keys)
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
	)
	if keys.Approve.Enabled() || keys.Abort.Enabled() {
		lines = append(lines,
			st.Title.Render("Waiting for a person"),
			"",
			"  A banner says what the rollout waits for. a approves it and x aborts the",
			"  rollout, each after you confirm with y; both are recorded with your name.",
			"  From another terminal: rollout approve PLAN, rollout abort PLAN.",
			"",
		)
	}
	lines = append(lines,
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
