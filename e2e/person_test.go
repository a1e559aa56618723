package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
)

// The end-to-end tests of issue 11's "Done when" that control_test.go does
// not hold already (approve and abort from another process are there): an
// approval that nobody answers, a bake time, and the webhooks.

// TestApprovalTimeoutAborts: an approval that nobody answers within its
// timeout, with on_timeout: abort, ends the run with exit 1; nothing after
// it is queued and on_failure runs once.
func TestApprovalTimeoutAborts(t *testing.T) {
	t.Parallel()
	src := strings.Replace(approvePlan(""), `    message: "Ship 7.0.0?"
`, `    message: "Ship 7.0.0?"
    timeout: 1s
    on_timeout: abort
`, 1)
	if !strings.Contains(src, "on_timeout: abort") {
		t.Fatal("the approve step was not found in approvePlan")
	}
	f := newFixture(t, src, fastScenario)
	cmd, out := f.start(f.runArgs()...)
	err := cmd.Wait()
	if exitCode(err) != exitFailed {
		t.Fatalf("run: exit %d, want 1\n%s", exitCode(err), out)
	}
	if n := f.queued(); n != 0 {
		t.Fatalf("%d installs queued after the approval timed out", n)
	}
	for _, r := range f.sim.Requests() {
		if r.Endpoint == sim.EPVersionCreate {
			t.Fatalf("a version was created after the approval timed out")
		}
	}
	if n := f.rejects(); n != 1 {
		t.Fatalf("on_failure sent %d rejects, want 1\n%s", n, out)
	}
	for _, want := range []string{"approve_ship@game", "within its timeout", "on_timeout: abort"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// waveGap returns when the last machine install of wave k (the machine
// ids before) ended and when the first one of wave k+1 (after) was
// queued, from the simulator's own job record.
func waveGap(t *testing.T, s *sim.Server, before, after []int64) (lastEnded, firstQueued time.Time) {
	t.Helper()
	in := func(id int64, ids []int64) bool {
		for _, x := range ids {
			if x == id {
				return true
			}
		}
		return false
	}
	seen := 0
	for _, j := range s.Jobs() {
		if j.Kind != sim.KindInstall {
			continue
		}
		switch {
		case in(j.MachineID, before):
			seen++
			if j.Ended.IsZero() {
				t.Fatalf("install job %d of wave k never ended", j.ID)
			}
			if j.Ended.After(lastEnded) {
				lastEnded = j.Ended
			}
		case in(j.MachineID, after):
			seen++
			if j.Queued.IsZero() {
				t.Fatalf("install job %d of wave k+1 was never queued", j.ID)
			}
			if firstQueued.IsZero() || j.Queued.Before(firstQueued) {
				firstQueued = j.Queued
			}
		}
	}
	if seen != len(before)+len(after) {
		t.Fatalf("%d install jobs of the two waves, want %d", seen, len(before)+len(after))
	}
	return lastEnded, firstQueued
}

// TestBakeHoldsTheNextWave: pause_after: [4s] holds the second wave at
// least 4 s: the simulator queued the first install of wave 2 at least 4 s
// after the last install of wave 1 ended (a lower bound, which load cannot
// break). The run says how long it bakes, and records that the bake ended.
func TestBakeHoldsTheNextWave(t *testing.T) {
	t.Parallel()
	src := killPlan + "    pause_after: [4s]\n"
	f := newFixture(t, src, fastScenario)
	cmd, out := f.start(f.runArgs()...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: exit %d\n%s", exitCode(err), out)
	}
	ended, queued := waveGap(t, f.sim, []int64{812345}, []int64{812346, 812400})
	if gap := queued.Sub(ended); gap < 4*time.Second {
		t.Fatalf("wave 2 was queued %s after wave 1 ended, want at least 4s", gap)
	}
	checkOneJobPerIntent(t, f.sim)
	for _, want := range []string{"baking install@game after wave 1 until", "baking 4s after wave 1 of install", "install@game after wave 1: bake time over"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestWebhooksOncePerEvent runs examples/bake-notify.yaml as its header
// says, against the test's simulator, with ROLLOUT_WEBHOOK pointing at a
// local receiver and the approval given from another process. The
// receiver gets exactly one started, one finished, one message per wave
// (3) and per approval (1) in each format that lists them (and one
// approved in JSON), nothing else; every message names the plan; the
// approval message gives the exact approve and abort commands; the bake
// of 4 s held the second wave; and the webhook URL appears in no output
// (the run's, the approver's, any file of the state directory: journal,
// event log, waiting and control files).
func TestWebhooksOncePerEvent(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../examples/bake-notify.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hook := newReceiver(t)
	f := newFixtureEnv(t, string(src), fastScenario, "ROLLOUT_WEBHOOK="+hook.URL)
	cmd, out, exited, runErr := f.background()
	f.waitingFor(cmd.Process.Pid, "install@game after wave 2", exited, out)
	approveOut, code := f.other("alice", "approve", f.planPath, "--state-dir", f.stateDir())
	if code != exitOK {
		t.Fatalf("approve: exit %d\n%s", code, approveOut)
	}
	waitExit(t, exited, out)
	if exitCode(*runErr) != exitOK {
		t.Fatalf("run: exit %d\n%s", exitCode(*runErr), out)
	}
	got := hook.counts()
	want := map[string]int{
		"json started": 1, "json wave": 3, "json approval": 1, "json approved": 1, "json finished": 1,
		"slack wave": 3, "slack approval": 1, "slack finished": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the receiver got %v, want %v", got, want)
	}
	// One message per wave: each wave number once in each format.
	waves := map[string]int{}
	for _, m := range hook.messages() {
		if m.Format == "json" && m.Plan != "bake-notify" {
			t.Errorf("a json message names plan %q: %s", m.Plan, m.Body)
		}
		if !strings.Contains(m.Text, "bake-notify") {
			t.Errorf("a %s message does not name the plan: %s", m.Format, m.Body)
		}
		if m.Event == "wave" || (m.Format == "slack" && slackEvent(m.Text) == "wave") {
			for w := 1; w <= 3; w++ {
				if strings.Contains(m.Text, fmt.Sprintf("wave %d/3 ", w)) {
					waves[fmt.Sprintf("%s %d", m.Format, w)]++
				}
			}
		}
		if m.Event == "approval" || (m.Format == "slack" && slackEvent(m.Text) == "approval") {
			for _, c := range []string{"rollout approve " + f.planPath, "rollout abort " + f.planPath} {
				if !strings.Contains(m.Text, c) {
					t.Errorf("the approval message lacks %q: %s", c, m.Text)
				}
			}
		}
	}
	for _, fm := range []string{"json", "slack"} {
		for w := 1; w <= 3; w++ {
			if n := waves[fmt.Sprintf("%s %d", fm, w)]; n != 1 {
				t.Errorf("%d %s messages for wave %d, want 1", n, fm, w)
			}
		}
	}
	ended, queued := waveGap(t, f.sim, []int64{812345}, []int64{812346, 812347})
	if gap := queued.Sub(ended); gap < 4*time.Second {
		t.Errorf("wave 2 was queued %s after wave 1 ended, want at least 4s", gap)
	}
	noSecretIn(t, f.stateDir(), map[string]string{"the run's output": out.String(), "approve's output": approveOut},
		hook.URL, webhookPath, strings.TrimPrefix(hook.URL, "http://"))
	// The state directory was looked at: it has the journal and the
	// event log.
	for _, name := range []string{"journal.jsonl", "events.jsonl"} {
		if _, err := os.Stat(filepath.Join(f.stateDir(), name)); err != nil {
			t.Errorf("no %s in the state directory: %v", name, err)
		}
	}
}
