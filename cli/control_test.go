package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/state"
)

// approvePlan is the rig's fleet plan with an approve step between the
// diff and the version (approve_ship, asking "Ship it?"), waves [1, 100%],
// on_failure reject, and the extra lines of the install step (e.g.
// "    pause_after: [approve]\n").
func approvePlan(name, install string) string {
	src := simtest.FleetPlan(name, []string{"game"}, 3, 2, "    waves: [1, \"100%\"]\n"+install, "", "on_failure:\n  - type: reject\n")
	return strings.Replace(src, "  - name: version\n    type: version\n    needs: [diff]\n", `  - name: approve_ship
    type: approve
    needs: [diff]
    message: "Ship it?"
  - name: version
    type: version
    needs: [approve_ship]
`, 1)
}

// other is a second terminal: its own output, same environment.
type other struct {
	out, errOut bytes.Buffer
	env         *Env
}

func (r *rig) other() *other {
	o := &other{}
	o.env = &Env{Stdin: strings.NewReader(""), Stdout: &o.out, Stderr: &o.errOut,
		Getenv: func(k string) string { return r.vars[k] }, IsTerminal: func() bool { return false }}
	return o
}

// background runs the plan as `run --no-tui` would in another terminal.
func (r *rig) background(ctx context.Context, mod func(*RunOptions)) (<-chan error, *bytes.Buffer) {
	out := &bytes.Buffer{}
	done := make(chan error, 1)
	o := RunOptions{Path: r.plan, NoTUI: true, StateDir: r.state, PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: func(k string) string { return r.vars[k] },
		IsTerminal: func() bool { return false }}
	go func() { done <- Run(ctx, env, o) }()
	return done, out
}

// ended is the run's result; a run still going after a minute fails the
// test instead of hanging it (a safety net, not a timing assertion).
func ended(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the run did not end")
		return nil
	}
}

// waitFor polls what the run publishes until it waits for id (a prefix),
// failing the test if the run ends first.
func (r *rig) waitFor(t *testing.T, done <-chan error, prefix string) state.Wait {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before waiting for %s", err, prefix)
		default:
		}
		if w, err := state.ReadWaiting(r.state); err == nil {
			for _, x := range w.Waits {
				if strings.HasPrefix(x.ID, prefix) {
					return x
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the run never waited for %s", prefix)
	return state.Wait{}
}

func (r *rig) queued(kind sim.Kind) int {
	n := 0
	for _, j := range r.sim.Server.Jobs() {
		if j.Kind == kind && !j.Queued.IsZero() {
			n++
		}
	}
	return n
}

func (r *rig) requestsTo(suffix string) int {
	n := 0
	for _, q := range r.sim.Server.Requests() {
		if strings.Contains(q.Path, suffix) {
			n++
		}
	}
	return n
}

// TestApproveFromAnotherTerminal: a run stopped at an approval queues no
// install until `rollout approve` is run elsewhere, which says exactly
// what it approved and as whom; the run then finishes with success, and
// the journal records who approved, when and why.
func TestApproveFromAnotherTerminal(t *testing.T) {
	t.Setenv("USER", "alice")
	r := newRig(t, approvePlan("approve-rig", ""))
	done, out := r.background(context.Background(), nil)
	w := r.waitFor(t, done, "approve_ship@")
	if w.Approve != "rollout approve "+r.plan+" --step approve_ship --state-dir "+r.state || w.Message != "Ship it?" {
		t.Fatalf("published wait %+v", w)
	}
	if n := r.queued(sim.KindInstall) + r.queued(sim.KindMirror); n != 0 {
		t.Fatalf("%d installs queued before the approval", n)
	}
	// Status shows what waits, with the commands.
	so := r.other()
	if err := Status(context.Background(), so.env, StatusOptions{StateDir: r.state}); err != nil {
		t.Fatal(err)
	}
	if s := so.out.String(); !strings.Contains(s, "Waiting now:") || !strings.Contains(s, "approve: "+w.Approve) {
		t.Fatalf("status while waiting:\n%s", s)
	}
	sj := r.other()
	if err := Status(context.Background(), sj.env, StatusOptions{StateDir: r.state, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var doc StatusDoc
	if err := json.Unmarshal(sj.out.Bytes(), &doc); err != nil || !doc.WaitingLive || len(doc.Waiting) != 1 ||
		doc.Waiting[0].ID != w.ID || doc.Waiting[0].Approve != w.Approve || doc.Status != "running" {
		t.Fatalf("status --json while waiting (%v):\n%s", err, sj.out.String())
	}

	o := r.other()
	err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Reason: "canary looks fine"})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	host, _ := os.Hostname()
	want := "approved approve_ship@game as alice@" + host + ": canary looks fine\n"
	if o.out.String() != want {
		t.Fatalf("approve said %q, want %q", o.out.String(), want)
	}
	if err := ended(t, done); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if n := r.queued(sim.KindInstall); n != 3 {
		t.Fatalf("%d installs queued after the approval", n)
	}
	sum, err := state.Replay(r.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Decisions) != 1 || sum.Decisions[0].By != "alice@"+host || sum.Decisions[0].Reason != "canary looks fine" || sum.Decisions[0].Decision != "approved" {
		t.Fatalf("journal decisions %+v", sum.Decisions)
	}
	if !strings.Contains(out.String(), "approved by alice@"+host) {
		t.Fatalf("the run's lines do not say who approved:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(r.state, state.WaitingName)); !os.IsNotExist(err) {
		t.Fatalf("waiting.json left after the run: %v", err)
	}
}

// TestApproveErrorsSayWhatWaits: an approval for a step that does not
// exist is a usage error with a suggestion; one for a step that is not
// waiting says what is; with no run holding the directory, approve says
// so and what to do.
func TestApproveErrorsSayWhatWaits(t *testing.T) {
	r := newRig(t, approvePlan("approve-errors", ""))
	o := r.other()
	err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state})
	if err == nil || !strings.Contains(err.Error(), "no rollout is running in "+r.state) || errors.Is(err, ErrUsage) {
		t.Fatalf("approve with no run: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, _ := r.background(ctx, nil)
	r.waitFor(t, done, "approve_ship@")

	err = Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Step: "aprove_ship"})
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `has no step "aprove_ship"`) || !strings.Contains(err.Error(), "approve_ship") {
		t.Fatalf("unknown step: %v", err)
	}
	err = Control(context.Background(), o.env, ControlOptions{Plan: "approve-errors", StateDir: r.state, Step: "install"})
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `nothing named "install" is waiting`) ||
		!strings.Contains(err.Error(), "approve_ship@game (--step approve_ship)") {
		t.Fatalf("a step that does not wait: %v", err)
	}
	if n := r.queued(sim.KindInstall) + r.queued(sim.KindMirror); n != 0 {
		t.Fatalf("a refused approval let %d installs through", n)
	}
	// Interrupted while waiting: approve then says the run is gone and
	// how to go on.
	cancel()
	if err := ended(t, done); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	err = Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state})
	if err == nil || !strings.Contains(err.Error(), "no rollout is running") || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("approve after the run stopped: %v", err)
	}
}

// TestAbortFromAnotherTerminal: abort ends the rollout as a budget abort
// does: no install queued, on_failure run once, verdict aborted (exit 1);
// the journal says who aborted and why.
func TestAbortFromAnotherTerminal(t *testing.T) {
	t.Setenv("USER", "bob")
	r := newRig(t, approvePlan("abort-rig", ""))
	done, out := r.background(context.Background(), nil)
	r.waitFor(t, done, "approve_ship@")
	o := r.other()
	if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Abort: true, Reason: "diff too large"}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if s := o.out.String(); !strings.HasPrefix(s, "aborted the rollout as bob@") || !strings.Contains(s, "diff too large") {
		t.Fatalf("abort said %q", s)
	}
	err := ended(t, done)
	var re *RunError
	if !errors.As(err, &re) || re.Verdict != engine.VerdictAborted {
		t.Fatalf("aborted run ended %v\n%s", err, out)
	}
	if n := r.queued(sim.KindInstall) + r.queued(sim.KindMirror); n != 0 {
		t.Fatalf("%d installs queued after an abort", n)
	}
	if n := r.requestsTo("reject"); n != 1 {
		t.Fatalf("on_failure sent %d rejects, want 1", n)
	}
	sum, _ := state.Replay(r.state)
	if len(sum.Decisions) != 1 || sum.Decisions[0].Decision != "aborted" || !strings.HasPrefix(sum.Decisions[0].By, "bob@") || sum.Decisions[0].Reason != "diff too large" {
		t.Fatalf("journal decisions %+v", sum.Decisions)
	}
}

// TestLeftoverRequestIsAppliedWhenItStillMatches: an approval the run took
// and never answered (it died) is applied by the resumed run to the wait
// its author saw, once that waits again; one that does not say which
// wait it meant is refused, not guessed.
func TestLeftoverRequestIsAppliedWhenItStillMatches(t *testing.T) {
	r := newRig(t, approvePlan("leftover-rig", ""))
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := r.background(ctx, nil)
	w := r.waitFor(t, done, "approve_ship@")
	cancel()
	if err := ended(t, done); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	// What a dying run leaves: requests it claimed and did not answer.
	cd := filepath.Join(r.state, state.ControlDirName)
	at := time.Now().Add(-time.Minute).UTC()
	write := func(id string, req state.ControlRequest) {
		req.V, req.ID, req.At = 1, id, at
		b, _ := json.Marshal(req)
		if err := os.WriteFile(filepath.Join(cd, id+".taken"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1-1-good", state.ControlRequest{By: "carol@desk", Reason: "before the crash", Seen: []string{w.ID}})
	write("1-1-vague", state.ControlRequest{By: "dave@desk"})

	done, out := r.background(context.Background(), func(o *RunOptions) { o.Resume = true })
	if err := ended(t, done); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	good, ok, _ := state.ReadReply(r.state, "1-1-good")
	if !ok || !good.OK || !strings.Contains(good.Message, "approved "+w.ID+" as carol@desk") {
		t.Fatalf("leftover approval answered %+v (%v)", good, ok)
	}
	vague, ok, _ := state.ReadReply(r.state, "1-1-vague")
	if !ok || vague.OK || !strings.Contains(vague.Message, "does not say which wait") {
		t.Fatalf("vague leftover answered %+v (%v)", vague, ok)
	}
	sum, _ := state.Replay(r.state)
	if len(sum.Decisions) != 1 || sum.Decisions[0].By != "carol@desk" || !sum.Decisions[0].At.Equal(at) {
		t.Fatalf("journal decisions %+v", sum.Decisions)
	}
}

// TestAutoApprove: an unattended run approves as it goes and says so.
func TestAutoApprove(t *testing.T) {
	r := newRig(t, approvePlan("auto-rig", "    pause_after: [approve]\n"))
	if err := r.run(context.Background(), func(o *RunOptions) { o.AutoApprove = true }); err != nil {
		t.Fatalf("run --auto-approve: %v\n%s", err, r.out.String())
	}
	sum, _ := state.Replay(r.state)
	if len(sum.Decisions) != 2 {
		t.Fatalf("decisions %+v", sum.Decisions)
	}
	for _, d := range sum.Decisions {
		if d.Decision != string(engine.AutoApproved) || d.By != "--auto-approve" {
			t.Fatalf("decision %+v", d)
		}
	}
	if !strings.Contains(r.out.String(), "approved automatically (--auto-approve)") {
		t.Fatalf("the run does not say it approved by itself:\n%s", r.out.String())
	}
}

// TestPauseApprovedByStep: a pause after wave 1 is approved with --step
// naming the install step; the answer names the pause.
func TestPauseApprovedByStep(t *testing.T) {
	t.Setenv("USER", "erin")
	r := newRig(t, approvePlan("pause-rig", "    pause_after: [approve]\n"))
	done, out := r.background(context.Background(), nil)
	r.waitFor(t, done, "approve_ship@")
	o := r.other()
	if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Step: "approve_ship"}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, done, "install@game after wave 1")
	if n := r.queued(sim.KindInstall); n != 1 {
		t.Fatalf("%d installs queued during the pause after wave 1, want 1", n)
	}
	o = r.other()
	if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Step: "install"}); err != nil {
		t.Fatal(err)
	}
	if s := o.out.String(); !strings.HasPrefix(s, "approved install@game after wave 1 as erin@") {
		t.Fatalf("approve said %q", s)
	}
	if err := ended(t, done); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if n := r.queued(sim.KindInstall); n != 3 {
		t.Fatalf("%d installs queued", n)
	}
}

// summaryOf is the plain summary block a run or a watcher ends with.
func summaryOf(t *testing.T, out string) string {
	t.Helper()
	i := strings.Index(out, "\nSummary of rollout")
	if i < 0 {
		t.Fatalf("no summary in:\n%s", out)
	}
	return out[i:]
}

// TestWatchStartedMidRunShowsTheSameSummary: a watcher attached while the
// run waits catches up with what already happened (the update and diff it
// never saw live), follows the approval, and ends with the very summary
// the run printed, and the run's verdict.
func TestWatchStartedMidRunShowsTheSameSummary(t *testing.T) {
	r := newRig(t, approvePlan("watch-rig", "    pause_after: [approve]\n"))
	done, out := r.background(context.Background(), nil)
	r.waitFor(t, done, "approve_ship@")
	w := r.other()
	watched := make(chan error, 1)
	go func() {
		watched <- Watch(context.Background(), w.env, WatchOptions{Plan: r.plan, StateDir: r.state, Poll: 5 * time.Millisecond})
	}()
	for _, step := range []string{"approve_ship", "install"} {
		if step == "install" {
			r.waitFor(t, done, "install@game after wave 1")
		}
		o := r.other()
		if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Step: step}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ended(t, done); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if err := ended(t, watched); err != nil {
		t.Fatalf("watch: %v\n%s", err, w.errOut.String())
	}
	got := w.out.String()
	if summaryOf(t, got) != summaryOf(t, out.String()) {
		t.Fatalf("watch summary\n%s\nrun summary\n%s", summaryOf(t, got), summaryOf(t, out.String()))
	}
	for _, want := range []string{"update@buildbox-1/game succeeded", "diff@buildbox-1/game succeeded", "waiting for approval of approve_ship@", "approved by"} {
		if !strings.Contains(got, want) {
			t.Errorf("the watcher missed %q:\n%s", want, got)
		}
	}
}

// TestWatchEndsWithTheRunsVerdict: a watcher of an aborted run fails as
// the run did; with no run in progress, watch says so.
func TestWatchEndsWithTheRunsVerdict(t *testing.T) {
	r := newRig(t, approvePlan("watch-abort", ""))
	o := r.other()
	if err := Watch(context.Background(), o.env, WatchOptions{Plan: r.plan, StateDir: r.state}); err == nil || !strings.Contains(err.Error(), "nothing to watch") {
		t.Fatalf("watch with no run: %v", err)
	}
	done, _ := r.background(context.Background(), nil)
	r.waitFor(t, done, "approve_ship@")
	w := r.other()
	watched := make(chan error, 1)
	go func() {
		watched <- Watch(context.Background(), w.env, WatchOptions{StateDir: r.state, Poll: 5 * time.Millisecond})
	}()
	if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Abort: true}); err != nil {
		t.Fatal(err)
	}
	ended(t, done)
	var re *RunError
	if err := ended(t, watched); !errors.As(err, &re) || re.Verdict != engine.VerdictAborted {
		t.Fatalf("watch of an aborted run: %v", err)
	}
}

// TestHistoryListsRunsWithApprovalsAndIDs: history shows each run, the
// journal --fresh set aside included, who approved what, and the ids the
// run created, as the simulator knows them.
func TestHistoryListsRunsWithApprovalsAndIDs(t *testing.T) {
	t.Setenv("USER", "frank")
	r := newRig(t, approvePlan("history-rig", ""))
	if err := r.run(context.Background(), func(o *RunOptions) { o.AutoApprove = true }); err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	for _, j := range r.sim.Server.Jobs() {
		first[fmt.Sprint(j.Kind, " ", j.ID)] = true
	}
	done, _ := r.background(context.Background(), func(o *RunOptions) { o.Fresh, o.Yes = true, true })
	r.waitFor(t, done, "approve_ship@")
	o := r.other()
	if err := Control(context.Background(), o.env, ControlOptions{Plan: r.plan, StateDir: r.state, Abort: true, Reason: "changed my mind"}); err != nil {
		t.Fatal(err)
	}
	ended(t, done)

	h := r.other()
	if err := History(context.Background(), h.env, HistoryOptions{Plan: r.plan, StateDir: r.state, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var doc HistoryDoc
	if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if doc.V != 1 || len(doc.Runs) != 2 {
		t.Fatalf("history %s", h.out.String())
	}
	a, b := doc.Runs[0], doc.Runs[1]
	if a.Journal == state.JournalName || a.Outcome != "succeeded" || a.User != "frank" || a.Finished == nil {
		t.Fatalf("first run %+v", a)
	}
	if len(a.Approvals) != 1 || a.Approvals[0].Decision != "auto-approved" || a.Approvals[0].By != "--auto-approve" {
		t.Fatalf("first run approvals %+v", a.Approvals)
	}
	kinds := map[string]int{}
	for _, c := range a.Created {
		kinds[c.Kind]++
		if !first[fmt.Sprint(c.Kind, " ", c.ID)] {
			t.Errorf("history names %s %d, which the simulator never made", c.Kind, c.ID)
		}
	}
	if kinds["update"] != 1 || kinds["diff"] != 1 || kinds["version"] != 1 || kinds["install"] != 3 || kinds["mirror"] == 0 {
		t.Fatalf("first run created %+v", a.Created)
	}
	if b.Journal != state.JournalName || b.Outcome != "aborted" || len(b.Approvals) != 1 || b.Approvals[0].Decision != "aborted" ||
		b.Approvals[0].Reason != "changed my mind" {
		t.Fatalf("second run %+v", b)
	}
	for _, c := range b.Created {
		if c.Kind == "install" || c.Kind == "version" {
			t.Fatalf("the aborted run created %+v", c)
		}
	}
	// The text form says the same for people.
	h = r.other()
	if err := History(context.Background(), h.env, HistoryOptions{StateDir: r.state}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set aside by --fresh", "SUCCEEDED", "ABORTED", "approved", "by --auto-approve", "changed my mind", "ids: update"} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("history lacks %q:\n%s", want, h.out.String())
		}
	}
}
