package plan

import (
	"math"
	"time"
)

// OutputState is how an instance ended, as expressions read it in
// steps.<name>.state.
type OutputState string

// Output states.
const (
	OutputSucceeded OutputState = "succeeded"
	OutputFailed    OutputState = "failed"
	OutputSkipped   OutputState = "skipped"
)

// Inputs are the outputs an instance may read while it runs: Scope maps
// step name to the output of the instance named by Instance.Scope; Diff and
// Version are the outputs of Instance.Diff and Instance.Version (nil when
// the instance has none).
type Inputs struct {
	Scope   map[string]*Output
	Diff    *Output
	Version *Output
}

// JobUpdate is the state of one remote job an instance drives, reported
// while the instance runs. Kind names the job's kind (update, diff,
// version, mirror, install, uninstall); Done is true once the job reached an
// end state.
type JobUpdate struct {
	Kind string
	Job  JobOutput
	ETA  time.Time // zero: unknown
	Done bool
	// Detail is the progress in words when a number cannot say it: a
	// ready step's counters per region ("eu: 2 pending, 14 completed, 0
	// failed; us: ..."), a switch's servers ("prod-eu: processing 30 of
	// 120 servers"). Empty for jobs.
	Detail string
	// Start is when the job began running (jobstart); zero: unknown.
	Start time.Time
}

// ReadyStatus is what a ready step read last: the v2 image status counters
// summed over the step's fleets, and per region (by the region's name).
// Expressions read it as steps.<name>.status, and a ready step's until and
// fail_if as status.
type ReadyStatus struct {
	Pending   int
	Failed    int
	Completed int
	Regions   map[string]RegionStatus
}

// RegionStatus is one region's counters.
type RegionStatus struct {
	Pending   int
	Failed    int
	Completed int
}

// Approval is how an approval wait ended: approved by a person (Who, Host),
// automatically (--auto-approve), or by its timeout with on_timeout
// continue.
type Approval struct {
	By      string // "user@host", "--auto-approve" or "timeout"
	At      time.Time
	Comment string
}

// FailureBudget is the failure budget of step s in the scope its failures
// count in: the number of failed instances that may be tolerated (more
// abort the rollout) and how many instances the scope holds. The scope is
// all of s's instances, or, with max_failures_per: image, those of img. ok
// is false when s has no budget.
func (p *Plan) FailureBudget(s *Step, img *Image) (limit, of int, ok bool) {
	if s.MaxFailures == nil {
		return 0, 0, false
	}
	for _, in := range p.Instances {
		if in.Step == s && (!s.MaxFailuresPerImage || in.Image == img) {
			of++
		}
	}
	if !s.MaxFailuresPerImage {
		return s.MaxFailuresCount, of, true
	}
	if !s.MaxFailures.IsPct {
		return s.MaxFailures.Count, of, true
	}
	// A percentage rounds down, as the contract says for the whole step.
	return int(math.Floor(s.MaxFailures.Percent*float64(of)/100 + 1e-9)), of, true
}
