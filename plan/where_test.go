package plan

import (
	"fmt"
	"strings"
	"testing"
)

// TestWhereMatchingNothing: a where that matches no target or image is a
// plan error at the where, naming the values the labels it reads have,
// unless the step says allow_empty: true (issue 14, item 1).
func TestWhereMatchingNothing(t *testing.T) {
	type want struct{ pos, msg, hint string }
	cases := []struct {
		name  string
		pairs []string
		wants []want // none: the plan loads
	}{
		{"a label value in the wrong case", []string{`where: machine.labels.role == "fleet"`, `where: machine.labels.role == "Fleet"`},
			[]want{{"30:12", `where of step "install" matches no target; labels.role has: build, fleet`, `did you mean "fleet"?`}}},
		{"allowed to match nothing", []string{`where: machine.labels.role == "fleet"`, `where: machine.labels.role == "Fleet"`, "    mirroring: false\n", "    mirroring: false\n    allow_empty: true\n"},
			nil},
		{"a label no machine has", []string{`where: machine.labels.role == "fleet"`, `where: machine.labels.rol == "fleet"`},
			[]want{{"30:12", `where of step "install" matches no target; no machine has labels.rol`, "if the step is meant to match nothing here, add allow_empty: true to it"}}},
		{"two labels", []string{`where: machine.labels.role == "fleet"`, `where: machine.labels.role == "fleet" && machine.labels.region == "eu"`},
			[]want{{"30:12", `matches no target; labels.role has: build, fleet; no machine has labels.region`, ""}}},
		{"an image that is not there", []string{"    needs: [gate]\n", "    needs: [gate]\n    where: image.name == \"imgg\"\n"},
			[]want{{"23:12", `where of step "version" matches no image; image.name has: img`, `did you mean "img"?`}}},
		{"an on_failure step", []string{"    mirroring: false\n", "    mirroring: false\non_failure:\n  - type: reject\n    where: machine.labels.role == \"biuld\"\n"},
			[]want{{"34:12", `where of step "reject" matches no target; labels.role has: build, fleet`, `did you mean "build"?`}}},
		{"allow_empty must be a boolean", []string{"    mirroring: false\n", "    mirroring: false\n    allow_empty: yes please\n"},
			[]want{{"32:18", "allow_empty must be true or false, not a string", ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := edit(t, c.pairs...)
			if c.wants == nil {
				p, err := Parse("t.yaml", []byte(src), Options{})
				if err != nil {
					t.Fatal(err)
				}
				for _, in := range p.Instances {
					if in.Step.Name == "install" {
						t.Errorf("instance %s of a step that matches nothing", in.ID)
					}
				}
				return
			}
			errs := parseErrs(t, src, Options{})
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d:%d %s [%s]", e.Pos.Line, e.Pos.Col, e.Msg, e.Hint))
			}
			if len(errs) != len(c.wants) {
				t.Fatalf("got %d errors, want %d:\n%s", len(errs), len(c.wants), strings.Join(got, "\n"))
			}
			for i, w := range c.wants {
				e := errs[i]
				if pos := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col); pos != w.pos || !strings.Contains(e.Msg, w.msg) || (w.hint != "" && e.Hint != w.hint) {
					t.Errorf("got %s\nwant %s %s [%s]", got[i], w.pos, w.msg, w.hint)
				}
			}
		})
	}
}

// TestWarnings: a wave larger than concurrency is a warning of the plan,
// positioned at the wave, with the preview's wording.
func TestWarnings(t *testing.T) {
	p, err := Parse("w.yaml", fleet(10, `[1, "50%", "100%"]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Waves of 1, 4 and 5 of the 10 fleet machines, against the default
	// concurrency of 4.
	got := p.Warnings()
	if len(got) != 1 {
		t.Fatalf("warnings %v", got)
	}
	w := got[0]
	want := "step install: wave 3 of image img has 5 machines, more than concurrency 4: it will install in batches of 4"
	if w.Msg != want || w.Pos.File != "w.yaml" || w.Pos.Line == 0 {
		t.Fatalf("got %+v\nwant %q", w, want)
	}
	if s := w.String(); !strings.HasPrefix(s, fmt.Sprintf("w.yaml:%d:%d: warning: step install: wave 3", w.Pos.Line, w.Pos.Col)) {
		t.Errorf("rendered %q", s)
	}
	line := strings.Split(string(fleet(10, `[1, "50%", "100%"]`)), "\n")[w.Pos.Line-1]
	if !strings.HasPrefix(line[w.Pos.Col-1:], `"100%"`) {
		t.Errorf("the warning points at %q, not at the third wave", line[w.Pos.Col-1:])
	}
	got[0].Msg = "changed"
	if p.Warnings()[0].Msg != want {
		t.Errorf("Warnings hands out the plan's own slice")
	}
	quiet, err := Parse("w.yaml", fleet(3, `[1, "100%"]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w := quiet.Warnings(); len(w) != 0 {
		t.Errorf("warnings for waves within concurrency: %v", w)
	}
}
