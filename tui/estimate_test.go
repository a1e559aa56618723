package tui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

const (
	updateID  = "update@buildbox-1/game-b"
	diffID    = "diff@buildbox-1/game-b"
	gateID    = "small-change@buildbox-1/game-b"
	versionID = "version@game-b"
	mirrorID  = "mirror@game-b"
)

// startWith starts fixture(n) with concurrency conc.
func (h *harness) startWith(n, conc int) {
	info := fixture(n)
	info.Concurrency = conc
	h.ui.RunStarted(info)
	h.flush()
}

// built finishes the build steps and the mirror (1m, 1m, 0, 1m, 2m: by
// +5m) and the first wave's install (3m: by +8m), and sets the clock to
// +8m.
func (h *harness) built() {
	h.succeed(updateID, 0, time.Minute, nil, "")
	h.succeed(diffID, time.Minute, time.Minute, nil, "")
	h.succeed(gateID, 2*time.Minute, 0, nil, "")
	h.succeed(versionID, 2*time.Minute, time.Minute, nil, "")
	h.succeed(mirrorID, 3*time.Minute, 2*time.Minute, nil, "")
	h.succeed(installID(1), 5*time.Minute, 3*time.Minute, nil, "")
	h.clk.t = t0.Add(8 * time.Minute)
	h.flush()
}

// runJob starts an instance at the clock's time with a job that says it
// ends after eta.
func (h *harness) runJob(id string, eta time.Duration) {
	h.ui.InstanceStarted(id, h.clk.t)
	h.ui.JobProgress(id, engine.JobInfo{Kind: "install", ID: 1, State: 2, StateName: "Running", Start: h.clk.t, ETA: h.clk.t.Add(eta)})
}

// end finishes an instance at the clock's time.
func (h *harness) end(id string, started time.Time) {
	h.ui.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: started, Finished: h.clk.t})
}

func (h *harness) estimate() (time.Duration, bool) { return h.m.st.eta, h.m.st.etaKnown }

// TestEstimate: a fixed DAG (fixture: update → diff → gate → version →
// mirror → install in three waves) with fixed durations gives the
// expected time left.
func TestEstimate(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		want  time.Duration
		known bool
	}{
		{"nothing seen yet", func(h *harness) { h.startWith(6, 4) }, 0, false},
		{"a job without a jobeta is nothing to go on", func(h *harness) {
			h.startWith(6, 4)
			h.ui.InstanceStarted(updateID, t0)
			h.ui.JobProgress(updateID, engine.JobInfo{Kind: "update", ID: 1, State: 1, StateName: "Pending"})
			h.tick(10 * time.Second)
		}, 0, false},
		{
			// update's jobeta says 2m; every step nothing was seen of is
			// expected to take as long: 2m update, 2m diff, 0 gate, 2m
			// version, 2m mirror, then three waves of 2m (1, 2 and 3
			// machines, 4 at a time).
			"a running job's jobeta", func(h *harness) {
				h.startWith(6, 4)
				h.runJob(updateID, 2*time.Minute)
				h.flush()
			}, 14 * time.Minute, true,
		},
		{
			// The old estimate's case: update took 4m; diff, version and
			// mirror are expected to take as long; one at a time.
			"one step seen, concurrency 1", func(h *harness) {
				h.startWith(0, 1)
				h.succeed(updateID, 0, 4*time.Minute, nil, "")
				h.clk.t = t0.Add(4 * time.Minute)
				h.flush()
			}, 12 * time.Minute, true,
		},
		{
			// 10 machines: wave 2 has 4 (one round of 3m), wave 3 has 5
			// (two rounds at 4 at a time).
			"waves and the concurrency limit", func(h *harness) {
				h.startWith(10, 4)
				h.built()
			}, 9 * time.Minute, true,
		},
		{
			// Wave 2 runs with jobetas 1m to 4m away; wave 3 opens when
			// the last has ended (4m): 4 machines, then 1: +6m.
			"running jobs and a wave barrier", func(h *harness) {
				h.startWith(10, 4)
				h.built()
				for i := 2; i <= 5; i++ {
					h.runJob(installID(i), time.Duration(i-1)*time.Minute)
				}
				h.flush()
			}, 10 * time.Minute, true,
		},
		{
			// A machine per wave more than the limit: 8 machines, 4 at a
			// time, are two rounds even with everything else done.
			"more ready than slots", func(h *harness) {
				h.startWith(16, 4)
				h.built()
			}, 12 * time.Minute, true,
		},
		{
			// update ended 30s after its jobeta; diff's job has 1m to
			// its jobeta, so diff ends in 1m30; version and mirror take
			// what update took (2m30) each, one at a time.
			"instances end after their jobeta", func(h *harness) {
				h.startWith(0, 1)
				h.ui.InstanceStarted(updateID, t0)
				h.ui.InstanceFinished(updateID, engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0.Add(150 * time.Second),
					Job: &engine.JobInfo{Kind: "update", ID: 1, State: 3, Progress: 100, Done: true, Start: t0, ETA: t0.Add(2 * time.Minute)}})
				h.clk.t = t0.Add(150 * time.Second)
				h.runJob(diffID, time.Minute)
				h.flush()
			}, 6*time.Minute + 30*time.Second, true,
		},
		{
			// A jobeta tells of its own step only: diff's 10m does not
			// make version and mirror, which nothing was seen of, any
			// longer than update's 2m.
			"a jobeta moves its own step only", func(h *harness) {
				h.startWith(0, 1)
				h.succeed(updateID, 0, 2*time.Minute, nil, "")
				h.clk.t = t0.Add(2 * time.Minute)
				h.runJob(diffID, 10*time.Minute)
				h.flush()
			}, 14 * time.Minute, true,
		},
		{
			// The mirror failed: no install can run; nothing is left.
			"a failed dependency", func(h *harness) {
				h.startWith(6, 4)
				h.succeed(updateID, 0, time.Minute, nil, "")
				h.succeed(diffID, time.Minute, time.Minute, nil, "")
				h.succeed(gateID, 2*time.Minute, 0, nil, "")
				h.succeed(versionID, 2*time.Minute, time.Minute, nil, "")
				h.ui.InstanceStarted(mirrorID, t0.Add(3*time.Minute))
				h.ui.InstanceFinished(mirrorID, engine.Result{Outcome: engine.Failed, Err: errors.New("mirror failed"),
					Started: t0.Add(3 * time.Minute), Finished: t0.Add(4 * time.Minute)})
				h.clk.t = t0.Add(4 * time.Minute)
				h.flush()
			}, 0, true,
		},
		{
			// Aborting: nothing new starts; the run ends with the
			// longest running job.
			"aborting", func(h *harness) {
				h.startWith(10, 4)
				h.built()
				h.runJob(installID(2), time.Minute)
				h.runJob(installID(3), 2*time.Minute)
				h.ui.Aborting("install: 2 targets failed")
				h.flush()
			}, 2 * time.Minute, true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 100, 24, false)
			tt.setup(h)
			got, known := h.estimate()
			if known != tt.known || (known && got != tt.want) {
				t.Fatalf("estimate = %v (known %v), want %v (known %v)", got, known, tt.want, tt.known)
			}
			head := strings.SplitN(h.frame(), "\n", 2)[0]
			if !tt.known && !strings.Contains(head, "estimating…") {
				t.Fatalf("header does not say it is estimating: %q", head)
			}
			if tt.known && !strings.Contains(head, "left ~"+fmtDur(tt.want)) {
				t.Fatalf("header does not show the estimate: %q", head)
			}
		})
	}
}

// TestEstimateFollowsTheClock plays a run on schedule (each install takes
// the 3m seen so far and its jobeta says so) and a run whose jobs end
// before their jobetas. On schedule, time left plus time passed stays the
// same through ends, starts and the ticks between them. Ends and ticks
// never make the estimate rise, and an end takes off at most what the
// jobs that ended still had to run; a start may move it, by the jobeta it
// brings. (Before, the estimate spread the remaining work over the
// concurrency limit and ignored the waves: it said 9m19s where the run
// had 12m to go, and swung as jobs were read.)
func TestEstimateFollowsTheClock(t *testing.T) {
	// 9 machines: wave 2 is eu-02…eu-05, wave 3 us-06…us-09 (4 each), 4
	// at a time; events come at times from +8m, when wave 1 ended.
	type ev struct {
		at    time.Duration
		end   []int // machines whose install ends
		start []int // machines whose install starts, with a jobeta of eta
		eta   time.Duration
	}
	tests := []struct {
		name       string
		evs        []ev
		onSchedule bool
	}{
		{"on schedule", []ev{
			{at: 0, start: []int{2, 3, 4, 5}, eta: 3 * time.Minute},
			{at: 3 * time.Minute, end: []int{2, 3, 4, 5}, start: []int{6, 7, 8, 9}, eta: 3 * time.Minute},
			{at: 6 * time.Minute, end: []int{6, 7}},
			{at: 6 * time.Minute, end: []int{8, 9}},
		}, true},
		{"jobs end before their jobeta", []ev{
			{at: 0, start: []int{2, 3, 4, 5}, eta: 4 * time.Minute},
			{at: 3 * time.Minute, end: []int{2}},
			{at: 3 * time.Minute, end: []int{3, 4}},
			{at: 3 * time.Minute, end: []int{5}, start: []int{6, 7, 8, 9}, eta: 3*time.Minute + 30*time.Second},
			{at: 6 * time.Minute, end: []int{6}},
			{at: 6 * time.Minute, end: []int{7, 8, 9}},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 100, 24, false)
			h.startWith(9, 4)
			h.built()
			base := h.clk.t
			started, etas := map[int]time.Time{}, map[int]time.Duration{}
			var endAt time.Time // when the run is expected to end
			prev := time.Duration(-1)
			check := func(what string, share time.Duration, mayRise bool) {
				t.Helper()
				left, ok := h.estimate()
				if !ok {
					t.Fatalf("%s: no estimate", what)
				}
				if end := h.clk.t.Add(left); tt.onSchedule {
					if !endAt.IsZero() && !end.Equal(endAt) {
						t.Fatalf("%s: the run would end at +%v, expected +%v", what, end.Sub(t0), endAt.Sub(t0))
					}
					endAt = end
				}
				if prev >= 0 && !mayRise && left > prev {
					t.Fatalf("%s: the estimate rose from %v to %v", what, prev, left)
				}
				if prev >= 0 && prev-left > share {
					t.Fatalf("%s: the estimate fell by %v, more than the %v that passed or ended", what, prev-left, share)
				}
				prev = left
			}
			clock := time.Duration(0)
			for _, e := range tt.evs {
				// Tick every 30s up to the event: time left falls with
				// the clock, no faster.
				for clock+30*time.Second <= e.at {
					clock += 30 * time.Second
					h.clk.t = base.Add(clock)
					h.flush()
					check("tick at +"+fmtDur(clock), 30*time.Second, false)
				}
				if dt := e.at - clock; dt > 0 {
					clock = e.at
					h.clk.t = base.Add(clock)
					h.flush()
					check("at +"+fmtDur(clock), dt, false)
				}
				if len(e.end) > 0 {
					share := time.Duration(0)
					for _, i := range e.end {
						share = max(share, started[i].Add(etas[i]).Sub(h.clk.t))
						h.end(installID(i), started[i])
					}
					h.flush()
					check("after ends at +"+fmtDur(clock), share, false)
				}
				if len(e.start) > 0 {
					for _, i := range e.start {
						started[i], etas[i] = h.clk.t, e.eta
						h.runJob(installID(i), e.eta)
					}
					h.flush()
					check("after starts at +"+fmtDur(clock), 0, true)
				}
			}
			if left, _ := h.estimate(); left != 0 {
				t.Fatalf("everything ended, %v left", left)
			}
		})
	}
}

// TestEstimatingUntilSomethingIsSeen: the header says "estimating…" until
// an instance of a step (that takes time) has finished or a running job
// has a jobeta.
func TestEstimatingUntilSomethingIsSeen(t *testing.T) {
	head := func(h *harness) string { return strings.SplitN(h.frame(), "\n", 2)[0] }
	tests := []struct {
		name  string
		setup func(h *harness)
		want  string
	}{
		{"run started", func(h *harness) { h.startWith(4, 4) }, "estimating…"},
		{"a job is pending", func(h *harness) {
			h.startWith(4, 4)
			h.ui.InstanceStarted(updateID, t0)
			h.ui.JobProgress(updateID, engine.JobInfo{Kind: "update", ID: 1, State: 1, StateName: "Pending"})
			h.tick(5 * time.Second)
		}, "estimating…"},
		{"a job has a jobeta", func(h *harness) {
			h.startWith(4, 4)
			h.runJob(updateID, time.Minute)
			h.tick(5 * time.Second)
		}, "left ~"},
		{"an instance finished", func(h *harness) {
			h.startWith(4, 4)
			h.succeed(updateID, 0, time.Minute, nil, "")
			h.clk.t = t0.Add(time.Minute)
			h.flush()
		}, "left ~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 100, 24, false)
			tt.setup(h)
			if got := head(h); !strings.Contains(got, tt.want) {
				t.Fatalf("header %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEstimateWhenAJobetaPasses: the swing. A job read at 6% just
// after it started, and not again, passes its jobeta; its time left then
// comes from its pace, and the progress that pace is taken from moves
// between reads. Taken from the stale 6%, the time left would leap from
// seconds to many minutes (~9s → ~1m30s → ~8s).
func TestEstimateWhenAJobetaPasses(t *testing.T) {
	h := newHarness(t, 100, 24, false)
	h.startWith(2, 4)
	h.ui.InstanceStarted(updateID, t0)
	h.clk.t = t0.Add(6 * time.Second)
	h.ui.JobProgress(updateID, engine.JobInfo{Kind: "update", ID: 1, State: 2, StateName: "Running", Progress: 6,
		Start: t0, ETA: t0.Add(100 * time.Second)})
	h.flush()
	prev, _ := h.estimate()
	for at := 7 * time.Second; at <= 130*time.Second; at += time.Second {
		h.clk.t = t0.Add(at)
		h.flush()
		left, ok := h.estimate()
		if !ok {
			t.Fatalf("at %v: no estimate", at)
		}
		if left > prev+2*time.Second {
			t.Fatalf("at %v the estimate leapt from %v to %v", at, prev, left)
		}
		prev = left
	}
}
