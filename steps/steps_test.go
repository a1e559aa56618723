package steps

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// Plan fixtures, built by hand: the executors only read exported fields.
// They name stepPlan's image and build machine (see newStepRig).
var (
	imgB    = &plan.Image{Name: "game-b", ID: 5531}
	build1  = &plan.Machine{Name: "buildbox-1", ID: 770001, Build: true}
	testPol = PollPolicy{Min: 2 * time.Millisecond, Max: 10 * time.Millisecond, Factor: 1.5}
)

func instFor(s *plan.Step, m *plan.Machine) *plan.Instance { return instOf(s, imgB, m) }

func instOf(s *plan.Step, img *plan.Image, m *plan.Machine) *plan.Instance {
	in := &plan.Instance{Step: s, Image: img, Machine: m, Wave: -1}
	if m != nil {
		in.Target = &plan.Target{Machine: m, Image: img}
		in.ID = s.Name + "@" + in.Target.Key()
	} else {
		in.ID = s.Name + "@" + img.Name
	}
	return in
}

func versionInst(at plan.InstallAt) *plan.Instance {
	return instFor(&plan.Step{Name: "version", Type: plan.TypeVersion, InstallAt: at, Full: plan.FullAuto}, nil)
}

func newEnv(c *clanforge.Client, j Journal, pol PollPolicy) *Env {
	return &Env{Client: c, Journal: j, Poll: pol, Installs: NewInstallWatcher(c, pol)}
}

func updateStep(retries int) *plan.Step {
	return &plan.Step{
		Name: "update", Type: plan.TypeUpdate, Retries: retries,
		Desc: plan.Value{Resolved: "build 1.4.2", Display: "build 1.4.2"},
		URL:  plan.Value{Resolved: bucketURL, Display: "s3://***@builds/game/1.4.2/"},
	}
}

func installStep(mirroring bool) *plan.Step {
	name := "install"
	if mirroring {
		name = "mirror"
	}
	return &plan.Step{Name: name, Type: plan.TypeInstall, Mirroring: mirroring}
}

func installInst(s *plan.Step, m *plan.Machine, at plan.InstallAt) *plan.Instance {
	in := instFor(s, m)
	in.Version = versionInst(at)
	return in
}

// updates collects progress reports.
type updates struct {
	mu  sync.Mutex
	all []JobUpdate
}

func (u *updates) add(j JobUpdate) {
	u.mu.Lock()
	u.all = append(u.all, j)
	u.mu.Unlock()
}

func (u *updates) states(kind string) []clanforge.JobState {
	u.mu.Lock()
	defer u.mu.Unlock()
	var s []clanforge.JobState
	for _, j := range u.all {
		if j.Kind == kind && (len(s) == 0 || s[len(s)-1] != j.Job.State) {
			s = append(s, j.Job.State)
		}
	}
	return s
}

func (u *updates) last() JobUpdate {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.all[len(u.all)-1]
}

// waitGoroutines waits until the goroutine count drops to at most base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	n := runtime.Stack(buf, true)
	t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), base, buf[:n])
}

func TestUpdate(t *testing.T) {
	fail := func(msg string) sim.Failure { return sim.Failure{Kind: sim.KindUpdate, Times: 1, Error: msg} }
	tests := []struct {
		name      string
		retries   int
		failures  []sim.Failure
		wantErr   []string
		wantCreat int
	}{
		{"happy", 0, nil, nil, 1},
		{"failed job, no retries", 0, []sim.Failure{fail("disk full")}, []string{"disk full"}, 1},
		{"failed then retried", 1, []sim.Failure{fail("disk full")}, nil, 2},
		{"retries exhausted", 1, []sim.Failure{fail("a"), fail("b")}, []string{"b", "after 2 attempts"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{Failures: tt.failures})
			var u updates
			out, err := r.exec(instFor(updateStep(tt.retries), build1), plan.Inputs{}, u.add)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Run: %v", err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Run error = %v, want it to contain %q", err, w)
				}
			}
			if got := r.calls(sim.EPUpdateCreate); got != tt.wantCreat {
				t.Errorf("creates = %d, want %d", got, tt.wantCreat)
			}
			wantKeys := []string{}
			for a := 1; a <= tt.wantCreat; a++ {
				wantKeys = append(wantKeys, fmt.Sprintf("update@buildbox-1/game-b imageupdate/create#%d", a))
			}
			if got := r.j.sent(); !slices.Equal(got, wantKeys) {
				t.Errorf("journal keys = %q, want %q", got, wantKeys)
			}
			p := r.j.params(wantKeys[0])
			if p["url"] != "s3://***@builds/game/1.4.2/" || p["imageid"] != "5531" || p["machineid"] != "770001" {
				t.Errorf("journal params = %v", p)
			}
			for k, v := range p {
				if strings.Contains(v, "TOPSECRET") {
					t.Errorf("journal param %s leaks the secret: %q", k, v)
				}
			}
			if st := u.states(KindUpdate); st[0] != clanforge.StateCreated || st[len(st)-1] != clanforge.JobState(out.Job.State) {
				t.Errorf("progress states = %v, output job state %d", st, out.Job.State)
			}
			want := plan.OutputSucceeded
			if tt.wantErr != nil {
				want = plan.OutputFailed
			}
			if out.State != want {
				t.Errorf("output state = %q, want %q", out.State, want)
			}
		})
	}
}

func TestDiffRetryUsesRetryEndpointSameID(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "checksum mismatch"}}})
	r.update(t, "build 1.4.2")
	var u updates
	s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
	out, err := r.exec(instFor(s, build1), plan.Inputs{}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.calls(sim.EPDiffCreate) != 1 || r.calls(sim.EPDiffRetry) != 1 {
		t.Errorf("creates %d, retries %d; want 1 and 1", r.calls(sim.EPDiffCreate), r.calls(sim.EPDiffRetry))
	}
	ids := map[int64]bool{}
	for _, x := range u.all {
		ids[x.Job.ID] = true
	}
	if len(ids) != 1 || !ids[out.DiffID] {
		t.Errorf("diff ids seen %v, output diffid %d: the retry must keep the diffid", ids, out.DiffID)
	}
	if out.Changed != 3 || !slices.Equal(out.Added, []string{"Data/level9.pak"}) || !slices.Equal(out.Modified, []string{"GameServer.x86_64"}) ||
		!slices.Equal(out.Removed, []string{"Data/level1.pak"}) {
		t.Errorf("output = %+v", out)
	}
	want := []string{"diff@buildbox-1/game-b imagediff/create#1", "diff@buildbox-1/game-b imagediff/retry#1"}
	if got := r.j.sent(); !slices.Equal(got, want) {
		t.Errorf("journal keys = %q, want %q", got, want)
	}
}

func TestDiffFailureKeepsDiffID(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "bad"}, {Kind: sim.KindDiff, Times: 1, Error: "worse"}}})
	s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
	out, err := r.exec(instFor(s, build1), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), "worse") || !strings.Contains(err.Error(), "after 1 retries") {
		t.Fatalf("err = %v", err)
	}
	if out.DiffID == 0 || r.srv.Locks()[imgB.ID].DiffID != out.DiffID {
		t.Errorf("output diffid %d, lock %+v: a failed diff must still report the diffid that locks the image, so that reject can release it",
			out.DiffID, r.srv.Locks()[imgB.ID])
	}
	if r.calls(sim.EPDiffRetry) != 1 {
		t.Errorf("retries = %d, want 1", r.calls(sim.EPDiffRetry))
	}
}

func TestVersionOptions(t *testing.T) {
	tests := []struct {
		name      string
		full      plan.FullMode
		changes   bool
		at        plan.InstallAt
		wantFull  string
		wantAt    string
		wantError string
	}{
		{"auto on empty diff sends full=1", plan.FullAuto, false, plan.InstallManual, "1", "", ""},
		{"auto on changes sends full=0", plan.FullAuto, true, plan.InstallNow, "0", "NOW()", ""},
		// The API's words for a version without changes and without full.
		{"false on empty diff is refused", plan.FullFalse, false, plan.InstallManual, "0", "", "full=1 is required"},
		{"true", plan.FullTrue, true, plan.InstallManual, "1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{})
			d := r.diff(t, tt.changes)
			s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: tt.full, InstallAt: tt.at, Restart: true,
				GameBuild: plan.Value{Resolved: "1.4.2", Display: "1.4.2"}}
			out, err := r.exec(instFor(s, nil), plan.Inputs{Diff: d}, nil)
			if r.calls(sim.EPVersionCreate) != 1 {
				t.Fatalf("creates = %d, want 1", r.calls(sim.EPVersionCreate))
			}
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			sent := r.sentTo("/cfp/v1/imageversion/create")
			p := sent[len(sent)-1].Query
			// full=0 may be sent or left out (absence means 0, API §4.8):
			// the client decides the wire form; what matters is no full=1.
			full := p.Get("full")
			if full == "" {
				full = "0"
			}
			if full != tt.wantFull || p.Get("install_at") != tt.wantAt || p.Get("restart") != "1" ||
				p.Get("game_build") != "1.4.2" || p.Get("diffid") != fmt.Sprint(d.DiffID) {
				t.Errorf("sent %v", p)
			}
			if out.VersionID == 0 || out.Job.State != int(clanforge.StateCompleted) || r.srv.LatestVersion(imgB.ID) != out.VersionID {
				t.Errorf("output %+v, latest version %d", out, r.srv.LatestVersion(imgB.ID))
			}
		})
	}
}

func TestVersionFailedAndNoDiff(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindVersion, Error: "packaging failed"}}})
	d := r.diff(t, true)
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	_, err := r.exec(instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if err == nil || !strings.Contains(err.Error(), "packaging failed") {
		t.Fatalf("err = %v", err)
	}
	_, err = r.exec(instFor(s, nil), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), "no diff id") {
		t.Fatalf("without a diff: err = %v", err)
	}
}

func TestVersionLostAnswerIsNotResent(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPVersionCreate, sim.FaultDrop, 1, 0)})
	d := r.diff(t, true)
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	_, err := r.exec(instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) || !strings.Contains(err.Error(), fmt.Sprintf("check imageversion for diff %d", d.DiffID)) {
		t.Fatalf("err = %v", err)
	}
	if r.calls(sim.EPVersionCreate) != 1 || r.versions() != 1 {
		t.Errorf("creates = %d, versions made %d; want exactly 1 each", r.calls(sim.EPVersionCreate), r.versions())
	}
}

func TestGateWithoutExpressionFails(t *testing.T) {
	s := &plan.Step{Name: "small", Type: plan.TypeGate}
	_, err := Run(context.Background(), &Env{}, instFor(s, nil), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), `gate "small"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestInstallQueuesOnceAndWatches(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	v := r.version(t, plan.InstallManual)
	r.mirrors(t, v)
	eu1 := r.machine("eu-1")
	var u updates
	inst := installInst(installStep(false), eu1, plan.InstallManual)
	out, err := r.exec(inst, plan.Inputs{Version: v}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	_, machines := r.installJobs(v.VersionID)
	own := machines[eu1.ID]
	if r.calls(sim.EPInstallQueue) != 1 || len(r.sentTo(fmt.Sprintf("/cfp/v1/imageinstall/%d/queue", own))) != 1 {
		t.Errorf("queue calls = %d, want 1, of job %d", r.calls(sim.EPInstallQueue), own)
	}
	if !slices.Equal(out.JobIDs, []int64{own}) || out.Job.State != int(clanforge.StateCompleted) {
		t.Errorf("output %+v, want job %d completed", out, own)
	}
	want := []clanforge.JobState{clanforge.StatePending, clanforge.StateQueued, clanforge.StateRunning, clanforge.StateCompleted}
	if got := u.states(KindInstall); !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	if got := r.j.sent(); !slices.Equal(got, []string{QueueKey(inst.ID, own)}) {
		t.Errorf("journal keys = %q", got)
	}
	if p := r.j.params(QueueKey(inst.ID, own)); p["mirroring"] != "false" {
		t.Errorf("queue params %v", p)
	}
	// The other machines' jobs of the same version are not ours.
	for m, id := range machines {
		if m != eu1.ID && !r.job(t, sim.KindInstall, id).Held {
			t.Errorf("the job %d of machine %d was touched: %+v", id, m, r.job(t, sim.KindInstall, id))
		}
	}
}

func TestInstallFailedStaysListed(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindInstall, Machine: "eu-1", Error: "disk full on machine"}}})
	v := r.version(t, plan.InstallManual)
	r.mirrors(t, v)
	eu1 := r.machine("eu-1")
	out, err := r.exec(installInst(installStep(false), eu1, plan.InstallManual), plan.Inputs{Version: v}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full on machine") || !strings.Contains(err.Error(), fmt.Sprint(eu1.ID)) {
		t.Fatalf("err = %v", err)
	}
	if out.Job.State != int(clanforge.StateFailed) {
		t.Errorf("output job %+v", out.Job)
	}
}

// TestInstallMirrorWaitsForEveryLocation: the mirror instance of a version
// with three locations returns only once every mirror job completed; its
// last report is the slowest one completing. The seed's jitter makes the
// mirror runs differ in length: the last ends over seven requests after
// the others.
func TestInstallMirrorWaitsForEveryLocation(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Seed: 10, Jitter: 0.9})
	v := r.version(t, plan.InstallManual)
	var u updates
	out, err := r.exec(installInst(installStep(true), nil, plan.InstallManual), plan.Inputs{Version: v}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	mirrors, _ := r.installJobs(v.VersionID)
	if r.calls(sim.EPInstallQueue) != 3 || !slices.Equal(out.JobIDs, mirrors) || len(mirrors) != 3 {
		t.Errorf("queue calls %d, job ids %v; want 3, %v", r.calls(sim.EPInstallQueue), out.JobIDs, mirrors)
	}
	var slow sim.JobInfo
	var ends []time.Time
	for _, id := range mirrors {
		j := r.job(t, sim.KindMirror, id)
		if j.State != int(clanforge.StateCompleted) {
			t.Fatalf("the instance returned while mirror job %d was %s", id, j.StateName)
		}
		ends = append(ends, j.Ended)
		if j.Ended.After(slow.Ended) {
			slow = j
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	if ends[2].Sub(ends[1]) < 3*stepTick {
		t.Fatalf("mirror jobs ended at %v: the scenario does not make one clearly slower", ends)
	}
	if last := u.last(); last.Job.ID != slow.ID || last.Job.State != clanforge.StateCompleted || last.Kind != KindMirror {
		t.Errorf("last update %+v, want the slow mirror %d completing", last, slow.ID)
	}
}

func TestInstallAtNowOnlyWatches(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	v := r.version(t, plan.InstallNow)
	out, err := r.exec(installInst(installStep(false), r.machine("eu-1"), plan.InstallNow), plan.Inputs{Version: v}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.calls(sim.EPInstallQueue) != 0 || out.Job.State != int(clanforge.StateCompleted) {
		t.Errorf("queue calls = %d under install_at=now (want 0), output %+v", r.calls(sim.EPInstallQueue), out)
	}
}

// TestInstallAtNowJobEndedBeforeItsTurn: under install_at now the platform
// runs every machine's job by itself, while the rollout may watch only some
// at a time. A job that completed (and left the list) while its instance
// waited for a slot was still seen by the shared watcher reading for the
// others, so the instance succeeds, naming its job, even though another
// machine is still pending (its region never gets ready), which rules out
// the counters' proof. No journal helps: the run records nothing.
func TestInstallAtNowJobEndedBeforeItsTurn(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{NeverReadyRegions: []string{"us"}})
	r.env.Journal = nil
	v := r.version(t, plan.InstallNow)
	eu1, eu2 := r.machine("eu-1"), r.machine("eu-2")
	if _, err := r.exec(installInst(installStep(false), eu1, plan.InstallNow), plan.Inputs{Version: v}, nil); err != nil {
		t.Fatalf("first machine: %v", err)
	}
	_, machines := r.installJobs(v.VersionID)
	early := machines[eu2.ID]
	if j := r.job(t, sim.KindInstall, early); j.State != int(clanforge.StateCompleted) {
		t.Fatalf("the second machine's job %d is %s: the test does not cover a vanished job", early, j.StateName)
	}
	out, err := r.exec(installInst(installStep(false), eu2, plan.InstallNow), plan.Inputs{Version: v}, nil)
	if err != nil {
		t.Fatalf("second machine, whose job ended before its turn: %v", err)
	}
	if !slices.Equal(out.JobIDs, []int64{early}) || out.Job.State != int(clanforge.StateCompleted) {
		t.Fatalf("output %+v, want job %d completed", out, early)
	}
	if r.calls(sim.EPInstallQueue) != 0 {
		t.Errorf("queue calls = %d under install_at now", r.calls(sim.EPInstallQueue))
	}
}

// TestInstallNotFound: a job that is never listed fails the instance after
// discoveryReads reads, unless the image's counters say that every machine
// runs the latest version (the job completed before anyone looked).
func TestInstallNotFound(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	inst := installInst(installStep(false), r.machine("eu-1"), plan.InstallManual)
	ghost := plan.Inputs{Version: &plan.Output{VersionID: 99}}
	if _, err := r.exec(inst, ghost, nil); err != nil {
		t.Fatalf("with nothing pending: %v", err)
	}
	// A version whose jobs are held leaves every machine pending.
	r.version(t, plan.InstallManual)
	_, err := r.exec(inst, ghost, nil)
	if err == nil || !strings.Contains(err.Error(), "no machine install job for version 99") {
		t.Fatalf("err = %v", err)
	}
	if n := r.calls(sim.EPInstallStatus); n < discoveryReads {
		t.Errorf("gave up after %d reads, want at least %d", n, discoveryReads)
	}
}

// TestSharedWatcherReadsOncePerInterval runs many machine installs at once:
// they share one reader, so the reads of imageinstall/status follow the
// interval, not the number of instances.
func TestSharedWatcherReadsOncePerInterval(t *testing.T) {
	const n = 60
	r := newStepRig(t, simtest.FleetPlan("shared", []string{"game-a", "game-b"}, n, 4, "", "", ""), sim.Scenario{})
	v := r.version(t, plan.InstallManual)
	r.mirrors(t, v)
	pol := PollPolicy{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	env := newEnv(r.client, nil, pol)
	defer env.Installs.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, m := range r.p.Machines {
		if m.Build {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Run(context.Background(), env, installInst(installStep(false), m, plan.InstallManual), plan.Inputs{Version: v}, nil)
			errs <- err
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reads := r.calls(sim.EPInstallStatus)
	if limit := int(elapsed/pol.Min) + 2; reads > limit {
		t.Errorf("%d reads in %v: more than one per Min interval (limit %d)", reads, elapsed, limit)
	}
	if reads >= n {
		t.Errorf("%d reads for %d instances: the reader is not shared", reads, n)
	}
	if r.calls(sim.EPInstallQueue) != n {
		t.Errorf("queue calls = %d, want %d", r.calls(sim.EPInstallQueue), n)
	}
	if int64(reads) != env.Installs.Reads() {
		t.Errorf("server saw %d reads, watcher counted %d", reads, env.Installs.Reads())
	}
}

func TestResumeReattachesWithoutCreate(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	// The earlier run's create, answered and recorded.
	made, err := r.client.CreateUpdate(context.Background(), imgB.ID, build1.ID, "build 1.4.2", bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	r.mark()
	r.j.earlier("update@buildbox-1/game-b imageupdate/create#1", apiPrefix+epUpdateCreate, true, made.ID)
	out, err := r.exec(instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reads := r.readsOf(fmt.Sprintf("/cfp/v1/imageupdate/%d/status", made.ID))
	if r.calls(sim.EPUpdateCreate) != 0 || reads == 0 || out.Job.ID != made.ID || out.Job.State != int(clanforge.StateCompleted) {
		t.Errorf("creates %d, reads of %d: %d, output job %+v", r.calls(sim.EPUpdateCreate), made.ID, reads, out.Job)
	}
}

func TestResumeIntentWithoutResult(t *testing.T) {
	ctx := context.Background()
	t.Run("diff lock held: adopt", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		made, err := r.client.CreateDiff(ctx, imgB.ID, build1.ID)
		if err != nil {
			t.Fatal(err)
		}
		r.mark()
		key := "diff@buildbox-1/game-b imagediff/create#1"
		r.j.earlier(key, apiPrefix+epDiffCreate, false, 0)
		out, err := r.exec(instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := r.j.answer(key); r.calls(sim.EPDiffCreate) != 0 || out.DiffID != made.ID || got != made.ID {
			t.Errorf("creates %d, diffid %d (want %d), journal result %d", r.calls(sim.EPDiffCreate), out.DiffID, made.ID, got)
		}
	})
	// No lock: the update was never made, or made and finished. Nothing
	// is sent on a guess; a person's decision is carried out.
	for _, tc := range []struct {
		name          string
		resend, taken bool
		creates       int
	}{
		{"update, no lock: a person decides", false, false, 0},
		{"update, no lock, --resend: sent once", true, false, 1},
		{"update, no lock, --assume-sent: none sent", false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{})
			id := "update@buildbox-1/game-b"
			r.j.earlier(id+" imageupdate/create#1", apiPrefix+epUpdateCreate, false, 0)
			r.env.Resend, r.env.AssumeSent = map[string]bool{id: tc.resend}, map[string]bool{id: tc.taken}
			_, err := r.exec(instFor(updateStep(0), build1), plan.Inputs{}, nil)
			var ue *UnsettledUpdateError
			if decided := tc.resend || tc.taken; decided && err != nil || !decided && !errors.As(err, &ue) {
				t.Fatalf("err = %v", err)
			}
			if r.calls(sim.EPUpdateCreate) != tc.creates {
				t.Errorf("creates = %d, want %d", r.calls(sim.EPUpdateCreate), tc.creates)
			}
		})
	}
	t.Run("update, a diff holds the lock: not adopted", func(t *testing.T) {
		// A lock proves what a lost create made only when the holder is
		// of the create's kind: a diff holding the image is no update.
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		id := "update@buildbox-1/game-b"
		key := id + " imageupdate/create#1"
		r.j.earlier(key, apiPrefix+epUpdateCreate, false, 0)
		out, err := r.exec(instFor(updateStep(0), build1), plan.Inputs{}, nil)
		var ue *UnsettledUpdateError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, output %+v; want the update left to a person", err, out)
		}
		if got, ok := r.j.answer(key); ok || got == d.DiffID {
			t.Errorf("the journal records %d as the update's answer; the diff %d was adopted", got, d.DiffID)
		}
		if n := r.calls(sim.EPUpdateCreate); n != 0 {
			t.Errorf("creates = %d, want 0", n)
		}
	})
	vs := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	t.Run("version, diff still locks: safe to send", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		r.j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
		if _, err := r.exec(instFor(vs, nil), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if r.calls(sim.EPVersionCreate) != 1 || r.versions() != 1 {
			t.Errorf("creates = %d, versions %d; want 1 each", r.calls(sim.EPVersionCreate), r.versions())
		}
	})
	t.Run("version, lock gone: outcome unknown", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		// The earlier run's create took effect; its answer was never
		// recorded, and no fleet is known to find the version by.
		if _, err := r.client.CreateVersion(ctx, d.DiffID, clanforge.VersionOptions{}); err != nil {
			t.Fatal(err)
		}
		r.mark()
		r.j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
		_, err := r.exec(instFor(vs, nil), plan.Inputs{Diff: d}, nil)
		if err == nil || !strings.Contains(err.Error(), "outcome unknown") || !strings.Contains(err.Error(), fmt.Sprintf("diff %d", d.DiffID)) {
			t.Fatalf("err = %v", err)
		}
		if r.calls(sim.EPVersionCreate) != 0 {
			t.Errorf("creates = %d, want 0", r.calls(sim.EPVersionCreate))
		}
	})
	t.Run("version, another diff locks now: not resent", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		// The earlier run's create took effect and consumed the diff;
		// since then somebody diffed a newer build, whose diff holds the
		// lock now. A diff lock proves the create did nothing only when
		// it is this step's diff.
		r.prepare(t, instFor(vs, nil), plan.Inputs{Diff: d})
		r.update(t, emptyBuild)
		other := r.prepare(t, instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{})
		if other.DiffID == d.DiffID {
			t.Fatalf("the second diff has the first one's id %d", d.DiffID)
		}
		r.mark()
		r.j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
		_, err := r.exec(instFor(vs, nil), plan.Inputs{Diff: d}, nil)
		if err == nil || !strings.Contains(err.Error(), "outcome unknown") {
			t.Fatalf("err = %v", err)
		}
		if n := r.calls(sim.EPVersionCreate); n != 0 {
			t.Errorf("creates = %d, want 0: the consumed diff's create was sent again", n)
		}
	})
	t.Run("reject, lock gone: done", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		if _, err := r.client.RejectDiff(ctx, d.DiffID, false); err != nil {
			t.Fatal(err)
		}
		r.mark()
		r.j.earlier("reject@buildbox-1/game-b imagediff/reject#1", fmt.Sprintf("%simagediff/%d/reject", apiPrefix, d.DiffID), false, 0)
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := r.exec(instFor(s, build1), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if r.calls(sim.EPDiffReject) != 0 {
			t.Errorf("rejects = %d, want 0", r.calls(sim.EPDiffReject))
		}
	})
	for _, tc := range []struct {
		name      string
		queued    bool
		wantCalls int
	}{{"queue, job left Pending: not resent", true, 0}, {"queue, job still Pending: sent", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{})
			v := r.version(t, plan.InstallManual)
			r.mirrors(t, v)
			eu1 := r.machine("eu-1")
			_, machines := r.installJobs(v.VersionID)
			id := machines[eu1.ID]
			if tc.queued {
				if _, err := r.client.QueueInstall(ctx, id, false); err != nil {
					t.Fatal(err)
				}
				r.mark()
			}
			r.j.earlier(QueueKey("install@eu-1/game-b", id), queuePath(id), false, 0)
			if _, err := r.exec(installInst(installStep(false), eu1, plan.InstallManual), plan.Inputs{Version: v}, nil); err != nil {
				t.Fatal(err)
			}
			if r.calls(sim.EPInstallQueue) != tc.wantCalls {
				t.Errorf("queue calls = %d, want %d", r.calls(sim.EPInstallQueue), tc.wantCalls)
			}
		})
	}
}

func TestReject(t *testing.T) {
	t.Run("reinstall", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		var u updates
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, Reinstall: true, OnFailure: true}
		out, err := r.exec(instFor(s, build1), plan.Inputs{Diff: d}, u.add)
		if err != nil {
			t.Fatal(err)
		}
		if r.calls(sim.EPDiffReject) != 1 {
			t.Errorf("rejects = %d, want 1", r.calls(sim.EPDiffReject))
		}
		if st := u.states(KindUninstall); len(st) != 1 || out.Job.ID == 0 {
			t.Errorf("uninstall reports %v, output job %+v", st, out.Job)
		}
		if p := r.j.params("reject@buildbox-1/game-b imagediff/reject#1"); p["reinstall"] != "1" {
			t.Errorf("journal params %v", p)
		}
		if l, ok := r.srv.Locks()[imgB.ID]; ok {
			t.Errorf("the lock is still held: %+v", l)
		}
	})
	t.Run("no diff in scope", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := r.exec(instFor(s, build1), plan.Inputs{}, nil); err != nil {
			t.Fatal(err)
		}
		if reqs := r.srv.Requests(); len(reqs) != 0 {
			t.Errorf("calls made: %+v", reqs)
		}
	})
	t.Run("diff already versioned", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{})
		d := r.diff(t, true)
		r.prepare(t, versionInst(plan.InstallManual), plan.Inputs{Diff: d})
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := r.exec(instFor(s, build1), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if r.calls(sim.EPDiffReject) != 0 {
			t.Errorf("rejects = %d, want 0", r.calls(sim.EPDiffReject))
		}
	})
	t.Run("diff still running is awaited", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Error: "x"}}})
		made, err := r.client.CreateDiff(context.Background(), imgB.ID, build1.ID)
		if err != nil {
			t.Fatal(err)
		}
		r.mark()
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := r.exec(instFor(s, build1), plan.Inputs{Diff: &plan.Output{DiffID: made.ID}}, nil); err != nil {
			t.Fatal(err)
		}
		// The API refuses to reject a running diff: one reject, accepted,
		// is one sent after the diff ended.
		if r.calls(sim.EPDiffReject) != 1 || r.job(t, sim.KindDiff, made.ID).State != int(clanforge.StateFailed) {
			t.Errorf("rejects = %d (want 1), diff %+v", r.calls(sim.EPDiffReject), r.job(t, sim.KindDiff, made.ID))
		}
		if _, ok := r.srv.Locks()[imgB.ID]; ok {
			t.Error("the lock is still held")
		}
	})
}

func TestCancelReturnsPromptlyWithLastState(t *testing.T) {
	for _, kind := range []string{"update", "install"} {
		t.Run(kind, func(t *testing.T) {
			// The job runs for an hour of the simulator's clock: far more
			// requests than the test sends.
			d := stepDurations
			if kind == "update" {
				d.Update = time.Hour
			} else {
				d.Install = time.Hour
			}
			r := newStepRig(t, "", sim.Scenario{Durations: d})
			inst := instFor(updateStep(0), build1)
			in := plan.Inputs{}
			if kind == "install" {
				v := r.version(t, plan.InstallManual)
				r.mirrors(t, v)
				inst = installInst(installStep(false), r.machine("eu-1"), plan.InstallManual)
				in.Version = v
			}
			// Warm up the connection pool so that the baseline counts it.
			if _, err := r.client.ImageOptions(context.Background(), imgB.ID); err != nil {
				t.Fatal(err)
			}
			r.mark()
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			progress := func(u JobUpdate) {
				if u.Job.State == clanforge.StateRunning {
					cancel()
				}
			}
			out, err := Run(ctx, r.env, inst, in, progress)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if out.Job.State != int(clanforge.StateRunning) || out.Job.ID == 0 {
				t.Errorf("last job %+v, want the running job", out.Job)
			}
			if creates := r.calls(sim.EPUpdateCreate) + r.calls(sim.EPInstallQueue); creates != 1 {
				t.Errorf("state-changing calls = %d, want 1", creates)
			}
			r.env.Installs.Close()
			waitGoroutines(t, base)
		})
	}
}

func TestCancelledBeforeStartSendsNothing(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, r.env, instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if reqs := r.srv.Requests(); len(reqs) != 0 {
		t.Errorf("requests sent after cancellation: %+v", reqs)
	}
}

func TestWatcherLifecycle(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	v := r.version(t, plan.InstallManual).VersionID
	ms := []*plan.Machine{r.machine("eu-1"), r.machine("eu-2"), r.machine("us-1")}
	if _, err := r.client.ImageOptions(context.Background(), imgB.ID); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	w := NewInstallWatcher(r.client, testPol)
	var subs []*InstallSubscription
	for _, m := range ms {
		s, err := w.Subscribe(InstallInterest{VersionID: v, Machine: m.ID})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	for i, s := range subs {
		snap := <-s.C()
		if snap.Err != nil || len(snap.Jobs) != 1 || snap.Jobs[0].Machine != ms[i].ID {
			t.Fatalf("snapshot %+v", snap)
		}
	}
	for _, s := range subs {
		s.Close()
		s.Close()
	}
	waitGoroutines(t, base)
	before := len(r.srv.Requests())
	time.Sleep(5 * testPol.Max)
	if after := len(r.srv.Requests()); after != before {
		t.Errorf("the watcher reads with nobody subscribed: %d requests", after-before)
	}

	// Bound to a context: its end reaches the subscribers.
	ctx, cancel := context.WithCancel(context.Background())
	w.Start(ctx)
	s, err := w.Subscribe(InstallInterest{VersionID: v, Machine: ms[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	<-s.C()
	cancel()
	for final := false; !final; {
		select {
		case snap := <-s.C():
			if snap.Err != nil {
				if !errors.Is(snap.Err, context.Canceled) {
					t.Errorf("final snapshot error %v", snap.Err)
				}
				final = true
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the end of the watcher's context never reached its subscriber")
		}
	}
	s.Close()
	if _, err := w.Subscribe(InstallInterest{VersionID: v}); err == nil {
		t.Error("subscribing to a stopped watcher succeeded")
	}
	w.Close()
	waitGoroutines(t, base)
}

func TestSecretsMaskedInErrors(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindUpdate, Error: "cannot fetch " + bucketURL}}})
	var u updates
	out, err := r.exec(instFor(updateStep(0), build1), plan.Inputs{}, u.add)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "TOPSECRET") || !strings.Contains(err.Error(), "s3://***@builds") {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(out.Job.Error, "TOPSECRET") || out.Job.Error == "" {
		t.Errorf("output job error %q", out.Job.Error)
	}
	for _, x := range u.all {
		if strings.Contains(x.Job.Error, "TOPSECRET") {
			t.Errorf("progress leaks: %q", x.Job.Error)
		}
	}
}

// TestDeadlineNamesRunningJob: when the step's deadline passes, the error
// names the job still running with its last state and progress, as read.
func TestDeadlineNamesRunningJob(t *testing.T) {
	d := stepDurations
	d.Update = time.Minute // about 1% per six requests: it runs past the deadline
	r := newStepRig(t, "", sim.Scenario{Durations: d})
	var u updates
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, r.env, instFor(updateStep(0), build1), plan.Inputs{}, u.add)
	last := u.last()
	if last.Job.State != clanforge.StateRunning {
		t.Fatalf("the update was %s when the deadline passed: the test does not cover a running job", last.Job.StateName)
	}
	want := fmt.Sprintf("update job %d was still Running (%d%%)", last.Job.ID, last.Job.Progress)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
	if jobs := r.srv.Jobs(); len(jobs) != 1 || jobs[0].ID != last.Job.ID {
		t.Errorf("jobs %+v, want the one update", jobs)
	}
}

func TestPacer(t *testing.T) {
	p := PollPolicy{Min: 2 * time.Second, Max: 30 * time.Second, Factor: 1.5}
	now := time.Unix(1_700_000_000, 0)
	run := func(eta time.Time) *clanforge.Job { return &clanforge.Job{State: clanforge.StateRunning, ETA: eta} }
	pc := &pacer{p: p}
	var got []time.Duration
	for i := 0; i < 9; i++ {
		got = append(got, pc.next(now, run(time.Time{})))
	}
	want := []time.Duration{2 * time.Second, 3 * time.Second, 4500 * time.Millisecond, 6750 * time.Millisecond,
		10125 * time.Millisecond, 15187500 * time.Microsecond, 22781250 * time.Microsecond, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("backoff without ETA = %v, want %v", got, want)
	}
	tests := []struct {
		eta  time.Time
		want time.Duration
	}{
		{now.Add(10 * time.Second), 10*time.Second + 500*time.Millisecond}, // near the ETA plus a margin
		{now.Add(100 * time.Millisecond), 2 * time.Second},                 // never below Min
		{now.Add(time.Hour), 30 * time.Second},                             // never beyond Max
		{now.Add(-3 * time.Second), 2 * time.Second},                       // passed ETA: back off from Min
	}
	for _, tt := range tests {
		pc := &pacer{p: p}
		if d := pc.next(now, run(tt.eta)); d != tt.want {
			t.Errorf("eta %v: delay %v, want %v", tt.eta.Sub(now), d, tt.want)
		}
	}
	// A state change restarts the backoff.
	pc = &pacer{p: p}
	pc.next(now, run(time.Time{}))
	pc.next(now, run(time.Time{}))
	if d := pc.next(now, &clanforge.Job{State: clanforge.StateCompleted}); d != p.Min {
		t.Errorf("after a state change: %v, want Min", d)
	}
	if (PollPolicy{}).normalized() != DefaultPollPolicy() {
		t.Error("a zero policy must normalize to the default")
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://key:secret@bucket/dir/?region=eu-west-1", "s3://***@bucket/dir/?region=eu-west-1"},
		{"steam://user:pw@install/123/?beta=x&betapassword=hunter2", "steam://***@install/123/?beta=x&betapassword=***"},
		{"gs://bucket/dir?credentials=%7B%22k%22%3A1%7D", "gs://bucket/dir?credentials=***"},
		{"s3://bucket/dir/", "s3://bucket/dir/"},
		{"build 1.4.2", "build 1.4.2"},
		// The user-info runs to the last "@": an "@" in the path hides the
		// host too, the price of never leaking a secret with a raw "/".
		{"https://u:p@host/x@y", "https://***@y"},
		{"s3://AKIAX:abc/def+ghi@builds/x/", "s3://***@builds/x/"},
		{`update failed: url "s3://AKIAX:abc/def+ghi@builds/x/" refused`, `update failed: url "s3://***@builds/x/" refused`},
	}
	for _, tt := range tests {
		if got := maskURL(tt.in); got != tt.want {
			t.Errorf("maskURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
