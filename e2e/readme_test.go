package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	line int    // of the opening fence, 1-based
	lang string // the info string's first word
	body []string
}

// fences splits a Markdown document into its fenced code blocks, reporting
// what is malformed: an opening fence without a language (a newcomer's
// viewer then guesses), a closing fence with an info string or another
// indentation or length than its opening one, and a fence still open at
// the end of the file (everything after it renders as code).
func fences(src string) ([]fence, []string) {
	var out []fence
	var bad []string
	var open *fence
	var openMark, openIndent string
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		if !strings.HasPrefix(trimmed, "```") {
			if open != nil {
				open.body = append(open.body, strings.TrimPrefix(line, openIndent))
			}
			continue
		}
		mark := trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
		info := strings.TrimSpace(trimmed[len(mark):])
		if open == nil {
			if info == "" {
				bad = append(bad, lineMsg(i+1, "opening fence without a language"))
			}
			open = &fence{line: i + 1}
			if f := strings.Fields(info); len(f) > 0 {
				open.lang = f[0]
			}
			openMark, openIndent = mark, indent
			continue
		}
		switch {
		case info != "":
			bad = append(bad, lineMsg(i+1, "fence with an info string inside the block opened at line "+strconv.Itoa(open.line)))
			continue
		case mark != openMark || indent != openIndent:
			bad = append(bad, lineMsg(i+1, "closing fence differs from its opening one at line "+strconv.Itoa(open.line)))
		}
		out = append(out, *open)
		open = nil
	}
	if open != nil {
		bad = append(bad, lineMsg(open.line, "fence never closed"))
	}
	return out, bad
}

func lineMsg(n int, msg string) string { return "README.md:" + strconv.Itoa(n) + ": " + msg }

// TestFencesFindsMalformedBlocks: the checker itself reports each kind of
// malformed fence, so that the README test cannot pass by seeing nothing.
func TestFencesFindsMalformedBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"well formed", "a\n```sh\nx\n```\n", ""},
		{"no language", "```\nx\n```\n", "opening fence without a language"},
		{"never closed", "```sh\nx\n", "fence never closed"},
		{"info on a closing fence", "```sh\nx\n```yaml\ny\n```\n", "fence with an info string"},
		{"indentation differs", "  ```sh\n  x\n```\n", "closing fence differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := fences(tc.src)
			if tc.want == "" {
				if len(bad) != 0 || len(got) != 1 || got[0].lang != "sh" || len(got[0].body) != 1 {
					t.Fatalf("fences = %+v, problems %v", got, bad)
				}
				return
			}
			if len(bad) == 0 || !strings.Contains(strings.Join(bad, "\n"), tc.want) {
				t.Fatalf("problems %v, want one saying %q", bad, tc.want)
			}
		})
	}
}

// TestREADMECodeBlocks holds the README's code to what a newcomer copies
// from it: every fence well formed, every YAML block valid YAML, and every
// shell line that runs rollout (as `rollout …` or `go run . …`) naming a
// command and flags that exist and files that are there, every `make`
// target in the Makefile.
func TestREADMECodeBlocks(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, bad := fences(string(src))
	for _, b := range bad {
		t.Error(b)
	}
	if len(blocks) < 5 {
		t.Fatalf("found %d code blocks in the README", len(blocks))
	}
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	helps := map[string]string{}
	help := func(cmd string) string {
		if h, ok := helps[cmd]; ok {
			return h
		}
		// An unknown command's "help" is an error message, kept for the
		// report; the usage line is what proves the command exists.
		out, _ := exec.Command(binary, cmd, "--help").CombinedOutput()
		helps[cmd] = string(out)
		return helps[cmd]
	}
	for _, b := range blocks {
		switch b.lang {
		case "yaml":
			var v any
			if err := yaml.Unmarshal([]byte(strings.Join(b.body, "\n")), &v); err != nil {
				t.Errorf("README.md:%d: the yaml block does not parse: %v", b.line, err)
			}
		case "sh":
			for i, line := range b.body {
				at := "README.md:" + strconv.Itoa(b.line+1+i)
				checkShellLine(t, at, line, string(makefile), help)
			}
		}
	}
}

var makeTarget = regexp.MustCompile(`(?m)^([a-z][a-z-]*):`)

// checkShellLine checks one line of a sh block.
func checkShellLine(t *testing.T, at, line, makefile string, help func(string) string) {
	t.Helper()
	if i := strings.Index(line, "#"); i >= 0 && !strings.Contains(line[:i], "'") && !strings.Contains(line[:i], `"`) {
		line = line[:i]
	}
	words := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "&"))
	for len(words) > 0 && strings.Contains(words[0], "=") && words[0] != "export" {
		words = words[1:] // VAR=value before the command
	}
	if len(words) == 0 {
		return
	}
	var args []string
	switch {
	case words[0] == "make":
		for _, w := range words[1:] {
			if !slices.ContainsFunc(makeTarget.FindAllStringSubmatch(makefile, -1), func(m []string) bool { return m[1] == w }) {
				t.Errorf("%s: make %s: the Makefile has no such target", at, w)
			}
		}
		return
	case words[0] == "rollout":
		args = words[1:]
	case len(words) > 2 && words[0] == "go" && words[1] == "run" && words[2] == ".":
		args = words[3:]
	default:
		return
	}
	if len(args) == 0 {
		t.Errorf("%s: rollout without a command", at)
		return
	}
	h := help(args[0])
	if !strings.Contains(h, "usage: rollout "+args[0]) {
		t.Errorf("%s: rollout %s: no such command (rollout says %q)", at, args[0], strings.TrimSpace(h))
		return
	}
	for _, a := range args[1:] {
		switch {
		case a == ">" || strings.HasPrefix(a, ">"):
			return // a redirect: the rest is the shell's
		case strings.HasPrefix(a, "--"):
			name := strings.SplitN(a, "=", 2)[0]
			if !strings.Contains(h, "  "+name+"\t") && !strings.Contains(h, "  "+name+" ") {
				t.Errorf("%s: rollout %s has no flag %s", at, args[0], name)
			}
		case strings.HasPrefix(a, "examples/"):
			if _, err := os.Stat(filepath.Join("..", a)); err != nil {
				t.Errorf("%s: %s does not exist", at, a)
			}
		}
	}
}
