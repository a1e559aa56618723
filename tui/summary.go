package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
)

// maxSummaryTargets bounds the target list of the summary: a 5,000-machine
// failure must not flood the terminal. Failures are listed in full above it.
const maxSummaryTargets = 20

// RenderSummary renders the end-of-run report that stays on the terminal
// after the live view is gone: verdict (with an ABORTED or INTERRUPTED banner),
// elapsed time and API requests, instance counts, root-cause failures,
// remote jobs left running, and the targets that did not succeed. width is
// the terminal width (0 means 80); color=false renders plain text. The result
// ends with a newline.
func RenderSummary(s engine.Summary, width int, color bool) string {
	// The summary comes straight from the engine: every string goes through
	// the output boundary before any style is added.
	s = cleanSummary(s)
	if !color {
		// Printed text may go to a file or a pipe: no escape sequence at all.
		return renderSummary(s, width, bareStyles())
	}
	return renderSummary(s, width, NewStyles(true))
}

// summaryVerdict is the one-word outcome and whether it is bad news.
func summaryVerdict(s engine.Summary) (string, bool) {
	return strings.ToUpper(s.Verdict.String()), !s.Verdict.Success()
}

func renderSummary(s engine.Summary, w int, st Styles) string {
	if w <= 0 {
		w = 80
	}
	var b strings.Builder
	line := func(text string) {
		text = clip(text, w)
		if !st.Color {
			text = strings.TrimRight(text, " ")
		}
		b.WriteString(text)
		b.WriteByte('\n')
	}

	verdict, bad := summaryVerdict(s)
	head := fmt.Sprintf("rollout %s: %s", s.Plan, verdict)
	if s.Verdict == engine.VerdictAborted && s.AbortReason != "" {
		head += " — " + s.AbortReason
	}
	if bad {
		line(st.Banner.Render(fit(" ⚠ "+head, w)))
	} else {
		line(st.Done.Render("✓ " + head))
	}

	elapsed := "—"
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		elapsed = fmtDur(s.Finished.Sub(s.Started))
	}
	line(st.Label.Render("elapsed ") + elapsed + st.Label.Render(" · API requests ") + fmt.Sprint(s.Requests) +
		st.Label.Render(" · targets ") + fmt.Sprint(machineTargets(s)))

	parts := make([]string, 0, 5)
	for _, o := range []engine.Outcome{engine.Succeeded, engine.Failed, engine.Skipped, engine.SkippedWhen, engine.Cancelled} {
		n := s.Counts[o]
		if n == 0 && o != engine.Succeeded && o != engine.Failed {
			continue
		}
		parts = append(parts, outcomeStyle(st, o).Render(fmt.Sprintf("%s %d", outcomeWord(string(o)), n)))
	}
	line(st.Label.Render("steps ") + strings.Join(parts, " · "))

	if len(s.Failures) > 0 {
		line("")
		line(st.Title.Render(fmt.Sprintf("Failures (root causes): %d", len(s.Failures))))
		for _, f := range s.Failures {
			where := machineName(f.Machine) + "/" + f.Image
			line("  " + st.Failed.Render("✗") + " " + f.Instance + st.Faint.Render(" on "+where))
			for _, part := range wrapText(engine.ErrText(f.Err), w-6) {
				line("      " + st.Err.Render(part))
			}
		}
	}

	if len(s.Switches) > 0 {
		line("")
		line(st.Title.Render("Profile switches"))
		for _, o := range s.Switches {
			g, what := st.Done.Render("✓"), o.Detail
			switch o.Outcome {
			case engine.Succeeded:
			case engine.Failed, engine.Cancelled:
				g, what = st.Failed.Render("✗"), string(o.Outcome)+": "+engine.ErrText(o.Err)
			default:
				g, what = st.Faint.Render("·"), string(o.Outcome)+": "+engine.ErrText(o.Err)
			}
			line("  " + g + " " + o.Instance)
			for _, part := range wrapText(what, w-6) {
				line("      " + st.Faint.Render(part))
			}
		}
	}

	if len(s.OnFailure) > 0 {
		line("")
		line(st.Title.Render("On failure"))
		ran, noops := engine.SplitNoops(s.OnFailure)
		for _, o := range ran {
			g, what := st.Done.Render("✓"), o.Detail
			if o.Outcome != engine.Succeeded {
				g, what = st.Failed.Render("✗"), string(o.Outcome)+": "+engine.ErrText(o.Err)
			}
			line("  " + g + " " + o.Instance)
			for _, part := range wrapText(what, w-6) {
				line("      " + st.Faint.Render(part))
			}
		}
		for _, n := range noops {
			line("  " + st.Faint.Render("· "+n.Label()))
			for _, part := range wrapText(n.Detail, w-6) {
				line("      " + st.Faint.Render(part))
			}
		}
	}

	// Who approved what stays on the terminal with the rest.
	var decided []engine.DecisionRecord
	for _, d := range s.Decisions {
		if d.Decision.Kind != engine.Stopped {
			decided = append(decided, d)
		}
	}
	if len(decided) > 0 {
		line("")
		line(st.Title.Render("Approvals and pauses"))
		for _, d := range decided {
			g := st.Done.Render("✓")
			if d.Decision.Kind == engine.Aborted || (d.Decision.Kind == engine.TimedOut && d.Wait.OnTimeout != "continue") {
				g = st.Failed.Render("✗")
			}
			for i, part := range wrapText(decisionText(d), w-4) {
				if i == 0 {
					line("  " + g + " " + part)
					continue
				}
				line("    " + part)
			}
		}
	}

	if len(s.Unfinished) > 0 {
		line("")
		line(st.Title.Render(fmt.Sprintf("Unfinished remote jobs: %d (they may still run on Clanforge)", len(s.Unfinished))))
		for _, u := range s.Unfinished {
			j := u.Job
			state := j.StateName
			if state == "" {
				state = fmt.Sprintf("state %d", j.State)
			}
			line(fmt.Sprintf("  %s %s job %d · %s %d%% · %s", st.Cancelled.Render("⊘"), orDash(j.Kind), j.ID, state,
				j.Progress, u.Instance))
		}
	}

	// Every target when they fit; otherwise those that did not succeed,
	// failures first, then in summary order, and `rollout status` has the
	// rest.
	var bad2 []engine.TargetSummary
	byOutcome := map[engine.Outcome]int{}
	listAll := len(s.Targets) <= maxSummaryTargets
	for _, t := range s.Targets {
		if t.Machine != "" {
			// Counted as validate and the plain reporter count targets:
			// (machine, image) pairs, not an image's own steps.
			byOutcome[t.Outcome]++
		}
		if listAll || (t.Outcome != engine.Succeeded && t.Outcome != engine.SkippedWhen) {
			bad2 = append(bad2, t)
		}
	}
	if len(s.Targets) > 0 {
		line("")
		tparts := make([]string, 0, 5)
		for _, o := range []engine.Outcome{engine.Succeeded, engine.Failed, engine.Cancelled, engine.Skipped, engine.SkippedWhen} {
			if n := byOutcome[o]; n > 0 || o == engine.Succeeded {
				tparts = append(tparts, outcomeStyle(st, o).Render(fmt.Sprintf("%s %d", outcomeWord(string(o)), n)))
			}
		}
		line(st.Title.Render("Targets ") + strings.Join(tparts, " · "))
	}
	rank := func(o engine.Outcome) int {
		switch o {
		case engine.Failed:
			return 0
		case engine.Cancelled:
			return 1
		case engine.Succeeded, engine.SkippedWhen:
			return 3
		}
		return 2
	}
	sort.SliceStable(bad2, func(i, j int) bool { return rank(bad2[i].Outcome) < rank(bad2[j].Outcome) })
	mw, iw := 8, 6
	for i, t := range bad2 {
		if i == maxSummaryTargets {
			break
		}
		mw = max(mw, lenCells(machineName(t.Machine)))
		iw = max(iw, lenCells(t.Image))
	}
	mw, iw = min(mw, 30), min(iw, 24)
	for i, t := range bad2 {
		if i == maxSummaryTargets {
			line(st.Faint.Render(fmt.Sprintf("  … and %d more (rollout status lists every target)", len(bad2)-maxSummaryTargets)))
			break
		}
		g := st.Skipped.Render("↷")
		switch t.Outcome {
		case engine.Succeeded, engine.SkippedWhen:
			g = st.Done.Render("✓")
		case engine.Failed:
			g = st.Failed.Render("✗")
		case engine.Cancelled:
			g = st.Cancelled.Render("⊘")
		}
		text := fmt.Sprintf("  %s %s %s %s %s", g, fit(machineName(t.Machine), mw), fit(t.Image, iw),
			fit(outcomeWord(string(t.Outcome)), 9), fit(durOrDash(t.Elapsed), 7))
		if t.Err != nil {
			text += " " + st.Faint.Render(shortErr(t.Err.Error(), w-lenCells(text)-1))
		}
		line(text)
	}
	return b.String()
}

func durOrDash(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmtDur(d)
}

// machineTargets counts the summary's (machine, image) targets, leaving out
// the rows of per-image steps, so that the count agrees with validate's and
// the plain reporter's.
func machineTargets(s engine.Summary) int {
	n := 0
	for _, t := range s.Targets {
		if t.Machine != "" {
			n++
		}
	}
	return n
}
