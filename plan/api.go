package plan

import (
	"errors"
)

// Expr is an expression compiled once at load time against a typed
// environment. It is safe for concurrent use.
type Expr struct {
	Source string
	Pos    Pos
	// program is the compiled *vm.Program (set by the loader).
	program any
}

// EvalInput is what an expression sees at run time. Steps holds the outputs
// of the instances in the evaluating instance's Scope, by step name.
type EvalInput struct {
	Machine *Machine // nil for per-image instances
	Image   *Image
	Steps   map[string]*Output
}

// Eval runs the expression and returns its boolean result.
func (e *Expr) Eval(in EvalInput) (bool, error) {
	return false, errors.New("plan: not implemented")
}

// Options tune Load.
type Options struct {
	// Vars override plan variables (--var name=value).
	Vars map[string]string
	// LookupEnv reads ${env:NAME}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads and validates the plan file at path. On failure the error is an
// *Errors listing every problem found.
func Load(path string, opt Options) (*Plan, error) {
	return nil, errors.New("plan: not implemented")
}

// Parse validates a plan held in memory; filename is used in positions.
func Parse(filename string, src []byte, opt Options) (*Plan, error) {
	return nil, errors.New("plan: not implemented")
}

// Error is one plan error, positioned in the source.
type Error struct {
	Pos  Pos
	Msg  string // what is wrong and what was expected
	Hint string // e.g. `did you mean "install"?`; may be empty
	Line string // the source line
}

// Errors is every error of a plan, in source order.
type Errors []*Error
