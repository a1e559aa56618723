package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionScripts: every shell's script names every command and
// every flag of each command (they come from the same flag definitions the
// commands parse), and is valid in its shell when that shell is installed.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			var b bytes.Buffer
			if err := Completion(&b, shell); err != nil {
				t.Fatal(err)
			}
			for _, c := range completionModel() {
				if !strings.Contains(b.String(), c.name) {
					t.Errorf("no command %s", c.name)
				}
				for _, f := range c.flags {
					if !strings.Contains(b.String(), f.name) {
						t.Errorf("no flag --%s of %s", f.name, c.name)
					}
				}
			}
			bin, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed: syntax not checked", shell)
			}
			script := filepath.Join(t.TempDir(), "completion."+shell)
			if err := os.WriteFile(script, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", script).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
	if err := Completion(&bytes.Buffer{}, "tcsh"); err == nil {
		t.Error("an unknown shell was accepted")
	}
}

// TestBashCompletes drives the bash function as bash's completion would.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	var b bytes.Buffer
	if err := Completion(&b, "bash"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "c.bash")
	_ = os.WriteFile(script, b.Bytes(), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "game.yaml"), []byte("x"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	tests := []struct{ words, want, not string }{
		{"rollout ru", "run", ""},
		{"rollout run --res", "--resume", ""},
		{"rollout run ga", "game.yaml", ""},
		{"rollout run no", "", "notes.txt"},
		{"rollout status --state-dir ", "", "game.yaml"},
		{"rollout help va", "validate", ""},
	}
	for _, tt := range tests {
		words := strings.Fields(tt.words)
		if strings.HasSuffix(tt.words, " ") {
			words = append(words, "")
		}
		cmd := exec.Command(bash, "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _rollout; printf '%s\n' "${COMPREPLY[@]}"`, "x", script)
		cmd.Args = append(cmd.Args, words...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.words, err, out)
		}
		if tt.want != "" && !strings.Contains(string(out), tt.want) {
			t.Errorf("%q completes to %q, want %q", tt.words, out, tt.want)
		}
		if tt.not != "" && strings.Contains(string(out), tt.not) {
			t.Errorf("%q completes to %q, must not offer %q", tt.words, out, tt.not)
		}
	}
}
