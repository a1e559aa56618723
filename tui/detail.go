package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/rollout/rollout/engine"
)

// detailModel is the pane opened with enter: every step instance of one
// target with its job, state, timings, error and diff summary. It is bound to
// a row index, not a screen position, so it keeps showing the same target
// while the list reorders underneath.
type detailModel struct {
	row    int32
	offset int // first content line shown
}

func (d *detailModel) open(row int32) { d.row, d.offset = row, 0 }

func (d *detailModel) scroll(delta, total, h int) {
	d.offset = min(max(d.offset+delta, 0), max(total-h, 0))
}

// rel renders a time as an offset from the run's start, which reads better
// than a wall clock in a rollout and does not depend on the time zone.
func rel(s *state, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if s.run.Started.IsZero() {
		return t.Format("15:04:05")
	}
	return "+" + fmtDur(t.Sub(s.run.Started))
}

// content renders all lines of the pane; View cuts the window out of it.
func (d *detailModel) content(s *state, st Styles, w int) []string {
	if int(d.row) >= len(s.rows) {
		return []string{st.Faint.Render("no such target")}
	}
	r := &s.rows[d.row]
	lines := make([]string, 0, 3*len(r.insts)+3)
	title := st.Title.Render("machine ") + machineName(r.machine) + st.Title.Render("  image ") + r.image +
		st.Faint.Render(fmt.Sprintf("  · %d/%d steps finished", r.done, r.total))
	lines = append(lines, clip(title, w))
	lines = append(lines, "")
	const (
		stateW = 18
		jobW   = 18
		timeW  = 9
	)
	// The step column fits the longest name of this target, so that
	// "reject (on failure)" is not cut to "reject (on fa…".
	stepW := 14
	for _, ii := range r.insts {
		in := &s.insts[ii]
		n := lenCells(in.info.Step)
		if in.info.OnFailure {
			n += len(" (on failure)")
		}
		stepW = max(stepW, min(n, 28))
	}
	hdr := fit("STEP", stepW) + " " + fit("STATE", stateW) + " " + fit("JOB", jobW) + " " +
		fit("STARTED", timeW) + " " + fit("TOOK", timeW) + " " + "LEFT"
	lines = append(lines, st.ColHeader.Render(fit(hdr, w)))
	for _, ii := range r.insts {
		in := &s.insts[ii]
		var state string
		switch in.status {
		case stStandby:
			// An on_failure step that has not been needed (yet).
			state = st.Faint.Render("only on failure")
		case stWaiting:
			state = st.Waiting.Render("waiting")
			if in.info.Wave >= 0 {
				state = st.Waiting.Render(fmt.Sprintf("waiting (wave %d)", in.info.Wave+1))
			}
		case stRunning:
			name := "starting"
			if in.hasJob && in.job.StateName != "" {
				name = in.job.StateName
			}
			if in.hasJob {
				name += fmt.Sprintf(" %d%%", in.shownPct())
			}
			if _, ok := s.waitOf(in.info.ID); ok {
				name = "needs approval"
			}
			state = st.Running.Render(name)
		case stDone:
			state = outcomeStyle(st, in.outcome).Render(outcomeWord(string(in.outcome)))
		}
		job := "—"
		if in.hasJob && in.job.ID != 0 {
			job = fmt.Sprintf("%s %d", orDash(in.job.Kind), in.job.ID)
		}
		took, left := "—", "—"
		switch {
		case in.status == stDone && !in.started.IsZero() && !in.finished.IsZero():
			took = fmtDur(in.finished.Sub(in.started))
		case in.status == stRunning && !in.started.IsZero():
			took = fmtDur(s.now.Sub(in.started))
		}
		if dl, ok := s.jobLeft(in); ok {
			left = fmtDur(dl)
		}
		name := in.info.Step
		if in.info.OnFailure && in.status != stStandby {
			name += " (on failure)"
		}
		line := fit(name, stepW) + " " + fit(state, stateW) + " " + fit(job, jobW) + " " +
			fit(rel(s, in.started), timeW) + " " + fit(took, timeW) + " " + left
		lines = append(lines, clip(line, w))
		switch {
		case in.detail != "":
			lines = append(lines, clip("    "+st.Faint.Render(in.detail), w))
		case in.status == stRunning && in.hasJob && in.job.Detail != "":
			// A ready step's counters per region or a switch's servers,
			// wrapped: a fleet's regions do not fit one line.
			for _, part := range wrapText(in.job.Detail, w-4) {
				lines = append(lines, "    "+st.Faint.Render(part))
			}
		}
		errText := in.err
		if errText == "" && in.hasJob {
			errText = in.job.Error
		}
		if errText != "" {
			label := "error: "
			if in.outcome == engine.Skipped || in.outcome == engine.SkippedWhen {
				label = "why: "
			}
			// Errors get the whole width here, wrapped, not shortened.
			for _, part := range wrapText(label+strings.TrimSpace(errText), w-4) {
				lines = append(lines, "    "+st.Err.Render(part))
			}
		}
	}
	return append(lines, decisionLines(s, st, r.image, w)...)
}

// decisionLines is who approved what for an image, and what of it waits
// now: approvals (by whom, when, why), timeouts, bake times, aborts.
func decisionLines(s *state, st Styles, image string, w int) []string {
	var out []string
	for _, d := range s.decisions {
		if d.Wait.Image != image {
			continue
		}
		out = append(out, clip("  "+decisionText(d), w))
	}
	for _, wt := range s.waits {
		if wt.Image != image {
			continue
		}
		what := "waiting for approval"
		if wt.Kind == engine.WaitBake {
			what = "baking until " + wt.Until.Local().Format("15:04:05")
		}
		out = append(out, clip("  "+st.Running.Render(fmt.Sprintf("%s: %s since %s", wt.ID, what, wt.Since.Local().Format("15:04:05"))), w))
	}
	if len(out) == 0 {
		return nil
	}
	return append([]string{"", st.ColHeader.Render(fit("APPROVALS AND PAUSES OF "+image, w))}, out...)
}

// decisionText says how one wait ended and who ended it, e.g.
// "gate@buildbox-1/game approved by alice@laptop at 12:03:04: looks good".
func decisionText(d engine.DecisionRecord) string {
	at := " at " + d.Decision.At.Local().Format("15:04:05")
	why := ""
	if d.Decision.Reason != "" {
		why = ": " + d.Decision.Reason
	}
	switch d.Decision.Kind {
	case engine.Approved:
		return d.Wait.ID + " approved by " + d.Decision.By + at + why
	case engine.AutoApproved:
		return d.Wait.ID + " approved automatically (--auto-approve)" + at
	case engine.TimedOut:
		return d.Wait.ID + ": nobody approved in time" + at + why
	case engine.Baked:
		return d.Wait.ID + ": bake time over" + at
	case engine.Aborted:
		return d.Wait.ID + ": aborted by " + d.Decision.By + at + why
	}
	return d.Wait.ID + ": " + string(d.Decision.Kind) + at + why
}

func outcomeStyle(st Styles, o engine.Outcome) lipgloss.Style {
	switch o {
	case engine.Succeeded:
		return st.Done
	case engine.Failed:
		return st.Failed
	case engine.Cancelled:
		return st.Cancelled
	}
	return st.Skipped
}

// View renders exactly h lines of the pane.
func (d *detailModel) View(s *state, st Styles, w, h int) []string {
	all := d.content(s, st, w)
	d.scroll(0, len(all), h-1)
	out := make([]string, 0, h)
	end := min(d.offset+h-1, len(all))
	out = append(out, all[d.offset:end]...)
	for len(out) < h-1 {
		out = append(out, "")
	}
	more := ""
	if len(all) > h-1 {
		more = fmt.Sprintf("  lines %d–%d of %d", d.offset+1, end, len(all))
	}
	out = append(out, st.Faint.Render(clip("esc back · ↑/↓ scroll"+more, w)))
	return out
}

// wrapText breaks s into lines of at most w cells at spaces, hard-cutting
// words longer than a line.
func wrapText(s string, w int) []string {
	if w < 10 {
		w = 10
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for lenCells(word) > w {
				if line != "" {
					out = append(out, line)
					line = ""
				}
				out = append(out, ansi.Truncate(word, w, ""))
				word = ansi.TruncateLeft(word, w, "")
			}
			switch {
			case line == "":
				line = word
			case lenCells(line)+1+lenCells(word) <= w:
				line += " " + word
			default:
				out = append(out, line)
				line = word
			}
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}
