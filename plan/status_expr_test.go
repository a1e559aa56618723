package plan

import (
	"reflect"
	"testing"

	"github.com/expr-lang/expr"
)

// TestStatusExpressions: a ready step's until and fail_if read status
// (totals and regions by name), and later expressions read the same
// counters as steps.<name>.status; unknown fields are type errors.
func TestStatusExpressions(t *testing.T) {
	rs := &ReadyStatus{Pending: 2, Failed: 1, Completed: 13, Regions: map[string]RegionStatus{
		"eu": {Pending: 2, Completed: 6}, "us": {Failed: 1, Completed: 7},
	}}
	for src, want := range map[string]bool{
		"status.pending == 0":                  false,
		"status.failed > 0":                    true,
		`status.regions["us"].pending == 0`:    true,
		`status.regions["eu"].completed == 6`:  true,
		`status.regions["ap"].pending == 0`:    true, // an unlisted region reads zero
		"status.completed + status.failed > 3": true,
	} {
		e, err := CompileStatus(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := e.Eval(EvalInput{Status: rs})
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
	for _, bad := range []string{"status.pendng == 0", "status.pending == \"x\"", "status.regions.eu"} {
		if _, err := CompileStatus(bad); err == nil {
			t.Errorf("%s compiled", bad)
		}
	}

	x := &exprEnv{envs: map[string]*envInfo{}, progs: map[string]*compiled{}, stepType: map[string]StepType{"fleet_ready": TypeReady}}
	x.buildVars(nil, nil)
	env := x.env(false, []string{"fleet_ready"})
	prog, err := expr.Compile(`steps.fleet_ready.status.regions["eu"].pending == 2 && steps.fleet_ready.status.failed == 1`,
		expr.Env(reflect.New(env.typ).Elem().Interface()), expr.AsBool())
	if err != nil {
		t.Fatal(err)
	}
	ok, err := (&compiled{prog: prog, env: env, vars: x.varsValue}).run(EvalInput{Steps: map[string]*Output{"fleet_ready": {Status: rs}}})
	if err != nil || !ok {
		t.Errorf("steps.fleet_ready.status: %v, %v", ok, err)
	}
	if _, err := expr.Compile(`steps.fleet_ready.status.pendng > 0`, expr.Env(reflect.New(env.typ).Elem().Interface())); err == nil {
		t.Error("an unknown field of steps.<ready>.status compiled")
	}
}
