package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
)

// The end-to-end tests of issue 10's "Done when": the A/B cut-over plan of
// the plan format, run by the binary against the strict simulator served
// by the test process.

// contractBody is the PATCH body the contract's plan asks for: its switch
// step says to: game-b (profile 102), max_machines: 10, force_after: 2h.
const contractBody = `{"ProfileID":102,"Timeout":"2h","MaxMachines":10}`

// contractPlan is the A/B cut-over plan of the plan format as package plan
// loads it (plan/testdata/ab-cutover.yaml), changed only where a test must:
// its two webhooks post to hook (a local receiver) instead of Slack and a
// CI host, its bake after wave 2 is 1 s instead of 10 minutes, and steps
// (YAML of more steps, may be "") are added after its last step.
func contractPlan(t *testing.T, hook, steps string) string {
	t.Helper()
	b, err := os.ReadFile("../plan/testdata/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, r := range [][2]string{
		{`"https://hooks.slack.com/services/${env:SLACK_HOOK}"`, `"` + hook + `"`},
		{`"https://ci.example.com/rollout/events"`, `"` + hook + `"`},
		{"pause_after: [approve, 10m]", "pause_after: [approve, 1s]"},
		{"\non_failure:\n", "\n" + steps + "\non_failure:\n"},
	} {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("the contract's plan no longer has %q", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	return src
}

// fleetIDs are the contract plan's fleets by name.
var fleetIDs = map[string]string{"prod-eu": simtest.FleetEU, "prod-us": simtest.FleetUS}

// patches lists the PATCHes the simulator received as "fleet profile",
// in arrival order.
func patches(s *sim.Server) []string {
	var out []string
	for _, sw := range s.Switches() {
		out = append(out, fmt.Sprintf("%s %d", sw.Fleet, sw.ProfileID))
	}
	return out
}

// checkSwitchedOnce asserts that each fleet got exactly one PATCH to
// profile, applied (a dropped answer still counts as applied: the work was
// done), with body, and that every fleet of the simulator now runs profile,
// complete.
func checkSwitchedOnce(t *testing.T, s *sim.Server, profile int64, body string) {
	t.Helper()
	per := map[string]int{}
	for _, sw := range s.Switches() {
		if sw.ProfileID != profile {
			continue
		}
		per[sw.Fleet]++
		if !sw.Applied || sw.Strict != "" || sw.Body != body || sw.ContentType != "application/json" {
			t.Errorf("PATCH to %s: applied %v, strict %q, content type %q, body %s; want applied, body %s",
				sw.Fleet, sw.Applied, sw.Strict, sw.ContentType, sw.Body, body)
		}
	}
	for name := range fleetIDs {
		if per[name] != 1 {
			t.Errorf("fleet %s got %d PATCHes to profile %d, want 1 (all: %v)", name, per[name], profile, patches(s))
		}
	}
	for _, f := range s.Fleets() {
		if f.Profile != profile || f.State != sim.StateComplete || f.ServersPending != 0 {
			t.Errorf("fleet %s: profile %d, %s, %d pending; want profile %d complete", f.Name, f.Profile, f.State, f.ServersPending, profile)
		}
		for _, m := range f.Machines {
			if got := s.MachineProfile(m); got != profile {
				t.Errorf("machine %d of %s runs profile %d, want %d", m, f.Name, got, profile)
			}
		}
	}
}

// checkContractInstalls asserts one update, diff and version (of the idle
// image only), the mirror jobs and the given number of machine installs
// completed.
func checkContractInstalls(t *testing.T, s *sim.Server, installs int) {
	t.Helper()
	kinds := map[sim.Kind]int{}
	for _, j := range s.Jobs() {
		kinds[j.Kind]++
		if j.ImageID != 5531 {
			t.Errorf("%s job %d on image %d: the live image was touched", j.Kind, j.ID, j.ImageID)
		}
		if (j.Kind == sim.KindInstall || j.Kind == sim.KindMirror) && j.StateName != "Completed" {
			t.Errorf("%s job %d ended %s", j.Kind, j.ID, j.StateName)
		}
	}
	for k, want := range map[sim.Kind]int{sim.KindUpdate: 1, sim.KindDiff: 1, sim.KindVersion: 1, sim.KindMirror: 2, sim.KindInstall: installs} {
		if kinds[k] != want {
			t.Errorf("%d %s jobs, want %d", kinds[k], k, want)
		}
	}
}

// lastInstallEnd is when the last machine install ended.
func lastInstallEnd(t *testing.T, s *sim.Server) time.Time {
	t.Helper()
	var last time.Time
	for _, j := range s.Jobs() {
		if j.Kind != sim.KindInstall {
			continue
		}
		if j.Ended.IsZero() {
			t.Fatalf("install job %d has not ended", j.ID)
		}
		if j.Ended.After(last) {
			last = j.Ended
		}
	}
	return last
}

// TestCutoverContractPlan: the A/B plan of the contract finishes with exit
// 0: one update, diff and version, every install done; the readiness
// counters are read after the last install ended and before the first
// PATCH; then exactly one PATCH per fleet with the plan's ProfileID,
// MaxMachines and Timeout, each followed by status reads to complete.
func TestCutoverContractPlan(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t)
	f := newFixture(t, contractPlan(t, hook.URL, ""), fastScenario)
	cmd, out := f.start(f.runArgs("--auto-approve")...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: exit %d\n%s", exitCode(err), out)
	}
	checkContractInstalls(t, f.sim, 4)
	checkSwitchedOnce(t, f.sim, 102, contractBody)

	// Ready before the switch: no PATCH before the last install ended,
	// and a read of the counters in between (a read at or after that
	// moment counts every machine completed: the simulator's counters
	// follow the install jobs at every moment).
	ended := lastInstallEnd(t, f.sim)
	sws := f.sim.Switches()
	first := sws[0].Time
	for _, sw := range sws {
		if sw.Time.Before(first) {
			first = sw.Time
		}
	}
	if first.Before(ended) {
		t.Fatalf("a PATCH at %s, before the last install ended at %s", first, ended)
	}
	readReady := false
	for _, r := range f.sim.Requests() {
		if r.Endpoint == sim.EPImageStatusV2 && r.Status == http.StatusOK && !r.Time.Before(ended) && !r.Time.After(first) {
			readReady = true
		}
	}
	if !readReady {
		t.Errorf("no read of the readiness counters between the last install's end (%s) and the first PATCH (%s)", ended, first)
	}
	// Polled to complete: status reads of each fleet after its PATCH,
	// and the run saw complete.
	for _, sw := range sws {
		polled := 0
		for _, r := range f.sim.Requests() {
			if r.Endpoint == sim.EPSwitchStatus && strings.Contains(r.Path, sw.FleetID) && r.Time.After(sw.Time) {
				polled++
			}
		}
		if polled == 0 {
			t.Errorf("the switch of %s was never read after its PATCH", sw.Fleet)
		}
		if want := fmt.Sprintf("cutover@%s/game-b: switch complete: %s: complete, profile 102", sw.Fleet, sw.Fleet); !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCutoverFailingCheckSwitchesBack: a check after the switch that reads
// false (a gate wanting more machines ready than the fleet has) fails the
// run; on_failure switches each fleet back to the live image's profile
// exactly once, after both forward switches, and the run exits 1.
func TestCutoverFailingCheckSwitchesBack(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t)
	smoke := `  - name: smoke
    type: gate
    needs: [cutover]
    where: image.name == vars.idle
    expr: steps.fleet_ready.status.completed > 4
`
	f := newFixture(t, contractPlan(t, hook.URL, smoke), fastScenario)
	cmd, out := f.start(f.runArgs("--auto-approve")...)
	err := cmd.Wait()
	if exitCode(err) != exitFailed {
		t.Fatalf("run: exit %d, want 1\n%s", exitCode(err), out)
	}
	if !strings.Contains(out.String(), `gate "smoke" is false`) {
		t.Errorf("the output does not name the failed check:\n%s", out)
	}
	sws := f.sim.Switches()
	if len(sws) != 4 {
		t.Fatalf("%d PATCHes, want 2 forward and 2 back: %v\n%s", len(sws), patches(f.sim), out)
	}
	for i, sw := range sws {
		want := int64(102)
		if i >= 2 {
			want = 101
		}
		if sw.ProfileID != want {
			t.Fatalf("PATCHes in the order %v, want both to 102 before both to 101", patches(f.sim))
		}
	}
	// The forward PATCHes carried the plan's body; the on_failure switch
	// sets neither max_machines nor force_after.
	for _, sw := range sws[:2] {
		if sw.Body != contractBody {
			t.Errorf("forward PATCH to %s: %s", sw.Fleet, sw.Body)
		}
	}
	checkSwitchedOnce(t, f.sim, 101, `{"ProfileID":101}`)
	for _, fleet := range []string{"prod-eu", "prod-us"} {
		if want := fmt.Sprintf("switch@%s/game-a: %s switched to profile 101 (game-a)", fleet, fleet); !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCutoverFailureBeforeTheSwitchSendsNoPatch: an install that fails
// (beyond max_failures) aborts the run before the switch: not one PATCH
// is sent, the on_failure switch says it switched nothing, exit 1.
func TestCutoverFailureBeforeTheSwitchSendsNoPatch(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t)
	f := newFixture(t, contractPlan(t, hook.URL, ""), fastScenario+`
failures:
  - {kind: install, machine: us-2, error: "disk full"}
`)
	cmd, out := f.start(f.runArgs("--auto-approve")...)
	err := cmd.Wait()
	if exitCode(err) != exitFailed {
		t.Fatalf("run: exit %d, want 1\n%s", exitCode(err), out)
	}
	if sws := f.sim.Switches(); len(sws) != 0 {
		t.Fatalf("%d PATCHes after a failure before the switch: %v", len(sws), patches(f.sim))
	}
	for _, r := range f.sim.Requests() {
		if r.Endpoint == sim.EPSwitchProfile {
			t.Fatalf("a switchprofile PATCH was sent: %+v", r)
		}
	}
	for _, want := range []string{"install@us-2/game-b failed", "cutover@prod-eu/game-b skipped", "not switched by this run; nothing to switch back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCutoverLostPatchAnswer: the answer to the first PATCH is lost (the
// simulator did the work and closed the connection): the run settles it
// from the switch status and sends no second PATCH, so each fleet is
// switched exactly once, and the run exits 0.
func TestCutoverLostPatchAnswer(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t)
	f := newFixture(t, contractPlan(t, hook.URL, ""), fastScenario+`
faults:
  targeted:
    - {endpoint: v2/fleet/switchprofile, fault: drop, count: 1}
`)
	cmd, out := f.start(f.runArgs("--auto-approve")...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: exit %d\n%s", exitCode(err), out)
	}
	dropped := 0
	for _, sw := range f.sim.Switches() {
		if sw.Dropped {
			dropped++
		}
	}
	if dropped != 1 {
		t.Fatalf("%d PATCH answers dropped, want 1: the fault did not hit", dropped)
	}
	checkSwitchedOnce(t, f.sim, 102, contractBody)
}

// TestCutoverKillAndResume extends the kill-and-resume proof to the
// switch: the run is killed with SIGKILL on a PATCH, before the simulator
// saw it or after it did the work but before the answer left (between the
// journal's intent and its result), then resumed: each fleet gets exactly
// one PATCH in all, and the resumed run exits 0.
func TestCutoverKillAndResume(t *testing.T) {
	for _, pt := range []struct {
		at    int
		after bool
	}{{1, false}, {1, true}, {2, false}, {2, true}} {
		name := fmt.Sprintf("patch%d-before-work", pt.at)
		if pt.after {
			name = fmt.Sprintf("patch%d-after-work", pt.at)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hook := newReceiver(t)
			f := newFixture(t, contractPlan(t, hook.URL, ""), fastScenario)
			cmd, out := f.start(f.runArgs("--auto-approve")...)
			exited := make(chan struct{})
			var err error
			f.k.mu.Lock()
			f.k.at, f.k.after = pt.at, pt.after
			f.k.match = func(r *http.Request) bool { return r.Method == http.MethodPatch }
			f.k.kill = func() {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-exited
			}
			f.k.mu.Unlock()
			go func() { err = cmd.Wait(); close(exited) }()
			waitExit(t, exited, out)
			f.k.mu.Lock()
			killed := f.k.killed
			f.k.mu.Unlock()
			if !killed {
				t.Fatalf("the run ended (exit %d) before PATCH %d:\n%s", exitCode(err), pt.at, out)
			}
			res, rout := f.start(f.runArgs("--resume", "--auto-approve")...)
			if err := res.Wait(); err != nil {
				t.Fatalf("resume: exit %d\n--- first run\n%s\n--- resume\n%s", exitCode(err), out, rout)
			}
			checkContractInstalls(t, f.sim, 4)
			checkSwitchedOnce(t, f.sim, 102, contractBody)
			if len(f.sim.Switches()) != 2 {
				t.Fatalf("PATCHes %v, want one per fleet", patches(f.sim))
			}
		})
	}
}
