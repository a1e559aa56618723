package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

// TestCutoverProgressShown: a running ready step's counters per region and
// a switch's servers show on the row's second line and, in full, in the
// detail pane.
func TestCutoverProgressShown(t *testing.T) {
	h := newHarness(t, 100, 30, false)
	info := fixture(2)
	info.Instances = append(info.Instances,
		engine.InstanceInfo{ID: "fleet_ready@game-b", Step: "fleet_ready", Type: "ready", Image: "game-b", Wave: -1},
		engine.InstanceInfo{ID: "cutover@prod-eu/game-b", Step: "cutover", Type: "switch", Image: "game-b", Wave: -1})
	h.ui.RunStarted(info)
	h.flush()
	counters := "3 pending, 5 completed, 0 failed (eu: 2 pending, 2 completed, 0 failed; us: 1 pending, 3 completed, 0 failed)"
	h.ui.InstanceStarted("fleet_ready@game-b", t0)
	h.ui.JobProgress("fleet_ready@game-b", engine.JobInfo{Kind: "ready", State: 4, StateName: "waiting", Progress: 62, Detail: counters})
	h.tick(time.Second)
	if f := h.frame(); !strings.Contains(f, "└ 3 pending, 5 completed, 0 failed (eu: 2 pending") || !strings.Contains(f, "waiting") {
		t.Fatalf("the row does not show the counters:\n%s", f)
	}
	h.press("enter")
	f := h.frame()
	if !strings.Contains(f, "us: 1 pending") || !strings.Contains(f, "completed, 0 failed)") {
		t.Fatalf("the detail pane does not show every region:\n%s", f)
	}
	h.checkFrame()
	h.press("esc")

	h.ui.InstanceFinished("fleet_ready@game-b", engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0.Add(time.Minute), Detail: "0 pending, 8 completed, 0 failed"})
	h.ui.InstanceStarted("cutover@prod-eu/game-b", t0.Add(time.Minute))
	h.ui.JobProgress("cutover@prod-eu/game-b", engine.JobInfo{Kind: "switch", State: 4, StateName: "processing", Progress: 25, Detail: "prod-eu: processing 30 of 120 servers to profile 102"})
	h.tick(time.Second)
	if f := h.frame(); !strings.Contains(f, "└ prod-eu: processing 30 of 120 servers to profile 102") {
		t.Fatalf("the row does not show the switch:\n%s", f)
	}
	h.checkFrame()
}
