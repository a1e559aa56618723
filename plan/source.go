package plan

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/token"
)

// Source positions errors in a YAML file and quotes its lines the way plan
// errors are written: "file:line:col: message", the source line with a
// caret, a hint. The loader writes every plan error through one; other
// YAML files a person writes for the program (the simulator's scenarios)
// use one too, so that all of them are reported alike.
type Source struct {
	File  string
	lines []string
}

// NewSource returns the Source of file, whose content is src.
func NewSource(file string, src []byte) *Source {
	return &Source{File: file, lines: strings.Split(string(src), "\n")}
}

// Errorf returns an error at line:col (1-based; line 0 for none) that
// underlines width columns and quotes the source line with credentials
// masked.
func (s *Source) Errorf(line, col, width int, hint, format string, args ...any) *Error {
	return &Error{Pos: Pos{File: s.File, Line: line, Col: col}, Msg: fmt.Sprintf(format, args...), Hint: hint, Line: s.quote(line), Width: width}
}

// quote returns line n as an error shows it.
func (s *Source) quote(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	// The quoted line may hold a credential written straight into the
	// file; show it masked like every other output.
	return MaskURLs(strings.TrimRight(s.lines[n-1], "\r"))
}

// SyntaxError turns an error of the YAML parser (goccy/go-yaml) into a
// positioned error, placed where the fault is.
func (s *Source) SyntaxError(err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		pos, hint := s.syntaxPos(ye.GetToken(), ye.GetMessage())
		return s.Errorf(pos.Line, pos.Col, 1, hint, "YAML syntax error: %s", ye.GetMessage())
	}
	return s.Errorf(1, 1, 1, "", "YAML syntax error: %v", err)
}

// syntaxPos places a syntax error. The parser names the token where it
// noticed the fault, which is not always where the fault is: a missing "]"
// or "}" is noticed at the first token of the next line (so the error
// pointed one line too low), and a line indented too far is noticed at the
// start of the value it continues (one line too high).
func (s *Source) syntaxPos(tk *token.Token, msg string) (Pos, string) {
	at := Pos{File: s.File, Line: max(tk.Position.Line, 1), Col: max(tk.Position.Column, 1)}
	switch {
	case strings.Contains(msg, "must be specified") && s.startsLine(at):
		prev := tk.Prev
		for prev != nil && prev.Type == token.CommentType {
			prev = prev.Prev
		}
		if prev == nil || prev.Position == nil {
			return at, ""
		}
		w := utf8.RuneCountInString(prev.Value)
		if prev.Type == token.DoubleQuoteType || prev.Type == token.SingleQuoteType {
			w += 2
		}
		return Pos{File: s.File, Line: prev.Position.Line, Col: prev.Position.Column + w}, ""
	case strings.Contains(msg, "mapping value is not allowed") && strings.Contains(strings.TrimSpace(tk.Origin), "\n"):
		line := at.Line + strings.Count(strings.TrimSpace(tk.Origin), "\n")
		if line <= len(s.lines) {
			text := s.lines[line-1]
			col := len(text) - len(strings.TrimLeft(text, " ")) + 1
			return Pos{File: s.File, Line: line, Col: col}, "is this line indented further than the keys around it?"
		}
	}
	return at, ""
}

// startsLine reports whether only blanks come before p on its line.
func (s *Source) startsLine(p Pos) bool {
	if p.Line > len(s.lines) {
		return false
	}
	text := s.lines[p.Line-1]
	return p.Col-1 <= len(text) && strings.TrimSpace(text[:p.Col-1]) == ""
}
