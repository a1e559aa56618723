package schema_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/schema"
)

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSON))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("plan.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("plan.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// toJSON turns YAML into the values a JSON decoder would produce, which is
// what the validator expects.
func toJSON(t *testing.T, src []byte) (any, error) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// TestEveryKeyHasDescription keeps hover help in editors complete.
func TestEveryKeyHasDescription(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(schema.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for k, p := range props {
				pm, _ := p.(map[string]any)
				if d, _ := pm["description"].(string); d == "" {
					t.Errorf("%s.%s has no description", path, k)
				}
				walk(path+"."+k, p)
			}
		}
		for _, k := range []string{"items", "additionalProperties"} {
			if sub, ok := m[k]; ok {
				walk(path+"["+k+"]", sub)
			}
		}
		if defs, ok := m["$defs"].(map[string]any); ok {
			for k, d := range defs {
				walk("$defs."+k, d)
			}
		}
	}
	walk("", doc)
}

// TestPlansValidate checks every example plan (and the test plans of package
// plan) against the schema and the loader.
func TestPlansValidate(t *testing.T) {
	s := compile(t)
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../plan/testdata/*.yaml")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no plans found")
	}
	// Every ${env:NAME} reads as a URL: a webhook URL may be read whole
	// from the environment (examples/bake-notify.yaml), and the loader
	// checks that it is one.
	env := func(name string) (string, bool) { return "https://env.example/" + name, true }
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := toJSON(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(v); err != nil {
				t.Errorf("schema rejects %s: %v", f, err)
			}
			if _, err := plan.Parse(f, src, plan.Options{LookupEnv: env}); err != nil {
				t.Errorf("loader rejects %s:\n%v", f, err)
			}
		})
	}
}

const base = `version: 1
name: agree
clanforge: {url: "https://api.example.com", asid: 12}
concurrency: 4
vars: {build: "1.0", max: 10}
images:
  - {name: img, id: 1}
machines:
  - {name: build, id: 10, labels: {role: build}}
  - {name: m1, id: 11, labels: {role: fleet}}
  - {name: m2, id: 12, labels: {role: fleet}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "b ${vars.build}"
    retries: 1
    timeout: 45m
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
  - name: gate
    type: gate
    needs: [diff]
    expr: steps.diff.changed <= vars.max
  - name: version
    type: version
    needs: [gate]
    full: auto
    install_at: manual
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
    max_failures: "10%"
on_failure:
  - type: reject
    reinstall: true
`

// TestSchemaAgreesWithLoader: for each plan both accept, or both reject.
// semantic marks errors the schema cannot express (references between keys,
// expressions, graph shape); for those only the loader must reject.
func TestSchemaAgreesWithLoader(t *testing.T) {
	s := compile(t)
	cases := []struct {
		name     string
		old, new string
		ok       bool
		semantic bool
	}{
		{name: "base", ok: true},
		{name: "no clanforge", old: "clanforge: {url: \"https://api.example.com\", asid: 12}\n", new: "", ok: true},
		{name: "full true", old: "full: auto", new: "full: true", ok: true},
		{name: "install_at now without waves", old: "    waves: [1, \"100%\"]\n", new: "", ok: true},
		{name: "machine images", old: "labels: {role: fleet}}\n  - {name: m2", new: "labels: {role: fleet}, images: [img]}\n  - {name: m2", ok: true},
		{name: "count max_failures", old: `max_failures: "10%"`, new: `max_failures: 1`, ok: true},
		{name: "allow_empty", old: "    mirroring: false\n", new: "    mirroring: false\n    allow_empty: true\n", ok: true},
		{name: "allow_empty on reject", old: "    reinstall: true\n", new: "    reinstall: true\n    where: machine.labels.role == \"fleet\"\n    allow_empty: false\n", ok: true},
		{name: "allow_empty not a boolean", old: "    mirroring: false\n", new: "    mirroring: false\n    allow_empty: \"yes\"\n"},
		{name: "version 2", old: "version: 1", new: "version: 2"},
		{name: "missing name", old: "name: agree\n", new: ""},
		{name: "unknown top key", old: "concurrency: 4", new: "concurency: 4"},
		{name: "concurrency 0", old: "concurrency: 4", new: "concurrency: 0"},
		{name: "concurrency string", old: "concurrency: 4", new: "concurrency: four"},
		{name: "credentials in plan", old: "asid: 12}", new: "asid: 12, secret_key: x}"},
		{name: "asid string", old: "asid: 12", new: "asid: twelve"},
		{name: "url not http", old: `url: "https://api.example.com"`, new: `url: "ftp://x"`},
		{name: "image without id", old: "{name: img, id: 1}", new: "{name: img}"},
		{name: "image id string", old: "{name: img, id: 1}", new: "{name: img, id: one}"},
		{name: "machine unknown key", old: "{name: m1, id: 11,", new: "{name: m1, id: 11, zone: a,"},
		{name: "label not string", old: "labels: {role: fleet}}\n  - {name: m2", new: "labels: {rack: 3}}\n  - {name: m2"},
		{name: "empty machines", old: "machines:\n  - {name: build, id: 10, labels: {role: build}}\n  - {name: m1, id: 11, labels: {role: fleet}}\n  - {name: m2, id: 12, labels: {role: fleet}}\n", new: "machines: []\n"},
		{name: "no steps", old: "steps:\n", new: "steps: []\nx:\n"},
		{name: "unknown step type", old: "type: diff", new: "type: dif"},
		{name: "step unknown key", old: "    retries: 1\n", new: "    retries: 1\n    retry: 1\n"},
		{name: "key of another type", old: "    full: auto\n", new: "    full: auto\n    mirroring: true\n"},
		{name: "missing mirroring", old: "    mirroring: true\n", new: ""},
		{name: "update without desc", old: "    desc: \"b ${vars.build}\"\n", new: ""},
		{name: "gate without expr", old: "    expr: steps.diff.changed <= vars.max\n", new: ""},
		{name: "bad timeout", old: "timeout: 45m", new: "timeout: soon"},
		{name: "negative retries", old: "retries: 1", new: "retries: -1"},
		{name: "retries on version", old: "    full: auto\n", new: "    full: auto\n    retries: 1\n"},
		{name: "full maybe", old: "full: auto", new: "full: maybe"},
		{name: "install_at later", old: "install_at: manual", new: "install_at: later"},
		{name: "wave over 100%", old: `waves: [1, "100%"]`, new: `waves: [1, "150%"]`},
		{name: "wave not a size", old: `waves: [1, "100%"]`, new: `waves: [1, "all"]`},
		{name: "empty waves", old: `waves: [1, "100%"]`, new: `waves: []`},
		{name: "zero wave", old: `waves: [1, "100%"]`, new: `waves: [0, "100%"]`},
		{name: "mirroring string", old: "mirroring: false", new: "mirroring: \"no\""},
		{name: "needs not a list", old: "needs: [update]", new: "needs: update"},
		{name: "on_failure version", old: "  - type: reject\n", new: "  - type: version\n"},
		{name: "on_failure needs", old: "    reinstall: true\n", new: "    reinstall: true\n    needs: [diff]\n"},
		{name: "max_parallel 0", old: "    retries: 1\n", new: "    retries: 1\n    max_parallel: 0\n"},
		// Semantic: references, expressions, graph shape, counts.
		{name: "unknown need", old: "needs: [update]", new: "needs: [updat]", semantic: true},
		{name: "cycle", old: "needs: [update]", new: "needs: [gate]", semantic: true},
		{name: "duplicate machine", old: "{name: m2, id: 12", new: "{name: m1, id: 12", semantic: true},
		{name: "duplicate image id", old: "  - {name: img, id: 1}\n", new: "  - {name: img, id: 1}\n  - {name: img2, id: 1}\n", semantic: true},
		{name: "expression type", old: "steps.diff.changed <= vars.max", new: `steps.diff.changed + "x"`, semantic: true},
		{name: "unknown var", old: `"b ${vars.build}"`, new: `"b ${vars.bild}"`, semantic: true},
		{name: "waves with install_at now", old: "install_at: manual", new: "install_at: now", semantic: true},
		{name: "last wave short", old: `waves: [1, "100%"]`, new: `waves: [1, "50%"]`, semantic: true},
		{name: "decreasing waves", old: `waves: [1, "100%"]`, new: `waves: [2, 1, "100%"]`, semantic: true},
		{name: "zero timeout", old: "timeout: 45m", new: "timeout: 0s", semantic: true},
		{name: "where matching nothing", old: `where: machine.labels.role == "fleet"`, new: `where: machine.labels.role == "Fleet"`, semantic: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := base
			if c.old != "" {
				if !strings.Contains(src, c.old) {
					t.Fatalf("case does not apply: %q not in base plan", c.old)
				}
				src = strings.Replace(src, c.old, c.new, 1)
			}
			agree(t, s, "agree.yaml", src, plan.Options{}, c.ok, c.semantic)
		})
	}
}

// agree checks that the schema and the loader agree on src: both accept it
// when ok; else the loader rejects it, and so does the schema unless the
// error is semantic (beyond what a schema can say).
func agree(t *testing.T, s *jsonschema.Schema, file, src string, o plan.Options, ok, semantic bool) {
	t.Helper()
	v, err := toJSON(t, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	schemaErr := s.Validate(v)
	_, loadErr := plan.Parse(file, []byte(src), o)
	if ok {
		if schemaErr != nil || loadErr != nil {
			t.Fatalf("want accepted; schema: %v\nloader: %v", schemaErr, loadErr)
		}
		return
	}
	if loadErr == nil {
		t.Errorf("loader accepts a plan it must reject")
	}
	if !semantic && schemaErr == nil {
		t.Errorf("schema accepts a plan the loader rejects with:\n%v", loadErr)
	}
	if semantic && schemaErr != nil {
		t.Logf("note: schema also rejects: %v", schemaErr)
	}
}

// TestSchemaAgreesOnCutover is TestSchemaAgreesWithLoader for the keys of
// cut-over and control (and max_failures_per), on the A/B plan of package
// plan's tests.
func TestSchemaAgreesOnCutover(t *testing.T) {
	s := compile(t)
	b, err := os.ReadFile("../plan/testdata/ab-cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ab := string(b)
	env := func(name string) (string, bool) {
		switch name {
		case "SLACK_HOOK":
			return "T0/B0/X", true
		case "HOOK":
			return "https://hooks.example.com/x", true
		}
		return "", false
	}
	cases := []struct {
		name     string
		edits    []string
		ok       bool
		semantic bool
	}{
		{name: "base", ok: true},
		{name: "switch to a profile", edits: []string{"    to: ${vars.idle}\n    fleets", "    profile: 102\n    fleets"}, ok: true},
		{name: "on_failure switch to a profile", edits: []string{"to: ${vars.live}", "profile: 101"}, ok: true},
		{name: "on_timeout continue", edits: []string{"on_timeout: abort", "on_timeout: continue"}, ok: true},
		{name: "pause null and bake", edits: []string{"pause_after: [approve, 10m]", "pause_after: [null, 90s]"}, ok: true},
		{name: "max_failures_per step", edits: []string{"max_failures_per: image", "max_failures_per: step"}, ok: true},
		{name: "ready defaults", edits: []string{"    until: status.pending == 0\n    fail_if: status.failed > 2 || status.regions[\"eu\"].failed > 1\n", ""}, ok: true},
		{name: "ready fleets", edits: []string{"    timeout: 2h\n", "    timeout: 2h\n    fleets: [prod-eu]\n"}, ok: true},
		{name: "webhook from the environment", edits: []string{`"https://hooks.slack.com/services/${env:SLACK_HOOK}"`, `"${env:HOOK}"`}, ok: true},
		{name: "notify without format", edits: []string{"    format: slack\n", ""}, ok: true},
		{name: "profile a string", edits: []string{"profile: 101", "profile: a"}},
		{name: "profile zero", edits: []string{"profile: 101", "profile: 0"}},
		{name: "fleet id not a UUID", edits: []string{"id: c0a3e2a1-6955-415c-b1d4-af9199833e6a", "id: prod-eu-1"}},
		{name: "fleet without id", edits: []string{", id: c0a3e2a1-6955-415c-b1d4-af9199833e6a}", "}"}},
		{name: "fleet unknown key", edits: []string{"{name: prod-eu, id:", "{name: prod-eu, region: eu, id:"}},
		{name: "fleets empty", edits: []string{"fleets:\n  - {name: prod-eu, id: c0a3e2a1-6955-415c-b1d4-af9199833e6a}\n  - {name: prod-us, id: 5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14}\n", "fleets: []\n"}},
		{name: "machine fleet not a string", edits: []string{"fleet: prod-eu, labels: {role: build}", "fleet: 3, labels: {role: build}"}},
		{name: "unknown step type", edits: []string{"type: switch\n    needs", "type: swich\n    needs"}},
		{name: "until on approve", edits: []string{"    on_timeout: abort\n", "    on_timeout: abort\n    until: status.pending == 0\n"}},
		{name: "fleets on install", edits: []string{"    max_failures_per: image\n", "    max_failures_per: image\n    fleets: [prod-eu]\n"}},
		{name: "on_timeout later", edits: []string{"on_timeout: abort", "on_timeout: later"}},
		{name: "max_failures_per images", edits: []string{"max_failures_per: image", "max_failures_per: images"}},
		{name: "max_failures_per alone", edits: []string{"    max_failures: \"5%\"\n", ""}},
		{name: "pause without waves", edits: []string{"    waves: [1, \"25%\", \"100%\"]\n", ""}},
		{name: "pause typo", edits: []string{"pause_after: [approve, 10m]", "pause_after: [aprove, 10m]"}},
		{name: "pause without unit", edits: []string{"pause_after: [approve, 10m]", "pause_after: [approve, 10]"}},
		{name: "pause not a list", edits: []string{"pause_after: [approve, 10m]", "pause_after: approve"}},
		{name: "switch to and profile", edits: []string{"    max_machines: 10\n", "    max_machines: 10\n    profile: 102\n"}},
		{name: "switch neither", edits: []string{"    to: ${vars.idle}\n    fleets", "    fleets"}},
		{name: "max_machines zero", edits: []string{"max_machines: 10", "max_machines: 0"}},
		{name: "force_after not a duration", edits: []string{"force_after: 2h", "force_after: soon"}},
		{name: "switch fleets empty", edits: []string{"fleets: [prod-eu, prod-us]", "fleets: []"}},
		{name: "approve in on_failure", edits: []string{"  - type: switch\n    to: ${vars.live}\n", "  - type: approve\n"}},
		{name: "message not a string", edits: []string{`message: "Switch the fleets to ${vars.idle}?"`, "message: 42"}},
		{name: "notify without url", edits: []string{`  - url: "https://ci.example.com/rollout/events"` + "\n    format: json", "  - format: json"}},
		{name: "notify without events", edits: []string{"    events: [started, approved]\n", ""}},
		{name: "notify no events", edits: []string{"events: [started, approved]", "events: []"}},
		{name: "notify unknown event", edits: []string{"events: [started, approved]", "events: [started, aproved]"}},
		{name: "notify event twice", edits: []string{"events: [started, approved]", "events: [started, started]"}},
		{name: "notify format xml", edits: []string{"format: json", "format: xml"}},
		{name: "notify unknown key", edits: []string{"    format: json\n", "    fromat: json\n"}},
		{name: "notify url not http", edits: []string{`"https://ci.example.com/rollout/events"`, `"ftp://ci.example.com/x"`}},
		// Semantic: references between keys, expressions, counts.
		{name: "switch to unknown image", edits: []string{"to: ${vars.idle}", "to: game-c"}, semantic: true},
		{name: "switch to image without profile", edits: []string{"{name: game-b, id: 5531, profile: 102}", "{name: game-b, id: 5531}"}, semantic: true},
		{name: "profile twice", edits: []string{"profile: 102", "profile: 101"}, semantic: true},
		{name: "duplicate fleet", edits: []string{"{name: prod-us, id: 5d1b", "{name: prod-eu, id: 5d1b"}, semantic: true},
		{name: "unknown fleet of a machine", edits: []string{"fleet: prod-eu, labels: {role: build}", "fleet: prod-xx, labels: {role: build}"}, semantic: true},
		{name: "unknown fleet of a step", edits: []string{"fleets: [prod-eu, prod-us]", "fleets: [prod-eu, prod-xx]"}, semantic: true},
		{name: "too many pauses", edits: []string{"pause_after: [approve, 10m]", "pause_after: [approve, 10m, 5m]"}, semantic: true},
		{name: "status outside a ready step", edits: []string{"expr: steps.diff.changed <= 300", "expr: status.pending == 0"}, semantic: true},
		{name: "until not boolean", edits: []string{"until: status.pending == 0", "until: status.pending"}, semantic: true},
		{name: "step name read in an expression is not an identifier", edits: []string{"name: fleet_ready", "name: fleet-ready", "needs: [fleet_ready]", "needs: [fleet-ready]", "when: steps.fleet_ready.status", `when: steps["fleet-ready"].status`}, semantic: true},
		{name: "switch before its image's steps", edits: []string{"to: ${vars.idle}", "to: ${vars.live}"}, semantic: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := ab
			for i := 0; i+1 < len(c.edits); i += 2 {
				if !strings.Contains(src, c.edits[i]) {
					t.Fatalf("case does not apply: %q not in the A/B plan", c.edits[i])
				}
				src = strings.Replace(src, c.edits[i], c.edits[i+1], 1)
			}
			agree(t, s, "ab.yaml", src, plan.Options{LookupEnv: env}, c.ok, c.semantic)
		})
	}
}
