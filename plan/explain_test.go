package plan

import (
	"testing"
)

func TestExplain(t *testing.T) {
	src := `version: 1
name: x
vars: {max_changed: 0, forbidden: "GameServer.x86_64"}
images: [{name: g, id: 1}]
machines: [{name: b, id: 2, labels: {role: build}}]
steps:
  - {name: update, type: update, desc: d}
  - {name: diff, type: diff, needs: [update]}
  - name: small
    type: gate
    needs: [diff]
    expr: steps.diff.changed <= vars.max_changed && !(vars.forbidden in steps.diff.removed) && machine.labels.role == "build"
`
	p, err := Parse("p.yaml", []byte(src), Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	var gate *Instance
	for _, in := range p.Instances {
		if in.Step.Name == "small" {
			gate = in
		}
	}
	in := EvalInput{Machine: gate.Machine, Image: gate.Image, Steps: map[string]*Output{
		"diff": {State: OutputSucceeded, Changed: 17, Removed: []string{"a", "b", "c", "d", "e", "f", "g"}},
	}}
	ok, err := gate.Step.Expr.Eval(in)
	if err != nil || ok {
		t.Fatalf("eval = %v, %v", ok, err)
	}
	got := gate.Step.Expr.Explain(in)
	want := `machine.labels.role = "build", steps.diff.changed = 17, steps.diff.removed = ["a", "b", "c", "d", "e", … 2 more], vars.forbidden = "GameServer.x86_64", vars.max_changed = 0`
	if got != want {
		t.Fatalf("Explain:\n got %s\nwant %s", got, want)
	}
}
