package tui

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

func TestBufferCoalescesProgressAndKeepsOrder(t *testing.T) {
	b := newBuffer()
	b.InstanceStarted("a", t0)
	for p := 0; p <= 100; p++ {
		b.JobProgress("a", engine.JobInfo{Progress: p})
		b.JobProgress("b", engine.JobInfo{Progress: 100 - p})
	}
	b.InstanceFinished("b", engine.Result{Outcome: engine.Succeeded})
	b.Aborting("x")
	b.RequestCount(7)
	b.RequestCount(5) // an older total arriving late must not win
	got := b.drain()
	if len(got.progress) != 2 || got.progress["a"].Progress != 100 || got.progress["b"].Progress != 0 {
		t.Fatalf("progress not coalesced to the latest: %+v", got.progress)
	}
	kinds := []eventKind{}
	for _, e := range got.events {
		kinds = append(kinds, e.kind)
	}
	if fmt.Sprint(kinds) != fmt.Sprint([]eventKind{evInstanceStarted, evInstanceFinished, evAborting}) {
		t.Fatalf("events out of order: %v", kinds)
	}
	if !got.hasReq || got.requests != 7 {
		t.Fatalf("requests = %d, want 7", got.requests)
	}
	b.recycle(got.progress)
	if again := b.drain(); len(again.events) != 0 || len(again.progress) != 0 {
		t.Fatalf("second drain not empty: %+v", again)
	}
}

func TestBufferCopiesCallerData(t *testing.T) {
	b := newBuffer()
	info := fixture(2)
	b.RunStarted(info)
	job := &engine.JobInfo{Progress: 10}
	b.InstanceFinished("x", engine.Result{Job: job})
	info.Instances[0].Step = "mutated"
	job.Progress = 99
	got := b.drain()
	if got.events[0].run.Instances[0].Step != "update" || got.events[1].result.Job.Progress != 10 {
		t.Fatal("buffer kept references to the engine's data")
	}
}

func TestLateProgressDoesNotReviveFinished(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.start(3)
	id := installID(1)
	h.ui.InstanceStarted(id, t0)
	h.ui.JobProgress(id, engine.JobInfo{Progress: 50, StateName: "Running"})
	h.ui.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0.Add(time.Minute)})
	h.flush()
	h.ui.JobProgress(id, engine.JobInfo{Progress: 60, StateName: "Running"})
	h.flush()
	in := &h.m.st.insts[h.m.st.byID[id]]
	if in.status != stDone || h.m.st.cnt.running != 0 || h.m.st.cnt.succeeded != 1 {
		t.Fatalf("status %v, counts %+v", in.status, h.m.st.cnt)
	}
}

func TestOrderFailedRunningWaitingDone(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(8)
	h.fail(4, "boom")
	h.tick(time.Second)
	var groups []group
	var names []string
	for _, ri := range h.m.st.order {
		r := &h.m.st.rows[ri]
		groups = append(groups, r.group)
		names = append(names, machineName(r.machine))
	}
	for i := 1; i < len(groups); i++ {
		if groups[i] < groups[i-1] {
			t.Fatalf("groups not sorted: %v (%v)", groups, names)
		}
	}
	want := "[eu-04 eu-02 us-03 eu-05 us-06 eu-07 eu-08 buildbox-1 (image) eu-01]"
	if fmt.Sprint(names) != want {
		t.Fatalf("order = %v, want %v", names, want)
	}
}

func TestHeaderCountsAndWaves(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(12)
	c := h.m.st.cnt
	if c.succeeded != 6 || c.running != 3 || c.waiting != 8 || c.total() != 17 {
		t.Fatalf("counts %+v", c)
	}
	if len(h.m.st.waves) != 1 || h.m.st.waves[0].wave != 1 {
		t.Fatalf("waves %+v", h.m.st.waves)
	}
	if r := h.m.st.reqRate; r != 12 {
		t.Fatalf("request rate %v, want 12/s", r)
	}
	if !h.m.st.etaKnown || h.m.st.eta <= 0 {
		t.Fatalf("no estimate: %v %v", h.m.st.etaKnown, h.m.st.eta)
	}
}

func TestRequestRateSpansWindow(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.start(1)
	for i := 1; i <= 100; i++ {
		h.ui.RequestCount(int64(i * 10))
		h.tick(100 * time.Millisecond) // 100 requests per second
	}
	if r := h.m.st.reqRate; r < 99 || r > 101 {
		t.Fatalf("rate = %v, want 100", r)
	}
	h.tick(10 * time.Second) // quiet: rate decays to zero
	h.tick(100 * time.Millisecond)
	if r := h.m.st.reqRate; r != 0 {
		t.Fatalf("rate after quiet = %v, want 0", r)
	}
}

func TestKeysNavigateAndScroll(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(100)
	n := len(h.m.list.vis)
	steps := []struct {
		keys   []string
		cursor int
	}{
		{[]string{"down", "down"}, 2},
		{[]string{"up"}, 1},
		{[]string{"up", "up", "up"}, 0},
		{[]string{"end"}, n - 1},
		{[]string{"down"}, n - 1},
		{[]string{"home"}, 0},
		{[]string{"pgdown"}, -1},
		{[]string{"pgup"}, 0},
	}
	for _, s := range steps {
		h.press(s.keys...)
		if s.cursor >= 0 && h.m.list.cursor != s.cursor {
			t.Fatalf("after %v cursor = %d, want %d", s.keys, h.m.list.cursor, s.cursor)
		}
		if s.cursor < 0 && h.m.list.cursor <= 1 {
			t.Fatalf("pgdown moved only to %d", h.m.list.cursor)
		}
		h.checkFrame()
		if !strings.Contains(h.frame(), "› ") {
			t.Fatalf("after %v the cursor row is not on screen:\n%s", s.keys, h.frame())
		}
	}
}

func TestCtrlCConfirmsThenCancelsThenForceQuits(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(4)
	if cmd := h.press("ctrl+c"); isQuit(cmd) || !h.m.confirm.open || h.cancels != 0 {
		t.Fatal("ctrl+c must only open the confirmation")
	}
	h.press("n")
	if h.m.confirm.open || h.cancels != 0 {
		t.Fatal("n must close the dialog without cancelling")
	}
	h.press("q")
	if cmd := h.press("ctrl+c"); isQuit(cmd) || h.cancels != 1 || !h.m.cancelling {
		t.Fatalf("confirming must call Cancel once and keep the program (cancels=%d)", h.cancels)
	}
	h.press("q", "y")
	if h.cancels != 1 || h.m.confirm.open {
		t.Fatal("q while cancelling must not ask again")
	}
	// Events keep arriving and are shown until RunFinished.
	h.ui.InstanceFinished(installID(2), engine.Result{Outcome: engine.Cancelled})
	if cmd := h.tick(time.Second); isQuit(cmd) {
		t.Fatal("program quit before RunFinished")
	}
	h.ui.RunFinished(engine.Summary{Plan: "game-b-1.4.2", Verdict: engine.VerdictInterrupted})
	if cmd := h.tick(time.Second); !isQuit(cmd) {
		t.Fatal("RunFinished must end the program")
	}
	if !h.m.userQuit || h.m.forceQuit {
		t.Fatalf("userQuit=%v forceQuit=%v", h.m.userQuit, h.m.forceQuit)
	}
	if !strings.Contains(h.frame(), "INTERRUPTED") {
		t.Fatalf("final frame has no banner:\n%s", h.frame())
	}

	h2 := newHarness(t, 80, 24, false)
	h2.running(4)
	h2.press("ctrl+c", "y")
	if cmd := h2.press("ctrl+c"); !isQuit(cmd) || !h2.m.forceQuit {
		t.Fatal("a second ctrl+c while cancelling must leave at once")
	}
}

func TestFilterInputTakesKeys(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(12)
	h.press("/")
	h.typeText("eq") // q and e are text here, not commands
	if h.m.confirm.open || h.m.filter.value() != "eq" {
		t.Fatalf("filter value %q, confirm %v", h.m.filter.value(), h.m.confirm.open)
	}
	h.press("backspace", "backspace")
	h.typeText("install")
	if len(h.m.list.vis) != 12 {
		t.Fatalf("step filter matched %d rows, want the 12 fleet rows", len(h.m.list.vis))
	}
	h.press("esc")
	if h.m.filter.value() != "" || len(h.m.list.vis) != 14 {
		t.Fatal("esc must clear the filter")
	}
	h.press("/")
	h.press("ctrl+c")
	if !h.m.confirm.open {
		t.Fatal("ctrl+c in the filter must still ask to cancel")
	}
}

func TestFilterFollowsRowChanges(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.start(3)
	h.press("/")
	h.typeText("diff")
	h.press("enter")
	if len(h.m.list.vis) != 0 {
		t.Fatalf("nothing is at diff yet, got %d rows", len(h.m.list.vis))
	}
	h.succeed("update@buildbox-1/game-b", 0, time.Minute, nil, "")
	h.ui.InstanceStarted("diff@buildbox-1/game-b", t0.Add(time.Minute))
	h.tick(time.Second)
	if len(h.m.list.vis) != 1 {
		t.Fatalf("the build machine moved to diff but the filter shows %d rows", len(h.m.list.vis))
	}
}

func TestDetailFollowsTargetAcrossReorder(t *testing.T) {
	h := newHarness(t, 100, 30, false)
	h.running(6)
	h.press("down", "down", "enter") // eu-04, running
	if !strings.Contains(h.frame(), "machine eu-04") {
		t.Fatalf("detail does not show eu-04:\n%s", h.frame())
	}
	h.fail(2, "boom") // eu-02 jumps to the top
	h.tick(time.Second)
	if !strings.Contains(h.frame(), "machine eu-04") {
		t.Fatalf("detail lost its target after a reorder:\n%s", h.frame())
	}
	h.press("esc")
	if h.m.inDetail {
		t.Fatal("esc must close the detail")
	}
}

func TestFramesFitEverySize(t *testing.T) {
	sizes := [][2]int{{80, 24}, {120, 40}, {200, 60}, {40, 12}, {20, 6}, {1, 1}}
	views := [][]string{nil, {"enter"}, {"?"}, {"q"}, {"/"}, {"f"}}
	for _, sz := range sizes {
		for _, keys := range views {
			h := newHarness(t, sz[0], sz[1], true)
			h.running(30)
			h.fail(5, strings.Repeat("very long error ", 30))
			h.ui.Aborting(strings.Repeat("reason ", 40))
			h.tick(time.Second)
			h.press(keys...)
			h.checkFrame()
		}
	}
}

func TestResizeKeepsCursorVisible(t *testing.T) {
	h := newHarness(t, 120, 40, false)
	h.running(100)
	h.press("end")
	h.m.Update(teaWindowSize(80, 12))
	h.checkFrame()
	if !strings.Contains(h.frame(), "› ") {
		t.Fatalf("cursor lost after resize:\n%s", h.frame())
	}
}

func TestConcurrentObserversWhileDraining(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.start(200)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 1; i <= 200; i++ {
				if i%8 != g {
					continue
				}
				id := installID(i)
				h.ui.InstanceStarted(id, t0)
				for p := 0; p <= 100; p += 10 {
					h.ui.JobProgress(id, engine.JobInfo{Progress: p})
					h.ui.RequestCount(int64(p))
				}
				h.ui.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0.Add(time.Minute)})
			}
		}(g)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		h.flush()
		_ = h.m.Render()
	}
	h.flush()
	if c := h.m.st.cnt; c.succeeded != 200 || c.running != 0 {
		t.Fatalf("counts after the burst: %+v", c)
	}
}

func TestRunStartedBeforeProgramDrains(t *testing.T) {
	// Events sent before the first tick (or a RunFinished in the same batch
	// as RunStarted) are all applied, in order.
	h := newHarness(t, 80, 24, false)
	info := fixture(1)
	h.ui.RunStarted(info)
	for _, in := range info.Instances {
		h.ui.InstanceFinished(in.ID, engine.Result{Outcome: engine.Succeeded})
	}
	h.ui.RunFinished(engine.Summary{Plan: info.Plan})
	if cmd := h.flush(); !isQuit(cmd) {
		t.Fatal("a batch with RunFinished must end the program")
	}
	if h.m.st.cnt.succeeded != len(info.Instances) {
		t.Fatalf("counts %+v", h.m.st.cnt)
	}
	if _, ok := h.ui.Summary(); !ok {
		t.Fatal("summary not kept")
	}
}

func TestOnFailureInstancesStandBy(t *testing.T) {
	// An on_failure instance runs only if something fails: it must not
	// count as waiting, nor keep its row from finishing, until it starts.
	h := newHarness(t, 80, 24, false)
	info := fixture(2)
	info.Instances = append(info.Instances, engine.InstanceInfo{
		ID: "reject@buildbox-1/game-b", Step: "reject", Type: "reject", Machine: "buildbox-1", Image: "game-b", Wave: -1, OnFailure: true,
	})
	h.ui.RunStarted(info)
	h.flush()
	if got, want := h.m.st.cnt.waiting, len(info.Instances)-1; got != want {
		t.Fatalf("waiting = %d, want %d (the on_failure instance is not waiting)", got, want)
	}
	for _, id := range []string{"update@buildbox-1/game-b", "diff@buildbox-1/game-b", "small-change@buildbox-1/game-b"} {
		h.ui.InstanceStarted(id, t0)
		h.ui.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0})
	}
	h.flush()
	r := &h.m.st.rows[h.m.st.insts[h.m.st.byID["update@buildbox-1/game-b"]].row]
	if r.group != gDone || r.total != 3 {
		t.Fatalf("build row group %v total %d, want done with 3 steps", r.group, r.total)
	}
	h.ui.InstanceStarted("reject@buildbox-1/game-b", t0)
	h.flush()
	if h.m.st.cnt.running != 1 || r.total != 4 {
		t.Fatalf("after the reject started: running %d, total %d", h.m.st.cnt.running, r.total)
	}
}
