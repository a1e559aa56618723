package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// emptyWhere reports a step whose where matches no target (or no image) of
// the plan, unless the step says allow_empty: true. Such a step would
// validate, run and report success without doing anything, which is almost
// always a typo ("Fleet" for "fleet"); the message names the values the
// labels it reads do have.
func (l *loader) emptyWhere(p *Plan, in *stepInfo, what string) {
	s := in.s
	if s.Where == nil || s.AllowEmpty || in.whereFailed || l.partialTargets {
		return
	}
	detail, hint := whereValues(p, s.Where.Source)
	if hint == "" {
		hint = "if the step is meant to match nothing here, add allow_empty: true to it"
	}
	width := len([]rune(strings.SplitN(s.Where.Source, "\n", 2)[0]))
	l.errAt(s.Where.Pos, width, hint, "where of step %q matches no %s%s", s.Name, what, detail)
	in.emptied = true
}

// shownValues is how many values a where message lists.
const shownValues = 10

// whereValues says what the names a where reads hold across the plan
// ("; labels.role has: build, fleet"), and suggests one of those values
// for a string the expression compares them with.
func whereValues(p *Plan, src string) (detail, hint string) {
	tree, err := parser.Parse(src)
	if err != nil {
		return "", ""
	}
	var names, literals []string
	exprast.Walk(&tree.Node, visitor(func(n exprast.Node) {
		switch x := n.(type) {
		case *exprast.MemberNode:
			if name := readName(x); name != "" && !slices.Contains(names, name) {
				names = append(names, name)
			}
		case *exprast.StringNode:
			literals = append(literals, x.Value)
		}
	}))
	var parts []string
	for _, name := range names {
		values, known := namedValues(p, name)
		if !known {
			parts = append(parts, fmt.Sprintf("no machine has %s", name))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s has: %s", name, listValues(values)))
		for _, lit := range literals {
			if h := DidYouMean(lit, values); hint == "" && h != "" && !slices.Contains(values, lit) {
				hint = h
			}
		}
	}
	if len(parts) == 0 {
		return "", hint
	}
	return "; " + strings.Join(parts, "; "), hint
}

// readName names what a member access reads, as the message shows it:
// "labels.role", "machine.name", "image.name"; "" for anything else. The
// walk visits every member of a chain; only whole names count.
func readName(m *exprast.MemberNode) string {
	prop, ok := m.Property.(*exprast.StringNode)
	if !ok {
		return ""
	}
	switch x := m.Node.(type) {
	case *exprast.IdentifierNode:
		if (x.Value == "machine" || x.Value == "image") && (prop.Value == "name" || prop.Value == "id") {
			return x.Value + "." + prop.Value
		}
	case *exprast.MemberNode:
		inner, ok := x.Property.(*exprast.StringNode)
		root, isRoot := x.Node.(*exprast.IdentifierNode)
		if ok && isRoot && root.Value == "machine" && inner.Value == "labels" {
			return "labels." + prop.Value
		}
	}
	return ""
}

// namedValues returns the distinct values a name holds across the plan,
// sorted; false for a label no machine has.
func namedValues(p *Plan, name string) ([]string, bool) {
	seen := map[string]bool{}
	switch {
	case name == "image.name":
		for _, img := range p.Images {
			seen[img.Name] = true
		}
	case name == "image.id":
		for _, img := range p.Images {
			seen[fmt.Sprint(img.ID)] = true
		}
	case name == "machine.name":
		for _, m := range p.Machines {
			seen[m.Name] = true
		}
	case name == "machine.id":
		for _, m := range p.Machines {
			seen[fmt.Sprint(m.ID)] = true
		}
	default:
		key := strings.TrimPrefix(name, "labels.")
		for _, m := range p.Machines {
			if v, ok := m.Labels[key]; ok {
				seen[v] = true
			}
		}
	}
	values := make([]string, 0, len(seen))
	for v := range seen {
		values = append(values, v)
	}
	sort.Strings(values)
	return values, len(values) > 0
}

// listValues joins values, quoting none, with at most shownValues of them.
func listValues(values []string) string {
	if len(values) <= shownValues {
		return strings.Join(values, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(values[:shownValues], ", "), len(values)-shownValues)
}
