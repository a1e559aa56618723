package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
)

// The whole A/B cut-over through the engine, as the plan loads: a ready
// instance per image needing that image's installs, a switch instance per
// fleet ("<step>@<fleet>/<image>") needing the ready one, and on_failure
// switch instances, one per fleet, triggered by every instance of the run.

// cutoverRig is newCutRig whose plan also has fleet_ready (game-b, with
// fail_if failIf when it is not "") after the game-b installs, cutover of
// every fleet to game-b after it, optionally a gate after the cutover
// whose expression is after, and the on_failure switch back to game-a.
func cutoverRig(t *testing.T, n int, sc sim.Scenario, failIf, after string) *cutRig {
	t.Helper()
	steps := `  - name: fleet_ready
    type: ready
    needs: [install]
    where: image.name == "game-b"
    timeout: 1m
`
	if failIf != "" {
		steps += "    fail_if: " + failIf + "\n"
	}
	steps += `  - name: cutover
    type: switch
    needs: [fleet_ready]
    to: game-b
    max_machines: 1
    force_after: 1h
    timeout: 1m
`
	if after != "" {
		steps += `  - name: post_check
    type: gate
    needs: [cutover]
    where: image.name == "game-b"
    expr: ` + after + "\n"
	}
	return newCutRigWith(t, n, sc, steps, "on_failure:\n  - type: switch\n    to: game-a\n    timeout: 1m\n")
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
		r := cutoverRig(t, 6, sim.Scenario{Durations: sim.Durations{Install: 10 * time.Second}}, "status.failed > 0", "")
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
		// The summary says which fleets run which profile now.
		if len(sum.Switches) != 2 {
			t.Fatalf("summary switches %+v, want one per fleet", sum.Switches)
		}
		for _, sw := range sum.Switches {
			if sw.Outcome != engine.Succeeded || !strings.Contains(sw.Detail, "102") {
				t.Errorf("switch %s: %s %q", sw.Instance, sw.Outcome, sw.Detail)
			}
		}
	})
	t.Run("a failure after the switch switches each fleet back once", func(t *testing.T) {
		r := cutoverRig(t, 4, sim.Scenario{}, "", "1 == 2")
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
		r := cutoverRig(t, 4, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindInstall, Machine: "m002", Image: "game-b"}}}, "status.failed > 0", "")
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
