package plan

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// dumpAST renders what the loader reads of a YAML AST: node kinds, scalar
// values, token types and positions, flow style, and structure.
func dumpAST(n ast.Node) string {
	var b strings.Builder
	var walk func(n ast.Node, ind string)
	tok := func(tk *token.Token) string {
		if tk == nil {
			return "<nil>"
		}
		p := "<nopos>"
		if tk.Position != nil {
			p = fmt.Sprintf("%d:%d", tk.Position.Line, tk.Position.Column)
		}
		return fmt.Sprintf("%s %q @%s", tk.Type, tk.Value, p)
	}
	walk = func(n ast.Node, ind string) {
		switch x := n.(type) {
		case nil:
			b.WriteString(ind + "nil\n")
		case *ast.MappingNode:
			fmt.Fprintf(&b, "%smap flow=%v start=[%s]\n", ind, x.IsFlowStyle, tok(x.Start))
			for _, v := range x.Values {
				walk(v, ind+"  ")
			}
		case *ast.MappingValueNode:
			fmt.Fprintf(&b, "%spair flow=%v colon=[%s]\n", ind, x.IsFlowStyle, tok(x.Start))
			walk(x.Key, ind+"  k ")
			walk(x.Value, ind+"  v ")
		case *ast.SequenceNode:
			fmt.Fprintf(&b, "%sseq flow=%v start=[%s]\n", ind, x.IsFlowStyle, tok(x.Start))
			for _, v := range x.Values {
				walk(v, ind+"  ")
			}
		case *ast.IntegerNode:
			fmt.Fprintf(&b, "%s%T %#v [%s]\n", ind, x, x.Value, tok(x.GetToken()))
		case *ast.FloatNode:
			fmt.Fprintf(&b, "%s%T %#v [%s]\n", ind, x, x.Value, tok(x.GetToken()))
		case *ast.BoolNode:
			fmt.Fprintf(&b, "%s%T %#v [%s]\n", ind, x, x.Value, tok(x.GetToken()))
		case *ast.StringNode:
			fmt.Fprintf(&b, "%s%T %q [%s]\n", ind, x, x.Value, tok(x.GetToken()))
		default:
			fmt.Fprintf(&b, "%s%T [%s]\n", ind, x, tok(n.GetToken()))
		}
	}
	walk(n, "")
	return b.String()
}

// parserBody is the body of src's one document as the parser reads it; ""
// with the reason when it does not read one.
func parserBody(src string) (ast.Node, string) {
	f, err := parser.ParseBytes([]byte(src), 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, err.Error()
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			return nil, "several documents"
		}
		body = d.Body
	}
	if body == nil {
		return nil, "no document"
	}
	return body, ""
}

// checkFastParse fails when the fast path reads src differently from the
// parser; it reports whether the fast path read it.
func checkFastParse(t *testing.T, src string) bool {
	t.Helper()
	fast := fastParse(src)
	if fast == nil {
		return false
	}
	slow, why := parserBody(src)
	if slow == nil {
		t.Fatalf("the fast path reads what the parser refuses (%s):\n%s", why, src)
	}
	if a, b := dumpAST(fast), dumpAST(slow); a != b {
		t.Fatalf("the fast path reads\n%s\ndifferently from the parser:\n--- fast\n%s--- parser\n%s", src, a, b)
	}
	return true
}

// fastCorpus is every plan and fuzz input of the package, the examples,
// and snippets at the edges of what the fast path reads.
func fastCorpus(t *testing.T) (must, may []string) {
	files, _ := filepath.Glob("testdata/*.yaml")
	ex, _ := filepath.Glob("../examples/*.yaml")
	for _, f := range append(files, ex...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		must = append(must, string(b))
	}
	must = append(must, mini, string(fleet(30, `[1, "50%", "100%"]`)))
	fuzz, _ := filepath.Glob("testdata/fuzz/FuzzParse/*")
	for _, f := range fuzz {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a corpus entry", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		may = append(may, s)
	}
	may = append(may, fastEdges...)
	return must, may
}

var fastEdges = []string{
	"a: 1\n", "a: 1", "a:\n  b: 1\n", "a:\n- 1\n- 2\nb: 3\n", "- a\n- b\n", "a: [1, 2]\n", "a: []\nb: {}\n",
	"a: {b: 1, c: [x, y]}\n", "a: 'it''s'\n", "a: \"q\\\"x\\\\y\\nz\\tw\"\n", "a: \"\\u0041\"\n", "a: x # c\n", "a: x#c\n",
	"a: http://x/y\n", "a: [http://x]\n", "a: {u: http://x}\n", "a: b: c\n", "a: b:\n", "a : 1\n", "a:  1   \n",
	"a: 1\n  b: 2\n", "a:\n  b: 1\n c: 2\n", "a:\n  - b: 1\n    c: 2\n  - d\n", "- - a\n", "-\n  a: 1\n", "- a: 1\n  - b\n",
	"a: [1,\n 2]\n", "a: \"x\n y\"\n", "a: x\n  y\n", "a: |\n  x\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "--- \na: 1\n",
	"a: 1\n---\nb: 2\n", "a:\tb\n", "a: 1\r\n", "a: é\n", "? a\n: b\n", "<<: {a: 1}\n", "a: <<\n", "1: a\n2.5: b\ntrue: c\nnull: d\n~: e\n",
	"a: [1, 2, ]\n", "a: [, 1]\n", "a: {b}\n", "a: {b: }\n", "a: {b:1}\n", "a: [b: 1]\n", "a: [\"x\", 'y', {\"k\": 1}]\n",
	"a: 0x1F\nb: 0o17\nc: 017\nd: 1_000\ne: +1\nf: .5\ng: 1e3\nh: .inf\ni: .NaN\nj: yes\nk: On\nl: TRUE\nm: Null\nn: ''\no: \"\"\n",
	"a: -1\n", "a: - 1\n", "a: x]\n", "a: x}\n", "a: x,y\n", "a: [x]y\n", "a: {b: c}d\n", "a: 'x'y\n", "a: \"x\" # c\n", "a: \"x\"#c\n",
	"a: where(x) == \"y\" && z['q']\n", "a: @x\n", "a: `x`\n", "a: %x\n", "a: !x\n", "a: >\n  x\n", "a: [[[[]]]]\n",
	"  a: 1\n  b: 2\n", "a:\n    b: 1\n    c: 2\nd: 3\n", "a:\n  -  b: 1\n     c: 2\n", "a:\n  -   x\n", "# c\na: 1 # d\n# e\n",
	"a:\n\n  b: 1\n\n  # x\n  c: 2\n", "a: [1, 2] # c\n", "a: [1, 2]x\n", "a: {b: [1, {c: d}]}\n", "a:\n- {b: 1}\n- [c]\n",
}

func TestFastParseMatchesParser(t *testing.T) {
	must, may := fastCorpus(t)
	for _, src := range must {
		if !checkFastParse(t, src) {
			t.Errorf("the fast path does not read a plan it should:\n%.300s", src)
		}
	}
	read := 0
	for _, src := range may {
		if checkFastParse(t, src) {
			read++
		}
	}
	t.Logf("the fast path read %d of %d other inputs", read, len(may))
}

func FuzzFastParse(f *testing.F) {
	for _, s := range fastEdges {
		f.Add(s)
	}
	f.Add(mini)
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkFastParse(t, src)
	})
}

// randomDoc writes a random YAML document from the pieces plans are made
// of, some of them outside what the fast path reads.
func randomDoc(r *rand.Rand) string {
	scalars := []string{"a", "name", "m00001", "1", "0", "-1", "1.5", "1e3", "0x1F", "017", "true", "False", "null", "~", "yes", ".inf", "'q'", "'it''s'", `"d"`, `"a\"b"`, `"x\ty"`, "http://x/y", "a b", "a#b", "x # c", "machine.labels[\"r\"] == 'b'", "s3://k:v@b/p", "100%", "\"50%\"", "<<", "a: b", "[a]", "{}", "[]", "&x 1", "*x", "!!str 1", "|", "- x", ""}
	keys := []string{"a", "b", "name", "id", "labels", "steps", "1", "true", "null", "k k", "'q'", "a-b", "x.y"}
	var b strings.Builder
	var flow func(depth int) string
	flow = func(depth int) string {
		if depth > 2 || r.IntN(3) == 0 {
			return scalars[r.IntN(len(scalars))]
		}
		n := r.IntN(4)
		parts := make([]string, n)
		if r.IntN(2) == 0 {
			for i := range parts {
				parts[i] = flow(depth + 1)
			}
			return "[" + strings.Join(parts, ", ") + "]"
		}
		for i := range parts {
			parts[i] = keys[r.IntN(len(keys))] + ": " + flow(depth+1)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	var block func(ind, depth int)
	block = func(ind, depth int) {
		pad := strings.Repeat(" ", ind)
		n := 1 + r.IntN(4)
		seq := r.IntN(3) == 0
		for i := 0; i < n; i++ {
			if r.IntN(8) == 0 {
				b.WriteString(pad + "# comment\n")
			}
			lead := pad
			if seq {
				lead = pad + "- "
			}
			key := keys[r.IntN(len(keys))] + ":"
			switch c := r.IntN(10); {
			case depth < 4 && c < 3:
				if seq {
					b.WriteString(lead + key + " " + flow(0) + "\n")
					block(ind+2, depth+1)
				} else {
					b.WriteString(lead + key + "\n")
					block(ind+2, depth+1)
				}
			case c < 6:
				if seq {
					b.WriteString(lead + flow(0) + strings.Repeat(" ", r.IntN(2)) + "\n")
				} else {
					b.WriteString(lead + key + " " + flow(0) + strings.Repeat(" ", r.IntN(3)) + "\n")
				}
			default:
				b.WriteString(lead + key + " " + scalars[r.IntN(len(scalars))] + "\n")
			}
			if r.IntN(10) == 0 {
				b.WriteString("\n")
			}
		}
	}
	block(0, 0)
	return b.String()
}

// TestFastParseRandomDocuments compares the fast path with the parser on
// random documents with the structure of plans.
func TestFastParseRandomDocuments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	read := 0
	const n = 5000
	for i := 0; i < n; i++ {
		if checkFastParse(t, randomDoc(r)) {
			read++
		}
	}
	if read < n/20 {
		t.Errorf("the fast path read only %d of %d random documents", read, n)
	}
	t.Logf("the fast path read %d of %d random documents", read, n)
}
