package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The examples' headers promise more than TestExamplesReachTheirStatedOutcome
// can see from a --sim run's output: approvals from a second terminal, and
// counts only the simulator knows. These tests hold them.

// TestExampleApprovalsFromASecondTerminal follows the headers of
// examples/ab-cutover.yaml and examples/canary.yaml word for word: the run
// (with --sim and without --auto-approve) in one directory, and the
// header's approve or abort command, run in the same directory from
// another process, each time the run waits.
func TestExampleApprovalsFromASecondTerminal(t *testing.T) {
	type step struct {
		waitFor string   // the wait the run publishes first
		cmd     []string // the command, as the header gives it
	}
	approveAB := []string{"rollout", "approve", "examples/ab-cutover.yaml"}
	tests := []struct {
		name  string
		plan  string
		steps []step
		code  int
		want  []string
		// wantNot must not be in the output.
		wantNot []string
	}{
		{name: "ab-cutover approved twice", plan: "ab-cutover.yaml",
			steps: []step{{"install@game-b after wave 1", approveAB}, {"go_live@game-b", approveAB}},
			code:  exitOK,
			want: []string{"install@game-b after wave 1 approved by ", "go_live@game-b approved by ",
				"prod-eu switched to profile 102 (game-b)", "prod-us switched to profile 102 (game-b)", `rollout "ab-cutover" succeeded`}},
		{name: "ab-cutover aborted at go_live", plan: "ab-cutover.yaml",
			steps: []step{{"install@game-b after wave 1", approveAB},
				{"go_live@game-b", []string{"rollout", "abort", "examples/ab-cutover.yaml", "--reason", "canary looks wrong"}}},
			code: exitFailed,
			want: []string{"go_live@game-b: aborted by ", "canary looks wrong", "switch_eu@prod-eu/game-b skipped",
				"switch@prod-eu/game-a: switch nothing to do: prod-eu: not switched by this run; nothing to switch back",
				"switch@prod-us/game-a: switch nothing to do: prod-us: not switched by this run; nothing to switch back"},
			wantNot: []string{"switch pending", "switched to profile"}},
		{name: "canary aborted after the canary", plan: "canary.yaml",
			steps:   []step{{"install@game after wave 1", []string{"rollout", "abort", "examples/canary.yaml", "--reason", "canary crashed"}}},
			code:    exitFailed,
			want:    []string{"install game: wave 1/3 started", "aborted by ", "canary crashed", "install@eu-1/game skipped"},
			wantNot: []string{"wave 2/3 started", "install@eu-1/game started"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join("..", "examples", tt.plan)
			for _, s := range tt.steps {
				checkHeaderGives(t, src, shellWords(s.cmd))
			}
			dir := t.TempDir()
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "examples", tt.plan), b, 0o644); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "CLANFORGE_ACCESS_KEY=", "CLANFORGE_SECRET_KEY=", "NO_COLOR=1", "USER=oncall")
			run := exec.Command(binary, "run", "examples/"+tt.plan, "--sim", "--speed", "20", "--no-tui")
			run.Dir, run.Env = dir, env
			var out bytes.Buffer
			run.Stdout, run.Stderr = &out, &out
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var runErr error
			go func() { runErr = run.Wait(); close(exited) }()
			t.Cleanup(func() {
				_ = run.Process.Kill()
				<-exited
			})
			name := strings.TrimSuffix(tt.plan, ".yaml")
			stateDir := filepath.Join(dir, ".rollout", name+".sim")
			for _, s := range tt.steps {
				waitingIn(t, stateDir, run.Process.Pid, s.waitFor, exited, &out)
				c := exec.Command(binary, s.cmd[1:]...)
				c.Dir, c.Env = dir, env
				if msg, err := c.CombinedOutput(); err != nil {
					t.Fatalf("%s: exit %d\n%s", shellWords(s.cmd), exitCode(err), msg)
				}
			}
			waitExit(t, exited, &out)
			if exitCode(runErr) != tt.code {
				t.Fatalf("run: exit %d, want %d\n%s", exitCode(runErr), tt.code, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// shellWords writes args as a shell command line, quoting the words with
// spaces, as the headers do.
func shellWords(args []string) string {
	var out []string
	for _, a := range args {
		if strings.ContainsAny(a, " '") {
			a = `"` + a + `"`
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// TestABCutoverExampleAgainstTheSimulator runs examples/ab-cutover.yaml
// (with --auto-approve, as its header says) against the simulator of the
// test process, which counts what the --sim run's output cannot show: one
// update, diff and version of game-b only, every install done, and the
// PATCHes: prod-eu then prod-us to profile 102 with the plan's body; with
// examples/scenarios/ab-rollback.yaml, after those two, exactly one PATCH
// back to 101 for each fleet, which both end on.
func TestABCutoverExampleAgainstTheSimulator(t *testing.T) {
	src, err := os.ReadFile("../examples/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rollback, err := os.ReadFile("../examples/scenarios/ab-rollback.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"ProfileID":102,"Timeout":"2h","MaxMachines":2}`
	t.Run("cut-over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, string(src), fastScenario)
		cmd, out := f.start(f.runArgs("--auto-approve")...)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run: exit %d\n%s", exitCode(err), out)
		}
		checkContractInstalls(t, f.sim, 6)
		if got := strings.Join(patches(f.sim), ", "); got != "prod-eu 102, prod-us 102" {
			t.Fatalf("PATCHes %s, want prod-eu then prod-us to 102", got)
		}
		checkSwitchedOnce(t, f.sim, 102, body)
	})
	t.Run("rollback", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, string(src), fastScenario+string(rollback))
		cmd, out := f.start(f.runArgs("--auto-approve")...)
		err := cmd.Wait()
		if exitCode(err) != exitFailed {
			t.Fatalf("run: exit %d, want 1\n%s", exitCode(err), out)
		}
		checkContractInstalls(t, f.sim, 6)
		got := patches(f.sim)
		if len(got) != 4 || got[0] != "prod-eu 102" || got[1] != "prod-us 102" {
			t.Fatalf("PATCHes %v, want prod-eu and prod-us to 102, then one back to 101 each", got)
		}
		for _, sw := range f.sim.Switches()[:2] {
			if sw.Body != body || !sw.Applied {
				t.Errorf("forward PATCH to %s: applied %v, body %s", sw.Fleet, sw.Applied, sw.Body)
			}
		}
		checkSwitchedOnce(t, f.sim, 101, `{"ProfileID":101}`)
	})
}
