package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

// read is one reading of a job at a time from the job's start.
type read struct {
	at       time.Duration
	progress int
}

// TestProgressBetweenReads plays a job read now and then, with the view
// ticking every second in between, and checks what its row shows: never
// less than a tick before, never 100% before the job said so, a new
// reading moving it no further than the job went since the reading
// before, and, for a job that keeps to its own jobeta and pace, always
// between the two readings around it, moving in small steps. (Before
// interpolation a row sat at its last reading and jumped at the next one:
// 6% for the whole job, then 97%.)
func TestProgressBetweenReads(t *testing.T) {
	const id = "update@buildbox-1/game-b"
	tests := []struct {
		name string
		// The job's jobeta and jobstart from the instance's start; 0 for
		// none.
		eta, start time.Duration
		reads      []read
		// consistent: the readings lie on the line the job announced, so
		// the row stays between them.
		consistent bool
		// maxStep is the largest rise allowed from one tick to the next:
		// between reads, and at the reads of a consistent job.
		maxStep int
		// want is the percentage shown at the end.
		want int
	}{
		{
			// The row: read at 6% and next at its end.
			name: "on its jobeta", eta: 100 * time.Second, start: 0,
			reads:      []read{{6 * time.Second, 6}, {97 * time.Second, 97}},
			consistent: true, maxStep: 2, want: 97,
		},
		{
			name: "read often, on its jobeta", eta: 100 * time.Second, start: 0,
			reads:      []read{{10 * time.Second, 10}, {30 * time.Second, 30}, {50 * time.Second, 50}, {90 * time.Second, 90}},
			consistent: true, maxStep: 2, want: 90,
		},
		{
			// The jobeta says 50 s, the job takes 100 s: its own pace
			// holds the row back, so the next reading finds it there.
			name: "slower than its jobeta", eta: 50 * time.Second, start: 0,
			reads:      []read{{10 * time.Second, 10}, {60 * time.Second, 60}, {95 * time.Second, 95}},
			consistent: true, maxStep: 2, want: 95,
		},
		{
			// The jobeta says 200 s, the job takes 100 s: the row follows
			// the jobeta, and the reading moves it up by less than the
			// job did.
			name: "faster than its jobeta", eta: 200 * time.Second, start: 0,
			reads:   []read{{10 * time.Second, 10}, {60 * time.Second, 60}, {90 * time.Second, 90}},
			maxStep: 2, want: 90,
		},
		{
			// A job of about 8 s whose jobstart (whole seconds) is 0.9 s
			// early: a pace taken over its first second would hold the
			// row at a few percent until the next reading.
			name: "short job, whole-second jobstart", eta: 9 * time.Second, start: 0,
			reads:      []read{{1 * time.Second, 1}, {9 * time.Second, 99}},
			consistent: true, maxStep: 13, want: 99,
		},
		{
			name: "no jobeta: its pace since jobstart", start: 10 * time.Second,
			reads:      []read{{30 * time.Second, 20}, {80 * time.Second, 70}},
			consistent: true, maxStep: 2, want: 70,
		},
		{
			// A jobeta already passed at the reading says nothing.
			name: "jobeta passed: its pace", eta: 5 * time.Second, start: 0,
			reads:      []read{{20 * time.Second, 20}, {60 * time.Second, 60}},
			consistent: true, maxStep: 2, want: 60,
		},
		{
			name: "nothing to go by", start: 0,
			reads: []read{{10 * time.Second, 0}, {40 * time.Second, 0}},
			// Without a jobeta and with no progress, the row waits.
			consistent: true, maxStep: 0, want: 0,
		},
		{
			// Read at 40% and then again, unchanged: the row stops where
			// it got to instead of going back.
			name: "stalled", eta: 0, start: 0,
			reads:   []read{{40 * time.Second, 40}, {60 * time.Second, 40}, {90 * time.Second, 40}},
			maxStep: 2, want: 59,
		},
		{
			// At the jobeta and still running: the row stops short of
			// 100%, whatever the clock says.
			name: "past its jobeta", eta: 20 * time.Second, start: 0,
			reads:   []read{{10 * time.Second, 50}, {60 * time.Second, 50}},
			maxStep: 6, want: 99,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 100, 24, false)
			h.start(2)
			h.ui.InstanceStarted(id, t0)
			h.flush()
			in := &h.m.st.insts[h.m.st.byID[id]]
			job := engine.JobInfo{Kind: "update", ID: 7, State: 2, StateName: "Running"}
			if tt.eta > 0 {
				job.ETA = t0.Add(tt.eta)
			}
			if tt.start > 0 || tt.eta > 0 {
				job.Start = t0.Add(tt.start)
			}
			end := tt.reads[len(tt.reads)-1].at
			shown, prevRead := 0, -1
			next := 0
			for at := time.Duration(0); at <= end; at += time.Second {
				h.clk.t = t0.Add(at)
				isRead := next < len(tt.reads) && tt.reads[next].at == at
				if isRead {
					job.Progress = tt.reads[next].progress
					h.ui.JobProgress(id, job)
				}
				h.flush()
				got := in.shownPct()
				if got < shown {
					t.Fatalf("at %v the row went back from %d%% to %d%%", at, shown, got)
				}
				if got >= 100 {
					t.Fatalf("at %v the row shows %d%% before the job said it ended", at, got)
				}
				switch {
				case prevRead < 0:
				case tt.consistent || !isRead:
					// A job that keeps to what it announced moves the row
					// in small steps, readings included: no jump.
					if got-shown > tt.maxStep {
						t.Fatalf("at %v the row rose %d points in a tick (at most %d)", at, got-shown, tt.maxStep)
					}
				default:
					did := max(tt.reads[next].progress-prevRead, 0)
					if got-shown > did {
						t.Fatalf("at %v a reading moved the row by %d points, the job did %d", at, got-shown, did)
					}
				}
				if tt.consistent && prevRead >= 0 && next < len(tt.reads) && !isRead {
					if lo, hi := prevRead, tt.reads[next].progress; got < lo || got > hi {
						t.Fatalf("at %v the row shows %d%%, outside the readings around it (%d–%d)", at, got, lo, hi)
					}
				}
				if isRead {
					prevRead = tt.reads[next].progress
					next++
				}
				shown = got
			}
			if shown != tt.want {
				t.Fatalf("the row ends at %d%%, want %d%%", shown, tt.want)
			}
			if strings.Contains(h.frame(), "100%") {
				t.Fatalf("frame shows 100%% for a running job:\n%s", h.frame())
			}
		})
	}
}

// TestProgressOfTheNextJobStartsFromItsReading: an install drives a mirror
// job, then its own; the second starts its own bar from its own reading.
func TestProgressOfTheNextJobStartsFromItsReading(t *testing.T) {
	h := newHarness(t, 100, 24, false)
	h.start(2)
	id := installID(1)
	h.ui.InstanceStarted(id, t0)
	h.ui.JobProgress(id, engine.JobInfo{Kind: "mirror", ID: 1, State: 2, Progress: 90, Start: t0, ETA: t0.Add(10 * time.Second)})
	h.tick(5 * time.Second)
	in := &h.m.st.insts[h.m.st.byID[id]]
	if got := in.shownPct(); got < 90 {
		t.Fatalf("mirror job shows %d%%", got)
	}
	h.ui.JobProgress(id, engine.JobInfo{Kind: "install", ID: 2, State: 2, Progress: 3, Start: t0.Add(5 * time.Second), ETA: t0.Add(60 * time.Second)})
	h.tick(time.Second)
	if got := in.shownPct(); got < 3 || got > 10 {
		t.Fatalf("the install job shows %d%%, want its own progress (3%%, moving)", got)
	}
}

// TestProgressFinishedRowShowsTheReading: once the instance ended, its row
// shows what the job said last (a failed job's real progress), not an
// interpolation.
func TestProgressFinishedRowShowsTheReading(t *testing.T) {
	h := newHarness(t, 100, 24, false)
	h.start(4)
	id := installID(3)
	h.ui.InstanceStarted(id, t0)
	h.ui.JobProgress(id, engine.JobInfo{Kind: "install", ID: 9103, State: 2, Progress: 10, Start: t0, ETA: t0.Add(100 * time.Second)})
	h.tick(50 * time.Second)
	h.fail(3, "disk full")
	h.tick(time.Second)
	in := &h.m.st.insts[h.m.st.byID[id]]
	if got := in.shownPct(); got != 40 {
		t.Fatalf("failed row shows %d%%, want the job's last 40%%", got)
	}
}
