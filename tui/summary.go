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

// summaryWriter accumulates the summary's lines, each clipped to the
// terminal width.
type summaryWriter struct {
	b  strings.Builder
	w  int
	st Styles
}

func (sw *summaryWriter) line(text string) {
	text = clip(text, sw.w)
	if !sw.st.Color {
		text = strings.TrimRight(text, " ")
	}
	sw.b.WriteString(text)
	sw.b.WriteByte('\n')
}

// wrapped writes text wrapped to the width less the indent, each piece
// indented and styled alike.
func (sw *summaryWriter) wrapped(indent, text string, style func(...string) string) {
	for _, part := range wrapText(text, sw.w-len(indent)) {
		sw.line(indent + style(part))
	}
}

func renderSummary(s engine.Summary, w int, st Styles) string {
	if w <= 0 {
		w = 80
	}
	sw := &summaryWriter{w: w, st: st}
	sw.header(s)
	sw.failures(s)
	sw.switches(s)
	sw.onFailure(s)
	sw.decisions(s)
	sw.unfinished(s)
	sw.targets(s)
	return sw.b.String()
}

// header writes the verdict line, the elapsed-time and request line and the
// step counts.
func (sw *summaryWriter) header(s engine.Summary) {
	st, w := sw.st, sw.w
	verdict, bad := summaryVerdict(s)
	head := fmt.Sprintf("rollout %s: %s", s.Plan, verdict)
	if s.Verdict == engine.VerdictAborted && s.AbortReason != "" {
		head += " — " + s.AbortReason
	}
	if bad {
		sw.line(st.Banner.Render(fit(" ⚠ "+head, w)))
	} else {
		sw.line(st.Done.Render("✓ " + head))
	}

	elapsed := "—"
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		elapsed = fmtDur(s.Finished.Sub(s.Started))
	}
	sw.line(st.Label.Render("elapsed ") + elapsed + st.Label.Render(" · API requests ") + fmt.Sprint(s.Requests) +
		st.Label.Render(" · targets ") + fmt.Sprint(machineTargets(s)))

	parts := make([]string, 0, 5)
	for _, o := range []engine.Outcome{engine.Succeeded, engine.Failed, engine.Skipped, engine.SkippedWhen, engine.Cancelled} {
		n := s.Counts[o]
		if n == 0 && o != engine.Succeeded && o != engine.Failed {
			continue
		}
		parts = append(parts, outcomeStyle(st, o).Render(fmt.Sprintf("%s %d", outcomeWord(string(o)), n)))
	}
	sw.line(st.Label.Render("steps ") + strings.Join(parts, " · "))
}

// failures lists the root-cause failures with their wrapped errors.
func (sw *summaryWriter) failures(s engine.Summary) {
	if len(s.Failures) == 0 {
		return
	}
	st := sw.st
	sw.line("")
	sw.line(st.Title.Render(fmt.Sprintf("Failures (root causes): %d", len(s.Failures))))
	for _, f := range s.Failures {
		where := machineName(f.Machine) + "/" + f.Image
		sw.line("  " + st.Failed.Render("✗") + " " + f.Instance + st.Faint.Render(" on "+where))
		sw.wrapped("      ", engine.ErrText(f.Err), st.Err.Render)
	}
}

// switches lists the profile switches and how each ended.
func (sw *summaryWriter) switches(s engine.Summary) {
	if len(s.Switches) == 0 {
		return
	}
	st := sw.st
	sw.line("")
	sw.line(st.Title.Render("Profile switches"))
	for _, o := range s.Switches {
		g, what := st.Done.Render("✓"), o.Detail
		switch o.Outcome {
		case engine.Succeeded:
		case engine.Failed, engine.Cancelled:
			g, what = st.Failed.Render("✗"), string(o.Outcome)+": "+engine.ErrText(o.Err)
		default:
			g, what = st.Faint.Render("·"), string(o.Outcome)+": "+engine.ErrText(o.Err)
		}
		sw.line("  " + g + " " + o.Instance)
		sw.wrapped("      ", what, st.Faint.Render)
	}
}

// onFailure lists the on-failure steps that ran, then those that had nothing
// to do.
func (sw *summaryWriter) onFailure(s engine.Summary) {
	if len(s.OnFailure) == 0 {
		return
	}
	st := sw.st
	sw.line("")
	sw.line(st.Title.Render("On failure"))
	ran, noops := engine.SplitNoops(s.OnFailure)
	for _, o := range ran {
		g, what := st.Done.Render("✓"), o.Detail
		if o.Outcome != engine.Succeeded {
			g, what = st.Failed.Render("✗"), string(o.Outcome)+": "+engine.ErrText(o.Err)
		}
		sw.line("  " + g + " " + o.Instance)
		sw.wrapped("      ", what, st.Faint.Render)
	}
	for _, n := range noops {
		sw.line("  " + st.Faint.Render("· "+n.Label()))
		sw.wrapped("      ", n.Detail, st.Faint.Render)
	}
}

// decisions lists the approvals and pauses that were decided: who approved
// what stays on the terminal with the rest.
func (sw *summaryWriter) decisions(s engine.Summary) {
	var decided []engine.DecisionRecord
	for _, d := range s.Decisions {
		if d.Decision.Kind != engine.Stopped {
			decided = append(decided, d)
		}
	}
	if len(decided) == 0 {
		return
	}
	st := sw.st
	sw.line("")
	sw.line(st.Title.Render("Approvals and pauses"))
	for _, d := range decided {
		g := st.Done.Render("✓")
		if d.Decision.Kind == engine.Aborted || (d.Decision.Kind == engine.TimedOut && d.Wait.OnTimeout != "continue") {
			g = st.Failed.Render("✗")
		}
		for i, part := range wrapText(decisionText(d), sw.w-4) {
			if i == 0 {
				sw.line("  " + g + " " + part)
				continue
			}
			sw.line("    " + part)
		}
	}
}

// unfinished lists the remote jobs left running on Clanforge.
func (sw *summaryWriter) unfinished(s engine.Summary) {
	if len(s.Unfinished) == 0 {
		return
	}
	st := sw.st
	sw.line("")
	sw.line(st.Title.Render(fmt.Sprintf("Unfinished remote jobs: %d (they may still run on Clanforge)", len(s.Unfinished))))
	for _, u := range s.Unfinished {
		j := u.Job
		state := j.StateName
		if state == "" {
			state = fmt.Sprintf("state %d", j.State)
		}
		sw.line(fmt.Sprintf("  %s %s job %d · %s %d%% · %s", st.Cancelled.Render("⊘"), orDash(j.Kind), j.ID, state,
			j.Progress, u.Instance))
	}
}

// targets writes the per-target counts and table. Every target is listed
// when they fit; otherwise those that did not succeed, failures first, then
// in summary order, and `rollout status` has the rest.
func (sw *summaryWriter) targets(s engine.Summary) {
	var listed []engine.TargetSummary
	byOutcome := map[engine.Outcome]int{}
	listAll := len(s.Targets) <= maxSummaryTargets
	for _, t := range s.Targets {
		if t.Machine != "" {
			// Counted as validate and the plain reporter count targets:
			// (machine, image) pairs, not an image's own steps.
			byOutcome[t.Outcome]++
		}
		if listAll || (t.Outcome != engine.Succeeded && t.Outcome != engine.SkippedWhen) {
			listed = append(listed, t)
		}
	}
	if len(s.Targets) > 0 {
		sw.targetCounts(byOutcome)
	}
	sort.SliceStable(listed, func(i, j int) bool { return targetRank(listed[i].Outcome) < targetRank(listed[j].Outcome) })
	sw.targetTable(listed)
}

// targetCounts writes the "Targets" title with the count of each outcome;
// succeeded is always shown, the others only when some target had them.
func (sw *summaryWriter) targetCounts(byOutcome map[engine.Outcome]int) {
	st := sw.st
	sw.line("")
	tparts := make([]string, 0, 5)
	for _, o := range []engine.Outcome{engine.Succeeded, engine.Failed, engine.Cancelled, engine.Skipped, engine.SkippedWhen} {
		if n := byOutcome[o]; n > 0 || o == engine.Succeeded {
			tparts = append(tparts, outcomeStyle(st, o).Render(fmt.Sprintf("%s %d", outcomeWord(string(o)), n)))
		}
	}
	sw.line(st.Title.Render("Targets ") + strings.Join(tparts, " · "))
}

// targetRank orders the target table: failures, then cancellations, then
// skips, then successes.
func targetRank(o engine.Outcome) int {
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

// targetTable writes one row per target, at most maxSummaryTargets of them,
// with columns sized to the rows shown.
func (sw *summaryWriter) targetTable(listed []engine.TargetSummary) {
	st, w := sw.st, sw.w
	mw, iw := 8, 6
	for i, t := range listed {
		if i == maxSummaryTargets {
			break
		}
		mw = max(mw, lenCells(machineName(t.Machine)))
		iw = max(iw, lenCells(t.Image))
	}
	mw, iw = min(mw, 30), min(iw, 24)
	for i, t := range listed {
		if i == maxSummaryTargets {
			sw.line(st.Faint.Render(fmt.Sprintf("  … and %d more (rollout status lists every target)", len(listed)-maxSummaryTargets)))
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
		sw.line(text)
	}
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
