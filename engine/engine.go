// Package engine runs a validated plan: it schedules the plan's instance DAG
// under the global concurrency limit, per-step limits, per-image
// serialization of updates and diffs, install waves and failure budgets, runs
// on_failure instances for what failed, and reports every event through the
// Observer interface it defines. It never renders anything itself.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rollout/rollout/plan"
)

// Journal is the engine's view of the state directory: it restores the
// outputs of instances that succeeded in an earlier run and records every
// outcome of this one.
type Journal interface {
	Restore(instanceID string) (*plan.Output, bool)
	Record(instanceID string, r Result, out *plan.Output)
	// WaitStarted records that a wait began; WaitSince returns when an
	// earlier run began it.
	WaitStarted(w WaitInfo)
	WaitSince(waitID string) (time.Time, bool)
	// RecordDecision records how a wait ended and who ended it; Decided
	// returns a decision an earlier run (or this one) recorded.
	RecordDecision(w WaitInfo, d Decision)
	Decided(waitID string) (Decision, bool)
}

// Executor does the work of one instance; the engine only decides when.
// Execute runs inst to its end with the outputs it may read and returns its
// output; a returned error is the instance's failure (or, when ctx was
// cancelled, an interrupt: the error then matches context.Canceled). It
// calls progress for every state of a remote job it drives; progress never
// blocks. steps.Executor is the production implementation.
type Executor interface {
	Execute(ctx context.Context, inst *plan.Instance, in plan.Inputs, progress func(plan.JobUpdate)) (*plan.Output, error)
}

// Options configure a run.
type Options struct {
	// Concurrency overrides the plan's limit when > 0.
	Concurrency int
	Observer    Observer
	// Executor does each instance's work. Required.
	Executor Executor
	Journal  Journal // nil: nothing is restored or recorded
	Now      func() time.Time
	// Requests, when set, counts the API requests sent so far; the engine
	// samples it for RequestCount events and the summary.
	Requests func() int64
	// RequestInterval is how often RequestCount events are sent; default 1s.
	RequestInterval time.Duration
	// Resumed tells observers that this run continues an earlier one.
	Resumed bool
	// Control delivers approvals and aborts made outside the engine (the
	// live view, other terminals); nil: none.
	Control <-chan Request
	// AutoApprove approves every approval as it comes (run
	// --auto-approve); each is recorded as such. Bake times still pass.
	AutoApprove bool
	// TimeScale, when above 1, divides bake times and approval timeouts:
	// against a simulator that runs N times faster than real time, a
	// plan's 10m bake lasts as long, relative to its jobs, as it would
	// for real.
	TimeScale float64
}

// status is where an instance is in its life.
type status int

const (
	waiting status = iota // dependencies not done
	parked                // dependencies done, its wave not open yet
	ready                 // may start once limits allow
	running
	ended
	dormant // an on_failure instance whose trigger has not failed
	holding // an approve instance waiting for its decision; no slot held
)

// node is the engine's mutable record of one instance. Only the scheduler
// goroutine touches it.
type node struct {
	inst    *plan.Instance
	index   int // order of start preference
	status  status
	pending int // dependencies not yet ended
	deps    []*node
	users   []*node // dependents
	out     *plan.Output
	result  Result
	// triggered on_failure nodes for which this node is a trigger
	onFail []*node
}

// waveKey names one wave of one install step for one image.
type waveKey struct {
	step, image string
	wave        int
}

// completion is what an executing instance hands back to the scheduler.
type completion struct {
	n   *node
	out *plan.Output
	err error
	job *JobInfo
	at  time.Time
}

// Engine runs one plan once.
type Engine struct {
	p    *plan.Plan
	opt  Options
	obs  Observer
	now  func() time.Time
	exec Executor

	nodes  []*node
	byID   map[string]*node
	limit  int
	start  time.Time
	doneCh chan completion

	// scheduler state
	readyList []*node
	// freeReady counts the nodes of readyList that may move on without a
	// slot (see needsNoSlot): while every slot is taken and there is none,
	// dispatch has nothing to do, however long the list (the last wave of
	// a 10,000-machine rollout waits there).
	freeReady   int
	stepRunning map[string]int
	// fleetSwitching counts the running forward switch instances per
	// fleet name: a switch back of the fleet waits for them to end.
	fleetSwitching map[string]int
	imageBusy      map[string]bool // update/diff serialization per image
	waveLeft       map[waveKey]int // instances of a wave not yet ended
	waveOpen       map[waveKey]bool
	waveParked     map[waveKey][]*node
	stepFailed     map[string]int // by budgetKey
	budgets        map[string]budget
	// rolledBack names the fleets an on_failure switch was woken for.
	rolledBack  map[string]bool
	aborted     bool
	abortReason string
	interrupted bool
	runningN    int // instances started and not yet completed
	// slots counts the running instances that hold a concurrency slot.
	// It is the only count of the limit: the errgroup only waits.
	slots int
	ctx   context.Context

	// waits in progress by id; passed marks waves whose pause ended;
	// decisions lists every ended wait. waitCh carries wait timers to
	// the scheduler; stopCh closes when Run returns.
	waits     map[string]*wait
	passed    map[waveKey]bool
	decisions []DecisionRecord
	waitCh    chan waitFired
	stopCh    chan struct{}

	mu      sync.Mutex // guards lastJob and jobs
	lastJob map[string]JobInfo
	// jobs keeps the last state of every job of every instance: an
	// install instance drives several (a mirror job per location), and an
	// interrupt must report each one still running, not only the last
	// one reported.
	jobs     map[string]map[int64]JobInfo
	failures []Failure
}

// New prepares a run of p.
func New(p *plan.Plan, opt Options) *Engine {
	e := &Engine{p: p, opt: opt, obs: opt.Observer, now: opt.Now, exec: opt.Executor}
	if e.obs == nil {
		e.obs = NopObserver{}
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.limit = p.Concurrency
	if opt.Concurrency > 0 {
		e.limit = opt.Concurrency
	}
	if e.limit < 1 {
		e.limit = 1
	}
	e.build()
	return e
}

func (e *Engine) build() {
	e.byID = make(map[string]*node, len(e.p.Instances)+len(e.p.FailureInstances))
	e.waveLeft = map[waveKey]int{}
	e.waveOpen = map[waveKey]bool{}
	e.waveParked = map[waveKey][]*node{}
	e.stepRunning = map[string]int{}
	e.fleetSwitching = map[string]int{}
	e.imageBusy = map[string]bool{}
	e.stepFailed = map[string]int{}
	e.budgets = map[string]budget{}
	e.rolledBack = map[string]bool{}
	e.lastJob = map[string]JobInfo{}
	e.jobs = map[string]map[int64]JobInfo{}
	e.waits = map[string]*wait{}
	e.passed = map[waveKey]bool{}
	e.waitCh = make(chan waitFired)
	e.stopCh = make(chan struct{})
	add := func(in *plan.Instance, st status) *node {
		n := &node{inst: in, index: len(e.nodes), status: st}
		e.nodes = append(e.nodes, n)
		e.byID[in.ID] = n
		return n
	}
	for _, in := range e.p.Instances {
		add(in, waiting)
		if in.Wave >= 0 {
			e.waveLeft[waveOf(in)]++
		}
	}
	for _, in := range e.p.FailureInstances {
		add(in, dormant)
	}
	for _, n := range e.nodes {
		for _, d := range n.inst.Deps {
			dn := e.byID[d.ID]
			if dn == nil {
				continue
			}
			n.deps = append(n.deps, dn)
			dn.users = append(dn.users, n)
		}
		n.pending = len(n.deps)
		for _, t := range n.inst.Trigger {
			if tn := e.byID[t.ID]; tn != nil {
				tn.onFail = append(tn.onFail, n)
			}
		}
	}
}

func waveOf(in *plan.Instance) waveKey {
	return waveKey{step: in.Step.Name, image: in.Image.Name, wave: in.Wave}
}

func info(in *plan.Instance) InstanceInfo {
	ii := InstanceInfo{ID: in.ID, Step: in.Step.Name, Type: string(in.Step.Type), Image: in.Image.Name, Wave: in.Wave, OnFailure: in.Step.OnFailure}
	if in.Machine != nil {
		ii.Machine = in.Machine.Name
	}
	if len(in.Deps) > 0 {
		ii.Deps = make([]string, len(in.Deps))
		for i, d := range in.Deps {
			ii.Deps[i] = d.ID
		}
	}
	return ii
}

// Run executes the plan until every instance ended, the rollout aborted or
// ctx was cancelled (an interrupt). The returned error is a fault of the
// engine itself; instance failures are outcomes, reported in the summary.
func (e *Engine) Run(ctx context.Context) (*Summary, error) {
	e.start = e.now()
	e.ctx = ctx
	infos := make([]InstanceInfo, 0, len(e.nodes))
	for _, n := range e.nodes {
		infos = append(infos, info(n.inst))
	}
	e.obs.RunStarted(RunInfo{Plan: e.p.Name, Concurrency: e.limit, Instances: infos, Targets: len(e.p.Targets), Started: e.start, Resumed: e.opt.Resumed})

	// Request counts are sampled rather than pushed per request so that a
	// busy client never waits on an observer.
	stopTicker := e.requestTicker()
	defer stopTicker()

	if e.exec == nil {
		return nil, errors.New("engine: no executor")
	}
	// The errgroup only waits for the instances' goroutines; the limit is
	// counted in e.slots alone, by the scheduler.
	var g errgroup.Group
	e.doneCh = make(chan completion, len(e.nodes))

	// Instances with no dependencies are ready at once; restored ones end
	// at once and release their dependents.
	for _, n := range e.nodes {
		if n.status == waiting && n.pending == 0 {
			e.makeReady(n)
		}
	}

	defer close(e.stopCh)
	for {
		if ctx.Err() != nil && !e.interrupted {
			e.interrupt()
		}
		e.dispatch(ctx, &g)
		if e.runningN == 0 && len(e.readyList) == 0 && len(e.waits) == 0 {
			break
		}
		if e.runningN == 0 && len(e.waits) == 0 {
			// Ready instances exist but none could start although no
			// limit is held: a fault of the engine, never of the plan.
			return nil, fmt.Errorf("engine: %d instances ready but none can start", len(e.readyList))
		}
		// Running instances see an interrupt through ctx and return
		// promptly with their last job state; once interrupted, the
		// loop only collects them.
		done := ctx.Done()
		if e.interrupted {
			done = nil
		}
		select {
		case c := <-e.doneCh:
			e.complete(c)
		case <-done:
			e.interrupt()
		case f := <-e.waitCh:
			e.fired(f)
		case r := <-e.opt.Control:
			e.request(r)
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Whatever never became ready (its dependencies ended otherwise) has
	// already been marked; waiting nodes left here mean a broken DAG.
	for _, n := range e.nodes {
		if n.status == waiting || n.status == parked || n.status == ready {
			e.finish(n, Result{Outcome: Skipped, Err: skip("not reached")}, nil, e.now())
		}
	}
	s := e.summary()
	e.obs.RunFinished(*s)
	return s, nil
}

func (e *Engine) requestTicker() func() {
	requests := e.opt.Requests
	if requests == nil {
		return func() {}
	}
	iv := e.opt.RequestInterval
	if iv <= 0 {
		iv = time.Second
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(iv)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				e.obs.RequestCount(requests())
			}
		}
	}()
	return func() { close(stop); <-done; e.obs.RequestCount(requests()) }
}

// makeReady moves a node whose dependencies all ended into the ready list,
// or parks it behind its wave, or ends it at once when it was restored from
// the journal.
func (e *Engine) makeReady(n *node) {
	// Only once per node: on a resume, restored instances end inside the
	// first scan over the nodes and release their dependents, which the
	// same scan then meets again; a second call would queue (or park) the
	// node twice and start it twice.
	if n.status != waiting && n.status != parked {
		return
	}
	if e.opt.Journal != nil {
		if out, ok := e.opt.Journal.Restore(n.inst.ID); ok {
			n.status = running // finish expects a started node
			now := e.now()
			e.finish(n, Result{Outcome: Succeeded, Started: now, Finished: now, Detail: "done in an earlier run", Restored: true}, out, now)
			return
		}
	}
	if e.stopped(n) {
		e.finish(n, Result{Outcome: Skipped, Err: skip(e.stopReason())}, nil, e.now())
		return
	}
	if n.inst.Wave >= 0 {
		k := waveOf(n.inst)
		if !e.waveIsOpen(k) {
			if n.status != parked {
				n.status = parked
				e.waveParked[k] = append(e.waveParked[k], n)
			}
			return
		}
	}
	n.status = ready
	if needsNoSlot(n) {
		e.freeReady++
	}
	i := sort.Search(len(e.readyList), func(i int) bool { return e.readyList[i].index > n.index })
	e.readyList = append(e.readyList, nil)
	copy(e.readyList[i+1:], e.readyList[i:])
	e.readyList[i] = n
}

// stopped reports whether n may no longer start. An interrupt stops
// everything, since it sends nothing more that changes state; an abort stops
// everything but on_failure instances, which the contract runs on abort.
func (e *Engine) stopped(n *node) bool {
	return e.interrupted || (e.aborted && !n.inst.Step.OnFailure)
}

func (e *Engine) stopReason() string {
	if e.interrupted {
		return "interrupted"
	}
	return "rollout aborted"
}

// waveIsOpen reports whether wave k may start: wave 0 always, wave k once
// every instance of every earlier wave of the same step and image ended.
// Checking all earlier waves, not only k-1, matters because a wave may be
// empty: two machines and [1, "50%", "100%"] give waves of 1, 0 and 1.
// Opening a wave is announced once.
func (e *Engine) waveIsOpen(k waveKey) bool {
	if e.waveOpen[k] {
		return true
	}
	for w := 0; w < k.wave; w++ {
		if e.waveLeft[waveKey{k.step, k.image, w}] > 0 {
			return false
		}
	}
	// A pause after an earlier wave holds this one until it ends: after
	// the previous wave, or after an empty one before it (a pause entry
	// applies up to the next wave that has instances). Pauses already
	// passed answer at once. This is the one place a wave opens, so a
	// resumed run whose earlier waves ended in an earlier run pauses too.
	for w := 0; w < k.wave; w++ {
		if e.pauseBefore(waveKey{k.step, k.image, w}) {
			return false
		}
	}
	// pauseBefore may have ended its wait at once (--auto-approve, or a
	// decision restored from the journal), and ending a wait opens the
	// waves after it: this very wave may be open and announced already.
	if e.waveOpen[k] {
		return true
	}
	e.waveOpen[k] = true
	var ids []string
	for _, n := range e.nodes {
		if n.inst.Wave == k.wave && n.inst.Step.Name == k.step && n.inst.Image.Name == k.image {
			ids = append(ids, n.inst.ID)
		}
	}
	e.obs.WaveStarted(k.step, k.image, k.wave, e.wavesOf(k.step), ids)
	return true
}

func (e *Engine) wavesOf(step string) int {
	for _, s := range e.p.Steps {
		if s.Name == step {
			return len(s.Waves)
		}
	}
	return 0
}

// needsNoSlot reports whether a ready node may move on without a
// concurrency slot: gates and approvals take none, and a when expression
// or a forward switch of a rolled-back fleet may end the node unstarted.
func needsNoSlot(n *node) bool {
	st := n.inst.Step
	return st.Type == plan.TypeGate || st.Type == plan.TypeApprove || st.When != nil ||
		(st.Type == plan.TypeSwitch && !st.OnFailure && n.inst.Fleet != nil)
}

// dispatch starts every ready instance that the limits allow, in plan order.
func (e *Engine) dispatch(ctx context.Context, g *errgroup.Group) {
	for i := 0; i < len(e.readyList); {
		if e.slots >= e.limit && e.freeReady == 0 && !e.interrupted && !e.aborted {
			// Nothing further down can move without a slot.
			return
		}
		if e.dispatchOne(ctx, g, i) {
			// It left the ready list: the next one is at i now.
			continue
		}
		i++
	}
}

// dispatchOne moves the ready instance at i on if it may: it skips, fails,
// starts or holds it. It reports whether the instance left the ready list;
// false means it waits there for a limit.
func (e *Engine) dispatchOne(ctx context.Context, g *errgroup.Group, i int) bool {
	n := e.readyList[i]
	if e.stopped(n) {
		e.removeReady(i)
		e.finish(n, Result{Outcome: Skipped, Err: skip(e.stopReason())}, nil, e.now())
		return true
	}
	st := n.inst.Step
	if st.MaxParallel > 0 && e.stepRunning[st.Name] >= st.MaxParallel {
		return false
	}
	serial := st.Type == plan.TypeUpdate || st.Type == plan.TypeDiff
	if serial && e.imageBusy[n.inst.Image.Name] {
		return false
	}
	if st.When != nil && e.endedByWhen(i, n) {
		return true
	}
	// A forward switch of a fleet whose rollback was triggered would
	// undo it: the failure that triggered the rollback stands.
	if forwardSwitch(n.inst) && e.rolledBack[n.inst.Fleet.Name] {
		e.removeReady(i)
		e.finish(n, Result{Outcome: Skipped, Err: skip("fleet " + n.inst.Fleet.Name + " is being switched back after a failure")}, nil, e.now())
		return true
	}
	// A switch back of a fleet whose forward switch is still running
	// waits for it to end: started now, it could find nothing of
	// this run to undo yet (the forward PATCH not sent) and the
	// forward switch would then finish the cut-over after it. It
	// holds no slot while it waits.
	if st.Type == plan.TypeSwitch && st.OnFailure && n.inst.Fleet != nil && e.fleetSwitching[n.inst.Fleet.Name] > 0 {
		return false
	}
	// An approval waits for a person, holding no slot.
	if st.Type == plan.TypeApprove {
		e.removeReady(i)
		e.startApproval(n)
		return true
	}
	// Gates call nothing remote, so they take no slot.
	if st.Type == plan.TypeGate {
		e.removeReady(i)
		e.runGateNow(ctx, n)
		return true
	}
	if e.slots >= e.limit {
		// Every slot is taken; gates further down may still go.
		return false
	}
	e.launch(ctx, g, i, n, serial)
	return true
}

// endedByWhen evaluates the when expression of the ready instance at i,
// just before it would run: an error fails it, false skips it and its
// dependents. It reports whether the instance ended (and left the ready
// list).
func (e *Engine) endedByWhen(i int, n *node) bool {
	st := n.inst.Step
	ok, err := st.When.Eval(e.evalInput(n))
	if err != nil {
		e.removeReady(i)
		n.status = running
		e.failNow(n, fmt.Errorf("when: %v", err))
		return true
	}
	if !ok {
		e.removeReady(i)
		n.status = running
		now := e.now()
		why := "when is false: " + st.When.Source
		if vals := st.When.Explain(e.evalInput(n)); vals != "" {
			why += ", where " + vals
		}
		e.finish(n, Result{Outcome: SkippedWhen, Err: skip(why), Started: now, Finished: now}, &plan.Output{State: plan.OutputSkipped}, now)
		return true
	}
	return false
}

// runGateNow runs a gate in the scheduler's goroutine and completes it.
func (e *Engine) runGateNow(ctx context.Context, n *node) {
	n.status = running
	e.runningN++
	e.obs.InstanceStarted(n.inst.ID, e.now())
	out, err := e.exec.Execute(ctx, n.inst, e.inputs(n), func(plan.JobUpdate) {})
	e.complete(completion{n: n, out: out, err: err, at: e.now()})
}

// launch runs the ready instance at i in its own goroutine, taking a slot
// and the limits it counts against; its completion comes back on doneCh.
func (e *Engine) launch(ctx context.Context, g *errgroup.Group, i int, n *node, serial bool) {
	st := n.inst.Step
	in := e.inputs(n)
	started := e.now()
	// The scheduler counts slots itself, so g.Go blocks at most for
	// the moment a finished instance needs to return its errgroup
	// slot after handing over its completion.
	g.Go(func() error {
		e.obs.InstanceStarted(n.inst.ID, started)
		out, err := e.runOne(ctx, n, in)
		job := e.instanceJob(n.inst.ID, out)
		e.doneCh <- completion{n: n, out: out, err: err, job: job, at: e.now()}
		// Failures are outcomes, not errors: returning one would
		// mean a fault of the engine.
		return nil
	})
	e.removeReady(i)
	n.status = running
	n.result.Started = started
	e.runningN++
	e.slots++
	e.stepRunning[st.Name]++
	if forwardSwitch(n.inst) {
		e.fleetSwitching[n.inst.Fleet.Name]++
	}
	if serial {
		e.imageBusy[n.inst.Image.Name] = true
	}
}

// forwardSwitch reports whether in is a switch of a fleet from the steps
// (not on_failure).
func forwardSwitch(in *plan.Instance) bool {
	return in.Step.Type == plan.TypeSwitch && !in.Step.OnFailure && in.Fleet != nil
}

func (e *Engine) runOne(ctx context.Context, n *node, in plan.Inputs) (*plan.Output, error) {
	st := n.inst.Step
	rctx := ctx
	var cancel context.CancelFunc
	if st.Timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, st.Timeout)
		defer cancel()
	}
	out, err := e.exec.Execute(rctx, n.inst, in, func(u plan.JobUpdate) {
		ji := JobInfo{Kind: u.Kind, ID: u.Job.ID, State: u.Job.State, StateName: u.Job.StateName, Progress: u.Job.Progress, ETA: u.ETA, Start: u.Start, Error: u.Job.Error, Done: u.Done, Detail: u.Detail}
		e.mu.Lock()
		e.lastJob[n.inst.ID] = ji
		if ji.ID != 0 {
			if e.jobs[n.inst.ID] == nil {
				e.jobs[n.inst.ID] = map[int64]JobInfo{}
			}
			e.jobs[n.inst.ID][ji.ID] = ji
		}
		e.mu.Unlock()
		e.obs.JobProgress(n.inst.ID, ji)
	})
	if err != nil && ctx.Err() == nil && rctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s: %w", st.Timeout, err)
	}
	return out, err
}

// instanceJob is the job an instance's result names: the one its output
// names when it names one (an install's least advanced job still listed),
// else the last one it reported.
func (e *Engine) instanceJob(id string, out *plan.Output) *JobInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	if out != nil && out.Job.ID != 0 {
		if j, ok := e.jobs[id][out.Job.ID]; ok {
			return &j
		}
	}
	if j, ok := e.lastJob[id]; ok {
		return &j
	}
	return nil
}

// unfinishedJobs lists the jobs of an instance that had not ended when it
// stopped, by id.
func (e *Engine) unfinishedJobs(n *node) []UnfinishedJob {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []UnfinishedJob
	for _, j := range e.jobs[n.inst.ID] {
		if !j.Done {
			out = append(out, UnfinishedJob{Instance: n.inst.ID, Job: j})
		}
	}
	if len(out) == 0 && n.result.Job != nil && n.result.Job.ID == 0 && !n.result.Job.Done {
		// A job known only by its state (no id yet) is still worth naming.
		out = append(out, UnfinishedJob{Instance: n.inst.ID, Job: *n.result.Job})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Job.ID < out[b].Job.ID })
	return out
}

func (e *Engine) removeReady(i int) {
	if needsNoSlot(e.readyList[i]) {
		e.freeReady--
	}
	copy(e.readyList[i:], e.readyList[i+1:])
	e.readyList = e.readyList[:len(e.readyList)-1]
}

// complete handles an instance that returned.
func (e *Engine) complete(c completion) {
	n := c.n
	e.runningN--
	st := n.inst.Step
	if st.Type != plan.TypeGate {
		e.slots--
		e.stepRunning[st.Name]--
		if forwardSwitch(n.inst) {
			e.fleetSwitching[n.inst.Fleet.Name]--
		}
		if st.Type == plan.TypeUpdate || st.Type == plan.TypeDiff {
			e.imageBusy[n.inst.Image.Name] = false
		}
	}
	r := Result{Started: n.result.Started, Finished: c.at, Job: c.job}
	if r.Started.IsZero() {
		r.Started = c.at
	}
	out := c.out
	if out == nil {
		out = &plan.Output{}
	}
	switch {
	case c.err == nil:
		r.Outcome = Succeeded
		out.State = plan.OutputSucceeded
		r.Detail = detail(n.inst, out)
	case e.ctx.Err() != nil && (errors.Is(c.err, context.Canceled) || errors.Is(c.err, e.ctx.Err())):
		r.Outcome = Cancelled
		r.Err = skip("interrupted")
		out.State = plan.OutputFailed
	default:
		r.Outcome = Failed
		r.Err = c.err
		out.State = plan.OutputFailed
	}
	e.finish(n, r, out, c.at)
}

func (e *Engine) failNow(n *node, err error) {
	now := e.now()
	e.finish(n, Result{Outcome: Failed, Err: err, Started: now, Finished: now}, &plan.Output{State: plan.OutputFailed}, now)
}

// noop reports whether an instance succeeded with nothing to do.
func noop(n *node) bool {
	if n.result.Outcome == Succeeded && n.out != nil && n.out.Noop {
		return true
	}
	return n.result.Outcome == Succeeded && n.inst.Step.Type == plan.TypeReject && (n.out == nil || n.out.DiffID == 0)
}

// detail summarizes an instance's output for people.
func detail(in *plan.Instance, out *plan.Output) string {
	if out.Detail != "" {
		// The step said it in words (a ready step, a switch).
		return out.Detail
	}
	switch in.Step.Type {
	case plan.TypeDiff:
		return fmt.Sprintf("diff %d: %d added, %d modified, %d removed", out.DiffID, len(out.Added), len(out.Modified), len(out.Removed))
	case plan.TypeVersion:
		return fmt.Sprintf("image version %d", out.VersionID)
	case plan.TypeInstall:
		if len(out.JobIDs) == 1 {
			return fmt.Sprintf("install job %d", out.JobIDs[0])
		}
		return fmt.Sprintf("%d install jobs", len(out.JobIDs))
	case plan.TypeReject:
		switch {
		case out.DiffID == 0:
			return "nothing to reject: no diff of this run was still open"
		case out.Job.ID != 0:
			return fmt.Sprintf("rejected diff %d; reinstall job %d started", out.DiffID, out.Job.ID)
		}
		return fmt.Sprintf("rejected diff %d", out.DiffID)
	}
	if out.Job.ID != 0 {
		return fmt.Sprintf("job %d", out.Job.ID)
	}
	return ""
}

// finish records an instance's end, releases or skips its dependents, opens
// waves, checks the failure budget and wakes on_failure instances.
func (e *Engine) finish(n *node, r Result, out *plan.Output, at time.Time) {
	if n.status == ended {
		return
	}
	n.status = ended
	if r.Finished.IsZero() {
		r.Finished = at
	}
	n.result = r
	if out == nil {
		out = &plan.Output{State: plan.OutputFailed}
		switch r.Outcome {
		case Succeeded:
			out.State = plan.OutputSucceeded
		case Skipped, SkippedWhen:
			out.State = plan.OutputSkipped
		}
	}
	n.out = out
	if e.opt.Journal != nil && !r.Restored {
		e.opt.Journal.Record(n.inst.ID, r, out)
	}
	e.obs.InstanceFinished(n.inst.ID, r)

	if r.Outcome == Failed {
		e.failed(n, r)
	}

	if n.inst.Wave >= 0 {
		k := waveOf(n.inst)
		e.waveLeft[k]--
		if e.waveLeft[k] == 0 {
			e.openWavesAfter(k)
		}
	}
	e.releaseUsers(n, r, at)
}

// failed counts a failure of n as a root cause and against its step's
// budget, and wakes its on_failure instances.
func (e *Engine) failed(n *node, r Result) {
	e.failures = append(e.failures, Failure{Instance: n.inst.ID, Machine: machineName(n.inst), Image: n.inst.Image.Name, Err: r.Err})
	if !n.inst.Step.OnFailure {
		e.stepFailed[budgetKey(n.inst.Step, n.inst.Image)]++
		e.checkBudget(n.inst.Step, n.inst.Image)
	}
	// on_failure runs for what failed, not for an interrupt: an
	// interrupt sends nothing more that changes state.
	if !e.interrupted {
		for _, f := range n.onFail {
			if f.status == dormant {
				f.status = waiting
				f.pending = 0
				if f.inst.Step.Type == plan.TypeSwitch && f.inst.Fleet != nil {
					// A fleet being switched back is never switched
					// forward afterwards by the same run.
					e.rolledBack[f.inst.Fleet.Name] = true
				}
				e.makeReady(f)
			}
		}
	}
}

// releaseUsers moves on the waiting dependents of n, which ended with r:
// a success counts down what they wait for, a false when skips them alike,
// and anything else skips them naming the root cause.
func (e *Engine) releaseUsers(n *node, r Result, at time.Time) {
	for _, u := range n.users {
		if u.status != waiting {
			continue
		}
		switch r.Outcome {
		case Succeeded:
			u.pending--
			if u.pending == 0 {
				e.makeReady(u)
			}
		case SkippedWhen:
			// A false when skips the instance and its dependents, and
			// that is still a success for the exit status.
			e.finish(u, Result{Outcome: SkippedWhen, Err: skip("skipped: " + n.inst.ID + " was skipped by when")}, nil, at)
		default:
			// Dependents of a failure are skipped, naming the root cause
			// rather than failing in a chain: a skip passes its own
			// reason on, which already names the root.
			var reason error
			switch {
			case r.Outcome == Cancelled:
				reason = skip("interrupted")
			case r.Outcome == Failed || r.Err == nil:
				reason = &SkipError{Reason: "dependency " + n.inst.ID + " " + string(r.Outcome), Cause: r.Err}
			default:
				reason = r.Err
			}
			e.finish(u, Result{Outcome: Skipped, Err: reason}, nil, at)
		}
	}
}

// openWavesAfter opens the waves after k, in order, that may now start and
// still have instances, releasing the ones parked there. Empty waves are
// stepped over; the first wave that cannot open yet stops the walk.
func (e *Engine) openWavesAfter(k waveKey) {
	if e.aborted || e.interrupted {
		// Nothing of a later wave will start: announcing it would tell
		// people it did.
		return
	}
	last := e.wavesOf(k.step)
	for w := k.wave + 1; w < last; w++ {
		next := waveKey{k.step, k.image, w}
		parked := e.waveParked[next]
		if len(parked) == 0 && e.waveLeft[next] == 0 {
			continue
		}
		if !e.waveIsOpen(next) {
			return
		}
		delete(e.waveParked, next)
		for _, p := range parked {
			e.makeReady(p)
		}
		if e.waveLeft[next] > 0 {
			return
		}
	}
}

func machineName(in *plan.Instance) string {
	if in.Machine == nil {
		return ""
	}
	return in.Machine.Name
}

// budget is a failure budget as plan.FailureBudget computed it, once.
type budget struct {
	limit, of int
	ok        bool
}

// budgetKey names the scope a failure of step st on img counts in: the
// step, or with max_failures_per: image, the step's instances of img.
func budgetKey(st *plan.Step, img *plan.Image) string {
	if st.MaxFailuresPerImage {
		return st.Name + "@" + img.Name
	}
	return st.Name
}

// checkBudget aborts the rollout once more instances of a step (or of the
// step on one image) failed than its max_failures allows.
func (e *Engine) checkBudget(st *plan.Step, img *plan.Image) {
	if st == nil || e.aborted {
		return
	}
	key := budgetKey(st, img)
	b, cached := e.budgets[key]
	if !cached {
		b.limit, b.of, b.ok = e.p.FailureBudget(st, img)
		e.budgets[key] = b
	}
	limit, of := b.limit, b.of
	if !b.ok {
		return
	}
	if n := e.stepFailed[key]; n > limit {
		scope := fmt.Sprintf("%d of its %d instances", n, of)
		if st.MaxFailuresPerImage {
			scope = fmt.Sprintf("%d of its %d instances on %s", n, of, img.Name)
		}
		e.abort(fmt.Sprintf("step %q: %s failed, more than max_failures %d", st.Name, scope, limit))
	}
}

// skipAllNotStarted ends every ready or parked instance. Waiting ones are
// skipped as their dependencies end, and a cancelled context makes running
// ones return.
func (e *Engine) skipAllNotStarted(reason string) {
	now := e.now()
	list := e.readyList
	e.readyList, e.freeReady = nil, 0
	for _, n := range list {
		if !e.stopped(n) {
			// An on_failure instance still runs after an abort.
			e.readyList = append(e.readyList, n)
			if needsNoSlot(n) {
				e.freeReady++
			}
			continue
		}
		e.finish(n, Result{Outcome: Skipped, Err: skip(reason)}, nil, now)
	}
	for k, parked := range e.waveParked {
		delete(e.waveParked, k)
		for _, n := range parked {
			e.finish(n, Result{Outcome: Skipped, Err: skip(reason)}, nil, now)
		}
	}
	// Waiting nodes whose dependencies all ended cannot exist; the rest
	// are skipped when their dependencies end, because makeReady checks
	// the abort and interrupt flags.
}

// evalInput is what a when expression sees.
func (e *Engine) evalInput(n *node) plan.EvalInput {
	return plan.EvalInput{Machine: n.inst.Machine, Image: n.inst.Image, Steps: e.inputs(n).Scope}
}

// inputs collects the outputs an instance may read.
func (e *Engine) inputs(n *node) plan.Inputs {
	in := plan.Inputs{Scope: map[string]*plan.Output{}}
	for name, si := range n.inst.Scope {
		if sn := e.byID[si.ID]; sn != nil && sn.out != nil {
			in.Scope[name] = sn.out
		}
	}
	if n.inst.Diff != nil {
		if dn := e.byID[n.inst.Diff.ID]; dn != nil {
			in.Diff = dn.out
		}
	}
	if n.inst.Version != nil {
		if vn := e.byID[n.inst.Version.ID]; vn != nil {
			in.Version = vn.out
		}
	}
	return in
}

func (e *Engine) summary() *Summary {
	s := &Summary{
		Plan:        e.p.Name,
		Started:     e.start,
		Finished:    e.now(),
		Counts:      map[Outcome]int{},
		Failures:    e.failures,
		AbortReason: e.abortReason,
		Decisions:   e.decisions,
	}
	if e.opt.Requests != nil {
		s.Requests = e.opt.Requests()
	}
	type agg struct {
		ts    TargetSummary
		first time.Time
		last  time.Time
	}
	targets := map[string]*agg{}
	var order []string
	for _, n := range e.nodes {
		if n.status == dormant {
			continue
		}
		s.Counts[n.result.Outcome]++
		if n.inst.Step.Type == plan.TypeSwitch && !n.inst.Step.OnFailure {
			s.Switches = append(s.Switches, OnFailureRun{Instance: n.inst.ID, Step: n.inst.Step.Name, Image: n.inst.Image.Name,
				Outcome: n.result.Outcome, Err: n.result.Err, Detail: n.result.Detail})
		}
		if n.inst.Step.OnFailure {
			s.OnFailure = append(s.OnFailure, OnFailureRun{Instance: n.inst.ID, Step: n.inst.Step.Name, Machine: machineName(n.inst), Image: n.inst.Image.Name,
				Outcome: n.result.Outcome, Err: n.result.Err, Detail: n.result.Detail, Noop: noop(n)})
		}
		if n.result.Outcome == Cancelled {
			s.Unfinished = append(s.Unfinished, e.unfinishedJobs(n)...)
		}
		key := machineName(n.inst) + "/" + n.inst.Image.Name
		a := targets[key]
		if a == nil {
			a = &agg{ts: TargetSummary{Machine: machineName(n.inst), Image: n.inst.Image.Name, Outcome: Succeeded}}
			targets[key] = a
			order = append(order, key)
		}
		if rank(n.result.Outcome) > rank(a.ts.Outcome) {
			a.ts.Outcome = n.result.Outcome
			a.ts.Err = n.result.Err
		}
		if !n.result.Started.IsZero() && (a.first.IsZero() || n.result.Started.Before(a.first)) {
			a.first = n.result.Started
		}
		if n.result.Finished.After(a.last) {
			a.last = n.result.Finished
		}
	}
	for _, k := range order {
		a := targets[k]
		if !a.first.IsZero() {
			a.ts.Elapsed = a.last.Sub(a.first)
		}
		s.Targets = append(s.Targets, a.ts)
	}
	s.Verdict = e.verdict(s)
	return s
}

// verdict decides how the run ended. It is the one place that does: the
// reporters, the live view and the command all read Summary.Verdict. A
// skipped instance counts against success because only a failure, an abort
// or an interrupt skips one (a false when is SkippedWhen, a success).
func (e *Engine) verdict(s *Summary) Verdict {
	switch {
	case e.interrupted:
		return VerdictInterrupted
	case e.aborted:
		return VerdictAborted
	case len(s.Failures) > 0 || s.Counts[Failed] > 0 || s.Counts[Cancelled] > 0 || s.Counts[Skipped] > 0:
		return VerdictFailed
	}
	return VerdictSucceeded
}

// rank orders outcomes by how much a person needs to see them.
func rank(o Outcome) int {
	switch o {
	case Failed:
		return 4
	case Cancelled:
		return 3
	case Skipped:
		return 2
	case SkippedWhen:
		return 1
	}
	return 0
}

// Notice passes a wait of the API client on to the observer. It is safe
// for concurrent use, before and during Run.
func (e *Engine) Notice(n Notice) {
	if n.At.IsZero() {
		n.At = e.now()
	}
	e.obs.Notice(n)
}

// interrupt stops the run on a signal or a confirmed cancel: nothing new
// starts and every wait ends; what runs returns through ctx.
func (e *Engine) interrupt() {
	e.interrupted = true
	e.skipAllNotStarted("interrupted")
	e.cancelWaits()
}

// fired ends a wait whose time came: a bake is done, an approval timed out.
func (e *Engine) fired(f waitFired) {
	w, ok := e.waits[f.id]
	if !ok {
		return
	}
	d := Decision{Kind: Baked, At: e.now()}
	if w.info.Kind == WaitApproval {
		d.Kind, d.Reason = TimedOut, "on_timeout: "+string(w.info.OnTimeout)
	}
	e.endWait(w, d, false)
}
