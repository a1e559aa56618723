package cli

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// stateDir is a run's open state directory: its journal, and the engine's
// view of it.
type stateDir struct {
	dir     string
	j       *state.Journal
	adapter *journalAdapter
}

func (sd *stateDir) close() { sd.j.Close() }

// openState applies the rules of the state directory, then opens (and
// locks) its journal: an unfinished journal needs --resume or --fresh, and
// a finished one is set aside so the new run starts clean.
func (env *Env) openState(p *plan.Plan, o *RunOptions, c *conn) (*stateDir, error) {
	dir := o.StateDir
	if dir == "" {
		dir = state.DefaultDir(p.Name)
	}
	prior, err := state.Replay(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, failErr("rollout run: reading the journal in %s: %v", dir, err)
	}
	if err := env.applyRules(p, o, dir, prior); err != nil {
		return nil, err
	}
	j, err := state.Open(dir, p.Name, p.Hash)
	if err != nil {
		var pc *state.PlanChangedError
		if errors.As(err, &pc) {
			return nil, usageErr("rollout run: %v%s", err, changedParts(dir, p))
		}
		return nil, failErr("rollout run: %v", err)
	}
	if li, ok := j.StaleLock(); ok {
		fmt.Fprintf(env.Stderr, "rollout run: took over the lock of %s left by pid %d (started %s), which is no longer running\n",
			dir, li.PID, li.Started.Format(time.RFC3339))
	}
	if err := saveFingerprint(dir, p); err != nil {
		j.Close()
		return nil, failErr("rollout run: %v", err)
	}
	return &stateDir{dir: dir, j: j, adapter: &journalAdapter{j: j}}, nil
}

func (env *Env) applyRules(p *plan.Plan, o *RunOptions, dir string, prior *state.Summary) error {
	exists := prior != nil && len(prior.Runs) > 0
	// An interrupted run finished its journal but left remote jobs
	// running: it is resumed like a crashed one, never silently dropped.
	unfinished := exists && (!prior.Finished || prior.Verdict == engine.VerdictInterrupted.String())
	switch {
	case o.Fresh && exists:
		if !o.Yes {
			if err := env.confirm(fmt.Sprintf("Start %q over? The journal in %s will be set aside (kept, not deleted).", p.Name, dir)); err != nil {
				return err
			}
		}
		if _, err := state.Fresh(dir); err != nil {
			return failErr("rollout run: %v", err)
		}
	case unfinished && !o.Resume:
		extra := ""
		if o.StateDir != "" {
			extra = " --state-dir " + o.StateDir
		}
		return usageErr("rollout run: the last run of %q (journal %s) did not finish: remote jobs may still be running.\n"+
			"  continue it:   rollout run %s --resume%s\n"+
			"  see it:        rollout status %s%s\n"+
			"  start over:    rollout run %s --fresh%s", p.Name, dir, o.Path, extra, o.Path, extra, o.Path, extra)
	case o.Resume && !unfinished:
		if exists {
			fmt.Fprintf(env.Stderr, "rollout run: the last run of %q finished; nothing to resume, starting a new run\n", p.Name)
		}
		o.Resume = false
		fallthrough
	case exists && !unfinished:
		if exists {
			if _, err := state.Fresh(dir); err != nil {
				return failErr("rollout run: %v", err)
			}
		}
	}
	return nil
}

// recordUnfinished writes the jobs an interrupt left running into the
// journal; it reports whether the journal has them.
func (sd *stateDir) recordUnfinished(env *Env, sum *engine.Summary) bool {
	if len(sum.Unfinished) == 0 {
		return true
	}
	var jobs []state.JobRecord
	for _, u := range sum.Unfinished {
		jobs = append(jobs, state.JobRecord{Kind: u.Job.Kind, ID: u.Job.ID, State: u.Job.State, StateName: u.Job.StateName, Instance: u.Instance})
	}
	if err := sd.j.Unfinished(jobs); err != nil {
		fmt.Fprintf(env.Stderr, "rollout run: WARNING: could not record the unfinished jobs in the journal: %v\n", err)
		for _, u := range sum.Unfinished {
			fmt.Fprintf(env.Stderr, "  %s job %d (%s), %s\n", u.Job.Kind, u.Job.ID, u.Job.StateName, u.Instance)
		}
		return false
	}
	return true
}

// journalAdapter lets the state journal serve as the engine's journal. It
// keeps the first write error: the engine goes on (the remote jobs are
// real either way), and the run reports it and does not end as a success.
type journalAdapter struct {
	j     *state.Journal
	mu    sync.Mutex
	first error
}

func (a *journalAdapter) Restore(id string) (*plan.Output, bool) { return a.j.Succeeded(id) }

func (a *journalAdapter) Record(id string, r engine.Result, out *plan.Output) {
	var job *state.JobRecord
	if r.Job != nil {
		job = &state.JobRecord{Kind: r.Job.Kind, ID: r.Job.ID, State: r.Job.State, StateName: r.Job.StateName, Instance: id}
	}
	if err := a.j.Outcome(id, r.Outcome.String(), r.Err, job, out); err != nil {
		a.mu.Lock()
		if a.first == nil {
			a.first = fmt.Errorf("recording the outcome of %s: %w", id, err)
		}
		a.mu.Unlock()
	}
}

func (a *journalAdapter) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}
