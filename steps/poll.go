package steps

import (
	"context"
	"time"

	"github.com/rollout/rollout/clanforge"
)

// PollPolicy bounds status polling. Polls aim at the job's jobeta, never
// sooner than Min apart, and back off by Factor up to Max while a job waits
// without an ETA.
type PollPolicy struct {
	Min    time.Duration
	Max    time.Duration
	Factor float64
}

// DefaultPollPolicy is the policy for the real API: at least 2 s between
// reads of one job, at most 30 s, growing by half each time a job has no ETA
// ahead of it.
func DefaultPollPolicy() PollPolicy {
	return PollPolicy{Min: 2 * time.Second, Max: 30 * time.Second, Factor: 1.5}
}

// normalized fills zero or nonsensical fields from DefaultPollPolicy, so
// that no policy can make a caller poll in a tight loop.
func (p PollPolicy) normalized() PollPolicy {
	d := DefaultPollPolicy()
	if p.Min <= 0 {
		p.Min = d.Min
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	if p.Factor < 1 {
		p.Factor = d.Factor
	}
	return p
}

// margin is added to an ETA before polling: jobeta has one-second
// resolution, so a read exactly at the ETA would often find the job a hair
// short of done.
func (p PollPolicy) margin() time.Duration {
	m := p.Min / 4
	if m > time.Second {
		m = time.Second
	}
	return m
}

// untilETA is the delay to poll near eta, clamped to [Min, Max]; ok is false
// when eta is unknown or already passed (a running job's ETA may lie in the
// past), in which case the caller backs off instead.
func (p PollPolicy) untilETA(now, eta time.Time) (time.Duration, bool) {
	if eta.IsZero() || !eta.After(now) {
		return 0, false
	}
	return p.clamp(eta.Sub(now) + p.margin()), true
}

func (p PollPolicy) clamp(d time.Duration) time.Duration {
	if d < p.Min {
		return p.Min
	}
	if d > p.Max {
		return p.Max
	}
	return d
}

// grow returns the next backoff step after d (Min when d is zero).
func (p PollPolicy) grow(d time.Duration) time.Duration {
	if d <= 0 {
		return p.Min
	}
	return p.clamp(time.Duration(float64(d) * p.Factor))
}

// pacer decides when to read one job again.
type pacer struct {
	p         PollPolicy
	backoff   time.Duration
	lastState clanforge.JobState
}

// next returns the delay before the next read of a job last seen as job. A
// state change restarts the backoff at Min: a job that just started running
// deserves a prompt look at its fresh ETA.
func (pc *pacer) next(now time.Time, job *clanforge.Job) time.Duration {
	if job.State != pc.lastState {
		pc.lastState = job.State
		pc.backoff = 0
	}
	if d, ok := pc.p.untilETA(now, job.ETA); ok {
		pc.backoff = 0
		return d
	}
	pc.backoff = pc.p.grow(pc.backoff)
	return pc.backoff
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pollJob reports job and re-reads it with read until it is terminal, pacing
// the reads by the runner's policy. It returns the last job seen, also when
// it fails (ctx ended, or a read failed after the client's own retries).
func (r *runner) pollJob(ctx context.Context, kind string, job *clanforge.Job, read func(context.Context) (*clanforge.Job, error)) (*clanforge.Job, error) {
	pc := &pacer{p: r.policy}
	r.report(kind, *job)
	for !job.State.Terminal() {
		if err := sleep(ctx, pc.next(r.now(), job)); err != nil {
			return job, err
		}
		nj, err := read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return job, ctx.Err()
			}
			return job, err
		}
		job = nj
		r.report(kind, *job)
	}
	return job, nil
}

// callBudget bounds one state-changing call together with the client's own
// settling of a lost answer (its reads retry until their context ends).
// Past it the caller settles the call from reads it makes anyway, so that
// a settle read starved by faults cannot hold the instance for minutes.
func (p PollPolicy) callBudget() time.Duration {
	return max(4*p.Max, 30*time.Second)
}
