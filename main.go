// Command rollout ships game-server builds across a Multiplay Clanforge fleet
// from a declarative YAML plan. main owns everything a library must not do:
// reading flags and the environment, wiring signals, choosing a reporter,
// printing, and deciding the exit status.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/rollout/rollout/plan"
)

// Exit statuses of plan format v1.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitError carries an exit status up to main with the message to print.
type exitError struct {
	code int
	msg  string
	// toStdout prints msg on stdout: asked-for help is output, not an error.
	toStdout bool
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

func failErr(format string, a ...any) error {
	return &exitError{code: exitFailed, msg: fmt.Sprintf(format, a...)}
}

// command is one subcommand.
type command struct {
	name  string
	usage string
	short string
	run   func(ctx context.Context, app *app, args []string) error
}

// app is the process's outside world, injectable for tests.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// isTerminal reports whether stdout is an interactive terminal.
	isTerminal func() bool
	// interrupts counts signals received, so that the run command can
	// tell a second interrupt apart.
	interrupts chan os.Signal
}

var commands []*command

func init() {
	commands = []*command{
		{"validate", "validate PLAN [--var name=value]...", "check a plan and report every error", cmdValidate},
		{"plan", "plan PLAN [--all] [--json] [--sim] [--offline] [--var name=value]...", "preview what run would do, changing nothing", cmdPlan},
		{"run", "run PLAN [--sim] [--no-tui] [--json] [--resume|--fresh] [--yes] [--state-dir DIR] [--speed N] [--scenario FILE] [--concurrency N] [--poll-min D] [--poll-max D] [--var name=value]...", "roll the plan out", cmdRun},
		{"status", "status [PLAN] [--state-dir DIR] [--refresh] [--json] [--sim]", "show the journal's view of the last run", cmdStatus},
		{"reject", "reject --diff N [--reinstall] [--yes] [--plan PLAN]", "reject an open diff (the manual escape hatch)", cmdReject},
		{"sim", "sim --listen ADDR --plan PLAN [--speed N] [--scenario FILE]", "serve the built-in Clanforge simulator", cmdSim},
		{"schema", "schema", "print the plan JSON Schema", cmdSchema},
	}
}

func main() {
	a := &app{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		getenv:     os.Getenv,
		isTerminal: stdoutIsTerminal,
		interrupts: make(chan os.Signal, 4),
	}
	os.Exit(a.main(os.Args[1:]))
}

func (a *app) main(args []string) int {
	// The first SIGINT or SIGTERM cancels the context: the run then sends
	// nothing more that changes state, records what is unfinished and
	// exits 130. A second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signal.Notify(a.interrupts, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(a.interrupts)
	go func() {
		n := 0
		for range a.interrupts {
			n++
			if n == 1 {
				fmt.Fprintln(a.stderr, "\ninterrupt: stopping; nothing more that changes state will be sent (interrupt again to exit at once)")
				cancel()
				continue
			}
			fmt.Fprintln(a.stderr, "second interrupt: exiting now")
			os.Exit(exitInterrupted)
		}
	}()

	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		a.usage(a.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(a.stdout, "rollout (plan format v1)")
		return exitOK
	}
	var cmd *command
	for _, c := range commands {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		msg := fmt.Sprintf("rollout: unknown command %q", args[0])
		if hint := plan.DidYouMean(args[0], commandNames()); hint != "" {
			msg += "; " + hint
		}
		fmt.Fprintln(a.stderr, msg)
		fmt.Fprintln(a.stderr, "run 'rollout help' for the list of commands")
		return exitUsage
	}
	err := cmd.run(ctx, a, args[1:])
	return a.exitCode(err)
}

func (a *app) exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			w := a.stderr
			if ee.toStdout {
				w = a.stdout
			}
			fmt.Fprintln(w, strings.TrimRight(ee.msg, "\n"))
		}
		return ee.code
	}
	fmt.Fprintln(a.stderr, "rollout:", err)
	return exitFailed
}

func commandNames() []string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return n
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "rollout ships a game-server build across a Multiplay Clanforge fleet from a YAML plan.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  rollout %s\n      %s\n", c.usage, c.short)
	}
	fmt.Fprintln(w, "\nEnvironment: CLANFORGE_ACCESS_KEY, CLANFORGE_SECRET_KEY, CLANFORGE_ASID, CLANFORGE_URL, NO_COLOR.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 rollout failed or aborted, 2 invalid plan or command line, 130 interrupted.")
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
