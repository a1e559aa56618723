package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// TestEndToEndAgainstSimulator runs a real eight-machine rollout (plan,
// engine, steps, client) against the simulator over HTTP with the live view
// as the engine's only observer, and checks what the program showed and how
// it ended.
func TestEndToEndAgainstSimulator(t *testing.T) {
	var src strings.Builder
	src.WriteString(`version: 1
name: e2e
clanforge: {asid: 77}
concurrency: 4
images: [{name: game, id: 5531}]
machines:
  - {name: buildbox-1, id: 770001, labels: {role: build}}
`)
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&src, "  - {name: fleet-%d, id: %d, labels: {role: fleet, region: r%d}}\n", i, 812340+i, i%2)
	}
	src.WriteString(`steps:
  - {name: update, type: update, where: 'machine.labels.role == "build"', desc: "build 1", url: "s3://b/1/"}
  - {name: diff, type: diff, needs: [update], where: 'machine.labels.role == "build"'}
  - {name: version, type: version, needs: [diff]}
  - {name: mirror, type: install, needs: [version], mirroring: true}
  - {name: install, type: install, needs: [mirror], where: 'machine.labels.role == "fleet"', mirroring: false, waves: [2, "100%"]}
`)
	p, err := plan.Parse("e2e.yaml", []byte(src.String()), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.ParseScenario([]byte("speed: 20\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Strict: the simulator refuses anything a strict reading of the API
	// reference refuses, so the client is held to the documented API.
	sc.Strict = true
	srv, err := sim.New(sim.Config{Inventory: sim.InventoryFromPlan(p), AccessKey: "a", SecretKey: "s", Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range srv.StrictRefusals() {
			t.Errorf("strict refusal of %s: %s", r.Path, r.Strict)
		}
	})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := clanforge.New(clanforge.Config{BaseURL: base, ASID: 77, AccessKey: "a", SecretKey: "s", RateLimit: 1000, Burst: 50})
	if err != nil {
		t.Fatal(err)
	}
	pol := steps.PollPolicy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 1.5}
	env := &steps.Env{Client: c, Installs: steps.NewInstallWatcher(c, pol), Poll: pol, Now: time.Now}

	u := New(Options{NoColor: true, Tick: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, u.Model(), teatest.WithInitialTermSize(120, 40),
		teatest.WithProgramOptions(tea.WithoutSignalHandler()))
	done := make(chan *engine.Summary, 1)
	go func() {
		s, err := engine.New(p, engine.Options{Env: env, Observer: u}).Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()

	// Every machine is on screen at once, and jobs run with a percentage.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := string(b)
		for i := 1; i <= 8; i++ {
			if !strings.Contains(s, fmt.Sprintf("fleet-%d", i)) {
				return false
			}
		}
		return strings.Contains(s, "Running") && strings.Contains(s, "%")
	}, teatest.WithDuration(30*time.Second))

	fm, ok := tm.FinalModel(t, teatest.WithFinalTimeout(60*time.Second)).(*Model)
	if !ok {
		t.Fatal("final model is not *Model")
	}
	s := <-done
	if len(s.Failures) != 0 || s.Aborted || s.Interrupted {
		t.Fatalf("rollout did not succeed: %+v", s)
	}
	if c := fm.st.cnt; c.succeeded != 12 || c.failed != 0 || c.running != 0 || c.waiting != 0 {
		t.Fatalf("final counts %+v, want 12 succeeded", c)
	}
	sum, finished := u.Summary()
	if !finished || sum.Counts[engine.Succeeded] != 12 {
		t.Fatalf("summary %v %+v", finished, sum)
	}
	out := RenderSummary(sum, 120, false)
	if !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "fleet-8") {
		t.Fatalf("summary:\n%s", out)
	}
}
