package plan

import (
	"fmt"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/token"
)

// The YAML parser's cost grows with the square of nesting depth (each node
// keeps a path string as long as its depth: 200 KB of nested brackets took
// 39 s and 15 GB) and it spends about 500 bytes per token (54 MB took 4.7
// GB). A plan is therefore measured before the parser sees it, in three
// steps that each cost time and memory bounded by the step before:
//
//  1. its size in bytes (Load checks it before reading the file);
//  2. a byte scan that counts its tokens (countTokens, below), which bounds
//     the work of the lexer;
//  3. the lexer's tokens, whose nesting (flow brackets and block
//     indentation alike) and block mapping sizes are measured before the
//     parser builds anything (checkShape).
//
// Anchors and aliases are measured after parsing, before the loader expands
// them (checkAliases): a few kilobytes of aliases can stand for billions of
// values.
//
// Plans that fastParse reads skip the lexer and the parser, but not the
// limits: the token count comes first, and fastParse leaves a plan that
// nests deeper or holds more block-mapping keys than allowed to the
// parser's path, where checkShape refuses it. So a plan is accepted or
// refused the same way whichever path reads it.
//
// A 10,000-machine plan written one machine per line (the benchmark's plan)
// is 0.64 MB, about 220,000 tokens and 4 levels deep; written in block
// style with a few labels each it is about 1.3 MB and 230,000 tokens. The
// limits leave such a plan far inside them (TestLimitsLeaveRoom) while
// keeping the worst accepted input to about a second and 600 MB allocated
// in the parser on a busy two-core machine.
const (
	// MaxPlanBytes is the largest plan file accepted.
	MaxPlanBytes = 8 << 20
	// maxTokens bounds countTokens' estimate of the plan's tokens.
	maxTokens = 1_000_000
	// maxDepth bounds the nesting of lists and mappings, flow and block
	// together. A plan needs about 5 levels; nested vars a few more.
	maxDepth = 64
	// maxKeyPairs bounds the squares of block mappings' key counts, summed
	// (see checkShape): one mapping of 4,000 keys costs the parser about
	// 0.2 s and 70 MB; a plan's mappings hold a few dozen keys.
	maxKeyPairs = 16_000_000
	// maxAliasValues bounds how many values aliases add once expanded.
	maxAliasValues = 1_000_000
	// maxErrors is how many errors a plan reports; the rest are counted.
	// Every token of a hostile plan could be an error, each quoting its
	// line.
	maxErrors = 100
)

// sizeError refuses a plan file larger than MaxPlanBytes.
// A size of MaxPlanBytes+1 comes from a limited read: the file is at least
// that large.
func sizeError(file string, size int64) *Error {
	is, limit := byteSize(size), byteSize(MaxPlanBytes)
	if is == limit {
		is, limit = fmt.Sprintf("%d bytes", size), fmt.Sprintf("%d bytes", MaxPlanBytes)
	}
	is = "is " + is
	if size == MaxPlanBytes+1 {
		is = "is larger than " + limit
	}
	return &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("the plan file %s; a plan may be at most %s (a 10,000-machine plan is under 2 MiB)", is, limit)}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// countTokens estimates, in one pass over the bytes, how many tokens the
// lexer will make of src: every run of characters other than blanks and
// flow indicators counts one, and so does each flow indicator ([ ] { } ,)
// and each ": " separator. The estimate is never far below the lexer's
// count (it is above it for quoted text and comments), so bounding it
// bounds the lexer. It stops at the first token past limit and returns
// its 1-based line and column.
func countTokens(src []byte, limit int) (n int, line, col int, over bool) {
	line, lineStart := 1, 0
	inWord := false
	for i, c := range src {
		switch c {
		case '\n':
			line, lineStart = line+1, i+1
			inWord = false
			continue
		case ' ', '\t', '\r':
			inWord = false
			continue
		case '[', ']', '{', '}', ',':
			inWord = false
		case ':':
			if i+1 < len(src) && src[i+1] != ' ' && src[i+1] != '\n' && src[i+1] != '\t' && src[i+1] != '\r' {
				// Part of a word ("a:b", a URL).
				if inWord {
					continue
				}
				inWord = true
			} else {
				inWord = false
			}
		default:
			if inWord {
				continue
			}
			inWord = true
		}
		n++
		if n > limit {
			return n, line, i - lineStart + 1, true
		}
	}
	return n, 0, 0, false
}

// checkShape measures the tokens' nesting: flow brackets, plus block
// collections counted from the columns of their keys and "-" entries. It
// also counts the keys of each block mapping, because the parser's work on
// a block mapping grows with the square of its keys (it recurses once per
// key and copies the tail each time: 320,000 keys took minutes and hundreds
// of gigabytes). It returns the first token past a limit and what it broke.
func checkShape(tokens token.Tokens) (*token.Token, string) {
	flow, pairs := 0, 0
	// open holds each open block collection, innermost last.
	type coll struct{ col, keys int }
	var open []coll
	block := func(col int) *coll {
		for len(open) > 0 && open[len(open)-1].col > col {
			open = open[:len(open)-1]
		}
		if len(open) == 0 || open[len(open)-1].col < col {
			open = append(open, coll{col: col})
		}
		return &open[len(open)-1]
	}
	tooDeep := fmt.Sprintf("lists and mappings nest more than %d deep here; a plan needs only a few levels", maxDepth)
	for i, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
			if len(open)+flow > maxDepth {
				return tk, tooDeep
			}
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		case token.DocumentHeaderType, token.DocumentEndType:
			flow, open = 0, open[:0]
		case token.SequenceEntryType, token.MappingKeyType:
			if flow == 0 && tk.Position != nil {
				block(tk.Position.Column)
				if len(open) > maxDepth {
					return tk, tooDeep
				}
			}
		case token.MappingValueType:
			if flow > 0 || i == 0 || tokens[i-1].Position == nil {
				continue
			}
			c := block(tokens[i-1].Position.Column)
			c.keys++
			pairs += 2*c.keys - 1 // keys² summed over block mappings
			if len(open) > maxDepth {
				return tokens[i-1], tooDeep
			}
			if pairs > maxKeyPairs {
				return tokens[i-1], fmt.Sprintf("block mappings hold too many keys by here: the parser's work grows with the square of a block mapping's keys, and the squares may add up to at most %d (one mapping of %d keys); write a large mapping in flow style, {a: 1, b: 2, ...}", maxKeyPairs, isqrt(maxKeyPairs))
			}
		}
	}
	return nil, ""
}

func isqrt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}

// checkAliases measures what the aliases of body stand for once expanded,
// counting each alias as the number of values under its anchor (aliases
// within included). It reports an alias inside its own anchor, which would
// expand forever, and the alias past which the expansion exceeds
// maxAliasValues. anchors maps names to anchored values as the loader
// resolves them.
func checkAliases(body ast.Node, anchors map[string]ast.Node) (ast.Node, string) {
	a := aliasSizer{anchors: anchors, size: map[ast.Node]int{}, open: map[ast.Node]bool{}}
	a.walk(body, 0)
	return a.bad, a.msg
}

type aliasSizer struct {
	anchors map[string]ast.Node
	size    map[ast.Node]int // expanded size of each anchored value
	open    map[ast.Node]bool
	added   int // values added by aliases so far
	bad     ast.Node
	msg     string
}

// walk returns the number of values n stands for with aliases expanded.
func (a *aliasSizer) walk(n ast.Node, depth int) int {
	if n == nil || a.bad != nil {
		return 0
	}
	if depth > 4*maxDepth {
		// Only chains of aliases through anchors can get here: the
		// nesting of the text itself was bounded before parsing.
		a.bad, a.msg = n, fmt.Sprintf("anchors and aliases nest more than %d deep", 4*maxDepth)
		return 0
	}
	switch x := n.(type) {
	case *ast.AliasNode:
		return a.alias(x, depth)
	case *ast.AnchorNode:
		if s, done := a.size[x.Value]; done {
			return s
		}
		a.open[x.Value] = true
		s := a.walk(x.Value, depth+1)
		delete(a.open, x.Value)
		a.size[x.Value] = s
		return s
	case *ast.TagNode:
		return a.walk(x.Value, depth+1)
	case *ast.MappingNode:
		s := 1
		for _, v := range x.Values {
			s = sat(s, sat(a.walk(v.Key, depth+1), a.walk(v.Value, depth+1)))
		}
		return s
	case *ast.MappingValueNode:
		return sat(1, sat(a.walk(x.Key, depth+1), a.walk(x.Value, depth+1)))
	case *ast.SequenceNode:
		s := 1
		for _, v := range x.Values {
			s = sat(s, a.walk(v, depth+1))
		}
		return s
	}
	return 1
}

// alias returns the size of the value an alias stands for, and adds it to
// what aliases add to the plan.
func (a *aliasSizer) alias(x *ast.AliasNode, depth int) int {
	name := ""
	if x.Value != nil {
		name = x.Value.GetToken().Value
	}
	target, ok := a.anchors[name]
	if !ok {
		return 1 // reported by the loader as an unknown alias
	}
	if a.open[target] {
		a.bad, a.msg = x, fmt.Sprintf("alias *%s is inside the value of its own anchor &%s and would repeat it forever", name, name)
		return 0
	}
	s, done := a.size[target]
	if !done {
		a.open[target] = true
		s = a.walk(target, depth+1)
		delete(a.open, target)
		a.size[target] = s
	}
	a.added = sat(a.added, s)
	if a.added > maxAliasValues && a.bad == nil {
		a.bad, a.msg = x, fmt.Sprintf("aliases expand the plan by more than %d values: anchors and aliases may repeat parts of a plan, not multiply it", maxAliasValues)
	}
	return s
}

// sat adds two sizes, saturating just past the limit: sizes double with
// each level of aliases and would overflow.
func sat(a, b int) int { return min(a+b, maxAliasValues+1) }

// lex checks the plan's token count and nesting (see the limits above) and
// returns its tokens for the parser; false after reporting why not.
func (l *loader) lex() (token.Tokens, bool) {
	if !l.countTokens() {
		return nil, false
	}
	tokens := lexer.Tokenize(l.text)
	if tk, msg := checkShape(tokens); tk != nil {
		l.errAt(Pos{File: l.file, Line: max(tk.Position.Line, 1), Col: max(tk.Position.Column, 1)}, 1, "", "%s", msg)
		return nil, false
	}
	return tokens, true
}

// countTokens reports a plan with more than maxTokens tokens.
func (l *loader) countTokens() bool {
	if _, line, col, over := countTokens(l.src, maxTokens); over {
		l.errAt(Pos{File: l.file, Line: line, Col: col}, 1, "",
			"the plan holds more than %d YAML tokens (words, brackets, commas and colons) by this point; a plan may hold at most that many (a 10,000-machine plan holds about 230,000)", maxTokens)
		return false
	}
	return true
}
