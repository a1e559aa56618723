package tui

import (
	"time"

	"github.com/rollout/rollout/engine"
)

// Progress between reads.
//
// The engine reads a job only now and then: the poller aims its reads at
// the job's jobeta, so a job may be read at 6% just after it started and
// next at its end. Shown as read, its row would sit at 6% while its time
// left counts down, then jump. The view therefore shows a job's progress
// as it moves between reads: from the last reading towards 100% at the
// job's jobeta, no faster than the job's own pace since its start (see
// predict). What a row shows never goes back for the same job, never
// reaches 100% before the job said so, and a new reading moves it no
// further than the job itself went since the reading before.

// maxInterpolated is as far as interpolation goes: 100% is only ever what
// a job said of itself.
const maxInterpolated = 99

// onReading records a new reading of the instance's job, received at now
// on the view's clock.
func (in *instance) onReading(job engine.JobInfo, now time.Time) {
	prev, had := in.job, in.hasJob
	in.job, in.hasJob = job, true
	p := clampPct(job.Progress)
	if !had || prev.ID != job.ID || prev.Kind != job.Kind {
		// Another job (an install drives a mirror job per location, then
		// its own): it gets its own bar, from its own first reading.
		in.readAt, in.readP, in.shown = now, p, float64(p)
		return
	}
	// A reading that says nothing new keeps its anchor, so that the row
	// moves on smoothly, unless it contradicts the interpolation (the job
	// should be past it by now): then the job is slower than its jobeta
	// said, and the row waits for it from here.
	same := prev.Progress == job.Progress && prev.ETA.Equal(job.ETA) && prev.State == job.State
	if !same || in.predict(now) >= float64(p+1) {
		in.readAt, in.readP = now, p
	}
	in.shown = max(in.shown, float64(p))
}

// advance moves what the row shows to where the job should be at now.
func (in *instance) advance(now time.Time) {
	if in.hasJob {
		in.shown = max(in.shown, in.predict(now))
	}
}

// predict is where the job should be at now, from its last reading, by
// two lines: the straight line from the reading to 100% at the jobeta
// (when the jobeta is after the reading), and the job's average pace since
// its start (its jobstart, else the instance's start). With both, the
// slower one: jobetas are often optimistic, and a bar that ran ahead of
// its job would have to stand still until the job caught up. It is the
// reading itself when there is nothing to go by.
func (in *instance) predict(now time.Time) float64 {
	j := &in.job
	p := float64(in.readP)
	dt := now.Sub(in.readAt)
	if j.Done || dt <= 0 || in.readP >= maxInterpolated {
		return p
	}
	q, ok := 0.0, false
	if !j.ETA.IsZero() && j.ETA.After(in.readAt) {
		q, ok = p+(100-p)*float64(dt)/float64(j.ETA.Sub(in.readAt)), true
	}
	start := j.Start
	if start.IsZero() {
		start = in.started
	}
	// A pace needs some progress over some time (see minPaceRun).
	if ran := in.readAt.Sub(start); !start.IsZero() && in.readP > 0 && ran >= minPaceRun {
		pace := p + p*float64(dt)/float64(ran)
		if !ok || pace < q {
			q, ok = pace, true
		}
	}
	if !ok {
		return p
	}
	return min(q, maxInterpolated)
}

// shownPct is the progress the row shows: the interpolated value while the
// instance runs, the last reading once it ended.
func (in *instance) shownPct() int {
	if in.status == stRunning && !in.job.Done {
		return clampPct(int(in.shown))
	}
	return clampPct(in.job.Progress)
}

func clampPct(p int) int { return min(max(p, 0), 100) }
