package steps

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// The cut-over tests load a fleet plan with profiles and fleets
// (simtest.CutoverPlan); the step tests build ready and switch instances
// on it in Go, as the loader makes them, since the executors read only
// the exported fields; the engine tests load the cut-over steps too.

const (
	euID = simtest.FleetEU
	usID = simtest.FleetUS
)

type cutRig struct {
	p        *plan.Plan
	srv      *sim.Server
	c        *clanforge.Client
	env      *Env
	j        *MemJournal
	a, b     *plan.Image
	eu, us   *plan.Fleet
	mu       sync.Mutex
	outs     map[string]*plan.Output
	progress []JobUpdate
}

// newCutRig serves a fleet plan of images game-a (profile 101) and game-b
// (profile 102) on a build machine and n fleet machines, alternately in
// region eu (fleet prod-eu) and us (fleet prod-us).
func newCutRig(t *testing.T, n int, sc sim.Scenario) *cutRig {
	return newCutRigWith(t, n, sc, "", "")
}

// newCutRigWith is newCutRig with more steps after the install step, and
// an on_failure section.
func newCutRigWith(t *testing.T, n int, sc sim.Scenario, steps, onFailure string) *cutRig {
	t.Helper()
	p := simtest.Plan(t, simtest.CutoverPlan("cutover", []string{"game-a", "game-b"}, n, 4, "", steps, onFailure))
	r := &cutRig{p: p, a: p.Images[0], b: p.Images[1], outs: map[string]*plan.Output{}}
	if r.a.Profile != 101 || r.b.Profile != 102 || len(p.Fleets) != 2 {
		t.Fatalf("the plan's profiles %d, %d and fleets %v", r.a.Profile, r.b.Profile, p.Fleets)
	}
	r.eu, r.us = p.Fleets[0], p.Fleets[1]
	if sc.Speed == 0 {
		sc.Speed = 400
	}
	e := simtest.Start(t, p, sc, simtest.ReadAttempts(3))
	r.srv, r.c, r.j = e.Server, e.Client, &MemJournal{}
	pol := PollPolicy{Min: 5 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	r.env = &Env{Client: r.c, Journal: r.j, Poll: pol, Installs: NewInstallWatcher(r.c, pol)}
	t.Cleanup(r.env.Installs.Close)
	return r
}

func (r *cutRig) readyInst(until, failIf string) *plan.Instance {
	s := &plan.Step{Name: "fleet_ready", Type: plan.TypeReady, Fleets: r.p.Fleets, Timeout: time.Hour}
	if until != "" {
		s.Until = mustStatus(until)
	}
	if failIf != "" {
		s.FailIf = mustStatus(failIf)
	}
	return &plan.Instance{ID: "fleet_ready@game-b", Step: s, Image: r.b, Wave: -1}
}

func mustStatus(src string) *plan.Expr {
	e, err := plan.CompileStatus(src)
	if err != nil {
		panic(err)
	}
	return e
}

// switchInsts are one step's instances, one per fleet, as the loader makes
// them: ids "<step>@<fleet>/<image>".
func (r *cutRig) switchInsts(s *plan.Step, img *plan.Image, fleets ...*plan.Fleet) []*plan.Instance {
	var out []*plan.Instance
	for _, f := range fleets {
		out = append(out, &plan.Instance{ID: s.Name + "@" + f.Name + "/" + img.Name, Step: s, Image: img, Fleet: f, Wave: -1})
	}
	return out
}

func (r *cutRig) cutover(maxMachines int, forceAfter time.Duration) *plan.Step {
	return &plan.Step{Name: "cutover", Type: plan.TypeSwitch, To: r.b, MaxMachines: maxMachines, ForceAfter: forceAfter, Timeout: time.Hour}
}

func (r *cutRig) rollback() *plan.Step {
	return &plan.Step{Name: "switch", Type: plan.TypeSwitch, To: r.a, OnFailure: true, Timeout: time.Hour}
}

func (r *cutRig) exec(ctx context.Context, in *plan.Instance) (*plan.Output, error) {
	out, err := Run(ctx, r.env, in, plan.Inputs{Scope: map[string]*plan.Output{}}, func(u JobUpdate) {
		r.mu.Lock()
		r.progress = append(r.progress, u)
		r.mu.Unlock()
	})
	r.mu.Lock()
	r.outs[in.ID] = out
	r.mu.Unlock()
	return out, err
}

func (r *cutRig) run(t *testing.T, in *plan.Instance) (*plan.Output, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.exec(ctx, in)
}

// patches returns the switchprofile PATCHes the simulator received for
// fleet id ("" : all).
func (r *cutRig) patches(id string) []sim.Switch {
	var out []sim.Switch
	for _, s := range r.srv.Switches() {
		if id == "" || s.FleetID == id {
			out = append(out, s)
		}
	}
	return out
}

func (r *cutRig) fleet(id string) sim.FleetInfo {
	for _, f := range r.srv.Fleets() {
		if f.ID == id {
			return f
		}
	}
	return sim.FleetInfo{}
}

func (r *cutRig) details(kind string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.progress {
		if u.Kind == kind {
			out = append(out, u.Detail)
		}
	}
	return out
}

// prepare runs update, diff, version and mirror, in plan order.
func (r *cutRig) prepare(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, in := range r.p.Instances {
		if in.Step.Name == "install" {
			continue
		}
		out, err := Run(ctx, r.env, in, r.inputs(in), nil)
		if err != nil {
			t.Fatalf("%s: %v", in.ID, err)
		}
		r.mu.Lock()
		r.outs[in.ID] = out
		r.mu.Unlock()
	}
}

func (r *cutRig) inputs(in *plan.Instance) plan.Inputs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return inputsFrom(r.outs, in)
}

// installs starts every install instance; wait waits for them to end.
func (r *cutRig) installs(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, in := range r.p.Instances {
		if in.Step.Name != "install" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = Run(ctx, r.env, in, r.inputs(in), nil)
		}()
	}
	return wg.Wait
}

// rollOut prepares, then runs the installs and the ready instance
// concurrently, and returns the ready instance's end once all ended.
func (r *cutRig) rollOut(t *testing.T, ready *plan.Instance) (*plan.Output, error) {
	t.Helper()
	r.prepare(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := r.installs(ctx)
	out, err := r.exec(ctx, ready)
	wait()
	return out, err
}

// TestReadyWaitsForTheFleetThenSwitch: the ready instance, started while
// the installs run, returns only once every fleet machine has the image's
// latest version; its output is the last counters, per region; the switch
// sent after it is the first PATCH, and every install completed before it
// arrived.
func TestReadyWaitsForTheFleetThenSwitch(t *testing.T) {
	r := newCutRig(t, 6, sim.Scenario{Durations: sim.Durations{Install: 20 * time.Second}})
	out, err := r.rollOut(t, r.readyInst("", ""))
	if err != nil {
		t.Fatalf("ready: %v", err)
	}
	latest := r.srv.LatestVersion(r.b.ID)
	for _, m := range r.p.Machines {
		if !m.Build && r.srv.InstalledVersion(m.ID, r.b.ID) != latest {
			t.Errorf("ready returned while %s had version %d, not %d", m.Name, r.srv.InstalledVersion(m.ID, r.b.ID), latest)
		}
	}
	st := out.Status
	if st == nil || st.Pending != 0 || st.Completed != 6 || st.Regions["eu"].Completed != 3 || st.Regions["us"].Completed != 3 {
		t.Fatalf("ready output status %+v", st)
	}
	d := r.details(KindReady)
	if len(d) < 2 || strings.HasPrefix(d[0], "0 pending") || d[len(d)-1] != "0 pending, 6 completed, 0 failed (eu: 0 pending, 3 completed, 0 failed; us: 0 pending, 3 completed, 0 failed)" {
		t.Errorf("ready progress %q", d)
	}
	if len(r.patches("")) != 0 {
		t.Fatal("a PATCH before the switch ran")
	}
	for _, in := range r.switchInsts(r.cutover(1, time.Hour), r.b, r.eu, r.us) {
		if _, err := r.run(t, in); err != nil {
			t.Fatalf("%s: %v", in.ID, err)
		}
	}
	p := r.patches("")
	if len(p) != 2 {
		t.Fatalf("%d PATCHes, want one per fleet", len(p))
	}
	for _, ev := range r.srv.Timeline() {
		if ev.Kind == sim.KindInstall && ev.Event == "completed" && !ev.Time.Before(p[0].Time) {
			t.Errorf("install of %s completed at %s, after the first PATCH at %s", ev.Machine, ev.Time, p[0].Time)
		}
	}
}

// TestSwitchSendsOnePatchPerFleet: each fleet gets exactly one PATCH with
// the step's ProfileID, Timeout and MaxMachines, polled to complete; the
// journal holds each intent with the profile as its result; the progress
// says how many servers were processed.
func TestSwitchSendsOnePatchPerFleet(t *testing.T) {
	// Each batch lasts 100 ms at the rig's speed, longer than the rig's
	// longest gap between reads (40 ms): at the default 5 ms a read that
	// came a little late skipped "2 of 4" (3 to 6 runs in 40 under -race,
	// before issue 12's work too).
	r := newCutRig(t, 8, sim.Scenario{Durations: sim.Durations{SwitchBatch: 40 * time.Second}})
	for _, in := range r.switchInsts(r.cutover(2, 2*time.Hour), r.b, r.eu, r.us) {
		out, err := r.run(t, in)
		if err != nil {
			t.Fatalf("%s: %v", in.ID, err)
		}
		if !strings.Contains(out.Detail, "switched to profile 102 (game-b)") {
			t.Errorf("%s: detail %q", in.ID, out.Detail)
		}
		if _, res, id := r.j.Prior(SwitchKey(in.ID)); !res || id != 102 {
			t.Errorf("%s: journal result %v %d", in.ID, res, id)
		}
		if p := r.j.params(SwitchKey(in.ID)); p["ProfileID"] != "102" || p["Timeout"] != "2h" || p["MaxMachines"] != "2" {
			t.Errorf("journal params %v", p)
		}
	}
	for _, id := range []string{euID, usID} {
		p := r.patches(id)
		if len(p) != 1 {
			t.Fatalf("fleet %s: %d PATCHes", id, len(p))
		}
		if p[0].Body != `{"ProfileID":102,"Timeout":"2h","MaxMachines":2}` || !p[0].Applied {
			t.Errorf("PATCH body %s applied %v", p[0].Body, p[0].Applied)
		}
		if f := r.fleet(id); f.Profile != 102 || f.State != sim.StateComplete || f.ServersProcessed != 4 {
			t.Errorf("fleet %+v", f)
		}
	}
	seen := strings.Join(r.details(KindSwitch), "\n")
	for _, want := range []string{"prod-eu: processing 2 of 4 servers to profile 102", "prod-us: complete, profile 102 (4 servers switched)"} {
		if !strings.Contains(seen, want) {
			t.Errorf("progress lacks %q:\n%s", want, seen)
		}
	}
	// The end of each switch is reported once.
	for _, end := range []string{"prod-eu: complete, profile 102 (4 servers switched)", "prod-us: complete, profile 102 (4 servers switched)"} {
		if n := strings.Count(seen, end); n != 1 {
			t.Errorf("%q reported %d times:\n%s", end, n, seen)
		}
	}
}

// TestSwitchNothingToSend: a fleet that already runs the profile (complete
// from an earlier switch, or on it from the start with no switch
// requested) gets no PATCH, and the instance succeeds saying so.
func TestSwitchNothingToSend(t *testing.T) {
	r := newCutRig(t, 4, sim.Scenario{FleetProfiles: map[string]int64{"prod-us": 102}})
	step := r.cutover(0, 0)
	insts := r.switchInsts(step, r.b, r.eu, r.us)
	if _, err := r.run(t, insts[0]); err != nil {
		t.Fatal(err)
	}
	// prod-us started on 102: nothing to send.
	out, err := r.run(t, insts[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(r.patches(usID)) != 0 || !strings.Contains(out.Detail, "already runs profile 102 (game-b): nothing sent") {
		t.Errorf("prod-us: %d PATCHes, detail %q", len(r.patches(usID)), out.Detail)
	}
	// A new run (a fresh journal) of prod-eu, now complete on 102.
	r.env.Journal = &MemJournal{}
	if _, err := r.run(t, insts[0]); err != nil {
		t.Fatal(err)
	}
	if n := len(r.patches(euID)); n != 1 {
		t.Errorf("prod-eu: %d PATCHes after a second run, want 1", n)
	}
}

// TestSwitchLostAnswerSendsOnce: the PATCH's answer is dropped after the
// simulator applied it; the switch is settled from the status and still
// sent exactly once.
func TestSwitchLostAnswerSendsOnce(t *testing.T) {
	sc := sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{{Endpoint: sim.EPSwitchProfile, Fault: "drop", Count: 1}}}}
	r := newCutRig(t, 4, sc)
	in := r.switchInsts(r.cutover(1, 0), r.b, r.eu)[0]
	if _, err := r.run(t, in); err != nil {
		t.Fatalf("switch: %v", err)
	}
	p := r.patches(euID)
	if len(p) != 1 || !p[0].Dropped || !p[0].Applied {
		t.Fatalf("PATCHes %+v, want one, applied with its answer dropped", p)
	}
	if f := r.fleet(euID); f.State != sim.StateComplete || f.Profile != 102 {
		t.Errorf("fleet %+v", f)
	}
	if _, res, id := r.j.Prior(SwitchKey(in.ID)); !res || id != 102 {
		t.Errorf("journal result %v %d", res, id)
	}
}

// TestSwitchResume: a resumed run finds this instance's intent in the
// journal. Killed after the PATCH left (the fleet shows the switch): it is
// adopted, nothing sent. Killed before it left: sent once. Answer
// recorded: re-attached, nothing sent, and the pre-read is skipped.
func TestSwitchResume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sentBefore bool
		result     bool
		want       int // PATCHes in all
	}{
		{"killed after the PATCH left", true, false, 1},
		{"killed before the PATCH left", false, false, 1},
		{"answer recorded", true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCutRig(t, 4, sim.Scenario{})
			in := r.switchInsts(r.cutover(1, 0), r.b, r.eu)[0]
			if tc.sentBefore {
				if _, err := r.c.SwitchProfile(context.Background(), euID, clanforge.SwitchOptions{ProfileID: 102, MaxMachines: 1}); err != nil {
					t.Fatal(err)
				}
			}
			var id int64
			if tc.result {
				id = 102
			}
			r.j.earlier(SwitchKey(in.ID), switchPath(euID), tc.result, id)
			if _, err := r.run(t, in); err != nil {
				t.Fatalf("resumed switch: %v", err)
			}
			if n := len(r.patches(euID)); n != tc.want {
				t.Errorf("%d PATCHes, want %d", n, tc.want)
			}
			if f := r.fleet(euID); f.State != sim.StateComplete || f.Profile != 102 {
				t.Errorf("fleet %+v", f)
			}
			if _, res, got := r.j.Prior(SwitchKey(in.ID)); !res || got != 102 {
				t.Errorf("journal result %v %d after the resume", res, got)
			}
		})
	}
}

// TestSwitchBackOnlyWhatThisRunSwitched: after prod-eu was switched by
// this run and prod-us not, the on_failure switch switches prod-eu back
// exactly once, even when run again (a resume), and does nothing for
// prod-us, saying so.
func TestSwitchBackOnlyWhatThisRunSwitched(t *testing.T) {
	r := newCutRig(t, 4, sim.Scenario{})
	fwd := r.switchInsts(r.cutover(0, 0), r.b, r.eu, r.us)
	if _, err := r.run(t, fwd[0]); err != nil {
		t.Fatal(err)
	}
	back := r.switchInsts(r.rollback(), r.a, r.eu, r.us)
	trigger := append(append([]*plan.Instance{}, r.p.Instances...), fwd...)
	for _, in := range back {
		in.Trigger = trigger
	}
	for round := 0; round < 2; round++ {
		for _, in := range back {
			if _, err := r.run(t, in); err != nil {
				t.Fatalf("round %d %s: %v", round, in.ID, err)
			}
		}
	}
	if p := r.patches(euID); len(p) != 2 || p[1].ProfileID != 101 {
		t.Fatalf("prod-eu PATCHes %+v, want the cut-over and one switch back to 101", p)
	}
	if f := r.fleet(euID); f.Profile != 101 || f.State != sim.StateComplete {
		t.Errorf("prod-eu %+v", f)
	}
	if n := len(r.patches(usID)); n != 0 {
		t.Errorf("prod-us got %d PATCHes", n)
	}
	us := r.outs[back[1].ID]
	if !us.Noop || us.Detail != "not switched by this run; nothing to switch back" {
		t.Errorf("prod-us on_failure output %+v", us)
	}
	if eu := r.outs[back[0].ID]; eu.Noop {
		t.Errorf("prod-eu on_failure output %+v", eu)
	}
}

// TestSwitchBackSettlesAnUnansweredIntent: the forward PATCH's intent has
// no recorded answer (the process died): the fleet's status settles
// whether it took; it did, so the fleet is switched back.
func TestSwitchBackSettlesAnUnansweredIntent(t *testing.T) {
	r := newCutRig(t, 4, sim.Scenario{})
	fwd := r.switchInsts(r.cutover(0, 0), r.b, r.eu, r.us)
	if _, err := r.c.SwitchProfile(context.Background(), euID, clanforge.SwitchOptions{ProfileID: 102}); err != nil {
		t.Fatal(err)
	}
	r.j.earlier(SwitchKey(fwd[0].ID), switchPath(euID), false, 0)
	r.j.earlier(SwitchKey(fwd[1].ID), switchPath(usID), false, 0) // prod-us: intent, but the PATCH never left
	back := r.switchInsts(r.rollback(), r.a, r.eu, r.us)
	for _, in := range back {
		in.Trigger = fwd
		if _, err := r.run(t, in); err != nil {
			t.Fatalf("%s: %v", in.ID, err)
		}
	}
	if p := r.patches(euID); len(p) != 2 || p[1].ProfileID != 101 {
		t.Fatalf("prod-eu PATCHes %+v", p)
	}
	if n := len(r.patches(usID)); n != 0 || !r.outs[back[1].ID].Noop {
		t.Errorf("prod-us: %d PATCHes, output %+v", n, r.outs[back[1].ID])
	}
}

// TestSwitchBackIgnoresSwitchesToOtherProfiles: the forward PATCH of
// prod-us has an intent and no answer (the process died before it left),
// and since then somebody else switched prod-us, to its own profile A.
// That requested switch is not this run's (its profile is not the
// forward one), so the switch back leaves prod-us alone and says so.
func TestSwitchBackIgnoresSwitchesToOtherProfiles(t *testing.T) {
	r := newCutRig(t, 4, sim.Scenario{})
	fwd := r.switchInsts(r.cutover(0, 0), r.b, r.us)
	if _, err := r.c.SwitchProfile(context.Background(), usID, clanforge.SwitchOptions{ProfileID: 101}); err != nil {
		t.Fatal(err)
	}
	r.j.earlier(SwitchKey(fwd[0].ID), switchPath(usID), false, 0)
	back := r.switchInsts(r.rollback(), r.a, r.us)
	back[0].Trigger = fwd
	out, err := r.run(t, back[0])
	if err != nil {
		t.Fatal(err)
	}
	if !out.Noop || out.Detail != "not switched by this run; nothing to switch back" {
		t.Errorf("prod-us on_failure output %+v, want nothing switched back", out)
	}
	if p := r.patches(usID); len(p) != 1 {
		t.Errorf("prod-us PATCHes %+v, want only the other person's", p)
	}
}

// TestSwitchFailures: a switch that stalls past its Deadline, one whose
// status turns into an error answer, one in a state the API does not
// document, and an unknown fleet each fail the instance, with the status
// in the error and exactly one PATCH (none for the unknown fleet). After
// each failed switch the switch back sends exactly one PATCH, to profile
// 101, and completes: a status that reads as an error does not stop it.
func TestSwitchFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		trouble    string
		forceAfter time.Duration
		fleet      *plan.Fleet
		want       []string
		patches    int
		back       string // the switch back's error; "" when it completes
	}{
		// A stalled switch never ends, and the API refuses the switch
		// back in words: that refusal is its error.
		{"stall past the deadline", sim.TroubleStall, time.Second, nil, []string{"still processing past its Deadline", "servers processed"}, 1, "profile switch in progress"},
		{"error answer", sim.TroubleError, 0, nil, []string{"profile switch failed: injected switch failure"}, 1, ""},
		{"undocumented state", sim.TroubleFailed, 0, nil, []string{`state "failed"`, "not pending, processing or complete"}, 1, ""},
		{"unknown fleet", "", 0, &plan.Fleet{Name: "prod-xx", ID: "00000000-0000-4000-8000-000000000000"}, []string{"fleet prod-xx (id 00000000-0000-4000-8000-000000000000) is unknown to the API"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sc sim.Scenario
			if tc.trouble != "" {
				// Profile keeps the trouble to the cut-over: the switch
				// back is a switch of its own.
				sc.Switches = []sim.SwitchTrouble{{Trouble: tc.trouble, Fleet: "prod-eu", Profile: 102, After: 1}}
			}
			r := newCutRig(t, 8, sc)
			f := r.eu
			if tc.fleet != nil {
				f = tc.fleet
			}
			in := r.switchInsts(r.cutover(1, tc.forceAfter), r.b, f)[0]
			_, err := r.run(t, in)
			if err == nil {
				t.Fatal("the switch succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n := len(r.patches("")); n != tc.patches {
				t.Errorf("%d PATCHes, want %d", n, tc.patches)
			}
			if tc.fleet != nil {
				return
			}
			back := r.switchInsts(r.rollback(), r.a, f)[0]
			back.Trigger = []*plan.Instance{in}
			_, err = r.run(t, back)
			if p := r.patches(euID); len(p) != 2 || p[1].ProfileID != 101 {
				t.Fatalf("prod-eu PATCHes %+v, want the cut-over and one switch back to 101", p)
			}
			if tc.back != "" {
				if err == nil || !strings.Contains(err.Error(), tc.back) {
					t.Fatalf("switch back: %v, want an error with %q", err, tc.back)
				}
				return
			}
			if err != nil {
				t.Fatalf("switch back: %v", err)
			}
			if got := r.fleet(euID); got.Profile != 101 || got.State != sim.StateComplete {
				t.Errorf("prod-eu after the switch back %+v", got)
			}
		})
	}
}

// TestReadyFails: fail_if holds once a machine's install failed, and a
// region that never gets ready times the step out; both errors give the
// counters. A custom until over one region passes while the other region
// is still pending.
func TestReadyFails(t *testing.T) {
	t.Run("fail_if", func(t *testing.T) {
		r := newCutRig(t, 4, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindInstall, Machine: "m001", Image: "game-b"}}})
		out, err := r.rollOut(t, r.readyInst("", "status.failed > 0"))
		if err == nil || !strings.Contains(err.Error(), "fail_if holds (status.failed > 0) for image game-b") || !regexp.MustCompile(`us: \d+ pending, \d+ completed, 1 failed\)`).MatchString(err.Error()) {
			t.Fatalf("ready: %v", err)
		}
		if out.Status == nil || out.Status.Failed != 1 {
			t.Errorf("output status %+v", out.Status)
		}
	})
	t.Run("timeout in a region that never gets ready", func(t *testing.T) {
		r := newCutRig(t, 4, sim.Scenario{NeverReadyRegions: []string{"eu"}})
		r.prepare(t)
		// The installs never end in eu: they run in the background until
		// the test is done with them.
		ctx, cancel := context.WithCancel(context.Background())
		wait := r.installs(ctx)
		defer wait()
		defer cancel()
		tctx, tcancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer tcancel()
		_, err := r.exec(tctx, r.readyInst("", ""))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "image game-b was not ready (status.pending == 0) when the step's timeout passed") || !strings.Contains(err.Error(), "eu: 2 pending") {
			t.Fatalf("ready: %v", err)
		}
		// until over the other region alone holds.
		uctx, ucancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ucancel()
		out, err := r.exec(uctx, r.readyInst(`status.regions["us"].pending == 0 && status.regions["us"].completed == 2`, ""))
		if err != nil || out.Status.Regions["eu"].Pending != 2 {
			t.Fatalf("until over us: %v, %+v", err, out.Status)
		}
	})
}

// TestPreflightFleets: every fleet of the plan is read (an unknown one is
// a problem), a switch naming an image without a profile is a problem,
// and each fleet's current profile and switch state is reported.
func TestPreflightFleets(t *testing.T) {
	r := newCutRig(t, 4, sim.Scenario{FleetProfiles: map[string]int64{"prod-us": 102}})
	r.p.Steps = append(r.p.Steps, r.cutover(0, 0))
	rep, err := Preflight(context.Background(), r.c, r.p, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("pre-flight: %v %v", err, rep.Problems)
	}
	if len(rep.Fleets) != 2 {
		t.Fatalf("fleets %+v", rep.Fleets)
	}
	eu, us := rep.Fleets[0], rep.Fleets[1]
	if !eu.Known || eu.Profile != 101 || eu.ProfileImage != "game-a" || eu.State != "not requested" || us.Profile != 102 || us.ProfileImage != "game-b" {
		t.Errorf("fleet facts %+v %+v", eu, us)
	}

	ghost := &plan.Fleet{Name: "prod-xx", ID: "00000000-0000-4000-8000-000000000000"}
	r.p.Fleets = append(r.p.Fleets, ghost)
	noProfile := &plan.Image{Name: "game-c", ID: 5599}
	r.p.Steps = append(r.p.Steps, &plan.Step{Name: "bad", Type: plan.TypeSwitch, To: noProfile})
	rep, err = Preflight(context.Background(), r.c, r.p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"unknown fleet prod-xx: the API does not know fleet id 00000000-0000-4000-8000-000000000000",
		"switch step bad names image game-c, which has no profile (images[].profile)",
	}
	if strings.Join(rep.Problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems %q, want %q", rep.Problems, want)
	}
	if len(r.patches("")) != 0 {
		t.Error("the pre-flight sent a PATCH")
	}
}

// TestDescribeCutover: a ready instance reads the v2 status with detail; a
// switch instance reads the status, sends the PATCH with its JSON body
// (changes state) and polls; an on_failure one says when it runs.
func TestDescribeCutover(t *testing.T) {
	r := newCutRig(t, 2, sim.Scenario{})
	ready := Describe(r.readyInst("", "status.failed > 2"), 1234)
	if len(ready) != 1 || ready[0].Endpoint != "/cfp/v2/project/1234/image/5531/status" || ready[0].Params["detail"] != "true" || ready[0].Mutating ||
		!strings.Contains(ready[0].Note, "until status.pending == 0; fails as soon as status.failed > 2") {
		t.Errorf("ready: %+v", ready)
	}
	sw := Describe(r.switchInsts(r.cutover(10, 90*time.Minute), r.b, r.eu)[0], 1234)
	if len(sw) != 3 || sw[1].Method != "PATCH" || !sw[1].Mutating || sw[1].Body != `{"ProfileID":102,"Timeout":"1h30m","MaxMachines":10}` ||
		sw[0].Method != "GET" || sw[0].Mutating || sw[2].Endpoint != "/cfp/v2/fleet/"+euID+"/switchprofile" || len(sw[1].Params) != 0 {
		t.Errorf("switch: %+v", sw)
	}
	back := Describe(r.switchInsts(r.rollback(), r.a, r.eu)[0], 1234)
	if len(back) != 4 || !strings.Contains(back[0].Note, "only if this run switched prod-eu") || back[2].Body != `{"ProfileID":101}` {
		t.Errorf("on_failure switch: %+v", back)
	}
	if got := SwitchLine("prod-eu", 101, "game-a", 102, "game-b", 10, 2*time.Hour); got != "prod-eu: profile 101 (game-a) → 102 (game-b), 10 machines at a time, forced after 2h" {
		t.Errorf("SwitchLine = %q", got)
	}
}

// switchPath is the endpoint of a fleet's PATCH, as the steps send it to
// the journal.
func switchPath(fleetID string) string { return "/cfp/v2/fleet/" + fleetID + "/switchprofile" }
