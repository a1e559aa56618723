// Package cli owns what each rollout command does once its command line is
// parsed: loading the plan, connecting to the API or the built-in simulator,
// the rules for resuming or starting over, the journal, the reporters and
// the live view. It is the layer main calls, and it is testable without
// building the binary.
//
// cli never decides an exit status and never exits: a command returns nil,
// or an error that says what kind of end it was (an invalid command line or
// plan, an interrupt, a run's verdict, or a plain failure), and main maps
// that to the process's exit status.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// Env is the process's outside world, injectable for tests.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether stdout is an interactive terminal.
	IsTerminal func() bool
}

// Command is one subcommand. Flags declares the command's flags on fs and
// returns the function that runs the command once fs has parsed the
// command line; args are the positional arguments.
type Command struct {
	Name  string
	Usage string // after "rollout "
	Short string
	Flags func(fs *flag.FlagSet) func(ctx context.Context, env *Env, args []string) error
}

// Commands lists every subcommand in the order help shows them.
func Commands() []*Command {
	return []*Command{
		{"validate", "validate PLAN [--var name=value]...", "check a plan and report every error", validateFlags},
		{"plan", "plan PLAN [--all] [--json] [--sim] [--offline] [flags]", "preview what run would do, changing nothing", planFlags},
		{"run", "run PLAN [--sim] [--no-tui|--json] [--resume|--fresh] [--auto-approve] [--yes] [flags]", "roll the plan out", runFlags},
		{"status", "status [PLAN] [--state-dir DIR] [--refresh] [--json] [--sim]", "show the journal's view of the last run", statusFlags},
		{"approve", "approve PLAN [--step NAME] [--reason TEXT] [--state-dir DIR] [--timeout D]", "approve what a run in progress waits for, from any terminal", approveFlags},
		{"abort", "abort PLAN [--reason TEXT] [--state-dir DIR] [--timeout D]", "abort a run in progress from any terminal (on_failure runs, exit 1)", abortFlags},
		{"watch", "watch [PLAN] [--state-dir DIR] [--no-tui]", "follow a run in progress from another terminal (a approves, x aborts)", watchFlags},
		{"history", "history [PLAN] [--state-dir DIR] [--json] [--sim]", "list every past run of a plan: who, when, outcome, approvals, ids", historyFlags},
		{"reject", "reject --diff N [--reinstall] [--yes] [--plan PLAN] [--state-dir DIR]", "reject an open diff (the manual escape hatch)", rejectFlags},
		{"switch", "switch --fleet NAME (--to IMAGE | --profile ID) [--plan PLAN] [--yes] [--max-machines N] [--force-after D]", "switch a fleet's profile (the manual escape hatch of a cut-over)", switchFlags},
		{"sim", "sim --plan PLAN [--listen ADDR] [--speed N] [--scenario FILE]", "serve the built-in Clanforge simulator", simFlags},
		{"schema", "schema", "print the plan JSON Schema", schemaFlags},
		{"completion", "completion bash|zsh|fish", "print a shell completion script (commands, flags, plan files)", completionFlags},
	}
}

// Find returns the command called name, or nil.
func Find(name string) *Command {
	for _, c := range Commands() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ErrUsage matches every error about an invalid command line or plan.
var ErrUsage = errors.New("invalid command line or plan")

// ErrInterrupted matches every error of a command that stopped because it
// was interrupted (a signal, or a cancel confirmed in the live view).
var ErrInterrupted = errors.New("interrupted")

// Error is a command's end with a message for the person who ran it. Kind
// is ErrUsage, ErrInterrupted or nil (a plain failure); errors.Is matches
// it.
type Error struct {
	Kind error
	Msg  string
	// Rendered is true when Msg was rendered by a printer that escapes and
	// colours it itself (plan errors); otherwise the caller shows Msg
	// through the output boundary.
	Rendered bool
}

func (e *Error) Error() string { return e.Msg }

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// RunError is the end of a run whose verdict is not a success. Msg may be
// empty: the reporter has already said everything.
type RunError struct {
	Verdict engine.Verdict
	Msg     string
}

// Error is the message for the person, which may be empty: the reporter or
// the live view has already said how the run ended.
func (e *RunError) Error() string { return e.Msg }

// Is matches ErrInterrupted for an interrupted run.
func (e *RunError) Is(target error) bool {
	return target == ErrInterrupted && e.Verdict == engine.VerdictInterrupted
}

func usageErr(format string, a ...any) error {
	return &Error{Kind: ErrUsage, Msg: sprintf(format, a...)}
}

func failErr(format string, a ...any) error {
	return &Error{Msg: sprintf(format, a...)}
}

func interruptedErr(format string, a ...any) error {
	return &Error{Kind: ErrInterrupted, Msg: sprintf(format, a...)}
}

// sprintf is fmt.Sprintf through the output boundary: every string, error
// or Stringer argument (a plan name, a path, an API error) is masked and
// escaped on its own, so that a newline or an escape sequence in it cannot
// forge or rewrite a line; the format is ours. The result is masked once
// more as a whole, for a secret split across arguments.
func sprintf(format string, a ...any) string {
	safe := make([]any, len(a))
	for i, v := range a {
		switch x := v.(type) {
		case string:
			safe[i] = redact.Terminal(x)
		case error:
			safe[i] = redact.Terminal(x.Error())
		case fmt.Stringer:
			safe[i] = redact.Terminal(x.String())
		default:
			safe[i] = v
		}
	}
	return redact.String(fmt.Sprintf(format, safe...))
}

// printf writes sprintf's result to w.
func printf(w io.Writer, format string, a ...any) {
	_, _ = io.WriteString(w, sprintf(format, a...))
}

// RegisterSecrets registers the credentials in the environment with the
// output boundary, so that no printer shows them in any encoding. main
// calls it before anything is printed.
func (env *Env) RegisterSecrets() {
	access, secret := env.Getenv("CLANFORGE_ACCESS_KEY"), env.Getenv("CLANFORGE_SECRET_KEY")
	if access != "" && secret != "" {
		redact.AddBasicAuth(access, secret)
	} else {
		redact.AddSecret(access, secret)
	}
	if tok := env.Getenv("CLANFORGE_TOKEN"); tok != "" {
		redact.AddBearer(tok)
	}
}

// varFlags collects repeated --var name=value overrides.
type varFlags map[string]string

func (v varFlags) String() string { return "" }

func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	v[name] = value
	return nil
}

func addVarFlag(fs *flag.FlagSet) varFlags {
	v := varFlags{}
	fs.Var(v, "var", "override a plan variable (name=value), repeatable")
	return v
}

// onePlan checks that exactly one plan path was given.
func onePlan(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 1:
		return pos[0], nil
	case 0:
		return "", usageErr("rollout %s: missing the plan file\nusage: rollout %s", cmd, Find(cmd).Usage)
	}
	return "", usageErr("rollout %s: one plan file expected, got %d (%s)\nusage: rollout %s", cmd, len(pos), strings.Join(pos, " "), Find(cmd).Usage)
}

// atMostOnePlan reads the optional plan argument of a command that can
// also find its state directory alone (status, history, watch); what names
// the argument in the usage error ("plan", "plan file").
func atMostOnePlan(cmd, what string, args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", nil
	case 1:
		return args[0], nil
	}
	return "", usageErr("rollout %s: at most one %s\nusage: rollout %s", cmd, what, Find(cmd).Usage)
}

// planArgOrFlag lets a command whose plan is the optional --plan flag take
// it as its one argument instead (reject, sim); any other argument is a
// usage error.
func planArgOrFlag(cmd string, args []string, plan *string) error {
	if len(args) == 1 && *plan == "" {
		*plan = args[0]
	} else if len(args) > 0 {
		return usageErr("rollout %s: unexpected arguments %v\nusage: rollout %s", cmd, args, Find(cmd).Usage)
	}
	return nil
}

// printDoc prints a read-only command's document (status, history): as
// JSON with --json, else as the document's own text. Names, reasons,
// errors and states come from plans, people and the API, so every string
// goes through the output boundary first, on either path.
func printDoc[D interface{ text(io.Writer) error }](out io.Writer, doc D, asJSON bool) error {
	if asJSON {
		enc := redact.NewJSONEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	return redact.Copy(doc, redact.Terminal).text(out)
}

// noJournalErr is the error of a command that reads a state directory's
// journal: a missing journal says the plan has not run there.
func noJournalErr(cmd, dir string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return failErr("rollout %s: no journal in %s: this plan has not run here", cmd, dir)
	}
	return failErr("rollout %s: %v", cmd, err)
}

// loadPlan loads a plan; every plan error is an ErrUsage error listing all
// the errors, positioned.
func (env *Env) loadPlan(path string, vars varFlags) (*plan.Plan, error) {
	p, err := plan.Load(path, plan.Options{Vars: vars})
	if err == nil {
		// Every value the plan read from the environment is a secret to
		// every printer from here on.
		redact.Register(p.Secrets()...)
		return p, nil
	}
	var pe plan.Errors
	if errors.As(err, &pe) {
		return nil, &Error{Kind: ErrUsage, Msg: pe.Render(env.color(env.Stderr)), Rendered: true}
	}
	return nil, usageErr("%v", err)
}

// confirm asks a yes/no question on the terminal; without a terminal it
// refuses, so that scripts must say --yes.
func (env *Env) confirm(question string) error {
	if !env.attended() {
		return usageErr("%s\nrefusing without a terminal to confirm on: add --yes", question)
	}
	printf(env.Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return failErr("no answer: %v", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return failErr("cancelled; nothing was changed")
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
