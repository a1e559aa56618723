package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
)

// approvePlan is killPlan with an approve step between the diff and the
// version (approve_ship), on_failure reject, and the extra lines of the
// install step (e.g. "    pause_after: [approve]\n").
func approvePlan(install string) string {
	src := strings.Replace(killPlan, "name: killme", "name: approve-e2e", 1)
	src = strings.Replace(src, `  - name: version
    type: version
    needs: [diff]`, `  - name: approve_ship
    type: approve
    needs: [diff]
    message: "Ship 7.0.0?"
  - name: version
    type: version
    needs: [approve_ship]`, 1)
	return src + install + "on_failure:\n  - type: reject\n"
}

// background starts `run --no-tui` and returns it with a channel that
// closes when it exited.
func (f *fixture) background(extra ...string) (*exec.Cmd, *bytes.Buffer, <-chan struct{}, *error) {
	f.t.Helper()
	cmd := exec.Command(binary, f.runArgs(extra...)...)
	cmd.Env = f.environ("USER=runner")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	exited := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); close(exited) }()
	f.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return cmd, &out, exited, &err
}

func (f *fixture) environ(extra ...string) []string {
	return append(append(append(os.Environ(), "CLANFORGE_URL="+f.url, "CLANFORGE_ACCESS_KEY="+testAccess,
		"CLANFORGE_SECRET_KEY="+testSecret, "NO_COLOR=1"), f.env...), extra...)
}

// other runs a command of the binary users get, from another "terminal".
func (f *fixture) other(user string, args ...string) (string, int) {
	f.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = f.environ("USER=" + user)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(err)
}

func (f *fixture) stateDir() string { return filepath.Join(f.dir, "state") }

// waitingFor waits until the run of pid publishes a wait whose id starts
// with prefix.
func (f *fixture) waitingFor(pid int, prefix string, exited <-chan struct{}, out *bytes.Buffer) {
	f.t.Helper()
	waitingIn(f.t, f.stateDir(), pid, prefix, exited, out)
}

// waitingIn waits until the run of pid, whose state directory is dir,
// publishes a wait whose id starts with prefix.
func waitingIn(t *testing.T, dir string, pid int, prefix string, exited <-chan struct{}, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("the run exited before waiting for %s:\n%s", prefix, out)
		default:
		}
		var w struct {
			PID   int `json:"pid"`
			Waits []struct {
				ID string `json:"id"`
			} `json:"waits"`
		}
		if b, err := os.ReadFile(filepath.Join(dir, "waiting.json")); err == nil && json.Unmarshal(b, &w) == nil && w.PID == pid {
			for _, x := range w.Waits {
				if strings.HasPrefix(x.ID, prefix) {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the run never waited for %s:\n%s", prefix, out)
}

func (f *fixture) queued() int {
	n := 0
	for _, j := range f.sim.Jobs() {
		if (j.Kind == sim.KindInstall || j.Kind == sim.KindMirror) && !j.Queued.IsZero() {
			n++
		}
	}
	return n
}

func (f *fixture) rejects() int {
	n := 0
	for _, r := range f.sim.Requests() {
		if strings.Contains(r.Path, "reject") {
			n++
		}
	}
	return n
}

func waitExit(t *testing.T, exited <-chan struct{}, out *bytes.Buffer) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the run did not end:\n%s", out)
	}
}

// TestApproveFromAnotherProcess: a run stopped at an approval queues no
// install until `rollout approve PLAN` is run from another process, then
// finishes with exit 0; the approver and the run both say who approved.
func TestApproveFromAnotherProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, approvePlan(""), fastScenario)
	cmd, out, exited, err := f.background()
	f.waitingFor(cmd.Process.Pid, "approve_ship@", exited, out)
	if n := f.queued(); n != 0 {
		t.Fatalf("%d installs queued before the approval", n)
	}
	// The wrong step is refused and says what waits.
	msg, code := f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir(), "--step", "install")
	if code != exitFailed || !strings.Contains(msg, "approve_ship@game (--step approve_ship)") {
		t.Fatalf("approve --step install: exit %d\n%s", code, msg)
	}
	msg, code = f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir(), "--reason", "canary is fine")
	host, _ := os.Hostname()
	if code != exitOK || msg != "approved approve_ship@game as alice@"+host+": canary is fine\n" {
		t.Fatalf("approve: exit %d\n%s", code, msg)
	}
	waitExit(t, exited, out)
	if exitCode(*err) != exitOK {
		t.Fatalf("run: exit %d\n%s", exitCode(*err), out)
	}
	if !strings.Contains(out.String(), "approve_ship@game approved by alice@"+host+": canary is fine") {
		t.Fatalf("the run does not say who approved:\n%s", out)
	}
	checkOneJobPerIntent(t, f.sim)
}

// TestAbortFromAnotherProcess: `rollout abort` ends the waiting run with
// exit 1, no install queued, on_failure run once.
func TestAbortFromAnotherProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, approvePlan(""), fastScenario)
	cmd, out, exited, err := f.background()
	f.waitingFor(cmd.Process.Pid, "approve_ship@", exited, out)
	msg, code := f.other("bob", "abort", f.planPath, "--state-dir", f.stateDir(), "--reason", "wrong build")
	if code != exitOK || !strings.HasPrefix(msg, "aborted the rollout as bob@") {
		t.Fatalf("abort: exit %d\n%s", code, msg)
	}
	waitExit(t, exited, out)
	if exitCode(*err) != exitFailed {
		t.Fatalf("run: exit %d, want 1\n%s", exitCode(*err), out)
	}
	if n := f.queued(); n != 0 {
		t.Fatalf("%d installs queued after the abort", n)
	}
	if n := f.rejects(); n != 1 {
		t.Fatalf("on_failure sent %d rejects, want 1\n%s", n, out)
	}
	// Nothing waits any more: a late approval says so.
	msg, code = f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir())
	if code != exitFailed || !strings.Contains(msg, "no rollout is running") || !strings.Contains(msg, "aborted") {
		t.Fatalf("approve after the abort: exit %d\n%s", code, msg)
	}
}

// TestKillWhileWaitingThenResume: a run killed (SIGKILL) while it waits is
// resumed; the resumed run waits again for what was not approved, and does
// not ask again for the approval given before the kill.
func TestKillWhileWaitingThenResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t, approvePlan("    pause_after: [approve]\n"), fastScenario)
	cmd, out, exited, _ := f.background()
	f.waitingFor(cmd.Process.Pid, "approve_ship@", exited, out)
	if msg, code := f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir()); code != exitOK {
		t.Fatalf("approve: exit %d\n%s", code, msg)
	}
	f.waitingFor(cmd.Process.Pid, "install@game after wave 1", exited, out)
	queuedBefore := f.queued()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	waitExit(t, exited, out)

	msg, code := f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir())
	if code != exitFailed || !strings.Contains(msg, "stopped without finishing") || !strings.Contains(msg, "install@game after wave 1") ||
		!strings.Contains(msg, "--resume") {
		t.Fatalf("approve after the kill: exit %d\n%s", code, msg)
	}
	msg, _ = f.other("alice", "status", f.planPath, "--state-dir", f.stateDir())
	if !strings.Contains(msg, "Waiting when the last run stopped") || !strings.Contains(msg, "install@game after wave 1") {
		t.Fatalf("status after the kill:\n%s", msg)
	}

	cmd2, out2, exited2, err2 := f.background("--resume")
	f.waitingFor(cmd2.Process.Pid, "install@game after wave 1", exited2, out2)
	if n := f.queued(); n != queuedBefore {
		t.Fatalf("the resumed run queued %d more installs before the approval", n-queuedBefore)
	}
	msg, code = f.other("carol", "approve", "approve-e2e", "--state-dir", f.stateDir())
	if code != exitOK || !strings.HasPrefix(msg, "approved install@game after wave 1 as carol@") {
		t.Fatalf("approve of the resumed run: exit %d\n%s", code, msg)
	}
	waitExit(t, exited2, out2)
	if exitCode(*err2) != exitOK {
		t.Fatalf("resumed run: exit %d\n%s", exitCode(*err2), out2)
	}
	checkOneJobPerIntent(t, f.sim)
	// The journal holds each decision once: approve_ship by alice before
	// the kill (restored, not asked again), the pause by carol.
	journal, _ := os.ReadFile(filepath.Join(f.stateDir(), "journal.jsonl"))
	var decisions []string
	for _, line := range strings.Split(string(journal), "\n") {
		var rec struct {
			Type string `json:"type"`
			Wait struct {
				ID string `json:"id"`
				By string `json:"by"`
			} `json:"wait"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Type == "decision" {
			decisions = append(decisions, rec.Wait.ID+" "+strings.Split(rec.Wait.By, "@")[0])
		}
	}
	if strings.Join(decisions, ", ") != "approve_ship@game alice, install@game after wave 1 carol" {
		t.Fatalf("decisions in the journal: %v", decisions)
	}
	// history tells the two runs apart.
	msg, code = f.other("alice", "history", "--state-dir", f.stateDir(), "--json")
	var doc struct {
		V    int `json:"v"`
		Runs []struct {
			Outcome   string `json:"outcome"`
			Approvals []struct {
				ID string `json:"id"`
			} `json:"approvals"`
		} `json:"runs"`
	}
	if code != exitOK || json.Unmarshal([]byte(msg), &doc) != nil || doc.V != 1 || len(doc.Runs) != 2 ||
		doc.Runs[0].Outcome != "unfinished" || doc.Runs[1].Outcome != "succeeded" || len(doc.Runs[0].Approvals) != 1 || len(doc.Runs[1].Approvals) != 1 {
		t.Fatalf("history: exit %d\n%s", code, msg)
	}
	// The second wave starts only after the approval: the run's lines
	// come in the order of its events. Checked last, so that everything
	// above is checked too while the engine fails this: on a resume,
	// makeReady opens the wave after a paused boundary when its instances
	// become ready after the earlier wave was restored (waveIsOpen does not
	// ask pauseBefore), so the pause is announced but does not hold.
	approved := strings.Index(out2.String(), "install@game after wave 1 approved by carol@")
	wave2 := strings.Index(out2.String(), "install game: wave 2/2 started")
	if approved < 0 || wave2 < 0 || wave2 < approved {
		t.Errorf("the resumed run started wave 2 before the approval (engine: makeReady/waveIsOpen skip pause_after on a resume):\n%s", out2)
	}
}
