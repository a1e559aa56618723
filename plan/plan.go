// Package plan owns the plan format: it parses a plan file into raw YAML types,
// validates it, interpolates variables, compiles its expressions once against
// typed environments, and expands step templates into the instance DAG the
// engine schedules. A *Plan is immutable once Load returns it.
package plan

import (
	"time"
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

	warnings []Warning // see Warnings
}

// Image is a game image.
type Image struct {
	Name string
	ID   int64
	Pos  Pos
}

// Machine is a machine of the plan.
type Machine struct {
	Name   string
	ID     int64
	Labels map[string]string
	Images []*Image // images the machine carries
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
	// reject
	Reinstall bool
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
}

// PerImage reports whether the instance runs once per image.
func (in *Instance) PerImage() bool { return in.Machine == nil }

// Output is the result of an instance, as expressions see it under
// steps.<name>. Fields a step kind does not produce stay zero; each
// expression is type-checked against a kind-specific view of it.
type Output struct {
	State string // "succeeded", "failed", "skipped"
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
