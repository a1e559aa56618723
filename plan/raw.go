package plan

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// The loader reads the YAML AST into the raw types below, reporting every
// problem it meets instead of stopping at the first; validation then turns
// raw types into the Plan types of plan.go.

// pv is a raw value with the position it came from.
type pv[T any] struct {
	V    T
	Pos  Pos
	Set  bool
	node ast.Node
}

type rawPlan struct {
	Pos          Pos
	Version      pv[int64]
	Name         pv[string]
	Description  pv[string]
	ClanforgeURL pv[string]
	ASID         pv[int64]
	Concurrency  pv[int64]
	Vars         []*rawVar
	Images       []*rawImage
	Machines     []*rawMachine
	Steps        []*rawStep
	OnFailure    []*rawStep
	have         map[string]bool
}

type rawVar struct {
	Name  string
	Pos   Pos // of the key
	Value any
	node  ast.Node
}

type rawImage struct {
	Pos  Pos
	Name pv[string]
	ID   pv[int64]
}

type rawMachine struct {
	Pos       Pos
	Name      pv[string]
	ID        pv[int64]
	Labels    map[string]string
	Images    []pv[string]
	ImagesSet bool
}

type rawStep struct {
	Pos       Pos
	OnFailure bool
	Name      pv[string]
	Type      pv[string]
	Needs     []pv[string]
	Where     pv[string]
	When      pv[string]
	Timeout   pv[string]
	Retries   pv[int64]
	MaxPar    pv[int64]
	// update
	Desc pv[string]
	URL  pv[string]
	// gate
	Expr pv[string]
	// version
	Restart           pv[bool]
	Full              pv[string]
	GameBuild         pv[string]
	Force             pv[bool]
	InstallAt         pv[string]
	DisableTimeout    pv[int64]
	DisablePercentage pv[float64]
	// install
	Mirroring   pv[bool]
	Waves       []pv[Size]
	WavesSet    pv[bool]
	MaxFailures pv[Size]
	// reject
	Reinstall pv[bool]
}

var topKeys = []string{"version", "name", "description", "clanforge", "concurrency", "vars", "images", "machines", "steps", "on_failure"}

var commonStepKeys = []string{"name", "type", "needs", "where", "when", "timeout", "retries", "max_parallel"}

// stepKeys lists each step type's own keys, as in the format's table.
var stepKeys = map[string][]string{
	"update":  {"desc", "url"},
	"diff":    {},
	"gate":    {"expr"},
	"version": {"restart", "full", "game_build", "force", "install_at", "disable_timeout", "disable_percentage"},
	"install": {"mirroring", "waves", "max_failures"},
	"reject":  {"reinstall"},
}

var stepTypes = []string{"update", "diff", "gate", "version", "install", "reject"}

type loader struct {
	file      string
	src       []byte
	lines     []string
	opt       Options
	lookupEnv func(string) (string, bool)
	errs      Errors
	dropped   int // errors past maxErrors, counted but not kept
	seen      map[string]bool
	anchors   map[string]ast.Node
	xenv      *exprEnv
	lastScope struct {
		sc      map[string]*Instance
		step    *stepInfo
		machine bool
	}
}

func newLoader(file string, src []byte, opt Options) *loader {
	l := &loader{
		file:      file,
		src:       src,
		lines:     strings.Split(string(src), "\n"),
		opt:       opt,
		lookupEnv: opt.LookupEnv,
		seen:      map[string]bool{},
		anchors:   map[string]ast.Node{},
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
	line := ""
	if p.Line >= 1 && p.Line <= len(l.lines) {
		// The quoted source line may hold a credential written straight
		// into the plan; show it masked like every other output.
		line = MaskURLs(strings.TrimRight(l.lines[p.Line-1], "\r"))
	}
	l.errs = append(l.errs, &Error{Pos: p, Msg: msg, Hint: hint, Line: line, Width: width})
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

func kindName(n ast.Node) string {
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

// mapping reads a mapping's keys, reporting unknown and duplicate keys. what
// names the mapping in messages; misplaced explains a known key that is not
// allowed here (or returns "").
func (l *loader) mapping(n ast.Node, what string, allowed []string, misplaced func(string) string) (map[string]*kv, bool) {
	n = l.resolve(n)
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if n != nil {
			l.errNode(n, "", "%s must be a mapping, not %s", what, kindName(n))
		}
		return nil, false
	}
	out := make(map[string]*kv, len(m.Values))
	for _, mv := range m.Values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			l.errNode(mv.Key, "", "merge keys (<<) are not supported in plans")
			continue
		}
		kn := l.resolve(mv.Key)
		var name string
		switch k := kn.(type) {
		case *ast.StringNode:
			name = k.Value
		case nil:
			continue
		default:
			if tk := kn.GetToken(); tk != nil {
				name = tk.Value
			}
		}
		e := &kv{key: name, keyPos: l.pos(mv.Key), keyW: max(len([]rune(name)), 1), val: l.resolve(mv.Value)}
		if allowed != nil && !contains(allowed, name) {
			msg := ""
			if misplaced != nil {
				msg = misplaced(name)
			}
			if msg != "" {
				l.errAt(e.keyPos, e.keyW, "", "%s", msg)
			} else {
				l.errAt(e.keyPos, e.keyW, DidYouMean(name, allowed), "unknown key %q in %s", name, what)
			}
			continue
		}
		if prev, dup := out[name]; dup {
			l.errAt(e.keyPos, e.keyW, "", "duplicate key %q in %s (first given on line %d)", name, what, prev.keyPos.Line)
			continue
		}
		out[name] = e
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) requireKeys(m map[string]*kv, n ast.Node, what string, keys ...string) {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			l.errAt(l.pos(n), 1, "", "missing required key %q in %s", k, what)
		}
	}
}

func (l *loader) str(e *kv, what string) pv[string] {
	if e == nil {
		return pv[string]{}
	}
	p := pv[string]{Pos: l.pos(e.val), node: e.val}
	switch x := e.val.(type) {
	case *ast.StringNode:
		p.V, p.Set = x.Value, true
	case *ast.LiteralNode:
		if x.Value != nil {
			p.V = x.Value.Value
		}
		p.Set = true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		l.errNode(e.val, "quote it to make it a string", "%s must be a string, not %s", what, kindName(e.val))
	default:
		l.errNode(orNode(e.val, e), "", "%s must be a string, not %s", what, kindName(e.val))
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
	p := pv[int64]{Pos: l.pos(e.val), node: e.val}
	x, ok := e.val.(*ast.IntegerNode)
	if !ok {
		l.errNode(orNode(e.val, e), "", "%s must be an integer, not %s", what, kindName(e.val))
		return p
	}
	switch v := x.Value.(type) {
	case int64:
		p.V, p.Set = v, true
	case uint64:
		if v > math.MaxInt64 {
			l.errNode(x, "", "%s is too large", what)
			return p
		}
		p.V, p.Set = int64(v), true
	}
	return p
}

func (l *loader) num(e *kv, what string) pv[float64] {
	if e == nil {
		return pv[float64]{}
	}
	p := pv[float64]{Pos: l.pos(e.val), node: e.val}
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
		l.errNode(orNode(e.val, e), "", "%s must be a number, not %s", what, kindName(e.val))
	}
	return p
}

func (l *loader) bool(e *kv, what string) pv[bool] {
	if e == nil {
		return pv[bool]{}
	}
	p := pv[bool]{Pos: l.pos(e.val), node: e.val}
	x, ok := e.val.(*ast.BoolNode)
	if !ok {
		l.errNode(orNode(e.val, e), "", "%s must be true or false, not %s", what, kindName(e.val))
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
		l.errNode(e.val, "", "%s must be a list, not %s", what, kindName(e.val))
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
	p := pv[Size]{Pos: l.pos(n), node: n}
	switch x := n.(type) {
	case *ast.IntegerNode:
		v, ok := intValue(x)
		if !ok || v < 0 || v > math.MaxInt32 {
			l.errNode(n, "", "%s is out of range", what)
			return p
		}
		p.V, p.Set = Size{Count: int(v)}, true
	case *ast.StringNode:
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
		l.errNode(n, "", "%s must be a count like 3 or a percentage like \"50%%\", not %s", what, kindName(n))
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
		for k, e := range m {
			out[k] = l.value(e.val, depth+1)
		}
		return out
	default:
		l.errNode(n, "", "unsupported YAML value (%s)", kindName(n))
		return nil
	}
}

// parseRaw parses the source once into an AST and walks it into rawPlan.
func (l *loader) parseRaw() *rawPlan {
	tokens, ok := l.lex()
	if !ok {
		return nil
	}
	f, err := parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			tp := ye.GetToken().Position
			l.errAt(Pos{File: l.file, Line: max(tp.Line, 1), Col: max(tp.Column, 1)}, 1, "", "YAML syntax error: %s", ye.GetMessage())
		} else {
			l.errAt(Pos{File: l.file, Line: 1, Col: 1}, 1, "", "YAML syntax error: %v", err)
		}
		return nil
	}
	var body ast.Node
	docs := 0
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		docs++
		if docs == 1 {
			body = d.Body
		} else {
			l.errNode(d.Body, "", "a plan file holds one YAML document; remove the extra documents")
		}
	}
	if body == nil {
		l.errAt(Pos{File: l.file, Line: 1, Col: 1}, 1, "", "the plan is empty: it needs at least version, name, images, machines and steps")
		return nil
	}
	l.collectAnchors(body, 0)
	if len(l.anchors) > 0 {
		if n, msg := checkAliases(body, l.anchors); n != nil {
			l.errNode(n, "", "%s", msg)
			return nil
		}
	}
	rp := &rawPlan{Pos: l.pos(body), have: map[string]bool{}}
	top, ok := l.mapping(body, "the plan", topKeys, nil)
	if !ok {
		return nil
	}
	for k := range top {
		rp.have[k] = true
	}
	l.requireKeys(top, body, "the plan", "version", "name", "images", "machines", "steps")
	rp.Version = l.int(top["version"], "version")
	rp.Name = l.str(top["name"], "name")
	rp.Description = l.str(top["description"], "description")
	rp.Concurrency = l.int(top["concurrency"], "concurrency")
	if e := top["clanforge"]; e != nil && !isNull(e.val) {
		cf, _ := l.mapping(e.val, "clanforge", []string{"url", "asid"}, func(k string) string {
			switch strings.ToLower(k) {
			case "access_key", "secret_key", "accesskey", "secretkey", "key", "secret", "token", "password":
				return fmt.Sprintf("key %q is not allowed in clanforge: credentials come only from the environment (CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY)", k)
			}
			return ""
		})
		rp.ClanforgeURL = l.str(cf["url"], "clanforge.url")
		rp.ASID = l.int(cf["asid"], "clanforge.asid")
	}
	if e := top["vars"]; e != nil && !isNull(e.val) {
		vm, ok := l.mapping(e.val, "vars", nil, nil)
		if ok {
			for k, v := range vm {
				rp.Vars = append(rp.Vars, &rawVar{Name: k, Pos: v.keyPos, Value: l.value(v.val, 0), node: v.val})
			}
			sort.Slice(rp.Vars, func(i, j int) bool {
				return rp.Vars[i].Pos.Line < rp.Vars[j].Pos.Line || (rp.Vars[i].Pos.Line == rp.Vars[j].Pos.Line && rp.Vars[i].Pos.Col < rp.Vars[j].Pos.Col)
			})
		}
	}
	if items, ok := l.list(top["images"], "images"); ok {
		for _, it := range items {
			m, ok := l.mapping(it, "an image", []string{"name", "id"}, nil)
			if !ok {
				continue
			}
			l.requireKeys(m, it, "an image", "name", "id")
			rp.Images = append(rp.Images, &rawImage{Pos: l.pos(it), Name: l.str(m["name"], "image name"), ID: l.int(m["id"], "image id")})
		}
	}
	if items, ok := l.list(top["machines"], "machines"); ok {
		for _, it := range items {
			m, ok := l.mapping(it, "a machine", []string{"name", "id", "labels", "images"}, nil)
			if !ok {
				continue
			}
			l.requireKeys(m, it, "a machine", "name", "id")
			rm := &rawMachine{Pos: l.pos(it), Name: l.str(m["name"], "machine name"), ID: l.int(m["id"], "machine id")}
			if e := m["labels"]; e != nil && !isNull(e.val) {
				lm, _ := l.mapping(e.val, "labels", nil, nil)
				rm.Labels = make(map[string]string, len(lm))
				for k, v := range lm {
					s := l.str(v, fmt.Sprintf("label %q", k))
					if s.Set {
						rm.Labels[k] = s.V
					}
				}
			}
			if imgs, ok := l.list(m["images"], "machine images"); ok {
				rm.ImagesSet = true
				for _, in := range imgs {
					rm.Images = append(rm.Images, l.str(&kv{val: in}, "an image name"))
				}
			}
			rp.Machines = append(rp.Machines, rm)
		}
	}
	if items, ok := l.list(top["steps"], "steps"); ok {
		for _, it := range items {
			if s := l.step(it, false); s != nil {
				rp.Steps = append(rp.Steps, s)
			}
		}
	}
	if items, ok := l.list(top["on_failure"], "on_failure"); ok {
		for _, it := range items {
			if s := l.step(it, true); s != nil {
				rp.OnFailure = append(rp.OnFailure, s)
			}
		}
	}
	return rp
}

func (l *loader) step(n ast.Node, onFailure bool) *rawStep {
	what := "a step"
	if onFailure {
		what = "an on_failure step"
	}
	// The type decides which keys are allowed, so read it first.
	typ := ""
	if m, ok := l.resolve(n).(*ast.MappingNode); ok {
		for _, mv := range m.Values {
			if k, ok := l.resolve(mv.Key).(*ast.StringNode); ok && (k.Value == "type" || k.Value == "name") {
				if v, ok := l.resolve(mv.Value).(*ast.StringNode); ok {
					if k.Value == "type" {
						typ = v.Value
					} else {
						what = fmt.Sprintf("step %q", v.Value)
					}
				}
			}
		}
	}
	allowed := append([]string{}, commonStepKeys...)
	if own, ok := stepKeys[typ]; ok {
		allowed = append(allowed, own...)
	} else {
		// Unknown type: accept every step key so only the type is reported.
		for _, t := range stepTypes {
			allowed = append(allowed, stepKeys[t]...)
		}
	}
	m, ok := l.mapping(n, what, allowed, func(k string) string {
		for _, t := range stepTypes {
			if contains(stepKeys[t], k) {
				return fmt.Sprintf("key %q belongs to %s steps, not to a %s step", k, t, typ)
			}
		}
		return ""
	})
	if !ok {
		return nil
	}
	s := &rawStep{Pos: l.pos(n), OnFailure: onFailure}
	if onFailure {
		l.requireKeys(m, n, what, "type")
	} else {
		l.requireKeys(m, n, what, "name", "type")
	}
	s.Name = l.str(m["name"], "step name")
	s.Type = l.str(m["type"], "step type")
	if s.Type.Set && !contains(stepTypes, s.Type.V) {
		l.errNode(s.Type.node, DidYouMean(s.Type.V, stepTypes), "unknown step type %q (one of %s)", s.Type.V, strings.Join(stepTypes, ", "))
	}
	if items, ok := l.list(m["needs"], "needs"); ok {
		for _, it := range items {
			s.Needs = append(s.Needs, l.str(&kv{val: it}, "a need"))
		}
	}
	s.Where = l.str(m["where"], "where")
	s.When = l.str(m["when"], "when")
	s.Timeout = l.str(m["timeout"], "timeout")
	s.Retries = l.int(m["retries"], "retries")
	s.MaxPar = l.int(m["max_parallel"], "max_parallel")
	s.Desc = l.str(m["desc"], "desc")
	s.URL = l.str(m["url"], "url")
	s.Expr = l.str(m["expr"], "expr")
	s.Restart = l.bool(m["restart"], "restart")
	if e := m["full"]; e != nil {
		switch x := e.val.(type) {
		case *ast.BoolNode:
			s.Full = pv[string]{V: strconv.FormatBool(x.Value), Set: true, Pos: l.pos(x), node: x}
		case *ast.StringNode:
			if x.Value == "auto" {
				s.Full = pv[string]{V: "auto", Set: true, Pos: l.pos(x), node: x}
			} else {
				l.errNode(x, DidYouMean(x.Value, []string{"auto"}), "full must be true, false or auto, not %q", x.Value)
			}
		default:
			l.errNode(orNode(e.val, e), "", "full must be true, false or auto, not %s", kindName(e.val))
		}
	}
	s.GameBuild = l.str(m["game_build"], "game_build")
	s.Force = l.bool(m["force"], "force")
	s.InstallAt = l.str(m["install_at"], "install_at")
	if s.InstallAt.Set && s.InstallAt.V != "manual" && s.InstallAt.V != "now" {
		l.errNode(s.InstallAt.node, DidYouMean(s.InstallAt.V, []string{"manual", "now"}), "install_at must be manual or now, not %q", s.InstallAt.V)
		s.InstallAt.Set = false
	}
	s.DisableTimeout = l.int(m["disable_timeout"], "disable_timeout")
	s.DisablePercentage = l.num(m["disable_percentage"], "disable_percentage")
	s.Mirroring = l.bool(m["mirroring"], "mirroring")
	if typ == "install" {
		l.requireKeys(m, n, "an install step", "mirroring")
	}
	if typ == "update" {
		l.requireKeys(m, n, "an update step", "desc")
	}
	if typ == "gate" {
		l.requireKeys(m, n, "a gate step", "expr")
	}
	if e := m["waves"]; e != nil {
		s.WavesSet = pv[bool]{V: true, Set: true, Pos: l.pos(orNode(e.val, e)), node: orNode(e.val, e)}
		if items, ok := l.list(e, "waves"); ok {
			for _, it := range items {
				s.Waves = append(s.Waves, l.size(it, "a wave"))
			}
		}
	}
	if e := m["max_failures"]; e != nil {
		s.MaxFailures = l.size(orNode(e.val, e), "max_failures")
	}
	s.Reinstall = l.bool(m["reinstall"], "reinstall")
	return s
}
