package steps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// waitTimeout is a step's own account of what it was still waiting for
// when the step's timeout passed (a ready step's counters, a switch's
// servers). Run keeps it instead of naming a job, which these steps have
// none of.
type waitTimeout struct {
	msg   string
	cause error
}

func (e *waitTimeout) Error() string { return e.msg + ": " + e.cause.Error() }
func (e *waitTimeout) Unwrap() error { return e.cause }

// runReady reads the image's v2 rollout counters (GET v2 image status with
// detail=true) until the step's until holds (default: status.pending ==
// 0). It fails when fail_if holds at any read, and when the step's timeout
// (the caller's ctx deadline) passes first; both errors give the counters.
// The counters carry no ETA, so reads back off from the poll policy's Min
// up to its Max and stay there. Every read is reported to the engine with
// the counters per region, and the output's Status is the last read.
//
// fail_if is judged before until: a read that satisfies both fails, since
// a fleet with too many failed machines is not ready, however few pending.
func (r *runner) runReady(ctx context.Context) error {
	c := r.env.Client
	img := r.inst.Image
	var wait time.Duration
	text := ""
	for {
		st, err := c.ImageStatus(ctx, img.ID, true)
		if err != nil {
			if ctx.Err() != nil {
				return r.readyStopped(ctx, text)
			}
			return fmt.Errorf("reading the rollout counters of image %s (id %d): %w", img.Name, img.ID, err)
		}
		rs, note := ReadyCounters(st, r.step.Fleets)
		r.out.Status = rs
		text = CountersText(rs)
		if note != "" {
			text += " (" + note + ")"
		}
		r.out.Detail = text
		if r.step.FailIf != nil {
			bad, err := r.evalStatus(r.step.FailIf, rs)
			if err != nil {
				return fmt.Errorf("ready step %q: fail_if: %w", r.step.Name, err)
			}
			if bad {
				r.reportReady(clanforge.StateFailed, "failed", rs, text)
				return fmt.Errorf("fail_if holds (%s) for image %s: %s", r.step.FailIf.Source, img.Name, text)
			}
		}
		done := rs.Pending == 0
		if r.step.Until != nil {
			if done, err = r.evalStatus(r.step.Until, rs); err != nil {
				return fmt.Errorf("ready step %q: until: %w", r.step.Name, err)
			}
		}
		if done {
			r.reportReady(clanforge.StateCompleted, "ready", rs, text)
			return nil
		}
		r.reportReady(clanforge.StateRunning, "waiting", rs, text)
		if wait == 0 {
			wait = r.policy.Min
		} else {
			wait = r.policy.growWaiting(wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return r.readyStopped(ctx, text)
		}
	}
}

// readyStopped is the error of a ready step whose ctx ended: at the step's
// timeout, what it waited for and the last counters; on an interrupt, the
// ctx's own error.
func (r *runner) readyStopped(ctx context.Context, last string) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	until := "status.pending == 0"
	if r.step.Until != nil {
		until = r.step.Until.Source
	}
	if last == "" {
		last = "no counters could be read"
	}
	return &waitTimeout{
		msg:   fmt.Sprintf("image %s was not ready (%s) when the step's timeout passed: %s", r.inst.Image.Name, until, last),
		cause: ctx.Err(),
	}
}

// evalStatus judges until or fail_if against one read.
func (r *runner) evalStatus(e *plan.Expr, rs *plan.ReadyStatus) (bool, error) {
	return e.Eval(plan.EvalInput{Image: r.inst.Image, Steps: r.in.Scope, Status: rs})
}

// reportReady tells the engine about one read: Running while waiting,
// Completed when ready, Failed when fail_if held; the progress is the
// share of machines completed.
func (r *runner) reportReady(state clanforge.JobState, name string, rs *plan.ReadyStatus, text string) {
	job := clanforge.Job{State: state, StateName: name}
	if total := rs.Pending + rs.Failed + rs.Completed; total > 0 {
		job.Progress = rs.Completed * 100 / total
	} else if state == clanforge.StateCompleted {
		job.Progress = 100
	}
	r.progress(JobUpdate{Kind: KindReady, Job: job, Detail: r.maskText(text)})
}

// ReadyCounters sums one v2 image status over fleets (by fleet id) and per
// region by the region's name (its id when the API names none). With no
// fleets it takes the image's totals and every fleet's regions.
//
// A fleet the answer does not list counts nothing: the API lists only
// fleets with machines carrying the image. An answer that lists no fleet
// at all while its totals count machines has no breakdown to sum (an API
// that ignored detail=true): the totals are taken instead, which can only
// make the step wait longer, never pass early, and note says so.
func ReadyCounters(st *clanforge.ImageStatus, fleets []*plan.Fleet) (rs *plan.ReadyStatus, note string) {
	rs = &plan.ReadyStatus{Regions: map[string]plan.RegionStatus{}}
	addRegions := func(fs clanforge.FleetStatus) {
		for id, reg := range fs.Regions {
			name := reg.Name
			if name == "" {
				name = id
			}
			x := rs.Regions[name]
			x.Pending += reg.Pending
			x.Failed += reg.Failed
			x.Completed += reg.Completed
			rs.Regions[name] = x
		}
	}
	totals := func() {
		rs.Pending, rs.Failed, rs.Completed = st.Pending, st.Failed, st.Completed
		for _, fs := range st.Fleets {
			addRegions(fs)
		}
	}
	switch {
	case len(fleets) == 0:
		totals()
	case len(st.Fleets) == 0 && st.Pending+st.Failed+st.Completed > 0:
		totals()
		note = "the API gave no per-fleet counts: counting every fleet"
	default:
		for _, f := range fleets {
			fs, ok := st.Fleets[f.ID]
			if !ok {
				continue
			}
			rs.Pending += fs.Pending
			rs.Failed += fs.Failed
			rs.Completed += fs.Completed
			addRegions(fs)
		}
	}
	return rs, note
}

// CountersText says the counters in words: the totals, then each region
// by name, e.g. "3 pending, 28 completed, 0 failed (eu: 2 pending, 14
// completed, 0 failed; us: 1 pending, 14 completed, 0 failed)". With one
// region the totals are that region's and it is named alone.
func CountersText(rs *plan.ReadyStatus) string {
	if rs == nil {
		return "no counters read"
	}
	one := func(p, c, f int) string { return fmt.Sprintf("%d pending, %d completed, %d failed", p, c, f) }
	names := make([]string, 0, len(rs.Regions))
	for n := range rs.Regions {
		names = append(names, n)
	}
	sort.Strings(names)
	total := one(rs.Pending, rs.Completed, rs.Failed)
	switch len(names) {
	case 0:
		return total
	case 1:
		if reg := rs.Regions[names[0]]; reg.Pending == rs.Pending && reg.Failed == rs.Failed && reg.Completed == rs.Completed {
			return names[0] + ": " + total
		}
	}
	parts := make([]string, 0, len(names))
	for _, n := range names {
		reg := rs.Regions[n]
		parts = append(parts, n+": "+one(reg.Pending, reg.Completed, reg.Failed))
	}
	return total + " (" + strings.Join(parts, "; ") + ")"
}
