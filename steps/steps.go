// Package steps executes one step instance at a time: it makes the Clanforge
// calls of its step type, records each state-changing call in the journal
// before and after it is sent, and polls the resulting job to its end. It
// knows nothing about scheduling; the engine decides what runs when.
//
// The package also owns the InstallWatcher, the single shared reader of
// imageinstall/status that serves every install instance of a run, and
// Describe, the pure preview of the calls an instance would make.
package steps

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// Journal records state-changing calls so that an interrupted rollout can be
// resumed without sending any of them twice. Keys name one intent: the
// instance id plus the call and its attempt, e.g.
// "diff@buildbox-1/game-b imagediff/create#1".
type Journal interface {
	// Intent is recorded (and synced) before the call is sent. params are
	// the call's query parameters with secrets already masked.
	Intent(key, endpoint string, params map[string]string) error
	// Result is recorded after the answer arrives: the job id the call made
	// (0 when it made none) or the error.
	Result(key string, jobID int64, callErr error) error
	// Prior returns what an earlier run recorded under key: whether its
	// intent was written, and whether a result (and which job id) followed.
	Prior(key string) (intent bool, result bool, jobID int64)
	// SeenInstalls records install jobs that a read of imageinstall/status
	// listed. The platform makes them when a version completes, so no
	// intent names them, and they leave the list when they complete: a
	// resumed run learns from this record that a job it no longer finds
	// existed, and completed while nobody watched. An implementation
	// writes only the jobs it has not recorded yet, and nothing when no
	// job is new.
	SeenInstalls(jobs []SeenInstall) error
	// InstallJobs returns the ids of the install jobs of interest in that
	// any run recorded, sorted: seen listed (SeenInstalls), queued by
	// instance instID (QueueKey intents), or named by an interrupt as
	// unfinished jobs of instID.
	InstallJobs(instID string, in InstallInterest) []int64
}

// SeenInstall is an install job as a read of imageinstall/status listed it:
// its id and the interest (version, kind, machine) it serves.
type SeenInstall struct {
	InstallInterest
	ID int64
}

// NopJournal records nothing (plan previews, tests that do not resume).
type NopJournal struct{}

func (NopJournal) Intent(string, string, map[string]string) error { return nil }
func (NopJournal) Result(string, int64, error) error              { return nil }
func (NopJournal) Prior(string) (bool, bool, int64)               { return false, false, 0 }
func (NopJournal) SeenInstalls([]SeenInstall) error               { return nil }
func (NopJournal) InstallJobs(string, InstallInterest) []int64    { return nil }

// JobUpdate reports a job's state to the engine while an instance runs.
type JobUpdate struct {
	Kind string // update, diff, version, mirror, install, uninstall, ready, switch
	Job  clanforge.Job
	// Detail is the progress in words of a step without a job: a ready
	// step's counters, a switch's servers (see plan.JobUpdate.Detail).
	Detail string
}

// Job kinds reported in JobUpdate.Kind.
const (
	KindUpdate    = "update"
	KindDiff      = "diff"
	KindVersion   = "version"
	KindMirror    = "mirror"
	KindInstall   = "install"
	KindUninstall = "uninstall"
	// KindReady and KindSwitch report a ready step's counters and a
	// switch's progress. They have no job id; their state is Running
	// while they wait and Completed or Failed at the end, with the
	// word the API or the step uses as the state name.
	KindReady  = "ready"
	KindSwitch = "switch"
)

// Env is what every instance execution shares.
type Env struct {
	Client *clanforge.Client
	// Installs is the shared install reader. When nil, an install instance
	// uses a private watcher of its own, which works but gives up the
	// one-read-per-interval sharing; the engine should always set it.
	Installs *InstallWatcher
	Journal  Journal    // nil: NopJournal
	Poll     PollPolicy // zero fields: DefaultPollPolicy's
	Now      func() time.Time
	// Fleet maps an image id to the ids of the fleet machines that carry
	// it. A resumed run uses it to settle an imageversion/create whose
	// answer was never recorded: the install jobs a completed version
	// generates name it. See FleetOf.
	Fleet map[int64][]int64
	// Resend and AssumeSent hold a person's decisions, by instance id, on
	// an update create an earlier run sent without recording its answer
	// (see UnsettledUpdateError): send it again, or take it as made.
	Resend     map[string]bool
	AssumeSent map[string]bool

	// book keeps how long the run's jobs took (see paceBook), made on
	// first use.
	bookOnce sync.Once
	book     *paceBook
}

// paceBook returns the run's record of job lengths, shared by every
// instance that runs with env.
func (env *Env) paceBook() *paceBook {
	env.bookOnce.Do(func() { env.book = &paceBook{} })
	return env.book
}

// MachineIDs maps the plan's machine names to their ids, for
// InstallWatcher.SetMachineNames.
func MachineIDs(p *plan.Plan) map[string]int64 {
	out := make(map[string]int64, len(p.Machines))
	for _, m := range p.Machines {
		out[m.Name] = m.ID
	}
	return out
}

// FleetOf returns the plan's fleet machines per image, for Env.Fleet.
func FleetOf(p *plan.Plan) map[int64][]int64 {
	out := map[int64][]int64{}
	for _, t := range p.Targets {
		if !t.Machine.Build {
			out[t.Image.ID] = append(out[t.Image.ID], t.Machine.ID)
		}
	}
	return out
}

// Executor runs instances for the engine with one Env; it implements
// engine.Executor without steps knowing the engine.
type Executor struct{ Env *Env }

// Execute runs one instance with Run and reports its jobs as plan.JobUpdate.
func (x Executor) Execute(ctx context.Context, inst *plan.Instance, in plan.Inputs, progress func(plan.JobUpdate)) (*plan.Output, error) {
	return Run(ctx, x.Env, inst, in, func(u JobUpdate) {
		if progress != nil {
			progress(plan.JobUpdate{Kind: u.Kind, Job: jobOutput(u.Job), ETA: u.Job.ETA, Start: u.Job.Start, Done: u.Job.State.Terminal(), Detail: u.Detail})
		}
	})
}

// Run executes one instance to its end and returns its output. A returned
// error is the instance's failure (the output still carries the last job
// state). When ctx is cancelled Run sends nothing more that changes state and
// returns ctx's error with the last known job state in the output; the
// output's State is then "failed" too, and the engine tells an interrupt
// apart with errors.Is(err, context.Canceled). The caller applies the step's
// timeout as a ctx deadline; when it passes, the error names the job that was
// still running and wraps context.DeadlineExceeded.
func Run(ctx context.Context, env *Env, inst *plan.Instance, in plan.Inputs, progress func(JobUpdate)) (*plan.Output, error) {
	out := &plan.Output{}
	if inst == nil || inst.Step == nil {
		out.State = plan.OutputFailed
		return out, errors.New("steps: no instance to run")
	}
	if env == nil {
		env = &Env{}
	}
	r := &runner{
		env:      env,
		inst:     inst,
		step:     inst.Step,
		in:       in,
		out:      out,
		journal:  env.Journal,
		policy:   env.Poll.normalized(),
		now:      env.Now,
		progress: progress,
	}
	if r.journal == nil {
		r.journal = NopJournal{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.progress == nil {
		r.progress = func(JobUpdate) {}
	}
	if r.step.Type != plan.TypeGate && env.Client == nil {
		out.State = plan.OutputFailed
		return out, fmt.Errorf("steps: %s step %q needs a Clanforge client", r.step.Type, r.step.Name)
	}

	var err error
	switch r.step.Type {
	case plan.TypeUpdate:
		err = r.runUpdate(ctx)
	case plan.TypeDiff:
		err = r.runDiff(ctx)
	case plan.TypeGate:
		err = r.runGate()
	case plan.TypeVersion:
		err = r.runVersion(ctx)
	case plan.TypeInstall:
		err = r.runInstall(ctx)
	case plan.TypeReject:
		err = r.runReject(ctx)
	case plan.TypeReady:
		err = r.runReady(ctx)
	case plan.TypeSwitch:
		err = r.runSwitch(ctx)
	default:
		err = fmt.Errorf("steps: unknown step type %q of step %q", r.step.Type, r.step.Name)
	}

	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			// The caller's deadline (the step's timeout): name the job
			// that was still running, unless the step said itself what
			// it was waiting for (a ready step's counters, a switch).
			var said *waitTimeout
			if !errors.As(err, &said) {
				err = r.deadlineError(ctx.Err())
			}
		case ctx.Err() != nil:
			// The caller cancelled: report exactly its error so that the
			// engine sees an interrupt, not a failure of the step.
			err = ctx.Err()
		}
		out.State = plan.OutputFailed
		return out, r.mask(err)
	}
	out.State = plan.OutputSucceeded
	return out, nil
}

// runner holds one instance execution.
type runner struct {
	env      *Env
	inst     *plan.Instance
	step     *plan.Step
	in       plan.Inputs
	out      *plan.Output
	journal  Journal
	policy   PollPolicy
	now      func() time.Time
	progress func(JobUpdate)

	// lastKind is the kind of the last job reported, for the timeout message.
	lastKind string
}

// report records job as the instance's last job state and tells the engine.
func (r *runner) report(kind string, job clanforge.Job) {
	job = r.emit(kind, job)
	r.lastKind = kind
	r.out.Job = jobOutput(job)
}

// emit tells the engine about a job without making it the instance's job.
// joberror is free text from the API and may quote a URL with credentials:
// it is masked before anyone sees it.
func (r *runner) emit(kind string, job clanforge.Job) clanforge.Job {
	if job.Error != "" {
		job.Error = r.maskText(job.Error)
	}
	r.progress(JobUpdate{Kind: kind, Job: job})
	return job
}

func (r *runner) deadlineError(cause error) error {
	j := r.out.Job
	if j.ID == 0 {
		return cause
	}
	return fmt.Errorf("%s job %d was still %s (%d%%) and may still run: %w",
		r.lastKind, j.ID, stateName(j), j.Progress, cause)
}

func stateName(j plan.JobOutput) string {
	if j.StateName != "" {
		return j.StateName
	}
	return clanforge.JobState(j.State).String()
}

// jobOutput converts a Clanforge job to the output expressions read.
func jobOutput(j clanforge.Job) plan.JobOutput {
	name := j.StateName
	if name == "" {
		name = j.State.String()
	}
	return plan.JobOutput{
		ID:        j.ID,
		State:     int(j.State),
		StateName: name,
		Progress:  j.Progress,
		Error:     j.Error,
		Failed:    j.Failed,
	}
}

// jobError is the failure of a job that ended Failed or Squashed.
func jobError(kind string, j *clanforge.Job) error {
	msg := j.Error
	if msg == "" {
		msg = "no error message given"
	}
	state := j.StateName
	if state == "" {
		state = j.State.String()
	}
	return fmt.Errorf("%s job %d ended %s: %s", kind, j.ID, state, msg)
}
