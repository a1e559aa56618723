package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rollout/rollout/redact"
)

// Error renders as "file:line:col: message", the quoted source line, a caret
// under the fault and a hint when there is one.
func (e *Error) Error() string { return e.render(false) }

func (e *Error) render(color bool) string {
	var b strings.Builder
	bold, red, cyan, reset := "", "", "", ""
	if color {
		bold, red, cyan, reset = "\x1b[1m", "\x1b[31m", "\x1b[36m", "\x1b[0m"
	}
	// A plan's names and lines reach the terminal: control characters in
	// them are shown escaped (the output boundary's rules), never raw.
	file, msg := redact.Escape(e.Pos.File), redact.Escape(e.Msg)
	if e.Pos.Line == 0 {
		// Not from the file (a --var, an unreadable file): no position.
		fmt.Fprintf(&b, "%s%s:%s %s%s%s", bold, file, reset, red, msg, reset)
	} else {
		fmt.Fprintf(&b, "%s%s:%d:%d:%s %s%s%s", bold, file, e.Pos.Line, e.Pos.Col, reset, red, msg, reset)
	}
	if e.Line != "" {
		raw := strings.ReplaceAll(e.Line, "\t", " ")
		num := fmt.Sprint(e.Pos.Line)
		gutter := strings.Repeat(" ", len(num))
		col := e.Pos.Col
		if col < 1 {
			col = 1
		}
		// Columns count bytes; use runes of the escaped prefix so wide
		// input or an escaped control character does not push the caret
		// off the fault.
		prefix := raw
		if col-1 <= len(raw) {
			prefix = raw[:col-1]
		}
		line, caret := window(redact.Escape(raw), len([]rune(redact.Escape(prefix))))
		fmt.Fprintf(&b, "\n %s | %s", num, line)
		n := e.Width
		if n < 1 {
			n = 1
		}
		if rest := len([]rune(line)) - caret; n > rest && rest > 0 {
			n = rest
		}
		fmt.Fprintf(&b, "\n %s | %s%s%s%s", gutter, strings.Repeat(" ", caret), red, strings.Repeat("^", n), reset)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\n%s%s%s", cyan, redact.Escape(e.Hint), reset)
	}
	return b.String()
}

// shownLine is how many characters of a source line an error quotes: a
// plan written on one long line (or a hostile one) would otherwise repeat
// the whole line under every error.
const shownLine = 160

// window cuts line to at most shownLine characters around the caret, which
// sits caret characters into it, marking each cut with "…". It returns the
// shown text and the caret's place in it.
func window(line string, caret int) (string, int) {
	r := []rune(line)
	if len(r) <= shownLine {
		return line, caret
	}
	start := max(0, min(caret-shownLine/3, len(r)-shownLine))
	end := min(len(r), start+shownLine)
	shown := string(r[start:end])
	if start > 0 {
		shown = "…" + shown
		caret = caret - start + 1
	}
	if end < len(r) {
		shown += "…"
	}
	return shown, caret
}

// Error joins every error, blank-line separated, in source order.
func (e Errors) Error() string { return e.Render(false) }

// Render returns every error, optionally with ANSI colors for a terminal.
func (e Errors) Render(color bool) string {
	parts := make([]string, len(e))
	for i, x := range e {
		parts[i] = x.render(color)
	}
	s := strings.Join(parts, "\n\n")
	if len(e) > 1 {
		s += fmt.Sprintf("\n\n%d errors", len(e))
	}
	return s
}

// As lets callers ask errors.As for either Errors or *Errors.
func (e *Errors) As(target any) bool {
	if t, ok := target.(*Errors); ok {
		*t = *e
		return true
	}
	return false
}

func (e Errors) sort() {
	sort.SliceStable(e, func(i, j int) bool {
		a, b := e[i].Pos, e[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return e[i].Msg < e[j].Msg
	})
}

// DidYouMean returns a hint such as `did you mean "install"?` naming the
// candidate closest to s, or "" when none is close enough to be a likely
// typo. The command line uses it too, so that every suggestion reads alike.
//
// Between candidates as close, the one sharing the longest prefix with s
// wins ("sped" suggests "speed" rather than "seed": typos fall late in a
// word more often than first), then the first in alphabetical order.
func DidYouMean(s string, candidates []string) string {
	best, bestD, bestP := "", 1<<30, 0
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		lc := strings.ToLower(c)
		d, p := editDistance(ls, lc), commonPrefix(ls, lc)
		if d < bestD || (d == bestD && (p > bestP || p == bestP && c < best)) {
			best, bestD, bestP = c, d, p
		}
	}
	limit := 2
	if len(s) > 6 {
		limit = 3
	}
	if best == "" || bestD > limit || bestD >= len(s) {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			// A transposition counts as one edit: "mirorring" is one typo.
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
