package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// stateDir is a run's open state directory: its journal, and the engine's
// view of it.
type stateDir struct {
	dir string
	j   *state.Journal
	rec *state.Recorder // the engine's view of j
}

func (sd *stateDir) close() { sd.j.Close() }

// defaultStateDir is where a plan's journal lives unless --state-dir says
// otherwise. Simulated runs keep theirs apart: their job ids mean nothing to
// the real API, so a real run must never resume from them.
func defaultStateDir(p *plan.Plan, sim bool) string {
	d := state.DefaultDir(p.Name)
	if sim {
		d += ".sim"
	}
	return d
}

// openState applies the rules of the state directory, then opens (and
// locks) its journal:
//
//   - a directory another live rollout holds is refused, naming it;
//   - --fresh sets an earlier journal aside (kept, never deleted);
//   - --resume continues an unfinished or interrupted run, and nothing
//     else: with nothing to resume it refuses and says what to do;
//   - a plain run refuses an unfinished or interrupted run (remote jobs may
//     still run) and a finished one (running it again would repeat a
//     rollout that already shipped); both need --resume or --fresh;
//   - a --sim run, which can never be resumed, sets any earlier simulated
//     journal aside by itself.
func (env *Env) openState(p *plan.Plan, o *RunOptions, c *conn) (*stateDir, error) {
	dir := o.StateDir
	if dir == "" {
		dir = defaultStateDir(p, o.Sim)
	}
	if err := state.CheckFree(dir); err != nil {
		return nil, failErr("rollout run: %v", err)
	}
	prior, err := state.Replay(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, failErr("rollout run: reading the journal in %s: %v", dir, err)
	}
	if err := env.applyRules(p, o, dir, prior, c); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(p.Instances))
	for _, in := range p.Instances {
		ids = append(ids, in.ID)
	}
	j, err := state.Open(dir, p.Name, p.Hash, state.WithInstances(ids))
	if err != nil {
		var pc *state.PlanChangedError
		if errors.As(err, &pc) {
			return nil, usageErr("rollout run: %v%s", err, changedParts(dir, p))
		}
		return nil, failErr("rollout run: %v", err)
	}
	if li, ok := j.StaleLock(); ok {
		printf(env.Stderr, "rollout run: took over the lock of %s left by pid %d (started %s), which is no longer running\n",
			dir, li.PID, li.Started.Format(time.RFC3339))
	}
	if err := saveFingerprint(dir, p); err != nil {
		j.Close()
		return nil, failErr("rollout run: %v", err)
	}
	return &stateDir{dir: dir, j: j, rec: state.NewRecorder(j)}, nil
}

func (env *Env) applyRules(p *plan.Plan, o *RunOptions, dir string, prior *state.Summary, c *conn) error {
	extra := ""
	if o.StateDir != "" {
		extra = " --state-dir " + o.StateDir
	}
	simFlag := ""
	if o.Sim {
		simFlag = " --sim"
	}
	exists := prior != nil && len(prior.Runs) > 0
	if !exists {
		if o.Resume {
			return usageErr("rollout run: nothing to resume: no run of %q is recorded in %s.\n"+
				"  start it:      rollout run %s%s", p.Name, dir, o.Path, extra)
		}
		return nil
	}
	last := prior.Runs[len(prior.Runs)-1]
	// A run that ended with calls whose answer it never recorded (an
	// update only a person can settle) is unfinished too: it is resumed,
	// with that person's decision, never repeated.
	unfinished := !prior.Finished || prior.Verdict == engine.VerdictInterrupted.String() || len(prior.PendingIntents()) > 0
	switch {
	case last.Sim != o.Sim && !o.Fresh:
		what := "the built-in simulator"
		if !last.Sim {
			what = "the real API (" + last.API + ")"
		}
		return usageErr("rollout run: the journal in %s belongs to a run against %s; it cannot be continued or repeated here.\n"+
			"  use another state directory (--state-dir), or set it aside: rollout run %s%s --fresh%s", dir, what, o.Path, simFlag, extra)
	case o.Fresh || o.Sim:
		// A simulated run is never resumed; its journal is set aside
		// like --fresh does, without asking: nothing real is at stake.
		if o.Fresh && !o.Sim && !o.Yes {
			if err := env.confirm(fmt.Sprintf("Start %q over? The journal in %s will be set aside (kept, not deleted).", p.Name, dir)); err != nil {
				return err
			}
		}
		if _, err := state.Fresh(dir); err != nil {
			return failErr("rollout run: %v", err)
		}
		return nil
	case o.Resume && !unfinished:
		return usageErr("rollout run: nothing to resume: the last run of %q finished (%s at %s); --resume never starts a new rollout.\n"+
			"  see it:        rollout status %s%s\n"+
			"  run it again:  rollout run %s --fresh%s", p.Name, prior.Verdict, last.Finished.Local().Format(time.DateTime), o.Path, extra, o.Path, extra)
	case o.Resume:
		if last.API != "" && c.base != "" && last.API != c.base {
			return usageErr("rollout run: the run in %s talked to %s, not %s: resuming it elsewhere would lose or repeat its jobs.\n"+
				"  point rollout at the same API (CLANFORGE_URL or clanforge.url), or start over: rollout run %s --fresh%s", dir, last.API, c.base, o.Path, extra)
		}
		return nil
	case unfinished:
		why := "did not finish (it crashed or was killed)"
		switch {
		case prior.Finished && prior.Verdict == engine.VerdictInterrupted.String():
			why = "was interrupted"
		case prior.Finished:
			why = "ended with calls whose outcome is unknown"
		}
		return usageErr("rollout run: the last run of %q (journal %s) %s: remote jobs may still be running.\n"+
			"  continue it:   rollout run %s --resume%s\n"+
			"  see it:        rollout status %s%s\n"+
			"  start over:    rollout run %s --fresh%s", p.Name, dir, why, o.Path, extra, o.Path, extra, o.Path, extra)
	}
	what := "already shipped: running it again would send a second update, diff and version"
	if prior.Verdict != engine.VerdictSucceeded.String() {
		what = fmt.Sprintf("%s; running it again would start the whole rollout over", prior.Verdict)
	}
	return usageErr("rollout run: the last run of %q finished at %s and %s.\n"+
		"  see it:        rollout status %s%s\n"+
		"  run it again:  rollout run %s --fresh%s", p.Name, last.Finished.Local().Format(time.DateTime), what, o.Path, extra, o.Path, extra)
}

// recordUnfinished writes the jobs an interrupt left running into the
// journal; it reports whether the journal has them, and says on w what it
// could not write.
func (sd *stateDir) recordUnfinished(w io.Writer, sum *engine.Summary) bool {
	if len(sum.Unfinished) == 0 {
		return true
	}
	var jobs []state.JobRecord
	for _, u := range sum.Unfinished {
		jobs = append(jobs, state.JobRecord{Kind: u.Job.Kind, ID: u.Job.ID, State: u.Job.State, StateName: u.Job.StateName, Instance: u.Instance})
	}
	if err := sd.j.Unfinished(jobs); err != nil {
		printf(w, "rollout run: WARNING: could not record the unfinished jobs in the journal: %v\n", err)
		for _, u := range sum.Unfinished {
			printf(w, "  %s job %d (%s), %s\n", u.Job.Kind, u.Job.ID, u.Job.StateName, u.Instance)
		}
		return false
	}
	return true
}
