package simtest_test

import (
	"testing"
	"time"

	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// TestSchedule: the ideal schedule follows the engine's rules: dependencies,
// the concurrency limit and waves.
func TestSchedule(t *testing.T) {
	work := func(p *plan.Plan) map[string]time.Duration {
		w := map[string]time.Duration{}
		for _, in := range p.Instances {
			w[in.ID] = time.Second // update, diff, version, mirror: 4 s in a row
			if in.Step.Type == plan.TypeInstall && !in.Step.Mirroring {
				w[in.ID] = 2 * time.Second
			}
		}
		return w
	}
	for _, tt := range []struct {
		name        string
		concurrency int
		waves       string
		want        time.Duration
	}{
		{"one at a time", 1, "", 4*time.Second + 3*2*time.Second},
		{"all three installs at once", 3, "", 4*time.Second + 2*time.Second},
		{"two slots", 2, "", 4*time.Second + 2*2*time.Second},
		// Wave 1 (one machine) ends before wave 2 (the other two) opens.
		{"waves", 3, `    waves: [1, "100%"]` + "\n", 4*time.Second + 2*2*time.Second},
	} {
		p := simtest.Plan(t, simtest.FleetPlan("sched", []string{"game"}, 3, tt.concurrency, tt.waves, "", ""))
		got, reads := simtest.Schedule(p, tt.concurrency, work(p), simtest.IdealDetect)
		if got != tt.want || reads != 0 {
			t.Errorf("%s: makespan %v with %d reads, want %v", tt.name, got, reads, tt.want)
		}
	}
}

// TestScriptDetect: a script polling every second sees a job end at its
// first read after the end; its install reads are shared, one per second.
func TestScriptDetect(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("script", []string{"game"}, 2, 2, "", "", ""))
	w := map[string]time.Duration{}
	for _, in := range p.Instances {
		w[in.ID] = 1500 * time.Millisecond
	}
	detect, shared := simtest.ScriptDetect(time.Second)
	got, reads := simtest.Schedule(p, 2, w, detect)
	// update, diff, version: 2 s each (2 reads each); the mirror then the
	// two installs at once: each seen on the shared whole-second grid.
	if got != 10*time.Second || reads != 6 || shared() != 4 {
		t.Errorf("makespan %v, %d job reads, %d shared install reads; want 10s, 6, 4", got, reads, shared())
	}
}
