package steps

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

const simPlan = `version: 1
name: sim-steps
clanforge: {asid: 1234}
vars: {build: "1.4.2", max_changed: 300}
images:
  - {name: game-b, id: 5531}
machines:
  - {name: buildbox-1, id: 770001, labels: {role: build}}
  - {name: eu-1, id: 812345, labels: {role: fleet, region: eu}}
  - {name: eu-2, id: 812346, labels: {role: fleet, region: eu}}
  - {name: us-1, id: 812400, labels: {role: fleet, region: us}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "build ${vars.build}"
    url: "s3://AKIAXX:TOPSECRETVALUE@builds/game/${vars.build}/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
    retries: 1
  - name: small-change
    type: gate
    needs: [diff]
    expr: steps.diff.changed <= vars.max_changed
  - name: version
    type: version
    needs: [small-change]
    game_build: "${vars.build}"
    full: auto
  - name: mirror
    type: install
    needs: [version]
    mirroring: true
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    mirroring: false
on_failure:
  - type: reject
    reinstall: true
`

type simRig struct {
	p      *plan.Plan
	srv    *sim.Server
	client *clanforge.Client
	env    *Env
	j      *MemJournal
	mu     sync.Mutex
	outs   map[string]*plan.Output
}

func newSimRig(t *testing.T, src string, sc sim.Scenario) *simRig {
	t.Helper()
	p := simtest.Plan(t, src)
	if sc.Speed == 0 {
		sc.Speed = 400
	}
	e := simtest.Start(t, p, sc, simtest.ReadAttempts(3))
	c := e.Client
	pol := PollPolicy{Min: 5 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	j := &MemJournal{}
	return &simRig{p: p, srv: e.Server, client: c, j: j, outs: map[string]*plan.Output{},
		env: &Env{Client: c, Journal: j, Poll: pol, Installs: NewInstallWatcher(c, pol)}}
}

func (r *simRig) inputs(in *plan.Instance) plan.Inputs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return inputsFrom(r.outs, in)
}

// inputsFrom collects the outputs in may read from those of the instances
// a test rig ran (by instance id), as the engine hands them over.
func inputsFrom(outs map[string]*plan.Output, in *plan.Instance) plan.Inputs {
	x := plan.Inputs{Scope: map[string]*plan.Output{}}
	for name, s := range in.Scope {
		x.Scope[name] = outs[s.ID]
	}
	if in.Diff != nil {
		x.Diff = outs[in.Diff.ID]
	}
	if in.Version != nil {
		x.Version = outs[in.Version.ID]
	}
	return x
}

// run executes the plan's instances in their topological order; the
// instances of one install step run concurrently, as a wave would. It
// returns the first failure and the failed instance.
func (r *simRig) run(t *testing.T) (*plan.Instance, error) {
	t.Helper()
	// A stuck simulator fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	insts := r.p.Instances
	for i := 0; i < len(insts); {
		k := i + 1
		if insts[i].Step.Type == plan.TypeInstall {
			for k < len(insts) && insts[k].Step == insts[i].Step {
				k++
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, k-i)
		for n := i; n < k; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := Run(ctx, r.env, insts[n], r.inputs(insts[n]), nil)
				r.mu.Lock()
				r.outs[insts[n].ID] = out
				r.mu.Unlock()
				errs[n-i] = err
			}()
		}
		wg.Wait()
		for n, err := range errs {
			if err != nil {
				return insts[i+n], err
			}
		}
		i = k
	}
	return nil, nil
}

func (r *simRig) count(ep string) int {
	n := 0
	for _, q := range r.srv.Requests() {
		if q.Endpoint == ep {
			n++
		}
	}
	return n
}

func TestSimFullRollout(t *testing.T) {
	r := newSimRig(t, simPlan, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "checksum"}}})
	if failed, err := r.run(t); err != nil {
		t.Fatalf("%s: %v", failed.ID, err)
	}
	for ep, want := range map[string]int{
		sim.EPUpdateCreate: 1, sim.EPDiffCreate: 1, sim.EPDiffRetry: 1, sim.EPVersionCreate: 1,
		sim.EPInstallQueue: 2 + 3, // two mirror locations (eu, us), three machines
	} {
		if got := r.count(ep); got != want {
			t.Errorf("%s: %d calls, want %d", ep, got, want)
		}
	}
	d := r.outs["diff@buildbox-1/game-b"]
	if d == nil || d.DiffID == 0 || d.Changed == 0 {
		t.Errorf("diff output %+v", d)
	}
	latest := r.srv.LatestVersion(5531)
	if v := r.outs["version@game-b"]; v == nil || v.VersionID != latest {
		t.Errorf("version output %+v, latest %d", v, latest)
	}
	for _, m := range []int64{812345, 812346, 812400} {
		if got := r.srv.InstalledVersion(m, 5531); got != latest {
			t.Errorf("machine %d has version %d, want %d", m, got, latest)
		}
	}
	if got := r.srv.GameBuild(5531); got != "1.4.2" {
		t.Errorf("game build %q", got)
	}
	for key, p := range r.j.allParams() {
		for _, v := range p {
			if strings.Contains(v, "TOPSECRET") {
				t.Errorf("journal %s leaks a secret: %v", key, p)
			}
		}
	}
}

func TestSimGateFalseThenReject(t *testing.T) {
	src := strings.Replace(simPlan, "max_changed: 300", "max_changed: 0", 1)
	r := newSimRig(t, src, sim.Scenario{})
	failed, err := r.run(t)
	if err == nil || failed.Step.Name != "small-change" {
		t.Fatalf("failed %v: %v, want the gate to fail", failed, err)
	}
	// The error says why: the values the expression read.
	if want := `gate "small-change" is false: steps.diff.changed <= vars.max_changed, where steps.diff.changed = 2, vars.max_changed = 0`; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if locks := r.srv.Locks(); len(locks) != 1 {
		t.Fatalf("locks before reject: %v", locks)
	}
	var reject *plan.Instance
	for _, fi := range r.p.FailureInstances {
		for _, tr := range fi.Trigger {
			if tr == failed {
				reject = fi
			}
		}
	}
	if reject == nil {
		t.Fatal("no reject instance for the failed gate")
	}
	var u updates
	if _, err := Run(context.Background(), r.env, reject, r.inputs(reject), u.add); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if locks := r.srv.Locks(); len(locks) != 0 {
		t.Errorf("locks after reject: %v", locks)
	}
	if r.count(sim.EPDiffReject) != 1 || len(u.states(KindUninstall)) != 1 {
		t.Errorf("rejects %d, uninstall reports %v", r.count(sim.EPDiffReject), u.states(KindUninstall))
	}
	// Run again (an on_failure re-run after resume): nothing more is sent.
	if _, err := Run(context.Background(), r.env, reject, r.inputs(reject), nil); err != nil {
		t.Fatal(err)
	}
	if r.count(sim.EPDiffReject) != 1 {
		t.Errorf("rejects %d after a second run, want 1", r.count(sim.EPDiffReject))
	}
}

func TestSimInstallFailure(t *testing.T) {
	r := newSimRig(t, simPlan, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindInstall, Machine: "eu-2", Error: "disk full"}}})
	failed, err := r.run(t)
	if err == nil || failed.ID != "install@eu-2/game-b" || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failed %v: %v", failed, err)
	}
	for _, id := range []string{"install@eu-1/game-b", "install@us-1/game-b"} {
		if out := r.outs[id]; out == nil || out.State != plan.OutputSucceeded {
			t.Errorf("%s: %+v", id, out)
		}
	}
}

func TestDescribe(t *testing.T) {
	p, err := plan.Parse("sim.yaml", []byte(simPlan), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*plan.Instance{}
	for _, in := range append(append([]*plan.Instance{}, p.Instances...), p.FailureInstances...) {
		byID[in.ID] = in
	}
	tests := []struct {
		id        string
		endpoints []string
		mutating  []bool
		param     [2]string // one key and its expected value on the first call
	}{
		{"update@buildbox-1/game-b", []string{"/cfp/v1/imageupdate/create", "/cfp/v1/imageupdate/<updateid>/status"}, []bool{true, false}, [2]string{"url", "s3://***@builds/game/1.4.2/"}},
		{"diff@buildbox-1/game-b", []string{"/cfp/v1/imagediff/create", "/cfp/v1/imagediff/<diffid>/status", "/cfp/v1/imagediff/<diffid>/retry"}, []bool{true, false, true}, [2]string{"machineid", "770001"}},
		{"small-change@buildbox-1/game-b", []string{""}, []bool{false}, [2]string{}},
		{"version@game-b", []string{"/cfp/v1/imageversion/create", "/cfp/v1/imageversion/<imageversionid>/status"}, []bool{true, false}, [2]string{"diffid", "<diffid from diff@buildbox-1/game-b>"}},
		{"mirror@game-b", []string{"/cfp/v1/imageinstall/status", "/cfp/v1/imageinstall/<jobid>/queue"}, []bool{false, true}, [2]string{"accountserviceid", "1234"}},
		{"install@eu-1/game-b", []string{"/cfp/v1/imageinstall/status", "/cfp/v1/imageinstall/<jobid>/queue"}, []bool{false, true}, [2]string{"accountserviceid", "1234"}},
	}
	for _, tt := range tests {
		in := byID[tt.id]
		if in == nil {
			t.Errorf("no instance %s", tt.id)
			continue
		}
		calls := Describe(in, 1234)
		var eps []string
		var mut []bool
		for _, c := range calls {
			eps = append(eps, c.Endpoint)
			mut = append(mut, c.Mutating)
			for k, v := range c.Params {
				if strings.Contains(v, "TOPSECRET") {
					t.Errorf("%s: param %s leaks a secret", tt.id, k)
				}
			}
		}
		if strings.Join(eps, " ") != strings.Join(tt.endpoints, " ") || len(mut) != len(tt.mutating) {
			t.Errorf("%s: endpoints %q, want %q", tt.id, eps, tt.endpoints)
			continue
		}
		for i := range mut {
			if mut[i] != tt.mutating[i] {
				t.Errorf("%s: call %d mutating=%v", tt.id, i, mut[i])
			}
		}
		if tt.param[0] != "" && calls[0].Params[tt.param[0]] != tt.param[1] {
			t.Errorf("%s: %s=%q, want %q", tt.id, tt.param[0], calls[0].Params[tt.param[0]], tt.param[1])
		}
	}
	gate := Describe(byID["small-change@buildbox-1/game-b"], 1234)
	if !strings.Contains(gate[0].Note, "steps.diff.changed <= vars.max_changed") {
		t.Errorf("gate note %q", gate[0].Note)
	}
	v := Describe(byID["version@game-b"], 1234)[0].Params
	if v["full"] != "<1 if diff@buildbox-1/game-b has no changes, else not sent>" || v["game_build"] != "1.4.2" || v["install_at"] != "" || v["force"] != "" {
		t.Errorf("version params %v", v)
	}
	for _, fi := range p.FailureInstances {
		calls := Describe(fi, 1234)
		if len(calls) != 2 || calls[1].Params["reinstall"] != "1" || !strings.Contains(calls[1].Endpoint, "<diffid from diff@") {
			t.Errorf("%s: %+v", fi.ID, calls)
		}
	}
}

// The single-step tests run one instance at a time against the simulator
// (a stepRig). Its clock moves only with the requests it serves, stepTick
// each, so a job's states follow the reads of it, never the wall clock or
// the machine's load: a job of one second's run time is Running for ten
// requests, whenever they come. "While the rollout was down" is an advance
// of the clock with no request.

// stepPlan is simPlan's inventory with a fleet machine in a third region,
// so that a version makes three mirror jobs (eu, us, ap) and four machine
// jobs.
var stepPlan = strings.Replace(simPlan, "  - {name: us-1, id: 812400, labels: {role: fleet, region: us}}\n",
	"  - {name: us-1, id: 812400, labels: {role: fleet, region: us}}\n  - {name: ap-1, id: 812500, labels: {role: fleet, region: ap}}\n", 1)

// stepTick is how far a stepRig's clock moves with each request.
const stepTick = 100 * time.Millisecond

// stepDurations are a stepRig's run times (at speed 1): the startup's
// thirds (Created, Pending, Queued) one request each, then ten requests for
// an update, diff or version, six for a mirror or machine install.
var stepDurations = sim.Durations{Startup: 3 * stepTick, Update: time.Second, Diff: time.Second, Version: time.Second,
	Mirror: 6 * stepTick, Install: 6 * stepTick, Uninstall: 6 * stepTick}

// Builds of a stepRig: "build 1.4.2" (stepPlan's update) adds, modifies
// and removes one file each; "build 1.4.3" changes nothing.
const emptyBuild = "build 1.4.3"

var stepBuilds = []sim.Build{
	{Desc: "build 1.4.2", Added: []string{"Data/level9.pak"}, Modified: []string{"GameServer.x86_64"}, Removed: []string{"Data/level1.pak"}},
	{Desc: emptyBuild},
}

// stepRig is a simRig whose simulator runs on a clock that moves only
// with the requests it serves; calls counts the test's own requests.
type stepRig struct {
	*simRig
	clock *sim.FakeClock
	// setup runs what a test needs before its own instance (an update, a
	// version, the mirrors) with a watcher of its own and no journal: each
	// is a rollout of its own.
	setup *Env
	// base is the number of requests before the test's own: calls counts
	// from there.
	base int

	mu sync.Mutex
	// sent is every request as it arrived, query included.
	sent []sent
	// intercept, when set, sees each request after the clock moved and
	// may serve it itself (returning true) instead of the simulator.
	intercept func(w http.ResponseWriter, req *http.Request) bool
}

// newStepRig serves src's inventory (stepPlan when "") with scenario sc,
// whose zero speed, durations and builds take the stepRig's.
func newStepRig(t *testing.T, src string, sc sim.Scenario) *stepRig {
	t.Helper()
	if src == "" {
		src = stepPlan
	}
	if sc.Speed == 0 {
		sc.Speed = 1
	}
	if sc.Durations == (sim.Durations{}) {
		sc.Durations = stepDurations
	}
	if sc.Builds == nil {
		sc.Builds = stepBuilds
	}
	p := simtest.Plan(t, src)
	r := &stepRig{clock: sim.NewFakeClock(time.Now())}
	front := func(s *sim.Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.clock.Advance(stepTick)
			r.mu.Lock()
			r.sent = append(r.sent, sent{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query()})
			intercept := r.intercept
			r.mu.Unlock()
			if intercept != nil && intercept(w, req) {
				return
			}
			s.ServeHTTP(w, req)
		})
	}
	e := simtest.Start(t, p, sc, simtest.ReadAttempts(3), simtest.Clock(r.clock), simtest.Front(front))
	r.simRig = &simRig{p: p, srv: e.Server, client: e.Client, j: &MemJournal{}, outs: map[string]*plan.Output{}}
	r.env = newEnv(e.Client, r.j, testPol)
	r.setup = newEnv(e.Client, nil, testPol)
	t.Cleanup(r.env.Installs.Close)
	t.Cleanup(r.setup.Installs.Close)
	return r
}

// mark makes calls count from here.
func (r *stepRig) mark() { r.base = len(r.srv.Requests()) }

// calls counts the requests to endpoint ep since the last mark, those a
// fault answered included.
func (r *stepRig) calls(ep string) int {
	n := 0
	for _, q := range r.srv.Requests()[r.base:] {
		if q.Endpoint == ep {
			n++
		}
	}
	return n
}

// readsOf counts the requests to path since the last mark.
func (r *stepRig) readsOf(path string) int {
	n := 0
	for _, q := range r.srv.Requests()[r.base:] {
		if q.Path == path {
			n++
		}
	}
	return n
}

// versions counts the version jobs the simulator made.
func (r *stepRig) versions() int {
	n := 0
	for _, j := range r.srv.Jobs() {
		if j.Kind == sim.KindVersion {
			n++
		}
	}
	return n
}

// sentTo returns the requests whose path is path, in order.
func (r *stepRig) sentTo(path string) []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sent
	for _, s := range r.sent {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

func (r *stepRig) machine(name string) *plan.Machine {
	for _, m := range r.p.Machines {
		if m.Name == name {
			return m
		}
	}
	panic("no machine " + name)
}

// exec runs in with the test's Env, bounded so that a stuck simulator
// fails the test instead of hanging it.
func (r *stepRig) exec(in *plan.Instance, inputs plan.Inputs, progress func(JobUpdate)) (*plan.Output, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return Run(ctx, r.env, in, inputs, progress)
}

// prepare runs in with the setup Env; it must succeed. Calls count from
// after it.
func (r *stepRig) prepare(t *testing.T, in *plan.Instance, inputs plan.Inputs) *plan.Output {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := Run(ctx, r.setup, in, inputs, nil)
	if err != nil {
		t.Fatalf("setup %s: %v", in.ID, err)
	}
	r.mark()
	return out
}

// update runs an update of game-b on buildbox-1 with desc (a build of
// stepBuilds).
func (r *stepRig) update(t *testing.T, desc string) *plan.Output {
	t.Helper()
	s := updateStep(0)
	s.Desc = plan.Value{Resolved: desc, Display: desc}
	return r.prepare(t, instFor(s, build1), plan.Inputs{})
}

// diff leaves a completed diff that locks game-b, with changes or without
// (then on top of a version with changes, so that full=1 is accepted), and
// returns its output.
func (r *stepRig) diff(t *testing.T, changes bool) *plan.Output {
	t.Helper()
	if !changes {
		r.version(t, plan.InstallManual)
		r.update(t, emptyBuild)
		return r.prepare(t, instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{})
	}
	r.update(t, "build 1.4.2")
	return r.prepare(t, instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{})
}

// version makes a completed version of game-b (install_at at) from a build
// with changes and returns its output; under install_at manual its install
// jobs are held.
func (r *stepRig) version(t *testing.T, at plan.InstallAt) *plan.Output {
	t.Helper()
	return r.versionOf(t, imgB, at)
}

// versionOf is version for image img.
func (r *stepRig) versionOf(t *testing.T, img *plan.Image, at plan.InstallAt) *plan.Output {
	t.Helper()
	r.prepare(t, instOf(updateStep(0), img, build1), plan.Inputs{})
	d := r.prepare(t, instOf(&plan.Step{Name: "diff", Type: plan.TypeDiff}, img, build1), plan.Inputs{})
	v := instOf(&plan.Step{Name: "version", Type: plan.TypeVersion, InstallAt: at, Full: plan.FullAuto}, img, nil)
	return r.prepare(t, v, plan.Inputs{Diff: d})
}

// mirrors queues the version's mirror jobs and waits for them, as the
// mirror step does before the machine installs (which wait for their
// location's mirror).
func (r *stepRig) mirrors(t *testing.T, v *plan.Output) {
	t.Helper()
	r.prepare(t, installInst(installStep(true), nil, plan.InstallManual), plan.Inputs{Version: v})
}

// installJobs returns the install jobs of version v in the simulator:
// mirror jobs by id, machine jobs by machine id.
func (r *stepRig) installJobs(v int64) (mirrors []int64, machines map[int64]int64) {
	machines = map[int64]int64{}
	for _, j := range r.srv.Jobs() {
		switch {
		case j.TargetVersion != v:
		case j.Kind == sim.KindMirror:
			mirrors = append(mirrors, j.ID)
		case j.Kind == sim.KindInstall:
			machines[j.MachineID] = j.ID
		}
	}
	return mirrors, machines
}

// job returns the simulator's snapshot of a job.
func (r *stepRig) job(t *testing.T, kind sim.Kind, id int64) sim.JobInfo {
	t.Helper()
	j, ok := r.srv.Job(kind, id)
	if !ok {
		t.Fatalf("the simulator has no %s job %d", kind, id)
	}
	return j
}

// targeted is a fault for the first count requests to endpoint ep
// after skip of them went through.
func targeted(ep, fault string, count, skip int) sim.Faults {
	return sim.Faults{Targeted: []sim.TargetedFault{{Endpoint: ep, Fault: fault, Count: count, Skip: skip}}}
}

// interruptOnDrop makes the run's context end as the simulator drops the
// answer to the first request to a path ending in suffix, after its work.
func (r *stepRig) interruptOnDrop(suffix string) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	r.intercept = func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, suffix) {
			return false
		}
		r.srv.ServeHTTP(cancelOnDrop{w, cancel}, req)
		return true
	}
	return ctx
}

// cancelOnDrop cancels a run at the moment the simulator drops the answer
// to a request it has done the work of: an interrupt that arrives while
// the answer is on its way.
type cancelOnDrop struct {
	http.ResponseWriter
	cancel func()
}

func (c cancelOnDrop) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c.cancel()
	return c.ResponseWriter.(http.Hijacker).Hijack()
}
