package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

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

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseArgs parses flags wherever they stand among the positional
// arguments (`rollout run plan.yaml --sim` as well as `rollout run --sim
// plan.yaml`), which the standard library alone does not allow.
func parseArgs(fs *flag.FlagSet, cmd string, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, &exitError{code: exitOK, toStdout: true, msg: fmt.Sprintf("usage: rollout %s\n%s", usageOf(cmd), flagHelp(fs))}
			}
			return nil, usageErr("rollout %s: %v\nusage: rollout %s", cmd, err, usageOf(cmd))
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func usageOf(name string) string {
	for _, c := range commands {
		if c.name == name {
			return c.usage
		}
	}
	return name
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  --%s\t%s\n", f.Name, f.Usage)
	})
	return b.String()
}

// onePlan checks that exactly one plan path was given.
func onePlan(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 1:
		return pos[0], nil
	case 0:
		return "", usageErr("rollout %s: missing the plan file\nusage: rollout %s", cmd, usageOf(cmd))
	}
	return "", usageErr("rollout %s: one plan file expected, got %d (%s)\nusage: rollout %s", cmd, len(pos), strings.Join(pos, " "), usageOf(cmd))
}
