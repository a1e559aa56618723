package preview

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// cutoverPlan is the A/B cut-over of the contract built on a fleet plan:
// images game-a (profile 101) and game-b (profile 102), fleets prod-eu and
// prod-us, a ready step after the installs of game-b, a switch of every
// fleet to game-b, and an on_failure switch back to game-a.
func cutoverPlan(t *testing.T) *plan.Plan {
	t.Helper()
	return simtest.Plan(t, simtest.CutoverPlan("ab-cutover", []string{"game-a", "game-b"}, 4, 4, "", `  - name: fleet_ready
    type: ready
    needs: [install]
    where: image.name == "game-b"
    fail_if: status.failed > 2
    timeout: 2h
  - name: cutover
    type: switch
    needs: [fleet_ready]
    to: game-b
    max_machines: 10
    force_after: 2h
`, "on_failure:\n  - type: reject\n    reinstall: true\n  - type: switch\n    to: game-a\n"))
}

// TestCutoverPreviewGolden: offline, each ready and switch instance with
// its exact calls (the PATCH with its JSON body) and what it would do to
// its fleet; with the pre-flight (against the simulator, prod-us already
// on game-b's profile), each fleet's current profile and switch state.
func TestCutoverPreviewGolden(t *testing.T) {
	p := cutoverPlan(t)
	var off bytes.Buffer
	if err := Build(p, Options{ASID: 1234}).Text(&off, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "ab-cutover-offline", off.Bytes())
	for _, want := range []string{
		`PATCH /cfp/v2/fleet/c0a3e2a1-6955-415c-b1d4-af9199833e6a/switchprofile {"ProfileID":102,"Timeout":"2h","MaxMachines":10}  [changes state]`,
		"prod-eu: profile unknown → 102 (game-b), 10 machines at a time, forced after 2h",
		"GET /cfp/v2/project/1234/image/5531/status?detail=true  [read]",
		"prod-us: back to profile 101 (game-a), only if this run switched it",
	} {
		if !strings.Contains(off.String(), want) {
			t.Errorf("offline preview lacks %q", want)
		}
	}

	e := simtest.Start(t, p, simtest.Scenario(t, "fleet_profiles: {prod-us: 102}\n"))
	rep, err := steps.Preflight(context.Background(), e.Client, p, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("pre-flight: %v %+v", err, rep)
	}
	d := Build(p, Options{ASID: 1234, BaseURL: "http://sim.invalid", Preflight: rep})
	var on, js bytes.Buffer
	if err := d.Text(&on, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "ab-cutover-preflight", on.Bytes())
	for _, want := range []string{
		"prod-eu: profile 101 (game-a) → 102 (game-b), 10 machines at a time, forced after 2h",
		"prod-us: already on profile 102 (game-b): nothing to send",
		"fleet prod-eu (id c0a3e2a1-6955-415c-b1d4-af9199833e6a): profile 101 (game-a), no switch requested",
	} {
		if !strings.Contains(on.String(), want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	if err := d.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc Doc
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	sw := doc.Steps[len(doc.Steps)-1].Instances[0]
	if sw.Switch == "" || sw.Calls[1].Method != "PATCH" || sw.Calls[1].Body != `{"ProfileID":102,"Timeout":"2h","MaxMachines":10}` || !sw.Calls[1].Mutating {
		t.Errorf("switch instance in JSON: %+v", sw)
	}
	if len(doc.Preflight.Fleets) != 2 || doc.Preflight.Fleets[1].Profile != 102 {
		t.Errorf("pre-flight fleets in JSON: %+v", doc.Preflight.Fleets)
	}
	if n := len(e.Server.Switches()); n != 0 {
		t.Errorf("the preview's pre-flight sent %d PATCHes", n)
	}
}
