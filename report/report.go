// Package report owns the two non-interactive renderings of a rollout's
// events: Plain, one human line per meaningful event for logs and
// non-terminals, ending in a summary; and JSON, one versioned JSON object
// per event for machines. Both implement engine.Observer, are safe for
// concurrent calls, and write to the io.Writer they are given.
//
// Every string the engine hands over came from outside the program (plan
// names, API answers, errors) and goes through the output boundary of
// package redact before it is written: Plain shows it with redact.Terminal
// (every known secret masked in every encoding, control characters
// escaped), JSON encodes it with redact.JSONEncoder (masked, and no raw
// DEL or C1 character in the output).
package report

import (
	"fmt"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// Option tunes a reporter.
type Option func(*config)

type config struct {
	now func() time.Time
	// commands gives the exact commands that approve and abort a wait.
	commands func(engine.WaitInfo) (approve, abort string)
}

// WithCommands gives the reporters the exact commands a person types to
// approve a wait or abort the rollout from another terminal, so that a
// waiting run says them.
func WithCommands(f func(engine.WaitInfo) (approve, abort string)) Option {
	return func(c *config) { c.commands = f }
}

// WithClock sets the clock that stamps lines and events, for deterministic
// output in tests.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

func newConfig(opts []Option) config {
	c := config{now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return c
}

var (
	_ engine.Observer = (*Plain)(nil)
	_ engine.Observer = (*JSON)(nil)
)

// term makes one string from outside the program safe to show as part of
// a line.
func term(s string) string { return redact.Terminal(s) }

// formatDuration renders d rounded to the second: 9s, 1m02s, 1h02m03s.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// stamp renders elapsed time as [mm:ss], or [h:mm:ss] past an hour.
func stamp(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	t := int(d / time.Second)
	h, m, s := t/3600, (t/60)%60, t%60
	if h > 0 {
		return fmt.Sprintf("[%d:%02d:%02d]", h, m, s)
	}
	return fmt.Sprintf("[%02d:%02d]", m, s)
}

// targetName is "machine/image", or "image" for per-image instances.
func targetName(machine, image string) string {
	if machine == "" {
		return image
	}
	return machine + "/" + image
}

// outcomeOrder is the order outcomes are counted in summaries.
var outcomeOrder = []engine.Outcome{engine.Succeeded, engine.Failed, engine.Cancelled, engine.Skipped, engine.SkippedWhen}

// waitLine is a wait's start as one line for people.
func waitLine(w engine.WaitInfo) string {
	var s string
	switch w.Kind {
	case engine.WaitBake:
		s = fmt.Sprintf("baking %s until %s", w.ID, w.Until.Local().Format(time.TimeOnly))
	default:
		s = fmt.Sprintf("waiting for approval of %s since %s", w.ID, w.Since.Local().Format("15:04"))
		if !w.Until.IsZero() {
			s += fmt.Sprintf(" (until %s, then %s)", w.Until.Local().Format("15:04"), orDefault(string(w.OnTimeout), "abort"))
		}
	}
	if w.Progress != "" {
		s += " — " + w.Progress
	}
	if w.Message != "" {
		s += ": " + w.Message
	}
	return s
}

// decisionLine is how a wait ended as one line for people.
func decisionLine(w engine.WaitInfo, d engine.Decision) string {
	switch d.Kind {
	case engine.Approved:
		s := fmt.Sprintf("%s approved by %s", w.ID, d.By)
		if d.Reason != "" {
			s += ": " + d.Reason
		}
		return s
	case engine.AutoApproved:
		return fmt.Sprintf("%s approved automatically (--auto-approve)", w.ID)
	case engine.TimedOut:
		return fmt.Sprintf("%s: nobody approved in time (%s)", w.ID, d.Reason)
	case engine.Baked:
		return fmt.Sprintf("%s: bake time over", w.ID)
	case engine.Aborted:
		s := fmt.Sprintf("%s: aborted by %s", w.ID, d.By)
		if d.Reason != "" {
			s += ": " + d.Reason
		}
		return s
	}
	return fmt.Sprintf("%s: %s (%s)", w.ID, d.Kind, d.Reason)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
