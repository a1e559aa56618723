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
	"github.com/rollout/rollout/plan"
)

func updateStep(retries int) *plan.Step {
	return &plan.Step{
		Name: "update", Type: plan.TypeUpdate, Retries: retries,
		Desc: plan.Value{Resolved: "build 1.4.2", Display: "build 1.4.2"},
		URL:  plan.Value{Resolved: "s3://AKIAXX:TOPSECRETVALUE@builds/game/1.4.2/", Display: "s3://***@builds/game/1.4.2/"},
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name      string
		retries   int
		scripts   [][]step
		wantErr   string
		wantCreat int
	}{
		{"happy", 0, nil, "", 1},
		{"failed job, no retries", 0, [][]step{{sRun, sFail("disk full")}}, "disk full", 1},
		{"failed then retried", 1, [][]step{{sRun, sFail("disk full")}, {sRun, sDone}}, "", 2},
		{"retries exhausted", 1, [][]step{{sFail("a")}, {sFail("b")}}, "after 2 attempts", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.updateScripts = tt.scripts
			j := &MemJournal{}
			var u updates
			inst := instFor(updateStep(tt.retries), build1)
			out, err := Run(context.Background(), newEnv(c, j, testPol), inst, plan.Inputs{}, u.add)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Run error = %v, want it to contain %q", err, tt.wantErr)
			}
			if got := f.hit("imageupdate/create"); got != tt.wantCreat {
				t.Errorf("creates = %d, want %d", got, tt.wantCreat)
			}
			wantKeys := []string{}
			for a := 1; a <= tt.wantCreat; a++ {
				wantKeys = append(wantKeys, fmt.Sprintf("update@buildbox-1/game-b imageupdate/create#%d", a))
			}
			if got := j.sent(); !slices.Equal(got, wantKeys) {
				t.Errorf("journal keys = %q, want %q", got, wantKeys)
			}
			p := j.params(wantKeys[0])
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
			if tt.wantErr != "" {
				want = plan.OutputFailed
			}
			if out.State != want {
				t.Errorf("output state = %q, want %q", out.State, want)
			}
		})
	}
}

func TestDiffRetryUsesRetryEndpointSameID(t *testing.T) {
	f, c := newFake(t)
	f.diffScripts = [][]step{{sRun, sFail("checksum mismatch")}, {sRun, sDone}}
	j := &MemJournal{}
	var u updates
	s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
	out, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, build1), plan.Inputs{}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imagediff/create") != 1 || f.hit("imagediff/retry") != 1 {
		t.Errorf("creates %d, retries %d; want 1 and 1", f.hit("imagediff/create"), f.hit("imagediff/retry"))
	}
	ids := map[int64]bool{}
	for _, x := range u.all {
		ids[x.Job.ID] = true
	}
	if len(ids) != 1 || !ids[out.DiffID] {
		t.Errorf("diff ids seen %v, output diffid %d: the retry must keep the diffid", ids, out.DiffID)
	}
	if out.Changed != 3 || !slices.Equal(out.Added, []string{"Data/level9.pak"}) || !slices.Equal(out.Removed, []string{"Data/old.bik"}) {
		t.Errorf("output = %+v", out)
	}
	want := []string{"diff@buildbox-1/game-b imagediff/create#1", "diff@buildbox-1/game-b imagediff/retry#1"}
	if got := j.sent(); !slices.Equal(got, want) {
		t.Errorf("journal keys = %q, want %q", got, want)
	}
}

func TestDiffFailureKeepsDiffID(t *testing.T) {
	f, c := newFake(t)
	f.diffScripts = [][]step{{sFail("bad")}, {sFail("worse")}}
	s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
	out, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, build1), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), "worse") || !strings.Contains(err.Error(), "after 1 retries") {
		t.Fatalf("err = %v", err)
	}
	if out.DiffID == 0 {
		t.Error("a failed diff must still report its diffid so that reject can release the lock")
	}
	if f.hit("imagediff/retry") != 1 {
		t.Errorf("retries = %d, want 1", f.hit("imagediff/retry"))
	}
}

// completedDiff makes a completed diff that locks the image and returns its
// output as the diff step would have produced it.
func completedDiff(t *testing.T, f *fakeAPI, changed int) *plan.Output {
	t.Helper()
	id := f.addJob("diff", imgB.ID, []step{sDone})
	f.mu.Lock()
	f.jobs[id].changed = changed
	f.jobs[id].cur = sDone
	f.locks[imgB.ID] = lock{"diff", id}
	f.mu.Unlock()
	return &plan.Output{DiffID: id, Changed: changed}
}

func TestVersionOptions(t *testing.T) {
	tests := []struct {
		name      string
		full      plan.FullMode
		changed   int
		at        plan.InstallAt
		wantFull  string
		wantAt    string
		wantError string
	}{
		{"auto on empty diff sends full=1", plan.FullAuto, 0, plan.InstallManual, "1", "", ""},
		{"auto on changes sends full=0", plan.FullAuto, 3, plan.InstallNow, "0", "NOW()", ""},
		{"false on empty diff is refused", plan.FullFalse, 0, plan.InstallManual, "0", "", "full=1 required"},
		{"true", plan.FullTrue, 3, plan.InstallManual, "1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			d := completedDiff(t, f, tt.changed)
			s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: tt.full, InstallAt: tt.at, Restart: true,
				GameBuild: plan.Value{Resolved: "1.4.2", Display: "1.4.2"}}
			out, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil)
			if f.hit("imageversion/create") != 1 {
				t.Fatalf("creates = %d, want 1", f.hit("imageversion/create"))
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
			p := f.versionParams
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
			if out.VersionID == 0 || out.Job.State != int(clanforge.StateCompleted) {
				t.Errorf("output %+v", out)
			}
		})
	}
}

func TestVersionFailedAndNoDiff(t *testing.T) {
	f, c := newFake(t)
	f.versionScript = []step{sRun, sFail("packaging failed")}
	d := completedDiff(t, f, 3)
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	_, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if err == nil || !strings.Contains(err.Error(), "packaging failed") {
		t.Fatalf("err = %v", err)
	}
	_, err = Run(context.Background(), newEnv(c, nil, testPol), instFor(s, nil), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), "no diff id") {
		t.Fatalf("without a diff: err = %v", err)
	}
}

func TestVersionLostAnswerIsNotResent(t *testing.T) {
	f, c := newFake(t)
	f.dropVersion = true
	d := completedDiff(t, f, 3)
	j := &MemJournal{}
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	_, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) || !strings.Contains(err.Error(), fmt.Sprintf("check imageversion for diff %d", d.DiffID)) {
		t.Fatalf("err = %v", err)
	}
	if f.hit("imageversion/create") != 1 {
		t.Errorf("creates = %d, want exactly 1", f.hit("imageversion/create"))
	}
}

func TestGateWithoutExpressionFails(t *testing.T) {
	s := &plan.Step{Name: "small", Type: plan.TypeGate}
	_, err := Run(context.Background(), &Env{}, instFor(s, nil), plan.Inputs{}, nil)
	if err == nil || !strings.Contains(err.Error(), `gate "small"`) {
		t.Fatalf("err = %v", err)
	}
}

// machineInstalls generates one Pending machine job per machine and one
// mirror job per location, like a completed version does.
func machineInstalls(ms []*plan.Machine, mirrors int) func(int64, bool) []*finst {
	return func(v int64, now bool) []*finst {
		var out []*finst
		for i := 0; i < mirrors; i++ {
			out = append(out, &finst{mirroring: true, mirror: fmt.Sprintf("mirror-%d", i), location: int64(30 + i), version: v, moving: now})
		}
		for _, m := range ms {
			out = append(out, &finst{machine: m.ID, location: 30, version: v, moving: now})
		}
		return out
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

// listVersion lists the install jobs of a fresh version id.
func listVersion(f *fakeAPI, gen func(int64, bool) []*finst, now bool) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	v := f.next
	for _, in := range gen(v, now) {
		f.addInstallLocked(in)
	}
	return v
}

func TestInstallQueuesOnceAndWatches(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(1)
	v := listVersion(f, machineInstalls(ms, 1), false)
	j := &MemJournal{}
	var u updates
	out, err := Run(context.Background(), newEnv(c, j, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imageinstall/queue") != 1 {
		t.Errorf("queue calls = %d, want 1", f.hit("imageinstall/queue"))
	}
	if len(out.JobIDs) != 1 || out.Job.State != int(clanforge.StateCompleted) {
		t.Errorf("output %+v", out)
	}
	want := []clanforge.JobState{clanforge.StatePending, clanforge.StateQueued, clanforge.StateRunning, clanforge.StateCompleted}
	if got := u.states(KindInstall); !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	if got := j.sent(); !slices.Equal(got, []string{fmt.Sprintf("install@m0/game-b imageinstall/queue/%d", out.JobIDs[0])}) {
		t.Errorf("journal keys = %q", got)
	}
	if p := j.params(j.sent()[0]); p["mirroring"] != "false" {
		t.Errorf("queue params %v", p)
	}
	// The mirror job of the same version is not ours.
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.installs {
		if in.mirroring && in.cur.st != clanforge.StatePending {
			t.Errorf("mirror job %d was touched: %v", in.id, in.cur.st)
		}
	}
}

// TestInstallMatchesAMachineGivenByName: install entries that name their
// machine instead of giving its id are matched through the plan's names.
func TestInstallMatchesAMachineGivenByName(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(2)
	f.machineNames = map[int64]string{ms[0].ID: ms[0].Name, ms[1].ID: ms[1].Name}
	v := listVersion(f, machineInstalls(ms, 1), false)
	env := newEnv(c, &MemJournal{}, testPol)
	env.Installs.SetMachineNames(map[string]int64{ms[0].Name: ms[0].ID, ms[1].Name: ms[1].ID})
	out, err := Run(context.Background(), env, installInst(installStep(false), ms[1], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imageinstall/queue") != 1 || len(out.JobIDs) != 1 {
		t.Fatalf("queue calls %d, output %+v", f.hit("imageinstall/queue"), out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.all {
		if in.id == out.JobIDs[0] && in.machine != ms[1].ID {
			t.Errorf("queued the job of machine %d, want %d", in.machine, ms[1].ID)
		}
	}
}

func TestInstallFailedStaysListed(t *testing.T) {
	f, c := newFake(t)
	f.installScript = []step{{st: clanforge.StateQueued}, sRun, sFail("disk full on machine")}
	ms := fleet(1)
	v := listVersion(f, machineInstalls(ms, 0), false)
	out, err := Run(context.Background(), newEnv(c, nil, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full on machine") || !strings.Contains(err.Error(), fmt.Sprint(ms[0].ID)) {
		t.Fatalf("err = %v", err)
	}
	if out.Job.State != int(clanforge.StateFailed) {
		t.Errorf("output job %+v", out.Job)
	}
}

func TestInstallMirrorWaitsForEveryLocation(t *testing.T) {
	f, c := newFake(t)
	v := listVersion(f, machineInstalls(fleet(2), 3), false)
	// One mirror takes longer than the others.
	f.mu.Lock()
	f.installs[1].script = []step{{st: clanforge.StateQueued}, sRun, sRun, sRun, sDone}
	slow := f.installs[1].id
	f.mu.Unlock()
	var u updates
	out, err := Run(context.Background(), newEnv(c, nil, testPol), installInst(installStep(true), nil, plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, u.add)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imageinstall/queue") != 3 || len(out.JobIDs) != 3 {
		t.Errorf("queue calls %d, job ids %v; want 3 each", f.hit("imageinstall/queue"), out.JobIDs)
	}
	u.mu.Lock()
	last := u.all[len(u.all)-1]
	u.mu.Unlock()
	if last.Job.ID != slow || last.Job.State != clanforge.StateCompleted || last.Kind != KindMirror {
		t.Errorf("last update %+v, want the slow mirror %d completing", last, slow)
	}
}

func TestInstallAtNowOnlyWatches(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(1)
	v := listVersion(f, machineInstalls(ms, 0), true)
	_, err := Run(context.Background(), newEnv(c, nil, testPol), installInst(installStep(false), ms[0], plan.InstallNow),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imageinstall/queue") != 0 {
		t.Errorf("queue calls = %d, want 0 under install_at=now", f.hit("imageinstall/queue"))
	}
}

// TestInstallAtNowJobEndedBeforeItsTurn: under install_at now the platform
// runs every machine's job by itself, while the rollout may watch only some
// at a time. A job that completed (and left the list) while its instance
// waited for a slot was still seen by the shared watcher reading for the
// others, so the instance succeeds, naming its job, even though other
// machines are still pending (which rules out the counters' proof).
func TestInstallAtNowJobEndedBeforeItsTurn(t *testing.T) {
	f, c := newFake(t)
	f.counters = clanforge.Counters{Pending: 1, Completed: 1}
	ms := fleet(2)
	v := listVersion(f, machineInstalls(ms, 0), true)
	f.mu.Lock()
	f.installs[0].script = []step{{st: clanforge.StateQueued}, sRun, sRun, sRun, sRun, sDone}
	early := f.installs[1].id
	f.mu.Unlock()
	env := newEnv(c, nil, testPol)
	defer env.Installs.Close()
	if _, err := Run(context.Background(), env, installInst(installStep(false), ms[0], plan.InstallNow),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil); err != nil {
		t.Fatalf("first machine: %v", err)
	}
	f.mu.Lock()
	for _, in := range f.installs {
		if in.id == early {
			f.mu.Unlock()
			t.Fatalf("the second machine's job %d is still listed: the test does not cover a vanished job", early)
		}
	}
	f.mu.Unlock()
	out, err := Run(context.Background(), env, installInst(installStep(false), ms[1], plan.InstallNow),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err != nil {
		t.Fatalf("second machine, whose job ended before its turn: %v", err)
	}
	if !slices.Equal(out.JobIDs, []int64{early}) || out.Job.State != int(clanforge.StateCompleted) {
		t.Fatalf("output %+v, want job %d completed", out, early)
	}
	if f.hit("imageinstall/queue") != 0 {
		t.Errorf("queue calls = %d under install_at now", f.hit("imageinstall/queue"))
	}
}

func TestInstallNotFound(t *testing.T) {
	f, c := newFake(t)
	f.counters = clanforge.Counters{Pending: 3, Completed: 1}
	ms := fleet(1)
	_, err := Run(context.Background(), newEnv(c, nil, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: 99}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no machine install job for version 99") {
		t.Fatalf("err = %v", err)
	}
	if n := f.hit("imageinstall/status"); n < discoveryReads {
		t.Errorf("gave up after %d reads, want at least %d", n, discoveryReads)
	}
	// The counters say every running machine is on the latest version: the
	// job completed before anyone looked.
	f.counters = clanforge.Counters{Completed: 4}
	if _, err := Run(context.Background(), newEnv(c, nil, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: 99}}, nil); err != nil {
		t.Fatalf("with nothing pending: %v", err)
	}
}

// TestSharedWatcherReadsOncePerInterval runs many machine installs at once:
// they share one reader, so the reads of imageinstall/status follow the
// interval, not the number of instances.
func TestSharedWatcherReadsOncePerInterval(t *testing.T) {
	f, c := newFake(t)
	const n = 60
	ms := fleet(n)
	v := listVersion(f, machineInstalls(ms, 0), false)
	pol := PollPolicy{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	env := newEnv(c, nil, pol)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Run(context.Background(), env, installInst(installStep(false), m, plan.InstallManual),
				plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
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
	reads := f.hit("imageinstall/status")
	if limit := int(elapsed/pol.Min) + 2; reads > limit {
		t.Errorf("%d reads in %v: more than one per Min interval (limit %d)", reads, elapsed, limit)
	}
	if reads >= n {
		t.Errorf("%d reads for %d instances: the reader is not shared", reads, n)
	}
	if f.hit("imageinstall/queue") != n {
		t.Errorf("queue calls = %d, want %d", f.hit("imageinstall/queue"), n)
	}
	if int64(reads) != env.Installs.Reads() {
		t.Errorf("server saw %d reads, watcher counted %d", reads, env.Installs.Reads())
	}
}

// TestPollingNeverTighterThanMin polls a job whose ETA is always in the past
// and one without ETA: the reads stay at least Min apart.
func TestPollingNeverTighterThanMin(t *testing.T) {
	for _, eta := range []time.Duration{0, -5 * time.Second, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("eta ", eta), func(t *testing.T) {
			f, c := newFake(t)
			run := step{st: clanforge.StateRunning, prog: 40, eta: eta}
			f.updateScripts = [][]step{{run, run, run, run, run, run, sDone}}
			pol := PollPolicy{Min: 15 * time.Millisecond, Max: 30 * time.Millisecond, Factor: 2}
			start := time.Now()
			if _, err := Run(context.Background(), newEnv(c, nil, pol), instFor(updateStep(0), build1), plan.Inputs{}, nil); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			reads := f.hit("imageupdate/status")
			if reads != 7 {
				t.Errorf("reads = %d, want 7", reads)
			}
			if int(elapsed/pol.Min)+1 < reads {
				t.Errorf("%d reads in %v: tighter than Min %v", reads, elapsed, pol.Min)
			}
		})
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

func TestResumeReattachesWithoutCreate(t *testing.T) {
	f, c := newFake(t)
	id := f.addJob("update", imgB.ID, []step{sRun, sDone})
	j := &MemJournal{}
	j.earlier("update@buildbox-1/game-b imageupdate/create#1", apiPrefix+epUpdateCreate, true, id)
	out, err := Run(context.Background(), newEnv(c, j, testPol), instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.hit("imageupdate/create") != 0 || f.reads[id] == 0 || out.Job.ID != id {
		t.Errorf("creates %d, reads of %d: %d, output job %d", f.hit("imageupdate/create"), id, f.reads[id], out.Job.ID)
	}
}

func TestResumeIntentWithoutResult(t *testing.T) {
	t.Run("diff lock held: adopt", func(t *testing.T) {
		f, c := newFake(t)
		id := f.addJob("diff", imgB.ID, []step{sRun, sDone})
		f.setLock(imgB.ID, "diff", id)
		j := &MemJournal{}
		key := "diff@buildbox-1/game-b imagediff/create#1"
		j.earlier(key, apiPrefix+epDiffCreate, false, 0)
		out, err := Run(context.Background(), newEnv(c, j, testPol), instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := j.answer(key); f.hit("imagediff/create") != 0 || out.DiffID != id || got != id {
			t.Errorf("creates %d, diffid %d (want %d), journal result %d", f.hit("imagediff/create"), out.DiffID, id, got)
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
			f, c := newFake(t)
			j := &MemJournal{}
			id := "update@buildbox-1/game-b"
			j.earlier(id+" imageupdate/create#1", apiPrefix+epUpdateCreate, false, 0)
			env := newEnv(c, j, testPol)
			env.Resend, env.AssumeSent = map[string]bool{id: tc.resend}, map[string]bool{id: tc.taken}
			_, err := Run(context.Background(), env, instFor(updateStep(0), build1), plan.Inputs{}, nil)
			var ue *UnsettledUpdateError
			if decided := tc.resend || tc.taken; decided && err != nil || !decided && !errors.As(err, &ue) {
				t.Fatalf("err = %v", err)
			}
			if f.hit("imageupdate/create") != tc.creates {
				t.Errorf("creates = %d, want %d", f.hit("imageupdate/create"), tc.creates)
			}
		})
	}
	t.Run("version, diff still locks: safe to send", func(t *testing.T) {
		f, c := newFake(t)
		d := completedDiff(t, f, 3)
		j := &MemJournal{}
		j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
		s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
		if _, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if f.hit("imageversion/create") != 1 {
			t.Errorf("creates = %d, want 1", f.hit("imageversion/create"))
		}
	})
	t.Run("version, lock gone: outcome unknown", func(t *testing.T) {
		f, c := newFake(t)
		d := completedDiff(t, f, 3)
		f.mu.Lock()
		delete(f.locks, imgB.ID)
		f.mu.Unlock()
		j := &MemJournal{}
		j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
		s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
		_, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil)
		if err == nil || !strings.Contains(err.Error(), "outcome unknown") || !strings.Contains(err.Error(), fmt.Sprintf("diff %d", d.DiffID)) {
			t.Fatalf("err = %v", err)
		}
		if f.hit("imageversion/create") != 0 {
			t.Errorf("creates = %d, want 0", f.hit("imageversion/create"))
		}
	})
	t.Run("reject, lock gone: done", func(t *testing.T) {
		f, c := newFake(t)
		d := completedDiff(t, f, 3)
		f.mu.Lock()
		delete(f.locks, imgB.ID)
		f.mu.Unlock()
		j := &MemJournal{}
		j.earlier("reject@buildbox-1/game-b imagediff/reject#1", fmt.Sprintf("%simagediff/%d/reject", apiPrefix, d.DiffID), false, 0)
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, build1), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if f.hit("imagediff/reject") != 0 {
			t.Errorf("rejects = %d, want 0", f.hit("imagediff/reject"))
		}
	})
	for _, tc := range []struct {
		name      string
		queued    bool
		wantCalls int
	}{{"queue, job left Pending: not resent", true, 0}, {"queue, job still Pending: sent", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t)
			ms := fleet(1)
			v := listVersion(f, machineInstalls(ms, 0), false)
			f.mu.Lock()
			in := f.installs[0]
			if tc.queued {
				in.moving, in.cur = true, step{st: clanforge.StateQueued}
			}
			f.mu.Unlock()
			j := &MemJournal{}
			j.earlier(QueueKey("install@m0/game-b", in.id), queuePath(in.id), false, 0)
			if _, err := Run(context.Background(), newEnv(c, j, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
				plan.Inputs{Version: &plan.Output{VersionID: v}}, nil); err != nil {
				t.Fatal(err)
			}
			if f.hit("imageinstall/queue") != tc.wantCalls {
				t.Errorf("queue calls = %d, want %d", f.hit("imageinstall/queue"), tc.wantCalls)
			}
		})
	}
}

func TestReject(t *testing.T) {
	t.Run("reinstall", func(t *testing.T) {
		f, c := newFake(t)
		d := completedDiff(t, f, 3)
		j := &MemJournal{}
		var u updates
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, Reinstall: true, OnFailure: true}
		out, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, build1), plan.Inputs{Diff: d}, u.add)
		if err != nil {
			t.Fatal(err)
		}
		if f.hit("imagediff/reject") != 1 {
			t.Errorf("rejects = %d, want 1", f.hit("imagediff/reject"))
		}
		if st := u.states(KindUninstall); len(st) != 1 || out.Job.ID == 0 {
			t.Errorf("uninstall reports %v, output job %+v", st, out.Job)
		}
		if p := j.params("reject@buildbox-1/game-b imagediff/reject#1"); p["reinstall"] != "1" {
			t.Errorf("journal params %v", p)
		}
		if _, ok := f.locks[imgB.ID]; ok {
			t.Error("the lock is still held")
		}
	})
	t.Run("no diff in scope", func(t *testing.T) {
		f, c := newFake(t)
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, build1), plan.Inputs{}, nil); err != nil {
			t.Fatal(err)
		}
		if len(f.hits) != 0 {
			t.Errorf("calls made: %v", sortedKeys(f.hits))
		}
	})
	t.Run("diff already versioned", func(t *testing.T) {
		f, c := newFake(t)
		d := completedDiff(t, f, 3)
		f.mu.Lock()
		delete(f.locks, imgB.ID)
		f.mu.Unlock()
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, build1), plan.Inputs{Diff: d}, nil); err != nil {
			t.Fatal(err)
		}
		if f.hit("imagediff/reject") != 0 {
			t.Errorf("rejects = %d, want 0", f.hit("imagediff/reject"))
		}
	})
	t.Run("diff still running is awaited", func(t *testing.T) {
		f, c := newFake(t)
		id := f.addJob("diff", imgB.ID, []step{sRun, sRun, sFail("x")})
		f.setLock(imgB.ID, "diff", id)
		s := &plan.Step{Name: "reject", Type: plan.TypeReject, OnFailure: true}
		if _, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(s, build1), plan.Inputs{Diff: &plan.Output{DiffID: id}}, nil); err != nil {
			t.Fatal(err)
		}
		if f.hit("imagediff/reject") != 1 {
			t.Errorf("rejects = %d, want 1", f.hit("imagediff/reject"))
		}
	})
}

func TestCancelReturnsPromptlyWithLastState(t *testing.T) {
	for _, kind := range []string{"update", "install"} {
		t.Run(kind, func(t *testing.T) {
			f, c := newFake(t)
			running := step{st: clanforge.StateRunning, prog: 30}
			f.updateScripts = [][]step{{running}}
			f.installScript = []step{running}
			ms := fleet(1)
			v := listVersion(f, machineInstalls(ms, 0), false)
			// Warm up the connection pool so that the baseline counts it.
			if _, err := c.ImageOptions(context.Background(), imgB.ID); err != nil {
				t.Fatal(err)
			}
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			env := newEnv(c, nil, testPol)
			inst := instFor(updateStep(0), build1)
			in := plan.Inputs{}
			if kind == "install" {
				inst = installInst(installStep(false), ms[0], plan.InstallManual)
				in.Version = &plan.Output{VersionID: v}
			}
			progress := func(u JobUpdate) {
				if u.Job.State == clanforge.StateRunning {
					cancel()
				}
			}
			out, err := Run(ctx, env, inst, in, progress)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if out.Job.State != int(clanforge.StateRunning) || out.Job.ID == 0 {
				t.Errorf("last job %+v, want the running job", out.Job)
			}
			creates := f.hit("imageupdate/create") + f.hit("imageinstall/queue")
			if creates != 1 {
				t.Errorf("state-changing calls = %d, want 1", creates)
			}
			waitGoroutines(t, base)
		})
	}
}

func TestCancelledBeforeStartSendsNothing(t *testing.T) {
	f, c := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, newEnv(c, nil, testPol), instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if f.hit("imageupdate/create") != 0 {
		t.Error("a create was sent after cancellation")
	}
}

func TestWatcherLifecycle(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(3)
	v := listVersion(f, machineInstalls(ms, 0), false)
	if _, err := c.ImageOptions(context.Background(), imgB.ID); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	w := NewInstallWatcher(c, testPol)
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
	before := f.hit("imageinstall/status")
	time.Sleep(5 * testPol.Max)
	if f.hit("imageinstall/status") != before {
		t.Error("the watcher reads with nobody subscribed")
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
	f, c := newFake(t)
	f.updateScripts = [][]step{{sFail("cannot fetch s3://AKIAXX:TOPSECRETVALUE@builds/game/1.4.2/")}}
	var u updates
	out, err := Run(context.Background(), newEnv(c, nil, testPol), instFor(updateStep(0), build1), plan.Inputs{}, u.add)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "TOPSECRET") || !strings.Contains(err.Error(), "s3://***@builds") {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(out.Job.Error, "TOPSECRET") {
		t.Errorf("output job error %q", out.Job.Error)
	}
	for _, x := range u.all {
		if strings.Contains(x.Job.Error, "TOPSECRET") {
			t.Errorf("progress leaks: %q", x.Job.Error)
		}
	}
}

func TestDeadlineNamesRunningJob(t *testing.T) {
	f, c := newFake(t)
	f.updateScripts = [][]step{{{st: clanforge.StateRunning, prog: 30}}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, newEnv(c, nil, testPol), instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "update job") || !strings.Contains(err.Error(), "Running (30%)") {
		t.Fatalf("err = %v", err)
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
