package plan

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
)

// Expressions are type-checked against a struct type built for each scope
// shape: which of machine and which steps.<name> an instance sees, each step
// typed by its kind. A map environment would let unknown names and type
// errors through (see pitfalls.md), so the types are real Go types.

type jobView struct {
	ID        int64  `expr:"id"`
	State     int    `expr:"state"`
	StateName string `expr:"state_name"`
	Progress  int    `expr:"progress"`
	Error     string `expr:"error"`
	Failed    int    `expr:"failed"`
}

type basicView struct {
	State string  `expr:"state"`
	Job   jobView `expr:"job"`
}

type diffView struct {
	State    string   `expr:"state"`
	Job      jobView  `expr:"job"`
	DiffID   int64    `expr:"diffid"`
	Added    []string `expr:"added"`
	Modified []string `expr:"modified"`
	Removed  []string `expr:"removed"`
	Changed  int      `expr:"changed"`
}

type versionView struct {
	State     string  `expr:"state"`
	Job       jobView `expr:"job"`
	VersionID int64   `expr:"versionid"`
}

type installView struct {
	State  string  `expr:"state"`
	Job    jobView `expr:"job"`
	JobIDs []int64 `expr:"jobids"`
}

type machineView struct {
	Name   string            `expr:"name"`
	ID     int64             `expr:"id"`
	Labels map[string]string `expr:"labels"`
}

type imageView struct {
	Name string `expr:"name"`
	ID   int64  `expr:"id"`
}

// readyView is a ready step's output: steps.<name>.status is the last
// counters it read.
type readyView struct {
	State  string     `expr:"state"`
	Job    jobView    `expr:"job"`
	Status statusView `expr:"status"`
}

// statusView is the v2 image status counters as a ready step's until and
// fail_if (status) and later expressions (steps.<name>.status) read them.
type statusView struct {
	Pending   int                   `expr:"pending"`
	Failed    int                   `expr:"failed"`
	Completed int                   `expr:"completed"`
	Regions   map[string]regionView `expr:"regions"`
}

type regionView struct {
	Pending   int `expr:"pending"`
	Failed    int `expr:"failed"`
	Completed int `expr:"completed"`
}

// viewType is the expression type of a step kind's output.
func viewType(t StepType) reflect.Type {
	switch t {
	case TypeDiff:
		return reflect.TypeFor[diffView]()
	case TypeVersion:
		return reflect.TypeFor[versionView]()
	case TypeInstall:
		return reflect.TypeFor[installView]()
	case TypeReady:
		return reflect.TypeFor[readyView]()
	}
	return reflect.TypeFor[basicView]()
}

func jobOf(o *Output) jobView {
	j := o.Job
	return jobView{ID: j.ID, State: j.State, StateName: j.StateName, Progress: j.Progress, Error: j.Error, Failed: j.Failed}
}

func viewValue(t StepType, o *Output) reflect.Value {
	if o == nil {
		return reflect.Zero(viewType(t))
	}
	switch t {
	case TypeDiff:
		return reflect.ValueOf(diffView{State: string(o.State), Job: jobOf(o), DiffID: o.DiffID, Added: nonNil(o.Added), Modified: nonNil(o.Modified), Removed: nonNil(o.Removed), Changed: o.Changed})
	case TypeVersion:
		return reflect.ValueOf(versionView{State: string(o.State), Job: jobOf(o), VersionID: o.VersionID})
	case TypeInstall:
		return reflect.ValueOf(installView{State: string(o.State), Job: jobOf(o), JobIDs: o.JobIDs})
	case TypeReady:
		return reflect.ValueOf(readyView{State: string(o.State), Job: jobOf(o), Status: statusOf(o.Status)})
	}
	return reflect.ValueOf(basicView{State: string(o.State), Job: jobOf(o)})
}

// statusOf is the expression view of a ready step's counters; nil (no read
// yet) is all zeros with no regions.
func statusOf(rs *ReadyStatus) statusView {
	v := statusView{Regions: map[string]regionView{}}
	if rs == nil {
		return v
	}
	v.Pending, v.Failed, v.Completed = rs.Pending, rs.Failed, rs.Completed
	for name, r := range rs.Regions {
		v.Regions[name] = regionView{Pending: r.Pending, Failed: r.Failed, Completed: r.Completed}
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var viewFields = map[reflect.Type]struct {
	name   string
	fields []string
}{
	reflect.TypeFor[jobView]():     {"job", []string{"id", "state", "state_name", "progress", "error", "failed"}},
	reflect.TypeFor[basicView]():   {"a step's output", []string{"state", "job"}},
	reflect.TypeFor[diffView]():    {"a diff step's output", []string{"state", "job", "diffid", "added", "modified", "removed", "changed"}},
	reflect.TypeFor[versionView](): {"a version step's output", []string{"state", "job", "versionid"}},
	reflect.TypeFor[installView](): {"an install step's output", []string{"state", "job", "jobids"}},
	reflect.TypeFor[readyView]():   {"a ready step's output", []string{"state", "job", "status"}},
	reflect.TypeFor[statusView]():  {"status", []string{"pending", "failed", "completed", "regions"}},
	reflect.TypeFor[regionView]():  {"a region's status", []string{"pending", "failed", "completed"}},
	reflect.TypeFor[machineView](): {"machine", []string{"name", "id", "labels"}},
	reflect.TypeFor[imageView]():   {"image", []string{"name", "id"}},
}

// envInfo is one scope shape's environment type.
type envInfo struct {
	typ       reflect.Type
	stepsType reflect.Type
	machine   bool
	steps     []string // field order of stepsType
	kinds     []StepType
	// status: the environment also has status, last (a ready step's
	// until and fail_if).
	status bool
}

// compiles counts expr.Compile calls, so a test can check that the cache
// keeps a large fleet from compiling once per machine.
var compiles atomic.Int64

type compiled struct {
	prog *vm.Program
	env  *envInfo
	vars reflect.Value
}

// exprEnv builds (and caches) the environment type for a shape.
type exprEnv struct {
	varsType  reflect.Type
	varsValue reflect.Value
	varNames  []string
	envs      map[string]*envInfo
	progs     map[string]*compiled // nil value: compile failed (reported)
	stepType  map[string]StepType
	stepNames []string
}

func shapeKey(machine bool, steps []string) string {
	var b strings.Builder
	if machine {
		b.WriteString("m")
	}
	for _, s := range steps {
		b.WriteByte('|')
		b.WriteString(s)
	}
	return b.String()
}

// buildVars types the plan's variables from their YAML values.
func (x *exprEnv) buildVars(names []string, values map[string]any) {
	fields := make([]reflect.StructField, 0, len(names))
	for i, n := range names {
		t := reflect.TypeFor[any]()
		switch values[n].(type) {
		case string:
			t = reflect.TypeFor[string]()
		case int:
			t = reflect.TypeFor[int]()
		case float64:
			t = reflect.TypeFor[float64]()
		case bool:
			t = reflect.TypeFor[bool]()
		case []any:
			t = reflect.TypeFor[[]any]()
		case map[string]any:
			t = reflect.TypeFor[map[string]any]()
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("V%d", i), Type: t, Tag: reflect.StructTag(fmt.Sprintf(`expr:%q`, n))})
	}
	x.varsType = reflect.StructOf(fields)
	x.varsValue = reflect.New(x.varsType).Elem()
	for i, n := range names {
		if v := values[n]; v != nil {
			x.varsValue.Field(i).Set(reflect.ValueOf(v))
		}
	}
	x.varNames = names
}

func (x *exprEnv) env(machine bool, steps []string) *envInfo {
	key := shapeKey(machine, steps)
	if e, ok := x.envs[key]; ok {
		return e
	}
	e := &envInfo{machine: machine, steps: steps}
	sf := make([]reflect.StructField, 0, len(steps))
	for i, s := range steps {
		k := x.stepType[s]
		e.kinds = append(e.kinds, k)
		sf = append(sf, reflect.StructField{Name: fmt.Sprintf("S%d", i), Type: viewType(k), Tag: reflect.StructTag(fmt.Sprintf(`expr:%q`, s))})
	}
	e.stepsType = reflect.StructOf(sf)
	var fields []reflect.StructField
	if machine {
		fields = append(fields, reflect.StructField{Name: "Machine", Type: reflect.TypeFor[machineView](), Tag: `expr:"machine"`})
	}
	fields = append(fields,
		reflect.StructField{Name: "Image", Type: reflect.TypeFor[imageView](), Tag: `expr:"image"`},
		reflect.StructField{Name: "Vars", Type: x.varsType, Tag: `expr:"vars"`},
		reflect.StructField{Name: "Steps", Type: e.stepsType, Tag: `expr:"steps"`},
	)
	e.typ = reflect.StructOf(fields)
	x.envs[key] = e
	return e
}

// exprCtx is what error messages need to know about where an expression is.
type exprCtx struct {
	key       string // "where", "when", "expr"
	step      string
	perImage  bool
	ambiguous []string
	node      ast.Node
}

// compile type-checks src for a shape, once per (source, shape).
func (l *loader) compile(e *Expr, machine bool, steps []string, c exprCtx) *compiled {
	return l.compileIn(e, shapeKey(machine, steps), func() *envInfo { return l.xenv.env(machine, steps) }, c)
}

// compileIn type-checks src in the environment envOf builds, once per
// (source, shape key sk), and caches the program (or its failure) under
// both: compile and compileStatus differ only in the environment.
func (l *loader) compileIn(e *Expr, sk string, envOf func() *envInfo, c exprCtx) *compiled {
	x := l.xenv
	ck := e.Source + "\x00" + sk + "\x00" + strings.Join(c.ambiguous, ",")
	if p, ok := x.progs[ck]; ok {
		if p != nil {
			e.add(sk, p)
		}
		return p
	}
	if !l.stepNamesAreIdents(e, c) {
		x.progs[ck] = nil
		return nil
	}
	env := envOf()
	compiles.Add(1)
	prog, err := expr.Compile(e.Source, expr.Env(reflect.New(env.typ).Elem().Interface()), expr.AsBool())
	if err != nil {
		x.progs[ck] = nil
		l.exprError(e, env, c, err, -1)
		l.nameErrors(e, env, c)
		return nil
	}
	p := &compiled{prog: prog, env: env, vars: x.varsValue}
	x.progs[ck] = p
	e.add(sk, p)
	return p
}

func (e *Expr) add(key string, p *compiled) {
	if e.programs == nil {
		e.programs = map[string]*compiled{}
	}
	if _, ok := e.programs[key]; !ok {
		e.programs[key] = p
		if len(e.programs) == 1 {
			e.program = p
		} else {
			e.program = nil
		}
	}
}

var (
	reNoField  = regexp.MustCompile(`^type (.+) has no field (\S+)$`)
	reUnknown  = regexp.MustCompile(`^unknown name (\S+)$`)
	reExpected = regexp.MustCompile(`^expected bool, but got (.+)$`)
)

// exprError reports a compile error at its position inside the YAML scalar,
// in words that name plan concepts instead of synthetic Go types.
// at, when not negative, is the byte offset in the source to report at
// instead of the error's own position.
func (l *loader) exprError(e *Expr, env *envInfo, c exprCtx, err error, at int) {
	msg := err.Error()
	off := 0
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		off = runeLineColToOffset(e.Source, fe.Line, fe.Column)
	}
	if at >= 0 {
		off = at
	}
	hint := ""
	width := 1
	where := fmt.Sprintf("%s of step %q", c.key, c.step)
	switch {
	case reNoField.MatchString(msg):
		m := reNoField.FindStringSubmatch(msg)
		width = len([]rune(m[2]))
		msg, hint = l.noFieldMessage(env, c, where, m[1], m[2])
	case reUnknown.MatchString(msg):
		name := reUnknown.FindStringSubmatch(msg)[1]
		width = len([]rune(name))
		msg, hint = l.unknownNameMessage(env, where, name)
	case reExpected.MatchString(msg):
		got := l.friendlyTypes(env, reExpected.FindStringSubmatch(msg)[1])
		msg = fmt.Sprintf("%s must be a boolean expression, but its type is %s", where, got)
		off = 0
		width = len([]rune(strings.SplitN(e.Source, "\n", 2)[0]))
	default:
		msg = fmt.Sprintf("%s in %s", l.friendlyTypes(env, msg), where)
	}
	l.errAt(l.scalarAt(c.node, e.Source, off), width, hint, "%s", msg)
}

// noFieldMessage explains "type T has no field F": an unknown, unreachable
// or ambiguous step, an unknown variable, or an unknown field of an output.
func (l *loader) noFieldMessage(env *envInfo, c exprCtx, where, typ, field string) (msg, hint string) {
	x := l.xenv
	switch typ {
	case env.stepsType.String():
		switch {
		case contains(c.ambiguous, field):
			return fmt.Sprintf("steps.%s is ambiguous in %s: step %q has several instances among its needs here; an expression can read only a step with a single instance in scope", field, where, field), ""
		case contains(x.stepNames, field):
			return fmt.Sprintf("step %q is not among the needs of step %q (directly or not), so %s cannot read its output", field, c.step, c.key), fmt.Sprintf("add %q to needs", field)
		}
		hint = DidYouMean(field, x.stepNames)
		for _, s := range x.stepNames {
			if strings.HasPrefix(s, field+"-") {
				// steps.fleet-ready reads as steps.fleet - ready.
				return fmt.Sprintf("steps.%s reads as steps.%s minus %s in %s: step names used in expressions must be identifiers (letters, digits and _)", s, field, strings.TrimPrefix(s, field+"-"), where), identHint(s)
			}
		}
		return fmt.Sprintf("unknown step %q in %s", field, where), hint
	case x.varsType.String():
		return fmt.Sprintf("unknown variable %q in %s", field, where), DidYouMean(field, x.varNames)
	}
	if vf, ok := typeByString(typ); ok {
		return fmt.Sprintf("%s has no field %q (it has %s)", vf.name, field, strings.Join(vf.fields, ", ")), DidYouMean(field, vf.fields)
	}
	return fmt.Sprintf("unknown field %q", field), ""
}

// unknownNameMessage explains a name that is none of the expression's roots.
func (l *loader) unknownNameMessage(env *envInfo, where, name string) (msg, hint string) {
	x := l.xenv
	roots := []string{"image", "vars", "steps"}
	if env.machine {
		roots = append([]string{"machine"}, roots...)
	}
	if env.status {
		roots = append(roots, "status")
	}
	if name == "machine" && !env.machine {
		return fmt.Sprintf("machine is not in scope in %s: the step runs once per image", where), ""
	}
	if name == "status" && !env.status {
		hint = "read a ready step's counters as steps.<name>.status"
		var ready []string
		for _, s := range x.stepNames {
			if x.stepType[s] == TypeReady {
				ready = append(ready, s)
			}
		}
		if len(ready) == 1 {
			hint = fmt.Sprintf("did you mean steps.%s.status?", ready[0])
		}
		return fmt.Sprintf("status is not in scope in %s: it is in scope only in a ready step's until and fail_if", where), hint
	}
	hint = DidYouMean(name, roots)
	if hint == "" && contains(x.varNames, name) {
		hint = fmt.Sprintf("write vars.%s", name)
	} else if hint == "" && contains(x.stepNames, name) {
		hint = fmt.Sprintf("write steps.%s", name)
	}
	return fmt.Sprintf("unknown name %q in %s (an expression sees %s)", name, where, strings.Join(roots, ", ")), hint
}

// nameErrors reports every name an expression reads that its scope lacks.
// The checker stops at its first problem; here each chain of names
// (steps.diff.changed, vars.max, machine.labels) is checked on its own, a
// segment at a time, so that two wrong names are both reported at once.
func (l *loader) nameErrors(e *Expr, env *envInfo, c exprCtx) {
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return
	}
	var members []*exprast.MemberNode
	inner := map[exprast.Node]bool{}
	exprast.Walk(&tree.Node, visitor(func(n exprast.Node) {
		if m, ok := n.(*exprast.MemberNode); ok {
			members = append(members, m)
			inner[m.Node] = true
		}
	}))
	envValue := expr.Env(reflect.New(env.typ).Elem().Interface())
	for _, m := range members {
		if inner[m] {
			continue // part of a longer chain
		}
		chain := memberChain(m)
		if chain == nil {
			continue
		}
		src := chain[0].(*exprast.IdentifierNode).Value
		if _, err := expr.Compile(src, envValue); err != nil {
			// The root is unknown: said once, where it is.
			l.exprError(e, env, c, err, runeOffset(e.Source, chain[0].Location().From))
			continue
		}
		for _, seg := range chain[1:] {
			src = withMember(src, seg)
			if _, err := expr.Compile(src, envValue); err != nil {
				l.exprError(e, env, c, err, runeOffset(e.Source, seg.Location().From))
				break
			}
		}
	}
}

// memberChain returns the names a member access reads from the root of
// the environment (an identifier, then each property), or nil when it does
// not start at the root or reads a computed property or a method.
func memberChain(m *exprast.MemberNode) []exprast.Node {
	var chain []exprast.Node
	var n exprast.Node = m
	for {
		switch x := n.(type) {
		case *exprast.MemberNode:
			if _, ok := x.Property.(*exprast.StringNode); !ok || x.Method {
				chain = nil // start again after the computed part
			} else {
				chain = append(chain, x)
			}
			n = x.Node
			continue
		case *exprast.IdentifierNode:
			chain = append(chain, x)
			slices.Reverse(chain)
			if len(chain) < 2 {
				return nil
			}
			return chain
		}
		return nil
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// stepNamesAreIdents reports each step an expression reads by a name that
// is not an identifier (steps["fleet-ready"]): the format says step names
// used in expressions are identifiers, so that steps.<name> always reads
// them. It is false when it reported one.
func (l *loader) stepNamesAreIdents(e *Expr, c exprCtx) bool {
	if !strings.Contains(e.Source, "steps") {
		return true
	}
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return true // the checker reports it
	}
	ok := true
	exprast.Walk(&tree.Node, visitor(func(n exprast.Node) {
		if b, isBinary := n.(*exprast.BinaryNode); isBinary && b.Operator == "-" {
			if l.dashedStep(e, c, b) {
				ok = false
			}
			return
		}
		m, isMember := n.(*exprast.MemberNode)
		if !isMember {
			return
		}
		root, isIdent := m.Node.(*exprast.IdentifierNode)
		prop, isString := m.Property.(*exprast.StringNode)
		if !isIdent || root.Value != "steps" || !isString || identifier.MatchString(prop.Value) {
			return
		}
		ok = false
		at := runeOffset(e.Source, prop.Location().From)
		width := len([]rune(strconv.Quote(prop.Value)))
		l.errAt(l.scalarAt(c.node, e.Source, at), width, identHint(prop.Value),
			"%s of step %q reads step %q, whose name is not an identifier: step names used in expressions must be identifiers (letters, digits and _)", c.key, c.step, prop.Value)
	}))
	return ok
}

// dashedStep reports steps.fleet-ready, which reads as steps.fleet minus
// ready, when a step's name begins with "fleet-ready": true when it
// reported it.
func (l *loader) dashedStep(e *Expr, c exprCtx, b *exprast.BinaryNode) bool {
	left, ok := b.Left.(*exprast.MemberNode)
	if !ok {
		return false
	}
	root, isIdent := left.Node.(*exprast.IdentifierNode)
	prop, isString := left.Property.(*exprast.StringNode)
	if !isIdent || root.Value != "steps" || !isString {
		return false
	}
	right := b.Right
	for {
		if m, isMember := right.(*exprast.MemberNode); isMember {
			right = m.Node
			continue
		}
		break
	}
	next, isIdent := right.(*exprast.IdentifierNode)
	if !isIdent {
		return false
	}
	prefix := prop.Value + "-" + next.Value
	name := ""
	for _, s := range l.xenv.stepNames {
		if s == prefix || (strings.HasPrefix(s, prefix+"-") && name == "") {
			name = s
		}
	}
	if name == "" {
		return false
	}
	at := runeOffset(e.Source, prop.Location().From)
	l.errAt(l.scalarAt(c.node, e.Source, at), len([]rune(name)), identHint(name),
		"steps.%s reads as steps.%s minus %s in %s of step %q: step names used in expressions must be identifiers (letters, digits and _)", name, prop.Value, strings.TrimPrefix(name, prop.Value+"-"), c.key, c.step)
	return true
}

// identHint suggests the identifier a step named name could be renamed to.
func identHint(name string) string {
	id := strings.Map(func(r rune) rune {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
	if id == "" || id[0] >= '0' && id[0] <= '9' {
		id = "_" + id
	}
	return fmt.Sprintf("did you mean %q? rename the step to %s and read it as steps.%s", id, id, id)
}

type visitor func(exprast.Node)

func (v visitor) Visit(n *exprast.Node) { v(*n) }

// runeOffset turns a rune offset in src into a byte offset.
func runeOffset(src string, runes int) int {
	for i := range src {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(src)
}

func typeByString(s string) (struct {
	name   string
	fields []string
}, bool) {
	for t, v := range viewFields {
		if t.String() == s {
			return v, true
		}
	}
	return struct {
		name   string
		fields []string
	}{}, false
}

// friendlyTypes replaces Go type names in a checker message with what a plan
// author knows them as.
func (l *loader) friendlyTypes(env *envInfo, msg string) string {
	repl := map[string]string{
		env.typ.String():         "the expression environment",
		env.stepsType.String():   "steps",
		l.xenv.varsType.String(): "vars",
	}
	for t, v := range viewFields {
		repl[t.String()] = v.name
	}
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		msg = strings.ReplaceAll(msg, k, repl[k])
	}
	return msg
}

// runeLineColToOffset turns the checker's 1-based line and 0-based rune
// column into a byte offset in src.
func runeLineColToOffset(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return 0
		}
		off += i + 1
	}
	for n := 0; n < col && off < len(src); n++ {
		r := []rune(src[off:])
		if len(r) == 0 || r[0] == '\n' {
			break
		}
		off += len(string(r[0]))
	}
	return off
}

// eval picks the program compiled for the input's scope shape and runs it.
func (e *Expr) eval(in EvalInput) (bool, error) {
	p := e.programFor(in)
	if p == nil {
		return false, fmt.Errorf("%s:%d:%d: expression %q was not compiled for this scope", e.Pos.File, e.Pos.Line, e.Pos.Col, e.Source)
	}
	ok, err := p.run(in)
	if err != nil {
		return false, fmt.Errorf("%s:%d:%d: evaluating %q: %w", e.Pos.File, e.Pos.Line, e.Pos.Col, e.Source, err)
	}
	return ok, nil
}

// programFor is the program compiled for the input's scope shape, or nil.
func (e *Expr) programFor(in EvalInput) *compiled {
	p, _ := e.program.(*compiled)
	if p == nil {
		names := make([]string, 0, len(in.Steps))
		for n := range in.Steps {
			names = append(names, n)
		}
		sort.Strings(names)
		key := shapeKey(in.Machine != nil, names)
		if in.Status != nil {
			key += statusMark
		}
		p = e.programs[key]
	}
	return p
}

// run evaluates the program with an environment built from the input.
func (p *compiled) run(in EvalInput) (bool, error) {
	return p.newEnv().run(p, nil, in)
}

// env is an environment of one compiled program, built once and filled for
// each evaluation: the loader evaluates a where for every target.
type env struct {
	v       reflect.Value // *struct of the program's environment type
	machine *machineView  // nil when the program sees no machine
	image   *imageView
	steps   reflect.Value
	status  *statusView // nil when the program sees no status
}

func (p *compiled) newEnv() *env {
	e := &env{v: reflect.New(p.env.typ)}
	s := e.v.Elem()
	i := 0
	if p.env.machine {
		e.machine = s.Field(0).Addr().Interface().(*machineView)
		i = 1
	}
	e.image = s.Field(i).Addr().Interface().(*imageView)
	s.Field(i + 1).Set(p.vars)
	e.steps = s.Field(i + 2)
	if p.env.status {
		e.status = s.Field(i + 3).Addr().Interface().(*statusView)
	}
	return e
}

// run fills the environment from the input and evaluates the program, on
// machine when it is not nil.
func (e *env) run(p *compiled, machine *vm.VM, in EvalInput) (bool, error) {
	e.fill(p, in)
	var out any
	var err error
	if machine != nil {
		out, err = machine.Run(p.prog, e.v.Interface())
	} else {
		out, err = vm.Run(p.prog, e.v.Interface())
	}
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("the expression did not give a boolean")
	}
	return b, nil
}

// fill sets the environment from the input.
func (e *env) fill(p *compiled, in EvalInput) {
	if e.machine != nil {
		*e.machine = machineView{}
		if in.Machine != nil {
			labels := in.Machine.Labels
			if labels == nil {
				labels = map[string]string{}
			}
			*e.machine = machineView{Name: in.Machine.Name, ID: in.Machine.ID, Labels: labels}
		}
	}
	*e.image = imageView{}
	if in.Image != nil {
		*e.image = imageView{Name: in.Image.Name, ID: in.Image.ID}
	}
	for j, name := range p.env.steps {
		e.steps.Field(j).Set(viewValue(p.env.kinds[j], in.Steps[name]))
	}
	if e.status != nil {
		*e.status = statusOf(in.Status)
	}
}

// statusMark ends the shape key of an environment that has status.
const statusMark = "|$status"

// statusEnv is the environment of a ready step's until and fail_if: the
// shape's environment (machine, image, vars, steps) plus status, last.
func (x *exprEnv) statusEnv(machine bool, steps []string) *envInfo {
	key := shapeKey(machine, steps) + statusMark
	if e, ok := x.envs[key]; ok {
		return e
	}
	base := x.env(machine, steps)
	fields := make([]reflect.StructField, 0, base.typ.NumField()+1)
	for i := 0; i < base.typ.NumField(); i++ {
		fields = append(fields, base.typ.Field(i))
	}
	fields = append(fields, reflect.StructField{Name: "Status", Type: reflect.TypeFor[statusView](), Tag: `expr:"status"`})
	e := &envInfo{typ: reflect.StructOf(fields), stepsType: base.stepsType, machine: machine, steps: steps, kinds: base.kinds, status: true}
	x.envs[key] = e
	return e
}

// compileStatus type-checks a ready step's until or fail_if for a shape:
// like compile, with status in scope as well (see statusEnv). EvalInput's
// Status is what status reads when the expression runs.
func (l *loader) compileStatus(e *Expr, steps []string, c exprCtx) *compiled {
	return l.compileIn(e, shapeKey(false, steps)+statusMark, func() *envInfo { return l.xenv.statusEnv(false, steps) }, c)
}

// CompileStatus compiles src as a ready step's until or fail_if outside a
// plan, with status and image in scope (no variables, no steps): for tests
// and tools. A plan's own are compiled by the loader (compileStatus), with
// its variables, the step's scope and positioned errors.
func CompileStatus(src string) (*Expr, error) {
	x := &exprEnv{envs: map[string]*envInfo{}, progs: map[string]*compiled{}, stepType: map[string]StepType{}}
	x.buildVars(nil, nil)
	env := x.statusEnv(false, nil)
	prog, err := expr.Compile(src, expr.Env(reflect.New(env.typ).Elem().Interface()), expr.AsBool())
	if err != nil {
		return nil, err
	}
	e := &Expr{Source: src}
	e.add(shapeKey(false, nil)+statusMark, &compiled{prog: prog, env: env, vars: x.varsValue})
	return e, nil
}
