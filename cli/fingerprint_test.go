package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// TestFingerprintNamesControlKeys: a resume refused because the plan
// changed names the part that changed, for each key of cut-over and
// control too.
func TestFingerprintNamesControlKeys(t *testing.T) {
	b, err := os.ReadFile("../plan/testdata/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ab := string(b)
	env := func(string) (string, bool) { return "T0/B0/X", true }
	load := func(src string) *plan.Plan {
		t.Helper()
		p, err := plan.Parse("ab.yaml", []byte(src), plan.Options{LookupEnv: env})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := t.TempDir()
	if err := saveFingerprint(dir, load(ab)); err != nil {
		t.Fatal(err)
	}
	if got := changedParts(dir, load(ab)); got != "" {
		t.Fatalf("the same plan changed: %s", got)
	}
	for _, c := range []struct{ old, new, want string }{
		{"profile: 101", "profile: 103", "image game-a (changed)"},
		{"id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14", "id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e15", "fleet prod-us (changed)"},
		{"{name: eu-2, id: 812347, fleet: prod-eu", "{name: eu-2, id: 812347, fleet: prod-us", "machine eu-2 (changed)"},
		{"until: status.pending == 0", "until: status.pending <= 1", "step fleet_ready (changed)"},
		{"fail_if: status.failed > 2", "fail_if: status.failed > 3", "step fleet_ready (changed)"},
		{"    timeout: 2h\n", "    timeout: 2h\n    fleets: [prod-eu]\n", "step fleet_ready (changed)"},
		{"Switch the fleets", "Cut over the fleets", "step go_live (changed)"},
		{"on_timeout: abort", "on_timeout: continue", "step go_live (changed)"},
		{"    to: ${vars.idle}\n    fleets", "    profile: 102\n    fleets", "step cutover (changed)"},
		{"fleets: [prod-eu, prod-us]", "fleets: [prod-eu]", "step cutover (changed)"},
		{"max_machines: 10", "max_machines: 20", "step cutover (changed)"},
		{"force_after: 2h", "force_after: 3h", "step cutover (changed)"},
		{"pause_after: [approve, 10m]", "pause_after: [approve, 20m]", "step install (changed)"},
		{"max_failures_per: image", "max_failures_per: step", "step install (changed)"},
		{"to: ${vars.live}", "profile: 101", "on_failure switch (changed)"},
		{"events: [approval, wave, failed, aborted, finished]", "events: [approval, wave, failed, aborted]", "notify 1 (changed)"},
		{"format: json", "format: slack", "notify 2 (changed)"},
		{"    events: [started, approved]\n", "    events: [started, approved]\n  - url: \"https://x.example.com/y\"\n    events: [finished]\n", "notify 3 (added)"},
	} {
		if !strings.Contains(ab, c.old) {
			t.Fatalf("edit does not apply: %q", c.old)
		}
		got := changedParts(dir, load(strings.Replace(ab, c.old, c.new, 1)))
		if got != "\nwhat changed: "+c.want {
			t.Errorf("%s -> %s: %q, want %q", c.old, c.new, got, c.want)
		}
	}
}

// TestFingerprintWithoutControlKeys: a plan without the keys of cut-over
// and control hashes its parts as before they existed, so that a run
// started by an earlier rollout names no part wrongly.
func TestFingerprintWithoutControlKeys(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("fp", []string{"game"}, 2, 2, "    waves: [1, \"100%\"]\n    max_failures: 1\n", "1 == 1", "on_failure:\n  - type: reject\n"))
	for _, s := range append(p.Steps, p.OnFailure...) {
		if extra := controlKeys(s); len(extra) > 0 {
			t.Errorf("step %s hashes %v", s.Name, extra)
		}
	}
	// The hash of an image as it was: its id alone.
	sum := sha256.Sum256([]byte(fmt.Sprint(int64(5530))))
	if got, want := fingerprint(p)["image game"], hex.EncodeToString(sum[:8]); got != want {
		t.Errorf("image hash %s, want %s", got, want)
	}
}
