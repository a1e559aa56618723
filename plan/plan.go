// Package plan owns the plan format: it parses a plan file into raw YAML types,
// validates it, interpolates variables, compiles its expressions once against
// typed environments, and expands step templates into the instance DAG the
// engine schedules. A *Plan is immutable once Load returns it.
package plan

import (
	"time"

	"github.com/rollout/rollout/redact"
)

// StepType is the type of a step template.
type StepType string

// Step types of plan format v1.
const (
	TypeUpdate  StepType = "update"
	TypeDiff    StepType = "diff"
	TypeGate    StepType = "gate"
	TypeVersion StepType = "version"
	TypeInstall StepType = "install"
	TypeReject  StepType = "reject"
	// Additions for cut-over and control (still format 1).
	TypeReady   StepType = "ready"
	TypeApprove StepType = "approve"
	TypeSwitch  StepType = "switch"
)

// Pos is a position in the plan file (1-based line and column).
type Pos struct {
	File string
	Line int
	Col  int
}

// Plan is a validated plan.
type Plan struct {
	Name        string
	Description string
	File        string
	// Hash identifies the plan's meaning (file content after variable
	// overrides), for the journal's resume check.
	Hash string
	// Source is the raw file content, kept for naming what changed.
	Source []byte

	ClanforgeURL string // "" means default
	ASID         int64  // 0 when it must come from CLANFORGE_ASID
	Concurrency  int

	Vars map[string]any
	// VarDisplay is each variable as it may be shown: values read from
	// ${env:NAME} stay unexpanded and URL credentials are masked.
	VarDisplay map[string]string
	// DescriptionDisplay is Description as it may be shown.
	DescriptionDisplay string
	Images             []*Image
	Machines           []*Machine
	Steps              []*Step
	OnFailure          []*Step
	Targets            []*Target
	// Instances is every step instance in a topological order that also
	// respects wave order and the machine order of the plan.
	Instances []*Instance
	// FailureInstances are the on_failure instances, one per (on_failure
	// step, target or image); the engine runs those whose Trigger failed.
	FailureInstances []*Instance
	// Fleets are the plan's fleets (cut-over), in plan order.
	Fleets []*Fleet
	// Notify lists the webhooks told about the run's events.
	Notify []*Notify

	warnings []Warning // see Warnings
}

// Fleet is a Clanforge fleet the plan can switch between profiles.
type Fleet struct {
	Name string
	ID   string // the fleet's UUID
	Pos  Pos
}

// Notify is one webhook of the plan's notify list.
type Notify struct {
	URL    Value  // a secret: shown masked
	Format string // "slack" or "json"
	Events []string
	Pos    Pos
	// envParts are the values the URL read with ${env:NAME}, labelled so:
	// URL's Display may mask them whole with the rest ("***"), which no
	// longer tells where they are.
	envParts []redact.Secret
}

// Notification events.
const (
	EventStarted  = "started"
	EventWave     = "wave"
	EventApproval = "approval"
	EventApproved = "approved"
	EventFailed   = "failed"
	EventAborted  = "aborted"
	EventFinished = "finished"
)

// Pause is one entry of an install step's pause_after: what happens between
// wave k and wave k+1.
type Pause struct {
	Approve bool          // wait for a person's approval
	Bake    time.Duration // wait this long; 0 with !Approve: go on at once
}

// OnTimeout is what ends an approval nobody answered in time.
type OnTimeout string

// on_timeout values.
const (
	OnTimeoutAbort    OnTimeout = "abort"
	OnTimeoutContinue OnTimeout = "continue"
)

// Image is a game image.
type Image struct {
	Name string
	ID   int64
	// Profile is the fleet profile that runs this image; 0 when the plan
	// gives none (a switch cannot name the image then).
	Profile int64
	Pos     Pos
}

// Machine is a machine of the plan.
type Machine struct {
	Name   string
	ID     int64
	Labels map[string]string
	Images []*Image // images the machine carries
	// Fleet is the machine's fleet; nil when the plan has no fleets.
	Fleet *Fleet
	// Build is true when the machine is a target of an update or diff step.
	Build bool
	Index int // position in the plan's machine list
	Pos   Pos
}

// Target is one (machine, image) pair.
type Target struct {
	Machine *Machine
	Image   *Image
}

// Key is "machine/image".
func (t *Target) Key() string { return t.Machine.Name + "/" + t.Image.Name }

// Value is a string from the plan after interpolation. Display is what may be
// shown: ${env:NAME} stays unexpanded and credentials in URLs are masked.
type Value struct {
	Resolved string
	Display  string
}

// Size is a count or a percentage from waves or max_failures.
type Size struct {
	Count   int
	Percent float64 // set when the plan wrote "N%"
	IsPct   bool
}

// FullMode is the version step's full key.
type FullMode string

// Full modes.
const (
	FullFalse FullMode = "false"
	FullTrue  FullMode = "true"
	FullAuto  FullMode = "auto"
)

// InstallAt is the version step's install_at key.
type InstallAt string

// install_at values.
const (
	InstallManual InstallAt = "manual"
	InstallNow    InstallAt = "now"
)

// Step is a validated step template.
type Step struct {
	Name  string
	Type  StepType
	Needs []string
	Where *Expr // nil: every target
	// AllowEmpty: a where that matches nothing is intended, not an error.
	AllowEmpty  bool
	When        *Expr // nil: always
	Timeout     time.Duration
	Retries     int
	MaxParallel int // 0: no per-step limit
	Pos         Pos

	// update
	Desc Value
	URL  Value // Resolved "" : image default update URL
	// gate
	Expr *Expr
	// version
	Restart           bool
	Full              FullMode
	GameBuild         Value
	Force             bool
	InstallAt         InstallAt
	DisableTimeout    int
	DisablePercentage float64
	// install
	Mirroring   bool
	Waves       []Size
	MaxFailures *Size // nil: no budget (every failure still makes exit 1)
	// MaxFailuresCount is MaxFailures resolved against the step's instance count.
	MaxFailuresCount int
	// MaxFailuresPerImage (max_failures_per: image) counts the budget for
	// each image's instances on their own, as waves are; the default
	// (step) counts all the step's instances, as the contract says.
	MaxFailuresPerImage bool
	// install: what happens between waves; entry k applies between wave
	// k and wave k+1 (0-based).
	PauseAfter []Pause
	// reject
	Reinstall bool
	// ready: until holds (default status.pending == 0) ends the wait
	// successfully, fail_if fails it; both read status. Fleets (ready
	// and switch) are the fleets the step covers (default: all).
	Until  *Expr
	FailIf *Expr
	Fleets []*Fleet
	// approve
	Message   Value
	OnTimeout OnTimeout
	// switch: To is the image whose profile the fleets switch to, or
	// Profile gives the profile id directly; MaxMachines and ForceAfter
	// are sent as MaxMachines and Timeout (0: not sent).
	To          *Image
	Profile     int64
	MaxMachines int
	ForceAfter  time.Duration
	// OnFailure marks steps from the on_failure list.
	OnFailure bool
}

// Instance is one execution of a step: for a target, or for an image.
type Instance struct {
	// ID is "step@machine/image" for per-target instances and "step@image"
	// for per-image ones; unique within a plan.
	ID      string
	Step    *Step
	Image   *Image
	Machine *Machine // nil for per-image instances
	Target  *Target  // nil for per-image instances
	Deps    []*Instance
	// Wave is the 0-based wave of an install instance with waves; -1 otherwise.
	Wave int
	// Diff is the diff instance in scope (version, reject, gates after a
	// diff), Version the version instance (install); nil when none.
	Diff    *Instance
	Version *Instance
	// Scope maps step name to the single instance whose output
	// steps.<name> reads in this instance's expressions.
	Scope map[string]*Instance
	// Trigger, for on_failure instances, lists the instances whose failure
	// makes this one run.
	Trigger []*Instance
	// Fleet is the fleet of a switch instance (one per fleet).
	Fleet *Fleet
}

// PerImage reports whether the instance runs once per image.
func (in *Instance) PerImage() bool { return in.Machine == nil }

// Output is the result of an instance, as expressions see it under
// steps.<name>. Fields a step kind does not produce stay zero; each
// expression is type-checked against a kind-specific view of it.
type Output struct {
	State OutputState
	Job   JobOutput
	// diff
	DiffID   int64
	Added    []string
	Modified []string
	Removed  []string
	Changed  int
	// version
	VersionID int64
	// install: the job ids it queued or watched
	JobIDs []int64
	// ready: the last counters read
	Status *ReadyStatus `json:",omitempty"`
	// approve: who approved, or how the wait ended
	Approval *Approval `json:",omitempty"`
	// Detail says in words what an instance without a job did (a ready
	// step's last counters, a switch's outcome); Noop marks one that had
	// nothing to do (an on_failure switch of a fleet this run did not
	// switch).
	Detail string `json:",omitempty"`
	Noop   bool   `json:",omitempty"`
}

// JobOutput is the last state of an instance's remote job.
type JobOutput struct {
	ID        int64
	State     int
	StateName string
	Progress  int
	Error     string
	Failed    int
}
