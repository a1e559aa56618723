package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/report"
	"github.com/rollout/rollout/state"
	"github.com/rollout/rollout/tui"
)

// WatchOptions are what `rollout watch` is asked to show.
type WatchOptions struct {
	Plan     string // the plan file or its name; "" : the only run in progress here
	Vars     map[string]string
	StateDir string
	// NoTUI prints plain lines instead of the live view.
	NoTUI bool
	// Poll is how often the run's event log is read (default 100ms).
	Poll time.Duration
}

func watchFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &WatchOptions{}
	vars := addVarFlag(fs)
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory of the run (default .rollout/<plan name>)")
	fs.BoolVar(&o.NoTUI, "no-tui", false, "print plain lines instead of the live view")
	return func(ctx context.Context, env *Env, args []string) error {
		name, err := atMostOnePlan("watch", "plan", args)
		if err != nil {
			return err
		}
		o.Plan, o.Vars = name, vars
		return Watch(ctx, env, *o)
	}
}

// Watch shows a run in progress from another terminal, read-only: it
// replays the run's event log (events.jsonl in its state directory, which
// the run appends to off its own goroutines) from the start, so that it
// catches up with what already happened, follows it until the run ends,
// and leaves the run's summary on the terminal. On a terminal it is the
// live view, whose a and x approve and abort through the run's control
// files as `rollout approve` and `rollout abort` do, and whose q leaves
// the view while the run goes on; otherwise it prints the plain lines a
// run prints. It ends with the run's verdict: 0 when the run succeeded,
// 1 otherwise.
func Watch(ctx context.Context, env *Env, o WatchOptions) error {
	loc, err := env.locate("watch", o.Plan, o.Vars, o.StateDir, locateOptions{preferHeld: true})
	if err != nil {
		return err
	}
	dir := loc.dir
	holder, held := state.Holder(dir)
	if !held {
		return notRunning("watch", dir)
	}
	fo := state.FollowOptions{PID: holder.PID, Poll: o.Poll, Alive: func() bool {
		h, ok := state.Holder(dir)
		return ok && (holder.PID == 0 || h.PID == holder.PID)
	}}
	planArg := o.Plan
	if planArg == "" {
		planArg = "--state-dir " + shellQuote(dir)
	} else {
		planArg = shellQuote(planArg)
		if o.StateDir != "" {
			planArg += " --state-dir " + shellQuote(o.StateDir)
		}
	}
	who := "the run"
	if holder.PID != 0 {
		who = fmt.Sprintf("the run (pid %d)", holder.PID)
	}
	var res state.FollowResult
	if !o.NoTUI && env.IsTerminal() {
		var detached bool
		var width int
		res, detached, width, err = env.watchLive(ctx, dir, planArg, fo)
		switch {
		case res.Finished:
			fmt.Fprint(env.Stdout, tui.RenderSummary(res.Summary, width, env.color(env.Stdout)))
		case detached:
			printf(env.Stdout, "left the view; %s goes on. Attach again with: rollout watch %s\n", who, planArg)
			return nil
		}
	} else {
		commands := func(w engine.WaitInfo) (string, string) {
			return fmt.Sprintf("rollout approve %s --step %s", planArg, shellQuote(w.Step)), fmt.Sprintf("rollout abort %s --reason TEXT", planArg)
		}
		rep := report.NewPlain(env.Stdout, report.WithCommands(commands))
		res, err = state.FollowEvents(ctx, dir, rep, fo)
		if err == nil && rep.Err() != nil {
			err = rep.Err()
		}
	}
	switch {
	case res.Finished:
		return watchVerdict(res.Summary, dir)
	case ctx.Err() != nil:
		return interruptedErr("rollout watch: interrupted; %s goes on", who)
	case errors.Is(err, state.ErrNoEventLog):
		return failErr("rollout watch: %s writes no event log to follow (a rollout of an older version); see it with: rollout status %s", who, planArg)
	case err != nil:
		return failErr("rollout watch: %v", err)
	}
	return failErr("rollout watch: %s stopped without finishing: it crashed or was killed.\n  see where it stands: rollout status %s", who, planArg)
}

// watchVerdict is the end of a watch: the run's verdict as its own exit
// status would have said it, except that an interrupted run is a failure
// here (it is the run that was interrupted, not the watcher).
func watchVerdict(s engine.Summary, dir string) error {
	switch {
	case s.Verdict.Success():
		return nil
	case s.Verdict == engine.VerdictInterrupted:
		return failErr("rollout watch: the run was interrupted; continue it with rollout run --resume (see: rollout status --state-dir %s)", dir)
	}
	return &RunError{Verdict: s.Verdict}
}

// watchLive shows the followed run in the live view, with a and x sending
// requests through the run's control files.
func (env *Env) watchLive(ctx context.Context, dir, planArg string, fo state.FollowOptions) (res state.FollowResult, detached bool, width int, err error) {
	send := func(req *state.ControlRequest) (string, error) {
		reply, err := sendRequest(ctx, "watch", dir, req, DefaultControlTimeout)
		if err != nil {
			return "", err
		}
		return replyErr(*reply)
	}
	// Someone at the terminal keeps the view of a run that ended until q,
	// as the run's own view does; the summary follows either way.
	ui := tui.New(tui.Options{PlanName: planArg, Out: env.Stdout, In: env.Stdin, NoColor: !env.color(env.Stdout), Watch: true,
		StayOpen: env.attended(), NoInput: !env.attended(),
		Approve: func(id string) (string, error) {
			return send(&state.ControlRequest{Step: id, By: state.Actor(), At: time.Now(), Reason: "approved in rollout watch"})
		},
		Abort: func(reason string) (string, error) {
			if reason == "" {
				reason = "aborted in rollout watch"
			}
			return send(&state.ControlRequest{Abort: true, By: state.Actor(), At: time.Now(), Reason: reason})
		},
	})
	uiCtx, stopUI := context.WithCancel(ctx)
	defer stopUI()
	type followed struct {
		res state.FollowResult
		err error
	}
	done := make(chan followed, 1)
	go func() {
		r, err := state.FollowEvents(uiCtx, dir, ui, fo)
		if !r.Finished {
			// The run is gone (or the log unreadable): the view has
			// nothing more to show.
			stopUI()
		}
		done <- followed{r, err}
	}()
	uiErr := ui.Run(uiCtx)
	detached = errors.Is(uiErr, tui.ErrDetached)
	stopUI()
	f := <-done
	if f.err != nil && errors.Is(f.err, context.Canceled) {
		f.err = nil
	}
	return f.res, detached && !f.res.Finished, ui.Width(), f.err
}
