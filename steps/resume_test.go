package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// completeWhileDown ends install job id the way the platform does while no
// rollout runs: it completes and leaves imageinstall/status.
func (f *fakeAPI) completeWhileDown(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.all[id]
	in.moving, in.cur = true, sDone
	kept := f.installs[:0]
	for _, x := range f.installs {
		if x.id != id {
			kept = append(kept, x)
		}
	}
	f.installs = kept
}

// installIDs returns the install jobs of version v, listed or not, in
// creation order: mirror jobs by location, machine jobs by machine.
func (f *fakeAPI) installIDs(v int64) (mirrors, machines []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []int64
	for id, in := range f.all {
		if in.version == v {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if f.all[id].mirroring {
			mirrors = append(mirrors, id)
		} else {
			machines = append(machines, id)
		}
	}
	return mirrors, machines
}

// TestInstallResumeJobCompletedWhileDown: a rollout killed while an install
// job was queued (or recorded as seen) resumes after the job completed and
// left imageinstall/status. The journal names the job, so the instance
// counts it completed, queues nothing, and does not wait for it to appear.
// The counters cannot prove it (other machines are still pending), so
// without the journal's job the instance would fail with "no machine
// install job ... appeared".
func TestInstallResumeJobCompletedWhileDown(t *testing.T) {
	tests := []struct {
		name string
		at   plan.InstallAt
		// prime records what the killed run left in the journal about
		// job id of instance inst.
		prime func(j *MemJournal, inst string, in InstallInterest, id int64)
		// settles: the earlier run's queue intent had no answer; the
		// resumed run records one.
		settles bool
	}{
		{"queued and answered", plan.InstallManual, func(j *MemJournal, inst string, _ InstallInterest, id int64) {
			j.earlier(QueueKey(inst, id), queuePath(id), true, id)
		}, false},
		{"queued, killed before the answer", plan.InstallManual, func(j *MemJournal, inst string, _ InstallInterest, id int64) {
			j.earlier(QueueKey(inst, id), queuePath(id), false, 0)
		}, true},
		{"install_at now, seen listed", plan.InstallNow, func(j *MemJournal, _ string, in InstallInterest, id int64) {
			_ = j.SeenInstalls([]SeenInstall{{InstallInterest: in, ID: id}})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.counters = clanforge.Counters{Pending: 2, Completed: 1}
			ms := fleet(3)
			v := listVersion(f, machineInstalls(ms, 1), tt.at == plan.InstallNow)
			_, machines := f.installIDs(v)
			id := machines[1]
			inst := installInst(installStep(false), ms[1], tt.at)
			j := &MemJournal{}
			tt.prime(j, inst.ID, InstallInterest{VersionID: v, Machine: ms[1].ID}, id)
			f.completeWhileDown(id)

			out, err := Run(context.Background(), newEnv(c, j, testPol), inst, plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
			if err != nil {
				t.Fatalf("resume after the job completed: %v", err)
			}
			if !slices.Equal(out.JobIDs, []int64{id}) || out.Job.State != int(clanforge.StateCompleted) {
				t.Errorf("output %+v, want job %d completed", out, id)
			}
			if n := f.hit("imageinstall/queue"); n != 0 {
				t.Errorf("queue calls = %d, want 0", n)
			}
			key := QueueKey(inst.ID, id)
			if got, ok := j.answer(key); tt.settles && (!ok || got != id) {
				t.Errorf("the unanswered queue intent was not settled in the journal: result %d, %v", got, ok)
			}
		})
	}
}

// TestMirrorResumeOneLocationDoneOneNeverQueued: the run was killed between
// the queue calls of two mirror jobs; the queued one completed while the
// rollout was down. The resumed instance counts it completed and queues
// only the other, once.
func TestMirrorResumeOneLocationDoneOneNeverQueued(t *testing.T) {
	f, c := newFake(t)
	v := listVersion(f, machineInstalls(fleet(2), 2), false)
	mirrors, _ := f.installIDs(v)
	inst := installInst(installStep(true), nil, plan.InstallManual)
	j := &MemJournal{}
	j.earlier(QueueKey(inst.ID, mirrors[0]), queuePath(mirrors[0]), true, mirrors[0])
	before := len(j.sent())
	f.completeWhileDown(mirrors[0])

	out, err := Run(context.Background(), newEnv(c, j, testPol), inst, plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(out.JobIDs, mirrors) {
		t.Errorf("job ids %v, want %v", out.JobIDs, mirrors)
	}
	if n := f.hit("imageinstall/queue"); n != 1 {
		t.Errorf("queue calls = %d, want 1 (the job never queued)", n)
	}
	if got := j.sent()[before:]; !slices.Equal(got, []string{QueueKey(inst.ID, mirrors[1])}) {
		t.Errorf("intents %q", got)
	}
}

// TestWatcherRecordsJobsOfWatchedVersions: every job of a version some
// instance watches is recorded once, the jobs of other machines included
// (under install_at now they complete while their instances wait), and no
// job of a version nobody watches.
func TestWatcherRecordsJobsOfWatchedVersions(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(3)
	v := listVersion(f, machineInstalls(ms, 1), true)
	other := listVersion(f, machineInstalls(ms[:1], 0), false)
	j := &MemJournal{}
	env := newEnv(c, j, testPol)
	defer env.Installs.Close()
	if _, err := Run(context.Background(), env, installInst(installStep(false), ms[0], plan.InstallNow),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mirrors, machines := f.installIDs(v)
	seen, records := j.seenJobs()
	want := map[InstallInterest][]int64{
		{VersionID: v, Mirroring: true}: mirrors,
	}
	for i, m := range ms {
		want[InstallInterest{VersionID: v, Machine: m.ID}] = []int64{machines[i]}
	}
	for in, ids := range want {
		for _, id := range ids {
			if !seen[in][id] {
				t.Errorf("job %d of %+v not recorded", id, in)
			}
		}
	}
	for in := range seen {
		if in.VersionID == other {
			t.Errorf("recorded a job of version %d, which nobody watched: %+v", other, in)
		}
	}
	if records == 0 {
		t.Fatal("nothing recorded")
	}
}

// TestQueueLostAnswerSettledFromWatcherReads: the answer to a queue call is
// lost and the client's own settle reads fail (the API fails the reads that
// follow the call), while the shared watcher's later reads succeed. The
// instance settles the call from those reads: a job that moved on was
// queued (nothing is sent again); a job still Pending was not, and the call
// is sent again. Before, the instance failed with an unknown outcome.
func TestQueueLostAnswerSettledFromWatcherReads(t *testing.T) {
	tests := []struct {
		name       string
		fault      string
		wantQueues int
	}{
		{"answer dropped after the work", "drop", 1},
		{"500 before the work", "500", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.queueFaults = []string{tt.fault}
			// The client reads twice (MaxReadAttempts 2) to settle.
			f.failStatusAfterQueue = 2
			ms := fleet(1)
			v := listVersion(f, machineInstalls(ms, 0), false)
			_, machines := f.installIDs(v)
			j := &MemJournal{}
			// The watcher reads far less often than the client retries,
			// so that the client's settle reads are the ones that fail.
			pol := PollPolicy{Min: 150 * time.Millisecond, Max: 300 * time.Millisecond, Factor: 1.5}
			inst := installInst(installStep(false), ms[0], plan.InstallManual)
			out, err := Run(context.Background(), newEnv(c, j, pol), inst, plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if out.Job.State != int(clanforge.StateCompleted) {
				t.Errorf("output %+v", out)
			}
			if n := f.hit("imageinstall/queue"); n != tt.wantQueues {
				t.Errorf("queue requests = %d, want %d", n, tt.wantQueues)
			}
			if got, _ := j.answer(QueueKey(inst.ID, machines[0])); got != machines[0] {
				t.Errorf("journal result %d, want the job %d (settled)", got, machines[0])
			}
		})
	}
}

// TestQueueResendsAreBounded: a queue call that fails before doing anything,
// every time, is sent again only while a later read proves the earlier call
// did nothing, by the client alone and at most its MaxResends times; the
// error says that none took effect.
func TestQueueResendsAreBounded(t *testing.T) {
	f, c := newFake(t)
	for range 100 {
		f.queueFaults = append(f.queueFaults, "500")
	}
	ms := fleet(1)
	v := listVersion(f, machineInstalls(ms, 0), false)
	_, err := Run(context.Background(), newEnv(c, &MemJournal{}, testPol), installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	want := clanforge.DefaultMaxResends + 1
	if err == nil || !errors.Is(err, clanforge.ErrNotApplied) || !strings.Contains(err.Error(), fmt.Sprintf("sent %d times", want)) {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Errorf("the outcome is known (nothing happened), yet the error says unknown: %v", err)
	}
	// The client owns the proven-harmless resends; the step does not
	// multiply them.
	if n := f.hit("imageinstall/queue"); n != want {
		t.Errorf("queue requests = %d, want %d", n, want)
	}
}

// TestVersionResendWithBackoff: a version create answered 500 before any
// work is proven harmless by the diff still locking the image, and is sent
// again with backoff, more than once, until it goes through: one version.
// Beyond versionSendLimit it gives up with an error that says nothing was
// made (settled), not that the outcome is unknown.
func TestVersionResendWithBackoff(t *testing.T) {
	t.Run("goes through", func(t *testing.T) {
		f, c := newFake(t)
		f.versionFaults = []string{"500", "500", "500"}
		d := completedDiff(t, f, 3)
		var u updates
		s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
		out, err := Run(context.Background(), newEnv(c, &MemJournal{}, testPol), instFor(s, nil), plan.Inputs{Diff: d}, u.add)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := f.hit("imageversion/create"); n != 4 {
			t.Errorf("creates = %d, want 4", n)
		}
		versions := 0
		f.mu.Lock()
		for _, j := range f.jobs {
			if j.kind == "version" {
				versions++
			}
		}
		f.mu.Unlock()
		if versions != 1 || out.VersionID == 0 {
			t.Errorf("%d versions made, output %+v", versions, out)
		}
		settling := 0
		u.mu.Lock()
		for _, x := range u.all {
			if x.Job.StateName == "settling" && strings.Contains(x.Job.Error, "sending it again in") {
				settling++
			}
		}
		u.mu.Unlock()
		if settling != 3 {
			t.Errorf("%d resends shown, want 3", settling)
		}
	})
	t.Run("gives up, settled", func(t *testing.T) {
		f, c := newFake(t)
		for range 20 {
			f.versionFaults = append(f.versionFaults, "500")
		}
		d := completedDiff(t, f, 3)
		s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
		_, err := Run(context.Background(), newEnv(c, &MemJournal{}, testPol), instFor(s, nil), plan.Inputs{Diff: d}, nil)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("sent %d times", versionSendLimit)) || !strings.Contains(err.Error(), "none made a version") {
			t.Fatalf("err = %v", err)
		}
		if errors.Is(err, clanforge.ErrOutcomeUnknown) || strings.Contains(err.Error(), "could not be settled") {
			t.Errorf("every lost answer was settled, yet the error says otherwise: %v", err)
		}
		if n := f.hit("imageversion/create"); n != versionSendLimit {
			t.Errorf("creates = %d, want %d", n, versionSendLimit)
		}
	})
}

// TestVersionSettleWaitIsBounded: a version create whose answer was never
// recorded took effect (the diff no longer locks the image), but no install
// job names its version (under install_at now they ran and completed while
// the rollout was down). The settle gives up after versionSettleReads reads
// with an error that says the create took effect and nothing was resent,
// instead of waiting for the step's timeout.
func TestVersionSettleWaitIsBounded(t *testing.T) {
	f, c := newFake(t)
	d := completedDiff(t, f, 3)
	f.mu.Lock()
	delete(f.locks, imgB.ID)
	f.mu.Unlock()
	j := &MemJournal{}
	j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto, InstallAt: plan.InstallNow}
	env := newEnv(c, j, testPol)
	env.Fleet = map[int64][]int64{imgB.ID: {812000, 812001}}
	// Without the bound the settle waits until this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Run(ctx, env, instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if err == nil || !strings.Contains(err.Error(), "took effect") || !strings.Contains(err.Error(), "cannot be identified") ||
		!strings.Contains(err.Error(), fmt.Sprintf("after %d reads", versionSettleReads)) {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Errorf("which version it made is unknown, yet the error does not say so: %v", err)
	}
	if n := f.hit("imageinstall/status"); n != versionSettleReads {
		t.Errorf("reads = %d, want %d", n, versionSettleReads)
	}
	if n := f.hit("imageversion/create"); n != 0 {
		t.Errorf("creates = %d, want 0", n)
	}
}

// TestUpdateLostAnswerSettledOnInterrupt: the run is interrupted while the
// answer to imageupdate/create is lost (the API made the update). The
// client's settle read went out on the cancelled context; the step reads
// the lock anyway, while the update holds it, and records the update's id,
// so that a resume after the update ended re-attaches to it instead of
// finding no lock and creating a second update.
func TestUpdateLostAnswerSettledOnInterrupt(t *testing.T) {
	f, c := newFake(t)
	f.updateFaults = []string{"drop"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.afterWork = func(route string) {
		if route == "imageupdate/create" {
			cancel() // the interrupt arrives while the answer is on its way
		}
	}
	j := &MemJournal{}
	out, err := Run(ctx, newEnv(c, j, testPol), instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the interrupt", err)
	}
	f.mu.Lock()
	var made int64
	for id, jb := range f.jobs {
		if jb.kind == "update" {
			made = id
		}
	}
	f.mu.Unlock()
	key := "update@buildbox-1/game-b imageupdate/create#1"
	if got, ok := j.answer(key); !ok || got != made || made == 0 {
		t.Fatalf("journal result %d (%v), want the update made, %d", got, ok, made)
	}
	if out.Job.ID != made {
		t.Errorf("output job %d, want %d (the run lists it as unfinished)", out.Job.ID, made)
	}
	if n := f.hit("imageupdate/create"); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

// TestDiffRetryIntentSettledFromFailureCount: an earlier run announced a
// diff retry but recorded no answer. The diff's failure count tells whether
// the retry ran: still Failed with the count it had is proof it did not,
// and the retry is sent (once); running again means it did, and it is
// polled without a second retry. Before, the step always assumed the retry
// had run and failed the rollout when it had not.
func TestDiffRetryIntentSettledFromFailureCount(t *testing.T) {
	tests := []struct {
		name       string
		failed     int    // jobfailed of the diff now
		script     []step // what its status reads show from now
		wantRetry  int
		wantFailed bool
	}{
		{"retry never reached the API", 1, []step{sFail("injected")}, 1, false},
		{"retry ran and runs", 1, []step{sRun, sDone}, 0, false},
		{"retry ran and failed again", 2, []step{sFail("injected")}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			id := f.addJob("diff", imgB.ID, tt.script)
			f.mu.Lock()
			d := f.jobs[id]
			d.failed, d.cur = tt.failed, tt.script[0]
			if tt.script[0].st == clanforge.StateFailed {
				d.pos = len(tt.script) // no new failure is counted
			}
			f.locks[imgB.ID] = lock{"diff", id}
			f.mu.Unlock()
			j := &MemJournal{}
			j.earlier("diff@buildbox-1/game-b imagediff/create#1", apiPrefix+epDiffCreate, true, id)
			j.earlier("diff@buildbox-1/game-b imagediff/retry#1", fmt.Sprintf("%simagediff/%d/retry", apiPrefix, id), false, 0)
			s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
			_, err := Run(context.Background(), newEnv(c, j, testPol), instFor(s, build1), plan.Inputs{}, nil)
			if tt.wantFailed != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if n := f.hit("imagediff/retry"); n != tt.wantRetry {
				t.Errorf("retries sent = %d, want %d", n, tt.wantRetry)
			}
		})
	}
}

// TestDiffLostAnswerSettledOnInterrupt: like the update's, a diff create
// whose answer is lost as the run is interrupted is settled from the lock
// and recorded, so that the resume's pre-flight knows the lock is the
// rollout's own (the state journal's Ours).
func TestDiffLostAnswerSettledOnInterrupt(t *testing.T) {
	f, c := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.afterWork = func(route string) {
		if route == "imagediff/create" {
			cancel()
		}
	}
	f.mu.Lock()
	f.dropDiff = true
	f.mu.Unlock()
	j := &MemJournal{}
	_, err := Run(ctx, newEnv(c, j, testPol), instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the interrupt", err)
	}
	f.mu.Lock()
	holder := f.locks[imgB.ID]
	f.mu.Unlock()
	if got, _ := j.answer("diff@buildbox-1/game-b imagediff/create#1"); holder.kind != "diff" || got != holder.id {
		t.Fatalf("journal result %d, want the diff holding the lock, %+v", got, holder)
	}
}

// TestDiffRetryLostAnswerSettledFromFailureCount: a retry answered 500
// before any work leaves the client unable to settle it; the diff's
// failure count proves the retry did not run, and it is sent again (a
// bounded number of times), so the diff's one retry still happens.
func TestDiffRetryLostAnswerSettledFromFailureCount(t *testing.T) {
	for _, tt := range []struct {
		name    string
		faults  int
		wantErr string
	}{
		{"one 500", 1, ""},
		{"always 500", 10, fmt.Sprintf("was sent %d times", retrySendLimit)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.diffScripts = [][]step{{sRun, sFail("injected")}}
			for range tt.faults {
				f.retryFaults = append(f.retryFaults, "500")
			}
			s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
			out, err := Run(context.Background(), newEnv(c, &MemJournal{}, testPol), instFor(s, build1), plan.Inputs{}, nil)
			if tt.wantErr == "" {
				if err != nil || out.Job.State != int(clanforge.StateCompleted) {
					t.Fatalf("err = %v, output %+v", err, out)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, clanforge.ErrOutcomeUnknown) {
				t.Fatalf("err = %v", err)
			}
			if n, want := f.hit("imagediff/retry"), min(tt.faults+1, retrySendLimit); n != want {
				t.Errorf("retries sent = %d, want %d", n, want)
			}
		})
	}
}
