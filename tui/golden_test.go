package tui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/rollout/rollout/engine"
)

// Golden frames. Run `go test ./tui -run Golden -update` to refresh them
// (the -update flag is the one registered by x/exp/golden, which teatest
// uses too; this package declares no flag of its own).

const failMsg = "imageinstall 9102 failed: machine 812346 unreachable\n(connection reset by peer) after 3 attempts"

func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		w, h  int
		color bool
		setup func(h *harness)
	}{
		{"initial", 80, 24, false, func(h *harness) { h.start(12) }},
		{"before_run_started", 80, 24, false, func(h *harness) { h.flush() }},
		{"running", 80, 24, false, func(h *harness) { h.running(12) }},
		{"running_120x40", 120, 40, false, func(h *harness) { h.running(40) }},
		{"running_color", 100, 20, true, func(h *harness) { h.running(12) }},
		{"failed_first", 80, 24, false, func(h *harness) {
			h.running(12)
			h.fail(3, failMsg)
			h.tick(time.Second)
		}},
		{"abort_banner", 80, 24, false, func(h *harness) {
			h.running(12)
			h.fail(3, failMsg)
			h.ui.Aborting("install: 2 targets failed, max_failures is 1")
			h.tick(time.Second)
		}},
		{"detail", 80, 24, false, func(h *harness) {
			h.running(12)
			h.fail(3, failMsg)
			h.tick(time.Second)
			// The failed row is first; the per-image row holds the diff
			// summary, so open the build machine's row too in a second check.
			h.press("enter")
		}},
		{"detail_build_machine", 100, 24, false, func(h *harness) {
			h.running(12)
			h.press("/")
			h.typeText("buildbox")
			h.press("enter", "enter")
		}},
		{"filter_typing", 80, 24, false, func(h *harness) {
			h.running(12)
			h.press("/")
			h.typeText("us-")
		}},
		{"filter_applied", 80, 24, false, func(h *harness) {
			h.running(12)
			h.press("/")
			h.typeText("US-")
			h.press("enter")
		}},
		{"failures_only", 80, 24, false, func(h *harness) {
			h.running(12)
			h.fail(3, failMsg)
			h.fail(4, "queue refused: image locked by diffid: 77")
			h.tick(time.Second)
			h.press("f")
		}},
		{"help", 80, 24, false, func(h *harness) { h.running(12); h.press("?") }},
		{"confirm", 80, 24, false, func(h *harness) { h.running(12); h.press("q") }},
		{"cancelling", 80, 24, false, func(h *harness) { h.running(12); h.press("q", "y") }},
		{"scrolled_end", 80, 24, false, func(h *harness) { h.running(40); h.press("end") }},
		{"tiny_40x12", 40, 12, false, func(h *harness) { h.running(12) }},
		// The run ended with a failure; the view stays until q.
		{"finished_stays_open", 80, 24, false, func(h *harness) {
			h.m.stayOpen = true
			h.running(12)
			h.finishRun()
		}},
		{"finished_stays_open_detail", 80, 24, false, func(h *harness) {
			h.m.stayOpen = true
			h.running(12)
			h.finishRun()
			h.press("enter")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.w, tc.h, tc.color)
			tc.setup(h)
			h.checkFrame()
			out := h.frame()
			if tc.color {
				out = h.m.Render()
			}
			golden.RequireEqual(t, out+"\n")
		})
	}
}

func testSummary() engine.Summary {
	return engine.Summary{
		Plan:        "game-b-1.4.2",
		Started:     t0,
		Finished:    t0.Add(14*time.Minute + 3*time.Second),
		Verdict:     engine.VerdictAborted,
		AbortReason: "install: 2 targets failed, max_failures is 1",
		Counts: map[engine.Outcome]int{
			engine.Succeeded: 9, engine.Failed: 2, engine.Skipped: 6, engine.SkippedWhen: 1,
		},
		Failures: []engine.Failure{
			{Instance: installID(3), Machine: fleetName(3), Image: "game-b", Err: errors.New(failMsg)},
			{Instance: installID(4), Machine: fleetName(4), Image: "game-b", Err: errors.New("queue refused: image locked by diffid: 77")},
		},
		Unfinished: []engine.UnfinishedJob{
			{Instance: installID(5), Job: engine.JobInfo{Kind: "install", ID: 9105, State: 2, StateName: "Running", Progress: 55}},
		},
		Requests: 1234,
		Targets: []engine.TargetSummary{
			{Machine: "buildbox-1", Image: "game-b", Outcome: engine.Succeeded, Elapsed: 3 * time.Minute},
			{Machine: "", Image: "game-b", Outcome: engine.Succeeded, Elapsed: 3 * time.Minute},
			{Machine: fleetName(1), Image: "game-b", Outcome: engine.Succeeded, Elapsed: 3 * time.Minute},
			{Machine: fleetName(2), Image: "game-b", Outcome: engine.Succeeded, Elapsed: 4 * time.Minute},
			{Machine: fleetName(3), Image: "game-b", Outcome: engine.Failed, Err: errors.New(failMsg), Elapsed: 5 * time.Minute},
			{Machine: fleetName(4), Image: "game-b", Outcome: engine.Failed, Err: errors.New("queue refused"), Elapsed: time.Minute},
			{Machine: fleetName(5), Image: "game-b", Outcome: engine.Cancelled, Elapsed: 2 * time.Minute},
			{Machine: fleetName(6), Image: "game-b", Outcome: engine.Skipped, Err: errors.New("rollout aborted before it started")},
		},
	}
}

func TestGoldenSummary(t *testing.T) {
	ok := engine.Summary{Plan: "p", Started: t0, Finished: t0.Add(time.Minute), Requests: 12,
		Counts:  map[engine.Outcome]int{engine.Succeeded: 3},
		Targets: []engine.TargetSummary{{Machine: "a", Image: "i", Outcome: engine.Succeeded}}}
	many := testSummary()
	for i := 7; i < 60; i++ {
		many.Targets = append(many.Targets, engine.TargetSummary{Machine: fleetName(i), Image: "game-b", Outcome: engine.Skipped, Err: errors.New("aborted")})
	}
	interrupted := testSummary()
	interrupted.Verdict = engine.VerdictInterrupted
	gate := engine.Summary{Plan: "gate-reject", Verdict: engine.VerdictFailed, Started: t0, Finished: t0.Add(5 * time.Second), Requests: 19,
		Counts:   map[engine.Outcome]int{engine.Succeeded: 3, engine.Failed: 1, engine.Skipped: 4},
		Failures: []engine.Failure{{Instance: "small-change@buildbox-1/game", Machine: "buildbox-1", Image: "game", Err: errors.New(`gate "small-change" is false: steps.diff.changed <= vars.max_changed`)}},
		OnFailure: []engine.OnFailureRun{
			{Instance: "reject@buildbox-1/game", Machine: "buildbox-1", Image: "game", Outcome: engine.Succeeded, Detail: "rejected diff 218591; reinstall job 33101 started"},
			{Instance: "reject@eu-1/game", Machine: "eu-1", Image: "game", Outcome: engine.Failed, Err: errors.New("reading the lock of image 5531: clanforge: connection refused")},
		},
		Targets: []engine.TargetSummary{{Machine: "buildbox-1", Image: "game", Outcome: engine.Failed, Err: errors.New(`gate "small-change" is false`)}}}
	tests := []struct {
		name  string
		s     engine.Summary
		w     int
		color bool
	}{
		{"aborted", testSummary(), 80, false},
		{"aborted_color", testSummary(), 80, true},
		{"interrupted", interrupted, 100, false},
		{"succeeded", ok, 80, false},
		{"many_targets", many, 120, false},
		{"on_failure", gate, 80, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := RenderSummary(tc.s, tc.w, tc.color)
			for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if w := lenCells(l); w > tc.w {
					t.Errorf("line %d is %d wide: %q", i, w, l)
				}
			}
			golden.RequireEqual(t, out)
		})
	}
}
