package plan

import (
	"fmt"
	"os"
	"strings"

	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/rollout/rollout/redact"
)

// The loader turns a plan's source into a *Plan in three passes: decoding
// reads the YAML into the raw types of raw.go (decode.go holds a decoder for
// each kind of node), validation turns them into the types of plan.go
// (validate.go), and expansion makes the instance DAG (dag.go). Every pass
// reports every problem it meets, positioned, instead of stopping at the
// first.

// loader holds what the passes share: the source, the options, and the
// errors found so far.
type loader struct {
	file      string
	src       []byte
	text      string // src, converted once
	source    *Source
	lines     []string // the source's lines
	opt       Options
	lookupEnv func(string) (string, bool)
	errs      Errors
	dropped   int // errors past maxErrors, counted but not kept
	seen      map[string]bool
	anchors   map[string]ast.Node
	xenv      *exprEnv
	raw       map[*Step]*rawStep // each step as written
	// partialTargets: an image or machine was left out of the plan
	// (reported), so a where that matches nothing may match what was
	// left out.
	partialTargets bool
	// envs and vm evaluate where expressions at load time, reused for
	// every target (the loader runs on one goroutine).
	envs        map[*compiled]*env
	vm          vm.VM
	lastFailure *Instance // see sameFailureShape
	// hidden are the secrets written literally in the plan (a webhook
	// URL's path), masked in the source lines and messages of errors.
	hidden []redact.Secret
	infos  []*stepInfo // the steps, once built
	// badProfile: the image's profile is given but unusable (reported).
	badProfile map[*Image]bool
	lastScope  struct {
		sc      map[string]*Instance
		step    *stepInfo
		machine bool
	}
}

func newLoader(file string, src []byte, opt Options) *loader {
	text := string(src)
	source := &Source{File: file, lines: strings.Split(text, "\n")}
	l := &loader{
		file:       file,
		src:        src,
		text:       text,
		source:     source,
		lines:      source.lines,
		opt:        opt,
		lookupEnv:  opt.LookupEnv,
		seen:       map[string]bool{},
		anchors:    map[string]ast.Node{},
		envs:       map[*compiled]*env{},
		raw:        map[*Step]*rawStep{},
		badProfile: map[*Image]bool{},
	}
	if l.lookupEnv == nil {
		l.lookupEnv = os.LookupEnv
	}
	return l
}

// errAt records an error once (instance expansion would otherwise repeat a
// step's error for every target).
func (l *loader) errAt(p Pos, width int, hint string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := fmt.Sprintf("%s:%d:%d:%s", p.File, p.Line, p.Col, msg)
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	if len(l.errs) >= maxErrors {
		l.dropped++
		return
	}
	l.errs = append(l.errs, &Error{Pos: p, Msg: msg, Hint: hint, Line: l.source.quote(p.Line), Width: width})
}

func (l *loader) errNode(n ast.Node, hint string, format string, args ...any) {
	l.errAt(l.pos(n), l.width(n), hint, format, args...)
}

func (l *loader) pos(n ast.Node) Pos {
	if n == nil {
		return Pos{File: l.file, Line: 1, Col: 1}
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
		return l.pos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok {
		return l.pos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return Pos{File: l.file, Line: 1, Col: 1}
	}
	return Pos{File: l.file, Line: tk.Position.Line, Col: max(tk.Position.Column, 1)}
}

// width is the length of a scalar's text on its line, for the caret.
func (l *loader) width(n ast.Node) int {
	switch n.(type) {
	case *ast.MappingNode, *ast.SequenceNode, *ast.MappingValueNode, *ast.LiteralNode:
		return 1
	}
	tk := n.GetToken()
	if tk == nil {
		return 1
	}
	w := len([]rune(tk.Value))
	if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
		w += 2
	}
	if strings.Contains(tk.Value, "\n") || w < 1 {
		return 1
	}
	return w
}

// maskHidden masks the plan's literal secrets in its errors. Errors are
// quoted as they are found, some before the secret is known, so this is
// done once at the end.
func (l *loader) maskHidden() {
	if len(l.hidden) == 0 {
		return
	}
	mask := func(s string) string {
		for _, h := range l.hidden {
			s = strings.ReplaceAll(s, h.Value, h.Label)
		}
		return s
	}
	for _, e := range l.errs {
		e.Line, e.Msg, e.Hint = mask(e.Line), mask(e.Msg), mask(e.Hint)
	}
}
