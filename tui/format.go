package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// fit truncates s to w cells (with an ellipsis) and pads it with spaces to
// exactly w cells. s may contain ANSI sequences.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := ansi.StringWidth(s)
	if sw > w {
		s = ansi.Truncate(s, w, "…")
		sw = ansi.StringWidth(s)
	}
	if sw < w {
		s += strings.Repeat(" ", w-sw)
	}
	return s
}

// clip truncates s to at most w cells without padding.
func clip(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// fmtDur renders a duration compactly: 45s, 4m05s, 1h02m.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	h := int(d / time.Hour)
	m := int(d % time.Hour / time.Minute)
	sec := int(d % time.Minute / time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, sec)
	default:
		return fmt.Sprintf("%ds", sec)
	}
}

// bar draws a progress bar of w cells for pct percent.
func bar(st Styles, w, pct int) string {
	if w <= 0 {
		return ""
	}
	pct = min(max(pct, 0), 100)
	full := w * pct / 100
	return st.BarFull.Render(strings.Repeat("█", full)) + st.BarEmpty.Render(strings.Repeat("░", w-full))
}

// oneLine makes an error fit on one line: first line only, runs of spaces
// collapsed.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	return strings.Join(strings.Fields(s), " ")
}

// shortErr shortens an error to w cells for a one-line cell. Errors read
// "context: context: cause" and the cause is what someone paged at night
// needs, so when the whole text does not fit, the context is shortened
// first and the cause after the last ": " is kept whole:
// "install job 661206 on mach…: disk full on /home/cf". Only when the cause
// alone leaves no room for a readable context does it come first.
func shortErr(s string, w int) string {
	const minContext = 8
	s = oneLine(s)
	if lenCells(s) <= w {
		return s
	}
	if i := strings.LastIndex(s, ": "); i > 0 && i+2 < len(s) {
		ctx, cause := s[:i], s[i+2:]
		if room := w - lenCells(cause) - 2; room >= minContext {
			return clip(ctx, room) + ": " + cause
		}
		s = cause + " — " + ctx
	}
	return clip(s, w)
}

// padRight fills a rendered line up to w cells so that styled backgrounds and
// overlays line up.
func padRight(s string, w int) string {
	if sw := ansi.StringWidth(s); sw < w {
		return s + strings.Repeat(" ", w-sw)
	}
	return s
}

// spread puts left and right on one line of w cells, right-aligned right part;
// when both do not fit, right is dropped first.
func spread(left, right string, w int) string {
	lw, rw := ansi.StringWidth(left), ansi.StringWidth(right)
	if lw+1+rw > w {
		return clip(left, w)
	}
	return left + strings.Repeat(" ", w-lw-rw) + right
}

// outcomeWord is how an outcome is named on screen.
func outcomeWord(o string) string {
	switch o {
	case "skipped-when":
		return "skipped (when)"
	}
	return o
}

// lenCells is the display width of a possibly styled string.
func lenCells(s string) int { return ansi.StringWidth(s) }
