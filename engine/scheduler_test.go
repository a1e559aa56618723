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
)

// scripted is an executor whose instances end when the test says so. It
// records how many ran at once and what started when, so that the
// scheduler's own rules are tested without a server.
type scripted struct {
	mu      sync.Mutex
	running int
	peak    int
	started []string
	// release ends one running instance per token.
	release chan struct{}
	// fail lists the instances that end failed.
	fail map[string]bool
	// hold lists instances that wait for their own channel to close
	// rather than for a release token.
	hold map[string]chan struct{}
	// startedCh receives every instance id as it starts.
	startedCh chan string
	// ctxAtStart records whether each instance's context was already
	// cancelled when it started.
	cancelledAtStart []string
}

func newScripted() *scripted {
	return &scripted{release: make(chan struct{}), fail: map[string]bool{}, hold: map[string]chan struct{}{}, startedCh: make(chan string, 1000)}
}

func (x *scripted) Execute(ctx context.Context, inst *plan.Instance, in plan.Inputs, progress func(plan.JobUpdate)) (*plan.Output, error) {
	x.mu.Lock()
	x.running++
	x.peak = max(x.peak, x.running)
	x.started = append(x.started, inst.ID)
	if ctx.Err() != nil {
		x.cancelledAtStart = append(x.cancelledAtStart, inst.ID)
	}
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.running--
		x.mu.Unlock()
	}()
	x.startedCh <- inst.ID
	out := &plan.Output{DiffID: 1, VersionID: 1}
	if inst.Step.Type == plan.TypeReject && inst.Machine != nil && !inst.Machine.Build {
		out.DiffID = 0 // no diff in scope on a fleet machine: nothing to reject
	}
	if inst.Step.Type == plan.TypeGate {
		return out, nil
	}
	wait := x.release
	if h, ok := x.hold[inst.ID]; ok {
		wait = h
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if x.fail[inst.ID] {
		return nil, errors.New("scripted failure")
	}
	return out, nil
}

// waitStarted waits until n instances (in all) have started.
func (x *scripted) waitStarted(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		x.mu.Lock()
		got := len(x.started)
		x.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-x.startedCh:
		case <-deadline:
			t.Fatalf("only %d instances started, want %d", got, n)
		}
	}
}

// drain releases instances until the run ends.
func (x *scripted) drain(done <-chan struct{}) {
	for {
		select {
		case x.release <- struct{}{}:
		case <-done:
			return
		}
	}
}

// runDrained runs p with x as its executor (whatever o says), releasing
// every instance as soon as it asks, and returns the run's summary.
func (x *scripted) runDrained(p *plan.Plan, o engine.Options) *engine.Summary {
	o.Executor = x
	done := make(chan struct{})
	var sum *engine.Summary
	go func() {
		defer close(done)
		sum, _ = engine.New(p, o).Run(context.Background())
	}()
	x.drain(done)
	return sum
}

type eventLog struct {
	engine.NopObserver
	mu     sync.Mutex
	events []string
}

func (r *eventLog) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *eventLog) WaveStarted(step, image string, wave, waves int, ids []string) {
	r.add(fmt.Sprintf("wave %s %s %d", step, image, wave))
}
func (r *eventLog) Aborting(reason string) { r.add("aborting") }

// TestConcurrencyLimitIsExact: with concurrency N and many independent
// install instances ready at once, exactly N run at a time, never N+1. The
// scheduler is the only place that counts slots, so an off-by-one there
// would show here.
func TestConcurrencyLimitIsExact(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			p := simtest.Plan(t, simtest.FleetPlan("limit", []string{"game"}, 12, limit, "", "", ""))
			x := newScripted()
			done := make(chan struct{})
			var sum *engine.Summary
			go func() {
				defer close(done)
				sum, _ = engine.New(p, engine.Options{Executor: x}).Run(context.Background())
			}()
			// update, diff, version and mirror run one by one; then the
			// 12 installs are all ready at once.
			for i := 0; i < 4; i++ {
				x.waitStarted(t, i+1)
				x.release <- struct{}{}
			}
			x.waitStarted(t, 4+limit)
			// Give the scheduler every chance to start one too many.
			time.Sleep(50 * time.Millisecond)
			x.mu.Lock()
			running := x.running
			x.mu.Unlock()
			if running != limit {
				t.Fatalf("%d instances running with concurrency %d", running, limit)
			}
			x.drain(done)
			if x.peak != limit {
				t.Fatalf("peak %d instances at once, want exactly %d", x.peak, limit)
			}
			if sum == nil || !sum.Verdict.Success() {
				t.Fatalf("run did not succeed: %+v", sum)
			}
		})
	}
}

// TestInterruptStartsNothingNew: once the run's context is cancelled, no
// ready instance is started, not even on the already cancelled context.
func TestInterruptStartsNothingNew(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("interrupt", []string{"game"}, 8, 2, "", "", ""))
	x := newScripted()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var sum *engine.Summary
	go func() {
		defer close(done)
		sum, _ = engine.New(p, engine.Options{Executor: x}).Run(ctx)
	}()
	for i := 0; i < 4; i++ {
		x.waitStarted(t, i+1)
		x.release <- struct{}{}
	}
	x.waitStarted(t, 6) // two installs run, six are ready
	cancel()
	<-done
	if len(x.cancelledAtStart) != 0 {
		t.Fatalf("started on a cancelled context: %v", x.cancelledAtStart)
	}
	if len(x.started) != 6 {
		t.Fatalf("%d instances started, want 6 (nothing after the interrupt): %v", len(x.started), x.started)
	}
	if sum.Verdict != engine.VerdictInterrupted {
		t.Fatalf("verdict %s, want interrupted", sum.Verdict)
	}
}

// TestCancelledRunStartsNothing: a run whose context is cancelled before
// it starts (a signal during the pre-flight) starts no instance at all.
func TestCancelledRunStartsNothing(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("cancelled", []string{"game"}, 2, 2, "", "", ""))
	x := newScripted()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := engine.New(p, engine.Options{Executor: x}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.started) != 0 {
		t.Fatalf("started %v on a cancelled context", x.started)
	}
	if sum.Verdict != engine.VerdictInterrupted {
		t.Fatalf("verdict %s, want interrupted", sum.Verdict)
	}
}

// TestNoWaveAnnouncedAfterAborting: when the failure budget aborts the run,
// no wave_started event follows the aborting event, not even for another
// image whose installs become ready (and are skipped) only after the abort.
func TestNoWaveAnnouncedAfterAborting(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("abort", []string{"game-a", "game-b"}, 6, 8, "    waves: [2, 4, \"100%\"]\n    max_failures: 0\n", "", ""))
	x := newScripted()
	x.fail["install@m000/game-a"] = true
	holdB := make(chan struct{})
	x.hold["mirror@game-b"] = holdB
	// game-a's failing install waits until game-b's mirror runs, so that
	// the abort finds game-b's installs still waiting for it.
	holdA := make(chan struct{})
	x.hold["install@m000/game-a"] = holdA
	go func() {
		for {
			x.mu.Lock()
			started := false
			for _, id := range x.started {
				started = started || id == "mirror@game-b"
			}
			x.mu.Unlock()
			if started {
				close(holdA)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	rec := &eventLog{}
	done := make(chan struct{})
	var sum *engine.Summary
	go func() {
		defer close(done)
		sum, _ = engine.New(p, engine.Options{Executor: x, Observer: rec}).Run(context.Background())
	}()
	go x.drain(done)
	// Wait for the abort, and for everything but game-b's mirror to end.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		aborted := len(rec.events) > 0 && rec.events[len(rec.events)-1] == "aborting"
		for _, ev := range rec.events {
			aborted = aborted || ev == "aborting"
		}
		rec.mu.Unlock()
		x.mu.Lock()
		running := x.running
		x.mu.Unlock()
		if aborted && running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no abort with only game-b's mirror left running: %v", rec.events)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(holdB)
	<-done
	if sum.Verdict != engine.VerdictAborted {
		t.Fatalf("verdict %s, want aborted", sum.Verdict)
	}
	aborting := -1
	for i, ev := range rec.events {
		if ev == "aborting" && aborting < 0 {
			aborting = i
		}
		if aborting >= 0 && i > aborting && strings.HasPrefix(ev, "wave") {
			t.Fatalf("%q announced after aborting: %v", ev, rec.events)
		}
	}
}

// TestVerdict: the engine decides the verdict once, the way every reader
// must see it.
func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		fail string
		want engine.Verdict
	}{
		{"all succeed", "", engine.VerdictSucceeded},
		{"a failure within no budget", "install@m001/game", engine.VerdictFailed},
		{"a failure skips its dependents", "version@game", engine.VerdictFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := simtest.Plan(t, simtest.FleetPlan("verdict", []string{"game"}, 3, 2, "", "", ""))
			x := newScripted()
			if tt.fail != "" {
				x.fail[tt.fail] = true
			}
			sum := x.runDrained(p, engine.Options{})
			if sum.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s (counts %v)", sum.Verdict, tt.want, sum.Counts)
			}
		})
	}
}

// TestOnFailureNoop: a reject that found nothing to reject is marked, so
// that reporters say it once.
func TestOnFailureNoop(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("noop", []string{"game"}, 3, 4, "", "", "on_failure:\n  - type: reject\n"))
	x := newScripted()
	x.fail["install@m000/game"] = true
	x.fail["install@m001/game"] = true
	sum := x.runDrained(p, engine.Options{})
	noops := 0
	for _, o := range sum.OnFailure {
		if o.Noop {
			noops++
		}
	}
	if noops != 2 {
		t.Fatalf("%d no-op on_failure runs, want 2: %+v", noops, sum.OnFailure)
	}
	_, groups := engine.SplitNoops(sum.OnFailure)
	if len(groups) != 1 || len(groups[0].Instances) != 2 {
		t.Fatalf("groups %+v", groups)
	}
}

// TestFailureBudgetScope: max_failures counts across all the step's
// instances (the contract's default), or per image with
// max_failures_per: image, as waves are.
func TestFailureBudgetScope(t *testing.T) {
	for _, perImage := range []bool{false, true} {
		p := simtest.Plan(t, simtest.FleetPlan("scope", []string{"game-a", "game-b", "game-c"}, 10, 8, "    waves: [3, \"100%\"]\n    max_failures: \"10%\"\n", "", ""))
		for _, s := range p.Steps {
			if s.Name == "install" {
				s.MaxFailuresPerImage = perImage
			}
		}
		x := newScripted()
		x.fail["install@m000/game-a"] = true
		x.fail["install@m001/game-a"] = true
		sum := x.runDrained(p, engine.Options{})
		want := engine.VerdictFailed // 2 of 30 is within 10% (3)
		if perImage {
			want = engine.VerdictAborted // 2 of game-a's 10 is more than 10% (1)
		}
		if sum.Verdict != want {
			t.Errorf("per image %v: verdict %s (%s), want %s", perImage, sum.Verdict, sum.AbortReason, want)
		}
		if perImage && !strings.Contains(sum.AbortReason, "2 of its 10 instances on game-a") {
			t.Errorf("abort reason %q does not name the image's count", sum.AbortReason)
		}
	}
}

// switchBackPlan is a rollout of game-a and game-b on two machines with
// these fleets, a forward switch step cut to game-b and an on_failure
// switch step back to game-a; each test adds the switches' instances it
// needs.
func switchBackPlan(t *testing.T, fleets ...*plan.Fleet) (p *plan.Plan, imgA, imgB *plan.Image, cut, back *plan.Step) {
	t.Helper()
	p = simtest.Plan(t, simtest.FleetPlan("rollback", []string{"game-a", "game-b"}, 2, 8, "", "", ""))
	p.Fleets = fleets
	for _, img := range p.Images {
		if img.Name == "game-a" {
			imgA = img
		} else {
			imgB = img
		}
	}
	cut = &plan.Step{Name: "cut", Type: plan.TypeSwitch, To: imgB}
	back = &plan.Step{Name: "back", Type: plan.TypeSwitch, To: imgA, OnFailure: true}
	p.Steps = append(p.Steps, cut)
	p.OnFailure = []*plan.Step{back}
	return p, imgA, imgB, cut, back
}

// TestNoForwardSwitchAfterARollback: once an on_failure switch of a fleet
// was woken by a failure, a forward switch of that fleet that becomes
// ready later is skipped: it would undo the rollback.
func TestNoForwardSwitchAfterARollback(t *testing.T) {
	fleet := &plan.Fleet{Name: "prod", ID: "f-uuid"}
	p, imgA, imgB, cut, back := switchBackPlan(t, fleet)
	var bInstalls []*plan.Instance
	for _, in := range p.Instances {
		if in.Step.Name == "install" && in.Image == imgB {
			bInstalls = append(bInstalls, in)
		}
	}
	fwd := &plan.Instance{ID: "cut@prod/game-b", Step: cut, Image: imgB, Fleet: fleet, Deps: bInstalls, Wave: -1}
	p.Instances = append(p.Instances, fwd)
	rb := &plan.Instance{ID: "back@prod/game-a", Step: back, Image: imgA, Fleet: fleet, Wave: -1, Trigger: append([]*plan.Instance{}, p.Instances...)}
	p.FailureInstances = []*plan.Instance{rb}

	x := newScripted()
	x.fail["install@m000/game-a"] = true
	// game-b's installs end only once the rollback began.
	hold := make(chan struct{})
	for _, in := range bInstalls {
		x.hold[in.ID] = hold
	}
	go func() {
		for {
			x.mu.Lock()
			began := false
			for _, id := range x.started {
				began = began || id == rb.ID
			}
			x.mu.Unlock()
			if began {
				close(hold)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	sum := x.runDrained(p, engine.Options{})
	for _, id := range x.started {
		if id == fwd.ID {
			t.Fatalf("the forward switch ran after the rollback: %v", x.started)
		}
	}
	if sum.Verdict != engine.VerdictFailed {
		t.Fatalf("verdict %s", sum.Verdict)
	}
}

// TestWhenFalseSaysWhy: an instance a false when skipped says what the
// expression read.
func TestWhenFalseSaysWhy(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("when", []string{"game"}, 2, 2, "    when: steps.version.versionid < 0\n", "", ""))
	x := newScripted()
	log := &eventLog{}
	sum := x.runDrained(p, engine.Options{Observer: log})
	if !sum.Verdict.Success() {
		t.Fatalf("verdict %s", sum.Verdict)
	}
	found := false
	for _, ts := range sum.Targets {
		if strings.Contains(engine.ErrText(ts.Err), "where steps.version.versionid = 1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no skip says the value: %+v", sum.Targets)
	}
}

// TestRollbackWaitsForTheFleetsForwardSwitch: a cut-over of two fleets
// where prod-us's switch fails while prod-eu's is still running. The
// switch back of prod-us starts at once; prod-eu's waits until prod-eu's
// forward switch ended, since started earlier it could find nothing of
// this run to undo and the forward switch would then finish after it.
func TestRollbackWaitsForTheFleetsForwardSwitch(t *testing.T) {
	eu, us := &plan.Fleet{Name: "prod-eu", ID: "eu-uuid"}, &plan.Fleet{Name: "prod-us", ID: "us-uuid"}
	p, imgA, imgB, cut, back := switchBackPlan(t, eu, us)
	cutEU := &plan.Instance{ID: "cut@prod-eu/game-b", Step: cut, Image: imgB, Fleet: eu, Wave: -1}
	cutUS := &plan.Instance{ID: "cut@prod-us/game-b", Step: cut, Image: imgB, Fleet: us, Wave: -1}
	p.Instances = append(p.Instances, cutEU, cutUS)
	trig := append([]*plan.Instance{}, p.Instances...)
	backEU := &plan.Instance{ID: "back@prod-eu/game-a", Step: back, Image: imgA, Fleet: eu, Wave: -1, Trigger: trig}
	backUS := &plan.Instance{ID: "back@prod-us/game-a", Step: back, Image: imgA, Fleet: us, Wave: -1, Trigger: trig}
	p.FailureInstances = []*plan.Instance{backEU, backUS}

	x := newScripted()
	x.fail[cutUS.ID] = true
	holdEU := make(chan struct{})
	x.hold[cutEU.ID] = holdEU
	began := func(id string) bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for _, s := range x.started {
			if s == id {
				return true
			}
		}
		return false
	}
	var early []string
	go func() {
		// Once prod-us is being switched back, prod-eu's switch back must
		// still wait: give it time to start wrongly, then end prod-eu's
		// forward switch.
		for !began(backUS.ID) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if began(backEU.ID) {
			early = append(early, backEU.ID)
		}
		close(holdEU)
	}()
	sum := x.runDrained(p, engine.Options{Concurrency: 8})
	if len(early) > 0 {
		t.Fatalf("prod-eu's switch back started while its forward switch ran: %v", x.started)
	}
	if !began(backEU.ID) {
		t.Fatalf("prod-eu was never switched back: %v", x.started)
	}
	if sum.Verdict != engine.VerdictFailed || len(sum.Failures) != 1 || sum.Failures[0].Instance != cutUS.ID {
		t.Fatalf("verdict %s, failures %+v", sum.Verdict, sum.Failures)
	}
}

// TestGateRunsWhileEverySlotIsTaken: a gate takes no slot, so one that
// becomes ready behind a long list of instances waiting for a slot runs at
// once, while every slot is still taken. (The scheduler stops scanning the
// ready list when no slot is free only if nothing in it could move without
// one.)
func TestGateRunsWhileEverySlotIsTaken(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("gates", []string{"game"}, 6, 1, "", "", `  - name: check
    type: gate
    needs: [install]
    where: machine.labels.role == "fleet"
    expr: steps.install.job.state == 5 || true
`))
	x := newScripted()
	first := "install@m000/game"
	x.hold[first] = make(chan struct{})
	done := make(chan struct{})
	var sum *engine.Summary
	go func() {
		defer close(done)
		sum, _ = engine.New(p, engine.Options{Executor: x}).Run(context.Background())
	}()
	// update, diff, version and mirror, one at a time.
	for i := 0; i < 4; i++ {
		x.waitStarted(t, i+1)
		x.release <- struct{}{}
	}
	x.waitStarted(t, 5) // the first install holds the only slot
	close(x.hold[first])
	// Its gate and the next install start; that install holds the slot
	// until released, and the gate must not wait for it.
	x.waitStarted(t, 7)
	x.mu.Lock()
	started := append([]string(nil), x.started...)
	x.mu.Unlock()
	if !slices.Contains(started, "check@m000/game") {
		t.Fatalf("the gate of the first machine did not start while the second install held the slot: %v", started)
	}
	x.drain(done)
	if sum == nil || !sum.Verdict.Success() {
		t.Fatalf("run did not succeed: %+v", sum)
	}
}
