package engine_test

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
)

// These tests check the plan-format contract's scheduling and failure
// rules end to end: the engine and the real step executor against the
// simulator over HTTP. They assert on outcomes, request counts and the
// simulator's event order, never on elapsed time.

// insertAfter adds text after the one occurrence of anchor in src; a test
// whose anchor is missing or ambiguous fails rather than testing another
// plan than it means to.
func insertAfter(t *testing.T, src, anchor, text string) string {
	t.Helper()
	if n := strings.Count(src, anchor); n != 1 {
		t.Fatalf("anchor %q occurs %d times in the plan", anchor, n)
	}
	return strings.Replace(src, anchor, anchor+text, 1)
}

// Anchors in simtest.FleetPlan's steps after which a step's own keys may go.
const (
	atUpdate  = "    url: \"s3://builds/game/${vars.build}/\"\n"
	atDiff    = "    needs: [update]\n    where: machine.labels.role == \"build\"\n"
	atVersion = "    full: auto\n"
)

const rejectOnFailure = `on_failure:
  - {name: reject, type: reject}
`

// outcomes records every instance's result.
type outcomes struct {
	engine.NopObserver
	mu  sync.Mutex
	res map[string]engine.Result
}

func (o *outcomes) InstanceFinished(id string, r engine.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.res == nil {
		o.res = map[string]engine.Result{}
	}
	o.res[id] = r
}

func (o *outcomes) get(id string) (engine.Result, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.res[id]
	return r, ok
}

// byPrefix lists the ids of instances with the given id prefix and outcome.
func (o *outcomes) byPrefix(prefix string, want engine.Outcome) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, r := range o.res {
		if strings.HasPrefix(id, prefix) && r.Outcome == want {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// sent counts requests per endpoint.
func sent(s *sim.Server) map[string]int {
	n := map[string]int{}
	for _, r := range s.Requests() {
		n[r.Endpoint]++
	}
	return n
}

// events returns the simulator's events of one name and kind.
func events(s *sim.Server, kind sim.Kind, name string) []sim.Event {
	var out []sim.Event
	for _, e := range s.Timeline() {
		if e.Kind == kind && e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

func failedInstances(s *engine.Summary) []string {
	var ids []string
	for _, f := range s.Failures {
		ids = append(ids, f.Instance)
	}
	sort.Strings(ids)
	return ids
}

func TestMaxParallelPerStep(t *testing.T) {
	// concurrency 8 would let all six installs run together; max_parallel
	// 2 on the install step must hold them to two at a time.
	f := newFixture(t, simtest.FleetPlan("maxpar", []string{"game"}, 6, 8, "    max_parallel: 2\n", "", ""), fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) {
		t.Fatalf("run failed: %+v", s.Failures)
	}
	var installs []interval
	for _, iv := range instanceIntervals(f.sim.Timeline()) {
		if strings.HasPrefix(iv.name, "install/") {
			installs = append(installs, iv)
		}
	}
	if len(installs) != 6 {
		t.Fatalf("%d install intervals, want 6", len(installs))
	}
	if got := maxOverlap(installs); got > 2 {
		t.Fatalf("max_parallel 2: the simulator saw %d installs at once", got)
	}
}

func TestWhenFalseSkipsAndStillSucceeds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		anchor      string
		when        string
		skipped     []string // instance ids skipped by when
		versions    int      // imageversion/create calls expected
		queuedNotOn string   // a machine whose install must never be queued
	}{
		{
			name:     "version and everything after it",
			anchor:   atVersion,
			when:     "    when: steps.diff.changed < 0\n",
			skipped:  []string{"install@m000/game", "install@m001/game", "install@m002/game", "mirror@game", "version@game"},
			versions: 0,
		},
		{
			name:        "one machine's install",
			anchor:      "    mirroring: false\n",
			when:        "    when: machine.name != \"m001\"\n",
			skipped:     []string{"install@m001/game"},
			versions:    1,
			queuedNotOn: "m001",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := insertAfter(t, simtest.FleetPlan("when", []string{"game"}, 3, 4, "", "", rejectOnFailure), tc.anchor, tc.when)
			f := newFixture(t, src, fast)
			obs := &outcomes{}
			s := f.run(t, context.Background(), obs)
			// Exit status 0 needs exactly this: no failure, no abort, no
			// interrupt.
			if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) || (s.Verdict == engine.VerdictInterrupted) {
				t.Fatalf("a false when must not fail the run: failures %+v aborted %v", s.Failures, (s.Verdict == engine.VerdictAborted))
			}
			if got := obs.byPrefix("", engine.SkippedWhen); strings.Join(got, " ") != strings.Join(tc.skipped, " ") {
				t.Fatalf("skipped by when: %v, want %v", got, tc.skipped)
			}
			if s.Counts[engine.SkippedWhen] != len(tc.skipped) || s.Counts[engine.Skipped] != 0 || s.Counts[engine.Failed] != 0 {
				t.Fatalf("counts %v", s.Counts)
			}
			n := sent(f.sim)
			if n[sim.EPVersionCreate] != tc.versions || n[sim.EPDiffReject] != 0 {
				t.Fatalf("version creates %d (want %d), rejects %d (want 0)", n[sim.EPVersionCreate], tc.versions, n[sim.EPDiffReject])
			}
			if tc.queuedNotOn != "" {
				for _, e := range events(f.sim, sim.KindInstall, "queued") {
					if e.Machine == tc.queuedNotOn {
						t.Fatalf("the install on %s was queued although its when is false", e.Machine)
					}
				}
			}
		})
	}
}

func TestFailedDiffIsRejected(t *testing.T) {
	for _, tc := range []struct {
		name             string
		retries          string
		times            int
		failures         []string
		retried, rejects int
	}{
		{name: "no retries", times: 0, failures: []string{"diff@buildbox-1/game"}, rejects: 1},
		{name: "retried to success", retries: "    retries: 1\n", times: 1, retried: 1},
		{name: "retries exhausted", retries: "    retries: 1\n", times: 0, failures: []string{"diff@buildbox-1/game"}, retried: 1, rejects: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := simtest.FleetPlan("faildiff", []string{"game"}, 2, 4, "", "", rejectOnFailure)
			if tc.retries != "" {
				src = insertAfter(t, src, atDiff, tc.retries)
			}
			f := newFixture(t, src, fast+"failures:\n  - {kind: diff, times: "+strconv.Itoa(tc.times)+", error: analysis crashed}\n")
			obs := &outcomes{}
			s := f.run(t, context.Background(), obs)
			if got := failedInstances(s); strings.Join(got, " ") != strings.Join(tc.failures, " ") {
				t.Fatalf("failures %v, want %v", got, tc.failures)
			}
			n := sent(f.sim)
			if n[sim.EPDiffCreate] != 1 || n[sim.EPDiffRetry] != tc.retried || n[sim.EPDiffReject] != tc.rejects {
				t.Fatalf("diff creates %d retries %d rejects %d; want 1, %d, %d", n[sim.EPDiffCreate], n[sim.EPDiffRetry], n[sim.EPDiffReject], tc.retried, tc.rejects)
			}
			diffs := events(f.sim, sim.KindDiff, "created")
			if len(diffs) != 1 {
				t.Fatalf("%d diffs created", len(diffs))
			}
			rejected := events(f.sim, sim.KindDiff, "rejected")
			if len(rejected) != tc.rejects {
				t.Fatalf("%d diffs rejected, want %d", len(rejected), tc.rejects)
			}
			if tc.rejects > 0 {
				if rejected[0].JobID != diffs[0].JobID {
					t.Fatalf("rejected diff %d, but the run created diff %d", rejected[0].JobID, diffs[0].JobID)
				}
				// Only the root cause is a failure: what depends on the diff
				// is skipped naming it.
				if r, _ := obs.get("version@game"); r.Outcome != engine.Skipped || !strings.Contains(engine.ErrText(r.Err), "diff@buildbox-1/game") {
					t.Fatalf("version: %+v, want skipped naming the diff", r)
				}
				if r, _ := obs.get("reject@buildbox-1/game"); r.Outcome != engine.Succeeded {
					t.Fatalf("reject: %+v", r)
				}
			} else if s.Counts[engine.Succeeded] != 1+1+1+1+2 {
				t.Fatalf("counts %v", s.Counts)
			}
		})
	}
}

func TestFailureBudgetAndWaves(t *testing.T) {
	// Four machines in waves of two; m000 and m001 (wave 1) fail.
	scenario := fast + `
failures:
  - {kind: install, machine: m000, error: disk full}
  - {kind: install, machine: m001, error: disk full}
`
	for _, tc := range []struct {
		name       string
		budget     string
		aborted    bool
		wave2Queue int
	}{
		// 30% of 4 rounds down to 1: two failures exceed it.
		{name: "percentage rounds down", budget: `"30%"`, aborted: true},
		{name: "count exceeded", budget: "1", aborted: true},
		// Within the budget the rollout goes on, yet it still failed.
		{name: "within a percentage", budget: `"50%"`, wave2Queue: 2},
		{name: "within a count", budget: "2", wave2Queue: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := simtest.FleetPlan("budget", []string{"game"}, 4, 4, "    waves: [\"50%\", \"100%\"]\n    max_failures: "+tc.budget+"\n", "", rejectOnFailure)
			f := newFixture(t, src, scenario)
			obs := &outcomes{}
			rec := &recorder{}
			s := f.run(t, context.Background(), engine.Fanout(obs, rec))
			wantWaves := "install/game/0:2"
			if !tc.aborted {
				wantWaves += " install/game/1:2"
			}
			if got := strings.Join(rec.waves, " "); got != wantWaves {
				t.Errorf("waves announced: %q, want %q", got, wantWaves)
			}
			if (s.Verdict == engine.VerdictAborted) != tc.aborted {
				t.Fatalf("aborted = %v, want %v (%s)", (s.Verdict == engine.VerdictAborted), tc.aborted, s.AbortReason)
			}
			if got := failedInstances(s); strings.Join(got, " ") != "install@m000/game install@m001/game" {
				t.Fatalf("failures %v, want the two installs of wave 1 (exit status 1 either way)", got)
			}
			queued := 0
			for _, e := range events(f.sim, sim.KindInstall, "queued") {
				if e.Machine == "m002" || e.Machine == "m003" {
					queued++
				}
			}
			if queued != tc.wave2Queue {
				t.Fatalf("wave 2 queued %d installs, want %d", queued, tc.wave2Queue)
			}
			// on_failure runs for both failed targets, abort or not; the
			// diff was turned into a version, so the reject sends nothing.
			for _, id := range []string{"reject@m000/game", "reject@m001/game"} {
				if r, ok := obs.get(id); !ok || r.Outcome != engine.Succeeded {
					t.Errorf("%s: %+v, want it run (and succeed with nothing to reject)", id, r)
				}
			}
			if n := sent(f.sim)[sim.EPDiffReject]; n != 0 {
				t.Fatalf("%d rejects sent for a diff already turned into a version", n)
			}
		})
	}
}

func TestEmptyMiddleWaveStillOrders(t *testing.T) {
	// Two machines and [1, "50%", "100%"] give waves of 1, 0 and 1: the
	// empty second wave must not let the third start before the first
	// ended.
	f := newFixture(t, simtest.FleetPlan("gap", []string{"game"}, 2, 4, "    waves: [1, \"50%\", \"100%\"]\n", "", ""), fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 {
		t.Fatalf("failures: %+v", s.Failures)
	}
	var firstEnd, secondQueued int
	for _, e := range f.sim.Timeline() {
		if e.Kind != sim.KindInstall {
			continue
		}
		switch {
		case e.Machine == "m000" && (e.Event == "completed" || e.Event == "failed"):
			firstEnd = e.Seq
		case e.Machine == "m001" && e.Event == "queued":
			secondQueued = e.Seq
		}
	}
	if firstEnd == 0 || secondQueued == 0 {
		t.Fatalf("m000 ended at %d, m001 queued at %d", firstEnd, secondQueued)
	}
	if secondQueued < firstEnd {
		t.Fatalf("m001 (wave 3) was queued (seq %d) before m000 (wave 1) ended (seq %d)", secondQueued, firstEnd)
	}
}

func TestStepTimeout(t *testing.T) {
	// The diff takes 300 ms; its 100 ms timeout fails it with a message
	// naming the job, and on_failure waits for the diff to end before
	// rejecting it (a running diff cannot be rejected).
	src := insertAfter(t, simtest.FleetPlan("timeout", []string{"game"}, 1, 4, "", "", rejectOnFailure), atDiff, "    timeout: 100ms\n")
	f := newFixture(t, src, `
speed: 100
durations: {startup: 3s, update: 5s, diff: 30s, version: 5s, mirror: 5s, install: 5s}
`)
	obs := &outcomes{}
	s := f.run(t, context.Background(), obs)
	if got := failedInstances(s); strings.Join(got, " ") != "diff@buildbox-1/game" {
		t.Fatalf("failures %v, want the diff", got)
	}
	msg := engine.ErrText(s.Failures[0].Err)
	if !strings.Contains(msg, "timed out after 100ms") || !strings.Contains(msg, "diff job") {
		t.Fatalf("timeout message %q does not say what timed out", msg)
	}
	if (s.Verdict == engine.VerdictInterrupted) || (s.Verdict == engine.VerdictAborted) {
		t.Fatalf("a timeout is neither an interrupt nor an abort: %+v", s)
	}
	rejected := events(f.sim, sim.KindDiff, "rejected")
	if len(rejected) != 1 || sent(f.sim)[sim.EPDiffReject] != 1 {
		t.Fatalf("rejected %d diffs with %d calls, want 1 and 1", len(rejected), sent(f.sim)[sim.EPDiffReject])
	}
}

func TestInstallAtNowOnlyWatches(t *testing.T) {
	src := insertAfter(t, simtest.FleetPlan("now", []string{"game"}, 4, 4, "", "", ""), atVersion, "    install_at: now\n")
	f := newFixture(t, src, fast)
	obs := &outcomes{}
	s := f.run(t, context.Background(), obs)
	if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) {
		t.Fatalf("failures: %+v", s.Failures)
	}
	if n := sent(f.sim)[sim.EPInstallQueue]; n != 0 {
		t.Fatalf("install_at now: %d queue calls sent, want none", n)
	}
	if got := obs.byPrefix("install@", engine.Succeeded); len(got) != 4 {
		t.Fatalf("installs succeeded: %v", got)
	}
	if got := len(events(f.sim, sim.KindInstall, "completed")); got != 4 {
		t.Fatalf("%d install jobs completed, want 4", got)
	}
}

func TestFullAutoOnEmptyDiff(t *testing.T) {
	// The build changes nothing, so full: auto sends full=1; the image's
	// current version is already full, so the API refuses. The version
	// fails, and the diff, still open, is rejected.
	f := newFixture(t, simtest.FleetPlan("empty", []string{"game"}, 2, 4, "", "", rejectOnFailure), fast+`
builds:
  - {url: "s3://builds/game/9.9.9/", added: [], modified: [], removed: []}
`)
	obs := &outcomes{}
	s := f.run(t, context.Background(), obs)
	if got := failedInstances(s); strings.Join(got, " ") != "version@game" {
		t.Fatalf("failures %v, want the version", got)
	}
	if msg := engine.ErrText(s.Failures[0].Err); !strings.Contains(msg, "already full") {
		t.Fatalf("version error %q: full=1 was not sent, or the refusal is not reported", msg)
	}
	if r, _ := obs.get("diff@buildbox-1/game"); r.Outcome != engine.Succeeded || !strings.Contains(r.Detail, "0 added, 0 modified, 0 removed") {
		t.Fatalf("diff: %+v", r)
	}
	n := sent(f.sim)
	if n[sim.EPVersionCreate] != 1 || n[sim.EPDiffReject] != 1 || n[sim.EPInstallQueue] != 0 {
		t.Fatalf("version creates %d rejects %d queues %d; want 1, 1, 0", n[sim.EPVersionCreate], n[sim.EPDiffReject], n[sim.EPInstallQueue])
	}
	if len(events(f.sim, sim.KindDiff, "rejected")) != 1 {
		t.Fatal("the open diff was not rejected")
	}
}

func TestInstallAtNowWithFewSlots(t *testing.T) {
	// install_at now: the platform runs every install by itself while the
	// one slot lets the rollout watch a single instance at a time, so most
	// jobs end (and leave the list) before their instance first looks.
	src := insertAfter(t, simtest.FleetPlan("nowslow", []string{"game"}, 6, 1, "", "", ""), atVersion, "    install_at: now\n")
	f := newFixture(t, src, `
speed: 100
jitter: 0.8
seed: 7
durations: {startup: 3s, update: 5s, diff: 5s, version: 5s, mirror: 5s, install: 10s}
`)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 || (s.Verdict == engine.VerdictAborted) {
		t.Fatalf("failures: %+v", s.Failures)
	}
	if n := sent(f.sim)[sim.EPInstallQueue]; n != 0 {
		t.Fatalf("%d queue calls under install_at now", n)
	}
}

func TestInterruptReportsEveryUnfinishedJob(t *testing.T) {
	// Two regions give the mirror instance two jobs; the interrupt comes
	// when the first has completed, so the instance's last report is a
	// finished job while the other still runs. That one must be reported,
	// with its id and last state.
	f := newFixture(t, simtest.FleetPlan("mirrors", []string{"game"}, 2, 4, "", "", ""), `
speed: 20
jitter: 0.9
seed: 3
durations: {startup: 1s, update: 1s, diff: 1s, version: 1s, mirror: 20s, install: 5s}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{onJob: func(id string, j engine.JobInfo) {
		if id == "mirror@game" && j.StateName == "Completed" {
			cancel()
		}
	}}
	s := f.run(t, ctx, rec)
	if s.Verdict != engine.VerdictInterrupted {
		t.Fatalf("not interrupted: %+v", s)
	}
	// The simulator knows which mirror jobs had not ended at the end.
	ended := map[int64]bool{}
	var mirrors []int64
	for _, e := range f.sim.Timeline() {
		if e.Kind != sim.KindMirror {
			continue
		}
		switch e.Event {
		case "created":
			mirrors = append(mirrors, e.JobID)
		case "completed", "failed":
			ended[e.JobID] = true
		}
	}
	var running []int64
	for _, id := range mirrors {
		if !ended[id] {
			running = append(running, id)
		}
	}
	// Seed 3 gives the two mirror jobs run times far apart (the jitter's
	// factors depend on the seed only), so the interrupt at the first
	// one's end always finds the other running.
	if len(mirrors) != 2 || len(running) != 1 {
		t.Fatalf("expected one of %d mirror jobs still running at the interrupt, got %v: the scenario no longer sets the case up", len(mirrors), running)
	}
	var got []int64
	for _, u := range s.Unfinished {
		if u.Instance == "mirror@game" {
			got = append(got, u.Job.ID)
			if u.Job.StateName == "" || u.Job.StateName == "Completed" {
				t.Errorf("unfinished job with state %q", u.Job.StateName)
			}
		}
	}
	if len(got) != 1 || got[0] != running[0] {
		t.Fatalf("unfinished mirror jobs reported %v, want the running %v", got, running)
	}
}

func TestUpdatesOfOneImageSerialized(t *testing.T) {
	// Two build machines update the same image; an image runs one update
	// or diff at a time (a running update locks it), while the other image
	// proceeds in parallel.
	src := `version: 1
name: serial
clanforge: {asid: 1234}
concurrency: 8
images:
  - {name: game-a, id: 5530}
  - {name: game-b, id: 5531}
machines:
  - {name: bb1, id: 770001, labels: {role: build}}
  - {name: bb2, id: 770002, labels: {role: build}}
  - {name: m000, id: 800000, labels: {role: fleet}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "build 1"
    url: "s3://builds/game/1/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.name == "bb1"
`
	f := newFixture(t, src, fast)
	s := f.run(t, context.Background(), nil)
	if len(s.Failures) != 0 {
		t.Fatalf("failures: %+v", s.Failures)
	}
	byImage := map[int64][]interval{}
	for _, iv := range instanceIntervals(f.sim.Timeline()) {
		if strings.HasPrefix(iv.name, "update/") || strings.HasPrefix(iv.name, "diff/") {
			for _, e := range f.sim.Timeline() {
				if e.Seq == iv.seqS {
					byImage[e.ImageID] = append(byImage[e.ImageID], iv)
				}
			}
		}
	}
	all := append(append([]interval{}, byImage[5530]...), byImage[5531]...)
	if len(byImage[5530]) != 3 || len(byImage[5531]) != 3 {
		t.Fatalf("jobs per image: %d and %d, want 3 each (two updates, one diff)", len(byImage[5530]), len(byImage[5531]))
	}
	for img, iv := range byImage {
		if got := maxOverlap(iv); got != 1 {
			t.Errorf("image %d ran %d updates or diffs at once", img, got)
		}
	}
	if maxOverlap(all) < 2 {
		t.Errorf("the two images never ran in parallel")
	}
}

// abortThenInterrupt is a person who presses Ctrl-C as soon as the run
// says it is aborting.
type abortThenInterrupt struct {
	engine.NopObserver
	cancel func()
}

func (a *abortThenInterrupt) Aborting(string) { a.cancel() }

// TestVerdictOfAnAbortCutShort: a run that aborts on its failure budget and
// is then interrupted (its on_failure steps cut short) ended INTERRUPTED,
// not ABORTED: what it left undone is for --resume to finish, and exit 130
// says so. Without the interrupt the same run is ABORTED.
func TestVerdictOfAnAbortCutShort(t *testing.T) {
	scenario := fast + `
failures:
  - {kind: install, machine: m000, error: disk full}
  - {kind: install, machine: m001, error: disk full}
`
	for _, tc := range []struct {
		name      string
		interrupt bool
		want      engine.Verdict
	}{
		{"aborted", false, engine.VerdictAborted},
		{"aborted, then interrupted", true, engine.VerdictInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := simtest.FleetPlan("cutshort", []string{"game"}, 4, 4, "    waves: [\"50%\", \"100%\"]\n    max_failures: 1\n", "", rejectOnFailure)
			f := newFixture(t, src, scenario)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var obs engine.Observer = engine.NopObserver{}
			if tc.interrupt {
				obs = &abortThenInterrupt{cancel: cancel}
			}
			s := f.run(t, ctx, obs)
			if s.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v (abort reason %q)", s.Verdict, tc.want, s.AbortReason)
			}
		})
	}
}
