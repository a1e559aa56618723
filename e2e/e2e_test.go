package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

const killPlan = `version: 1
name: killme
clanforge: {asid: 4321}
concurrency: 3
vars: {build: "7.0.0"}
images:
  - {name: game, id: 5531}
machines:
  - {name: buildbox-1, id: 770001, labels: {role: build}}
  - {name: eu-1, id: 812345, labels: {role: fleet, region: eu}}
  - {name: eu-2, id: 812346, labels: {role: fleet, region: eu}}
  - {name: us-1, id: 812400, labels: {role: fleet, region: us}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "build ${vars.build}"
    url: "s3://AKIAKEY:s3cr3tvalue@builds/game/${vars.build}/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
  - name: version
    type: version
    needs: [diff]
    restart: true
    full: auto
  - name: mirror
    type: install
    needs: [version]
    mirroring: true
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    mirroring: false
    waves: [1, "100%"]
`

// Exit statuses of plan format v1, as the binary must return them.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

const (
	testAccess = "AKtest-access"
	testSecret = "sk-test-secret-value"
)

// killer stands between the rollout process and the simulator: on the
// chosen state-changing request it kills the process, either before the
// simulator sees the request or after the simulator did the work but before
// the answer leaves.
type killer struct {
	sim *sim.Server

	mu     sync.Mutex
	n      int
	at     int
	after  bool
	kill   func()
	killed bool
	// match picks the requests that count towards at; nil counts every
	// state-changing GET of the image API (mutatingPath).
	match func(*http.Request) bool
}

func (k *killer) counts(r *http.Request) bool {
	k.mu.Lock()
	match := k.match
	k.mu.Unlock()
	if match != nil {
		return match(r)
	}
	return mutatingPath(r.URL.Path)
}

func (k *killer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if k.counts(r) {
		k.mu.Lock()
		k.n++
		hit := k.at != 0 && k.n == k.at && !k.killed
		if hit {
			k.killed = true
		}
		kill := k.kill
		after := k.after
		k.mu.Unlock()
		if hit {
			if after {
				k.sim.ServeHTTP(httptest.NewRecorder(), r)
			}
			kill()
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
	}
	k.sim.ServeHTTP(w, r)
}

type fixture struct {
	t        *testing.T
	dir      string
	planPath string
	sim      *sim.Server
	k        *killer
	url      string
	// client talks to the simulator through k.
	client *clanforge.Client
	// env ("NAME=value") is given to every command of the fixture, and
	// read by ${env:NAME} when the test loads the plan.
	env []string
}

func newFixture(t *testing.T, src, scenario string) *fixture {
	t.Helper()
	return newFixtureEnv(t, src, scenario)
}

// newFixtureEnv is newFixture for a plan that reads env ("NAME=value")
// through ${env:NAME}; the fixture's commands get it too.
func newFixtureEnv(t *testing.T, src, scenario string, env ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) (string, bool) {
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v, true
			}
		}
		return os.LookupEnv(name)
	}
	p, err := plan.Load(planPath, plan.Options{LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	var k *killer
	e := simtest.Start(t, p, simtest.Scenario(t, scenario), simtest.Credentials(testAccess, testSecret),
		simtest.Front(func(srv *sim.Server) http.Handler {
			k = &killer{sim: srv}
			return k
		}))
	return &fixture{t: t, dir: dir, planPath: planPath, sim: e.Server, k: k, url: e.URL, client: e.Client, env: env}
}

// start runs the binary against the fixture's server.
func (f *fixture) start(args ...string) (*exec.Cmd, *bytes.Buffer) {
	f.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(),
		"CLANFORGE_URL="+f.url, "CLANFORGE_ACCESS_KEY="+testAccess, "CLANFORGE_SECRET_KEY="+testSecret, "NO_COLOR=1"), f.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	return cmd, &out
}

func (f *fixture) runArgs(extra ...string) []string {
	return append([]string{"run", f.planPath, "--no-tui", "--state-dir", filepath.Join(f.dir, "state"),
		"--poll-min", "10ms", "--poll-max", "100ms"}, extra...)
}

// fastScenario makes a whole cycle take well under a second.
const fastScenario = `
speed: 50
`

// TestKillAndResume kills the rollout with SIGKILL at many points (on each
// state-changing call, before it reached the API and after the API did the
// work but before its answer arrived, i.e. between the journal's intent and
// its result), resumes it, and checks that it ends with exit 0 and that the
// simulator made exactly one remote job per intent.
func TestKillAndResume(t *testing.T) {
	// killPlan makes 8 state-changing calls: update, diff and version
	// create, 2 mirror queues (eu, us) and 3 machine install queues.
	type point struct {
		at    int
		after bool
	}
	var points []point
	for at := 1; at <= 8; at++ {
		points = append(points, point{at, false}, point{at, true})
	}
	for _, pt := range points {
		name := fmt.Sprintf("call%d-before-work", pt.at)
		if pt.after {
			name = fmt.Sprintf("call%d-after-work", pt.at)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, killPlan, fastScenario)
			cmd, out := f.start(f.runArgs()...)
			exited := make(chan struct{})
			var err error
			f.k.mu.Lock()
			f.k.at, f.k.after = pt.at, pt.after
			f.k.kill = func() {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-exited
			}
			f.k.mu.Unlock()
			go func() { err = cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("first run did not end:\n%s", out)
			}
			f.k.mu.Lock()
			killed := f.k.killed
			f.k.mu.Unlock()
			if !killed {
				t.Fatalf("the run ended (exit %d) before call %d was made:\n%s", exitCode(err), pt.at, out)
			}
			// A plain run refuses an unfinished journal.
			refuse := exec.Command(binary, f.runArgs()...)
			refuse.Env = append(os.Environ(), "CLANFORGE_URL="+f.url, "CLANFORGE_ACCESS_KEY="+testAccess, "CLANFORGE_SECRET_KEY="+testSecret)
			rout, rerr := refuse.CombinedOutput()
			if exitCode(rerr) != exitUsage || !strings.Contains(string(rout), "--resume") {
				t.Fatalf("run on an unfinished journal: exit %d\n%s", exitCode(rerr), rout)
			}

			res, rout2 := f.start(f.runArgs("--resume")...)
			err = res.Wait()
			if exitCode(err) == exitFailed && strings.Contains(rout2.String(), "--assume-sent update@") {
				// The update's create was cut off and no update holds
				// the image: only a person can tell whether it was made.
				// This test is that person: it asks the simulator.
				if pt.at != 1 {
					t.Fatalf("call %d left an unsettled update:\n%s", pt.at, rout2)
				}
				decision := "--resend"
				if updates(f.sim) > 0 {
					decision = "--assume-sent"
				}
				res, rout2 = f.start(f.runArgs("--resume", decision, "update@buildbox-1/game")...)
				err = res.Wait()
			}
			if err != nil {
				t.Fatalf("resume: exit %d\n--- first run\n%s\n--- resume\n%s", exitCode(err), out, rout2)
			}
			checkOneJobPerIntent(t, f.sim)
			// Each instance starts at most once in the resumed run.
			seen := map[string]bool{}
			for _, line := range strings.Split(rout2.String(), "\n") {
				if i := strings.Index(line, "] "); i >= 0 && strings.HasSuffix(line, " started") && !strings.Contains(line, "wave") {
					id := strings.TrimSuffix(line[i+2:], " started")
					if seen[id] {
						t.Errorf("%s started twice in the resumed run:\n%s", id, rout2)
					}
					seen[id] = true
				}
			}
			for _, b := range [][]byte{out.Bytes(), rout2.Bytes()} {
				if bytes.Contains(b, []byte("s3cr3tvalue")) || bytes.Contains(b, []byte(testSecret)) {
					t.Fatalf("a credential was printed:\n%s", b)
				}
			}
			journal, _ := os.ReadFile(filepath.Join(f.dir, "state", "journal.jsonl"))
			if bytes.Contains(journal, []byte("s3cr3tvalue")) || bytes.Contains(journal, []byte(testSecret)) {
				t.Fatal("a credential was written to the journal")
			}
		})
	}
}

// updates counts the update jobs the simulator made.
func updates(s *sim.Server) int {
	n := 0
	for _, j := range s.Jobs() {
		if j.Kind == sim.KindUpdate {
			n++
		}
	}
	return n
}

// checkOneJobPerIntent asserts the simulator's view of a finished rollout of
// killPlan: one update, diff and version, every install job queued once and
// completed.
func checkOneJobPerIntent(t *testing.T, s *sim.Server) {
	t.Helper()
	kinds := map[sim.Kind]int{}
	for _, j := range s.Jobs() {
		kinds[j.Kind]++
		if (j.Kind == sim.KindInstall || j.Kind == sim.KindMirror) && j.StateName != "Completed" {
			t.Errorf("%s job %d ended %s", j.Kind, j.ID, j.StateName)
		}
	}
	for k, want := range map[sim.Kind]int{sim.KindUpdate: 1, sim.KindDiff: 1, sim.KindVersion: 1, sim.KindMirror: 2, sim.KindInstall: 3} {
		if kinds[k] != want {
			t.Errorf("%d %s jobs, want %d", kinds[k], k, want)
		}
	}
	queued := map[string]int{}
	for _, r := range s.Requests() {
		if r.Endpoint == sim.EPInstallQueue && r.Status == 200 && r.ErrorMessage == "" {
			queued[r.Path]++
		}
	}
	if len(queued) != 5 {
		t.Errorf("queued %d install jobs, want 5: %v", len(queued), queued)
	}
	for p, n := range queued {
		if n != 1 {
			t.Errorf("%s queued %d times", p, n)
		}
	}
}

// TestForeignLockStopsPreflight: a diff that this rollout did not create
// locks the image; run changes nothing and names the lock.
func TestForeignLockStopsPreflight(t *testing.T) {
	f := newFixture(t, killPlan, fastScenario)
	ctx := context.Background()
	d, err := f.client.CreateDiff(ctx, 5531, 770001)
	if err != nil {
		t.Fatal(err)
	}
	before := len(f.sim.Requests())
	cmd, out := f.start(f.runArgs()...)
	err = cmd.Wait()
	if exitCode(err) != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", exitCode(err), out)
	}
	if want := fmt.Sprintf("locked by diff %d", d.ID); !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "rollout reject --diff") {
		t.Fatalf("output does not name the lock (%q) and how to release it:\n%s", want, out)
	}
	for _, r := range f.sim.Requests()[before:] {
		if r.Mutating {
			t.Fatalf("state-changing %s sent despite the foreign lock", r.Endpoint)
		}
	}
}

// TestInterruptPrintsUnfinishedJobs: SIGINT mid-rollout sends nothing more
// that changes state, prints every unfinished job id and exits 130.
func TestInterruptPrintsUnfinishedJobs(t *testing.T) {
	f := newFixture(t, killPlan, `
speed: 10
durations: {install: 600s}
`)
	cmd, out := f.start(f.runArgs()...)
	deadline := time.Now().Add(60 * time.Second)
	var running []sim.JobInfo
	for time.Now().Before(deadline) {
		running = running[:0]
		for _, j := range f.sim.Jobs() {
			if j.Kind == sim.KindInstall && j.StateName == "Running" {
				running = append(running, j)
			}
		}
		if len(running) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(running) == 0 {
		t.Fatalf("no install ever ran:\n%s", out)
	}
	time.Sleep(200 * time.Millisecond) // let the engine see it
	at := time.Now()
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if exitCode(err) != exitInterrupted {
		t.Fatalf("exit %d, want 130\n%s", exitCode(err), out)
	}
	for _, j := range running {
		if !strings.Contains(out.String(), fmt.Sprint(j.ID)) {
			t.Errorf("unfinished install job %d not printed:\n%s", j.ID, out)
		}
	}
	for _, r := range f.sim.Requests() {
		if r.Mutating && r.Time.After(at) {
			t.Errorf("state-changing %s sent after the interrupt", r.Endpoint)
		}
	}
	// The journal lets the user see and resume it.
	st := exec.Command(binary, "status", "--state-dir", filepath.Join(f.dir, "state"))
	sout, serr := st.CombinedOutput()
	if serr != nil || !strings.Contains(string(sout), fmt.Sprint(running[0].ID)) || !strings.Contains(string(sout), "--resume") {
		t.Fatalf("status: %v\n%s", serr, sout)
	}
}

// TestCLIExitStatuses drives the binary for the exit statuses of the plan
// format and the errors a person sees.
func TestCLIExitStatuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", killPlan)
	bad := write("bad.yaml", strings.Replace(killPlan, "needs: [update]", "needs: [updte]", 1))
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no command", nil, exitUsage, []string{"Usage:"}},
		{"unknown command", []string{"rnu"}, exitUsage, []string{`did you mean "run"?`}},
		{"validate ok", []string{"validate", good}, exitOK, []string{"ok"}},
		{"validate bad", []string{"validate", bad}, exitUsage, []string{"bad.yaml:21:13:", `did you mean "update"?`, "needs: [updte]"}},
		{"missing plan", []string{"validate", filepath.Join(dir, "nope.yaml")}, exitUsage, []string{"nope.yaml"}},
		{"unknown flag", []string{"run", good, "--bogus"}, exitUsage, []string{"bogus"}},
		{"plan preview", []string{"plan", good, "--offline"}, exitOK, []string{"/cfp/v1/imageupdate/create", "changes state", "wave 1 of game: 1 machines: eu-1", "s3://***@builds"}},
		{"schema", []string{"schema"}, exitOK, []string{`"$schema"`}},
		{"var override", []string{"validate", good, "--var", "nosuch=1"}, exitUsage, []string{"nosuch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, tt.args...)
			cmd.Env = append(os.Environ(), "CLANFORGE_ACCESS_KEY=", "CLANFORGE_SECRET_KEY=")
			out, err := cmd.CombinedOutput()
			if exitCode(err) != tt.code {
				t.Fatalf("exit %d, want %d\n%s", exitCode(err), tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "s3cr3tvalue") {
				t.Errorf("a credential was printed:\n%s", out)
			}
		})
	}
}

// TestExamplesReachTheirStatedOutcome runs every example under --sim with
// the command its header comment gives (from the module root, as the
// header says, plus --speed, --no-tui and a state directory of the test's),
// and checks the outcome the comment states. Every example plan has a case.
func TestExamplesReachTheirStatedOutcome(t *testing.T) {
	tests := []struct {
		name string
		// cmd is the command as the header of the plan (and of the
		// scenario, when it names one) gives it.
		cmd     string
		code    int
		want    []string
		wantNot []string
		// once must each appear exactly once.
		once []string
		// hook, when set, is what a webhook at ROLLOUT_WEBHOOK must get
		// (receiver.counts).
		hook map[string]int
	}{
		{name: "quickstart", cmd: "rollout run examples/quickstart.yaml --sim", code: exitOK,
			want: []string{`rollout "quickstart" succeeded`}, wantNot: []string{"failed after"}},
		{name: "two-images", cmd: "rollout run examples/two-images.yaml --sim", code: exitOK,
			want: []string{`rollout "two-images" succeeded`, "version@game-a succeeded", "version@game-b succeeded"}},
		{name: "canary", cmd: "rollout run examples/canary.yaml --sim --auto-approve --scenario examples/scenarios/canary.yaml", code: exitFailed,
			want:    []string{"install@game after wave 1 approved automatically (--auto-approve)", "aborted", "install@eu-3/game", "install@us-1/game", "us-5/game        skipped"},
			wantNot: []string{"install@us-5/game started", "wave 3/3 started"},
			once:    []string{"install game: wave 1/3 started", "install game: wave 2/3 started"}},
		{name: "gate-reject", cmd: "rollout run examples/gate-reject.yaml --sim", code: exitFailed,
			want:    []string{`gate "small-change" is false`, "where steps.diff.changed = ", ", vars.max_changed = 0", "reject@buildbox-1/game succeeded", "On failure:", "reject@buildbox-1/game: rejected diff"},
			wantNot: []string{"version@game started"}},
		{name: "ab-cutover", cmd: "rollout run examples/ab-cutover.yaml --sim --auto-approve", code: exitOK,
			want: []string{`rollout "ab-cutover" succeeded`, "install@game-b after wave 1 approved automatically (--auto-approve)",
				"install@game-b after wave 2: bake time over", "0 pending, 6 completed, 0 failed (eu: 0 pending, 3 completed, 0 failed; us: 0 pending, 3 completed, 0 failed)",
				"go_live@game-b approved automatically (--auto-approve)",
				"switch_eu@prod-eu/game-b succeeded in", "prod-eu switched to profile 102 (game-b)",
				"switch_us@prod-us/game-b succeeded in", "prod-us switched to profile 102 (game-b)"},
			wantNot: []string{"game-a started", "failed after"},
			once: []string{"update@buildbox-1/game-b started", "diff@buildbox-1/game-b started", "version@game-b started",
				"install game-b: wave 1/3 started, 1 instance: install@eu-1/game-b",
				"install game-b: wave 2/3 started, 2 instances: install@eu-2/game-b, install@eu-3/game-b",
				"install game-b: wave 3/3 started, 3 instances: install@us-1/game-b, install@us-2/game-b, install@us-3/game-b",
				"switch_eu@prod-eu/game-b started", "switch_us@prod-us/game-b started"}},
		{name: "ab-rollback", cmd: "rollout run examples/ab-cutover.yaml --sim --auto-approve --scenario examples/scenarios/ab-rollback.yaml", code: exitFailed,
			want: []string{`rollout "ab-cutover" failed`, "prod-eu switched to profile 102 (game-b)",
				`switch_us@prod-us/game-b failed after`, `the switch to profile 102 shows state "failed"`,
				"reject@game-b: nothing to reject",
				"switch@prod-eu/game-a: prod-eu switched to profile 101 (game-a)",
				"switch@prod-us/game-a: prod-us switched to profile 101 (game-a)"},
			once: []string{"switch@prod-eu/game-a started", "switch@prod-us/game-a started", "Failures:\n  switch_us@prod-us/game-b: "}},
		{name: "bake-notify", cmd: "rollout run examples/bake-notify.yaml --sim --auto-approve", code: exitOK,
			want: []string{`rollout "bake-notify" succeeded`, "baking install@game after wave 1 until", "install@game after wave 1: bake time over",
				"install@game after wave 2 approved automatically (--auto-approve)"},
			wantNot: []string{"warning"},
			once:    []string{"install game: wave 1/3 started", "install game: wave 2/3 started", "install game: wave 3/3 started"},
			hook:    map[string]int{"json started": 1, "json wave": 3, "json approved": 1, "json finished": 1, "slack wave": 3, "slack finished": 1}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[strings.Fields(tt.cmd)[2]] = true
	}
	plans, _ := filepath.Glob("../examples/*.yaml")
	for _, p := range plans {
		if !covered["examples/"+filepath.Base(p)] {
			t.Errorf("examples/%s has no case here: add its header's command and outcome", filepath.Base(p))
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fields := strings.Fields(tt.cmd)
			for i, f := range fields {
				if strings.HasPrefix(f, "examples/") && (i == 2 || fields[i-1] == "--scenario") {
					checkHeaderGives(t, filepath.Join("..", f), tt.cmd)
				}
			}
			args := append(fields[1:], "--speed", "20", "--no-tui", "--state-dir", t.TempDir())
			cmd := exec.Command(binary, args...)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CLANFORGE_ACCESS_KEY=", "CLANFORGE_SECRET_KEY=", "NO_COLOR=1")
			var hook *receiver
			if tt.hook != nil {
				hook = newReceiver(t)
				cmd.Env = append(cmd.Env, "ROLLOUT_WEBHOOK="+hook.URL)
			}
			out, err := cmd.CombinedOutput()
			if exitCode(err) != tt.code {
				t.Fatalf("exit %d, want %d\n%s", exitCode(err), tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(string(out), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			for _, w := range tt.once {
				if n := strings.Count(string(out), w); n != 1 {
					t.Errorf("output has %q %d times, want once:\n%s", w, n, out)
				}
			}
			if hook != nil {
				if got := hook.counts(); fmt.Sprint(got) != fmt.Sprint(tt.hook) {
					t.Errorf("the webhook got %v, want %v", got, tt.hook)
				}
				for _, secret := range []string{hook.URL, webhookPath} {
					if strings.Contains(string(out), secret) {
						t.Errorf("the output shows the webhook URL:\n%s", out)
					}
				}
			}
		})
	}
}

// checkHeaderGives fails the test unless the header comment of file (its
// leading comment lines) has a line that gives cmd.
func checkHeaderGives(t *testing.T, file, cmd string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if strings.HasSuffix(strings.TrimSpace(line), cmd) {
			return
		}
	}
	t.Errorf("the header of %s does not give the command %q", file, cmd)
}

// TestResumeRefusesAChangedPlan: a journal left by a killed run is resumed
// only with the same plan; otherwise run refuses and names what changed.
func TestResumeRefusesAChangedPlan(t *testing.T) {
	f := newFixture(t, killPlan, fastScenario)
	cmd, out := f.start(f.runArgs()...)
	exited := make(chan struct{})
	f.k.mu.Lock()
	f.k.at = 2 // the diff create: the update is done, the diff not
	f.k.kill = func() { _ = cmd.Process.Signal(syscall.SIGKILL); <-exited }
	f.k.mu.Unlock()
	go func() { _ = cmd.Wait(); close(exited) }()
	<-exited
	changed := strings.Replace(strings.Replace(killPlan, `build: "7.0.0"`, `build: "7.0.1"`, 1), "concurrency: 3", "concurrency: 2", 1)
	if err := os.WriteFile(f.planPath, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	res, rout := f.start(f.runArgs("--resume")...)
	err := res.Wait()
	if exitCode(err) != exitUsage {
		t.Fatalf("resume with a changed plan: exit %d\n%s\n%s", exitCode(err), out, rout)
	}
	for _, w := range []string{"changed", "vars.build (changed)", "concurrency (changed)", "--fresh"} {
		if !strings.Contains(rout.String(), w) {
			t.Errorf("refusal lacks %q:\n%s", w, rout)
		}
	}
}

// TestPlanPreviewSendsNothingThatChangesState: `rollout plan` against a
// reachable API makes its read-only pre-flight and names every machine and
// step of a two-image rollout, and not one state-changing call is sent.
func TestPlanPreviewSendsNothingThatChangesState(t *testing.T) {
	src, err := os.ReadFile("../examples/two-images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, string(src), fastScenario)
	for _, args := range [][]string{{"plan", f.planPath}, {"plan", f.planPath, "--all"}, {"plan", f.planPath, "--json"}} {
		cmd, out := f.start(args...)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: exit %d\n%s", args, exitCode(err), out)
		}
		for _, w := range []string{"buildbox-1", "eu-1", "eu-2", "eu-3", "us-1", "us-2", "us-3", "update", "diff", "sane", "version", "mirror", "install"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v does not name %q", args, w)
			}
		}
		if len(args) == 2 { // the plain text preview
			if !strings.Contains(out.String(), "Pre-flight (read-only):") || !strings.Contains(out.String(), "not locked") {
				t.Errorf("no pre-flight in the preview:\n%s", out)
			}
		}
	}
	reads := 0
	for _, r := range f.sim.Requests() {
		if r.Mutating {
			t.Errorf("the preview sent %s", r.Endpoint)
		}
		reads++
	}
	if reads == 0 {
		t.Fatal("the preview made no pre-flight read at all")
	}
}
