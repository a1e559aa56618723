package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/steps"
)

// TestEndToEndAgainstSimulator runs a real eight-machine rollout (plan,
// engine, steps, client) against the simulator over HTTP with the live view
// as the engine's only observer, and checks what the program showed and how
// it ended.
func TestEndToEndAgainstSimulator(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("e2e", []string{"game"}, 8, 4, "    waves: [2, \"100%\"]\n", "", ""))
	e := simtest.Start(t, p, simtest.Scenario(t, "speed: 20\n"))
	pol := steps.PollPolicy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 1.5}
	env := &steps.Env{Client: e.Client, Installs: steps.NewInstallWatcher(e.Client, pol), Poll: pol, Now: time.Now}

	u := New(Options{NoColor: true, Tick: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, u.Model(), teatest.WithInitialTermSize(120, 40),
		teatest.WithProgramOptions(tea.WithoutSignalHandler()))
	done := make(chan *engine.Summary, 1)
	go func() {
		s, err := engine.New(p, engine.Options{Executor: steps.Executor{Env: env}, Requests: env.Client.Requests, Observer: u}).Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()

	// Every machine is on screen at once, and jobs run with a percentage.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := string(b)
		for i := 0; i < 8; i++ {
			if !strings.Contains(s, fmt.Sprintf("m%03d", i)) {
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
	if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) || (s.Verdict == engine.VerdictInterrupted) {
		t.Fatalf("rollout did not succeed: %+v", s)
	}
	if c := fm.st.cnt; c.succeeded != 12 || c.failed != 0 || c.running != 0 || c.waiting != 0 {
		t.Fatalf("final counts %+v, want 12 succeeded", c)
	}
	// The engine told the view the plan's DAG and its jobs' jobstart,
	// which the estimate and the progress between reads go by.
	if n := len(fm.st.graph.deps); n < 8 {
		t.Fatalf("the view knows %d dependencies, want one per install at least", n)
	}
	withStart := 0
	for i := range fm.st.insts {
		if !fm.st.insts[i].job.Start.IsZero() {
			withStart++
		}
	}
	if withStart == 0 {
		t.Fatal("no job came with its jobstart")
	}
	sum, finished := u.Summary()
	if !finished || sum.Counts[engine.Succeeded] != 12 {
		t.Fatalf("summary %v %+v", finished, sum)
	}
	out := RenderSummary(sum, 120, false)
	if !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "m007") {
		t.Fatalf("summary:\n%s", out)
	}
	// The summary counts targets as validate and the plain reporter do:
	// (machine, image) pairs, not an image's own steps.
	if want := fmt.Sprintf("targets %d", len(p.Targets)); !strings.Contains(out, want) {
		t.Fatalf("summary does not say %q:\n%s", want, out)
	}
	if want := fmt.Sprintf("succeeded %d", len(p.Targets)); !strings.Contains(out, want) {
		t.Fatalf("summary does not say %q:\n%s", want, out)
	}
}
