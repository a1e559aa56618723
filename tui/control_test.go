package tui

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
)

func init() {
	// Waits say wall-clock times ("since 12:10"); frames must not depend
	// on the machine's zone.
	time.Local = time.UTC
}

// controls records what the view asked the run.
type controls struct {
	approved []string
	aborted  []string
	refuse   error
}

func newControlHarness(t testing.TB, w, h int, watch bool) (*harness, *controls) {
	c := &controls{}
	hs := &harness{t: t, clk: &fakeClock{t: t0}}
	hs.ui = New(Options{PlanName: "game-b-1.4.2", Width: w, Height: h, NoColor: true, Now: hs.clk.Now, Watch: watch,
		Cancel: func() { hs.cancels++ },
		Approve: func(id string) (string, error) {
			c.approved = append(c.approved, id)
			if c.refuse != nil {
				return "", c.refuse
			}
			return "approved " + id + " as alice@laptop", nil
		},
		Abort: func(reason string) (string, error) {
			c.aborted = append(c.aborted, reason)
			return "aborted the rollout as alice@laptop", nil
		},
	})
	hs.ui.color = false
	hs.m = hs.ui.Model()
	return hs, c
}

var pauseWait = engine.WaitInfo{ID: "install@game-b after wave 1", Kind: engine.WaitApproval, Step: "install", Image: "game-b",
	Wave: 0, Message: "Go on with install on game-b after wave 1?", Since: t0.Add(9 * time.Minute), OnTimeout: plan.OnTimeoutAbort,
	Progress: "1 of 12 machines on image version 9003, 0 failed"}

// paused is the standard picture with the run holding wave 2 for an
// approval.
func paused(h *harness) {
	h.running(12)
	h.ui.WaitStarted(pauseWait)
	h.tick(time.Second)
}

// run executes a command the way the program does, feeding its message
// back.
func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	if msg := cmd(); msg != nil {
		h.m.Update(msg)
	}
}

func TestGoldenControl(t *testing.T) {
	tests := []struct {
		name  string
		w, h  int
		watch bool
		setup func(h *harness)
	}{
		{"waiting_banner", 80, 24, false, paused},
		{"waiting_banner_120x40", 120, 40, false, paused},
		{"approve_dialog", 80, 24, false, func(h *harness) { paused(h); h.press("a") }},
		{"abort_dialog", 80, 24, false, func(h *harness) { paused(h); h.press("x") }},
		{"approved_flash", 80, 24, false, func(h *harness) {
			paused(h)
			h.run(h.press("a", "y"))
			h.ui.WaitEnded(pauseWait, engine.Decision{Kind: engine.Approved, By: "alice@laptop", At: t0.Add(10 * time.Minute), Reason: "approved in the live view"})
			h.tick(time.Second)
		}},
		{"detail_decisions", 100, 24, false, func(h *harness) {
			paused(h)
			h.run(h.press("a", "y"))
			h.ui.WaitEnded(pauseWait, engine.Decision{Kind: engine.Approved, By: "alice@laptop", At: t0.Add(10 * time.Minute), Reason: "approved in the live view"})
			h.tick(time.Second)
			h.press("enter")
		}},
		{"watch_waiting", 80, 24, true, paused},
		{"approve_step_waiting", 80, 24, false, func(h *harness) {
			// The gate of the fixture, as an approve step waiting.
			h.start(12)
			h.succeed("update@buildbox-1/game-b", 0, 2*time.Minute, nil, "")
			h.succeed("diff@buildbox-1/game-b", 2*time.Minute, time.Minute, nil, "3 added, 1 modified, 0 removed")
			id := "small-change@buildbox-1/game-b"
			h.ui.InstanceStarted(id, t0.Add(3*time.Minute))
			h.ui.WaitStarted(engine.WaitInfo{ID: id, Kind: engine.WaitApproval, Step: "small-change", Image: "game-b", Wave: -1,
				Message: "Ship 1.4.2 to the fleet?", Since: t0.Add(3 * time.Minute), Until: t0.Add(4*time.Hour + 3*time.Minute),
				OnTimeout: plan.OnTimeoutAbort, Progress: "0 of 12 machines on the new version, 0 failed"})
			h.clk.t = t0.Add(5 * time.Minute)
			h.flush()
		}},
		{"bake_waiting", 80, 24, false, func(h *harness) {
			h.running(12)
			h.ui.WaitStarted(engine.WaitInfo{ID: "install@game-b after wave 1", Kind: engine.WaitBake, Step: "install", Image: "game-b",
				Wave: 0, Message: "baking 10m0s after wave 1 of install", Since: t0.Add(9 * time.Minute), Until: t0.Add(19 * time.Minute)})
			h.tick(time.Second)
		}},
		{"help_control", 80, 30, false, func(h *harness) { paused(h); h.press("?") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newControlHarness(t, tc.w, tc.h, tc.watch)
			tc.setup(h)
			h.checkFrame()
			golden.RequireEqual(t, h.frame()+"\n")
		})
	}
}

// TestApproveAsksFirstThenSendsTheEnginesID: a opens a confirmation; only
// y sends the approval, of the wait the banner shows, by the engine's own
// id; n, esc and ctrl+c never approve.
func TestApproveAsksFirstThenSendsTheEnginesID(t *testing.T) {
	h, c := newControlHarness(t, 80, 24, false)
	paused(h)
	for _, no := range [][]string{{"a", "n"}, {"a", "esc"}, {"a", "enter"}, {"x", "n"}} {
		h.run(h.press(no...))
		if len(c.approved)+len(c.aborted) != 0 {
			t.Fatalf("%v sent something: %+v", no, c)
		}
		h.press("esc")
	}
	h.press("a", "ctrl+c")
	if !h.m.confirm.open || h.m.confirm.kind != confirmCancel || len(c.approved) != 0 {
		t.Fatalf("ctrl+c in the approve dialog: %+v, approved %v", h.m.confirm, c.approved)
	}
	h.press("n")
	h.run(h.press("a", "y"))
	if len(c.approved) != 1 || c.approved[0] != pauseWait.ID {
		t.Fatalf("approved %v", c.approved)
	}
	if !strings.Contains(h.frame(), "approved "+pauseWait.ID+" as alice@laptop") {
		t.Fatalf("the answer is not shown:\n%s", h.frame())
	}
	h.run(h.press("x", "y"))
	if len(c.aborted) != 1 {
		t.Fatalf("aborted %v", c.aborted)
	}
}

// TestApproveRefusedIsShown: the run's refusal reaches the footer, and a
// with nothing waiting says so without a dialog.
func TestApproveRefusedIsShown(t *testing.T) {
	h, c := newControlHarness(t, 100, 24, false)
	h.running(12)
	h.press("a")
	if h.m.confirm.open || !strings.Contains(h.frame(), "nothing is waiting for an approval now") {
		t.Fatalf("a with nothing waiting:\n%s", h.frame())
	}
	h.ui.WaitStarted(pauseWait)
	h.tick(time.Second)
	c.refuse = errors.New("the run has ended (succeeded); nothing waits any more")
	h.run(h.press("a", "y"))
	if !strings.Contains(h.frame(), "the run has ended") {
		t.Fatalf("refusal not shown:\n%s", h.frame())
	}
	h.tick(flashFor + time.Second)
	if strings.Contains(h.frame(), "the run has ended") {
		t.Fatalf("the answer outstayed its welcome:\n%s", h.frame())
	}
}

// TestWatchLeavesWithoutCancelling: in a watcher, q leaves the view at
// once and cancels nothing.
func TestWatchLeavesWithoutCancelling(t *testing.T) {
	h, _ := newControlHarness(t, 80, 24, true)
	h.running(12)
	if !isQuit(h.press("q")) || h.cancels != 0 || !h.m.detached {
		t.Fatalf("q in a watcher: quit=%v cancels=%d detached=%v", isQuit(h.lastCmd), h.cancels, h.m.detached)
	}
	h, _ = newControlHarness(t, 80, 24, true)
	h.running(12)
	if !isQuit(h.press("ctrl+c")) || h.cancels != 0 {
		t.Fatal("ctrl+c in a watcher did not just leave")
	}
}

// TestWithoutCallbacksTheKeysAreOff: a view nobody can answer through
// (no Approve) neither offers a nor opens a dialog.
func TestWithoutCallbacksTheKeysAreOff(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(12)
	h.ui.WaitStarted(pauseWait)
	h.tick(time.Second)
	h.press("a")
	if h.m.confirm.open {
		t.Fatal("a opened a dialog without a way to approve")
	}
	if f := h.frame(); strings.Contains(f, "a approve") {
		t.Fatalf("a offered without a way to approve:\n%s", f)
	}
}
