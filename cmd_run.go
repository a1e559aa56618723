package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/report"
	"github.com/rollout/rollout/state"
	"github.com/rollout/rollout/steps"
	"github.com/rollout/rollout/tui"
)

type runFlags struct {
	vars        varFlags
	sim         bool
	noTUI       bool
	json        bool
	resume      bool
	fresh       bool
	yes         bool
	stateDir    string
	speed       float64
	scenario    string
	concurrency int
	pollMin     time.Duration
	pollMax     time.Duration
}

func cmdRun(ctx context.Context, a *app, args []string) error {
	f := runFlags{vars: varFlags{}}
	fs := newFlags("run")
	fs.Var(f.vars, "var", "override a plan variable (name=value), repeatable")
	fs.BoolVar(&f.sim, "sim", false, "run against the built-in Clanforge simulator")
	fs.BoolVar(&f.noTUI, "no-tui", false, "print plain lines instead of the live view")
	fs.BoolVar(&f.json, "json", false, "print one JSON event per line")
	fs.BoolVar(&f.resume, "resume", false, "continue an unfinished run from its journal")
	fs.BoolVar(&f.fresh, "fresh", false, "start over, setting an unfinished journal aside")
	fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	fs.StringVar(&f.stateDir, "state-dir", "", "state directory (default .rollout/<plan name>)")
	fs.Float64Var(&f.speed, "speed", 0, "simulator speed factor with --sim (default 1)")
	fs.StringVar(&f.scenario, "scenario", "", "simulator scenario file with --sim")
	fs.IntVar(&f.concurrency, "concurrency", 0, "override the plan's concurrency")
	fs.DurationVar(&f.pollMin, "poll-min", 0, "shortest interval between two status reads of one job (default 2s, scaled by --speed)")
	fs.DurationVar(&f.pollMax, "poll-max", 0, "longest interval between two status reads of a waiting job (default 30s, scaled by --speed)")
	pos, err := parseArgs(fs, "run", args)
	if err != nil {
		return err
	}
	path, err := onePlan("run", pos)
	if err != nil {
		return err
	}
	if f.resume && f.fresh {
		return usageErr("rollout run: --resume and --fresh exclude each other")
	}
	if !f.sim && (f.speed != 0 || f.scenario != "") {
		return usageErr("rollout run: --speed and --scenario need --sim")
	}
	if f.speed < 0 || f.concurrency < 0 || f.pollMin < 0 || f.pollMax < 0 {
		return usageErr("rollout run: --speed, --concurrency, --poll-min and --poll-max must not be negative")
	}
	p, err := a.loadPlan(path, f.vars)
	if err != nil {
		return err
	}
	// Credentials and the simulator come first: a run that cannot reach
	// the API leaves no trace in the state directory.
	conn, err := a.connect(ctx, p, connectOptions{sim: f.sim, speed: f.speed, scenario: f.scenario})
	if err != nil {
		return err
	}
	defer conn.Close()
	dir := f.stateDir
	if dir == "" {
		dir = state.DefaultDir(p.Name)
	}
	if err := a.prepareStateDir(dir, path, p, &f); err != nil {
		return err
	}
	j, err := state.Open(dir, p.Name, p.Hash)
	if err != nil {
		var pc *state.PlanChangedError
		if errors.As(err, &pc) {
			return usageErr("rollout run: %v%s", err, changedParts(dir, p))
		}
		return failErr("rollout run: %v", err)
	}
	defer j.Close()
	if li, ok := j.StaleLock(); ok {
		fmt.Fprintf(a.stderr, "rollout run: took over the lock of %s left by pid %d (started %s), which is no longer running\n",
			dir, li.PID, li.Started.Format(time.RFC3339))
	}
	if err := saveFingerprint(dir, p); err != nil {
		return failErr("rollout run: %v", err)
	}

	// The pre-flight only reads. A lock held by anyone but this rollout
	// stops the run before anything changes.
	rep, err := engine.Preflight(ctx, conn.client, p, ownLock(j))
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitInterrupted, msg: "interrupted during the pre-flight check; nothing was changed"}
		}
		return failErr("rollout run: pre-flight: %v\nnothing was changed", err)
	}
	if err := j.Preflight(facts(rep)); err != nil {
		return failErr("rollout run: %v", err)
	}
	if !rep.OK() {
		return failErr("rollout run: %v\nnothing was changed", &engine.PreflightError{Report: rep})
	}

	policy := steps.DefaultPollPolicy()
	if f.sim {
		speed := f.speed
		if speed <= 0 {
			speed = 1
		}
		policy = scalePolicy(policy, speed)
	}
	if f.pollMin > 0 {
		policy.Min = f.pollMin
	}
	if f.pollMax > 0 {
		policy.Max = f.pollMax
	}
	if policy.Max < policy.Min {
		return usageErr("rollout run: --poll-max %s is shorter than --poll-min %s", policy.Max, policy.Min)
	}
	watcher := steps.NewInstallWatcher(conn.client, policy)
	watcher.SetMachineNames(steps.MachineIDs(p))
	env := &steps.Env{
		Client:   conn.client,
		Installs: watcher,
		Journal:  j,
		Poll:     policy,
		Now:      time.Now,
		Fleet:    steps.FleetOf(p),
	}
	defer env.Installs.Close()
	if err := j.RunStart(f.resume); err != nil {
		return failErr("rollout run: %v", err)
	}

	// The run has its own context so that the live view's confirmed quit
	// cancels it exactly like an interrupt.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	journal := &journalAdapter{j: j}
	opts := engine.Options{Concurrency: f.concurrency, Env: env, Journal: journal, Resumed: f.resume}

	var sum *engine.Summary
	// outErr reports a reporter that could not write (a closed pipe, a
	// full disk): the rollout goes on, but it must not end as a success
	// that nobody saw.
	var outErr func() error
	useTUI := !f.json && !f.noTUI && a.isTerminal()
	switch {
	case useTUI:
		sum, err = a.runWithTUI(ctx, runCtx, cancelRun, p, opts)
	case f.json:
		rep := report.NewJSON(a.stdout)
		opts.Observer, outErr = rep, rep.Err
		sum, err = engine.New(p, opts).Run(runCtx)
	default:
		rep := report.NewPlain(a.stdout)
		opts.Observer, outErr = rep, rep.Err
		sum, err = engine.New(p, opts).Run(runCtx)
	}
	if err != nil {
		return failErr("rollout run: %v", err)
	}
	code := exitStatus(sum)
	if outErr != nil {
		if werr := outErr(); werr != nil {
			fmt.Fprintf(a.stderr, "rollout run: writing the run's output failed: %v\n", werr)
			if code == exitOK {
				code = exitFailed
			}
		}
	}
	journalOK := true
	if len(sum.Unfinished) > 0 {
		var jobs []state.JobRecord
		for _, u := range sum.Unfinished {
			jobs = append(jobs, state.JobRecord{Kind: u.Job.Kind, ID: u.Job.ID, State: u.Job.State, StateName: u.Job.StateName, Instance: u.Instance})
		}
		if err := j.Unfinished(jobs); err != nil {
			journalOK = false
			fmt.Fprintf(a.stderr, "rollout run: WARNING: could not record the unfinished jobs in the journal: %v\n", err)
			for _, u := range sum.Unfinished {
				fmt.Fprintf(a.stderr, "  %s job %d (%s), %s\n", u.Job.Kind, u.Job.ID, u.Job.StateName, u.Instance)
			}
		}
	}
	if jerr := journal.err(); jerr != nil {
		journalOK = false
		fmt.Fprintf(a.stderr, "rollout run: WARNING: the journal in %s is incomplete (%v): a resume may redo finished steps\n", dir, jerr)
		if code == exitOK {
			code = exitFailed
		}
	}
	if err := j.Finish(code); err != nil {
		return failErr("rollout run: %v", err)
	}
	if code == exitOK {
		return nil
	}
	msg := ""
	if sum.Interrupted && journalOK {
		extra := ""
		if f.stateDir != "" {
			extra = " --state-dir " + f.stateDir
		}
		msg = fmt.Sprintf("interrupted: the journal in %s records every unfinished job.\ncontinue with: rollout run %s --resume%s", dir, path, extra)
	}
	return &exitError{code: code, msg: msg}
}

// exitStatus maps a run's summary to plan format v1's exit statuses.
func exitStatus(s *engine.Summary) int {
	switch {
	case s.Interrupted:
		return exitInterrupted
	case s.Aborted || len(s.Failures) > 0 || s.Counts[engine.Failed] > 0 || s.Counts[engine.Skipped] > 0 || s.Counts[engine.Cancelled] > 0:
		return exitFailed
	}
	return exitOK
}

// runWithTUI runs the engine while the live view shows it. The view stays
// up until the engine finished, then main prints the summary so that it
// stays on the terminal.
func (a *app) runWithTUI(ctx, runCtx context.Context, cancelRun context.CancelFunc, p *plan.Plan, opts engine.Options) (*engine.Summary, error) {
	ui := tui.New(tui.Options{PlanName: p.Name, Out: a.stdout, In: a.stdin, NoColor: !a.color(a.stdout), Cancel: cancelRun})
	opts.Observer = ui
	type result struct {
		sum *engine.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := engine.New(p, opts).Run(runCtx)
		done <- result{s, err}
	}()
	uiErr := ui.Run(ctx)
	if uiErr != nil && !errors.Is(uiErr, tui.ErrCancelled) && !errors.Is(uiErr, tui.ErrForceQuit) && ctx.Err() == nil {
		// The live view died (a terminal error): never let the rollout
		// go on blind. Stop it as an interrupt would.
		fmt.Fprintf(a.stderr, "live view failed (%v): stopping the rollout as an interrupt would\n", uiErr)
		cancelRun()
	}
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	fmt.Fprint(a.stdout, tui.RenderSummary(*r.sum, ui.Width(), a.color(a.stdout)))
	return r.sum, nil
}

// prepareStateDir refuses to silently overwrite or mix runs: an unfinished
// journal needs --resume or --fresh, and a finished one is set aside so the
// new run starts clean.
func (a *app) prepareStateDir(dir, path string, p *plan.Plan, f *runFlags) error {
	prior, err := state.Replay(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return failErr("rollout run: reading the journal in %s: %v", dir, err)
	}
	exists := prior != nil && len(prior.Runs) > 0
	// An interrupted run finished its journal but left remote jobs
	// running: it is resumed like a crashed one, never silently dropped.
	unfinished := exists && (!prior.Finished || prior.ExitCode == exitInterrupted)
	switch {
	case f.fresh && exists:
		if !f.yes {
			if err := a.confirm(fmt.Sprintf("Start %q over? The journal in %s will be set aside (kept, not deleted).", p.Name, dir)); err != nil {
				return err
			}
		}
		if _, err := state.Fresh(dir); err != nil {
			return failErr("rollout run: %v", err)
		}
	case unfinished && !f.resume:
		extra := ""
		if f.stateDir != "" {
			extra = " --state-dir " + f.stateDir
		}
		return usageErr("rollout run: the last run of %q (journal %s) did not finish: remote jobs may still be running.\n"+
			"  continue it:   rollout run %s --resume%s\n"+
			"  see it:        rollout status %s%s\n"+
			"  start over:    rollout run %s --fresh%s", p.Name, dir, path, extra, path, extra, path, extra)
	case f.resume && !unfinished:
		if exists {
			fmt.Fprintf(a.stderr, "rollout run: the last run of %q finished; nothing to resume, starting a new run\n", p.Name)
		}
		f.resume = false
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

// confirm asks a yes/no question on the terminal; without a terminal it
// refuses, so that scripts must say --yes.
func (a *app) confirm(question string) error {
	if f, ok := a.stdin.(*os.File); !ok || !isTerminalFile(f) {
		return usageErr("%s\nrefusing without a terminal to confirm on: add --yes", question)
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return failErr("no answer: %v", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return failErr("cancelled; nothing was changed")
}

func facts(r *engine.PreflightReport) []state.Fact {
	var out []state.Fact
	for _, img := range r.Images {
		if img.LockKind != "" {
			detail := "foreign lock"
			if img.Own {
				detail = "lock held by this rollout"
			}
			out = append(out, state.Fact{Kind: img.LockKind + "-lock", Image: img.Name, JobID: img.LockID, Detail: detail})
		}
	}
	return out
}

// scalePolicy shortens polling for a faster simulator.
func scalePolicy(p steps.PollPolicy, speed float64) steps.PollPolicy {
	if speed <= 1 {
		return p
	}
	p.Min = max(time.Duration(float64(p.Min)/speed), 20*time.Millisecond)
	p.Max = max(time.Duration(float64(p.Max)/speed), 100*time.Millisecond)
	return p
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
	if err := a.j.Outcome(id, string(r.Outcome), r.Err, job, out); err != nil {
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

// ownLock tells the pre-flight which lock holders this rollout created: a job
// the journal saw created, or, for a create whose answer never arrived (the
// process died between the intent and its result), the lock of that kind on
// that image. The first run's pre-flight proved that no foreign lock existed
// then, and the engine serializes updates and diffs per image, so such a
// lock can only be the lost create's job; the step settles it the same way.
func ownLock(j *state.Journal) func(img *plan.Image, kind string, id int64) bool {
	pending := map[string]bool{}
	if sum := j.Summary(); sum != nil {
		for _, in := range sum.PendingIntents() {
			k := ""
			switch {
			case strings.HasSuffix(in.Endpoint, "imagediff/create"):
				k = "diff"
			case strings.HasSuffix(in.Endpoint, "imageupdate/create"):
				k = "update"
			default:
				continue
			}
			pending[k+"/"+in.Params["imageid"]] = true
		}
	}
	return func(img *plan.Image, kind string, id int64) bool {
		return j.Ours(kind, id) || pending[fmt.Sprintf("%s/%d", kind, img.ID)]
	}
}
