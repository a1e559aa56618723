package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
)

// headerModel renders the top lines: plan, clock, overall progress, counts,
// waves, estimate, request rate and the abort/interrupt/waiting banner. It
// reads the shared state and keeps nothing of its own but which control
// keys the view offers; everything it shows is computed once per batch, so
// a frame costs the same at 5 or 5,000 targets.
type headerModel struct {
	approve, abort bool // the a and x keys work
}

// bannerText is the abort/interrupt/waiting banner, or "" when there is
// none.
func (headerModel) bannerText(s *state, cancelling bool) string {
	switch {
	case s.finished && s.summary.Verdict == engine.VerdictInterrupted:
		return "INTERRUPTED — the rollout was cancelled"
	case s.finished && s.summary.Verdict == engine.VerdictAborted:
		reason := s.summary.AbortReason
		if reason == "" {
			reason = s.abortReason
		}
		return "ABORTED — " + orDash(reason)
	case s.aborting:
		return "ABORTING — " + orDash(s.abortReason) + " (nothing new starts)"
	case cancelling:
		return "INTERRUPTED — stopping; nothing new is sent to Clanforge (ctrl+c: leave now)"
	case len(s.waits) > 0:
		w, _ := s.shownWait()
		return waitBanner(w, len(s.waits))
	}
	return ""
}

// bannerLines are the banner and, while the run waits, the lines under it:
// the question with the keys that answer it, and where the rollout stands
// when that does not fit on the banner itself (w columns).
func (h headerModel) bannerLines(s *state, cancelling bool, w int) []string {
	b := h.bannerText(s, cancelling)
	if b == "" {
		return nil
	}
	if s.finished || s.aborting || cancelling || len(s.waits) == 0 {
		return []string{b}
	}
	wt, _ := s.shownWait()
	var progress string
	if head, until, prog := waitParts(wt, len(s.waits)); lenCells(" ⚠ "+b) > w && (until != "" || prog != "") {
		// When it ends and where the rollout stands are what a person
		// decides on: they get a line of their own rather than being cut.
		b = head
		progress = strings.TrimSpace(strings.Trim(until, " ()"))
		if prog != "" {
			progress = strings.TrimPrefix(progress+" · now: "+prog, " · ")
		}
	}
	lines := []string{b}
	var keys []string
	if h.approve && wt.Kind == engine.WaitApproval {
		keys = append(keys, "a approve")
	}
	if h.abort {
		keys = append(keys, "x abort")
	}
	second := ""
	if wt.Kind == engine.WaitApproval && wt.Message != "" {
		second = wt.Message
	}
	if len(keys) > 0 {
		if second != "" {
			second += "  ·  "
		}
		second += strings.Join(keys, " · ")
	}
	if second != "" {
		lines = append(lines, second)
	}
	if progress != "" {
		lines = append(lines, progress)
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// View renders the header; ended says the run is over and the view stays
// until q.
func (h headerModel) View(s *state, st Styles, w int, cancelling, ended bool) []string {
	lines := make([]string, 0, 4)

	// Line 1: what, how long, how much longer, how busy.
	title := st.Title.Render("rollout") + " " + s.plan
	if s.run.Resumed {
		title += st.Faint.Render(" (resumed)")
	}
	right := st.Label.Render("elapsed ") + fmtDur(s.elapsed())
	switch {
	case s.finished && ended:
		right += st.Label.Render(" · ") + st.Notice.Render("finished — press q to leave")
	case s.finished:
		right += st.Label.Render(" · finished")
	case s.waitingForApproval():
		// The rest takes as long as the person does: a number would lie.
		right += st.Label.Render(" · left: after the approval")
	case s.etaKnown:
		// A bake time holds everything after it: the rest starts when it
		// ends.
		right += st.Label.Render(" · left ~") + fmtDur(s.eta+s.bakeLeft())
	default:
		// Nothing finished and no jobeta yet: a number now would be a
		// guess that swings as soon as anything is seen.
		right += st.Label.Render(" · estimating…")
	}
	if !ended {
		// Once the run is over its request rate says nothing, and the
		// way out matters more.
		right += st.Label.Render(" · ") + fmt.Sprintf("%.1f req/s", s.reqRate)
	}
	lines = append(lines, spread(title, right, w))

	// Line 2: overall progress and counts.
	c := s.cnt
	total := c.total()
	pct := 0
	if total > 0 {
		pct = c.finished() * 100 / total
	}
	parts := []string{
		st.Done.Render(fmt.Sprintf("done %d", c.succeeded)),
		st.Running.Render(fmt.Sprintf("running %d", c.running)),
		st.Waiting.Render(fmt.Sprintf("waiting %d", c.waiting)),
		st.Failed.Render(fmt.Sprintf("failed %d", c.failed)),
		st.Skipped.Render(fmt.Sprintf("skipped %d", c.skipped)),
	}
	if c.cancelled > 0 {
		parts = append(parts, st.Cancelled.Render(fmt.Sprintf("cancelled %d", c.cancelled)))
	}
	countText := strings.Join(parts, " · ")
	pctText := fmt.Sprintf(" %3d%% ", pct)
	bw := w - len(pctText) - lenCells(countText)
	if bw > 40 {
		bw = 40
	}
	if bw < 10 {
		bw = 10
	}
	lines = append(lines, clip(bar(st, bw, pct)+pctText+countText, w))

	// Line 3: current wave of every waved step.
	if len(s.waves) > 0 {
		ws := make([]string, 0, len(s.waves))
		for _, wv := range s.waves {
			ws = append(ws, fmt.Sprintf("%s/%s %d/%d", wv.step, wv.image, wv.wave+1, wv.waves))
		}
		lines = append(lines, clip(st.Label.Render("waves ")+strings.Join(ws, " · "), w))
	}

	// The API client's latest wait, while it is fresh: a retry or a hold
	// is shown at once, never mistaken for a hang.
	if n := s.apiNotice(); n != "" {
		lines = append(lines, clip(st.Cancelled.Render("API: ")+n, w))
	}

	// Line 4: the banner, full width so nobody misses it, and under a
	// waiting banner the question and the keys that answer it.
	for i, b := range h.bannerLines(s, cancelling, w) {
		if i == 0 {
			lines = append(lines, st.Banner.Render(fit(" ⚠ "+b, w)))
			continue
		}
		lines = append(lines, st.Notice.Render(clip("   "+b, w)))
	}
	return lines
}

// waitBanner says what the run waits for, since when, until when, and
// where the rollout stands, e.g. "WAITING FOR APPROVAL of go_live@game-b
// since 14:02 (until 18:02, then abort) — 3 of 120 machines on image
// version 48811, 0 failed"; the question goes on the line under it, with
// the keys.
func waitBanner(w engine.WaitInfo, n int) string {
	head, until, progress := waitParts(w, n)
	s := head + until
	if progress != "" {
		s += " — " + progress
	}
	return s
}

// waitParts splits a wait's banner into what it is (with how many more
// wait), when it ends by itself, and where the rollout stands.
func waitParts(w engine.WaitInfo, n int) (head, until, progress string) {
	if w.Kind == engine.WaitBake {
		head = fmt.Sprintf("BAKING %s until %s", w.ID, w.Until.Local().Format("15:04:05"))
	} else {
		head = fmt.Sprintf("WAITING FOR APPROVAL of %s since %s", w.ID, w.Since.Local().Format("15:04"))
		if !w.Until.IsZero() {
			then := string(w.OnTimeout)
			if then == "" {
				then = "abort"
			}
			until = fmt.Sprintf(" (until %s, then %s)", w.Until.Local().Format("15:04"), then)
		}
	}
	if n > 1 {
		head += fmt.Sprintf(" (+%d more waiting)", n-1)
	}
	return head, until, w.Progress
}

// waitingForApproval reports whether the run waits for a person.
func (s *state) waitingForApproval() bool {
	for _, w := range s.waits {
		if w.Kind == engine.WaitApproval {
			return true
		}
	}
	return false
}

// bakeLeft is how long the longest bake time in progress still holds the
// run.
func (s *state) bakeLeft() time.Duration {
	var left time.Duration
	for _, w := range s.waits {
		if w.Kind == engine.WaitBake && !w.Until.IsZero() {
			left = max(left, w.Until.Sub(s.now))
		}
	}
	return left
}
