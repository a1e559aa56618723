package steps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
)

// TestInstallResumeJobCompletedWhileDown: a rollout killed while an install
// job was queued (or recorded as seen) resumes after the job completed and
// left imageinstall/status. The journal names the job, so the instance
// counts it completed, queues nothing, and does not wait for it to appear.
// The counters cannot prove it (other machines are still pending: held, or
// in a region that never gets ready), so without the journal's job the
// instance would fail with "no machine install job ... appeared".
func TestInstallResumeJobCompletedWhileDown(t *testing.T) {
	ctx := context.Background()
	queue := func(t *testing.T, r *stepRig, id int64) {
		if _, err := r.client.QueueInstall(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		at   plan.InstallAt
		// prime does what the killed run did about job id of instance
		// inst, and records it in the journal.
		prime func(t *testing.T, r *stepRig, inst string, in InstallInterest, id int64)
		// settles: the earlier run's queue intent had no answer; the
		// resumed run records one.
		settles bool
	}{
		{"queued and answered", plan.InstallManual, func(t *testing.T, r *stepRig, inst string, _ InstallInterest, id int64) {
			queue(t, r, id)
			r.j.earlier(QueueKey(inst, id), queuePath(id), true, id)
		}, false},
		{"queued, killed before the answer", plan.InstallManual, func(t *testing.T, r *stepRig, inst string, _ InstallInterest, id int64) {
			queue(t, r, id)
			r.j.earlier(QueueKey(inst, id), queuePath(id), false, 0)
		}, true},
		{"install_at now, seen listed", plan.InstallNow, func(t *testing.T, r *stepRig, _ string, in InstallInterest, id int64) {
			_ = r.j.SeenInstalls([]SeenInstall{{InstallInterest: in, ID: id}})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{NeverReadyRegions: []string{"us"}})
			v := r.version(t, tt.at)
			if tt.at == plan.InstallManual {
				r.mirrors(t, v)
			}
			eu2 := r.machine("eu-2")
			_, machines := r.installJobs(v.VersionID)
			id := machines[eu2.ID]
			inst := installInst(installStep(false), eu2, tt.at)
			tt.prime(t, r, inst.ID, InstallInterest{VersionID: v.VersionID, Machine: eu2.ID}, id)
			r.clock.Advance(time.Hour) // the rollout is down
			if j := r.job(t, sim.KindInstall, id); j.State != int(clanforge.StateCompleted) {
				t.Fatalf("job %d is %s: the test does not cover a job that completed while the rollout was down", id, j.StateName)
			}
			r.mark()

			out, err := r.exec(inst, plan.Inputs{Version: v}, nil)
			if err != nil {
				t.Fatalf("resume after the job completed: %v", err)
			}
			if !slices.Equal(out.JobIDs, []int64{id}) || out.Job.State != int(clanforge.StateCompleted) {
				t.Errorf("output %+v, want job %d completed", out, id)
			}
			if n := r.calls(sim.EPInstallQueue); n != 0 {
				t.Errorf("queue calls = %d, want 0", n)
			}
			if got, ok := r.j.answer(QueueKey(inst.ID, id)); tt.settles && (!ok || got != id) {
				t.Errorf("the unanswered queue intent was not settled in the journal: result %d, %v", got, ok)
			}
		})
	}
}

// TestMirrorResumeOneLocationDoneOthersNeverQueued: the run was killed
// after the queue call of one mirror job and before those of the others;
// the queued one completed while the rollout was down. The resumed
// instance counts it completed and queues only the others, once each.
func TestMirrorResumeOneLocationDoneOthersNeverQueued(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	v := r.version(t, plan.InstallManual)
	mirrors, _ := r.installJobs(v.VersionID)
	inst := installInst(installStep(true), nil, plan.InstallManual)
	if _, err := r.client.QueueInstall(context.Background(), mirrors[0], true); err != nil {
		t.Fatal(err)
	}
	r.j.earlier(QueueKey(inst.ID, mirrors[0]), queuePath(mirrors[0]), true, mirrors[0])
	before := len(r.j.sent())
	r.clock.Advance(time.Hour)
	r.mark()

	out, err := r.exec(inst, plan.Inputs{Version: v}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(out.JobIDs, mirrors) || len(mirrors) != 3 {
		t.Errorf("job ids %v, want %v", out.JobIDs, mirrors)
	}
	if n := r.calls(sim.EPInstallQueue); n != len(mirrors)-1 {
		t.Errorf("queue calls = %d, want %d (the jobs never queued)", n, len(mirrors)-1)
	}
	if got := r.j.sent()[before:]; !slices.Equal(got, []string{QueueKey(inst.ID, mirrors[1]), QueueKey(inst.ID, mirrors[2])}) {
		t.Errorf("intents %q", got)
	}
}

// TestWatcherRecordsJobsOfWatchedVersions: every job of a version some
// instance watches is recorded once, the jobs of other machines included
// (under install_at now they complete while their instances wait), and no
// job of a version nobody watches (here game-a's, held and listed).
func TestWatcherRecordsJobsOfWatchedVersions(t *testing.T) {
	src := strings.Replace(stepPlan, "images:\n", "images:\n  - {name: game-a, id: 5530}\n", 1)
	r := newStepRig(t, src, sim.Scenario{})
	imgA := &plan.Image{Name: "game-a", ID: 5530}
	other := r.versionOf(t, imgA, plan.InstallManual).VersionID
	v := r.version(t, plan.InstallNow)
	if _, err := r.exec(installInst(installStep(false), r.machine("eu-1"), plan.InstallNow), plan.Inputs{Version: v}, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mirrors, machines := r.installJobs(v.VersionID)
	seen, records := r.j.seenJobs()
	want := map[InstallInterest][]int64{
		{VersionID: v.VersionID, Mirroring: true}: mirrors,
	}
	for m, id := range machines {
		want[InstallInterest{VersionID: v.VersionID, Machine: m}] = []int64{id}
	}
	for in, ids := range want {
		for _, id := range ids {
			if !seen[in][id] {
				t.Errorf("job %d of %+v not recorded", id, in)
			}
		}
	}
	if om, oi := r.installJobs(other); len(om)+len(oi) == 0 {
		t.Fatalf("version %d has no install jobs: the test does not cover a version nobody watches", other)
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
// lost and the client's own settle reads fail (the reads that follow the
// call are answered 500), while the shared watcher's later reads succeed.
// The instance settles the call from those reads: a job that moved on was
// queued (nothing is sent again); a job still Pending was not, and the call
// is sent again. Before, the instance failed with an unknown outcome.
func TestQueueLostAnswerSettledFromWatcherReads(t *testing.T) {
	tests := []struct {
		name       string
		fault      string
		wantQueues int
	}{
		{"answer dropped after the work", sim.FaultDrop, 1},
		{"500 before the work", sim.FaultServerError, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The mirror step's three queue calls go through first. The
			// install runs for two requests: the watcher here reads
			// slowly.
			d := stepDurations
			d.Install = 2 * stepTick
			r := newStepRig(t, "", sim.Scenario{Durations: d, Faults: targeted(sim.EPInstallQueue, tt.fault, 1, 3)})
			v := r.version(t, plan.InstallManual)
			r.mirrors(t, v)
			// The client reads three times (simtest.ReadAttempts) to
			// settle: each read that follows the first queue call fails.
			var mu sync.Mutex
			queued, failNext := false, 0
			r.intercept = func(w http.ResponseWriter, req *http.Request) bool {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.HasSuffix(req.URL.Path, "/queue") && !queued:
					queued, failNext = true, 3
				case req.URL.Path == "/cfp/v1/imageinstall/status" && failNext > 0:
					failNext--
					w.WriteHeader(http.StatusInternalServerError)
					return true
				}
				return false
			}
			eu1 := r.machine("eu-1")
			_, machines := r.installJobs(v.VersionID)
			// The watcher reads far less often than the client retries,
			// so that the client's settle reads are the ones that fail.
			r.env = newEnv(r.client, r.j, PollPolicy{Min: 150 * time.Millisecond, Max: 300 * time.Millisecond, Factor: 1.5})
			defer r.env.Installs.Close()
			inst := installInst(installStep(false), eu1, plan.InstallManual)
			out, err := r.exec(inst, plan.Inputs{Version: v}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if out.Job.State != int(clanforge.StateCompleted) {
				t.Errorf("output %+v", out)
			}
			if n := r.calls(sim.EPInstallQueue); n != tt.wantQueues {
				t.Errorf("queue requests = %d, want %d", n, tt.wantQueues)
			}
			if got, _ := r.j.answer(QueueKey(inst.ID, machines[eu1.ID])); got != machines[eu1.ID] {
				t.Errorf("journal result %d, want the job %d (settled)", got, machines[eu1.ID])
			}
		})
	}
}

// TestQueueResendsAreBounded: a queue call that fails before doing anything,
// every time, is sent again only while a later read proves the earlier call
// did nothing, by the client alone and at most its MaxResends times; the
// error says that none took effect.
func TestQueueResendsAreBounded(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPInstallQueue, sim.FaultServerError, 100, 3)})
	v := r.version(t, plan.InstallManual)
	r.mirrors(t, v)
	_, err := r.exec(installInst(installStep(false), r.machine("eu-1"), plan.InstallManual), plan.Inputs{Version: v}, nil)
	want := clanforge.DefaultMaxResends + 1
	if err == nil || !errors.Is(err, clanforge.ErrNotApplied) || !strings.Contains(err.Error(), fmt.Sprintf("sent %d times", want)) {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Errorf("the outcome is known (nothing happened), yet the error says unknown: %v", err)
	}
	// The client owns the proven-harmless resends; the step does not
	// multiply them.
	if n := r.calls(sim.EPInstallQueue); n != want {
		t.Errorf("queue requests = %d, want %d", n, want)
	}
}

// TestVersionResendWithBackoff: a version create answered 500 before any
// work is proven harmless by the diff still locking the image, and is sent
// again with backoff, more than once, until it goes through: one version.
// Beyond versionSendLimit it gives up with an error that says nothing was
// made (settled), not that the outcome is unknown.
func TestVersionResendWithBackoff(t *testing.T) {
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto}
	t.Run("goes through", func(t *testing.T) {
		r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPVersionCreate, sim.FaultServerError, 3, 0)})
		d := r.diff(t, true)
		var u updates
		out, err := r.exec(instFor(s, nil), plan.Inputs{Diff: d}, u.add)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := r.calls(sim.EPVersionCreate); n != 4 {
			t.Errorf("creates = %d, want 4", n)
		}
		if r.versions() != 1 || out.VersionID == 0 {
			t.Errorf("%d versions made, output %+v", r.versions(), out)
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
		r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPVersionCreate, sim.FaultServerError, 20, 0)})
		d := r.diff(t, true)
		_, err := r.exec(instFor(s, nil), plan.Inputs{Diff: d}, nil)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("sent %d times", versionSendLimit)) || !strings.Contains(err.Error(), "none made a version") {
			t.Fatalf("err = %v", err)
		}
		if errors.Is(err, clanforge.ErrOutcomeUnknown) || strings.Contains(err.Error(), "could not be settled") {
			t.Errorf("every lost answer was settled, yet the error says otherwise: %v", err)
		}
		if n := r.calls(sim.EPVersionCreate); n != versionSendLimit {
			t.Errorf("creates = %d, want %d", n, versionSendLimit)
		}
	})
}

// TestVersionSettleWaitIsBounded: a version create whose answer was never
// recorded took effect (the diff no longer locks the image), but no install
// job names its version: under install_at now they ran and completed while
// the rollout was down. The settle gives up after versionSettleReads reads
// with an error that says the create took effect and nothing was resent,
// instead of waiting for the step's timeout.
func TestVersionSettleWaitIsBounded(t *testing.T) {
	r := newStepRig(t, "", sim.Scenario{})
	d := r.diff(t, true)
	if _, err := r.client.CreateVersion(context.Background(), d.DiffID, clanforge.VersionOptions{InstallNow: true}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour) // the rollout is down
	r.mark()
	r.j.earlier("version@game-b imageversion/create#1", apiPrefix+epVersionCreate, false, 0)
	s := &plan.Step{Name: "version", Type: plan.TypeVersion, Full: plan.FullAuto, InstallAt: plan.InstallNow}
	r.env.Fleet = FleetOf(r.p)
	if len(r.env.Fleet[imgB.ID]) != 4 {
		t.Fatalf("fleet %v", r.env.Fleet)
	}
	// Without the bound the settle waits until this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Run(ctx, r.env, instFor(s, nil), plan.Inputs{Diff: d}, nil)
	if err == nil || !strings.Contains(err.Error(), "took effect") || !strings.Contains(err.Error(), "cannot be identified") ||
		!strings.Contains(err.Error(), fmt.Sprintf("after %d reads", versionSettleReads)) {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Errorf("which version it made is unknown, yet the error does not say so: %v", err)
	}
	if n := r.calls(sim.EPInstallStatus); n != versionSettleReads {
		t.Errorf("reads = %d, want %d", n, versionSettleReads)
	}
	if n := r.calls(sim.EPVersionCreate); n != 0 {
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
	r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPUpdateCreate, sim.FaultDrop, 1, 0)})
	ctx := r.interruptOnDrop("/imageupdate/create")
	out, err := Run(ctx, r.env, instFor(updateStep(0), build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the interrupt", err)
	}
	jobs := r.srv.Jobs()
	if len(jobs) != 1 || jobs[0].Kind != sim.KindUpdate {
		t.Fatalf("jobs %+v, want the one update", jobs)
	}
	made := jobs[0].ID
	key := "update@buildbox-1/game-b imageupdate/create#1"
	if got, ok := r.j.answer(key); !ok || got != made {
		t.Fatalf("journal result %d (%v), want the update made, %d", got, ok, made)
	}
	if out.Job.ID != made {
		t.Errorf("output job %d, want %d (the run lists it as unfinished)", out.Job.ID, made)
	}
	if n := r.calls(sim.EPUpdateCreate); n != 1 {
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
	ctx := context.Background()
	tests := []struct {
		name string
		// fails: the diff's runs that fail; retried: the earlier run's
		// retry reached the API; failed: the diff's failure count then.
		fails      int
		retried    bool
		failed     int
		wantRetry  int
		wantFailed bool
	}{
		{"retry never reached the API", 1, false, 1, 1, false},
		{"retry ran and runs", 1, true, 1, 0, false},
		{"retry ran and failed again", 2, true, 2, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStepRig(t, "", sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: tt.fails, Error: "injected"}}})
			made, err := r.client.CreateDiff(ctx, imgB.ID, build1.ID)
			if err != nil {
				t.Fatal(err)
			}
			id := made.ID
			r.clock.Advance(time.Hour) // the first run failed
			if tt.retried {
				if _, err := r.client.RetryDiff(ctx, id); err != nil {
					t.Fatal(err)
				}
				if tt.fails > 1 {
					r.clock.Advance(time.Hour) // and so did the retry
				}
			}
			if j := r.job(t, sim.KindDiff, id); j.Failed != tt.failed || (j.State == int(clanforge.StateFailed)) == (tt.retried && tt.fails == 1) {
				t.Fatalf("diff %+v: not the failure count the case needs", j)
			}
			r.mark()
			r.j.earlier("diff@buildbox-1/game-b imagediff/create#1", apiPrefix+epDiffCreate, true, id)
			r.j.earlier("diff@buildbox-1/game-b imagediff/retry#1", fmt.Sprintf("%simagediff/%d/retry", apiPrefix, id), false, 0)
			s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
			_, err = r.exec(instFor(s, build1), plan.Inputs{}, nil)
			if tt.wantFailed != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if n := r.calls(sim.EPDiffRetry); n != tt.wantRetry {
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
	r := newStepRig(t, "", sim.Scenario{Faults: targeted(sim.EPDiffCreate, sim.FaultDrop, 1, 0)})
	ctx := r.interruptOnDrop("/imagediff/create")
	_, err := Run(ctx, r.env, instFor(&plan.Step{Name: "diff", Type: plan.TypeDiff}, build1), plan.Inputs{}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the interrupt", err)
	}
	holder := r.srv.Locks()[imgB.ID].DiffID
	if got, _ := r.j.answer("diff@buildbox-1/game-b imagediff/create#1"); holder == 0 || got != holder {
		t.Fatalf("journal result %d, want the diff holding the lock, %d", got, holder)
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
			r := newStepRig(t, "", sim.Scenario{
				Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "injected"}},
				Faults:   targeted(sim.EPDiffRetry, sim.FaultServerError, tt.faults, 0),
			})
			s := &plan.Step{Name: "diff", Type: plan.TypeDiff, Retries: 1}
			out, err := r.exec(instFor(s, build1), plan.Inputs{}, nil)
			if tt.wantErr == "" {
				if err != nil || out.Job.State != int(clanforge.StateCompleted) {
					t.Fatalf("err = %v, output %+v", err, out)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, clanforge.ErrOutcomeUnknown) {
				t.Fatalf("err = %v", err)
			}
			if n, want := r.calls(sim.EPDiffRetry), min(tt.faults+1, retrySendLimit); n != want {
				t.Errorf("retries sent = %d, want %d", n, want)
			}
		})
	}
}
