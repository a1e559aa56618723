package plan

import (
	"strings"
	"testing"
)

// TestErrorsEscapeControlCharacters: a plan whose names carry terminal
// escape sequences gets errors that show them escaped, in the message and
// in the quoted source line, with the caret still under the fault.
func TestErrorsEscapeControlCharacters(t *testing.T) {
	src := "version: 1\nname: x\nimages: [{name: g, id: 1}]\nmachines: [{name: m, id: 2}]\nsteps:\n  - {name: a, type: update, desc: d}\n  - {name: b, type: diff, needs: [\"a\x1b[2J\x07\"]}\n"
	_, err := Parse("p.yaml", []byte(src), Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err == nil {
		t.Fatal("no error")
	}
	for _, color := range []bool{false, true} {
		out := err.(*Errors).Render(color)
		if color {
			out = strings.NewReplacer("\x1b[1m", "", "\x1b[31m", "", "\x1b[36m", "", "\x1b[0m", "").Replace(out)
		}
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Fatalf("raw control characters in:\n%q", out)
		}
		if !strings.Contains(out, `\x1b[2J`) {
			t.Fatalf("the escape is not shown escaped:\n%s", out)
		}
	}
}
