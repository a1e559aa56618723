// Package steps executes one step instance at a time: it makes the Clanforge
// calls of its step type, records each state-changing call in the journal
// before and after it is sent, and polls the resulting job to its end. It
// knows nothing about scheduling; the engine decides what runs when.
package steps

import (
	"context"
	"errors"
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
}

// NopJournal records nothing (plan previews, tests that do not resume).
type NopJournal struct{}

func (NopJournal) Intent(string, string, map[string]string) error { return nil }
func (NopJournal) Result(string, int64, error) error              { return nil }
func (NopJournal) Prior(string) (bool, bool, int64)               { return false, false, 0 }

// JobUpdate reports a job's state to the engine while an instance runs.
type JobUpdate struct {
	Kind string // update, diff, version, mirror, install, uninstall
	Job  clanforge.Job
}

// Env is what every instance execution shares.
type Env struct {
	Client   *clanforge.Client
	Installs *InstallWatcher
	Journal  Journal
	Poll     PollPolicy
	Now      func() time.Time
}

// PollPolicy bounds status polling. Polls aim at the job's jobeta, never
// sooner than Min apart, and back off by Factor up to Max while a job waits
// without an ETA.
type PollPolicy struct {
	Min    time.Duration
	Max    time.Duration
	Factor float64
}

// Inputs are the outputs an instance may read: Scope maps step name to the
// output of the instance named by inst.Scope; Diff and Version are the
// outputs of inst.Diff and inst.Version.
type Inputs struct {
	Scope   map[string]*plan.Output
	Diff    *plan.Output
	Version *plan.Output
}

// Run executes one instance to its end and returns its output. A returned
// error is the instance's failure (the output still carries the last job
// state). When ctx is cancelled Run sends nothing more that changes state and
// returns ctx's error with the last known job state in the output.
func Run(ctx context.Context, env *Env, inst *plan.Instance, in Inputs, progress func(JobUpdate)) (*plan.Output, error) {
	return nil, errors.New("steps: not implemented")
}

// InstallWatcher is the one shared reader of imageinstall/status: it serves
// every install instance from one read per interval.
type InstallWatcher struct{}
