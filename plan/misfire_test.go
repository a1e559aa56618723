package plan

import (
	"fmt"
	"strings"
	"testing"
)

// TestErrorsSayWhatIsWrong: each plan below has one fault, and the loader
// reports exactly the errors listed (issue 14, item 8): the fault itself,
// in words that fit it, where it is, and nothing that follows from it.
func TestErrorsSayWhatIsWrong(t *testing.T) {
	cases := []struct {
		name  string
		pairs []string
		wants []want
	}{
		{"huge integer", []string{"name: t\n", "name: t\nconcurrency: 99999999999999999999999\n"},
			[]want{{"3:14", "concurrency is out of range: 99999999999999999999999 is larger than 9223372036854775807", ""}}},
		{"huge negative integer", []string{"name: t\n", "name: t\nconcurrency: -99999999999999999999999\n"},
			[]want{{"3:14", "concurrency is out of range: -99999999999999999999999 is smaller than", ""}}},
		{"1e400", []string{"name: t\n", "name: t\nconcurrency: 1e400\n"},
			[]want{{"3:14", "concurrency is out of range: 1e400", ""}}},
		{"1e400 as a number", []string{"    needs: [gate]\n", "    needs: [gate]\n    disable_timeout: 5\n    disable_percentage: 1e400\n"},
			[]want{{"24:25", "disable_percentage is out of range: 1e400", ""}}},
		{"huge wave", []string{"    mirroring: false\n", "    mirroring: false\n    waves: [99999999999999999999999, \"100%\"]\n"},
			[]want{{"32:13", "a wave is out of range", ""}}},
		{"quoted huge number is a string", []string{"name: t\n", "name: t\nconcurrency: \"99999999999999999999999\"\n"},
			[]want{{"3:14", "concurrency must be an integer, not a string", ""}}},
		// The machine stays in the plan, so its steps still find their
		// diff: no error about a version without one.
		{"huge machine id", []string{"{name: b, id: 1,", "{name: b, id: 123456789012345678901234567890,"},
			[]want{{"5:19", "machine id is out of range", ""}}},
		{"missing machine id", []string{"{name: b, id: 1,", "{name: b,"},
			[]want{{"5:5", `missing required key "id" in a machine`, ""}}},
		// Without mirroring, whether the step is the mirroring install is
		// unknown: no errors about an install_at the plan never wrote.
		{"missing mirroring", []string{"    mirroring: true\n", ""},
			[]want{{"23:5", `missing required key "mirroring" in an install step`, ""}}},
		{"install_at by default", []string{"    needs: [mirror]\n", "    needs: [version]\n"},
			[]want{{"27:5", `which installs manually (install_at: manual is the default when an install step needs the version), so it must need`, "add the mirroring install step to needs"}}},
		{"install_at written", []string{"    needs: [mirror]\n", "    needs: [version]\n", "    needs: [gate]\n", "    needs: [gate]\n    install_at: manual\n"},
			[]want{{"28:5", `which uses install_at: manual, so it must need`, "add the mirroring install step to needs"}}},
		{"every problem of an expression", []string{"name: t\n", "name: t\nvars: {max: 3}\n", "expr: steps.diff.changed < 10", `expr: steps.dif.changed < vars.mx && machine.lables.x == ""`},
			[]want{
				{"20:17", `unknown step "dif" in expr of step "gate"`, `did you mean "diff"?`},
				{"20:36", `unknown variable "mx" in expr of step "gate"`, `did you mean "max"?`},
				{"20:50", `machine has no field "lables"`, `did you mean "labels"?`},
			}},
		{"a type error and a name", []string{"expr: steps.diff.changed < 10", `expr: steps.diff.changed + "x" == "y" && steps.dif.state == ""`},
			[]want{
				{"19:30", "invalid operation: + (mismatched types int and string)", ""},
				{"19:52", `unknown step "dif"`, `did you mean "diff"?`},
			}},
		{"unclosed list", []string{"images: [{name: img, id: 1}]", "images: [{name: img, id: 1}  # the image"},
			[]want{{"3:28", "YAML syntax error: ',' or ']' must be specified", ""}}},
		{"line indented too far", []string{"    desc: d\n", "      desc: d\n"},
			[]want{{"11:7", "YAML syntax error: mapping value is not allowed in this context", "is this line indented further than the keys around it?"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, edit(t, c.pairs...), Options{})
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d:%d %s [%s]", e.Pos.Line, e.Pos.Col, e.Msg, e.Hint))
			}
			if len(errs) != len(c.wants) {
				t.Fatalf("got %d errors, want %d:\n%s", len(errs), len(c.wants), strings.Join(got, "\n"))
			}
			for i, w := range c.wants {
				e := errs[i]
				if pos := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col); pos != w.pos || !strings.Contains(e.Msg, w.frag) || e.Hint != w.hint {
					t.Errorf("error %d: got %s\nwant %s %s [%s]", i, got[i], w.pos, w.frag, w.hint)
				}
			}
		})
	}
}
