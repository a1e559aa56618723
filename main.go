// Command rollout ships game-server builds across a Multiplay Clanforge fleet
// from a declarative YAML plan. main only parses the command line, wires
// signals, calls package cli and maps what it returns to the exit status;
// everything a command does lives in cli.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/charmbracelet/x/term"

	"github.com/rollout/rollout/cli"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// Exit statuses of plan format v1.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	env := &cli.Env{
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Getenv:     os.Getenv,
		IsTerminal: func() bool { return term.IsTerminal(os.Stdout.Fd()) },
	}
	env.RegisterSecrets()
	// The first SIGINT or SIGTERM cancels ctx: a run then sends nothing
	// more that changes state, records what is unfinished and exits 130.
	// A second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		stop()
		fmt.Fprintln(os.Stderr, "\ninterrupt: stopping; nothing more that changes state will be sent (interrupt again to exit at once)")
		<-again
		fmt.Fprintln(os.Stderr, "second interrupt: exiting now")
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run dispatches one command line and returns the exit status.
func run(ctx context.Context, env *cli.Env, args []string) int {
	switch {
	case len(args) == 0:
		usage(env.Stderr)
		return exitUsage
	case args[0] == "-h" || args[0] == "--help" || (args[0] == "help" && len(args) == 1):
		usage(env.Stdout)
		return exitOK
	case args[0] == "--version" || args[0] == "version":
		fmt.Fprintln(env.Stdout, version())
		return exitOK
	case args[0] == "help":
		// `rollout help run` is `rollout run --help`.
		args = []string{args[1], "--help"}
	}
	cmd := cli.Find(args[0])
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "rollout: unknown command \"%s\"%s\nrun 'rollout help' for the list of commands\n", redact.Terminal(args[0]), hint(args[0], commandNames()))
		return exitUsage
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	exec := cmd.Flags(fs)
	pos, err := parseArgs(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(env.Stdout, "usage: rollout %s\n%s\n\nflags:\n%s", cmd.Usage, cmd.Short, flagHelp(fs))
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "rollout %s: %s\nusage: rollout %s\n", cmd.Name, redact.Terminal(flagError(fs, err)), cmd.Usage)
		return exitUsage
	}
	return exitCode(env, exec(ctx, env, pos))
}

// hint is "; did you mean ...?" when a close name exists.
func hint(got string, names []string) string {
	if h := plan.DidYouMean(got, names); h != "" {
		return "; " + h
	}
	return ""
}

// flagError says what was wrong with a flag, suggesting the closest one
// for an unknown flag.
func flagError(fs *flag.FlagSet, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return strings.Replace(err.Error(), " flag -", " flag --", 1)
	}
	name = "--" + strings.TrimLeft(name, "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	return "unknown flag " + name + hint(name, names)
}

// version names the build: the module version when installed with go
// install from a tag, else the VCS revision it was built from.
func version() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" && !strings.HasPrefix(bi.Main.Version, "v0.0.0-") {
			return "rollout " + strings.TrimSuffix(bi.Main.Version, "+dirty") + ", plan format v1"
		}
		modified := false
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				v += " revision " + s.Value[:min(12, len(s.Value))]
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified {
			v += " (modified)"
		}
	}
	return "rollout " + v + ", plan format v1"
}

// exitCode prints a command's error and maps it to plan format v1's exit
// statuses: 2 for an invalid command line or plan, 130 for an interrupt, 1
// for every other failure (a run that failed or aborted among them).
func exitCode(env *cli.Env, err error) int {
	if err == nil {
		return exitOK
	}
	if msg := strings.TrimRight(err.Error(), "\n"); msg != "" {
		var ce *cli.Error
		if !errors.As(err, &ce) || !ce.Rendered {
			msg = redact.TerminalLines(msg)
		}
		fmt.Fprintln(env.Stderr, msg)
	}
	switch {
	case errors.Is(err, cli.ErrUsage):
		return exitUsage
	case errors.Is(err, cli.ErrInterrupted):
		return exitInterrupted
	}
	return exitFailed
}

// parseArgs parses flags wherever they stand among the positional
// arguments (`rollout run plan.yaml --sim` as well as `rollout run --sim
// plan.yaml`), which the standard library alone does not allow.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  --%s\t%s\n", f.Name, f.Usage)
	})
	return b.String()
}

func commandNames() []string {
	var n []string
	for _, c := range cli.Commands() {
		n = append(n, c.Name)
	}
	return n
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "rollout ships a game-server build across a Multiplay Clanforge fleet from a YAML plan.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range cli.Commands() {
		fmt.Fprintf(w, "  rollout %s\n      %s\n", c.Usage, c.Short)
	}
	fmt.Fprintln(w, "\nrollout help COMMAND (or rollout COMMAND --help) shows a command's flags.")
	fmt.Fprintln(w, "Environment: CLANFORGE_TOKEN (Bearer) or CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY (Basic), CLANFORGE_ASID, CLANFORGE_URL, NO_COLOR.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 rollout failed or aborted, 2 invalid plan or command line, 130 interrupted.")
}
