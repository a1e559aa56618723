package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rollout/rollout/redact"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// scalarAt maps a byte offset inside a string scalar's value back to a file
// position, so errors in interpolations and expressions point inside the
// YAML string rather than at its start.
func (l *loader) scalarAt(n ast.Node, value string, off int) Pos {
	base := l.pos(n)
	if off < 0 || off > len(value) {
		return base
	}
	if lit, ok := n.(*ast.LiteralNode); ok {
		// Block scalars start on the line after the | or > header.
		line := base.Line + 1 + strings.Count(value[:off], "\n")
		if lit.Start != nil && lit.Start.Position != nil {
			line = lit.Start.Position.Line + 1 + strings.Count(value[:off], "\n")
		}
		indent := 0
		for i := line; i <= len(l.lines); i++ {
			t := l.lines[i-1]
			if strings.TrimSpace(t) != "" {
				indent = len(t) - len(strings.TrimLeft(t, " "))
				break
			}
		}
		last := strings.LastIndexByte(value[:off], '\n')
		return Pos{File: l.file, Line: line, Col: indent + 1 + len([]rune(value[last+1:off]))}
	}
	if strings.Contains(value, "\n") {
		return base
	}
	col := base.Col + len([]rune(value[:off]))
	if tk := n.GetToken(); tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
		col++
	}
	return Pos{File: l.file, Line: base.Line, Col: col}
}

// varState tracks interpolation of vars so a var may use ${env:..} and
// other vars, and cycles are caught.
type varState struct {
	raw      map[string]*rawVar
	names    []string
	value    map[string]any
	display  map[string]string
	fromEnv  map[string]bool
	visiting map[string]bool
	done     map[string]bool
}

// interpolate expands ${vars.x} and ${env:NAME} in a string scalar. $${
// writes a literal ${. The Display of the result never contains a value read
// from the environment, and URL credentials are masked in it.
func (l *loader) interpolate(s pv[string], what string, vs *varState) (Value, bool) {
	return l.interpolateSpans(s, what, vs, nil)
}

// span records which bytes of a Resolved value a reference produced, so a
// check on the value can name the ${env:NAME} or ${vars.x} responsible
// instead of echoing what it holds.
type span struct {
	start, end int
	label      string // safe to show: "${env:NAME}" or "${vars.x}"
}

// interpolateSpans is interpolate that also appends to *spans (when not
// nil) the span of every reference it expanded.
func (l *loader) interpolateSpans(s pv[string], what string, vs *varState, spans *[]span) (Value, bool) {
	if !s.Set {
		return Value{}, true
	}
	in := s.V
	var res, disp strings.Builder
	ok := true
	for i := 0; i < len(in); {
		if strings.HasPrefix(in[i:], "$${") {
			res.WriteString("${")
			disp.WriteString("$${")
			i += 3
			continue
		}
		if !strings.HasPrefix(in[i:], "${") {
			res.WriteByte(in[i])
			disp.WriteByte(in[i])
			i++
			continue
		}
		end := strings.IndexByte(in[i:], '}')
		if end < 0 {
			p := l.scalarAt(s.node, in, i)
			l.errAt(p, 2, "write $${ for a literal ${", "unterminated ${ in %s", what)
			return Value{}, false
		}
		r := ref{text: in[i+2 : i+end], pos: l.scalarAt(s.node, in, i), width: end + 1, what: what}
		if v, d, label, good := l.expandRef(r, vs); good {
			if spans != nil {
				*spans = append(*spans, span{res.Len(), res.Len() + len(v), label})
			}
			res.WriteString(v)
			disp.WriteString(d)
		} else {
			ok = false
		}
		i += end + 1
	}
	if !ok {
		return Value{}, false
	}
	return Value{Resolved: res.String(), Display: MaskURLs(disp.String())}, true
}

// ref is one ${...} in a string: its text between the braces, where it is
// and how wide, and what the string is (for messages).
type ref struct {
	text  string
	pos   Pos
	width int
	what  string
}

// expandRef returns what a reference stands for, how it may be shown and
// the label naming it in a span; false after reporting why it cannot be
// expanded.
func (l *loader) expandRef(r ref, vs *varState) (value, display, label string, ok bool) {
	switch {
	case strings.HasPrefix(r.text, "env:"):
		name := strings.TrimPrefix(r.text, "env:")
		if name == "" {
			l.errAt(r.pos, r.width, "", "${env:} needs a variable name, like ${env:BUILD_URL}")
			return "", "", "", false
		}
		v, found := l.lookupEnv(name)
		if !found {
			l.errAt(r.pos, r.width, "", "environment variable %s is not set (used in %s)", name, r.what)
			return "", "", "", false
		}
		return v, "${env:" + name + "}", "${env:" + name + "}", true
	case strings.HasPrefix(r.text, "vars."):
		return l.expandVar(r, strings.TrimPrefix(r.text, "vars."), vs)
	}
	l.errAt(r.pos, r.width, "write ${vars.NAME} or ${env:NAME}; $${ writes a literal ${", "unknown interpolation ${%s} in %s", r.text, r.what)
	return "", "", "", false
}

// expandVar expands ${vars.name}.
func (l *loader) expandVar(r ref, name string, vs *varState) (value, display, label string, ok bool) {
	if vs == nil || vs.raw[name] == nil {
		var names []string
		if vs != nil {
			names = vs.names
		}
		l.errAt(r.pos, r.width, DidYouMean(name, names), "unknown variable %q in %s", name, r.what)
		return "", "", "", false
	}
	v, d, good := l.varValue(name, vs, r.pos, r.width)
	if !good {
		return "", "", "", false
	}
	str, scalar := scalarString(v)
	if !scalar {
		l.errAt(r.pos, r.width, "", "variable %q is a list or mapping and cannot be put into a string", name)
		return "", "", "", false
	}
	label = "${vars." + name + "}"
	if vs.fromEnv[name] {
		label += " (" + d + ")"
	}
	return str, d, label, true
}

// varValue resolves a variable, interpolating it first when it is a string.
func (l *loader) varValue(name string, vs *varState, at Pos, width int) (any, string, bool) {
	if vs.done[name] {
		return vs.value[name], vs.display[name], true
	}
	if vs.visiting[name] {
		l.errAt(at, width, "", "variable %q refers to itself through ${vars...}", name)
		return nil, "", false
	}
	vs.visiting[name] = true
	defer delete(vs.visiting, name)
	rv := vs.raw[name]
	v := rv.Value
	disp := ""
	if s, ok := v.(string); ok {
		val, good := l.interpolate(pv[string]{V: s, Set: true, node: rv.node}, "vars."+name, vs)
		if !good {
			vs.done[name] = true
			vs.value[name] = ""
			return nil, "", false
		}
		v, disp = val.Resolved, val.Display
		if val.Resolved != s {
			vs.fromEnv[name] = strings.Contains(s, "${env:")
		}
	} else {
		disp, _ = scalarString(v)
		if disp == "" {
			disp = fmt.Sprint(v)
		}
	}
	vs.value[name] = v
	vs.display[name] = disp
	vs.done[name] = true
	return v, disp, true
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "", true
	}
	return "", false
}

// MaskURLs hides credentials in s by the rules of package redact: the
// user-info of every URL ("s3://key:sec/ret@bucket/x" becomes
// "s3://***@bucket/x"), secret query parameters and bare user:pass@host.
func MaskURLs(s string) string {
	return redact.Text(s)
}
