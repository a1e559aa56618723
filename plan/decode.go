package plan

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The decoders below read one kind of YAML node each (a mapping, a string,
// an integer, a size, a list, a variable's value) and report a node of the
// wrong kind at its position. Section and step decoders (raw.go) are built
// from them.

// resolve follows anchors, aliases and tags to the value node.
func (l *loader) resolve(n ast.Node) ast.Node {
	for i := 0; i < 100 && n != nil; i++ {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			name := ""
			if x.Value != nil {
				name = x.Value.GetToken().Value
			}
			a, ok := l.anchors[name]
			if !ok {
				l.errNode(x, "", "unknown alias *%s", name)
				return nil
			}
			n = a
		default:
			return n
		}
	}
	return n
}

func (l *loader) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 500 {
		return
	}
	switch x := n.(type) {
	case *ast.AnchorNode:
		if x.Name != nil {
			l.anchors[x.Name.GetToken().Value] = x.Value
		}
		l.collectAnchors(x.Value, depth+1)
	case *ast.TagNode:
		l.collectAnchors(x.Value, depth+1)
	case *ast.MappingNode:
		for _, v := range x.Values {
			l.collectAnchors(v.Key, depth+1)
			l.collectAnchors(v.Value, depth+1)
		}
	case *ast.MappingValueNode:
		l.collectAnchors(x.Key, depth+1)
		l.collectAnchors(x.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range x.Values {
			l.collectAnchors(v, depth+1)
		}
	}
}

// kv is one key of a mapping.
type kv struct {
	key    string
	keyPos Pos
	keyW   int
	val    ast.Node // resolved
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

// NodeKind names a YAML node's kind for an error message: "a string", "a
// list", "nothing (null)". The simulator's scenario file is checked in the
// same words, so that both files a person writes read alike.
func NodeKind(n ast.Node) string {
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return "nothing (null)"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("a %s", strings.ToLower(x.Type().String()))
	}
}

// fields is a mapping's keys in source order, each once.
type fields []kv

// get returns the key named name, or nil.
func (f fields) get(name string) *kv {
	for i := range f {
		if f[i].key == name {
			return &f[i]
		}
	}
	return nil
}

// mapping reads a mapping's keys, reporting unknown and duplicate keys. what
// names the mapping in messages; misplaced explains a known key that is not
// allowed here (or returns "").
func (l *loader) mapping(n ast.Node, what string, allowed []string, misplaced func(string) string) (fields, bool) {
	n = l.resolve(n)
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if n != nil {
			l.errNode(n, "", "%s must be a mapping, not %s", what, NodeKind(n))
		}
		return nil, false
	}
	out := make(fields, 0, len(m.Values))
	// Small mappings find duplicates by looking; large ones (vars) by index.
	var index map[string]int
	if len(m.Values) > 16 {
		index = make(map[string]int, len(m.Values))
	}
	for _, mv := range m.Values {
		e, ok := l.key(mv)
		if !ok {
			continue
		}
		if allowed != nil && !contains(allowed, e.key) {
			l.unknownKey(e, what, allowed, misplaced)
			continue
		}
		prev := -1
		if index != nil {
			if i, dup := index[e.key]; dup {
				prev = i
			}
		} else {
			for i := range out {
				if out[i].key == e.key {
					prev = i
				}
			}
		}
		if prev >= 0 {
			l.errAt(e.keyPos, e.keyW, "", "duplicate key %q in %s (first given on line %d)", e.key, what, out[prev].keyPos.Line)
			continue
		}
		if index != nil {
			index[e.key] = len(out)
		}
		out = append(out, e)
	}
	return out, true
}

// key reads one entry of a mapping; false for one to skip (a merge key,
// reported, or a key that is nothing).
func (l *loader) key(mv *ast.MappingValueNode) (kv, bool) {
	if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
		l.errNode(mv.Key, "", "merge keys (<<) are not supported in plans")
		return kv{}, false
	}
	kn := l.resolve(mv.Key)
	var name string
	switch k := kn.(type) {
	case *ast.StringNode:
		name = k.Value
	case nil:
		return kv{}, false
	default:
		if tk := kn.GetToken(); tk != nil {
			name = tk.Value
		}
	}
	return kv{key: name, keyPos: l.pos(mv.Key), keyW: max(utf8.RuneCountInString(name), 1), val: l.resolve(mv.Value)}, true
}

// unknownKey reports a key that is not allowed in the mapping.
func (l *loader) unknownKey(e kv, what string, allowed []string, misplaced func(string) string) {
	msg := ""
	if misplaced != nil {
		msg = misplaced(e.key)
	}
	if msg != "" {
		l.errAt(e.keyPos, e.keyW, "", "%s", msg)
		return
	}
	l.errAt(e.keyPos, e.keyW, DidYouMean(e.key, allowed), "unknown key %q in %s", e.key, what)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) requireKeys(m fields, n ast.Node, what string, keys ...string) {
	for _, k := range keys {
		if m.get(k) == nil {
			l.errAt(l.pos(n), 1, "", "missing required key %q in %s", k, what)
		}
	}
}

func (l *loader) str(e *kv, what string) pv[string] {
	if e == nil {
		return pv[string]{}
	}
	p := pv[string]{Pos: l.pos(e.val), node: e.val, Given: true}
	switch x := e.val.(type) {
	case *ast.StringNode:
		p.V, p.Set = x.Value, true
	case *ast.LiteralNode:
		if x.Value != nil {
			p.V = x.Value.Value
		}
		p.Set = true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		l.errNode(e.val, "quote it to make it a string", "%s must be a string, not %s", what, NodeKind(e.val))
	default:
		l.errNode(orNode(e.val, e), "", "%s must be a string, not %s", what, NodeKind(e.val))
	}
	return p
}

// orNode returns n, or a stand-in positioned at the key when the value is
// absent.
func orNode(n ast.Node, e *kv) ast.Node {
	if n != nil {
		return n
	}
	return &ast.NullNode{BaseNode: &ast.BaseNode{}, Token: &token.Token{Position: &token.Position{Line: e.keyPos.Line, Column: e.keyPos.Col}}}
}

func (l *loader) int(e *kv, what string) pv[int64] {
	if e == nil {
		return pv[int64]{}
	}
	p := pv[int64]{Pos: l.pos(e.val), node: e.val, Given: true}
	x, ok := e.val.(*ast.IntegerNode)
	if !ok {
		if text, big := outOfRange(e.val); big {
			l.errNode(e.val, "", "%s is out of range: %s", what, beyond(text, false))
			return p
		}
		l.errNode(orNode(e.val, e), "", "%s must be an integer, not %s", what, NodeKind(e.val))
		return p
	}
	switch v := x.Value.(type) {
	case int64:
		p.V, p.Set = v, true
	case uint64:
		if v > math.MaxInt64 {
			l.errNode(x, "", "%s is out of range: %s", what, beyond(x.GetToken().Value, false))
			return p
		}
		p.V, p.Set = int64(v), true
	}
	return p
}

// outOfRange reports whether n is a plain scalar that reads as a number
// too large for a 64-bit one. The YAML library makes such a scalar a
// string, so without this check "must be an integer, not a string" would
// be the message.
func outOfRange(n ast.Node) (string, bool) {
	s, ok := n.(*ast.StringNode)
	if !ok || s.Token == nil || s.Token.Type != token.StringType {
		return "", false
	}
	t := strings.ReplaceAll(s.Value, "_", "")
	if _, err := strconv.ParseFloat(t, 64); errors.Is(err, strconv.ErrRange) {
		return s.Value, true // 1e400
	}
	digits, base := strings.TrimLeft(t, "+-"), 10
	switch {
	case strings.HasPrefix(digits, "0x"):
		digits, base = digits[2:], 16
	case strings.HasPrefix(digits, "0o"):
		digits, base = digits[2:], 8
	case strings.HasPrefix(digits, "0b"):
		digits, base = digits[2:], 2
	}
	v, err := strconv.ParseUint(digits, base, 64)
	negative := strings.HasPrefix(t, "-")
	if errors.Is(err, strconv.ErrRange) || (err == nil && negative && v > 1<<63) {
		return s.Value, true
	}
	return "", false
}

// beyond says which limit text passes.
func beyond(text string, float bool) string {
	side, limit := "larger than", fmt.Sprint(int64(math.MaxInt64))
	if strings.HasPrefix(strings.TrimSpace(text), "-") {
		side, limit = "smaller than", fmt.Sprint(int64(math.MinInt64))
	}
	if float {
		limit = "±1.8e308"
		side = "beyond"
	}
	return fmt.Sprintf("%s is %s %s", text, side, limit)
}

func (l *loader) num(e *kv, what string) pv[float64] {
	if e == nil {
		return pv[float64]{}
	}
	p := pv[float64]{Pos: l.pos(e.val), node: e.val, Given: true}
	switch x := e.val.(type) {
	case *ast.IntegerNode:
		switch v := x.Value.(type) {
		case int64:
			p.V = float64(v)
		case uint64:
			p.V = float64(v)
		}
		p.Set = true
	case *ast.FloatNode:
		p.V, p.Set = x.Value, true
	default:
		if text, big := outOfRange(e.val); big {
			l.errNode(e.val, "", "%s is out of range: %s", what, beyond(text, true))
			return p
		}
		l.errNode(orNode(e.val, e), "", "%s must be a number, not %s", what, NodeKind(e.val))
	}
	return p
}

func (l *loader) bool(e *kv, what string) pv[bool] {
	if e == nil {
		return pv[bool]{}
	}
	p := pv[bool]{Pos: l.pos(e.val), node: e.val, Given: true}
	x, ok := e.val.(*ast.BoolNode)
	if !ok {
		l.errNode(orNode(e.val, e), "", "%s must be true or false, not %s", what, NodeKind(e.val))
		return p
	}
	p.V, p.Set = x.Value, true
	return p
}

// list returns a sequence's items (resolved); null is an empty list.
func (l *loader) list(e *kv, what string) ([]ast.Node, bool) {
	if e == nil || isNull(e.val) {
		return nil, e != nil
	}
	s, ok := e.val.(*ast.SequenceNode)
	if !ok {
		l.errNode(e.val, "", "%s must be a list, not %s", what, NodeKind(e.val))
		return nil, false
	}
	out := make([]ast.Node, 0, len(s.Values))
	for _, v := range s.Values {
		out = append(out, l.resolve(v))
	}
	return out, true
}

// size reads a count or an "N%" percentage.
func (l *loader) size(n ast.Node, what string) pv[Size] {
	p := pv[Size]{Pos: l.pos(n), node: n, Given: true}
	switch x := n.(type) {
	case *ast.IntegerNode:
		v, ok := intValue(x)
		if !ok || v < 0 || v > math.MaxInt32 {
			l.errNode(n, "", "%s is out of range", what)
			return p
		}
		p.V, p.Set = Size{Count: int(v)}, true
	case *ast.StringNode:
		if text, big := outOfRange(x); big {
			l.errNode(n, "", "%s is out of range: %s", what, beyond(text, false))
			return p
		}
		s := strings.TrimSpace(x.Value)
		num, isPct := strings.CutSuffix(s, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !isPct || err != nil || !pctNumber.MatchString(strings.TrimSpace(num)) {
			l.errNode(n, "", "%s must be a count like 3 or a percentage like \"50%%\", not %q", what, x.Value)
			return p
		}
		if f < 0 {
			l.errNode(n, "", "%s must not be negative", what)
			return p
		}
		p.V, p.Set = Size{Percent: f, IsPct: true}, true
	default:
		l.errNode(n, "", "%s must be a count like 3 or a percentage like \"50%%\", not %s", what, NodeKind(n))
	}
	return p
}

func intValue(x *ast.IntegerNode) (int64, bool) {
	switch v := x.Value.(type) {
	case int64:
		return v, true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

var pctNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// value converts any YAML node to a Go value for vars.
func (l *loader) value(n ast.Node, depth int) any {
	n = l.resolve(n)
	if depth > 100 {
		l.errNode(n, "", "value nested too deeply")
		return nil
	}
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.StringNode:
		return x.Value
	case *ast.LiteralNode:
		if x.Value != nil {
			return x.Value.Value
		}
		return ""
	case *ast.IntegerNode:
		if v, ok := intValue(x); ok {
			return int(v)
		}
		l.errNode(x, "", "integer out of range")
		return 0
	case *ast.FloatNode:
		return x.Value
	case *ast.InfinityNode:
		return x.Value
	case *ast.NanNode:
		return math.NaN()
	case *ast.BoolNode:
		return x.Value
	case *ast.SequenceNode:
		out := make([]any, 0, len(x.Values))
		for _, v := range x.Values {
			out = append(out, l.value(v, depth+1))
		}
		return out
	case *ast.MappingNode:
		m, _ := l.mapping(x, "a variable's mapping", nil, nil)
		out := make(map[string]any, len(m))
		for _, e := range m {
			out[e.key] = l.value(e.val, depth+1)
		}
		return out
	default:
		l.errNode(n, "", "unsupported YAML value (%s)", NodeKind(n))
		return nil
	}
}
