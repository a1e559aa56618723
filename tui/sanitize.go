package tui

import (
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// cleaner makes the strings the engine hands over (plan, step, machine and
// image names, job kinds and state names, errors, details) safe to show,
// through the output boundary of package redact: known secrets masked in
// every encoding, control characters escaped. It runs when data enters the
// view's state, on the program's goroutine, so every frame renders only
// clean text and the styles added afterwards are the only escape sequences
// on screen.
//
// Names, states and details are shown on one line: str escapes everything
// (redact.Terminal). Errors may have several lines, which the view lays out
// itself (wrapText indents each, shortErr keeps the first): text keeps
// their newlines and tabs and escapes the rest (redact.TerminalLines).
//
// The same few strings come back on every progress event (kinds, state
// names, a job's error while it lasts), so answers are remembered; the
// memory is dropped when the registry of secrets changes or grows large.
type cleaner struct {
	version     uint64
	line, lines map[string]string
}

// maxMemo bounds the remembered answers: errors are mostly distinct, and a
// long run must not keep every one.
const maxMemo = 4096

// str cleans a one-line string.
func (c *cleaner) str(s string) string { return c.clean(s, false) }

// text cleans an error text whose newlines the view lays out.
func (c *cleaner) text(s string) string { return c.clean(s, true) }

func (c *cleaner) clean(s string, lines bool) string {
	if s == "" {
		return s
	}
	if v := redact.Known().Version(); c.line == nil || v != c.version || len(c.line)+len(c.lines) >= maxMemo {
		c.line, c.lines = make(map[string]string, 64), make(map[string]string, 16)
		c.version = v
	}
	memo, f := c.line, redact.Terminal
	if lines {
		memo, f = c.lines, redact.TerminalLines
	}
	if r, ok := memo[s]; ok {
		return r
	}
	r := f(s)
	memo[s] = r
	return r
}

func (c *cleaner) job(j engine.JobInfo) engine.JobInfo {
	j.Kind, j.StateName, j.Error, j.Detail = c.str(j.Kind), c.str(j.StateName), c.text(j.Error), c.text(j.Detail)
	return j
}

func (c *cleaner) instance(in engine.InstanceInfo) engine.InstanceInfo {
	in.ID, in.Step, in.Type, in.Machine, in.Image = c.str(in.ID), c.str(in.Step), c.str(in.Type), c.str(in.Machine), c.str(in.Image)
	return in
}

// cleanSummary returns s with every string through redact.Terminal, except
// the errors the summary wraps line by line, which keep their newlines
// (redact.TerminalLines). A field added to the summary later is escaped
// whole by default.
func cleanSummary(s engine.Summary) engine.Summary {
	out := redact.Copy(s, redact.Terminal)
	for i, f := range s.Failures {
		out.Failures[i].Err = textError(redact.TerminalLines(engine.ErrText(f.Err)), f.Err)
	}
	for i, o := range s.OnFailure {
		out.OnFailure[i].Err = textError(redact.TerminalLines(engine.ErrText(o.Err)), o.Err)
		out.OnFailure[i].Detail = redact.TerminalLines(o.Detail)
	}
	for i, t := range s.Targets {
		out.Targets[i].Err = textError(redact.TerminalLines(engine.ErrText(t.Err)), t.Err)
	}
	for i, u := range s.Unfinished {
		out.Unfinished[i].Job.Error = redact.TerminalLines(u.Job.Error)
	}
	return out
}

// textError is err with its text replaced by msg (nil stays nil), keeping
// the chain for errors.Is and errors.As.
func textError(msg string, err error) error {
	if err == nil {
		return nil
	}
	return &shownError{msg: msg, err: err}
}

type shownError struct {
	msg string
	err error
}

func (e *shownError) Error() string { return e.msg }
func (e *shownError) Unwrap() error { return e.err }
