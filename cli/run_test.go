package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
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

// rig is a plan file, a simulator and an Env pointed at it, for running
// commands in-process.
type rig struct {
	t      *testing.T
	dir    string
	plan   string
	state  string
	sim    *simtest.Env
	out    bytes.Buffer
	errOut bytes.Buffer
	vars   map[string]string
}

const rigAccess, rigSecret = "rig-access-key", "rig-secret-value"

func newRig(t *testing.T, src string) *rig {
	t.Helper()
	return newRigScenario(t, src, "speed: 100\n")
}

func newRigScenario(t *testing.T, src, scenario string) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir()}
	r.plan = filepath.Join(r.dir, "plan.yaml")
	if err := os.WriteFile(r.plan, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r.state = filepath.Join(r.dir, "state")
	r.sim = simtest.Start(t, simtest.Plan(t, src), simtest.Scenario(t, scenario), simtest.Credentials(rigAccess, rigSecret))
	r.vars = map[string]string{
		"CLANFORGE_URL":        r.sim.URL,
		"CLANFORGE_ACCESS_KEY": rigAccess,
		"CLANFORGE_SECRET_KEY": rigSecret,
		"NO_COLOR":             "1",
	}
	return r
}

func (r *rig) env() *Env {
	r.out.Reset()
	r.errOut.Reset()
	return &Env{
		Stdin: strings.NewReader(""), Stdout: &r.out, Stderr: &r.errOut,
		Getenv:     func(k string) string { return r.vars[k] },
		IsTerminal: func() bool { return false },
	}
}

func (r *rig) run(ctx context.Context, mod func(*RunOptions)) error {
	o := RunOptions{Path: r.plan, NoTUI: true, StateDir: r.state, PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	return Run(ctx, r.env(), o)
}

// interruptDuringInstall runs the plan and cancels it once an install job
// runs, as a Ctrl-C would; it returns the run's error.
func (r *rig) interruptDuringInstall() error {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			for _, j := range r.sim.Server.Jobs() {
				if j.Kind == sim.KindInstall && j.StateName == "Running" {
					cancel()
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return r.run(ctx, nil)
}

// mutating counts the state-changing requests the simulator answered.
func (r *rig) mutating() int {
	n := 0
	for _, q := range r.sim.Server.Requests() {
		if q.Mutating {
			n++
		}
	}
	return n
}

// slowInstalls gives an interrupt time to land while installs run.
const slowInstalls = "speed: 100\ndurations: {install: 30s}\n"

var rigPlan = simtest.FleetPlan("rig", []string{"game"}, 3, 2, "", "", "")

func TestStateDirRules(t *testing.T) {
	t.Run("resume after a finished run sends nothing", func(t *testing.T) {
		r := newRig(t, rigPlan)
		if err := r.run(context.Background(), nil); err != nil {
			t.Fatalf("first run: %v\n%s", err, r.out.String())
		}
		before := r.mutating()
		err := r.run(context.Background(), func(o *RunOptions) { o.Resume = true })
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "nothing to resume") || !strings.Contains(err.Error(), "--fresh") {
			t.Fatalf("--resume after a finished run: %v", err)
		}
		if r.mutating() != before {
			t.Fatalf("--resume after a finished run sent %d state-changing calls", r.mutating()-before)
		}
	})
	t.Run("a plain run after a finished one needs --fresh", func(t *testing.T) {
		r := newRig(t, rigPlan)
		if err := r.run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		before := r.mutating()
		err := r.run(context.Background(), nil)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "already shipped") || !strings.Contains(err.Error(), "--fresh") {
			t.Fatalf("second plain run: %v", err)
		}
		if r.mutating() != before {
			t.Fatal("a refused run sent state-changing calls")
		}
		// --fresh (with --yes) then starts over, keeping the old journal.
		if err := r.run(context.Background(), func(o *RunOptions) { o.Fresh, o.Yes = true, true }); err != nil {
			t.Fatalf("--fresh: %v", err)
		}
		old, _ := filepath.Glob(filepath.Join(r.state, "journal-*.jsonl"))
		if len(old) != 1 {
			t.Fatalf("old journals kept: %v", old)
		}
	})
	t.Run("resume with no journal", func(t *testing.T) {
		r := newRig(t, rigPlan)
		err := r.run(context.Background(), func(o *RunOptions) { o.Resume = true })
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "nothing to resume") {
			t.Fatalf("--resume with no journal: %v", err)
		}
		if r.mutating() != 0 {
			t.Fatal("sent state-changing calls")
		}
	})
	t.Run("an interrupted run needs --resume, then resumes", func(t *testing.T) {
		r := newRigScenario(t, rigPlan, slowInstalls)
		err := r.interruptDuringInstall()
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("cancelled run: %v", err)
		}
		err = r.run(context.Background(), nil)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "was interrupted") || !strings.Contains(err.Error(), "--resume") {
			t.Fatalf("plain run after an interrupt: %v", err)
		}
		if err := r.run(context.Background(), func(o *RunOptions) { o.Resume = true }); err != nil {
			t.Fatalf("resume: %v\n%s", err, r.out.String())
		}
	})
	t.Run("another live rollout holds the directory", func(t *testing.T) {
		r := newRig(t, rigPlan)
		j, err := state.Open(r.state, "rig", "whatever")
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if err := j.RunStart(false); err != nil {
			t.Fatal(err)
		}
		err = r.run(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), "another rollout (pid") || strings.Contains(err.Error(), "did not finish") {
			t.Fatalf("run while another holds the directory: %v", err)
		}
	})
	t.Run("resume against another API is refused", func(t *testing.T) {
		r := newRigScenario(t, rigPlan, slowInstalls)
		if err := r.interruptDuringInstall(); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("interrupt: %v", err)
		}
		other := simtest.Start(t, simtest.Plan(t, rigPlan), sim.Scenario{}, simtest.Credentials(rigAccess, rigSecret))
		r.vars["CLANFORGE_URL"] = other.URL
		err := r.run(context.Background(), func(o *RunOptions) { o.Resume = true })
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "talked to") {
			t.Fatalf("resume against another API: %v", err)
		}
	})
}

func TestSimRuns(t *testing.T) {
	r := newRig(t, rigPlan)
	sim := func(o *RunOptions) { o.Sim, o.Speed, o.StateDir = true, 100, "" }
	t.Chdir(r.dir)
	err := r.run(context.Background(), func(o *RunOptions) { sim(o); o.Resume = true })
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "cannot be resumed") {
		t.Fatalf("--sim --resume: %v", err)
	}
	// Interrupted once the run is under way (the quickstart-sized plan
	// takes seconds at speed 1).
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	err = r.run(ctx, func(o *RunOptions) { sim(o); o.Speed = 1 })
	if !errors.Is(err, ErrInterrupted) || strings.Contains(err.Error(), "--resume") || !strings.Contains(err.Error(), "cannot be resumed") {
		t.Fatalf("interrupted --sim run advises: %v", err)
	}
	// The simulated journal is apart from the real one and is set aside
	// by the next --sim run without asking.
	if _, err := os.Stat(filepath.Join(r.dir, ".rollout", "rig.sim", state.JournalName)); err != nil {
		t.Fatalf("no simulated journal: %v", err)
	}
	if err := r.run(context.Background(), sim); err != nil {
		t.Fatalf("second --sim run: %v", err)
	}
	if err := r.run(context.Background(), sim); err != nil {
		t.Fatalf("third --sim run: %v", err)
	}
}

func TestStatusShowsEveryTargetAndManualRejects(t *testing.T) {
	src := simtest.FleetPlan("rig", []string{"game"}, 3, 2, "", "steps.diff.changed < 0", "")
	r := newRig(t, src)
	err := r.run(context.Background(), nil)
	var re *RunError
	if !errors.As(err, &re) || re.Verdict != engine.VerdictFailed {
		t.Fatalf("the failing gate did not fail the run: %v", err)
	}
	so := StatusOptions{Plan: r.plan, StateDir: r.state}
	if err := Status(context.Background(), r.env(), so); err != nil {
		t.Fatal(err)
	}
	out := r.out.String()
	for _, want := range []string{"m000/game", "m001/game", "m002/game", "buildbox-1/game", "still locks the image", "--plan " + r.plan} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "buildbox-1/game  succeeded") {
		t.Errorf("a target whose diff is open shows as succeeded:\n%s", out)
	}
	diffs := []int64{}
	for _, j := range r.sim.Server.Jobs() {
		if j.Kind == sim.KindDiff {
			diffs = append(diffs, j.ID)
		}
	}
	if len(diffs) != 1 {
		t.Fatalf("diffs %v", diffs)
	}
	if err := Reject(context.Background(), r.env(), RejectOptions{Diff: diffs[0], Yes: true, Plan: r.plan, StateDir: r.state}); err != nil {
		t.Fatalf("reject: %v\n%s", err, r.errOut.String())
	}
	if err := Status(context.Background(), r.env(), so); err != nil {
		t.Fatal(err)
	}
	if out := r.out.String(); strings.Contains(out, "Open diffs") || strings.Contains(out, "still locks") {
		t.Fatalf("status still lists the rejected diff as open:\n%s", out)
	}
}

func TestStatusTakesThePlanName(t *testing.T) {
	r := newRig(t, rigPlan)
	t.Chdir(r.dir)
	if err := r.run(context.Background(), func(o *RunOptions) { o.StateDir = "" }); err != nil {
		t.Fatal(err)
	}
	if err := Status(context.Background(), r.env(), StatusOptions{Plan: "rig"}); err != nil {
		t.Fatalf("status by name: %v", err)
	}
	if !strings.Contains(r.out.String(), "Plan rig") {
		t.Fatalf("status by name:\n%s", r.out.String())
	}
}

// TestStatusListsTargetsNothingWasRecordedFor: after a kill early in the
// run, status names every target of the plan, not only those with a
// recorded outcome.
func TestStatusListsTargetsNothingWasRecordedFor(t *testing.T) {
	r := newRig(t, rigPlan)
	p := simtest.Plan(t, rigPlan)
	ids := []string{}
	for _, in := range p.Instances {
		ids = append(ids, in.ID)
	}
	// A journal as a run killed after its first outcome leaves it.
	j, err := state.Open(r.state, p.Name, p.Hash, state.WithInstances(ids))
	if err != nil {
		t.Fatal(err)
	}
	_ = j.RunStart(false)
	_ = j.Outcome(p.Instances[0].ID, "succeeded", "", nil, nil)
	j.Close()
	if err := Status(context.Background(), r.env(), StatusOptions{StateDir: r.state}); err != nil {
		t.Fatal(err)
	}
	out := r.out.String()
	for _, m := range []string{"m000/game", "m001/game", "m002/game"} {
		if !strings.Contains(out, m) || !strings.Contains(out, "not started") {
			t.Errorf("status after a kill lacks %s (not started):\n%s", m, out)
		}
	}
	if !strings.Contains(out, "rollout run") || !strings.Contains(out, "--resume") {
		t.Errorf("no continue command:\n%s", out)
	}
}

// TestRunFlagsRefused: meaningless values are refused before anything is
// loaded, like negative ones (exit 2).
func TestRunFlagsRefused(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--sim", "--speed", "0"}, "--speed must be greater than 0"},
		{[]string{"--sim", "--speed", "-1"}, "--speed must be greater than 0"},
		{[]string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"--concurrency", "-2"}, "--concurrency must be at least 1"},
		{[]string{"--poll-min", "0s"}, "--poll-min and --poll-max must be positive"},
		{[]string{"--preflight-timeout", "0s"}, "--preflight-timeout must be a positive duration"},
		{[]string{"--speed", "2"}, "--speed and --scenario need --sim"},
		{[]string{"--resume", "--fresh"}, "exclude each other"},
		{[]string{"--sim", "--resume"}, "cannot be resumed"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			exec := Find("run").Flags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }, IsTerminal: func() bool { return false }}
			err := exec(context.Background(), env, []string{"does-not-matter.yaml"})
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a usage error with %q", err, tt.want)
			}
		})
	}
}

// TestStatusJSONIsAVersionedDocument: status --json is the documented
// document, not a dump of internal structs.
func TestStatusJSONIsAVersionedDocument(t *testing.T) {
	r := newRig(t, rigPlan)
	if err := r.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := Status(context.Background(), r.env(), StatusOptions{StateDir: r.state, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.out.String())
	}
	if doc["v"] != float64(1) || doc["status"] != "succeeded" || doc["plan"] != "rig" {
		t.Fatalf("document: %s", r.out.String())
	}
	targets, _ := doc["targets"].([]any)
	if len(targets) != 5 { // buildbox-1/game, game (per-image steps), m000-m002
		t.Fatalf("targets: %v", targets)
	}
	for k := range doc {
		if k != strings.ToLower(k) {
			t.Errorf("key %q is not lower case", k)
		}
	}
}

// TestRetriesDuringTheRunAreShown: a flaky API during the rollout is retried
// as before, and every kind of retry is said in the plain lines.
func TestRetriesDuringTheRunAreShown(t *testing.T) {
	r := newRigScenario(t, rigPlan, `speed: 100
faults:
  server_error_status: 503
  targeted:
    - {endpoint: imageinstall/status, fault: server_error, count: 3, skip: 2}
    - {endpoint: imagediff/create, fault: rate_limit, count: 1}
`)
	if err := r.run(context.Background(), nil); err != nil {
		t.Fatalf("run: %v\n%s", err, r.out.String())
	}
	out := r.out.String()
	if !strings.Contains(out, "API: retrying") || !strings.Contains(out, "503") {
		t.Fatalf("no retry shown:\n%s", out)
	}
}

// TestValidatePrintsThePreviewsWarnings: validate says every warning the
// preview says, e.g. a wave larger than concurrency.
func TestValidatePrintsThePreviewsWarnings(t *testing.T) {
	src := simtest.FleetPlan("warn", []string{"game"}, 6, 2, "    waves: [\"100%\"]\n", "", "")
	r := newRig(t, src)
	if err := Validate(r.env(), r.plan, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.errOut.String(), "warning:") || !strings.Contains(r.errOut.String(), "more than concurrency 2") {
		t.Fatalf("validate printed no warning:\n%s%s", r.out.String(), r.errOut.String())
	}
}
