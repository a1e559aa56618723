package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
)

// The whole A/B cut-over through the engine, as the loader will wire it:
// a ready instance per image needing that image's installs, a switch
// instance per fleet ("<step>@<fleet>/<image>") needing the ready one, and
// on_failure switch instances, one per fleet, triggered by every instance
// of the run.

// wireCutover adds to the rig's plan: fleet_ready (game-b) after the game-b
// installs, cutover of every fleet to game-b after it, optionally a gate
// after the cutover whose expression is after, and the on_failure switch
// back to game-a.
func (r *cutRig) wireCutover(failIf, after string) {
	p := r.p
	ready := &plan.Step{Name: "fleet_ready", Type: plan.TypeReady, Needs: []string{"install"}, Fleets: p.Fleets, Timeout: time.Minute}
	if failIf != "" {
		ready.FailIf = mustStatus(failIf)
	}
	cut := r.cutover(1, time.Hour)
	cut.Needs, cut.Timeout = []string{"fleet_ready"}, time.Minute
	back := r.rollback()
	back.Timeout = time.Minute
	p.Steps = append(p.Steps, ready, cut)
	p.OnFailure = append(p.OnFailure, back)
	var installs []*plan.Instance
	for _, in := range p.Instances {
		if in.Step.Name == "install" && in.Image == r.b {
			installs = append(installs, in)
		}
	}
	ri := &plan.Instance{ID: "fleet_ready@game-b", Step: ready, Image: r.b, Deps: installs, Wave: -1}
	p.Instances = append(p.Instances, ri)
	fwd := r.switchInsts(cut, r.b, r.eu, r.us)
	for _, in := range fwd {
		in.Deps = []*plan.Instance{ri}
	}
	p.Instances = append(p.Instances, fwd...)
	if after != "" {
		gate := &plan.Step{Name: "post_check", Type: plan.TypeGate, Needs: []string{"cutover"}, Expr: mustStatus(after)}
		p.Steps = append(p.Steps, gate)
		p.Instances = append(p.Instances, &plan.Instance{ID: "post_check@game-b", Step: gate, Image: r.b, Deps: fwd, Wave: -1})
	}
	p.FailureInstances = nil
	for _, in := range r.switchInsts(back, r.a, r.eu, r.us) {
		in.Trigger = append([]*plan.Instance{}, p.Instances...)
		p.FailureInstances = append(p.FailureInstances, in)
	}
}

func (r *cutRig) runEngine(t *testing.T) *engine.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := engine.New(r.p, engine.Options{Executor: Executor{Env: r.env}}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func (r *cutRig) profiles(id string) []int64 {
	var out []int64
	for _, s := range r.patches(id) {
		out = append(out, s.ProfileID)
	}
	return out
}

func TestEngineCutover(t *testing.T) {
	t.Run("ready, then one PATCH per fleet", func(t *testing.T) {
		r := newCutRig(t, 6, sim.Scenario{Durations: sim.Durations{Install: 10 * time.Second}})
		r.wireCutover("status.failed > 0", "")
		sum := r.runEngine(t)
		if sum.Verdict != engine.VerdictSucceeded {
			t.Fatalf("verdict %s: %+v", sum.Verdict, sum.Failures)
		}
		for _, id := range []string{euID, usID} {
			if got := r.profiles(id); len(got) != 1 || got[0] != 102 {
				t.Errorf("fleet %s PATCHes %v, want [102]", id, got)
			}
		}
		first := r.srv.Switches()[0].Time
		for _, ev := range r.srv.Timeline() {
			if ev.Kind == sim.KindInstall && ev.Image == "game-b" && ev.Event == "completed" && !ev.Time.Before(first) {
				t.Errorf("install of %s completed after the first PATCH", ev.Machine)
			}
		}
		if len(sum.OnFailure) != 0 {
			t.Errorf("on_failure ran: %+v", sum.OnFailure)
		}
	})
	t.Run("a failure after the switch switches each fleet back once", func(t *testing.T) {
		r := newCutRig(t, 4, sim.Scenario{})
		r.wireCutover("", "1 == 2")
		sum := r.runEngine(t)
		if sum.Verdict != engine.VerdictFailed || len(sum.Failures) != 1 || sum.Failures[0].Instance != "post_check@game-b" {
			t.Fatalf("verdict %s, failures %+v", sum.Verdict, sum.Failures)
		}
		for _, id := range []string{euID, usID} {
			if got := r.profiles(id); len(got) != 2 || got[0] != 102 || got[1] != 101 {
				t.Errorf("fleet %s PATCHes %v, want [102 101]", id, got)
			}
			if f := r.fleet(id); f.Profile != 101 || f.State != sim.StateComplete {
				t.Errorf("fleet %+v", f)
			}
		}
		if len(sum.OnFailure) != 2 || sum.OnFailure[0].Outcome != engine.Succeeded || sum.OnFailure[0].Noop ||
			!strings.Contains(sum.OnFailure[0].Detail, "prod-eu switched to profile 101 (game-a)") {
			t.Errorf("on_failure %+v", sum.OnFailure)
		}
	})
	t.Run("a failure before the switch sends no PATCH", func(t *testing.T) {
		r := newCutRig(t, 4, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindInstall, Machine: "m002", Image: "game-b"}}})
		r.wireCutover("status.failed > 0", "")
		sum := r.runEngine(t)
		if sum.Verdict != engine.VerdictFailed {
			t.Fatalf("verdict %s", sum.Verdict)
		}
		if n := len(r.srv.Switches()); n != 0 {
			t.Fatalf("%d PATCHes after a failure before the switch", n)
		}
		ran, noops := engine.SplitNoops(sum.OnFailure)
		if len(ran) != 0 || len(noops) != 1 || len(noops[0].Instances) != 2 || !strings.Contains(noops[0].Detail, "not switched by this run") {
			t.Errorf("on_failure ran %+v, no-ops %+v", ran, noops)
		}
	})
}
