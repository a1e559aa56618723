package engine

import (
	"fmt"
	"time"
)

// Outcome is how an instance ended.
type Outcome string

// String returns the outcome as reporters and the journal spell it.
func (o Outcome) String() string { return string(o) }

// Outcomes.
const (
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	// Skipped: a dependency failed or was skipped, or the rollout aborted or
	// was interrupted before the instance started.
	Skipped Outcome = "skipped"
	// SkippedWhen: the instance's when expression was false.
	SkippedWhen Outcome = "skipped-when"
	// Cancelled: interrupted while running; its remote job may still run.
	Cancelled Outcome = "cancelled"
)

// InstanceInfo describes an instance to observers.
type InstanceInfo struct {
	ID        string // "step@machine/image" or "step@image"
	Step      string
	Type      string // step type
	Machine   string // "" for per-image instances
	Image     string
	Wave      int // 0-based; -1 when the step has no waves
	OnFailure bool
	// Deps are the IDs of the instances this one waits for (the plan's
	// DAG), so that an observer can estimate the remaining critical path.
	Deps []string `json:",omitempty"`
}

// JobInfo is the last known state of the remote job an instance drives.
type JobInfo struct {
	Kind      string // update, diff, version, mirror, install, uninstall, ready, switch
	ID        int64
	State     int
	StateName string
	Progress  int
	ETA       time.Time // zero: unknown
	Error     string
	// Done is true once the job reached an end state.
	Done bool
	// Detail is the progress in words of a step without a job id (a
	// ready step's counters per region, a switch's servers per fleet).
	Detail string
	// Start is when the job began running (Clanforge's jobstart); zero
	// when unknown. With ETA and Progress it lets a view interpolate the
	// progress between two reads.
	Start time.Time `json:",omitzero"`
}

// RunInfo is sent once when a run starts.
type RunInfo struct {
	Plan        string
	Concurrency int
	Instances   []InstanceInfo
	Targets     int
	Started     time.Time
	Resumed     bool
}

// Result is how one instance ended.
type Result struct {
	Outcome Outcome
	// Err is the root cause for Failed (the step's own error, typed errors
	// of the client included), and why for Skipped, SkippedWhen and
	// Cancelled (a *SkipError wrapping the root cause when there is one).
	Err      error
	Started  time.Time
	Finished time.Time
	Job      *JobInfo // last job state, if any
	// Detail is a short human summary, e.g. "3 added, 1 modified, 0 removed".
	Detail string
	// Restored is true for an instance that succeeded in an earlier run
	// of a resumed rollout: it was not executed again.
	Restored bool
}

// Verdict is how a whole run ended. The engine decides it once, in its
// summary; reporters, the live view and the command read it, and main maps
// it to an exit status.
type Verdict int

// Verdicts.
const (
	// Succeeded: every instance succeeded or was skipped by a when.
	VerdictSucceeded Verdict = iota
	// Failed: some instance failed (within the budget or not), was
	// cancelled, or was skipped because something failed.
	VerdictFailed
	// Aborted: the failure budget was exceeded (or a person aborted).
	VerdictAborted
	// Interrupted: a signal or a confirmed cancel stopped the run.
	VerdictInterrupted
)

// String returns the verdict as reporters spell it.
func (v Verdict) String() string {
	switch v {
	case VerdictSucceeded:
		return "succeeded"
	case VerdictFailed:
		return "failed"
	case VerdictAborted:
		return "aborted"
	case VerdictInterrupted:
		return "interrupted"
	}
	return "unknown"
}

// Success reports whether the run succeeded.
func (v Verdict) Success() bool { return v == VerdictSucceeded }

// Summary is sent once when the run ends.
type Summary struct {
	// Verdict is how the run ended; decided by the engine alone.
	Verdict  Verdict
	Plan     string
	Started  time.Time
	Finished time.Time
	Counts   map[Outcome]int
	Failures []Failure // root causes only
	// AbortReason says why the run aborted (Verdict VerdictAborted).
	AbortReason string
	// Decisions lists every wait that ended: approvals (who, when),
	// timeouts, bake times.
	Decisions []DecisionRecord
	// Unfinished lists remote jobs that had not ended when the run stopped.
	Unfinished []UnfinishedJob
	Requests   int64
	Targets    []TargetSummary
	// OnFailure lists the on_failure instances that ran (a reject of an
	// open diff, with or without reinstall), so that a person can tell
	// what the rollout cleaned up.
	OnFailure []OnFailureRun
	// Switches lists the profile switches the run made (switch steps, not
	// on_failure ones), each with its outcome and what it did, so that the
	// end of a cut-over says which fleets run which profile.
	Switches []OnFailureRun
}

// OnFailureRun is one on_failure instance that ran.
type OnFailureRun struct {
	Instance string
	Step     string
	Machine  string
	Image    string
	Outcome  Outcome
	Err      error
	Detail   string
	// Noop is true when it succeeded with nothing to do (a reject with no
	// open diff of this run in scope), so that reporters can say it once
	// for all such instances rather than once per failed target.
	Noop bool
}

// Failure is one root-cause failure.
type Failure struct {
	Instance string
	Machine  string
	Image    string
	Err      error
}

// UnfinishedJob is a remote job left running by an interrupt.
type UnfinishedJob struct {
	Instance string
	Job      JobInfo
}

// TargetSummary is the outcome of one target (machine, image) or of an
// image's per-image instances (Machine "").
type TargetSummary struct {
	Machine string
	Image   string
	Outcome Outcome
	Err     error
	Elapsed time.Duration
}

// Observer receives the engine's events. Calls come from many goroutines and
// must not block: an observer that needs to do slow work hands events to a
// buffer of its own. Like Terraform's Hook, the engine knows nothing about
// who listens.
type Observer interface {
	RunStarted(RunInfo)
	WaveStarted(step, image string, wave, waves int, instances []string)
	InstanceStarted(id string, at time.Time)
	JobProgress(id string, job JobInfo)
	InstanceFinished(id string, r Result)
	Aborting(reason string)
	RequestCount(n int64)
	// Notice tells of a wait below the engine a person should see at once:
	// the API client retrying, holding for a Retry-After, or waiting for a
	// slow answer. It may come at any time, also before RunStarted.
	Notice(Notice)
	// WaitStarted tells that the run waits for a person (an approval) or a
	// clock (a bake time); WaitEnded how it ended and who ended it.
	WaitStarted(WaitInfo)
	WaitEnded(WaitInfo, Decision)
	RunFinished(Summary)
}

// Notice is one wait of the API client, e.g. "retrying imageinstall/status
// in 4s (attempt 3): connection refused".
type Notice struct {
	At       time.Time
	Kind     string // retry, resend, hold, rate-limit, slow-answer
	Endpoint string // e.g. imageinstall/status
	Attempt  int
	Delay    time.Duration
	Reason   string
	// Text is the whole notice as one line.
	Text string
	// Unreachable is set while the API has not answered once since the
	// run started.
	Unreachable bool
}

// NopObserver ignores every event; embed it to implement a subset.
type NopObserver struct{}

func (NopObserver) RunStarted(RunInfo)                             {}
func (NopObserver) WaveStarted(string, string, int, int, []string) {}
func (NopObserver) InstanceStarted(string, time.Time)              {}
func (NopObserver) JobProgress(string, JobInfo)                    {}
func (NopObserver) InstanceFinished(string, Result)                {}
func (NopObserver) Aborting(string)                                {}
func (NopObserver) RequestCount(int64)                             {}
func (NopObserver) Notice(Notice)                                  {}
func (NopObserver) WaitStarted(WaitInfo)                           {}
func (NopObserver) WaitEnded(WaitInfo, Decision)                   {}
func (NopObserver) RunFinished(Summary)                            {}

// NoopGroup is the on_failure instances of one step that had nothing to do,
// with what they said, so that it is said once.
type NoopGroup struct {
	Step      string
	Detail    string
	Instances []string
}

// Label is "reject@buildbox-1/game" for one instance, and "reject on 5
// targets" for more.
func (g NoopGroup) Label() string {
	if len(g.Instances) == 1 {
		return g.Instances[0]
	}
	return fmt.Sprintf("%s on %d targets", g.Step, len(g.Instances))
}

// SplitNoops separates the on_failure runs that did something (or failed)
// from those that had nothing to do, grouped by step and what they said,
// in order of first appearance.
func SplitNoops(runs []OnFailureRun) (ran []OnFailureRun, noops []NoopGroup) {
	at := map[[2]string]int{}
	for _, o := range runs {
		if !o.Noop {
			ran = append(ran, o)
			continue
		}
		k := [2]string{o.Step, o.Detail}
		i, ok := at[k]
		if !ok {
			i = len(noops)
			at[k] = i
			noops = append(noops, NoopGroup{Step: o.Step, Detail: o.Detail})
		}
		noops[i].Instances = append(noops[i].Instances, o.Instance)
	}
	return ran, noops
}

// ErrText is err's text, "" for nil: what reporters show.
func ErrText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// SkipError says why an instance was skipped: Reason names the root cause
// in words ("dependency diff@b/game failed", "rollout aborted"), and Cause,
// when there is one, is the root failure's own error, for errors.Is and
// errors.As.
type SkipError struct {
	Reason string
	Cause  error
}

func (e *SkipError) Error() string { return e.Reason }
func (e *SkipError) Unwrap() error { return e.Cause }

// skip is a *SkipError without a cause.
func skip(reason string) error { return &SkipError{Reason: reason} }

// Fanout returns an observer that passes every event to each of obs in
// turn (nil ones are left out), for a run that reports to several places at
// once: a reporter, the webhooks, the control files.
func Fanout(obs ...Observer) Observer {
	var f fanout
	for _, o := range obs {
		if o != nil {
			f = append(f, o)
		}
	}
	if len(f) == 1 {
		return f[0]
	}
	return f
}

type fanout []Observer

func (f fanout) RunStarted(i RunInfo) {
	for _, o := range f {
		o.RunStarted(i)
	}
}
func (f fanout) WaveStarted(step, image string, wave, waves int, ids []string) {
	for _, o := range f {
		o.WaveStarted(step, image, wave, waves, ids)
	}
}
func (f fanout) InstanceStarted(id string, at time.Time) {
	for _, o := range f {
		o.InstanceStarted(id, at)
	}
}
func (f fanout) JobProgress(id string, j JobInfo) {
	for _, o := range f {
		o.JobProgress(id, j)
	}
}
func (f fanout) InstanceFinished(id string, r Result) {
	for _, o := range f {
		o.InstanceFinished(id, r)
	}
}
func (f fanout) Aborting(reason string) {
	for _, o := range f {
		o.Aborting(reason)
	}
}
func (f fanout) RequestCount(n int64) {
	for _, o := range f {
		o.RequestCount(n)
	}
}
func (f fanout) Notice(n Notice) {
	for _, o := range f {
		o.Notice(n)
	}
}
func (f fanout) WaitStarted(w WaitInfo) {
	for _, o := range f {
		o.WaitStarted(w)
	}
}
func (f fanout) WaitEnded(w WaitInfo, d Decision) {
	for _, o := range f {
		o.WaitEnded(w, d)
	}
}
func (f fanout) RunFinished(s Summary) {
	for _, o := range f {
		o.RunFinished(s)
	}
}
