package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// TestChaos proves the resume promise in a moving world: many trials of
// run, kill at a random moment (SIGKILL, SIGTERM or SIGINT; at a random time
// or on a chosen state-changing request, before the API saw it or after it
// did the work but before the answer arrived), let remote time pass (the
// simulator's jobs go on while the binary is dead), resume (sometimes killed
// again), against the simulator with random faults. Every trial must end
// with exit 0, and the simulator's own record must show exactly one remote
// job per intent: one update, diff and version per image, every install job
// queued once, and every install completed.
//
// CHAOS_TRIALS sets the number of trials (default 8; `make chaos` runs
// more), CHAOS_SEED the first trial's seed (default: random), CHAOS_PARALLEL
// how many run at once (default 4).
//
// Every trial may meet the two hardest dangers: bursts of 5xx on every
// create (the client resends a call only while a read proves the earlier
// sends did nothing, and never an update create), and a kill or a dropped
// answer between an update create's work and its answer (a resume after
// that update ended finds no lock and nothing else that names it). The run
// then sends nothing on a guess: it stops and asks a person, with
// --resend or --assume-sent; the test is that person and answers from the
// simulator's record. CHAOS_CLIENT_RESENDS=0 and CHAOS_UPDATE_WINDOW=0
// leave them out. Each trial's
// seed is printed; CHAOS_SEED=<seed> CHAOS_TRIALS=1 replays the trial's
// plan, scenario, faults and kills (the interleaving of requests depends on
// timing, so a replay meets the same dangers, not the same instants).
func TestChaos(t *testing.T) {
	trials := 8
	if v := os.Getenv("CHAOS_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_TRIALS=%q: want a positive number", v)
		}
		trials = n
	}
	base := rand.Uint64() % 1_000_000_000
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number", v)
		}
		base = n
	}
	// Trials mostly wait (on the simulator's clock, on pauses), so more
	// of them run at once than there are cores; -parallel does not bound
	// them, CHAOS_PARALLEL does.
	workers := 4
	if v := os.Getenv("CHAOS_PARALLEL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_PARALLEL=%q: want a positive number", v)
		}
		workers = n
	}
	t.Logf("chaos: %d trials from seed %d, %d at a time (replay one with CHAOS_SEED=<seed> CHAOS_TRIALS=1)", trials, base, workers)
	st := newStats()
	t.Run("trials", func(t *testing.T) {
		sem := make(chan struct{}, workers)
		var wg sync.WaitGroup
		for i := range trials {
			seed := base + uint64(i)
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					runTrial(t, newTrial(seed), st)
				})
			}()
		}
		wg.Wait()
	})
	t.Log(st.String())
}

// chaosPlan rolls out two images through one build machine to four fleet
// machines in three waves (one when install_at is now), so that kills land in every phase: updates,
// diffs, versions, mirror jobs and machine installs of both images, side by
// side. The diff is retried once, so a scenario may fail a diff.
const chaosPlan = `version: 1
name: chaos
clanforge: {asid: 4321}
concurrency: 4
vars: {build: "9.1.0"}
images:
  - {name: game-a, id: 5530}
  - {name: game-b, id: 5531}
machines:
  - {name: buildbox-1, id: 770001, labels: {role: build}}
  - {name: eu-1, id: 812345, labels: {role: fleet, region: eu}}
  - {name: eu-2, id: 812346, labels: {role: fleet, region: eu}}
  - {name: us-1, id: 812400, labels: {role: fleet, region: us}}
  - {name: us-2, id: 812401, labels: {role: fleet, region: us}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "build ${vars.build}"
    url: "s3://AKIACHAOS:s3cr3tchaos@builds/game/${vars.build}/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
    retries: 1
  - name: version
    type: version
    needs: [diff]
    restart: true
    full: auto
    install_at: %s
  - name: mirror
    type: install
    needs: [version]
    mirroring: true
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    mirroring: false
%s`

// chaosWaves installs a machine first, then a quarter, then the rest. Waves
// need install_at manual: under now every job starts at once.
const chaosWaves = `    waves: [1, "50%", "100%"]
`

const (
	chaosAccess = "AKchaos-access"
	chaosSecret = "sk-chaos-secret-value"
	// planSecret is the password inside the plan's update URL.
	planSecret = "s3cr3tchaos"
)

// kill is one kill of one run.
type kill struct {
	sig syscall.Signal
	// call > 0 kills on the call-th state-changing request of the run:
	// before the API sees it, or (after) once the API did the work, the
	// answer then never arriving. call == 0 kills after delay.
	call  int
	after bool
	delay time.Duration
	// pause is the remote time that passes before the next run.
	pause time.Duration
}

func (k kill) String() string {
	when := fmt.Sprintf("at %s", k.delay.Round(time.Millisecond))
	if k.call > 0 {
		when = fmt.Sprintf("on call %d before the work", k.call)
		if k.after {
			when = fmt.Sprintf("on call %d after the work", k.call)
		}
	}
	return fmt.Sprintf("%s %s, pause %s", sigName(k.sig), when, k.pause.Round(time.Millisecond))
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

// trial is everything a seed decides.
type trial struct {
	seed      uint64
	installAt string
	speed     float64
	jitter    float64
	diffFail  string // image whose first diff fails; "" for none
	rateLimit float64
	latency   time.Duration
	targeted  []sim.TargetedFault
	// Faults the test's proxy injects: a 503 on a read, and a dropped
	// answer (the work done, the connection closed) on any request but
	// imageupdate/create. An update's lost answer is settled from its
	// lock while the update runs, and the simulator's updates at these
	// speeds end within the client's first backoff; a real update takes
	// minutes.
	read5xx float64
	drop    float64
	kills   []kill
}

// Opt-in dangers; see TestChaos.
var (
	clientResends = os.Getenv("CHAOS_CLIENT_RESENDS") != "0"
	updateWindow  = os.Getenv("CHAOS_UPDATE_WINDOW") != "0"
)

func newTrial(seed uint64) trial {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tr := trial{
		seed:      seed,
		installAt: "manual",
		speed:     25 + 25*r.Float64(),
		jitter:    0.3 * r.Float64(),
		latency:   time.Duration(r.IntN(3)) * time.Millisecond,
		read5xx:   0.15 * r.Float64(),
		drop:      0.12 * r.Float64(),
	}
	if r.IntN(4) == 0 {
		tr.installAt = "now"
	}
	if r.IntN(3) == 0 {
		tr.diffFail = []string{"game-a", "game-b"}[r.IntN(2)]
	}
	if r.IntN(3) == 0 {
		// Each 429 holds the client a second (Retry-After: 1).
		tr.rateLimit = 0.01
	}
	// Targeted faults on state-changing calls the rollout settles: a
	// dropped answer (the work done), a 429, or a 5xx before any work
	// (resent once proven harmless). A 5xx on imageupdate/create, and
	// two in a row on imagediff/create, only with CHAOS_CLIENT_RESENDS; a
	// dropped answer to imageupdate/create only with CHAOS_UPDATE_WINDOW.
	updateFaults := []string{sim.FaultRateLimit}
	if clientResends {
		updateFaults = append(updateFaults, sim.FaultServerError)
	}
	if updateWindow {
		updateFaults = append(updateFaults, sim.FaultDrop)
	}
	targets := []struct {
		ep     string
		faults []string
	}{
		{sim.EPUpdateCreate, updateFaults},
		{sim.EPDiffRetry, []string{sim.FaultDrop, sim.FaultRateLimit, sim.FaultServerError}},
		{sim.EPDiffCreate, []string{sim.FaultDrop, sim.FaultRateLimit, sim.FaultServerError}},
		{sim.EPVersionCreate, []string{sim.FaultDrop, sim.FaultRateLimit, sim.FaultServerError}},
		{sim.EPInstallQueue, []string{sim.FaultDrop, sim.FaultRateLimit, sim.FaultServerError}},
		{sim.EPInstallStatus, []string{sim.FaultDrop, sim.FaultServerError}},
		{sim.EPImageOptions, []string{sim.FaultDrop, sim.FaultServerError}},
	}
	for range r.IntN(3) {
		tg := targets[r.IntN(len(targets))]
		f := sim.TargetedFault{Endpoint: tg.ep, Fault: tg.faults[r.IntN(len(tg.faults))], Count: 1 + r.IntN(2), Skip: r.IntN(4)}
		if f.Fault == sim.FaultServerError && tg.ep == sim.EPDiffCreate && !clientResends {
			f.Count = 1
		}
		tr.targeted = append(tr.targeted, f)
	}
	n := 1
	switch x := r.IntN(20); {
	case x >= 17:
		n = 3
	case x >= 10:
		n = 2
	}
	sigs := []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT}
	for i := range n {
		k := kill{sig: sigs[r.IntN(len(sigs))], pause: time.Duration(r.Int64N(int64(1200 * time.Millisecond)))}
		if r.IntN(2) == 0 {
			// Two images make 18 state-changing calls; a resumed run
			// makes fewer.
			k.call = 1 + r.IntN(18-6*i)
			k.after = r.IntN(2) == 0
		} else {
			k.delay = time.Duration(r.Int64N(int64(2500*time.Millisecond) / int64(i+1)))
		}
		tr.kills = append(tr.kills, k)
	}
	return tr
}

func (tr trial) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: install_at %s, speed %.0f, jitter %.2f", tr.seed, tr.installAt, tr.speed, tr.jitter)
	if tr.diffFail != "" {
		fmt.Fprintf(&b, ", first diff of %s fails", tr.diffFail)
	}
	fmt.Fprintf(&b, "; faults: 503 on %.0f%% of reads, %.0f%% answers dropped, 429 on %.0f%%, latency %s",
		100*tr.read5xx, 100*tr.drop, 100*tr.rateLimit, tr.latency)
	for _, tg := range tr.targeted {
		fmt.Fprintf(&b, ", %s on %s (%d after %d)", tg.Fault, tg.Endpoint, tg.Count, tg.Skip)
	}
	for i, k := range tr.kills {
		fmt.Fprintf(&b, "; kill %d: %s", i+1, k)
	}
	return b.String()
}

func (tr trial) scenario() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed: %d\nspeed: %.2f\njitter: %.2f\n", tr.seed, tr.speed, tr.jitter)
	if tr.diffFail != "" {
		fmt.Fprintf(&b, "failures:\n  - {kind: diff, image: %s, times: 1, error: injected diff failure}\n", tr.diffFail)
	}
	fmt.Fprintf(&b, "faults:\n  rate_limit: %.2f\n  retry_after: 1\n  latency: %s\n", tr.rateLimit, tr.latency)
	if len(tr.targeted) > 0 {
		b.WriteString("  targeted:\n")
		for _, tg := range tr.targeted {
			fmt.Fprintf(&b, "    - {endpoint: %s, fault: %s, count: %d, skip: %d}\n", tg.Endpoint, tg.Fault, tg.Count, tg.Skip)
		}
	}
	return b.String()
}

// proxy stands between the rollout and the simulator: it injects the
// trial's read 503s and dropped answers, and kills the process on the
// armed state-changing request.
type proxy struct {
	sim *sim.Server

	mu  sync.Mutex
	rng *rand.Rand
	// spare keeps an armed kill off the window between an update
	// create's work and its answer (see TestChaos): it moves to the next
	// state-changing call. A SIGTERM there is settled from the lock at
	// once, but the simulator's updates, this fast, may end within the
	// client's first backoff of a failed read.
	spare bool
	at    int // the armed call
	// landed counts the calls kills landed on, by endpoint and side.
	landed  map[string]int
	read5xx float64
	drop    float64
	calls   int // state-changing requests of the current run
	armed   *kill
	fire    func()
	fired   bool
	faults  map[string]int
}

func mutatingPath(p string) bool {
	for _, s := range []string{"/create", "/retry", "/reject", "/queue"} {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// arm starts a run: k (nil for none) and the function that kills it.
func (p *proxy) arm(k *kill, fire func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls, p.armed, p.fire, p.fired = 0, k, fire, false
	if k != nil {
		p.at = k.call
	}
}

// trigger fires the kill once per run; it reports whether this call did.
func (p *proxy) trigger() bool {
	p.mu.Lock()
	if p.fired || p.fire == nil {
		p.mu.Unlock()
		return false
	}
	p.fired = true
	fire := p.fire
	p.mu.Unlock()
	fire()
	return true
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mut := mutatingPath(r.URL.Path)
	p.mu.Lock()
	var hit *kill
	if mut {
		p.calls++
		if k := p.armed; k != nil && p.at == p.calls && !p.fired {
			hit = k
			if p.spare && k.after && strings.HasSuffix(r.URL.Path, "imageupdate/create") {
				p.at++
				hit = nil
			}
		}
	}
	fault := ""
	if hit == nil {
		switch {
		case !mut && p.rng.Float64() < p.read5xx:
			fault = "503"
		case !strings.HasSuffix(r.URL.Path, "imageupdate/create") && p.rng.Float64() < p.drop:
			fault = "drop"
		}
		if fault != "" {
			p.faults[fault]++
		}
	}
	p.mu.Unlock()
	switch {
	case hit != nil:
		side := "before the work"
		if hit.after {
			side = "after the work"
		}
		p.mu.Lock()
		p.landed[endpointOf(r.URL.Path)+" "+side]++
		p.mu.Unlock()
		if hit.after {
			p.sim.ServeHTTP(httptest.NewRecorder(), r)
		}
		p.trigger()
		closeConn(w)
	case fault == "503":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"success":false,"error":true,"error_code":1,"error_message":"Service Unavailable","messages":[],"_debug":[]}`)
	case fault == "drop":
		p.sim.ServeHTTP(httptest.NewRecorder(), r)
		closeConn(w)
	default:
		p.sim.ServeHTTP(w, r)
	}
}

// endpointOf names a state-changing call by its endpoint, without ids.
func endpointOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/cfp/v1/"), "/")
	if len(parts) == 3 {
		return parts[0] + "/" + parts[2]
	}
	return strings.Join(parts, "/")
}

// closeConn closes the connection without an answer.
func closeConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runRecord is one run of a trial, for the failure message.
type runRecord struct {
	args   []string
	killed string // what kill landed, "" when none did
	exit   int
	out    string
}

// runTimeout bounds one run of the binary; a run that does not end is a
// hang and fails the trial.
const runTimeout = 3 * time.Minute

func runTrial(t *testing.T, tr trial, st *stats) {
	t.Logf("trial %s", tr)
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.yaml")
	waves := chaosWaves
	if tr.installAt == "now" {
		waves = ""
	}
	if err := os.WriteFile(planPath, fmt.Appendf(nil, chaosPlan, tr.installAt, waves), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planPath, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{rng: rand.New(rand.NewPCG(tr.seed, 7)), read5xx: tr.read5xx, drop: tr.drop, faults: map[string]int{},
		landed: map[string]int{}, spare: !updateWindow}
	e := simtest.Start(t, p, simtest.Scenario(t, tr.scenario()), simtest.Credentials(chaosAccess, chaosSecret),
		simtest.Front(func(s *sim.Server) http.Handler { px.sim = s; return px }))
	stateDir := filepath.Join(dir, "state")

	var runs []runRecord
	fail := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, format, args...)
		fmt.Fprintf(&b, "\nreplay: CHAOS_SEED=%d CHAOS_TRIALS=1 go test ./e2e -run TestChaos -v\ntrial %s", tr.seed, tr)
		for i, r := range runs {
			fmt.Fprintf(&b, "\n--- run %d: %s (exit %d", i+1, strings.Join(r.args[2:], " "), r.exit)
			if r.killed != "" {
				fmt.Fprintf(&b, ", killed: %s", r.killed)
			}
			fmt.Fprintf(&b, ")\n%s", r.out)
		}
		if j, err := os.ReadFile(filepath.Join(stateDir, state.JournalName)); err == nil {
			fmt.Fprintf(&b, "\n--- journal\n%s", j)
		}
		t.Fatal(b.String())
	}

	resume := false
	var decision []string // a person's decision on an unsettled update
	for n := 0; ; n++ {
		args := []string{"run", planPath, "--no-tui", "--state-dir", stateDir, "--poll-min", "10ms", "--poll-max", "100ms"}
		if resume {
			args = append(args, "--resume")
			args = append(args, decision...)
			decision = nil
		}
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "CLANFORGE_URL="+e.URL, "CLANFORGE_ACCESS_KEY="+chaosAccess,
			"CLANFORGE_SECRET_KEY="+chaosSecret, "NO_COLOR=1")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(done) }()

		rec := runRecord{args: args}
		var k *kill
		if n < len(tr.kills) {
			k = &tr.kills[n]
		}
		var killedMu sync.Mutex
		var once sync.Once
		// fire kills this run, once; the proxy (on the armed call) or
		// the timer calls it.
		fire := func() {
			once.Do(func() {
				select {
				case <-done:
					return // it ended first
				default:
				}
				killedMu.Lock()
				rec.killed = k.String()
				killedMu.Unlock()
				st.killed(k)
				_ = cmd.Process.Signal(k.sig)
				if k.sig == syscall.SIGKILL {
					// Dead before the answer of the request in
					// flight can arrive: the journal holds its intent
					// only.
					<-done
				}
			})
		}
		switch {
		case k == nil:
			px.arm(nil, nil)
		case k.call > 0:
			px.arm(k, fire)
		default:
			px.arm(nil, nil)
			go func() {
				timer := time.NewTimer(k.delay)
				defer timer.Stop()
				select {
				case <-done:
				case <-timer.C:
					fire()
				}
			}()
		}
		select {
		case <-done:
		case <-time.After(runTimeout):
			_ = cmd.Process.Kill()
			<-done
			rec.exit, rec.out = exitCode(waitErr), out.String()
			runs = append(runs, rec)
			fail("run %d did not end within %s", n+1, runTimeout)
		}
		px.arm(nil, nil)
		killedMu.Lock()
		killed := rec.killed != ""
		killedMu.Unlock()
		rec.exit, rec.out = exitCode(waitErr), out.String()
		runs = append(runs, rec)
		st.run()

		for _, s := range []string{planSecret, chaosSecret} {
			if strings.Contains(rec.out, s) {
				fail("run %d printed a credential", n+1)
			}
		}
		// An update create cut off with no update holding the image
		// now: the run asks a person whether it was made. The test is
		// that person; it asks the simulator, and resumes with the
		// answer.
		if ms := unsettledUpdate.FindAllStringSubmatch(rec.out, -1); rec.exit == 1 && ms != nil {
			seen := map[string]bool{}
			for _, m := range ms {
				if seen[m[1]] {
					continue
				}
				seen[m[1]] = true
				st.unsettledUpdate()
				if updatesOf(e.Server, p, m[1]) > 0 {
					decision = append(decision, "--assume-sent", m[1])
				} else {
					decision = append(decision, "--resend", m[1])
				}
			}
			resume = true
			continue
		}
		// The one end other than success a scenario demands: under
		// install_at now, a kill between a version create's work and
		// its answer, and a resume after the version's installs all ran
		// and completed, leave nothing that names the version (API: no
		// endpoint maps a diff to its version). The run must say so and
		// exit 1, having sent nothing twice.
		unidentifiable := tr.installAt == "now" && rec.exit == 1 && strings.Contains(rec.out, "cannot be identified")
		if unidentifiable {
			st.unidentifiable()
			break
		}
		switch {
		case rec.exit == 0:
		case !killed:
			fail("run %d ended with exit %d without being killed", n+1, rec.exit)
		case k.sig == syscall.SIGKILL && rec.exit != -1:
			fail("run %d: exit %d after SIGKILL", n+1, rec.exit)
		case k.sig != syscall.SIGKILL && rec.exit != 130 && rec.exit != -1:
			// -1: the signal came before the handler was installed.
			fail("run %d: exit %d after %s, want 130", n+1, rec.exit, sigName(k.sig))
		}
		if rec.exit == 0 {
			break
		}
		// Remote time passes while the rollout is down.
		time.Sleep(k.pause)

		sum, err := state.Replay(stateDir)
		switch {
		case err != nil || len(sum.Runs) == 0:
			// Killed before the run started: nothing to resume.
			resume = false
		case sum.Finished && sum.Verdict == "succeeded":
			// Killed after it finished.
			resume = false
		default:
			resume = true
		}
		if err == nil && sum.Finished && sum.Verdict == "succeeded" {
			break
		}
	}

	dups, problems := checkExactlyOnce(e.Server, p, tr.installAt == "manual")
	st.trial(dups, e.Server, px)
	if len(problems) > 0 {
		fail("the simulator's record:\n  %s", strings.Join(problems, "\n  "))
	}
	if j, err := os.ReadFile(filepath.Join(stateDir, state.JournalName)); err == nil {
		for _, s := range []string{planSecret, chaosSecret} {
			if bytes.Contains(j, []byte(s)) {
				fail("a credential was written to the journal")
			}
		}
	}
}

// checkExactlyOnce compares the simulator's own record with the plan: one
// update, one diff and one version per image, one mirror job per location
// and one machine job per fleet machine per image, all completed, each
// install job queued exactly once (manual installs; under install_at now
// none), and every fleet machine on its images' latest version. It returns how many state-changing requests did work
// beyond one per intent, and every discrepancy.
func checkExactlyOnce(s *sim.Server, p *plan.Plan, manual bool) (dups int, problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	type key struct {
		kind  sim.Kind
		image int64
	}
	jobs := map[key]int{}
	for _, j := range s.Jobs() {
		jobs[key{j.Kind, j.ImageID}]++
		if (j.Kind == sim.KindInstall || j.Kind == sim.KindMirror) && j.StateName != "Completed" {
			bad("%s job %d (machine %d, location %s) ended %s", j.Kind, j.ID, j.MachineID, j.Location, j.StateName)
		}
	}
	regions := map[string]bool{}
	fleet := 0
	for _, m := range p.Machines {
		if !m.Build {
			regions[m.Labels["region"]] = true
			fleet++
		}
	}
	for _, im := range p.Images {
		for kind, want := range map[sim.Kind]int{sim.KindUpdate: 1, sim.KindDiff: 1, sim.KindVersion: 1, sim.KindMirror: len(regions), sim.KindInstall: fleet} {
			got := jobs[key{kind, im.ID}]
			if got != want {
				bad("image %s: %d %s jobs, want %d", im.Name, got, kind, want)
			}
			if got > want {
				dups += got - want
			}
		}
		for _, m := range p.Machines {
			if !m.Build && s.InstalledVersion(m.ID, im.ID) != s.LatestVersion(im.ID) {
				bad("machine %s has version %d of %s, not the latest %d", m.Name, s.InstalledVersion(m.ID, im.ID), im.Name, s.LatestVersion(im.ID))
			}
		}
	}
	// Requests that did the work: answered 200 without an error message
	// (a dropped answer included: the work was done). A rejected one
	// (429, 5xx, an API error such as "already queued") did nothing.
	worked := map[string]int{}
	for _, r := range s.Requests() {
		if r.Mutating && r.Status == http.StatusOK && r.ErrorMessage == "" && r.Strict == "" {
			k := r.Endpoint
			if r.Endpoint == sim.EPInstallQueue || r.Endpoint == sim.EPDiffRetry {
				k = r.Path
			}
			worked[k]++
		}
	}
	installs := 0
	for k, n := range worked {
		switch {
		case strings.HasSuffix(k, "/queue"):
			installs++
			if n != 1 {
				bad("%s did its work %d times", k, n)
				dups += n - 1
			}
		case strings.HasSuffix(k, "/retry"):
			// One retry per failed diff; the failure scenario fails
			// at most one diff once.
			if n != 1 {
				bad("%s did its work %d times", k, n)
				dups += max(n-1, 0)
			}
		case k == sim.EPUpdateCreate || k == sim.EPDiffCreate || k == sim.EPVersionCreate:
			if n != len(p.Images) {
				bad("%s did its work %d times for %d images", k, n, len(p.Images))
			}
		default:
			bad("unexpected state-changing call %s (%d)", k, n)
		}
	}
	want := 0
	if manual {
		want = len(p.Images) * (len(regions) + fleet)
	}
	if installs != want {
		bad("%d install jobs queued, want %d", installs, want)
	}
	return dups, problems
}

// stats are the figures of all trials, for the closing note.
type stats struct {
	mu     sync.Mutex
	trials int
	runs   int
	kills  map[string]int
	modes  map[string]int
	faults map[string]int
	landed map[string]int
	dups   int
	// stopped counts trials that ended, as their scenario demands, with
	// a version that took effect but could not be identified.
	stopped int
	// unsettled counts update creates a run left for a person to settle.
	unsettled int
}

func newStats() *stats {
	return &stats{kills: map[string]int{}, modes: map[string]int{}, faults: map[string]int{}, landed: map[string]int{}}
}

func (s *stats) run() {
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
}

func (s *stats) unidentifiable() {
	s.mu.Lock()
	s.stopped++
	s.mu.Unlock()
}

func (s *stats) unsettledUpdate() {
	s.mu.Lock()
	s.unsettled++
	s.mu.Unlock()
}

func (s *stats) killed(k *kill) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills[sigName(k.sig)]++
	switch {
	case k.call == 0:
		s.modes["at a random time"]++
	case k.after:
		s.modes["between a call's work and its answer"]++
	default:
		s.modes["before a call reached the API"]++
	}
}

func (s *stats) trial(dups int, srv *sim.Server, px *proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trials++
	s.dups += dups
	for _, r := range srv.Requests() {
		if r.Fault != "" {
			s.faults["simulator "+r.Fault]++
		}
	}
	px.mu.Lock()
	for f, n := range px.faults {
		s.faults["proxy "+f] += n
	}
	for c, n := range px.landed {
		s.landed[c] += n
	}
	px.mu.Unlock()
}

func (s *stats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := func(m map[string]int) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		var parts []string
		for _, k := range ks {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	}
	total := 0
	for _, n := range s.kills {
		total += n
	}
	return fmt.Sprintf("chaos: %d trials, %d runs, %d kills (%s; %s; on calls: %s), faults injected: %s; duplicates found: %d; "+
		"trials stopped with an unidentifiable version (exit 1, as demanded): %d; update creates settled by a person (--resend/--assume-sent): %d",
		s.trials, s.runs, total, list(s.kills), list(s.modes), list(s.landed), list(s.faults), s.dups, s.stopped, s.unsettled)
}

// unsettledUpdate finds the instance of an update create the run could not
// settle in its output.
var unsettledUpdate = regexp.MustCompile(`--assume-sent (update@\S+) `)

// updatesOf counts the update jobs the simulator made for the image of the
// update instance id ("update@machine/image").
func updatesOf(s *sim.Server, p *plan.Plan, id string) int {
	name := id[strings.LastIndex(id, "/")+1:]
	n := 0
	for _, img := range p.Images {
		if img.Name != name {
			continue
		}
		for _, j := range s.Jobs() {
			if j.Kind == sim.KindUpdate && j.ImageID == img.ID {
				n++
			}
		}
	}
	return n
}
