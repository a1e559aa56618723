package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/notify"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/report"
	"github.com/rollout/rollout/state"
	"github.com/rollout/rollout/steps"
	"github.com/rollout/rollout/tui"
)

// RunOptions are what `rollout run` is asked to do.
type RunOptions struct {
	Path   string
	Vars   map[string]string
	Sim    bool
	NoTUI  bool
	JSON   bool
	Resume bool
	Fresh  bool
	Yes    bool
	// AutoApprove approves every approval as it comes (unattended runs);
	// each is recorded as approved by --auto-approve.
	AutoApprove bool
	StateDir    string // "" : the plan's default
	Speed       float64
	Scenario    string
	Concurrency int
	PollMin     time.Duration
	PollMax     time.Duration
	// PreflightTimeout bounds the read-only checks before anything
	// changes; 0 means the default of a minute.
	PreflightTimeout time.Duration
	// RateLimit caps API requests per second; 0: the default (10 against
	// the API, none against the in-process simulator).
	RateLimit float64
	// Resend and AssumeSent name update instances whose create an earlier
	// run sent without recording its answer, and what a person decided
	// after looking: send it again, or take it as made (--resume only).
	Resend     []string
	AssumeSent []string
	// set names the flags given on the command line, so that an explicit
	// zero can be told from an absent flag.
	set map[string]bool
}

// DefaultPreflightTimeout bounds the pre-flight when no flag says otherwise:
// an API that does not answer within it is reported, and nothing changes.
const DefaultPreflightTimeout = time.Minute

func runFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &RunOptions{}
	vars := addVarFlag(fs)
	fs.BoolVar(&o.Sim, "sim", false, "run against the built-in Clanforge simulator")
	fs.BoolVar(&o.NoTUI, "no-tui", false, "print plain lines instead of the live view")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON event per line")
	fs.BoolVar(&o.Resume, "resume", false, "continue an unfinished or interrupted run from its journal")
	fs.BoolVar(&o.Fresh, "fresh", false, "start over, setting the old journal aside (kept, not deleted)")
	fs.BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&o.AutoApprove, "auto-approve", false, "approve every approval as it comes, for unattended runs (recorded as such; bake times still pass)")
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory (default .rollout/<plan name>, .rollout/<plan name>.sim with --sim)")
	fs.Float64Var(&o.Speed, "speed", 0, "simulator speed factor with --sim (default 1); also shortens the plan's bake times and approval timeouts")
	fs.StringVar(&o.Scenario, "scenario", "", "simulator scenario file with --sim")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "override the plan's concurrency (at least 1)")
	fs.DurationVar(&o.PollMin, "poll-min", 0, "shortest interval between two status reads of one job; reads are aimed at each job's end (default 100ms, scaled by --speed)")
	fs.DurationVar(&o.PollMax, "poll-max", 0, "longest interval between two status reads of a waiting job (default 30s, scaled by --speed)")
	fs.DurationVar(&o.PreflightTimeout, "preflight-timeout", DefaultPreflightTimeout, "give up the read-only pre-flight checks after this long")
	fs.Func("resend", "with --resume: send again the update of this instance (e.g. update@buildbox-1/game) that an earlier run sent without recording its answer, after checking it was not made (repeatable)", func(v string) error {
		o.Resend = append(o.Resend, v)
		return nil
	})
	fs.Func("assume-sent", "with --resume: take as made the update of this instance that an earlier run sent without recording its answer, after checking the build is there (repeatable)", func(v string) error {
		o.AssumeSent = append(o.AssumeSent, v)
		return nil
	})
	fs.Float64Var(&o.RateLimit, "rate-limit", 0, "most API requests per second (default 10 against the API; no limit against the built-in simulator, which is not a shared service)")
	return func(ctx context.Context, env *Env, args []string) error {
		path, err := onePlan("run", args)
		if err != nil {
			return err
		}
		o.Path, o.Vars = path, vars
		o.set = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
		return Run(ctx, env, *o)
	}
}

// check refuses contradictory or meaningless options before anything is
// loaded or touched.
func (o *RunOptions) check() error {
	switch {
	case o.Resume && o.Fresh:
		return usageErr("rollout run: --resume and --fresh exclude each other")
	case !o.Sim && (o.set["speed"] || o.Speed != 0 || o.Scenario != ""):
		return usageErr("rollout run: --speed and --scenario need --sim")
	case o.Sim && o.Resume:
		return usageErr("rollout run: a --sim run cannot be resumed: its simulator, and every job it knew, ended with the process.\n"+
			"  start over:  rollout run %s --sim (the old journal is set aside)", o.Path)
	case o.set["speed"] && o.Speed <= 0 || o.Speed < 0:
		return usageErr("rollout run: --speed must be greater than 0 (1 is real time, 10 ten times faster)")
	case o.set["concurrency"] && o.Concurrency <= 0 || o.Concurrency < 0:
		return usageErr("rollout run: --concurrency must be at least 1")
	case o.PollMin < 0 || o.PollMax < 0 || (o.set["poll-min"] && o.PollMin == 0) || (o.set["poll-max"] && o.PollMax == 0):
		return usageErr("rollout run: --poll-min and --poll-max must be positive durations, e.g. 500ms or 2s")
	case (len(o.Resend) > 0 || len(o.AssumeSent) > 0) && !o.Resume:
		return usageErr("rollout run: --resend and --assume-sent settle an earlier run's unanswered update: they go with --resume")
	case o.RateLimit < 0 || (o.set["rate-limit"] && o.RateLimit == 0):
		return usageErr("rollout run: --rate-limit must be a positive number of requests per second")
	case o.PreflightTimeout < 0 || (o.set["preflight-timeout"] && o.PreflightTimeout == 0):
		return usageErr("rollout run: --preflight-timeout must be a positive duration, e.g. 30s or 2m")
	}
	return nil
}

// Run rolls a plan out: it loads and checks the plan, connects, applies the
// state directory's rules (resume, start over, refuse), makes the read-only
// pre-flight, runs the engine with the live view or a reporter, and records
// how the run ended. A run whose verdict is not a success returns a
// *RunError.
func Run(ctx context.Context, env *Env, o RunOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	if o.PreflightTimeout == 0 {
		o.PreflightTimeout = DefaultPreflightTimeout
	}
	p, err := env.loadPlan(o.Path, o.Vars)
	if err != nil {
		return err
	}
	policy, err := o.pollPolicy()
	if err != nil {
		return err
	}
	// Credentials and the simulator come first: a run that cannot reach
	// the API leaves no trace in the state directory.
	conn, err := env.connect(ctx, p, connectOptions{sim: o.Sim, speed: o.Speed, scenario: o.Scenario, rateLimit: o.RateLimit})
	if err != nil {
		return err
	}
	defer conn.Close()
	sd, err := env.openState(p, &o, conn)
	if err != nil {
		return err
	}
	defer sd.close()

	if err := env.preflight(ctx, conn, p, sd.j, o.PreflightTimeout); err != nil {
		return err
	}

	resend, assumed, err := updateDecisions(p, o)
	if err != nil {
		return err
	}
	watcher := steps.NewInstallWatcher(conn.client, policy)
	watcher.SetMachineNames(steps.MachineIDs(p))
	defer watcher.Close()
	senv := &steps.Env{
		Client:   conn.client,
		Installs: watcher,
		Journal:  sd.j,
		Poll:     policy,
		Now:      time.Now,
		Fleet:    steps.FleetOf(p),

		Resend:     resend,
		AssumeSent: assumed,
	}
	var overrides []string
	for _, id := range o.Resend {
		overrides = append(overrides, "resend "+id)
	}
	for _, id := range o.AssumeSent {
		overrides = append(overrides, "assume-sent "+id)
	}
	if err := sd.j.Start(state.RunStartInfo{Resumed: o.Resume, API: conn.base, Sim: o.Sim, PlanFile: o.Path, Overrides: overrides}); err != nil {
		return failErr("rollout run: %v", err)
	}
	opts := engine.Options{
		Concurrency: o.Concurrency,
		Executor:    steps.Executor{Env: senv},
		Journal:     sd.rec,
		Requests:    conn.client.Requests,
		Resumed:     o.Resume,
		AutoApprove: o.AutoApprove,
	}
	if o.Sim {
		opts.TimeScale = o.Speed
	}
	return env.execute(ctx, conn, p, o, sd, opts)
}

// updateDecisions checks that --resend and --assume-sent name update
// instances of the plan, each once, and returns them as sets.
func updateDecisions(p *plan.Plan, o RunOptions) (resend, assumed map[string]bool, err error) {
	var updates []string
	for _, in := range p.Instances {
		if in.Step.Type == plan.TypeUpdate {
			updates = append(updates, in.ID)
		}
	}
	set := func(flag string, ids []string) (map[string]bool, error) {
		m := map[string]bool{}
		for _, id := range ids {
			if !slices.Contains(updates, id) {
				msg := fmt.Sprintf("rollout run: --%s %s: no update instance of the plan is called that", flag, id)
				if h := plan.DidYouMean(id, updates); h != "" {
					msg += "; " + h
				}
				return nil, usageErr("%s", msg)
			}
			m[id] = true
		}
		return m, nil
	}
	if resend, err = set("resend", o.Resend); err != nil {
		return nil, nil, err
	}
	if assumed, err = set("assume-sent", o.AssumeSent); err != nil {
		return nil, nil, err
	}
	for id := range resend {
		if assumed[id] {
			return nil, nil, usageErr("rollout run: %s is given both --resend and --assume-sent", id)
		}
	}
	return resend, assumed, nil
}

// pollPolicy is the default policy, scaled for a faster simulator and
// overridden by the flags.
func (o *RunOptions) pollPolicy() (steps.PollPolicy, error) {
	policy := steps.DefaultPollPolicy()
	if o.Sim {
		policy = scalePolicy(policy, max(o.Speed, 1))
	}
	if o.PollMin > 0 {
		policy.Min = o.PollMin
	}
	if o.PollMax > 0 {
		policy.Max = o.PollMax
	}
	if policy.Max < policy.Min {
		return policy, usageErr("rollout run: --poll-max %s is shorter than --poll-min %s", policy.Max, policy.Min)
	}
	return policy, nil
}

// scalePolicy shortens polling for a faster simulator.
func scalePolicy(p steps.PollPolicy, speed float64) steps.PollPolicy {
	if speed <= 1 {
		return p
	}
	p.Min = max(time.Duration(float64(p.Min)/speed), 20*time.Millisecond)
	p.Max = max(time.Duration(float64(p.Max)/speed), 100*time.Millisecond)
	p.MaxLate = max(time.Duration(float64(p.MaxLate)/speed), p.Min)
	return p
}

// preflight makes the read-only checks, bounded by timeout. A lock held by
// anyone but this rollout stops the run before anything changes.
func (env *Env) preflight(ctx context.Context, conn *conn, p *plan.Plan, j *state.Journal, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer env.sayPreflight(conn, timeout)()
	rep, err := steps.Preflight(pctx, conn.client, p, j.OwnsLock)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return interruptedErr("interrupted during the pre-flight check; nothing was changed")
		case errors.Is(err, context.DeadlineExceeded):
			return failErr("rollout run: pre-flight: %s did not answer within %s (--preflight-timeout): %v\nnothing was changed", conn.display, timeout, err)
		}
		return failErr("rollout run: pre-flight: %v\nnothing was changed", err)
	}
	if err := j.Preflight(facts(rep)); err != nil {
		return failErr("rollout run: %v", err)
	}
	if !rep.OK() {
		return failErr("rollout run: %v\nnothing was changed", &steps.PreflightError{Report: rep})
	}
	return nil
}

// sayPreflight says, before the first request of the pre-flight, what it
// reads and for how long, and then every wait of the client as it happens,
// so that an API that does not answer is never a silent hang. The returned
// function stops the saying.
func (env *Env) sayPreflight(conn *conn, timeout time.Duration) func() {
	printf(env.Stderr, "rollout: pre-flight: reading %s (account %d), for at most %s\n", conn.display, conn.client.ASID(), timeout)
	conn.onWait(func(w clanforge.Wait) { printf(env.Stderr, "rollout: pre-flight: %s\n", w.String()) })
	return func() { conn.onWait(nil) }
}

func facts(r *steps.PreflightReport) []state.Fact {
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

// execute runs the engine with the live view on a terminal, JSON events
// with --json, and plain lines otherwise, and records how the run ended
// (finishRun), whose result it returns. The client's waits go to the
// engine's observer from the moment the engine exists.
//
// Beside the view or reporter, two more observers see every event: the
// controller, which takes approvals and aborts from the live view and from
// other terminals (control files in the state directory) and publishes
// what the run waits for; and the event log that `rollout watch` follows.
// Neither can stop the run: a control directory or event log that cannot
// be written is a warning.
func (env *Env) execute(ctx context.Context, c *conn, p *plan.Plan, o RunOptions, sd *stateDir, opts engine.Options) error {
	// The run has its own context so that the live view's confirmed quit
	// cancels it exactly like an interrupt.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	// Warnings wait while the live view owns the terminal: printed under
	// it they would tear its frame.
	hw := &heldWarnings{w: env.Stderr, holding: !o.JSON && !o.NoTUI && env.IsTerminal()}
	defer hw.release()
	warn := hw.warn
	commands := controlCommands(o)
	ctl, cerr := newController(sd.dir, p, opts.Journal, commands, warn)
	if cerr != nil {
		warn(fmt.Sprintf("approvals and aborts from other terminals are off: %v", cerr))
	}
	ui, view, outErr := env.runView(p, o, commands, ctl, cancelRun)
	observers := []engine.Observer{view}
	if ctl != nil {
		observers = append(observers, ctl)
		opts.Control = ctl.requests()
	}
	evlog, closeLog := openEventLog(sd.dir, warn)
	if evlog != nil {
		observers = append(observers, evlog)
		defer closeLog()
	}
	// The plan's webhooks hear the same events; they never hold the run
	// back, and what they could not deliver is a warning.
	n, drainNotify := startNotify(ctx, p, sd, o, commands, warn)
	if n != nil {
		observers = append(observers, n)
		defer drainNotify()
	}
	opts.Observer = engine.Fanout(observers...)
	eng := engine.New(p, opts)
	c.onWait(func(w clanforge.Wait) { eng.Notice(notice(w)) })
	defer c.onWait(nil)
	if ctl != nil {
		ctl.start()
	}
	// ended records how the run ended as soon as the engine is done, also
	// while a finished live view stays open: the journal has the verdict
	// and the state directory is free for the next command even if the
	// view is left open for hours or its terminal goes away. The event log
	// is complete before the directory is let go, so that a watcher reads
	// the end. What recording says goes to errw.
	ended := func(s *engine.Summary, err error, outErr func() error, errw io.Writer) error {
		if err != nil {
			return failErr("rollout run: %v", err)
		}
		closeLog()
		res := env.finishRun(sd, o, s, outErr, errw)
		// The last notifications (finished, a failure) are recorded in
		// the journal as they are sent, after the engine ended: they
		// are delivered, or given up after notifyDrain, before the
		// journal closes.
		drainNotify()
		sd.close()
		return res
	}
	if ui != nil {
		return env.runWithTUI(ctx, cancelRun, ui, func() (*engine.Summary, error) {
			s, err := eng.Run(runCtx)
			finishControl(ctl, s)
			return s, err
		}, func(s *engine.Summary, err error, errw io.Writer) error { return ended(s, err, nil, errw) })
	}
	sum, err := eng.Run(runCtx)
	finishControl(ctl, sum)
	return ended(sum, err, outErr, env.Stderr)
}

// heldWarnings prints the run's warnings, or holds them while holding is
// set (the live view owns the terminal) until release.
type heldWarnings struct {
	w       io.Writer
	mu      sync.Mutex
	held    []string
	holding bool
}

func (hw *heldWarnings) warn(msg string) {
	hw.mu.Lock()
	defer hw.mu.Unlock()
	if hw.holding {
		hw.held = append(hw.held, msg)
		return
	}
	printf(hw.w, "rollout run: warning: %s\n", msg)
}

// release prints the held warnings and stops holding new ones.
func (hw *heldWarnings) release() {
	hw.mu.Lock()
	hw.holding = false
	msgs := hw.held
	hw.mu.Unlock()
	for _, m := range msgs {
		hw.warn(m)
	}
}

// runView makes what shows the run: the live view on a terminal (returned
// as ui too), JSON events with --json, plain lines otherwise. outErr, for a
// reporter, says whether it could not write.
func (env *Env) runView(p *plan.Plan, o RunOptions, commands func(engine.WaitInfo) (string, string), ctl *controller,
	cancelRun context.CancelFunc) (ui *tui.UI, view engine.Observer, outErr func() error) {
	switch {
	case !o.JSON && !o.NoTUI && env.IsTerminal():
		// Someone at the terminal keeps the finished view until q, to
		// open what failed; an unattended run's view reads no keys and
		// leaves at the end.
		attended := env.attended()
		uo := tui.Options{PlanName: p.Name, Out: env.Stdout, In: env.Stdin, NoColor: !env.color(env.Stdout), Cancel: cancelRun,
			StayOpen: attended, NoInput: !attended}
		if ctl != nil {
			uo.Approve, uo.Abort = ctl.approveFromView("the live view"), ctl.abortFromView("the live view")
		}
		ui = tui.New(uo)
		return ui, ui, nil
	case o.JSON:
		rep := report.NewJSON(env.Stdout, report.WithCommands(commands))
		return nil, rep, rep.Err
	default:
		rep := report.NewPlain(env.Stdout, report.WithCommands(commands))
		return nil, rep, rep.Err
	}
}

// openEventLog creates the event log that `rollout watch` follows, and the
// function that closes it once; nil (with a warning) when it cannot be
// created.
func openEventLog(dir string, warn func(string)) (engine.Observer, func()) {
	evlog, lerr := state.CreateEventLog(dir)
	if lerr != nil {
		warn(fmt.Sprintf("rollout watch cannot follow this run: %v", lerr))
		return nil, func() {}
	}
	return evlog, sync.OnceFunc(func() {
		if err := evlog.Close(); err != nil {
			warn(fmt.Sprintf("rollout watch could not follow all of this run: %v", err))
		}
	})
}

// startNotify makes the notifier of the plan's webhooks, and the function
// that drains it once, bounded by notifyDrain even after ctx ends; nil when
// the plan has no webhooks.
func startNotify(ctx context.Context, p *plan.Plan, sd *stateDir, o RunOptions, commands func(engine.WaitInfo) (string, string),
	warn func(string)) (engine.Observer, func()) {
	n := notify.New(p, notify.Options{Journal: sd.j, Commands: commands, Warn: warn, AutoApprove: o.AutoApprove})
	if n == nil {
		return nil, func() {}
	}
	return n, sync.OnceFunc(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyDrain)
		defer cancel()
		n.Close(cctx)
	})
}

// finishControl tells the controller, if any, how the run ended. It hears
// it before the view or reporter is done with the run, so that no
// requester waits for an answer.
func finishControl(ctl *controller, s *engine.Summary) {
	if ctl == nil {
		return
	}
	v := "stopped"
	if s != nil {
		v = s.Verdict.String()
	}
	ctl.finish(v)
}

// attended reports whether a person is at the terminal: stdin is one, so
// a key can be pressed.
func (env *Env) attended() bool {
	f, ok := env.Stdin.(*os.File)
	return ok && isTerminalFile(f)
}

// notifyDrain bounds how long the end of a run waits for its last
// notifications (finished, a failure) to be delivered.
const notifyDrain = 15 * time.Second

// notice is a client wait as the engine's observers see it.
func notice(w clanforge.Wait) engine.Notice {
	return engine.Notice{At: time.Now(), Kind: w.Kind.String(), Endpoint: w.Name(), Attempt: w.Attempt, Delay: w.Delay,
		Reason: w.Reason, Text: w.String(), Unreachable: w.FirstContact}
}

// runWithTUI runs the engine while the live view shows it. The view stays
// up until the engine finished (with a person at the terminal, until they
// leave the finished view), then the summary is printed so that it stays
// on the terminal, and under it what recording the run's end had to say.
// ended records the end as soon as the engine is done, while the view may
// still be open; its result is the command's.
func (env *Env) runWithTUI(ctx context.Context, cancelRun context.CancelFunc, ui *tui.UI, run func() (*engine.Summary, error),
	ended func(*engine.Summary, error, io.Writer) error) error {
	type result struct {
		sum *engine.Summary
		err error // the engine's fault
		res error // the command's result
	}
	var said bytes.Buffer // printed under the summary: the view owns the terminal until then
	done := make(chan result, 1)
	go func() {
		s, err := run()
		done <- result{s, err, ended(s, err, &said)}
	}()
	uiErr := ui.Run(ctx)
	if uiErr != nil && !errors.Is(uiErr, tui.ErrCancelled) && !errors.Is(uiErr, tui.ErrForceQuit) && ctx.Err() == nil {
		// The live view died (a terminal error): never let the rollout
		// go on blind. Stop it as an interrupt would.
		printf(env.Stderr, "live view failed (%v): stopping the rollout as an interrupt would\n", uiErr)
		cancelRun()
	}
	r := <-done
	if r.err == nil {
		fmt.Fprint(env.Stdout, tui.RenderSummary(*r.sum, ui.Width(), env.color(env.Stdout)))
	}
	_, _ = env.Stderr.Write(said.Bytes())
	return r.res
}

// finishRun records how the run ended and turns its verdict into the
// command's result. A reporter or journal that failed makes an otherwise
// successful run fail: nobody saw it, or a resume could redo its work.
// What it has to say goes to errw.
func (env *Env) finishRun(sd *stateDir, o RunOptions, sum *engine.Summary, outErr func() error, errw io.Writer) error {
	v := sum.Verdict
	if outErr != nil {
		if werr := outErr(); werr != nil {
			printf(errw, "rollout run: writing the run's output failed: %v\n", werr)
			if v.Success() {
				v = engine.VerdictFailed
			}
		}
	}
	journalOK := sd.recordUnfinished(errw, sum)
	if jerr := sd.rec.Err(); jerr != nil {
		journalOK = false
		printf(errw, "rollout run: WARNING: the journal in %s is incomplete (%v): a resume may redo finished steps\n", sd.dir, jerr)
		if v.Success() {
			v = engine.VerdictFailed
		}
	}
	if err := sd.j.FinishVerdict(v.String()); err != nil {
		return failErr("rollout run: %v", err)
	}
	if v.Success() {
		return nil
	}
	msg := ""
	if v == engine.VerdictInterrupted && journalOK {
		msg = fmt.Sprintf("interrupted: the journal in %s records every unfinished job.\ncontinue with: %s", sd.dir, resumeCommand(o))
		if o.Sim {
			msg = fmt.Sprintf("interrupted: the journal in %s records what ran. A --sim run cannot be resumed (its simulator ended with it);\nrun it again with: rollout run %s --sim", sd.dir, o.Path)
		}
	}
	return &RunError{Verdict: v, Msg: msg}
}

// resumeCommand is the exact command that continues the run.
func resumeCommand(o RunOptions) string {
	s := "rollout run " + o.Path + " --resume"
	if o.StateDir != "" {
		s += " --state-dir " + o.StateDir
	}
	return s
}
