package plan

import "time"

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
}
