package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/rollout/rollout/engine"
)

// endedSummary is how running(12) ends once machine 3 failed: the rest
// succeeded or were skipped.
func endedSummary() engine.Summary {
	return engine.Summary{Plan: "game-b-1.4.2", Verdict: engine.VerdictFailed, Started: t0, Finished: t0.Add(14 * time.Minute),
		Counts:   map[engine.Outcome]int{engine.Succeeded: 15, engine.Failed: 1},
		Failures: []engine.Failure{{Instance: installID(3), Machine: fleetName(3), Image: "game-b", Err: errors.New(failMsg)}}}
}

// finishRun plays the rest of running(12) with machine 3 failing, to
// RunFinished.
func (h *harness) finishRun() tea.Cmd {
	h.fail(3, failMsg)
	for i := 2; i <= 12; i++ {
		if i != 3 {
			h.ui.InstanceStarted(installID(i), h.clk.t)
			h.ui.InstanceFinished(installID(i), engine.Result{Outcome: engine.Succeeded, Started: h.clk.t, Finished: h.clk.t.Add(time.Minute)})
		}
	}
	h.ui.RunFinished(endedSummary())
	return h.tick(time.Second)
}

// TestStaysOpenAfterTheEnd: with StayOpen the finished view stays, says
// how to leave, still opens a failed target's detail, and leaves at q
// without asking; without it (an unattended run) it leaves at the end.
func TestStaysOpenAfterTheEnd(t *testing.T) {
	tests := []struct {
		name     string
		stayOpen bool
		watch    bool
	}{
		{"unattended", false, false},
		{"interactive", true, false},
		{"watching", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newControlHarness(t, 100, 24, tt.watch)
			h.m.stayOpen = tt.stayOpen
			h.running(12)
			cmd := h.finishRun()
			if !tt.stayOpen {
				if !isQuit(cmd) {
					t.Fatal("an unattended view did not leave at the end of the run")
				}
				return
			}
			if isQuit(cmd) {
				t.Fatal("the view left at the end of the run")
			}
			f := h.frame()
			for _, want := range []string{"finished — press q to leave", "q leave"} {
				if !strings.Contains(f, want) {
					t.Fatalf("finished view does not say %q:\n%s", want, f)
				}
			}
			// Ticks go on: the view stays.
			if isQuit(h.tick(time.Minute)) {
				t.Fatal("the view left on a tick after the end")
			}
			// The failed target is first; its detail opens.
			h.press("enter")
			if f := h.frame(); !strings.Contains(f, "machine 812346 unreachable") {
				t.Fatalf("detail of the failed target:\n%s", f)
			}
			h.press("esc")
			// a and x do nothing any more; q leaves at once.
			h.press("x")
			if h.m.confirm.open {
				t.Fatal("x opened a dialog after the end")
			}
			if !isQuit(h.press("q")) {
				t.Fatal("q did not leave the finished view")
			}
			if h.cancels != 0 || h.m.userQuit || h.m.forceQuit || h.m.detached {
				t.Fatalf("leaving the finished view: cancels=%d userQuit=%v forceQuit=%v detached=%v",
					h.cancels, h.m.userQuit, h.m.forceQuit, h.m.detached)
			}
		})
	}
}

// TestStayOpenClosesTheDialogs: a dialog open when the run ends asks about
// a run that is over; it closes, and ctrl+c leaves.
func TestStayOpenClosesTheDialogs(t *testing.T) {
	h := newHarness(t, 100, 24, false)
	h.m.stayOpen = true
	h.running(12)
	h.press("q")
	if !h.m.confirm.open {
		t.Fatal("q did not ask")
	}
	h.finishRun()
	if h.m.confirm.open {
		t.Fatal("the cancel dialog stayed open after the end")
	}
	if !isQuit(h.press("ctrl+c")) || h.cancels != 0 {
		t.Fatalf("ctrl+c after the end: quit=%v cancels=%d", isQuit(h.lastCmd), h.cancels)
	}
}

// TestCancelledRunLeavesAtItsEnd: a person who confirmed a cancel asked to
// leave: the view goes once the run stopped, as before.
func TestCancelledRunLeavesAtItsEnd(t *testing.T) {
	h := newHarness(t, 100, 24, false)
	h.m.stayOpen = true
	h.running(12)
	h.press("q", "y")
	if !isQuit(h.finishRun()) || !h.m.userQuit {
		t.Fatal("a cancelled run's view did not leave at its end")
	}
}

// TestRunStaysOpenUntilQ drives UI.Run with a terminal of pipes: the run
// ends, the view says so and stays; q then makes Run return nil.
func TestRunStaysOpenUntilQ(t *testing.T) {
	inR, inW := io.Pipe()
	defer inW.Close()
	out := &syncBuf{}
	u := New(Options{In: inR, Out: out, Width: 100, Height: 24, NoColor: true, Tick: 10 * time.Millisecond, StayOpen: true})
	info := fixture(2)
	info.Started = time.Now()
	u.RunStarted(info)
	errc := make(chan error, 1)
	go func() { errc <- u.Run(context.Background()) }()
	waitOutput(t, out, "buildbox-1")
	for _, in := range info.Instances {
		now := time.Now()
		u.InstanceStarted(in.ID, now)
		u.InstanceFinished(in.ID, engine.Result{Outcome: engine.Succeeded, Started: now, Finished: now})
	}
	u.RunFinished(engine.Summary{Plan: info.Plan, Started: info.Started, Finished: time.Now(),
		Counts: map[engine.Outcome]int{engine.Succeeded: len(info.Instances)}})
	waitOutput(t, out, "press q to leave")
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v before q", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := inW.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after q")
	}
	if _, done := u.Summary(); !done {
		t.Fatal("no summary after the end")
	}
}

// TestEndToEndStaysOpenUntilQ: the real program (teatest) with a synthetic
// engine that ends by itself keeps running after the end until q.
func TestEndToEndStaysOpenUntilQ(t *testing.T) {
	u := New(Options{NoColor: true, Tick: 10 * time.Millisecond, StayOpen: true})
	tm := teatest.NewTestModel(t, u.Model(), teatest.WithInitialTermSize(100, 30),
		teatest.WithProgramOptions(tea.WithoutSignalHandler()))
	ctx, cancel := context.WithCancel(context.Background())
	go fakeEngine(ctx, u)
	teatest.WaitFor(t, tm.Output(), contains("Running"), teatest.WithDuration(10*time.Second))
	// The run stops (as an interrupt from elsewhere would) and ends.
	cancel()
	teatest.WaitFor(t, tm.Output(), contains("press q to leave"), teatest.WithDuration(10*time.Second))
	tm.Send(keyMsg("q"))
	fm, ok := tm.FinalModel(t, teatest.WithFinalTimeout(20*time.Second)).(*Model)
	if !ok {
		t.Fatal("final model is not *Model")
	}
	if !fm.ended || fm.userQuit || fm.forceQuit {
		t.Fatalf("ended=%v userQuit=%v forceQuit=%v", fm.ended, fm.userQuit, fm.forceQuit)
	}
}

// TestRunWithoutInput: a view whose stdin is not a terminal (/dev/null,
// as under nohup or cron) reads no keys and shows the run to its end.
// Reading /dev/null as the terminal failed at once ("could not create
// cancelable reader"), and the run was stopped as if interrupted.
func TestRunWithoutInput(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	out := &syncBuf{}
	u := New(Options{In: null, NoInput: true, Out: out, Width: 100, Height: 24, NoColor: true, Tick: 10 * time.Millisecond})
	info := fixture(1)
	info.Started = time.Now()
	u.RunStarted(info)
	errc := make(chan error, 1)
	go func() { errc <- u.Run(context.Background()) }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "buildbox-1"); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-errc:
			t.Fatalf("Run = %v before the run ended", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the view never showed the run")
		}
	}
	u.RunFinished(engine.Summary{Plan: info.Plan, Started: info.Started, Finished: time.Now()})
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return at the end of the run")
	}
}
