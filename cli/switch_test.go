package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

const (
	swEU = simtest.FleetEU
	swUS = simtest.FleetUS
)

// switchRig is a plan with fleets and profiled images (in the file
// switch.yaml of a temporary directory), the simulator of it, and an Env
// pointed at it.
type switchRig struct {
	p        *plan.Plan
	path     string
	src      string
	sim      *simtest.Env
	out, err bytes.Buffer
	vars     map[string]string
}

func newSwitchRig(t *testing.T, scenario string) *switchRig {
	t.Helper()
	src := simtest.CutoverPlan("switch", []string{"game-a", "game-b"}, 4, 2, "", "", "")
	r := &switchRig{p: simtest.Plan(t, src), src: src, path: filepath.Join(t.TempDir(), "switch.yaml")}
	if err := os.WriteFile(r.path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if scenario == "" {
		scenario = "speed: 200\n"
	}
	r.sim = simtest.Start(t, r.p, simtest.Scenario(t, scenario), simtest.Credentials(rigAccess, rigSecret))
	r.vars = map[string]string{
		"CLANFORGE_URL":        r.sim.URL,
		"CLANFORGE_ACCESS_KEY": rigAccess,
		"CLANFORGE_SECRET_KEY": rigSecret,
		"CLANFORGE_ASID":       "1234",
		"NO_COLOR":             "1",
	}
	return r
}

func (r *switchRig) env() *Env {
	r.out.Reset()
	r.err.Reset()
	return &Env{Stdin: strings.NewReader(""), Stdout: &r.out, Stderr: &r.err,
		Getenv: func(k string) string { return r.vars[k] }, IsTerminal: func() bool { return false }}
}

// run runs the switch with the rig's plan, fast polls.
func (r *switchRig) run(o SwitchOptions) error {
	if o.Plan == "" {
		o.Plan = r.path
	}
	o.PollMin, o.PollMax = 5*time.Millisecond, 40*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Switch(ctx, r.env(), o)
}

func (r *switchRig) patches(id string) []sim.Switch {
	var out []sim.Switch
	for _, s := range r.sim.Server.Switches() {
		if s.FleetID == id {
			out = append(out, s)
		}
	}
	return out
}

func (r *switchRig) fleet(id string) sim.FleetInfo {
	for _, f := range r.sim.Server.Fleets() {
		if f.ID == id {
			return f
		}
	}
	return sim.FleetInfo{}
}

// TestSwitchCommand: --to names the image whose profile the fleet gets; one
// PATCH with MaxMachines and Timeout is sent, the switch is followed to
// complete with a line per change, and only that fleet moves.
func TestSwitchCommand(t *testing.T) {
	r := newSwitchRig(t, "speed: 200\ndurations: {switch_batch: 30s}\n")
	if err := r.run(SwitchOptions{Fleet: "prod-eu", To: "game-b", Yes: true, MaxMachines: 1, ForceAfter: time.Hour}); err != nil {
		t.Fatalf("switch: %v\n%s", err, r.out.String())
	}
	p := r.patches(swEU)
	if len(p) != 1 || p[0].Body != `{"ProfileID":102,"Timeout":"1h","MaxMachines":1}` {
		t.Fatalf("PATCHes %+v", p)
	}
	out := r.out.String()
	if !regexp.MustCompile(`prod-eu: processing \d of 2 servers to profile 102, the rest forced at `).MatchString(out) {
		t.Errorf("no processing line:\n%s", out)
	}
	for _, want := range []string{
		"switch of fleet prod-eu to profile 102 (game-b) sent",
		"prod-eu: complete, profile 102 (2 servers switched)",
		"fleet prod-eu now runs profile 102 (game-b)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if f := r.fleet(swEU); f.Profile != 102 || f.State != sim.StateComplete {
		t.Errorf("prod-eu %+v", f)
	}
	if len(r.patches(swUS)) != 0 {
		t.Error("prod-us got a PATCH")
	}
	// Again: the fleet runs the profile, nothing is sent.
	if err := r.run(SwitchOptions{Fleet: "prod-eu", Profile: 102, Yes: true}); err != nil {
		t.Fatal(err)
	}
	if len(r.patches(swEU)) != 1 || !strings.Contains(r.out.String(), "fleet prod-eu already runs profile 102 (game-b) (complete): nothing sent") {
		t.Errorf("second switch: %d PATCHes, output %q", len(r.patches(swEU)), r.out.String())
	}
}

// TestSwitchConfirms: without --yes and without a terminal the command
// refuses, naming the fleet, its current and its new profile, and sends
// nothing.
func TestSwitchConfirms(t *testing.T) {
	r := newSwitchRig(t, "")
	err := r.run(SwitchOptions{Fleet: "prod-us", To: "game-b", MaxMachines: 10, ForceAfter: 2 * time.Hour})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("without --yes: %v", err)
	}
	for _, want := range []string{"About to switch fleet prod-us (id " + swUS + ")", "prod-us: profile 101 (game-a) → 102 (game-b), 10 machines at a time, forced after 2h", "add --yes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%s", want, err)
		}
	}
	if n := len(r.sim.Server.Switches()); n != 0 {
		t.Errorf("%d PATCHes sent without a confirmation", n)
	}
}

// TestSwitchLostAnswer: the PATCH's answer is dropped after the simulator
// applied it; the client settles it from the status and it is sent once.
func TestSwitchLostAnswer(t *testing.T) {
	r := newSwitchRig(t, "speed: 200\nfaults: {targeted: [{endpoint: v2/fleet/switchprofile, fault: drop}]}\n")
	if err := r.run(SwitchOptions{Fleet: "prod-eu", To: "game-b", Yes: true}); err != nil {
		t.Fatalf("switch: %v", err)
	}
	if p := r.patches(swEU); len(p) != 1 || !p[0].Dropped {
		t.Fatalf("PATCHes %+v, want one whose answer was dropped", p)
	}
	if f := r.fleet(swEU); f.Profile != 102 || f.State != sim.StateComplete {
		t.Errorf("prod-eu %+v", f)
	}
}

// TestSwitchRefusals: bad command lines and names are usage errors with a
// hint; an unknown fleet id, a switch already under way and a stalled
// switch are failures; none sends a second PATCH.
func TestSwitchRefusals(t *testing.T) {
	r := newSwitchRig(t, "speed: 200\nswitches: [{trouble: stall, fleet: prod-us, after: 1}]\n")
	for _, tc := range []struct {
		name  string
		o     SwitchOptions
		usage bool
		want  string
	}{
		{"no fleet", SwitchOptions{To: "game-b"}, true, "--fleet NAME is required"},
		{"both to and profile", SwitchOptions{Fleet: "prod-eu", To: "game-b", Profile: 102}, true, "exactly one of --to IMAGE and --profile ID"},
		{"unknown fleet", SwitchOptions{Fleet: "prod-euu", To: "game-b", Yes: true}, true, `unknown fleet "prod-euu": plan ` + r.path + ` has prod-eu, prod-us; did you mean "prod-eu"?`},
		{"unknown image", SwitchOptions{Fleet: "prod-eu", To: "game-c", Yes: true}, true, `unknown image "game-c"`},
		{"negative max machines", SwitchOptions{Fleet: "prod-eu", To: "game-b", MaxMachines: -1}, true, "--max-machines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.run(tc.o)
			if err == nil || errors.Is(err, ErrUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want usage=%v with %q", err, tc.usage, tc.want)
			}
		})
	}
	noProfile := filepath.Join(t.TempDir(), "no-profile.yaml")
	if err := os.WriteFile(noProfile, []byte(strings.Replace(r.src, ", profile: 102}", "}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.run(SwitchOptions{Fleet: "prod-eu", To: "game-b", Yes: true, Plan: noProfile}); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "image game-b has no profile") {
		t.Errorf("image without profile: %v", err)
	}

	// prod-us stalls past its Deadline: the command fails saying so.
	err := r.run(SwitchOptions{Fleet: "prod-us", To: "game-b", Yes: true, MaxMachines: 1, ForceAfter: time.Second})
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "past its Deadline") {
		t.Fatalf("stalled switch: %v", err)
	}
	// It is still processing: a second switch is refused before sending.
	err = r.run(SwitchOptions{Fleet: "prod-us", Profile: 101, Yes: true})
	if err == nil || !strings.Contains(err.Error(), "fleet prod-us is switching now (prod-us: processing 1 of 2 servers") {
		t.Fatalf("switch while another runs: %v", err)
	}
	if n := len(r.patches(swUS)); n != 1 {
		t.Errorf("prod-us got %d PATCHes, want 1", n)
	}
}

// TestSwitchWithoutPlan: through the command table, without a plan the
// fleet is named by its id and the profile by its number; an id the API
// does not know is a failure that names it.
func TestSwitchWithoutPlan(t *testing.T) {
	r := newSwitchRig(t, "")
	cmd := func(args ...string) error {
		fs := flag.NewFlagSet("switch", flag.ContinueOnError)
		run := Find("switch").Flags(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		return run(context.Background(), r.env(), fs.Args())
	}
	if err := cmd("--fleet", swUS, "--profile", "102", "--yes", "--poll-min", "5ms", "--poll-max", "40ms"); err != nil {
		t.Fatalf("switch: %v\n%s", err, r.out.String())
	}
	if f := r.fleet(swUS); f.Profile != 102 || f.State != sim.StateComplete || len(r.patches(swUS)) != 1 {
		t.Errorf("prod-us %+v", f)
	}
	if !strings.Contains(r.out.String(), "fleet "+swUS+" now runs profile 102") {
		t.Errorf("output %q", r.out.String())
	}
	err := cmd("--fleet", "00000000-0000-4000-8000-000000000000", "--profile", "102", "--yes")
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "fleet 00000000-0000-4000-8000-000000000000 (id 00000000-0000-4000-8000-000000000000) is unknown to") {
		t.Fatalf("unknown fleet id: %v", err)
	}
	if err := cmd("--fleet", swEU, "--to", "game-b"); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "add --plan PLAN") {
		t.Errorf("--to without a plan: %v", err)
	}
}
