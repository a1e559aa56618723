package plan

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The keys of the plan format's "Additions: cut-over and control", and
// max_failures_per (issue 14): testdata/ab-cutover.yaml is the A/B
// cut-over of the format, whole; the cases below edit it.

const slackPath = "T000/B000/XXXXSECRETXXXX"

func abEnv(name string) (string, bool) {
	if name == "SLACK_HOOK" {
		return slackPath, true
	}
	return "", false
}

func abSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editAB applies (old, new) replacements to the A/B plan.
func editAB(t *testing.T, pairs ...string) string {
	t.Helper()
	src := abSource(t)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit does not apply: %q", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

func loadAB(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := Parse("ab.yaml", []byte(src), Options{LookupEnv: abEnv})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(list []*Instance) []string {
	out := make([]string, 0, len(list))
	for _, in := range list {
		out = append(out, in.ID)
	}
	return out
}

func instByID(p *Plan, id string) *Instance {
	for _, in := range append(slices.Clone(p.Instances), p.FailureInstances...) {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func stepByName(p *Plan, name string) *Step {
	for _, s := range append(slices.Clone(p.Steps), p.OnFailure...) {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestABCutoverShapes: the A/B plan of the format loads into the shapes
// the ready, approve and switch executors and the engine read: a ready and
// an approve instance per image, a switch instance per fleet belonging to
// the image it switches to, needs resolved as for per-image steps, and an
// on_failure switch per fleet triggered by every main instance of the run.
func TestABCutoverShapes(t *testing.T) {
	p := loadAB(t, abSource(t))

	a, b := p.Images[0], p.Images[1]
	if a.Profile != 101 || b.Profile != 102 {
		t.Errorf("profiles %d, %d", a.Profile, b.Profile)
	}
	if len(p.Fleets) != 2 || p.Fleets[0].Name != "prod-eu" || p.Fleets[0].ID != "c0a3e2a1-6955-415c-b1d4-af9199833e6a" || p.Fleets[1].Name != "prod-us" || p.Fleets[0].Pos.Line != 19 {
		t.Fatalf("fleets %+v", p.Fleets)
	}
	eu, us := p.Fleets[0], p.Fleets[1]
	for _, m := range p.Machines {
		want := eu
		if strings.HasPrefix(m.Name, "us-") {
			want = us
		}
		if m.Fleet != want {
			t.Errorf("machine %s is in fleet %v", m.Name, m.Fleet)
		}
	}

	want := []string{
		"update@buildbox-1/game-b", "diff@buildbox-1/game-b", "small_change@buildbox-1/game-b", "version@game-b", "mirror@game-b",
		"install@eu-1/game-b", "install@eu-2/game-b", "install@us-1/game-b", "install@us-2/game-b",
		"fleet_ready@game-b", "go_live@game-b", "cutover@prod-eu/game-b", "cutover@prod-us/game-b",
	}
	if got := ids(p.Instances); !slices.Equal(got, want) {
		t.Fatalf("instances\n got %v\nwant %v", got, want)
	}

	ready := instByID(p, "fleet_ready@game-b")
	rs := ready.Step
	if rs.Type != TypeReady || ready.Image != b || ready.Machine != nil || ready.Wave != -1 || ready.Fleet != nil {
		t.Errorf("ready instance %+v", ready)
	}
	if got := ids(ready.Deps); !slices.Equal(got, []string{"install@eu-1/game-b", "install@eu-2/game-b", "install@us-1/game-b", "install@us-2/game-b"}) {
		t.Errorf("ready deps %v", got)
	}
	if rs.Until == nil || rs.Until.Source != "status.pending == 0" || rs.FailIf == nil || rs.Timeout != 2*time.Hour || !slices.Equal(rs.Fleets, p.Fleets) {
		t.Errorf("ready step %+v", rs)
	}
	// until and fail_if were compiled for the instance's scope, with status.
	in := EvalInput{Image: b, Steps: map[string]*Output{}, Status: &ReadyStatus{Pending: 0, Failed: 1, Regions: map[string]RegionStatus{"eu": {Failed: 1}}}}
	for _, name := range []string{"install", "mirror", "version", "small_change", "diff", "update"} {
		in.Steps[name] = &Output{}
	}
	if ok, err := rs.Until.Eval(in); err != nil || !ok {
		t.Errorf("until: %v, %v", ok, err)
	}
	if bad, err := rs.FailIf.Eval(in); err != nil || bad {
		t.Errorf("fail_if with one failed machine: %v, %v", bad, err)
	}
	in.Status.Regions["eu"] = RegionStatus{Failed: 2}
	if bad, err := rs.FailIf.Eval(in); err != nil || !bad {
		t.Errorf("fail_if with two failed in eu: %v, %v", bad, err)
	}

	live := instByID(p, "go_live@game-b")
	ls := live.Step
	if ls.Type != TypeApprove || live.Machine != nil || !slices.Equal(ids(live.Deps), []string{"fleet_ready@game-b"}) {
		t.Errorf("approve instance %+v", live)
	}
	if ls.Message.Resolved != "Switch the fleets to game-b?" || ls.Timeout != 4*time.Hour || ls.OnTimeout != OnTimeoutAbort {
		t.Errorf("approve step %+v", ls)
	}
	if live.Scope["fleet_ready"] != ready {
		t.Errorf("go_live does not see fleet_ready: %v", live.Scope)
	}

	cut := stepByName(p, "cutover")
	if cut.Type != TypeSwitch || cut.To != b || cut.Profile != 0 || cut.MaxMachines != 10 || cut.ForceAfter != 2*time.Hour || !slices.Equal(cut.Fleets, p.Fleets) {
		t.Errorf("switch step %+v", cut)
	}
	for i, f := range p.Fleets {
		id := "cutover@" + f.Name + "/game-b"
		x := instByID(p, id)
		if x == nil || x.Step != cut || x.Fleet != f || x.Image != b || x.Machine != nil || x.Target != nil || x.Wave != -1 || !slices.Equal(ids(x.Deps), []string{"go_live@game-b"}) {
			t.Errorf("switch instance %d: %+v", i, x)
		}
	}

	inst := stepByName(p, "install")
	if !slices.Equal(inst.PauseAfter, []Pause{{Approve: true}, {Bake: 10 * time.Minute}}) || !inst.MaxFailuresPerImage {
		t.Errorf("install pause_after %v, per image %v", inst.PauseAfter, inst.MaxFailuresPerImage)
	}

	// The on_failure switch: one per fleet, the image it switches back to,
	// triggered by every main instance (the forward switches included).
	back := stepByName(p, "switch")
	if back == nil || !back.OnFailure || back.Type != TypeSwitch || back.To != a || !slices.Equal(back.Fleets, p.Fleets) {
		t.Fatalf("on_failure switch %+v", back)
	}
	var backs []*Instance
	for _, x := range p.FailureInstances {
		if x.Step == back {
			backs = append(backs, x)
		}
	}
	if got := ids(backs); !slices.Equal(got, []string{"switch@prod-eu/game-a", "switch@prod-us/game-a"}) {
		t.Fatalf("on_failure switch instances %v", got)
	}
	for i, x := range backs {
		if x.Fleet != p.Fleets[i] || x.Image != a || x.Machine != nil || x.Wave != -1 || !slices.Equal(ids(x.Trigger), want) {
			t.Errorf("on_failure switch instance %s: fleet %v image %v trigger %v", x.ID, x.Fleet, x.Image, ids(x.Trigger))
		}
	}
	// The reject of the image still runs for failures of its per-image
	// instances, the cut-over's among them.
	if rj := instByID(p, "reject@game-b"); rj == nil || !slices.Equal(ids(rj.Trigger), []string{"version@game-b", "mirror@game-b", "fleet_ready@game-b", "go_live@game-b", "cutover@prod-eu/game-b", "cutover@prod-us/game-b"}) {
		t.Errorf("reject@game-b %v", rj)
	}

	if len(p.Notify) != 2 {
		t.Fatalf("notify %+v", p.Notify)
	}
	n0, n1 := p.Notify[0], p.Notify[1]
	if n0.URL.Resolved != "https://hooks.slack.com/services/"+slackPath || n0.URL.Display != "https://hooks.slack.com/***" || n0.Format != FormatSlack ||
		!slices.Equal(n0.Events, []string{EventApproval, EventWave, EventFailed, EventAborted, EventFinished}) || n0.Pos.Line != 94 {
		t.Errorf("notify 0 %+v", n0)
	}
	if n1.URL.Display != "https://ci.example.com/***" || n1.Format != FormatJSON || !slices.Equal(n1.Events, []string{EventStarted, EventApproved}) {
		t.Errorf("notify 1 %+v", n1)
	}
}

// TestWebhookSecrets: webhook URLs are secrets wherever they came from: the
// plan's Secrets hold them (so that every output masks them), their Display
// hides all but the scheme and host, and a plan error quoting the line of a
// literal one masks it too.
func TestWebhookSecrets(t *testing.T) {
	p := loadAB(t, abSource(t))
	var values []string
	for _, s := range p.Secrets() {
		values = append(values, s.Value)
	}
	for _, want := range []string{"https://hooks.slack.com/services/" + slackPath, "services/" + slackPath, "https://ci.example.com/rollout/events", "rollout/events"} {
		if !slices.Contains(values, want) {
			t.Errorf("Secrets() lacks %q: %q", want, values)
		}
	}
	for _, c := range []struct{ display, want string }{
		{"${env:HOOK}", "${env:HOOK}"},
		{"https://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/***"},
		{"https://host.example.com?token=x", "https://host.example.com***"},
		{"https://host.example.com", "https://host.example.com"},
		{"${env:BASE}/x", "***"},
		{"https://${env:HOST}/x/y", "https://${env:HOST}/***"},
	} {
		if got := webhookDisplay(c.display); got != c.want {
			t.Errorf("webhookDisplay(%q) = %q, want %q", c.display, got, c.want)
		}
	}
	// An error on the line of a literal URL: the URL's path is masked in
	// the quoted line and in the message.
	const literal = "https://hooks.slack.com/services/T111/B222/LITERALSECRET"
	errs := parseErrs(t, editAB(t, `  - url: "https://ci.example.com/rollout/events"`, `  - {url: "`+literal+`", format: jsn, events: [started]}`,
		"    format: json\n    events: [started, approved]\n", ""), Options{LookupEnv: abEnv})
	out := errs.Error()
	if strings.Contains(out, "LITERALSECRET") || !strings.Contains(out, `format: jsn`) || !strings.Contains(out, "https://hooks.slack.com/***") {
		t.Errorf("the error shows the webhook URL, or not the line:\n%s", out)
	}
}

// TestControlKeys: the valid forms of each new key, and their defaults.
func TestControlKeys(t *testing.T) {
	cases := []struct {
		name  string
		edits []string
		check func(t *testing.T, p *Plan)
	}{
		{"defaults", []string{
			"    until: status.pending == 0\n    fail_if: status.failed > 2 || status.regions[\"eu\"].failed > 1\n    timeout: 2h\n", "",
			"    timeout: 4h\n    on_timeout: abort\n", "",
			"    fleets: [prod-eu, prod-us]\n    max_machines: 10\n    force_after: 2h\n", "",
			"    format: slack\n", "",
			"    max_failures_per: image\n", "",
		}, func(t *testing.T, p *Plan) {
			r, g, c, n := stepByName(p, "fleet_ready"), stepByName(p, "go_live"), stepByName(p, "cutover"), p.Notify[0]
			if r.Until != nil || r.FailIf != nil || r.Timeout != 30*time.Minute || !slices.Equal(r.Fleets, p.Fleets) {
				t.Errorf("ready defaults %+v", r)
			}
			if g.Timeout != 30*time.Minute || g.OnTimeout != OnTimeoutAbort {
				t.Errorf("approve defaults %+v", g)
			}
			if c.MaxMachines != 0 || c.ForceAfter != 0 || !slices.Equal(c.Fleets, p.Fleets) {
				t.Errorf("switch defaults %+v", c)
			}
			if n.Format != FormatSlack || stepByName(p, "install").MaxFailuresPerImage {
				t.Errorf("notify format %q, max_failures_per image", n.Format)
			}
			if s := stepByName(p, "install"); s.OnTimeout != "" || s.Fleets != nil {
				t.Errorf("an install step got control defaults: %+v", s)
			}
		}},
		{"the only fleet is every machine's", []string{
			"  - {name: prod-us, id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14}\n", "",
			", fleet: prod-eu", "", ", fleet: prod-us", "", ", fleet: prod-us", "",
			"fleets: [prod-eu, prod-us]", "fleets: [prod-eu]",
		}, func(t *testing.T, p *Plan) {
			for _, m := range p.Machines {
				if m.Fleet != p.Fleets[0] {
					t.Errorf("machine %s in fleet %v", m.Name, m.Fleet)
				}
			}
		}},
		{"no fleets, no cut-over", []string{
			"fleets:\n  - {name: prod-eu, id: c0a3e2a1-6955-415c-b1d4-af9199833e6a}\n  - {name: prod-us, id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14}\n", "",
			", fleet: prod-eu", "", ", fleet: prod-eu", "", ", fleet: prod-eu", "", ", fleet: prod-us", "", ", fleet: prod-us", "",
			"  - name: cutover\n    type: switch\n    needs: [go_live]\n    to: ${vars.idle}\n    fleets: [prod-eu, prod-us]\n    max_machines: 10\n    force_after: 2h\n", "",
			"  - type: switch\n    to: ${vars.live}\n", "",
		}, func(t *testing.T, p *Plan) {
			if len(p.Fleets) != 0 || p.Machines[0].Fleet != nil || stepByName(p, "fleet_ready").Fleets != nil {
				t.Errorf("fleets appeared: %v", p.Fleets)
			}
		}},
		{"ready counts some fleets", []string{"    timeout: 2h\n", "    timeout: 2h\n    fleets: [prod-us]\n"}, func(t *testing.T, p *Plan) {
			if f := stepByName(p, "fleet_ready").Fleets; len(f) != 1 || f[0] != p.Fleets[1] {
				t.Errorf("ready fleets %v", f)
			}
		}},
		{"switch some fleets", []string{"fleets: [prod-eu, prod-us]", "fleets: [prod-us]"}, func(t *testing.T, p *Plan) {
			if got := ids(p.Instances[len(p.Instances)-1:]); !slices.Equal(got, []string{"cutover@prod-us/game-b"}) {
				t.Errorf("switch instances %v", got)
			}
		}},
		{"switch to a profile of an image", []string{"    to: ${vars.idle}\n    fleets", "    profile: 102\n    fleets"}, func(t *testing.T, p *Plan) {
			c := stepByName(p, "cutover")
			if c.To != nil || c.Profile != 102 || instByID(p, "cutover@prod-eu/game-b") == nil {
				t.Errorf("switch to profile 102: %+v, %v", c, ids(p.Instances))
			}
		}},
		{"switch to a profile of no image", []string{
			"    to: ${vars.idle}\n    fleets", "    profile: 777\n    fleets",
			"    needs: [go_live]\n    profile", "    profile",
		}, func(t *testing.T, p *Plan) {
			// Its instances belong to the first image.
			x := instByID(p, "cutover@prod-eu/game-a")
			if x == nil || x.Step.Profile != 777 || len(x.Deps) != 0 {
				t.Errorf("switch to profile 777: %v", ids(p.Instances))
			}
		}},
		{"switch with a where that matches nothing", []string{"    to: ${vars.idle}\n", "    to: ${vars.idle}\n    where: image.name == vars.live\n    allow_empty: true\n"}, func(t *testing.T, p *Plan) {
			if instByID(p, "cutover@prod-eu/game-b") != nil {
				t.Errorf("the switch has instances: %v", ids(p.Instances))
			}
		}},
		{"approve for every image", []string{
			"  - name: fleet_ready", "  - name: ask\n    type: approve\n    message: \"Ship ${vars.build}?\"\n    on_timeout: continue\n    timeout: 90s\n  - name: fleet_ready",
		}, func(t *testing.T, p *Plan) {
			a, b := instByID(p, "ask@game-a"), instByID(p, "ask@game-b")
			if a == nil || b == nil || a.Machine != nil || len(a.Deps) != 0 {
				t.Fatalf("approve instances %v", ids(p.Instances))
			}
			if s := a.Step; s.Message.Resolved != "Ship 1.4.2?" || s.OnTimeout != OnTimeoutContinue || s.Timeout != 90*time.Second {
				t.Errorf("approve step %+v", s)
			}
		}},
		{"pause entries", []string{`waves: [1, "25%", "100%"]`, `waves: [1, 2, 3, "100%"]`, "pause_after: [approve, 10m]", "pause_after: [null, 0s, approve]"}, func(t *testing.T, p *Plan) {
			if got := stepByName(p, "install").PauseAfter; !slices.Equal(got, []Pause{{}, {}, {Approve: true}}) {
				t.Errorf("pause_after %v", got)
			}
		}},
		{"no pauses", []string{"pause_after: [approve, 10m]", "pause_after: []"}, func(t *testing.T, p *Plan) {
			if got := stepByName(p, "install").PauseAfter; len(got) != 0 {
				t.Errorf("pause_after %v", got)
			}
		}},
		{"a pause after the first wave only", []string{"pause_after: [approve, 10m]", "pause_after: [2m30s]"}, func(t *testing.T, p *Plan) {
			if got := stepByName(p, "install").PauseAfter; !slices.Equal(got, []Pause{{Bake: 150 * time.Second}}) {
				t.Errorf("pause_after %v", got)
			}
		}},
		{"max_failures_per step", []string{"max_failures_per: image", "max_failures_per: step"}, func(t *testing.T, p *Plan) {
			if stepByName(p, "install").MaxFailuresPerImage {
				t.Error("per image")
			}
		}},
		{"webhook from the environment", []string{`"https://hooks.slack.com/services/${env:SLACK_HOOK}"`, `"${env:SLACK_HOOK}"`, "${env:SLACK_HOOK}", "${env:HOOK}"}, func(t *testing.T, p *Plan) {
			if d := p.Notify[0].URL.Display; d != "${env:HOOK}" {
				t.Errorf("display %q", d)
			}
		}},
		{"status of a ready step in a later gate", []string{
			"  - name: cutover", "  - name: healthy\n    type: gate\n    needs: [go_live]\n    where: image.name == vars.idle\n    expr: steps.fleet_ready.status.regions[\"us\"].failed == 0 && steps.go_live.state == \"succeeded\"\n  - name: cutover",
			"needs: [go_live]\n    to:", "needs: [healthy]\n    to:",
		}, func(t *testing.T, p *Plan) {
			g := instByID(p, "healthy@game-b")
			ok, err := g.Step.Expr.Eval(EvalInput{Image: g.Image, Steps: map[string]*Output{
				"fleet_ready": {Status: &ReadyStatus{Regions: map[string]RegionStatus{"us": {Completed: 3}}}},
				"go_live":     {State: OutputSucceeded},
				"install":     {}, "mirror": {}, "version": {}, "small_change": {}, "diff": {}, "update": {},
			}})
			if err != nil || !ok {
				t.Errorf("gate over steps.fleet_ready.status: %v, %v", ok, err)
			}
		}},
		{"a gate reads a switch", []string{
			"on_failure:", "  - name: after\n    type: gate\n    needs: [cutover]\n    where: image.name == vars.idle\n    expr: steps.cutover.state == \"succeeded\" && steps.go_live.job.state == 0\n\non_failure:",
			"fleets: [prod-eu, prod-us]", "fleets: [prod-us]",
		}, func(t *testing.T, p *Plan) {
			// A switch of one fleet reads as steps.<name> (of several
			// fleets it is ambiguous, as any step with several instances).
			g := instByID(p, "after@game-b")
			if g == nil || !slices.Equal(ids(g.Deps), []string{"cutover@prod-us/game-b"}) {
				t.Errorf("gate after the switch: %v", g)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := editAB(t, c.edits...)
			p, err := Parse("ab.yaml", []byte(src), Options{LookupEnv: func(n string) (string, bool) {
				if n == "HOOK" {
					return "https://hooks.example.com/x/y/z", true
				}
				return abEnv(n)
			}})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, p)
		})
	}
}

// noFleets edits the A/B plan to have no fleets (or the fleets section
// instead), then applies more edits.
func noFleets(instead string, more ...string) []string {
	return append([]string{
		"fleets:\n  - {name: prod-eu, id: c0a3e2a1-6955-415c-b1d4-af9199833e6a}\n  - {name: prod-us, id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14}\n", instead,
		", fleet: prod-eu", "", ", fleet: prod-eu", "", ", fleet: prod-eu", "", ", fleet: prod-us", "", ", fleet: prod-us", "",
	}, more...)
}

// TestControlKeyErrors: every error of the new keys, with its position and
// hint.
func TestControlKeyErrors(t *testing.T) {
	cases := []struct {
		name  string
		edits []string
		wants []want
	}{
		// images[].profile
		{"profile not an integer", []string{"profile: 101", "profile: game"}, []want{{"15:39", "image profile must be an integer, not a string", ""}}},
		{"profile zero", []string{"profile: 101", "profile: 0"}, []want{{"15:39", "image profile must be a positive fleet profile id", ""}}},
		{"profile twice", []string{"profile: 102", "profile: 101"}, []want{{"16:39", `profile 101 is already the profile of image "game-a" (line 15)`, ""}}},
		{"unknown image key", []string{"profile: 101", "profle: 101"}, []want{
			{"15:30", `unknown key "profle" in an image`, `did you mean "profile"?`},
			{"91:9", `switch step "switch" switches to image "game-a", which has no profile: a switch needs images[].profile`, "add profile: <id> to image game-a (line 15)"},
		}},
		// fleets
		{"fleet id not a UUID", []string{"id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14", "id: prod-us-1"}, []want{{"20:25", `fleet id must be the fleet's UUID, like c0a3e2a1-6955-415c-b1d4-af9199833e6a, not "prod-us-1"`, ""}}},
		{"fleet id with a path", []string{"id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14", `id: "5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14/../x"`}, []want{{"20:25", "fleet id must be the fleet's UUID", ""}}},
		{"fleet id twice", []string{"id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14", "id: C0A3E2A1-6955-415C-B1D4-AF9199833E6A"}, []want{{"20:25", `fleet id C0A3E2A1-6955-415C-B1D4-AF9199833E6A is already used by fleet "prod-eu" (line 19)`, ""}}},
		{"fleet name twice", []string{"{name: prod-us, id: 5d1b", "{name: prod-eu, id: 5d1b"}, []want{
			{"20:12", `duplicate fleet "prod-eu" (first defined on line 19)`, ""},
			// What named the fleet it renamed cannot find it.
			{"26:37", `machine "us-1" names unknown fleet "prod-us" (the plan's fleets: prod-eu)`, `did you mean "prod-eu"?`},
			{"27:37", `machine "us-2" names unknown fleet "prod-us"`, ""},
			{"83:23", `step "cutover" names unknown fleet "prod-us"`, ""},
		}},
		{"fleet without id", []string{", id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14}", "}"}, []want{{"20:5", `missing required key "id" in a fleet`, ""}}},
		{"fleet id an integer", []string{"id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14", "id: 42"}, []want{{"20:25", "fleet id must be a string, not an integer", "quote it to make it a string"}}},
		{"no fleets listed", append(noFleets("fleets: []\n"), "    fleets: [prod-eu, prod-us]\n    max_machines", "    max_machines"), []want{
			{"18:9", "fleets must list at least one fleet", "leave fleets out when the plan switches no fleet"},
			{"77:5", `switch step "cutover" switches fleets, but the plan has no fleets`, ""},
			{"87:5", `switch step "switch" switches fleets, but the plan has no fleets`, ""},
		}},
		// machines[].fleet
		{"unknown machine fleet", []string{"{name: eu-2, id: 812347, fleet: prod-eu", "{name: eu-2, id: 812347, fleet: prod-eeu"}, []want{{"25:37", `machine "eu-2" names unknown fleet "prod-eeu" (the plan's fleets: prod-eu, prod-us)`, `did you mean "prod-eu"?`}}},
		{"machine fleet in a plan without fleets", noFleets("", "{name: eu-2, id: 812347", "{name: eu-2, id: 812347, fleet: prod-eu", "    fleets: [prod-eu, prod-us]\n    max_machines", "    max_machines"), []want{
			{"22:37", `machine "eu-2" names fleet "prod-eu", but the plan has no fleets`, "add a fleets list of {name, id}"},
			{"76:5", `switch step "cutover" switches fleets, but the plan has no fleets`, ""},
			{"86:5", `switch step "switch" switches fleets, but the plan has no fleets`, ""},
		}},
		// switch
		{"switch to an unknown image", []string{"to: ${vars.idle}", "to: game-c"}, []want{{"82:9", `switch step "cutover": to names unknown image "game-c" (the plan's images: game-a, game-b)`, `did you mean "game-a"?`}}},
		{"switch to an image without a profile", []string{"{name: game-b, id: 5531, profile: 102}", "{name: game-b, id: 5531}"}, []want{{"82:9", `switch step "cutover" switches to image "game-b", which has no profile`, "add profile: <id> to image game-b (line 16)"}}},
		{"switch with to and profile", []string{"    max_machines: 10\n", "    max_machines: 10\n    profile: 102\n"}, []want{{"85:14", "a switch step takes to (an image) or profile (a profile id), not both", ""}}},
		{"switch with neither", []string{"    to: ${vars.idle}\n    fleets", "    fleets"}, []want{{"79:5", `switch step "cutover" needs to (the image whose profile the fleets switch to) or profile (a profile id)`, "add to: <image name> (an image with a profile) or profile: <profile id>"}}},
		{"on_failure switch with neither", []string{"    to: ${vars.live}\n", ""}, []want{{"90:5", `switch step "switch" needs to`, ""}}},
		{"switch profile zero", []string{"    to: ${vars.idle}\n    fleets", "    profile: 0\n    fleets"}, []want{{"82:14", "profile must be a positive fleet profile id", ""}}},
		{"switch to an unknown fleet", []string{"fleets: [prod-eu, prod-us]", "fleets: [prod-eu, prod-uss]"}, []want{{"83:23", `step "cutover" names unknown fleet "prod-uss"`, `did you mean "prod-us"?`}}},
		{"switch a fleet twice", []string{"fleets: [prod-eu, prod-us]", "fleets: [prod-eu, prod-eu]"}, []want{{"83:23", `step "cutover" lists fleet "prod-eu" twice`, ""}}},
		{"switch no fleets", []string{"fleets: [prod-eu, prod-us]", "fleets: []"}, []want{{"83:13", "fleets must name at least one fleet", "leave fleets out for every fleet of the plan"}}},
		{"switch in a plan without fleets", noFleets("", "    fleets: [prod-eu, prod-us]\n", ""), []want{{"76:5", `switch step "cutover" switches fleets, but the plan has no fleets`, "add a fleets list of {name, id} to the plan"}, {"86:5", `switch step "switch" switches fleets, but the plan has no fleets`, ""}}},
		{"max_machines zero", []string{"max_machines: 10", "max_machines: 0"}, []want{{"84:19", "max_machines must be at least 1", ""}}},
		{"force_after not a duration", []string{"force_after: 2h", "force_after: two hours"}, []want{{"85:18", "force_after must be a Go duration like 30m or 2h", ""}}},
		{"switch where reads a machine", []string{"    to: ${vars.idle}\n", "    to: ${vars.idle}\n    where: machine.name == \"x\"\n"}, []want{{"83:12", `machine is not in scope in where of step "cutover": the step runs once per image`, ""}}},
		{"switch before anything for its image", []string{"to: ${vars.idle}", "to: ${vars.live}"}, []want{{"81:13", `step "cutover" runs for image "game-a", but step "go_live", which it needs, has no instance for that image: it would wait for nothing`, "step \"go_live\" runs for image game-b: switch to that image, or let the steps before it run for game-a"}}},
		// ready
		{"until unknown field", []string{"until: status.pending == 0", "until: status.pendng == 0"}, []want{{"68:19", `status has no field "pendng" (it has pending, failed, completed, regions)`, `did you mean "pending"?`}}},
		{"until not boolean", []string{"until: status.pending == 0", "until: status.pending"}, []want{{"68:12", `until of step "fleet_ready" must be a boolean expression, but its type is int`, ""}}},
		{"fail_if type error", []string{`status.regions["eu"].failed > 1`, `status.regions["eu"].failed > "1"`}, []want{{"69:", "fail_if of step", ""}}},
		{"status outside until", []string{"expr: steps.diff.changed <= 300", "expr: status.pending == 0"}, []want{{"42:11", `status is not in scope in expr of step "small_change": it is in scope only in a ready step's until and fail_if`, "did you mean steps.fleet_ready.status?"}}},
		{"status in a ready step's when", []string{"    until: status.pending == 0\n", "    until: status.pending == 0\n    when: status.pending == 0\n"}, []want{{"69:11", `status is not in scope in when of step "fleet_ready"`, "did you mean steps.fleet_ready.status?"}}},
		{"ready on a machine", []string{"    until: status.pending == 0\n", "    until: status.pending == 0 && machine.name == \"x\"\n"}, []want{{"68:35", `machine is not in scope in until of step "fleet_ready"`, ""}}},
		{"ready key on an approve step", []string{"    on_timeout: abort\n", "    on_timeout: abort\n    until: status.pending == 0\n"}, []want{{"79:5", `key "until" belongs to ready steps, not to an approve step`, ""}}},
		{"fleets on an install step", []string{"    max_failures_per: image\n", "    max_failures_per: image\n    fleets: [prod-eu]\n"}, []want{{"64:5", `key "fleets" belongs to ready and switch steps, not to an install step`, ""}}},
		{"ready counts an unknown fleet", []string{"    timeout: 2h\n", "    timeout: 2h\n    fleets: [prod-eeu]\n"}, []want{{"71:14", `step "fleet_ready" names unknown fleet "prod-eeu"`, `did you mean "prod-eu"?`}}},
		// step names in expressions
		{"a step name with a dash read as steps.name", []string{"name: fleet_ready", "name: fleet-ready", "needs: [fleet_ready]", "needs: [fleet-ready]", "when: steps.fleet_ready.status", "when: steps.fleet-ready.status"}, []want{{"75:17", `steps.fleet-ready reads as steps.fleet minus ready in when of step "go_live": step names used in expressions must be identifiers`, `did you mean "fleet_ready"? rename the step to fleet_ready and read it as steps.fleet_ready`}}},
		{"a step name with a dash read as steps[name]", []string{"name: fleet_ready", "name: fleet-ready", "needs: [fleet_ready]", "needs: [fleet-ready]", "when: steps.fleet_ready.status", `when: steps["fleet-ready"].status`}, []want{{"75:17", `when of step "go_live" reads step "fleet-ready", whose name is not an identifier`, `did you mean "fleet_ready"? rename the step to fleet_ready and read it as steps.fleet_ready`}}},
		// approve
		{"on_timeout typo", []string{"on_timeout: abort", "on_timeout: abrot"}, []want{{"78:17", `on_timeout must be abort or continue, not "abrot"`, `did you mean "abort"?`}}},
		{"message not a string", []string{`message: "Switch the fleets to ${vars.idle}?"`, "message: 42"}, []want{{"76:14", "message must be a string, not an integer", "quote it to make it a string"}}},
		{"message unknown variable", []string{"${vars.idle}?", "${vars.idel}?"}, []want{{"76:36", `unknown variable "idel" in message`, `did you mean "idle"?`}}},
		{"approve on a machine", []string{"    where: image.name == vars.idle\n    when", "    where: machine.labels.role == \"build\"\n    when"}, []want{{"74:12", `machine is not in scope in where of step "go_live"`, ""}}},
		{"approve before anything for its image", []string{"    where: image.name == vars.idle\n    when", "    when"}, []want{{"73:13", `step "go_live" runs for image "game-a", but step "fleet_ready", which it needs, has no instance for that image`, `step "fleet_ready" runs for image game-b: give step "go_live" a where that selects the same images`}}},
		{"an install for an image without a version", []string{`where: machine.labels.role == "fleet" && image.name == vars.idle`, `where: machine.labels.role == "fleet"`}, []want{{"55:5",
			`install step "install" finds no version among its needs for image "game-a"`,
			`the steps it needs run for image game-b only: give step "install" a where that selects the same images (e.g. image.name == "game-b")`}}},
		{"approve in on_failure", []string{"  - type: switch\n    to: ${vars.live}\n", "  - type: approve\n"}, []want{{"90:11", "on_failure supports reject and switch steps only, not approve", ""}}},
		{"unknown step type", []string{"type: switch\n    needs", "type: swich\n    needs"}, []want{{"80:11", `unknown step type "swich"`, `did you mean "switch"?`}}},
		// install: pause_after and max_failures_per
		{"too many pauses", []string{"pause_after: [approve, 10m]", "pause_after: [approve, 10m, 5m]"}, []want{{"61:33", "pause_after entry 3 would follow wave 3 of 3, the last one: pause_after has at most one entry per wave boundary (2 here)", "remove it: a pause follows a wave only when another wave comes after it"}}},
		{"pause typo", []string{"pause_after: [approve, 10m]", "pause_after: [aprove, 10m]"}, []want{{"61:19", `pause_after entry 1 must be approve, a duration like 10m (a bake time) or null (go on at once), not "aprove"`, `did you mean "approve"?`}}},
		{"pause without a unit", []string{"pause_after: [approve, 10m]", "pause_after: [approve, 10]"}, []want{{"61:28", "pause_after entry 2 must be approve, a duration like 10m (a bake time) or null (go on at once), not an integer", "write a unit, like 10m or 30s"}}},
		{"negative pause", []string{"pause_after: [approve, 10m]", "pause_after: [approve, -1m]"}, []want{{"61:28", "pause_after entry 2 is a negative duration", ""}}},
		{"pause as a string", []string{"pause_after: [approve, 10m]", "pause_after: approve"}, []want{{"61:18", "pause_after must be a list (one entry per wave boundary), not a string", "write pause_after: [approve]"}}},
		{"pause without waves", []string{"    waves: [1, \"25%\", \"100%\"]\n", ""}, []want{{"60:18", "pause_after pauses between waves, but the step has no waves", `add waves, e.g. waves: [1, "100%"]`}}},
		{"pause on a mirroring install", []string{"    mirroring: true\n", "    mirroring: true\n    pause_after: [approve]\n"}, []want{{"55:18", "pause_after applies to machine installs with waves (mirroring: false), not to a mirroring install", ""}}},
		{"max_failures_per typo", []string{"max_failures_per: image", "max_failures_per: images"}, []want{{"63:23", `max_failures_per must be step or image, not "images"`, `did you mean "image"?`}}},
		{"max_failures_per alone", []string{"    max_failures: \"5%\"\n", ""}, []want{{"62:23", "max_failures_per says how max_failures counts, but the step has no max_failures", "add max_failures, or remove max_failures_per"}}},
		// notify
		{"notify without url", []string{`  - url: "https://ci.example.com/rollout/events"` + "\n    format: json", "  - format: json"}, []want{{"97:5", `missing required key "url" in a notify entry`, ""}}},
		{"notify without events", []string{"    events: [started, approved]\n", ""}, []want{{"97:5", `missing required key "events" in a notify entry`, ""}}},
		{"notify no events", []string{"events: [started, approved]", "events: []"}, []want{{"99:13", "events must list at least one event of started, wave, approval, approved, failed, aborted, finished", "events: [started, wave, approval, approved, failed, aborted, finished]"}}},
		{"notify unknown event", []string{"events: [started, approved]", "events: [started, aproved]"}, []want{{"99:23", `unknown notify event "aproved" (one of started, wave, approval, approved, failed, aborted, finished)`, `did you mean "approved"?`}}},
		{"notify event twice", []string{"events: [started, approved]", "events: [started, started]"}, []want{{"99:23", `event "started" is listed twice`, ""}}},
		{"notify format typo", []string{"format: json", "format: jsn"}, []want{{"98:13", `notify format must be slack (incoming-webhook text) or json (the run's JSON event), not "jsn"`, `did you mean "json"?`}}},
		{"notify url not http", []string{`"https://ci.example.com/rollout/events"`, `"ci.example.com/rollout/events"`}, []want{{"97:10", "notify url must start with http:// or https:// (it is ***)", ""}}},
		{"notify url from an unset variable", []string{"${env:SLACK_HOOK}", "${env:SLACK_HOK}"}, []want{{"94:44", "environment variable SLACK_HOK is not set (used in notify url)", ""}}},
		{"notify unknown key", []string{"    format: json\n", "    fromat: json\n"}, []want{{"98:5", `unknown key "fromat" in a notify entry`, `did you mean "format"?`}}},
		{"notify not a list", []string{"notify:\n  - url", "notify:\n  x:\n  - url"}, []want{{"94:3", "notify must be a list, not a mapping", ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, editAB(t, c.edits...), Options{LookupEnv: abEnv})
			checkWants(t, errs, c.wants)
			if len(errs) > len(c.wants) {
				t.Errorf("%d errors, want %d:\n%v", len(errs), len(c.wants), errs)
			}
			for _, e := range errs {
				if strings.Contains(e.Msg, "struct {") || strings.Contains(e.Msg, "plan.") || strings.Contains(e.Error(), slackPath) {
					t.Errorf("message shows a Go type or a secret: %s", e.Error())
				}
			}
		})
	}
}
