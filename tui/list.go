package tui

import (
	"fmt"
	"strings"

	"github.com/rollout/rollout/engine"
)

// listModel is the scrolling table of targets. It keeps the filtered row
// list (indices into state.rows, in display order), the cursor and the first
// visible row. Rebuilding the filtered list is linear and happens only when a
// batch changed the order or the filter changed; View renders only the rows
// that fit on screen.
type listModel struct {
	vis    []int32
	cursor int // index into vis
	offset int // first visible index into vis

	// pinned is set once the user moved the cursor: from then on the
	// cursor stays on the same target (selRow) while rows change groups
	// and the list reorders, so that enter opens the target the user is
	// looking at, not whatever slid under the cursor. Home unpins: the
	// cursor then stays on the first row, whichever it is.
	pinned bool
	selRow int32

	builtVersion uint64
	builtChange  uint64
	builtFilter  string
	builtFail    bool
	built        bool
}

// rowHeight: rows that need attention (failed, running) take two lines so
// that the error or the job fits; waiting and finished rows are one line.
func rowHeight(r *row) int {
	if r.group == gFailed || r.group == gRunning {
		return 2
	}
	return 1
}

// sync rebuilds vis when the order, the rows (with a filter active), the
// filter or the failures-only switch changed.
func (l *listModel) sync(s *state, filter string, failOnly bool) {
	filter = strings.ToLower(strings.TrimSpace(filter))
	if l.built && l.builtVersion == s.version && l.builtFilter == filter && l.builtFail == failOnly &&
		(filter == "" || l.builtChange == s.change) {
		return
	}
	l.built, l.builtVersion, l.builtChange, l.builtFilter, l.builtFail = true, s.version, s.change, filter, failOnly
	src := s.order
	if failOnly {
		// Failed rows are the first bucket of the order.
		src = s.order[:len(s.buckets[gFailed])]
	}
	if filter == "" {
		l.vis = src
	} else {
		l.vis = make([]int32, 0, len(src)/4+1)
		for _, ri := range src {
			if rowMatches(s, &s.rows[ri], filter) {
				l.vis = append(l.vis, ri)
			}
		}
	}
	if l.pinned {
		// Linear, but only when the order or the filter changed.
		for i, ri := range l.vis {
			if ri == l.selRow {
				l.cursor = i
				break
			}
		}
	}
	l.cursor = min(max(l.cursor, 0), max(len(l.vis)-1, 0))
	l.offset = min(l.offset, l.cursor)
	l.remember()
}

// remember records the target under the cursor.
func (l *listModel) remember() {
	if l.cursor >= 0 && l.cursor < len(l.vis) {
		l.selRow = l.vis[l.cursor]
	}
}

// reset puts the cursor on the first row and stops following a target
// (a new filter: the old selection may not even match).
func (l *listModel) reset() {
	l.cursor, l.offset, l.pinned = 0, 0, false
}

// rowMatches reports whether the filter text is in the machine, the image or
// the row's current step.
func rowMatches(s *state, r *row, f string) bool {
	if strings.Contains(r.search, f) {
		return true
	}
	if r.cur >= 0 {
		step := s.insts[r.insts[r.cur]].info.Step
		return strings.Contains(strings.ToLower(step), f)
	}
	return false
}

func (l *listModel) selected() (int32, bool) {
	if l.cursor < 0 || l.cursor >= len(l.vis) {
		return 0, false
	}
	return l.vis[l.cursor], true
}

// ensureVisible moves the window so that the cursor row is inside body
// lines; it walks at most one screen of rows.
func (l *listModel) ensureVisible(s *state, body int) {
	if len(l.vis) == 0 {
		l.cursor, l.offset = 0, 0
		return
	}
	l.cursor = min(max(l.cursor, 0), len(l.vis)-1)
	if l.cursor < l.offset {
		l.offset = l.cursor
		return
	}
	// Walk back from the cursor until a screen is full.
	used, first := 0, l.cursor
	for i := l.cursor; i >= l.offset; i-- {
		h := rowHeight(&s.rows[l.vis[i]])
		if used+h > body && i != l.cursor {
			break
		}
		used += h
		first = i
	}
	if first > l.offset {
		l.offset = first
	}
}

// page is how many rows fit from the current offset.
func (l *listModel) page(s *state, body int) int {
	n, used := 0, 0
	for i := l.offset; i < len(l.vis); i++ {
		used += rowHeight(&s.rows[l.vis[i]])
		if used > body {
			break
		}
		n++
	}
	return max(n, 1)
}

func (l *listModel) move(s *state, body, delta int) {
	l.cursor += delta
	l.pinned = true
	l.ensureVisible(s, body)
	l.remember()
}

func (l *listModel) home() {
	l.reset()
	l.remember()
}

func (l *listModel) end(s *state, body int) {
	l.cursor = len(l.vis) - 1
	l.pinned = true
	l.ensureVisible(s, body)
	l.remember()
}

// cols are the column widths for one terminal width.
type cols struct {
	mach, img, step, state, bar int
}

const (
	colPct  = 4
	colLeft = 7
)

func layout(w int) cols {
	c := cols{step: 12, state: 11}
	// prefix(2) glyph(2) and one space between the remaining columns.
	rem := w - 2 - 2 - c.step - c.state - colPct - colLeft - 6
	c.bar = min(max(rem/4, 5), 40)
	mi := max(rem-c.bar, 12)
	c.mach = min(mi*55/100, 40)
	c.img = min(mi-c.mach, 32)
	if extra := rem - c.bar - c.mach - c.img; extra > 0 {
		c.bar = min(c.bar+extra, 60)
	}
	return c
}

func (l *listModel) columnHeader(st Styles, w int) string {
	c := layout(w)
	line := "    " + fit("MACHINE", c.mach) + " " + fit("IMAGE", c.img) + " " + fit("STEP", c.step) + " " +
		fit("STATE", c.state) + " " + fit("PROGRESS", c.bar+1+colPct) + " " + fit("LEFT", colLeft)
	return st.ColHeader.Render(fit(line, w))
}

// View renders the column header and the visible rows: exactly h lines.
func (l *listModel) View(s *state, st, bare Styles, w, h int) []string {
	lines := make([]string, 0, h)
	if h <= 0 {
		return lines
	}
	lines = append(lines, l.columnHeader(st, w))
	body := h - 1
	switch {
	case !s.haveRun:
		lines = append(lines, st.Faint.Render(fit("  waiting for the engine to start the run…", w)))
	case len(l.vis) == 0 && l.builtFail && l.builtFilter == "":
		// Say it plainly: an empty screen at 3 a.m. reads as "broken".
		lines = append(lines, st.Faint.Render(fit("  no failed target so far — f shows every target again", w)))
	case len(l.vis) == 0:
		lines = append(lines, st.Faint.Render(fit("  no target matches — esc clears the filter", w)))
	}
	c := layout(w)
	for i := l.offset; i < len(l.vis) && len(lines) < h; i++ {
		r := &s.rows[l.vis[i]]
		sel := i == l.cursor
		use := st
		if sel {
			use = bare
		}
		for _, ln := range renderRow(s, r, use, c, w, sel) {
			if len(lines) == body+1 {
				break
			}
			if sel {
				ln = st.Selected.Render(padRight(ln, w))
			}
			lines = append(lines, ln)
		}
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines
}

func glyph(st Styles, r *row) string {
	switch r.group {
	case gFailed:
		if r.outcome == engine.Cancelled {
			return st.Cancelled.Render("⊘")
		}
		return st.Failed.Render("✗")
	case gRunning:
		return st.Running.Render("▶")
	case gWaiting:
		return st.Waiting.Render("·")
	}
	if r.outcome == engine.Skipped {
		return st.Skipped.Render("↷")
	}
	return st.Done.Render("✓")
}

func machineName(m string) string {
	if m == "" {
		// The row of an image's own steps (version, mirrors, ready,
		// approve): it is no machine, and a dash read as a missing one.
		return "(image)"
	}
	return m
}

// renderRow renders one row as one or two lines.
func renderRow(s *state, r *row, st Styles, c cols, w int, sel bool) []string {
	prefix := "  "
	if sel {
		prefix = "› "
	}
	head := prefix + glyph(st, r) + " " + fit(machineName(r.machine), c.mach) + " " + fit(r.image, c.img) + " "
	restW := w - lenCells(head)

	var cur *instance
	if r.cur >= 0 {
		cur = &s.insts[r.insts[r.cur]]
	}
	if r.group == gDone || cur == nil {
		// Finished rows are compact: one line with the outcome.
		var tail string
		switch r.outcome {
		case engine.Skipped:
			tail = st.Skipped.Render("skipped")
			if r.lastErr != "" {
				tail += st.Faint.Render(" — " + shortErr(r.lastErr, restW-lenCells("skipped — ")))
			}
		default:
			took := ""
			if !r.started.IsZero() && r.finished.After(r.started) {
				took = " in " + fmtDur(r.finished.Sub(r.started))
			}
			tail = st.Done.Render("done") + st.Faint.Render(fmt.Sprintf(" %d/%d steps%s", r.done, r.total, took))
		}
		return []string{fit(head+clip(tail, restW), w)}
	}

	step := cur.info.Step
	var stateText, barText, pctText, leftText string
	switch cur.status {
	case stRunning:
		stateText = "starting"
		if cur.hasJob && cur.job.StateName != "" {
			stateText = cur.job.StateName
		}
		if _, ok := s.waitOf(cur.info.ID); ok {
			// An approve instance holds no slot: it waits for a person.
			stateText = "approval?"
		}
		stateText = st.Running.Render(fit(stateText, c.state))
		if cur.hasJob {
			pct := cur.shownPct()
			barText = bar(st, c.bar, pct)
			pctText = fmt.Sprintf("%3d%%", pct)
		}
		if d, ok := s.jobLeft(cur); ok {
			leftText = fmtDur(d)
		}
	case stWaiting:
		word := "waiting"
		if cur.info.Wave >= 0 {
			word = fmt.Sprintf("wave %d", cur.info.Wave+1)
		}
		stateText = st.Waiting.Render(fit(word, c.state))
	case stDone:
		if cur.outcome == engine.Cancelled {
			stateText = st.Cancelled.Render(fit("cancelled", c.state))
		} else {
			stateText = st.Failed.Render(fit(outcomeWord(string(cur.outcome)), c.state))
		}
		if cur.hasJob {
			pct := cur.shownPct()
			pctText = fmt.Sprintf("%3d%%", pct)
			barText = bar(st, c.bar, pct)
		}
	}
	if barText == "" {
		barText = strings.Repeat(" ", c.bar)
	}
	line := head + fit(step, c.step) + " " + fit(stateText, c.state) + " " + barText + " " + fit(pctText, colPct) +
		" " + fit(leftText, colLeft)
	lines := []string{fit(line, w)}
	if rowHeight(r) == 1 {
		return lines
	}

	// Second line: the last error, shortened; else what the job is.
	indent := "      └ "
	var second string
	if r.lastErr != "" {
		second = st.Err.Render(shortErr(r.lastErr, w-lenCells(indent)))
	} else if cur.status == stRunning && cur.hasJob && cur.job.Detail != "" {
		// A ready step's counters per region, a switch's servers: the
		// words say more than a job id the step does not have.
		second = st.Faint.Render(cur.job.Detail)
	} else {
		parts := make([]string, 0, 3)
		if cur.hasJob && cur.job.ID != 0 {
			parts = append(parts, fmt.Sprintf("%s job %d", orDash(cur.job.Kind), cur.job.ID))
		}
		if cur.info.Wave >= 0 {
			parts = append(parts, fmt.Sprintf("wave %d", cur.info.Wave+1))
		}
		parts = append(parts, fmt.Sprintf("step %d/%d", r.cur+1, r.total))
		second = st.Faint.Render(strings.Join(parts, " · "))
	}
	return append(lines, fit(indent+clip(second, w-lenCells(indent)), w))
}
