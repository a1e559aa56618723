package plan

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Explain says what the names an expression reads were worth for in, e.g.
// "steps.diff.changed = 17, vars.max_changed = 0", so that a gate that is
// false, or a when that skipped an instance, says why and not only what it
// asked. Each name is a chain from the root of the expression's scope
// (steps.diff.changed, vars.x, machine.labels.role, status.pending); it is
// evaluated on its own, in the same scope as the expression. Long values
// are cut short. Explain returns "" when there is nothing to show.
func (e *Expr) Explain(in EvalInput) string {
	if e == nil {
		return ""
	}
	p := e.programFor(in)
	if p == nil {
		return ""
	}
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return ""
	}
	var chains []string
	seen := map[string]bool{}
	inner := map[exprast.Node]bool{}
	var members []*exprast.MemberNode
	exprast.Walk(&tree.Node, visitor(func(n exprast.Node) {
		if m, ok := n.(*exprast.MemberNode); ok {
			members = append(members, m)
			inner[m.Node] = true
		}
	}))
	for _, m := range members {
		if inner[m] {
			continue // part of a longer chain
		}
		if src := chainSource(memberChain(m)); src != "" && !seen[src] {
			seen[src] = true
			chains = append(chains, src)
		}
	}
	sort.Strings(chains)
	env := p.newEnv()
	env.fill(p, in)
	envType := expr.Env(reflect.New(p.env.typ).Elem().Interface())
	var parts []string
	for _, src := range chains {
		prog, err := expr.Compile(src, envType)
		if err != nil {
			continue
		}
		v, err := vm.Run(prog, env.v.Interface())
		if err != nil {
			continue
		}
		parts = append(parts, src+" = "+shortValue(v))
	}
	return strings.Join(parts, ", ")
}

// chainSource writes a member chain back as source: steps.diff.changed,
// machine.labels["role"].
func chainSource(chain []exprast.Node) string {
	if chain == nil {
		return ""
	}
	src := chain[0].(*exprast.IdentifierNode).Value
	for _, seg := range chain[1:] {
		src = withMember(src, seg)
	}
	return src
}

// withMember appends one member of a chain to its source so far: .name
// where name is an identifier, ["name"] where it is not.
func withMember(src string, seg exprast.Node) string {
	name := seg.(*exprast.MemberNode).Property.(*exprast.StringNode).Value
	if identifier.MatchString(name) {
		return src + "." + name
	}
	return src + "[" + strconv.Quote(name) + "]"
}

// shortValue renders a value for a message: strings quoted, lists and maps
// with at most a few entries.
func shortValue(v any) string {
	const most = 5
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		s := rv.String()
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return strconv.Quote(s)
	case reflect.Slice, reflect.Array:
		var parts []string
		for i := 0; i < rv.Len() && i < most; i++ {
			parts = append(parts, shortValue(rv.Index(i).Interface()))
		}
		if rv.Len() > most {
			parts = append(parts, fmt.Sprintf("… %d more", rv.Len()-most))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := rv.MapKeys()
		sort.Slice(keys, func(a, b int) bool { return fmt.Sprint(keys[a]) < fmt.Sprint(keys[b]) })
		var parts []string
		for i, k := range keys {
			if i == most {
				parts = append(parts, fmt.Sprintf("… %d more", len(keys)-most))
				break
			}
			parts = append(parts, shortValue(k.Interface())+": "+shortValue(rv.MapIndex(k).Interface()))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.Struct:
		return "{…}"
	}
	return fmt.Sprint(v)
}
