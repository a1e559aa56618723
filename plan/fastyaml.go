package plan

import (
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// fastParse builds the YAML AST of a plan written in a plain subset of YAML
// without goccy/go-yaml's lexer and parser, which spend about 600 bytes in
// 9 allocations per token: most of the time of loading a 10,000-machine
// plan went there. The
// subset is what plans are made of: block mappings and sequences, one-line
// flow collections, one-line plain and quoted scalars, and comments, in
// ASCII without tabs.
//
// It builds exactly the nodes the parser would (the same node types, token
// types, values and positions; TestFastParseMatchesParser and
// FuzzFastParse compare the two), using the library's own token.New to
// type scalars. On anything else (anchors, tags, block scalars, multi-line
// scalars or flows, several documents, and every syntax error) it returns
// nil and the parser reads the plan, so every message about YAML still
// comes from one place.
func fastParse(src string) ast.Node {
	p := &fastParser{src: src, base: &ast.BaseNode{}}
	if !p.splitLines() || len(p.lines) == 0 {
		return nil
	}
	root := p.lines[0].ind
	n := p.block(root)
	if n == nil || p.i != len(p.lines) {
		return nil
	}
	return n
}

type fastParser struct {
	src   string
	lines []fastLine // lines with content: no blank or comment-only lines
	i     int        // the line being read
	depth int        // nesting of the collection being read
	pairs int        // keys² summed over block mappings (see checkShape)
	// A plan has a few tokens and nodes per line: they are allocated in
	// batches.
	positions slab[token.Position]
	tokens    slab[token.Token]
	strings   slab[ast.StringNode]
	values    slab[ast.MappingValueNode]
	// base is the BaseNode of the nodes the fast path makes: it holds a
	// node's path and comments, which the loader neither reads nor sets.
	base *ast.BaseNode
}

// slab hands out pointers into slices allocated 256 elements at a time.
type slab[T any] struct{ free []T }

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 256)
	}
	x := &s.free[0]
	s.free = s.free[1:]
	return x
}

// Tokens the fast path makes itself are copies of these, made by the
// library's constructors, so that they carry the same fields.
var (
	stringToken = *token.String("", "", nil)
	colonToken  = *token.MappingValue(nil)
)

// fastLine is one line holding content.
type fastLine struct {
	num  int    // 1-based line number
	ind  int    // spaces before the content
	text string // the whole line
	nl   bool   // a newline ends it (the last line may end the file)
}

// splitLines finds the lines with content, and is false for text the fast
// path leaves to the parser: anything but printable ASCII and newlines, and
// document markers or directives.
func (p *fastParser) splitLines() bool {
	num := 0
	for start := 0; start < len(p.src); {
		end := strings.IndexByte(p.src[start:], '\n')
		nl := end >= 0
		if !nl {
			end = len(p.src)
		} else {
			end += start
		}
		line := p.src[start:end]
		start = end + 1
		num++
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 || c > 0x7e {
				return false
			}
		}
		ind := 0
		for ind < len(line) && line[ind] == ' ' {
			ind++
		}
		if ind == len(line) || line[ind] == '#' {
			continue
		}
		if ind == 0 && (strings.HasPrefix(line, "---") || strings.HasPrefix(line, "...") || line[0] == '%') {
			return false
		}
		p.lines = append(p.lines, fastLine{num: num, ind: ind, text: line, nl: nl})
	}
	return true
}

// at returns a position.
func (p *fastParser) at(line, col int) *token.Position {
	pos := p.positions.next()
	pos.Line, pos.Column = line, col
	return pos
}

// colon makes the token of a mapping's ":".
func (p *fastParser) colon(line, col int) *token.Token {
	tk := p.tokens.next()
	*tk = colonToken
	tk.Position = p.at(line, col)
	return tk
}

// pairNode is ast.MappingValue.
func (p *fastParser) pairNode(colon *token.Token, key ast.MapKeyNode, value ast.Node) *ast.MappingValueNode {
	mv := p.values.next()
	*mv = ast.MappingValueNode{BaseNode: p.base, Start: colon, Key: key, Value: value}
	return mv
}

// plain makes the node of a plain scalar, typed as the parser types it
// (token.New). A scalar that starts with a letter is a number for neither
// and a keyword only if it is one of the nine below: those skip token.New,
// whose number parsing allocates an error for every name.
func (p *fastParser) plain(text string, line, col int) ast.Node {
	c := text[0]
	if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
		return scalarNode(token.New(text, text, p.at(line, col)))
	}
	switch text {
	case "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE":
		return scalarNode(token.New(text, text, p.at(line, col)))
	}
	if strings.Contains(text, "<<") {
		return nil
	}
	tk := p.tokens.next()
	*tk = stringToken
	tk.Value, tk.Origin, tk.Position = text, text, p.at(line, col)
	n := p.strings.next()
	*n = ast.StringNode{BaseNode: p.base, Token: tk, Value: text}
	return n
}

// block reads the block collection whose lines start at indentation ind.
func (p *fastParser) block(ind int) ast.Node {
	if p.i >= len(p.lines) || p.lines[p.i].ind != ind {
		return nil
	}
	if p.depth++; p.depth > maxDepth {
		return nil
	}
	defer func() { p.depth-- }()
	l := p.lines[p.i]
	if isEntry(l.text[ind:]) {
		return p.blockSequence(ind)
	}
	if m := p.blockMapping(ind); m != nil {
		return m
	}
	return nil
}

// isEntry reports whether text starts a block sequence entry.
func isEntry(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ")
}

// blockSequence reads "- " entries at indentation ind.
func (p *fastParser) blockSequence(ind int) ast.Node {
	var seq *ast.SequenceNode
	for p.i < len(p.lines) && p.lines[p.i].ind == ind && isEntry(p.lines[p.i].text[ind:]) {
		l := p.lines[p.i]
		dash := token.SequenceEntry("-", p.at(l.num, ind+1))
		if seq == nil {
			seq = ast.Sequence(dash, false)
		}
		col := ind + 1
		for col < len(l.text) && l.text[col] == ' ' {
			col++
		}
		if col == len(l.text) || l.text[col] == '#' || isEntry(l.text[col:]) {
			return nil // a value on the next lines, or a nested entry
		}
		var v ast.Node
		if _, ok := p.keyAt(l, col); ok {
			// A mapping that starts on the entry's line.
			if p.depth++; p.depth <= maxDepth {
				if m := p.blockMapping(col); m != nil {
					v = m
				}
			}
			p.depth--
		} else {
			v = p.lineValue(l, col)
			p.i++
		}
		if v == nil {
			return nil
		}
		seq.Values = append(seq.Values, v)
	}
	if seq == nil || p.i < len(p.lines) && p.lines[p.i].ind > ind {
		return nil // no entry, or a line that belongs to no entry
	}
	return seq
}

// blockMapping reads "key: value" entries whose keys sit at column col; the
// first may follow a "- " on a less indented line.
func (p *fastParser) blockMapping(col int) *ast.MappingNode {
	var m *ast.MappingNode
	keys := 0
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if m != nil && (l.ind != col || isEntry(l.text[col:])) {
			break
		}
		colon, ok := p.keyAt(l, col)
		if !ok {
			return nil
		}
		keys++
		if p.pairs += 2*keys - 1; p.pairs > maxKeyPairs {
			return nil
		}
		mv := p.pair(l, col, colon)
		if mv == nil {
			return nil
		}
		if m == nil {
			m = ast.Mapping(mv.Start, false)
		}
		m.Values = append(m.Values, mv)
	}
	if p.i < len(p.lines) && p.lines[p.i].ind >= col {
		// A line indented past the last value, or an entry after it.
		return nil
	}
	return m
}

// keyAt finds a block mapping key at column col of l: a plain scalar
// followed by ": " or ":" at the end of the line. It returns the colon's
// index.
func (p *fastParser) keyAt(l fastLine, col int) (int, bool) {
	t := l.text
	if col >= len(t) || !plainStart(t[col]) {
		return 0, false
	}
	for i := col; i < len(t); i++ {
		switch t[i] {
		case ':':
			if i+1 == len(t) || t[i+1] == ' ' {
				return i, i > col && t[i-1] != ' '
			}
		case '#':
			if t[i-1] == ' ' {
				return 0, false
			}
		case '"', '\'', '[', ']', '{', '}', ',':
			return 0, false
		}
	}
	return 0, false
}

// pair reads one block mapping entry of line l, its key at col and its
// colon at colon, with a value after it on the line or on the lines below.
func (p *fastParser) pair(l fastLine, col, colon int) *ast.MappingValueNode {
	key := p.plain(l.text[col:colon], l.num, col+1)
	k, ok := key.(ast.MapKeyNode)
	if !ok {
		return nil
	}
	colonTk := p.colon(l.num, colon+1)
	v := colon + 1
	for v < len(l.text) && l.text[v] == ' ' {
		v++
	}
	var value ast.Node
	if v < len(l.text) && l.text[v] != '#' {
		value = p.lineValue(l, v)
		p.i++
	} else {
		p.i++
		value = p.nested(col)
	}
	if value == nil {
		return nil
	}
	return p.pairNode(colonTk, k, value)
}

// nested reads the block value of a key at column col written on the lines
// below it: indented further, or a sequence at the key's own column.
func (p *fastParser) nested(col int) ast.Node {
	if p.i >= len(p.lines) {
		return nil
	}
	l := p.lines[p.i]
	if l.ind > col || (l.ind == col && isEntry(l.text[col:])) {
		return p.block(l.ind)
	}
	return nil // an empty value
}

// lineValue reads the value that fills the rest of line l from column
// col: a flow collection, a quoted scalar or a plain scalar, then nothing
// but a comment.
func (p *fastParser) lineValue(l fastLine, col int) ast.Node {
	var n ast.Node
	end := col
	switch l.text[col] {
	case '[', '{':
		n, end = p.flow(l, col)
	case '"', '\'':
		n, end = p.quoted(l, col)
	default:
		if !plainStart(l.text[col]) {
			return nil
		}
		end = plainEnd(l.text, col, false)
		text := strings.TrimRight(l.text[col:end], " ")
		if strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
			return nil
		}
		// The parser places a scalar that a newline ends as many columns
		// further right as it has trailing spaces.
		shift := 0
		if end == len(l.text) && l.nl {
			shift = end - col - len(text)
		}
		if n = p.plain(text, l.num, col+1+shift); n == nil {
			return nil
		}
	}
	if n == nil || !restIsComment(l.text, end) {
		return nil
	}
	return n
}

// flow reads a one-line flow collection starting at col; it returns the
// node and the index after it.
func (p *fastParser) flow(l fastLine, col int) (ast.Node, int) {
	if p.depth++; p.depth > maxDepth {
		return nil, 0
	}
	defer func() { p.depth-- }()
	t := l.text
	open := t[col]
	closer := byte(']')
	var seq *ast.SequenceNode
	var m *ast.MappingNode
	if open == '[' {
		seq = ast.Sequence(token.SequenceStart("[", p.at(l.num, col+1)), true)
	} else {
		closer = '}'
		m = ast.Mapping(token.MappingStart("{", p.at(l.num, col+1)), true)
	}
	i := skipSpaces(t, col+1)
	if i < len(t) && t[i] == closer {
		return nodeOf(seq, m), i + 1
	}
	for i < len(t) {
		var n ast.Node
		if m != nil {
			n, i = p.flowPair(l, i)
		} else {
			n, i = p.flowValue(l, i)
		}
		if n == nil {
			return nil, 0
		}
		if m != nil {
			m.Values = append(m.Values, n.(*ast.MappingValueNode))
		} else {
			seq.Values = append(seq.Values, n)
		}
		i = skipSpaces(t, i)
		switch {
		case i < len(t) && t[i] == closer:
			return nodeOf(seq, m), i + 1
		case i < len(t) && t[i] == ',':
			i = skipSpaces(t, i+1)
			if i < len(t) && t[i] == closer {
				return nil, 0 // a trailing comma
			}
		default:
			return nil, 0
		}
	}
	return nil, 0
}

func nodeOf(seq *ast.SequenceNode, m *ast.MappingNode) ast.Node {
	if seq != nil {
		return seq
	}
	return m
}

// flowPair reads "key: value" inside a flow mapping.
func (p *fastParser) flowPair(l fastLine, i int) (ast.Node, int) {
	t := l.text
	if i >= len(t) || !plainStart(t[i]) {
		return nil, 0
	}
	end := plainEnd(t, i, true)
	if end >= len(t) || t[end] != ':' || end+1 >= len(t) || t[end+1] != ' ' || t[end-1] == ' ' {
		return nil, 0
	}
	key := p.plain(t[i:end], l.num, i+1)
	k, ok := key.(ast.MapKeyNode)
	if !ok {
		return nil, 0
	}
	colonTk := p.colon(l.num, end+1)
	v, next := p.flowValue(l, skipSpaces(t, end+1))
	if v == nil {
		return nil, 0
	}
	return p.pairNode(colonTk, k, v), next
}

// flowValue reads a value inside a flow collection.
func (p *fastParser) flowValue(l fastLine, i int) (ast.Node, int) {
	t := l.text
	if i >= len(t) {
		return nil, 0
	}
	switch t[i] {
	case '[', '{':
		return p.flow(l, i)
	case '"', '\'':
		return p.quoted(l, i)
	}
	if !plainStart(t[i]) {
		return nil, 0
	}
	end := plainEnd(t, i, true)
	text := strings.TrimRight(t[i:end], " ")
	if end < len(t) && t[end] == ':' {
		return nil, 0 // a key where a value belongs, or ':' in a scalar
	}
	n := p.plain(text, l.num, i+1)
	if n == nil {
		return nil, 0
	}
	return n, end
}

// quoted reads a one-line quoted scalar starting at col; it returns the
// node and the index after the closing quote.
func (p *fastParser) quoted(l fastLine, col int) (ast.Node, int) {
	t := l.text
	q := t[col]
	var b strings.Builder
	for i := col + 1; i < len(t); i++ {
		c := t[i]
		switch {
		case c == q && q == '\'' && i+1 < len(t) && t[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == q:
			value, org := b.String(), t[col:i+1]
			pos := p.at(l.num, col+1)
			if q == '"' {
				return ast.String(token.DoubleQuote(value, org, pos)), i + 1
			}
			return ast.String(token.SingleQuote(value, org, pos)), i + 1
		case c == '\\' && q == '"':
			if i+1 >= len(t) {
				return nil, 0
			}
			r, ok := doubleQuoteEscapes[t[i+1]]
			if !ok {
				return nil, 0
			}
			b.WriteByte(r)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return nil, 0 // the scalar goes on to the next line
}

// doubleQuoteEscapes are the escapes the fast path reads; any other sends
// the plan to the parser.
var doubleQuoteEscapes = map[byte]byte{'"': '"', '\\': '\\', 'n': '\n', 't': '\t'}

// plainStart reports whether c may start a plain scalar the fast path
// reads: not an indicator, not a quote, not "-" (an entry, or a number the
// parser reads).
func plainStart(c byte) bool {
	switch c {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ':
		return false
	}
	return true
}

// plainEnd returns where a plain scalar starting at i ends: at a comment,
// or in a flow collection at an indicator.
func plainEnd(t string, i int, flow bool) int {
	for j := i; j < len(t); j++ {
		switch t[j] {
		case '#':
			if t[j-1] == ' ' {
				return j
			}
		case ',', '[', ']', '{', '}', ':':
			if flow {
				return j
			}
		}
	}
	return len(t)
}

func skipSpaces(t string, i int) int {
	for i < len(t) && t[i] == ' ' {
		i++
	}
	return i
}

// restIsComment reports whether t from i holds only spaces and a comment.
func restIsComment(t string, i int) bool {
	j := skipSpaces(t, i)
	return j == len(t) || (t[j] == '#' && j > 0 && t[j-1] == ' ')
}

// scalarNode makes the node the parser makes of a plain scalar's token, or
// nil for one holding "<<", which the parser's lexer reads as a merge key
// wherever it appears.
func scalarNode(tk *token.Token) ast.Node {
	if strings.Contains(tk.Value, "<<") {
		return nil
	}
	switch tk.Type {
	case token.NullType, token.ImplicitNullType:
		return ast.Null(tk)
	case token.BoolType:
		return ast.Bool(tk)
	case token.IntegerType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType:
		return ast.Integer(tk)
	case token.FloatType:
		return ast.Float(tk)
	case token.InfinityType:
		return ast.Infinity(tk)
	case token.NanType:
		return ast.Nan(tk)
	}
	return ast.String(tk)
}
