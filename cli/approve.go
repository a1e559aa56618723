package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// ControlOptions are what `rollout approve` and `rollout abort` ask of a
// run in progress.
type ControlOptions struct {
	Plan     string // the plan file or its name
	Vars     map[string]string
	StateDir string
	// Abort aborts the rollout; otherwise the request approves Step ("":
	// the only approval waiting).
	Abort  bool
	Step   string
	Reason string
	// Timeout bounds the wait for the run's answer.
	Timeout time.Duration
}

// DefaultControlTimeout is how long approve and abort wait for the run's
// answer. A run answers within a fraction of a second; this only bounds a
// run that stopped answering without letting its directory go.
const DefaultControlTimeout = 30 * time.Second

func approveFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	return controlFlags(fs, "approve", &ControlOptions{})
}

func abortFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	return controlFlags(fs, "abort", &ControlOptions{Abort: true})
}

// controlFlags are the flags of approve and abort, which differ only in
// what they ask of the run: abort names no step.
func controlFlags(fs *flag.FlagSet, cmd string, o *ControlOptions) func(context.Context, *Env, []string) error {
	vars := addVarFlag(fs)
	if !o.Abort {
		fs.StringVar(&o.Step, "step", "", "the approve step, or the install step whose pause waits (default: the only approval waiting)")
	}
	fs.StringVar(&o.Reason, "reason", "", "why, for the journal and the events")
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory of the run (default .rollout/<plan name>)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultControlTimeout, "give up waiting for the run's answer after this long")
	return func(ctx context.Context, env *Env, args []string) error {
		path, err := onePlan(cmd, args)
		if err != nil {
			return err
		}
		o.Plan, o.Vars = path, vars
		return Control(ctx, env, *o)
	}
}

// replyPoll is how often approve and abort look for the run's answer, and
// holderPoll how often they check that the run still holds its directory.
const (
	replyPoll  = 20 * time.Millisecond
	holderPoll = 500 * time.Millisecond
)

// Control approves a wait of a run in progress, or aborts it, from any
// terminal on the machine: it leaves a request in the run's state
// directory and prints the run's answer ("approved install@game-b after
// wave 1 as alice@laptop"). A request nobody can answer (no run holds the
// directory, or the run stops before answering) is taken back and said
// so; one the run refuses (nothing waits, another step waits) fails with
// the run's reason, which says what waits instead.
func Control(ctx context.Context, env *Env, o ControlOptions) error {
	cmd := "approve"
	if o.Abort {
		cmd = "abort"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultControlTimeout
	}
	loc, err := env.locate(cmd, o.Plan, o.Vars, o.StateDir, locateOptions{preferHeld: true})
	if err != nil {
		return err
	}
	dir := loc.dir
	if _, held := state.Holder(dir); !held {
		return notRunning(cmd, dir)
	}
	req := &state.ControlRequest{Abort: o.Abort, Step: o.Step, Reason: o.Reason, By: state.Actor(), At: time.Now()}
	reply, err := sendRequest(ctx, cmd, dir, req, o.Timeout)
	if err != nil {
		return err
	}
	switch {
	case reply.OK:
		printf(env.Stdout, "%s\n", reply.Message)
		return nil
	case reply.Usage:
		return usageErr("rollout %s: %s", cmd, reply.Message)
	}
	return failErr("rollout %s: %s", cmd, reply.Message)
}

// sendRequest leaves req for the run that holds dir and waits for its
// answer. The request names the approvals the run published as waiting,
// so that a run that resumes after a crash applies it only to one of
// them.
func sendRequest(ctx context.Context, cmd, dir string, req *state.ControlRequest, timeout time.Duration) (*state.ControlReply, error) {
	holder, held := state.Holder(dir)
	if !held {
		return nil, notRunning(cmd, dir)
	}
	if w, err := state.ReadWaiting(dir); err == nil && (holder.PID == 0 || w.PID == holder.PID) {
		for _, wt := range w.Waits {
			if wt.Kind == string(engine.WaitApproval) {
				req.Seen = append(req.Seen, wt.ID)
			}
		}
	}
	if err := state.SubmitRequest(dir, req); err != nil {
		return nil, failErr("rollout %s: %v", cmd, err)
	}
	return awaitReply(ctx, cmd, dir, req.ID, holder, timeout)
}

// awaitReply waits for the run's answer to request id. It never waits for
// a run that let the directory go, and never longer than timeout; then it
// takes the request back when the run had not taken it yet.
func awaitReply(ctx context.Context, cmd, dir, id string, holder state.LockInfo, timeout time.Duration) (*state.ControlReply, error) {
	deadline := time.Now().Add(timeout)
	nextCheck := time.Now().Add(holderPoll)
	who := "the run"
	if holder.PID != 0 {
		who = fmt.Sprintf("the run (pid %d)", holder.PID)
	}
	for {
		if r, ok, err := state.ReadReply(dir, id); err != nil {
			return nil, failErr("rollout %s: %v", cmd, err)
		} else if ok {
			return r, nil
		}
		var why string
		switch {
		case ctx.Err() != nil:
			why = "interrupted"
		case time.Now().After(deadline):
			why = fmt.Sprintf("%s did not answer within %s (--timeout)", who, timeout)
		case time.Now().After(nextCheck):
			nextCheck = time.Now().Add(holderPoll)
			if h, held := state.Holder(dir); !held || (holder.PID != 0 && h.PID != holder.PID) {
				why = fmt.Sprintf("%s stopped before it answered", who)
			}
		}
		if why == "" {
			select {
			case <-ctx.Done():
			case <-time.After(replyPoll):
			}
			continue
		}
		withdrawn, err := state.WithdrawRequest(dir, id)
		if err != nil {
			return nil, failErr("rollout %s: %s, and the request could not be taken back: %v", cmd, why, err)
		}
		if !withdrawn {
			// The run took it: its answer may be on the way.
			time.Sleep(holderPoll)
			if r, ok, _ := state.ReadReply(dir, id); ok {
				return r, nil
			}
		}
		if ctx.Err() != nil {
			if withdrawn {
				return nil, interruptedErr("rollout %s: interrupted; the request was taken back, nothing was applied", cmd)
			}
			return nil, interruptedErr("rollout %s: interrupted after the run took the request; see whether it applied it: rollout status --state-dir %s", cmd, dir)
		}
		if withdrawn {
			return nil, failErr("rollout %s: %s; the request was taken back, nothing was applied", cmd, why)
		}
		return nil, failErr("rollout %s: %s; it had taken the request, and the run that resumes it applies it if it still matches.\n"+
			"  see where it stands: rollout status --state-dir %s", cmd, why, dir)
	}
}

// notRunning says that no run holds dir, what its last run was doing, and
// what to do.
func notRunning(cmd, dir string) error {
	what := "nothing waits for an approval"
	switch cmd {
	case "abort":
		what = "nothing to abort"
	case "watch":
		what = "nothing to watch"
	}
	sum, err := state.Replay(dir)
	if err != nil || len(sum.Runs) == 0 {
		return failErr("rollout %s: no rollout is running in %s: %s (no run of this plan is recorded there)", cmd, dir, what)
	}
	last := sum.Runs[len(sum.Runs)-1]
	if sum.Finished {
		msg := fmt.Sprintf("rollout %s: no rollout is running in %s: %s. Its last run ended %s at %s.", cmd, dir, what,
			sum.Verdict, last.Finished.Local().Format(time.DateTime))
		if sum.Verdict == engine.VerdictInterrupted.String() {
			msg += "\n  continue it with: " + continueCommand(sum, dir) + "; it asks again for what was not approved"
		}
		return failErr("%s", msg)
	}
	var waiting []string
	for _, id := range sortedKeys(sum.Waits) {
		if w := sum.Waits[id]; w.Decision == "" {
			waiting = append(waiting, id)
		}
	}
	msg := fmt.Sprintf("rollout %s: no rollout is running in %s: its last run (pid %d) stopped without finishing (crashed or killed)", cmd, dir, last.PID)
	if len(waiting) > 0 {
		msg += " while it waited for " + strings.Join(waiting, ", ")
	}
	return failErr("%s.\n  continue it with: %s; it waits again, and approvals already given are not asked again", msg, continueCommand(sum, dir))
}

// located is the state directory a command acts on, and the plan when it
// was named by its file.
type located struct {
	dir string
	p   *plan.Plan // nil when the plan was named by its name or not at all
}

type locateOptions struct {
	// sim looks only at the simulated runs' directory.
	sim bool
	// preferHeld picks, among candidates, the one a live run holds.
	preferHeld bool
}

// locate finds the state directory of a plan named by its file or by its
// name (as in .rollout/<name>), or, with neither, the only one under
// .rollout/ (with preferHeld: the only one a run holds now). --state-dir
// wins over all of it. Of a plan's two directories (its real runs' and
// its simulated runs'), the one a live run holds wins with preferHeld,
// then the real one when it has a journal, then the simulated one.
func (env *Env) locate(cmd, planArg string, vars map[string]string, stateDir string, o locateOptions) (*located, error) {
	loc := &located{dir: stateDir}
	name := ""
	if planArg != "" {
		if _, err := os.Stat(planArg); err != nil && !strings.ContainsAny(planArg, "/\\") {
			// Not a file: a plan's name, as the state directory has it.
			name = planArg
		} else {
			p, err := env.loadPlan(planArg, vars)
			if err != nil {
				return nil, err
			}
			loc.p, name = p, p.Name
		}
	}
	if loc.dir != "" {
		return loc, nil
	}
	if name != "" {
		p := &plan.Plan{Name: name}
		cands := []string{defaultStateDir(p, false), defaultStateDir(p, true)}
		if o.sim {
			cands = cands[1:]
		}
		loc.dir = cands[0]
		if o.preferHeld {
			for _, d := range cands {
				if _, held := state.Holder(d); held {
					loc.dir = d
					return loc, nil
				}
			}
		}
		for _, d := range cands {
			if dirExists(d) {
				loc.dir = d
				return loc, nil
			}
		}
		return loc, nil
	}
	found, _ := filepath.Glob(filepath.Join(".rollout", "*", state.JournalName))
	var dirs []string
	for _, f := range found {
		dirs = append(dirs, filepath.Dir(f))
	}
	if o.preferHeld && len(dirs) > 1 {
		var held []string
		for _, d := range dirs {
			if _, ok := state.Holder(d); ok {
				held = append(held, d)
			}
		}
		if len(held) == 1 {
			dirs = held
		}
	}
	switch len(dirs) {
	case 0:
		return nil, failErr("rollout %s: no journal under .rollout/: name the plan (its file or its name) or --state-dir", cmd)
	case 1:
		loc.dir = dirs[0]
		return loc, nil
	}
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(d))
	}
	return nil, usageErr("rollout %s: several plans have run here: %s; name one (rollout %s NAME) or give --state-dir", cmd, strings.Join(names, ", "), cmd)
}
