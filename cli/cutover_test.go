package cli

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/state"
)

// TestABCutoverFromThePlan: the A/B cut-over of the plan format, as a plan
// file (package plan's testdata), run by the command against the
// simulator: update, diff, version and installs of the idle image, the
// approval after wave 1 (its waves are 1, 0 and 3 machines) and the
// approval before the switch (given by --auto-approve, and recorded), then
// one PATCH per fleet with the plan's ProfileID, MaxMachines and Timeout,
// each polled to complete.
func TestABCutoverFromThePlan(t *testing.T) {
	b, err := os.ReadFile("../plan/testdata/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.NewReplacer(
		// No webhook is reached from a test, and no bake time waited.
		`"https://hooks.slack.com/services/${env:SLACK_HOOK}"`, `"https://hooks.example.com/x"`,
		"pause_after: [approve, 10m]", "pause_after: [approve, null]",
	).Replace(string(b))
	r := newRig(t, src)
	if err := r.run(context.Background(), func(o *RunOptions) { o.AutoApprove = true }); err != nil {
		t.Fatalf("run: %v\n%s%s", err, r.out.String(), r.errOut.String())
	}
	sw := r.sim.Server.Switches()
	if len(sw) != 2 {
		t.Fatalf("%d PATCHes, want one per fleet: %+v", len(sw), sw)
	}
	if sw[0].Fleet == sw[1].Fleet {
		t.Errorf("both PATCHes went to %s", sw[0].Fleet)
	}
	for _, x := range sw {
		if (x.Fleet != "prod-eu" && x.Fleet != "prod-us") || x.Body != `{"ProfileID":102,"Timeout":"2h","MaxMachines":10}` {
			t.Errorf("PATCH to fleet %s, body %s", x.Fleet, x.Body)
		}
	}
	for _, f := range r.sim.Server.Fleets() {
		if f.Profile != 102 || f.State != sim.StateComplete {
			t.Errorf("fleet %+v", f)
		}
	}
	var installs int
	for _, j := range r.sim.Server.Jobs() {
		if j.Kind == sim.KindInstall {
			installs++
			if j.ImageID != 5531 || j.Ended.IsZero() || j.Error != "" {
				t.Errorf("install job %+v", j)
			}
		}
	}
	if installs != 4 {
		t.Errorf("%d install jobs, want 4", installs)
	}
	sum, err := state.Replay(r.state)
	if err != nil {
		t.Fatal(err)
	}
	var waits []string
	for _, d := range sum.Decisions {
		if d.Decision != string(engine.AutoApproved) {
			t.Errorf("decision %+v", d)
		}
		waits = append(waits, d.ID)
	}
	if strings.Join(waits, ", ") != "install@game-b after wave 1, go_live@game-b" {
		t.Errorf("decisions %v\n%s", waits, r.out.String())
	}
}
