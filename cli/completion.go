package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

func completionFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		if len(args) != 1 {
			return usageErr("rollout completion: name one shell: bash, zsh or fish\nusage: rollout %s", Find("completion").Usage)
		}
		return Completion(env.Stdout, args[0])
	}
}

// completionFlag is one flag of a command, as a completion script needs it.
type completionFlag struct {
	name, usage string
	bool        bool   // takes no value
	files       string // "plan", "dir" or "" for a value to type
}

// completionCommand is a command with its flags, read from the same flag
// definitions the command parses, so that completion never drifts.
type completionCommand struct {
	name, short string
	plans       bool // takes a plan file as positional argument
	flags       []completionFlag
}

func completionModel() []completionCommand {
	var out []completionCommand
	for _, c := range Commands() {
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		c.Flags(fs)
		cc := completionCommand{name: c.Name, short: c.Short, plans: strings.Contains(c.Usage, "PLAN")}
		fs.VisitAll(func(f *flag.Flag) {
			cf := completionFlag{name: f.Name, usage: f.Usage}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				cf.bool = true
			}
			switch f.Name {
			case "plan", "scenario":
				cf.files = "plan"
			case "state-dir":
				cf.files = "dir"
			}
			cc.flags = append(cc.flags, cf)
		})
		sort.Slice(cc.flags, func(a, b int) bool { return cc.flags[a].name < cc.flags[b].name })
		out = append(out, cc)
	}
	return out
}

// Completion writes the completion script for shell: commands, each
// command's flags, and plan files (*.yaml, *.yml) where a plan goes.
func Completion(w io.Writer, shell string) error {
	model := completionModel()
	switch shell {
	case "bash":
		return bashCompletion(w, model)
	case "zsh":
		return zshCompletion(w, model)
	case "fish":
		return fishCompletion(w, model)
	}
	return usageErr("rollout completion: unknown shell %q; want bash, zsh or fish", shell)
}

func commandWords(model []completionCommand) string {
	var names []string
	for _, c := range model {
		names = append(names, c.name)
	}
	return strings.Join(append(names, "help"), " ")
}

func bashCompletion(w io.Writer, model []completionCommand) error {
	plans, dirs, values := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var b strings.Builder
	b.WriteString(`# bash completion for rollout; load it with: source <(rollout completion bash)
_rollout_plans() {
	local f
	for f in $(compgen -f -- "$1"); do
		if [[ -d $f ]]; then echo "$f/"; elif [[ $f == *.yaml || $f == *.yml ]]; then echo "$f"; fi
	done
}
_rollout() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	if (( COMP_CWORD == 1 )); then
		COMPREPLY=($(compgen -W "` + commandWords(model) + ` --help --version" -- "$cur"))
		return
	fi
	local cmd=${COMP_WORDS[1]} flags="" plans=0
	case $cmd in
`)
	for _, c := range model {
		var names []string
		for _, f := range c.flags {
			names = append(names, "--"+f.name)
			switch {
			case f.files == "plan":
				plans["--"+f.name] = true
			case f.files == "dir":
				dirs["--"+f.name] = true
			case !f.bool:
				values["--"+f.name] = true
			}
		}
		p := 0
		if c.plans {
			p = 1
		}
		fmt.Fprintf(&b, "\t%s) flags=%q plans=%d ;;\n", c.name, strings.Join(names, " "), p)
	}
	fmt.Fprintf(&b, `	help) COMPREPLY=($(compgen -W "%s" -- "$cur")); return ;;
	completion) COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")); return ;;
	esac
	case $prev in
	%s) COMPREPLY=($(_rollout_plans "$cur")); compopt -o nospace 2>/dev/null; return ;;
	%s) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	%s) return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
	elif (( plans )); then
		COMPREPLY=($(_rollout_plans "$cur"))
		compopt -o nospace 2>/dev/null
	fi
}
complete -F _rollout rollout
`, commandWords(model), strings.Join(sortedKeys(plans), "|"), strings.Join(sortedKeys(dirs), "|"), strings.Join(sortedKeys(values), "|"))
	_, err := io.WriteString(w, b.String())
	return err
}

func zshQuote(s string) string {
	s = strings.NewReplacer("'", "'\\''", "[", "\\[", "]", "\\]", ":", "\\:").Replace(s)
	return s
}

func zshCompletion(w io.Writer, model []completionCommand) error {
	var b strings.Builder
	b.WriteString("#compdef rollout\n# zsh completion for rollout; load it with: source <(rollout completion zsh)\n_rollout() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, c := range model {
		fmt.Fprintf(&b, "\t\t'%s:%s'\n", c.name, zshQuote(c.short))
	}
	b.WriteString("\t\t'help:show a command''s usage'\n\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' cmds\n\t\treturn\n\tfi\n\tcase $words[2] in\n")
	for _, c := range model {
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments -s", c.name)
		for _, f := range c.flags {
			switch {
			case f.bool:
				fmt.Fprintf(&b, " \\\n\t\t\t'--%s[%s]'", f.name, zshQuote(f.usage))
			case f.files == "plan":
				fmt.Fprintf(&b, " \\\n\t\t\t'--%s[%s]:file:_files -g \"*.(yaml|yml)\"'", f.name, zshQuote(f.usage))
			case f.files == "dir":
				fmt.Fprintf(&b, " \\\n\t\t\t'--%s[%s]:directory:_files -/'", f.name, zshQuote(f.usage))
			default:
				fmt.Fprintf(&b, " \\\n\t\t\t'*--%s[%s]:value: '", f.name, zshQuote(f.usage))
			}
		}
		if c.plans {
			b.WriteString(" \\\n\t\t\t'*:plan:_files -g \"*.(yaml|yml)\"'")
		}
		b.WriteString("\n\t\t;;\n")
	}
	b.WriteString("\thelp) _describe 'command' cmds ;;\n\tcompletion) _values 'shell' bash zsh fish ;;\n\tesac\n}\nif [[ $zsh_eval_context[-1] == loadautofunc ]]; then _rollout \"$@\"; else compdef _rollout rollout; fi\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func fishCompletion(w io.Writer, model []completionCommand) error {
	var b strings.Builder
	b.WriteString("# fish completion for rollout; load it with: rollout completion fish | source\ncomplete -c rollout -f\n")
	all := commandWords(model)
	for _, c := range model {
		fmt.Fprintf(&b, "complete -c rollout -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", all, c.name, fishQuote(c.short))
	}
	fmt.Fprintf(&b, "complete -c rollout -n 'not __fish_seen_subcommand_from %s' -a help -d 'show a command usage'\n", all)
	for _, c := range model {
		cond := fmt.Sprintf("'__fish_seen_subcommand_from %s'", c.name)
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c rollout -n %s -l %s -d %s", cond, f.name, fishQuote(f.usage))
			switch {
			case f.files == "plan":
				line += " -r -F"
			case f.files == "dir":
				line += " -r -a '(__fish_complete_directories)'"
			case !f.bool:
				line += " -r"
			}
			b.WriteString(line + "\n")
		}
		if c.plans {
			fmt.Fprintf(&b, "complete -c rollout -n %s -a '(__fish_complete_suffix .yaml; __fish_complete_suffix .yml)'\n", cond)
		}
	}
	fmt.Fprintf(&b, "complete -c rollout -n '__fish_seen_subcommand_from help' -a %s\n", fishQuote(all))
	b.WriteString("complete -c rollout -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	_, err := io.WriteString(w, b.String())
	return err
}
