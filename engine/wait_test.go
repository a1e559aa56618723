package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// waitLog records waits and the order of what started.
type waitLog struct {
	engine.NopObserver
	mu      sync.Mutex
	events  []string
	started chan engine.WaitInfo
}

func newWaitLog() *waitLog { return &waitLog{started: make(chan engine.WaitInfo, 100)} }

func (l *waitLog) add(s string) { l.mu.Lock(); l.events = append(l.events, s); l.mu.Unlock() }
func (l *waitLog) WaitStarted(w engine.WaitInfo) {
	l.add("wait " + w.ID)
	l.started <- w
}
func (l *waitLog) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	l.add("ended " + w.ID + " " + string(d.Kind) + " " + d.By)
}
func (l *waitLog) InstanceStarted(id string, _ time.Time) { l.add("start " + id) }
func (l *waitLog) WaveStarted(step, image string, wave, waves int, _ []string) {
	l.add("wave " + step + " " + image + " " + string(rune('1'+wave)))
}
func (l *waitLog) Aborting(r string) { l.add("aborting " + r) }

func (l *waitLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *waitLog) index(prefix string) int {
	for i, e := range l.snapshot() {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

// approvePlan is a fleet plan with an approve step, named gate, between
// the diff and the version, as the plan loads it (once per image).
func approvePlan(t *testing.T, timeout time.Duration, onTimeout plan.OnTimeout) *plan.Plan {
	src := simtest.FleetPlan("approve", []string{"game"}, 4, 2, "    waves: [1, \"100%\"]\n", "", "on_failure:\n  - type: reject\n")
	src = strings.Replace(src, "  - name: version\n    type: version\n    needs: [diff]\n", fmt.Sprintf(`  - name: gate
    type: approve
    needs: [diff]
    message: "Ship it?"
    timeout: %s
    on_timeout: %s
  - name: version
    type: version
    needs: [gate]
`, timeout, onTimeout), 1)
	p := simtest.Plan(t, src)
	if s := p.Steps[2]; s.Type != plan.TypeApprove || s.Timeout != timeout || s.OnTimeout != onTimeout {
		t.Fatalf("the approve step loaded as %+v", s)
	}
	return p
}

// pausePlan is a fleet plan whose install step has waves [1, 2, 100%] and
// pause_after pause (approve, a bake time, or null for the zero Pause).
func pausePlan(t *testing.T, pause ...plan.Pause) *plan.Plan {
	install := "    waves: [1, 2, \"100%\"]\n"
	if len(pause) > 0 {
		var entries []string
		for _, x := range pause {
			switch {
			case x.Approve:
				entries = append(entries, "approve")
			case x.Bake > 0:
				entries = append(entries, x.Bake.String())
			default:
				entries = append(entries, "null")
			}
		}
		install += "    pause_after: [" + strings.Join(entries, ", ") + "]\n"
	}
	p := simtest.Plan(t, simtest.FleetPlan("pause", []string{"game"}, 4, 4, install, "", ""))
	for _, s := range p.Steps {
		if s.Name == "install" && !slices.Equal(s.PauseAfter, pause) {
			t.Fatalf("pause_after loaded as %v, want %v", s.PauseAfter, pause)
		}
	}
	return p
}

// journal opens a real journal for p in a temporary state directory, closed
// when the test ends, with the engine's recorder of it.
func journal(t *testing.T, p *plan.Plan) (*state.Journal, *state.Recorder) {
	t.Helper()
	sj, err := state.Open(t.TempDir(), p.Name, p.Hash)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sj.Close() })
	return sj, state.NewRecorder(sj)
}

type run struct {
	sum  *engine.Summary
	err  error
	done chan struct{}
}

func start(p *plan.Plan, opt engine.Options) *run {
	r := &run{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.sum, r.err = engine.New(p, opt).Run(context.Background())
	}()
	return r
}

func approve(ctl chan engine.Request, step string) error {
	reply := make(chan error, 1)
	ctl <- engine.Request{Step: step, By: "alice@host", Reason: "looks good", Reply: func(err error) { reply <- err }}
	return <-reply
}

// TestApprovalHoldsOnlyWhatDependsOnIt: an approve instance waits without a
// slot; nothing that needs it starts until it is approved, and then the
// rollout finishes.
func TestApprovalHoldsOnlyWhatDependsOnIt(t *testing.T) {
	p := approvePlan(t, time.Hour, plan.OnTimeoutAbort)
	x := newScripted()
	log := newWaitLog()
	ctl := make(chan engine.Request)
	r := start(p, engine.Options{Executor: x, Observer: log, Control: ctl})
	go x.drain(r.done)
	w := <-log.started
	if w.Step != "gate" {
		t.Fatalf("waiting on %q", w.ID)
	}
	if w.Message != "Ship it?" || w.Kind != engine.WaitApproval || w.Until.IsZero() {
		t.Fatalf("wait %+v", w)
	}
	time.Sleep(50 * time.Millisecond)
	if i := log.index("start version@"); i >= 0 {
		t.Fatalf("version started before the approval: %v", log.snapshot())
	}
	x.mu.Lock()
	running := x.running
	x.mu.Unlock()
	if running != 0 {
		t.Fatalf("%d instances hold slots while only the approval waits", running)
	}
	// An approval for a step that does not exist is a clear error.
	if err := approve(ctl, "nosuch"); err == nil || !strings.Contains(err.Error(), `no step "nosuch"`) {
		t.Fatalf("approving an unknown step: %v", err)
	}
	if err := approve(ctl, ""); err != nil {
		t.Fatal(err)
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("verdict %s", r.sum.Verdict)
	}
	if len(r.sum.Decisions) != 1 || r.sum.Decisions[0].Decision.By != "alice@host" {
		t.Fatalf("decisions %+v", r.sum.Decisions)
	}
	ended, version := log.index("ended "), log.index("start version@")
	if ended < 0 || version < ended {
		t.Fatalf("version started before the approval ended: %v", log.snapshot())
	}
}

// TestApprovalTimeout: an unanswered approval ends with its on_timeout:
// abort fails it (on_failure runs, the rollout aborts), continue goes on.
func TestApprovalTimeout(t *testing.T) {
	t.Run("abort", func(t *testing.T) {
		p := approvePlan(t, 100*time.Millisecond, plan.OnTimeoutAbort)
		x := newScripted()
		log := newWaitLog()
		r := start(p, engine.Options{Executor: x, Observer: log})
		go x.drain(r.done)
		<-r.done
		if r.sum.Verdict != engine.VerdictAborted {
			t.Fatalf("verdict %s, want aborted", r.sum.Verdict)
		}
		if log.index("start version@") >= 0 {
			t.Fatal("version started after a timed-out approval")
		}
		if log.index("start reject@game") < 0 {
			t.Fatalf("on_failure did not run for the image: %v", log.snapshot())
		}
	})
	t.Run("continue", func(t *testing.T) {
		p := approvePlan(t, 100*time.Millisecond, plan.OnTimeoutContinue)
		x := newScripted()
		log := newWaitLog()
		r := start(p, engine.Options{Executor: x, Observer: log})
		go x.drain(r.done)
		<-r.done
		if !r.sum.Verdict.Success() || log.index("start version@") < 0 {
			t.Fatalf("verdict %s: %v", r.sum.Verdict, log.snapshot())
		}
	})
}

// TestAbortFromOutside: an abort while an approval waits fails the waiting
// instance (on_failure runs once for its image), starts nothing new and
// ends the run aborted.
func TestAbortFromOutside(t *testing.T) {
	p := approvePlan(t, time.Hour, plan.OnTimeoutAbort)
	x := newScripted()
	log := newWaitLog()
	ctl := make(chan engine.Request)
	r := start(p, engine.Options{Executor: x, Observer: log, Control: ctl})
	go x.drain(r.done)
	<-log.started
	reply := make(chan error, 1)
	ctl <- engine.Request{Abort: true, By: "bob@laptop", Reason: "bad numbers", Reply: func(err error) { reply <- err }}
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	<-r.done
	if r.sum.Verdict != engine.VerdictAborted || !strings.Contains(r.sum.AbortReason, "bob@laptop") {
		t.Fatalf("verdict %s (%s)", r.sum.Verdict, r.sum.AbortReason)
	}
	var ae *engine.AbortError
	if len(r.sum.Failures) != 1 || !errors.As(r.sum.Failures[0].Err, &ae) || ae.By != "bob@laptop" {
		t.Fatalf("failures %+v", r.sum.Failures)
	}
	n := 0
	for _, e := range log.snapshot() {
		if strings.HasPrefix(e, "start reject@") {
			n++
		}
		if strings.HasPrefix(e, "start version@") || strings.HasPrefix(e, "start install@") {
			t.Fatalf("%s after the abort", e)
		}
	}
	if n != 1 {
		t.Fatalf("on_failure ran %d times, want once: %v", n, log.snapshot())
	}
}

// TestPauseBakeHoldsTheNextWave: a bake time between waves holds the next
// wave at least that long; the slots are free meanwhile.
func TestPauseBakeHoldsTheNextWave(t *testing.T) {
	const bake = 300 * time.Millisecond
	p := pausePlan(t, plan.Pause{Bake: bake})
	x := newScripted()
	log := newWaitLog()
	r := start(p, engine.Options{Executor: x, Observer: log})
	go x.drain(r.done)
	var w engine.WaitInfo
	select {
	case w = <-log.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no pause began")
	}
	began := time.Now()
	if w.Kind != engine.WaitBake || w.Wave != 0 || w.Until.Sub(w.Since) != bake {
		t.Fatalf("pause %+v", w)
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("verdict %s", r.sum.Verdict)
	}
	ev := log.snapshot()
	ended, wave2 := log.index("ended install@game after wave 1"), log.index("wave install game 2")
	if ended < 0 || wave2 < ended {
		t.Fatalf("wave 2 started before the bake ended: %v", ev)
	}
	// Measured from when the test saw the pause begin, a lower bound that
	// holds however slow the machine is.
	if el := time.Since(began); el < bake-50*time.Millisecond {
		t.Fatalf("the run ended %s after the pause began, before the bake of %s", el, bake)
	}
}

// TestPauseApprovalAndResume: a pause for an approval holds the next wave
// until approved; the decision is journaled, and a resumed run does not ask
// again.
func TestPauseApprovalAndResume(t *testing.T) {
	p := pausePlan(t, plan.Pause{Approve: true}, plan.Pause{Approve: true})
	sj, rec := journal(t, p)
	x := newScripted()
	log := newWaitLog()
	ctl := make(chan engine.Request)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var s1 *engine.Summary
	go func() {
		defer close(done)
		s1, _ = engine.New(p, engine.Options{Executor: x, Observer: log, Control: ctl, Journal: rec}).Run(ctx)
	}()
	go x.drain(done)
	<-log.started
	if err := approve(ctl, "install"); err != nil {
		t.Fatal(err)
	}
	// The second pause: interrupt the run while it waits.
	<-log.started
	cancel()
	<-done
	if s1.Verdict != engine.VerdictInterrupted {
		t.Fatalf("first run: %s", s1.Verdict)
	}
	// The resumed run restores the first approval and waits only for the
	// second.
	x2 := newScripted()
	log2 := newWaitLog()
	ctl2 := make(chan engine.Request)
	r := start(p, engine.Options{Executor: x2, Observer: log2, Control: ctl2, Journal: rec, Resumed: true})
	go x2.drain(r.done)
	w := <-log2.started
	if w.ID != "install@game after wave 1" {
		t.Fatalf("first wait of the resumed run: %s", w.ID)
	}
	// It ends at once from the journal: the next one is the real wait.
	w = <-log2.started
	if w.ID != "install@game after wave 2" {
		t.Fatalf("second wait of the resumed run: %s", w.ID)
	}
	if err := approve(ctl2, "install"); err != nil {
		t.Fatal(err)
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("resumed run: %s %+v", r.sum.Verdict, r.sum.Failures)
	}
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}
	sum := sj.Summary()
	_ = sum
	replay, err := state.Replay(sj.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(replay.Decisions) != 2 || replay.Decisions[0].By != "alice@host" {
		t.Fatalf("journaled decisions %+v", replay.Decisions)
	}
}

// TestAutoApprove: --auto-approve approves every approval as it comes and
// records it as such; bake times still pass.
func TestAutoApprove(t *testing.T) {
	p := approvePlan(t, time.Hour, plan.OnTimeoutAbort)
	x := newScripted()
	log := newWaitLog()
	r := start(p, engine.Options{Executor: x, Observer: log, AutoApprove: true})
	go x.drain(r.done)
	<-r.done
	if !r.sum.Verdict.Success() || len(r.sum.Decisions) != 1 || r.sum.Decisions[0].Decision.Kind != engine.AutoApproved {
		t.Fatalf("verdict %s, decisions %+v", r.sum.Verdict, r.sum.Decisions)
	}
}

// TestApproveWhenNothingWaits: an approval while nothing waits is an error
// that says what the run is doing.
func TestApproveWhenNothingWaits(t *testing.T) {
	p := pausePlan(t)
	x := newScripted()
	ctl := make(chan engine.Request)
	r := start(p, engine.Options{Executor: x, Control: ctl})
	x.waitStarted(t, 1)
	err := approve(ctl, "")
	if err == nil || !strings.Contains(err.Error(), "nothing is waiting") {
		t.Fatalf("approve while nothing waits: %v", err)
	}
	x.drain(r.done)
}

// interruptedInAPause runs p, journaled by rec, until its first pause
// begins, lets linger pass, then interrupts it; it returns the pause.
func interruptedInAPause(t *testing.T, p *plan.Plan, rec *state.Recorder, linger time.Duration) engine.WaitInfo {
	t.Helper()
	x := newScripted()
	log := newWaitLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = engine.New(p, engine.Options{Executor: x, Observer: log, Journal: rec}).Run(ctx)
	}()
	go x.drain(done)
	var w engine.WaitInfo
	select {
	case w = <-log.started:
	case <-done:
		t.Fatalf("the first run ended without pausing: %v", log.snapshot())
	}
	time.Sleep(linger)
	cancel()
	<-done
	return w
}

// resumedToAPause resumes p from rec, controlled through ctl, and returns
// the run, its log and the first wait it begins.
func resumedToAPause(t *testing.T, p *plan.Plan, rec *state.Recorder, ctl chan engine.Request) (*run, *waitLog, engine.WaitInfo) {
	t.Helper()
	x := newScripted()
	log := newWaitLog()
	r := start(p, engine.Options{Executor: x, Observer: log, Control: ctl, Journal: rec, Resumed: true})
	go x.drain(r.done)
	select {
	case w := <-log.started:
		return r, log, w
	case <-r.done:
		t.Fatalf("the resumed run ended without pausing: %v", log.snapshot())
	case <-time.After(10 * time.Second):
		t.Fatalf("the resumed run did not pause: %v", log.snapshot())
	}
	panic("unreachable")
}

// TestResumeHoldsThePausedWave: a run resumed after an interrupt during a
// pause (its first wave ended in the earlier run) holds the next wave for
// the pause again: nothing of wave 2 starts before the approval.
func TestResumeHoldsThePausedWave(t *testing.T) {
	p := pausePlan(t, plan.Pause{Approve: true})
	_, rec := journal(t, p)
	interruptedInAPause(t, p, rec, 0)
	ctl := make(chan engine.Request)
	r, log2, w := resumedToAPause(t, p, rec, ctl)
	if w.ID != "install@game after wave 1" {
		t.Fatalf("waiting on %q", w.ID)
	}
	time.Sleep(50 * time.Millisecond)
	for _, ev := range log2.snapshot() {
		if strings.HasPrefix(ev, "start install@") || strings.HasPrefix(ev, "wave install game 2") {
			t.Fatalf("%q before the approval: %v", ev, log2.snapshot())
		}
	}
	if err := approve(ctl, "install"); err != nil {
		t.Fatal(err)
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("verdict %s", r.sum.Verdict)
	}
}

// TestResumeKeepsTheBakesEnd: a run interrupted during a bake and resumed
// keeps the bake's start and its end (the engine's timer is set to that
// end): the resume neither restarts the bake nor extends it.
func TestResumeKeepsTheBakesEnd(t *testing.T) {
	const bake = 1500 * time.Millisecond
	p := pausePlan(t, plan.Pause{Bake: bake})
	_, rec := journal(t, p)
	first := interruptedInAPause(t, p, rec, bake/3)
	r, _, w := resumedToAPause(t, p, rec, nil)
	// The journal keeps times to the millisecond.
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() <= time.Millisecond }
	if w.ID != first.ID || !near(w.Since, first.Since) || !near(w.Until, first.Until) {
		t.Fatalf("resumed pause %s from %s until %s; the first run's ran from %s until %s",
			w.ID, w.Since.Format(time.StampMilli), w.Until.Format(time.StampMilli), first.Since.Format(time.StampMilli), first.Until.Format(time.StampMilli))
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("verdict %s", r.sum.Verdict)
	}
}

// TestPauseBeforeAnEmptyWave: a pause entry applies between its wave and
// the next wave that has instances. With 4 machines, waves [1, "25%",
// "100%"] are 1, 0 and 3 machines: pause_after: [approve] holds the third
// wave (the second is empty) until approved.
func TestPauseBeforeAnEmptyWave(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("pause-empty", []string{"game"}, 4, 4, "    waves: [1, \"25%\", \"100%\"]\n    pause_after: [approve]\n", "", ""))
	x := newScripted()
	log := newWaitLog()
	ctl := make(chan engine.Request)
	r := start(p, engine.Options{Executor: x, Observer: log, Control: ctl})
	go x.drain(r.done)
	select {
	case w := <-log.started:
		if w.ID != "install@game after wave 1" {
			t.Fatalf("waiting for %s", w.ID)
		}
	case <-r.done:
		t.Fatalf("the run ended without pausing: %v", log.snapshot())
	}
	if i := log.index("wave install game 3"); i >= 0 {
		t.Fatalf("wave 3 started during the pause: %v", log.snapshot())
	}
	if err := approve(ctl, "install"); err != nil {
		t.Fatal(err)
	}
	<-r.done
	if !r.sum.Verdict.Success() {
		t.Fatalf("verdict %s", r.sum.Verdict)
	}
	ended, wave3 := log.index("ended install@game after wave 1"), log.index("wave install game 3")
	if ended < 0 || wave3 < ended {
		t.Fatalf("wave 3 started before the approval: %v", log.snapshot())
	}
}

// TestTimeScaleShortensBakes: against a simulator N times faster than real
// time, a bake lasts 1/N of the plan's duration.
func TestTimeScaleShortensBakes(t *testing.T) {
	p := pausePlan(t, plan.Pause{Bake: time.Hour})
	x := newScripted()
	log := newWaitLog()
	r := start(p, engine.Options{Executor: x, Observer: log, TimeScale: 36000})
	go x.drain(r.done)
	var w engine.WaitInfo
	select {
	case w = <-log.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no pause began")
	}
	if got := w.Until.Sub(w.Since); got != 100*time.Millisecond {
		t.Fatalf("a 1h bake at time scale 36000 lasts %s, want 100ms", got)
	}
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not end after the scaled bake")
	}
}
