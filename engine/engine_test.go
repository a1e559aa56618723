package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// fixture is a plan, a simulator serving it over real HTTP, and the step
// environment of a run against it.
type fixture struct {
	p   *plan.Plan
	sim *sim.Server
	env *steps.Env
}

func newFixture(t testing.TB, src, scenario string) *fixture {
	t.Helper()
	p := simtest.Plan(t, src)
	e := simtest.Start(t, p, simtest.Scenario(t, scenario))
	pol := steps.PollPolicy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 1.5}
	return &fixture{p: p, sim: e.Server, env: &steps.Env{Client: e.Client, Installs: steps.NewInstallWatcher(e.Client, pol), Journal: steps.NopJournal{}, Poll: pol, Now: time.Now, Fleet: steps.FleetOf(p)}}
}

func (f *fixture) run(t testing.TB, ctx context.Context, obs engine.Observer) *engine.Summary {
	t.Helper()
	s, err := engine.New(f.p, engine.Options{Executor: steps.Executor{Env: f.env}, Requests: f.env.Client.Requests, Observer: obs}).Run(ctx)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	return s
}

// fast makes every job take a few tens of milliseconds.
const fast = `
speed: 100
durations: {startup: 3s, update: 5s, diff: 5s, version: 5s, mirror: 5s, install: 5s, uninstall: 5s}
`

// interval is when a step instance was busy remotely, as the simulator saw it.
type interval struct {
	name       string
	start, end time.Time
	seqS, seqE int
}

// instanceIntervals groups the simulator's timeline into one interval per
// step instance: a job from its creation (installs: from being queued) to
// its end. A version's mirror jobs form one interval, as one instance
// drives them all.
func instanceIntervals(tl []sim.Event) []interval {
	type acc struct {
		interval
		set bool
	}
	m := map[string]*acc{}
	key := func(e sim.Event) string {
		switch e.Kind {
		case sim.KindMirror:
			return fmt.Sprintf("mirror/%d", e.ImageID)
		case sim.KindInstall:
			return fmt.Sprintf("install/%s/%d", e.Machine, e.ImageID)
		}
		return fmt.Sprintf("%s/%d", e.Kind, e.JobID)
	}
	for _, e := range tl {
		k := key(e)
		a := m[k]
		if a == nil {
			a = &acc{interval: interval{name: k}}
			m[k] = a
		}
		begin := e.Event == "created" && e.Kind != sim.KindMirror && e.Kind != sim.KindInstall
		begin = begin || (e.Event == "queued" && (e.Kind == sim.KindMirror || e.Kind == sim.KindInstall))
		if begin && !a.set {
			a.start, a.seqS, a.set = e.Time, e.Seq, true
		}
		if e.Event == "completed" || e.Event == "failed" {
			a.end, a.seqE = e.Time, e.Seq
		}
	}
	var out []interval
	for _, a := range m {
		if a.set && a.seqE != 0 {
			out = append(out, a.interval)
		}
	}
	return out
}

// maxOverlap is the largest number of intervals open at once, by event order.
func maxOverlap(iv []interval) int {
	type pt struct{ seq, d int }
	var pts []pt
	for _, i := range iv {
		pts = append(pts, pt{i.seqS, +1}, pt{i.seqE, -1})
	}
	sort.Slice(pts, func(a, b int) bool { return pts[a].seq < pts[b].seq })
	cur, best := 0, 0
	for _, p := range pts {
		cur += p.d
		best = max(best, cur)
	}
	return best
}

func TestConcurrencyNeverExceeded(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			f := newFixture(t, simtest.FleetPlan("conc", []string{"game-a", "game-b"}, 8, limit, "", "", ""), fast)
			s := f.run(t, context.Background(), nil)
			if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) {
				t.Fatalf("run failed: %+v", s.Failures)
			}
			iv := instanceIntervals(f.sim.Timeline())
			// 2 updates, 2 diffs, 2 versions, 2 mirror instances, 16 installs.
			if len(iv) != 24 {
				t.Fatalf("intervals = %d, want 24", len(iv))
			}
			got := maxOverlap(iv)
			if got > limit {
				t.Fatalf("at most %d instances may run at once; the simulator saw %d", limit, got)
			}
			if limit > 1 && got < 2 {
				t.Fatalf("with concurrency %d the run never overlapped instances (max %d): the limit is not used", limit, got)
			}
		})
	}
}

func TestExactlyOneJobPerIntent(t *testing.T) {
	f := newFixture(t, simtest.FleetPlan("two", []string{"game-a", "game-b"}, 6, 4, `    waves: [1, "50%", "100%"]
`, "", ""), fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) || s.Counts[engine.Succeeded] != 2*(1+1+1+1+6) {
		t.Fatalf("summary: %+v", s)
	}
	count := map[string]int{}
	queued := map[string]int{}
	for _, r := range f.sim.Requests() {
		if r.Mutating {
			count[r.Endpoint]++
		}
		if r.Endpoint == sim.EPInstallQueue {
			queued[r.Path]++
		}
	}
	for ep, want := range map[string]int{sim.EPUpdateCreate: 2, sim.EPDiffCreate: 2, sim.EPVersionCreate: 2, sim.EPDiffReject: 0, sim.EPInstallQueue: 2*2 + 2*6} {
		if count[ep] != want {
			t.Errorf("%s sent %d times, want %d", ep, count[ep], want)
		}
	}
	for path, n := range queued {
		if n != 1 {
			t.Errorf("%s queued %d times", path, n)
		}
	}
}

// TestFaultyAPINeverDuplicatesAJob runs a two-image rollout through 429s,
// 5xx answers and answers dropped after the work was done, for several
// seeds, and checks that the rollout still succeeds with exactly one remote
// job per intent. Random 5xx answers are left out: a 5xx on an update create
// cannot be settled (a finished update leaves no trace to read), so it fails
// the step instead of risking a second update; the client's tests cover it.
func TestFaultyAPINeverDuplicatesAJob(t *testing.T) {
	for _, seed := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			f := newFixture(t, simtest.FleetPlan("chaos", []string{"game-a", "game-b"}, 4, 4, `    waves: ["50%", "100%"]
`, "", ""), fmt.Sprintf(`
seed: %d
speed: 100
durations: {startup: 3s, update: 5s, diff: 5s, version: 5s, mirror: 5s, install: 5s}
faults:
  rate_limit: 0.05
  retry_after: 1
  drop: 0.1
  targeted:
    - {endpoint: imageversion/create, fault: drop, count: 1}
    - {endpoint: imagediff/create, fault: drop, count: 1}
    - {endpoint: imagediff/create, fault: server_error, count: 1, skip: 1}
    - {endpoint: imageinstall/queue, fault: drop, count: 2}
    - {endpoint: imageinstall/queue, fault: server_error, count: 1, skip: 3}
    - {endpoint: imageinstall/status, fault: server_error, count: 3}
`, seed))
			s := f.run(t, context.Background(), nil)
			if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) {
				t.Fatalf("failures: %+v", s.Failures)
			}
			kinds := map[sim.Kind]int{}
			for _, j := range f.sim.Jobs() {
				kinds[j.Kind]++
			}
			for k, want := range map[sim.Kind]int{sim.KindUpdate: 2, sim.KindDiff: 2, sim.KindVersion: 2, sim.KindInstall: 8} {
				if kinds[k] != want {
					t.Errorf("%d %s jobs, want %d", kinds[k], k, want)
				}
			}
			queued := map[string]int{}
			faults := map[string]int{}
			for _, r := range f.sim.Requests() {
				if r.Fault != "" {
					faults[r.Fault]++
				}
				if r.Endpoint == sim.EPInstallQueue && r.Status == 200 && r.Fault != "rate_limit" && r.Fault != "server_error" && r.ErrorMessage == "" {
					queued[r.Path]++
				}
			}
			for p, n := range queued {
				if n != 1 {
					t.Errorf("%s queued %d times", p, n)
				}
			}
			if faults["drop"] < 4 || faults["server_error"] < 4 {
				t.Errorf("only %v faults were injected", faults)
			}
			t.Logf("faults injected: %v; requests %d", faults, s.Requests)
		})
	}
}

func TestWavesInOrder(t *testing.T) {
	// 6 machines and [1, "50%", "100%"] give waves of 1, 2 and 3.
	f := newFixture(t, simtest.FleetPlan("waves", []string{"game"}, 6, 6, `    waves: [1, "50%", "100%"]
`, "", ""), fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 {
		t.Fatalf("failures: %+v", s.Failures)
	}
	wave := map[string]int{"m000": 0, "m001": 1, "m002": 1, "m003": 2, "m004": 2, "m005": 2}
	queued := map[int][]int{}
	ended := map[int][]int{}
	for _, e := range f.sim.Timeline() {
		if e.Kind != sim.KindInstall {
			continue
		}
		w := wave[e.Machine]
		switch e.Event {
		case "queued":
			queued[w] = append(queued[w], e.Seq)
		case "completed", "failed":
			ended[w] = append(ended[w], e.Seq)
		}
	}
	for w := 1; w <= 2; w++ {
		if len(queued[w]) == 0 {
			t.Fatalf("wave %d never queued", w)
		}
		for _, q := range queued[w] {
			for _, e := range ended[w-1] {
				if q < e {
					t.Errorf("an install of wave %d was queued (seq %d) before wave %d ended (seq %d)", w+1, q, w, e)
				}
			}
		}
	}
}

// recorder keeps the observer events a test looks at.
type recorder struct {
	engine.NopObserver
	mu       sync.Mutex
	waves    []string
	aborting []string
	onJob    func(id string, j engine.JobInfo)
}

func (r *recorder) WaveStarted(step, image string, wave, waves int, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waves = append(r.waves, fmt.Sprintf("%s/%s/%d:%d", step, image, wave, len(ids)))
}

func (r *recorder) Aborting(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.aborting = append(r.aborting, reason)
}

func (r *recorder) JobProgress(id string, j engine.JobInfo) {
	if r.onJob != nil {
		r.onJob(id, j)
	}
}

func TestFailureBudgetAborts(t *testing.T) {
	// Wave 2 (m001, m002) fails twice; max_failures 1 aborts, wave 3 never
	// starts.
	scenario := fast + `
failures:
  - {kind: install, machine: m001, error: disk full}
  - {kind: install, machine: m002, error: disk full}
`
	f := newFixture(t, simtest.FleetPlan("budget", []string{"game"}, 6, 6, `    waves: [1, "50%", "100%"]
    max_failures: 1
`, "", ""), scenario)
	rec := &recorder{}
	s := f.run(t, context.Background(), rec)
	if (s.Verdict != engine.VerdictAborted) || len(rec.aborting) != 1 {
		t.Fatalf("aborted=%v aborting events=%v", (s.Verdict == engine.VerdictAborted), rec.aborting)
	}
	var failed []string
	for _, fl := range s.Failures {
		failed = append(failed, fl.Machine)
	}
	sort.Strings(failed)
	if strings.Join(failed, ",") != "m001,m002" {
		t.Fatalf("failures name %v, want m001 and m002", failed)
	}
	for _, e := range f.sim.Timeline() {
		if e.Kind == sim.KindInstall && e.Event == "queued" && (e.Machine == "m003" || e.Machine == "m004" || e.Machine == "m005") {
			t.Errorf("wave 3 machine %s was queued after the abort", e.Machine)
		}
	}
	if s.Counts[engine.Skipped] != 3 {
		t.Errorf("skipped = %d, want the 3 machines of wave 3", s.Counts[engine.Skipped])
	}
}

func TestFailedGateRejectsWithReinstall(t *testing.T) {
	f := newFixture(t, simtest.FleetPlan("gate", []string{"game"}, 2, 4, "", "steps.diff.changed < 0", `on_failure:
  - {name: reject, type: reject, reinstall: true}
`), fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 1 || !strings.HasPrefix(s.Failures[0].Instance, "gate@") {
		t.Fatalf("failures = %+v, want only the gate", s.Failures)
	}
	n := map[string]int{}
	for _, r := range f.sim.Requests() {
		n[r.Endpoint]++
	}
	if n[sim.EPDiffReject] != 1 || n[sim.EPVersionCreate] != 0 || n[sim.EPInstallQueue] != 0 {
		t.Fatalf("rejects=%d versions=%d queues=%d, want 1, 0, 0", n[sim.EPDiffReject], n[sim.EPVersionCreate], n[sim.EPInstallQueue])
	}
	var rejected []sim.Event
	for _, e := range f.sim.Timeline() {
		if e.Event == "rejected" {
			rejected = append(rejected, e)
		}
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0].Detail, "reinstall") {
		t.Fatalf("rejected events = %+v, want one with a reinstall", rejected)
	}
	// The summary says what on_failure cleaned up.
	var ran []string
	for _, o := range s.OnFailure {
		ran = append(ran, o.Instance+": "+o.Detail)
	}
	if len(ran) != 1 || !strings.Contains(ran[0], fmt.Sprintf("rejected diff %d; reinstall job", rejected[0].JobID)) {
		t.Fatalf("summary on_failure runs = %q", ran)
	}
}

func TestInterruptLeavesNothingRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t, simtest.FleetPlan("cancel", []string{"game"}, 4, 4, "", "", `on_failure:
  - {name: reject, type: reject, reinstall: true}
`), `
speed: 20
durations: {startup: 1s, update: 2s, diff: 2s, version: 2s, mirror: 2s, install: 60s}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var cancelledAt time.Time
	var mu sync.Mutex
	rec := &recorder{onJob: func(id string, j engine.JobInfo) {
		if strings.HasPrefix(id, "install@") && j.StateName == "Running" {
			once.Do(func() {
				mu.Lock()
				cancelledAt = time.Now()
				mu.Unlock()
				cancel()
			})
		}
	}}
	s := f.run(t, ctx, rec)
	if s.Verdict != engine.VerdictInterrupted {
		t.Fatalf("summary not interrupted: %+v", s)
	}
	if len(s.Unfinished) == 0 {
		t.Fatalf("no unfinished jobs reported; counts %v", s.Counts)
	}
	for _, u := range s.Unfinished {
		if u.Job.ID == 0 || u.Job.StateName == "" {
			t.Errorf("unfinished job without id or state: %+v", u)
		}
	}
	mu.Lock()
	at := cancelledAt
	mu.Unlock()
	for _, r := range f.sim.Requests() {
		if r.Mutating && r.Time.After(at.Add(50*time.Millisecond)) {
			t.Errorf("state-changing %s sent after the interrupt", r.Endpoint)
		}
	}
	// Keep-alive connections of the client and the simulator's server
	// are not the engine's: close them, then count.
	f.env.Client.CloseIdleConnections()
	f.sim.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before, %d after the run\n%s", before, g, buf[:n])
	}
}

func TestStatusReadsFewerThanOnePerSecond(t *testing.T) {
	// The comparison is made in the simulator's time: at speed 10 a
	// second of job time passes in 100 ms, so the engine polls with the
	// production policy scaled by 10, and a script polling every job
	// every second makes one read per job per simulated second of its
	// life.
	const speed = 10
	f := newFixture(t, simtest.FleetPlan("reads", []string{"game"}, 20, 20, "", "", ""), `
speed: 10
durations: {startup: 3s, update: 20s, diff: 10s, version: 15s, mirror: 10s, install: 15s}
`)
	pol := steps.DefaultPollPolicy()
	pol.Min /= speed
	pol.Max /= speed
	f.env.Poll = pol
	f.env.Installs = steps.NewInstallWatcher(f.env.Client, pol)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 {
		t.Fatalf("failures: %+v", s.Failures)
	}
	script := 0.0
	for _, iv := range instanceIntervals(f.sim.Timeline()) {
		script += iv.end.Sub(iv.start).Seconds() * speed
	}
	reads := 0
	for _, r := range f.sim.Requests() {
		if !r.Mutating {
			reads++
		}
	}
	t.Logf("status reads %d; a once-a-second script: %.0f", reads, script)
	if float64(reads) >= script {
		t.Fatalf("made %d reads, a once-a-second script makes %.0f", reads, script)
	}
}

// BenchmarkRollout1000 rolls one image out to 1,000 machines against the
// in-process simulator with near-zero job durations, and reports the API
// requests made per remote job.
func BenchmarkRollout1000(b *testing.B) {
	src := simtest.FleetPlan("bench", []string{"game"}, 1000, 64, `    waves: ["10%", "100%"]
`, "", "")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := newFixture(b, src, `
speed: 1000
durations: {startup: 3ms, update: 5ms, diff: 5ms, version: 5ms, mirror: 5ms, install: 5ms}
`)
		pol := steps.PollPolicy{Min: time.Millisecond, Max: 20 * time.Millisecond, Factor: 1.5}
		f.env.Poll = pol
		f.env.Installs = steps.NewInstallWatcher(f.env.Client, pol)
		b.StartTimer()
		s := f.run(b, context.Background(), nil)
		b.StopTimer()
		if len(s.Failures) != 0 || s.Counts[engine.Succeeded] != 1004 {
			b.Fatalf("summary: %v %+v", s.Counts, s.Failures)
		}
		jobs := len(f.sim.Jobs())
		b.ReportMetric(float64(s.Requests)/float64(jobs), "requests/job")
		b.ReportMetric(float64(s.Requests), "requests")
		f.sim.Close()
		b.StartTimer()
	}
}

// starts counts InstanceStarted per instance.
type starts struct {
	engine.NopObserver
	mu sync.Mutex
	n  map[string]int
}

func (s *starts) InstanceStarted(id string, _ time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[id]++
}

// TestResumedRunStartsEachInstanceOnce: on a resume, the restored instances
// end during the engine's first scan and release their dependents, which
// the scan meets again; instances of a later wave must still be queued and
// started exactly once.
func TestResumedRunStartsEachInstanceOnce(t *testing.T) {
	f := newFixture(t, simtest.FleetPlan("resume", []string{"game"}, 4, 4, `    waves: [1, "50%", "100%"]
`, "", ""), fast)
	// The real journal, as a resumed run reads it.
	sj, j := journal(t, f.p)
	// The first run stops at the first install, as a crash would.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &recorder{onJob: func(id string, job engine.JobInfo) {
		if strings.HasPrefix(id, "install@") {
			cancel()
		}
	}}
	s1, err := engine.New(f.p, engine.Options{Executor: steps.Executor{Env: f.env}, Requests: f.env.Client.Requests, Observer: first, Journal: j}).Run(ctx)
	if err != nil || (s1.Verdict != engine.VerdictInterrupted) {
		t.Fatalf("first run: %v %+v", err, s1)
	}
	st := &starts{n: map[string]int{}}
	s2, err := engine.New(f.p, engine.Options{Executor: steps.Executor{Env: f.env}, Requests: f.env.Client.Requests, Observer: st, Journal: j, Resumed: true}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.Failures) != 0 || s2.Counts[engine.Succeeded] != len(f.p.Instances) {
		t.Fatalf("resumed run: %v %+v", s2.Counts, s2.Failures)
	}
	for id, n := range st.n {
		if n != 1 {
			t.Errorf("%s started %d times", id, n)
		}
	}
	for _, in := range f.p.Instances {
		if _, done := sj.Succeeded(in.ID); in.Step.Type == plan.TypeInstall && !in.PerImage() && st.n[in.ID] != 1 && !done {
			t.Errorf("%s never ran", in.ID)
		}
	}
}
