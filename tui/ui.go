// Package tui owns the live terminal view of a rollout run: a Bubble Tea
// program that shows the run's header (plan, clock, progress, counts, waves,
// estimate, request rate, abort banner), one row per target, a detail pane, a
// filter, help and the cancel confirmation, plus the end-of-run summary that
// the caller prints once the program has ended.
//
// The engine talks to the view only through engine.Observer, implemented by
// UI. Observer calls never block: they land in a mutex-protected coalescing
// buffer that the program drains on a tick.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/rollout/rollout/engine"
)

// Options configure the live view.
type Options struct {
	// PlanName is shown until RunStarted names the plan.
	PlanName string
	// In and Out default to the terminal (stdin/stdout).
	In  io.Reader
	Out io.Writer
	// Width and Height fix the size when Out is not a terminal; 0 detects it
	// (80×24 until the terminal reports).
	Width, Height int
	// NoColor turns colours off; the NO_COLOR environment variable does too.
	NoColor bool
	// Cancel asks the engine to stop (typically the run context's cancel
	// func). It is called from the program's goroutine and must not block.
	// With nil, confirming a cancel only leaves the view.
	Cancel func()
	// Now is the clock (default time.Now). Rendering uses only this clock,
	// so tests can make frames deterministic.
	Now func() time.Time
	// Tick is how often events are drained into the view (default 100 ms).
	Tick time.Duration
	// Approve approves the wait named id (the approval the banner shows)
	// and Abort aborts the rollout, each once the person confirmed it in
	// a dialog (keys a and x). They are called off the program's
	// goroutine and may block until the run answered; they return what
	// was done ("approved gate@game as alice@laptop"), or an error saying
	// why not, which the view shows. With nil the key is off.
	Approve func(id string) (string, error)
	Abort   func(reason string) (string, error)
	// Watch makes the view a watcher of a run in another process (rollout
	// watch): q and ctrl+c leave the view at once, without a confirmation,
	// and the run goes on.
	Watch bool
	// StayOpen keeps the view on the screen once the run ended, until the
	// person presses q (or ctrl+c), so that what failed can still be
	// opened; set it when someone is at the terminal. Without it the view
	// leaves as soon as it has shown the end, as an unattended run needs.
	// Either way the caller prints the summary afterwards.
	StayOpen bool
	// NoInput makes the view read no keys: it only shows the run. Set it
	// when stdin is not a terminal (nobody is there to press a key, and
	// a file such as /dev/null cannot be waited on as the terminal is).
	NoInput bool
}

// ErrCancelled is returned by Run when the user confirmed a cancel and the
// engine then finished (RunFinished arrived).
var ErrCancelled = errors.New("tui: rollout cancelled by the user")

// ErrForceQuit is returned by Run when the user pressed ctrl+c again while
// the cancel was under way: the view left before the engine finished.
var ErrForceQuit = errors.New("tui: view left before the rollout stopped")

// ErrDetached is returned by Run when a watcher (Options.Watch) left the
// view before the run ended; the run goes on.
var ErrDetached = errors.New("tui: left the view; the rollout goes on")

// UI is the live view. It implements engine.Observer; its methods may be
// called from any goroutine, before or during Run, and never block.
type UI struct {
	opt   Options
	color bool
	buf   *buffer
	model *Model
}

var _ engine.Observer = (*UI)(nil)

// New builds the view. Hand the UI to the engine as its Observer, then call
// Run.
func New(opt Options) *UI {
	color := !opt.NoColor && os.Getenv("NO_COLOR") == ""
	u := &UI{opt: opt, color: color, buf: newBuffer()}
	u.model = newModel(u.buf, opt, color)
	return u
}

// Model is the program's model, for tests that drive Update and View
// directly.
func (u *UI) Model() *Model { return u.model }

// Run shows the view until the engine's RunFinished has been shown (with
// Options.StayOpen: until the person left the finished view with q), the
// user left with a second ctrl+c, or ctx ended. It returns nil after a run
// that ended on its own, ErrCancelled when the user confirmed a cancel (the
// engine has finished), ErrForceQuit when the user left before the engine
// finished, and otherwise an error wrapping ctx.Err() or the terminal's
// failure. The live view uses the alternate screen, so afterwards the
// terminal is as before: print RenderSummary(summary, width, color) then.
func (u *UI) Run(ctx context.Context) error {
	opts := []tea.ProgramOption{
		tea.WithContext(ctx),
		// main owns SIGINT/SIGTERM; in raw mode ctrl+c reaches the model as
		// a key and goes through the confirmation.
		tea.WithoutSignalHandler(),
	}
	switch {
	case u.opt.NoInput:
		opts = append(opts, tea.WithInput(nil))
	case u.opt.In != nil:
		opts = append(opts, tea.WithInput(u.opt.In))
	}
	if u.opt.Out != nil {
		opts = append(opts, tea.WithOutput(u.opt.Out))
	}
	if u.opt.Width > 0 && u.opt.Height > 0 {
		opts = append(opts, tea.WithWindowSize(u.opt.Width, u.opt.Height))
	}
	if !u.color {
		opts = append(opts, tea.WithColorProfile(colorprofile.Ascii))
	}
	final, err := tea.NewProgram(u.model, opts...).Run()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tui: %w", ctx.Err())
		}
		return fmt.Errorf("tui: %w", err)
	}
	m, _ := final.(*Model)
	switch {
	case m == nil:
		return nil
	case m.forceQuit:
		return ErrForceQuit
	case m.userQuit:
		return ErrCancelled
	case m.detached:
		return ErrDetached
	}
	return nil
}

// Summary returns the summary of RunFinished once the view has received it.
// Read it after Run returned.
func (u *UI) Summary() (engine.Summary, bool) {
	return u.model.st.summary, u.model.st.finished
}

// Color reports whether the view renders colours (for RenderSummary).
func (u *UI) Color() bool { return u.color }

// Width is the terminal width the view last knew (80 until the terminal
// reported its size). Pass it to RenderSummary after Run returned, so that
// the summary uses a wide terminal instead of cutting lines at 80 columns.
func (u *UI) Width() int { return u.model.w }

// RunStarted implements engine.Observer.
func (u *UI) RunStarted(info engine.RunInfo) { u.buf.RunStarted(info) }

// WaveStarted implements engine.Observer.
func (u *UI) WaveStarted(step, image string, wave, waves int, instances []string) {
	u.buf.WaveStarted(step, image, wave, waves, instances)
}

// InstanceStarted implements engine.Observer.
func (u *UI) InstanceStarted(id string, at time.Time) { u.buf.InstanceStarted(id, at) }

// JobProgress implements engine.Observer.
func (u *UI) JobProgress(id string, job engine.JobInfo) { u.buf.JobProgress(id, job) }

// InstanceFinished implements engine.Observer.
func (u *UI) InstanceFinished(id string, r engine.Result) { u.buf.InstanceFinished(id, r) }

// Aborting implements engine.Observer.
func (u *UI) Aborting(reason string) { u.buf.Aborting(reason) }

// RequestCount implements engine.Observer.
func (u *UI) RequestCount(n int64) { u.buf.RequestCount(n) }

// Notice implements engine.Observer.
func (u *UI) Notice(n engine.Notice) { u.buf.Notice(n) }

// WaitStarted implements engine.Observer.
func (u *UI) WaitStarted(w engine.WaitInfo) { u.buf.WaitStarted(w) }

// WaitEnded implements engine.Observer.
func (u *UI) WaitEnded(w engine.WaitInfo, d engine.Decision) { u.buf.WaitEnded(w, d) }

// RunFinished implements engine.Observer.
func (u *UI) RunFinished(s engine.Summary) { u.buf.RunFinished(s) }
