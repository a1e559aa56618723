package plan

import (
	"fmt"
	"io"
	"os"
)

// Expr is an expression compiled once at load time against a typed
// environment. It is safe for concurrent use.
type Expr struct {
	Source string
	Pos    Pos
	// program is the compiled *vm.Program (set by the loader). With one scope
	// shape it is that shape's *compiled; programs holds every shape the
	// expression was compiled for, keyed by shape.
	program  any
	programs map[string]*compiled
}

// EvalInput is what an expression sees at run time. Steps holds the outputs
// of the instances in the evaluating instance's Scope, by step name.
type EvalInput struct {
	Machine *Machine // nil for per-image instances
	Image   *Image
	Steps   map[string]*Output
	// Status is what a ready step's until and fail_if read as status:
	// the counters of the read being judged. nil elsewhere.
	Status *ReadyStatus
}

// Eval runs the expression and returns its boolean result. A nil *Expr is
// true: an absent when or where does not hold anything back.
func (e *Expr) Eval(in EvalInput) (bool, error) {
	if e == nil {
		return true, nil
	}
	return e.eval(in)
}

// Options tune Load.
type Options struct {
	// Vars override plan variables (--var name=value).
	Vars map[string]string
	// LookupEnv reads ${env:NAME}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Load reads and validates the plan file at path. On failure the error is an
// *Errors listing every problem found (errors.As also fills an Errors).
// A file larger than MaxPlanBytes is refused without being read.
func Load(path string, opt Options) (*Plan, error) {
	src, err := readPlan(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src, opt)
}

// readPlan reads at most MaxPlanBytes+1 bytes: the size from Stat is checked
// first, and the limited read catches files that grow or do not know their
// size (a pipe).
func readPlan(path string) ([]byte, error) {
	cannot := func(err error) error {
		return &Errors{{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read plan: %v", err)}}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, cannot(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxPlanBytes {
		return nil, &Errors{sizeError(path, st.Size())}
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxPlanBytes+1))
	if err != nil {
		return nil, cannot(err)
	}
	if len(src) > MaxPlanBytes {
		return nil, &Errors{sizeError(path, int64(len(src)))}
	}
	return src, nil
}

// Parse validates a plan held in memory; filename is used in positions.
func Parse(filename string, src []byte, opt Options) (p *Plan, err error) {
	// The YAML library has panicked on fuzzed input before; a panic is a
	// plan error, never a crash of the command.
	defer func() {
		if r := recover(); r != nil {
			p = nil
			err = &Errors{{Pos: Pos{File: filename, Line: 1, Col: 1}, Msg: fmt.Sprintf("internal error while reading the plan (please report): %v", r)}}
		}
	}()
	if len(src) > MaxPlanBytes {
		return nil, &Errors{sizeError(filename, int64(len(src)))}
	}
	l := newLoader(filename, src, opt)
	p = l.load()
	if len(l.errs) > 0 {
		l.maskHidden()
		l.errs.sort()
		errs := l.errs
		if l.dropped > 0 {
			errs = append(errs, &Error{Pos: Pos{File: filename}, Msg: fmt.Sprintf("%d more errors not shown: fix these first", l.dropped)})
		}
		return nil, &errs
	}
	return p, nil
}

// Error is one plan error, positioned in the source.
type Error struct {
	Pos  Pos
	Msg  string // what is wrong and what was expected
	Hint string // e.g. `did you mean "install"?`; may be empty
	Line string // the source line
	// Width is how many columns the caret line underlines (at least one).
	Width int
}

// Errors is every error of a plan, in source order.
type Errors []*Error
