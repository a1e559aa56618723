package plan

import (
	"errors"
	"flag"
	"fmt"
	"github.com/goccy/go-yaml/parser"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// mini is a small valid plan; the broken-plan cases edit it so that the
// expected positions can be read off this listing (line numbers on the left).
const mini = `version: 1
name: t
images: [{name: img, id: 1}]
machines:
  - {name: b, id: 1, labels: {role: build}}
  - {name: f, id: 2, labels: {role: fleet}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: d
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
  - name: gate
    type: gate
    needs: [diff]
    expr: steps.diff.changed < 10
  - name: version
    type: version
    needs: [gate]
  - name: mirror
    type: install
    needs: [version]
    mirroring: true
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    mirroring: false
`

// edit applies (old, new) replacements to mini, failing when one does not apply.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	src := mini
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit does not apply: %q", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

func noEnv(string) (string, bool) { return "", false }

func parseErrs(t *testing.T, src string, opt Options) Errors {
	t.Helper()
	if opt.LookupEnv == nil {
		opt.LookupEnv = noEnv
	}
	p, err := Parse("t.yaml", []byte(src), opt)
	if err == nil {
		t.Fatalf("plan loaded (%d instances), want errors", len(p.Instances))
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want plan.Errors", err)
	}
	return errs
}

// want is an error a broken plan must bring: at pos ("line:col", or a
// prefix of it), with frag in its message and, unless hint is "", that hint.
type want struct {
	pos  string
	frag string
	hint string
}

// checkWants checks that errs hold every one of wants.
func checkWants(t *testing.T, errs Errors, wants []want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, e := range errs {
			pos := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col)
			if strings.HasPrefix(pos, w.pos) && strings.Contains(e.Msg, w.frag) && (w.hint == "" || e.Hint == w.hint) {
				found = true
			}
		}
		if !found {
			t.Errorf("want error at %s containing %q (hint %q); got:\n%v", w.pos, w.frag, w.hint, errs)
		}
	}
}

func TestMiniLoads(t *testing.T) {
	p, err := Parse("t.yaml", []byte(mini), Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range p.Instances {
		ids = append(ids, in.ID)
	}
	want := "update@b/img diff@b/img gate@b/img version@img mirror@img install@f/img"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("instances\n got %s\nwant %s", got, want)
	}
}

func TestBrokenPlans(t *testing.T) {
	cases := []struct {
		name  string
		src   func(t *testing.T) string
		opt   Options
		wants []want
	}{
		{"unknown key", func(t *testing.T) string {
			return edit(t, "    mirroring: false\n", "    mirroring: false\n    wavess: [1]\n")
		}, Options{}, []want{{"32:5", `unknown key "wavess" in step "install"`, `did you mean "waves"?`}}},
		{"key of another step type", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "    needs: [gate]\n    mirroring: true\n")
		}, Options{}, []want{{"23:5", `key "mirroring" belongs to install steps, not to a version step`, ""}}},
		{"unknown needs", func(t *testing.T) string {
			return edit(t, "needs: [version]", "needs: [verison]")
		}, Options{}, []want{{"25:13", `step "mirror" needs unknown step "verison"`, `did you mean "version"?`}}},
		{"two cycles reported together", func(t *testing.T) string {
			return edit(t, "needs: [update]", "needs: [update, gate]", "needs: [version]", "needs: [version, install]")
		}, Options{}, []want{
			{"14:21", "needs form a cycle: diff (line 12) needs gate (line 16) needs diff", ""},
			{"25:22", "needs form a cycle: mirror (line 23) needs install (line 27) needs mirror", ""},
		}},
		{"self need", func(t *testing.T) string {
			return edit(t, "needs: [gate]", "needs: [gate, version]")
		}, Options{}, []want{{"22:19", "needs form a cycle: version (line 20) needs version", ""}}},
		{"expression type error", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", `expr: steps.diff.changed + "x"`)
		}, Options{}, []want{{"19:30", `invalid operation: + (mismatched types int and string) in expr of step "gate"`, ""}}},
		{"unknown step in expression", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", "expr: steps.dif.changed < 10")
		}, Options{}, []want{{"19:17", `unknown step "dif" in expr of step "gate"`, `did you mean "diff"?`}}},
		{"step in expression not among needs", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", `expr: steps.mirror.state == "x"`)
		}, Options{}, []want{{"19:17", `step "mirror" is not among the needs of step "gate"`, `add "mirror" to needs`}}},
		{"unknown field of a step output", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", "expr: steps.diff.chnged < 10")
		}, Options{}, []want{{"19:22", `a diff step's output has no field "chnged"`, `did you mean "changed"?`}}},
		{"unknown job field", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", "expr: steps.diff.job.stat == 1")
		}, Options{}, []want{{"19:26", `job has no field "stat"`, `did you mean "state"?`}}},
		{"unknown variable in expression", func(t *testing.T) string {
			return edit(t, "name: t\n", "name: t\nvars: {max: 3}\n", "expr: steps.diff.changed < 10", "expr: steps.diff.changed < vars.mx")
		}, Options{}, []want{{"20:37", `unknown variable "mx" in expr of step "gate"`, `did you mean "max"?`}}},
		{"machine in a per-image step", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "    needs: [gate]\n    when: machine.name == \"b\"\n")
		}, Options{}, []want{{"23:11", `machine is not in scope in when of step "version"`, ""}}},
		{"non-boolean where", func(t *testing.T) string {
			return edit(t, `where: machine.labels.role == "build"`, "where: machine.labels.role")
		}, Options{}, []want{{"10:12", `where of step "update" must be a boolean expression, but its type is string`, ""}}},
		{"expression syntax error", func(t *testing.T) string {
			return edit(t, "expr: steps.diff.changed < 10", "expr: steps.diff.changed < (10")
		}, Options{}, []want{{"19:", `in expr of step "gate"`, ""}}},
		{"duplicate machine", func(t *testing.T) string {
			return edit(t, "{name: f, id: 2", "{name: b, id: 2")
		}, Options{}, []want{{"6:12", `duplicate machine "b" (first defined on line 5)`, ""}}},
		{"duplicate key", func(t *testing.T) string {
			return edit(t, "    desc: d\n", "    desc: d\n    desc: e\n")
		}, Options{}, []want{{"12:5", `duplicate key "desc" in step "update" (first given on line 11)`, ""}}},
		{"wrong type", func(t *testing.T) string {
			return edit(t, "name: t\n", "name: t\nconcurrency: many\n")
		}, Options{}, []want{{"3:14", "concurrency must be an integer, not a string", ""}}},
		{"string wanted", func(t *testing.T) string {
			return edit(t, "desc: d", "desc: 1.5")
		}, Options{}, []want{{"11:11", "desc must be a string, not a number", "quote it to make it a string"}}},
		{"missing required key", func(t *testing.T) string {
			return edit(t, "name: t\n", "")
		}, Options{}, []want{{"1:1", `missing required key "name" in the plan`, ""}}},
		{"yaml syntax error", func(t *testing.T) string {
			return edit(t, "images: [{name: img, id: 1}]", "images: [{name: img, id: 1}")
		}, Options{}, []want{{"3:28", "YAML syntax error: ',' or ']' must be specified", ""}}},
		{"bad indentation", func(t *testing.T) string {
			return edit(t, "    desc: d\n", "   desc: d\n")
		}, Options{}, []want{{"11:", "YAML syntax error", ""}}},
		{"missing mirroring", func(t *testing.T) string {
			return edit(t, "    mirroring: true\n", "")
		}, Options{}, []want{{"23:5", `missing required key "mirroring" in an install step`, ""}}},
		{"wave over 100%", func(t *testing.T) string {
			return edit(t, "    mirroring: false\n", "    mirroring: false\n    waves: [1, \"120%\"]\n")
		}, Options{}, []want{{"32:16", "wave 2 is 120% of the machines: a wave cannot exceed 100%", ""}}},
		{"last wave short", func(t *testing.T) string {
			return edit(t, "    mirroring: false\n", "    mirroring: false\n    waves: [\"50%\"]\n")
		}, Options{}, []want{{"32:13", "the last wave must reach 100%", `write "100%" as the last wave`}}},
		{"waves need manual", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "    needs: [gate]\n    install_at: now\n", "    mirroring: false\n", "    mirroring: false\n    waves: [\"100%\"]\n")
		}, Options{}, []want{{"28:5", "waves need install_at: manual", ""}}},
		{"manual install must need the mirror", func(t *testing.T) string {
			return edit(t, "    needs: [mirror]\n", "    needs: [version]\n")
		}, Options{}, []want{{"27:5", `must need (directly or not) a mirroring install of that version`, ""}}},
		{"version without a diff", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "")
		}, Options{}, []want{{"20:5", `version step "version" finds no diff among its needs for image "img"`, ""}}},
		{"retries on a gate", func(t *testing.T) string {
			return edit(t, "    needs: [diff]\n", "    needs: [diff]\n    retries: 2\n")
		}, Options{}, []want{{"19:14", "retries applies only to update and diff steps, not to a gate step", ""}}},
		{"disable_timeout without disable_percentage", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "    needs: [gate]\n    disable_timeout: 30\n")
		}, Options{}, []want{{"23:22", "disable_timeout needs disable_percentage", "add disable_percentage"}}},
		{"disable_percentage without disable_timeout", func(t *testing.T) string {
			return edit(t, "    needs: [gate]\n", "    needs: [gate]\n    disable_percentage: 90\n")
		}, Options{}, []want{{"23:25", "disable_percentage needs disable_timeout (minutes)", "add disable_timeout"}}},
		{"bad timeout", func(t *testing.T) string {
			return edit(t, "    desc: d\n", "    desc: d\n    timeout: 10 minutes\n")
		}, Options{}, []want{{"12:14", "timeout must be a Go duration", ""}}},
		{"version must be 1", func(t *testing.T) string {
			return edit(t, "version: 1", "version: 2")
		}, Options{}, []want{{"1:10", "unsupported plan version 2", ""}}},
		{"unknown image on a machine", func(t *testing.T) string {
			return edit(t, "labels: {role: fleet}}", "labels: {role: fleet}, images: [imag]}")
		}, Options{}, []want{{"6:54", `machine "f" carries unknown image "imag"`, `did you mean "img"?`}}},
		{"unknown interpolation variable", func(t *testing.T) string {
			return edit(t, "name: t\n", "name: t\nvars: {build: \"1\"}\n", "desc: d", "desc: \"v ${vars.biuld}\"")
		}, Options{}, []want{{"12:14", `unknown variable "biuld" in desc`, `did you mean "build"?`}}},
		{"unknown --var", func(t *testing.T) string {
			return edit(t, "name: t\n", "name: t\nvars: {build: \"1\"}\n")
		}, Options{Vars: map[string]string{"buidl": "2"}}, []want{{"0:0", `unknown plan variable "buidl"`, `did you mean "build"?`}}},
		{"raw / in URL credentials", func(t *testing.T) string {
			return edit(t, "    desc: d\n", "    url: \"s3://AKIAX:abc/def+ghi@builds/x/\"\n    desc: d\n")
		}, Options{}, []want{{"11:10", `url of step "update" (s3://***@builds/x/) has a raw "/" in its credentials`, `write "/" in a credential as %2F (and an "@" in the path as %40)`}}},
		{"raw / in URL credentials from the environment", func(t *testing.T) string {
			return edit(t, "    desc: d\n", "    url: \"s3://AKIAX:${env:AWS_SECRET}@builds/x/\"\n    desc: d\n")
		}, Options{LookupEnv: func(string) (string, bool) { return "abc/def+ghi", true }}, []want{{"11:10", `gets a raw "/" in its credentials from ${env:AWS_SECRET}`, `set ${env:AWS_SECRET} URL-encoded: write "/" in a credential as %2F`}}},
		{"multiple errors at once", func(t *testing.T) string {
			return edit(t, "{name: f, id: 2", "{name: b, id: 2", "needs: [version]", "needs: [verison]", "    mirroring: false\n", "    mirroring: false\n    wavess: [1]\n")
		}, Options{}, []want{
			{"6:12", "duplicate machine", ""},
			{"25:13", `unknown step "verison"`, ""},
			{"32:5", `unknown key "wavess"`, ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, c.src(t), c.opt)
			checkWants(t, errs, c.wants)
			for i := 1; i < len(errs); i++ {
				a, b := errs[i-1].Pos, errs[i].Pos
				if a.Line > b.Line || (a.Line == b.Line && a.Col > b.Col) {
					t.Errorf("errors not sorted by position: %v before %v", a, b)
				}
			}
			for _, e := range errs {
				if strings.Contains(e.Msg, "struct {") || strings.Contains(e.Msg, "plan.") {
					t.Errorf("message shows a Go type: %s", e.Msg)
				}
			}
		})
	}
}

// TestErrorRendering pins the rendered form of errors in a golden file.
func TestErrorRendering(t *testing.T) {
	src := edit(t,
		"{name: f, id: 2", "{name: b, id: 2",
		"needs: [version]", "needs: [verison]",
		"expr: steps.diff.changed < 10", `expr: steps.diff.changed + "x"`,
		"    mirroring: false\n", "    mirroring: false\n    wavess: [1]\n")
	errs := parseErrs(t, src, Options{})
	got := errs.Render(false) + "\n"
	golden := filepath.Join("testdata", "errors.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("rendered errors differ from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", golden, got, want)
	}
	colored := errs.Render(true)
	if !strings.Contains(colored, "\x1b[") || strings.Contains(got, "\x1b[") {
		t.Errorf("color only when asked")
	}
	// The first error alone: position, message, source line, caret, hint.
	one := errs[0].Error()
	lines := strings.Split(one, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "t.yaml:6:12: ") || !strings.Contains(lines[1], "{name: b, id: 2") || strings.Index(lines[2], "^") != strings.Index(lines[1], "b, id: 2") {
		t.Errorf("rendered error:\n%s", one)
	}
}

// TestSecretsNeverEchoed: a value from ${env:NAME} appears in no message and
// no Display, and URL credentials are masked.
func TestSecretsNeverEchoed(t *testing.T) {
	const secret = "hunter2-SECRET"
	env := func(name string) (string, bool) {
		if name == "TOKEN" || name == "KEY" {
			return secret, true
		}
		return "", false
	}
	ok := edit(t, "name: t\n", "name: t\ndescription: \"with ${env:TOKEN}\"\nvars: {tok: \"${env:TOKEN}\", n: 3}\n",
		"desc: d", `desc: "d ${vars.tok} ${env:KEY}"`,
		"    desc:", "    url: \"s3://AKIA:${env:KEY}@bucket/x\"\n    desc:")
	p, err := Parse("t.yaml", []byte(ok), Options{LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	up := p.Steps[0]
	if up.Desc.Resolved != "d "+secret+" "+secret {
		t.Errorf("desc resolved to %q", up.Desc.Resolved)
	}
	if up.Desc.Display != "d ${env:TOKEN} ${env:KEY}" {
		t.Errorf("desc display %q", up.Desc.Display)
	}
	if up.URL.Display != "s3://***@bucket/x" || up.URL.Resolved != "s3://AKIA:"+secret+"@bucket/x" {
		t.Errorf("url display %q", up.URL.Display)
	}
	if p.VarDisplay["tok"] != "${env:TOKEN}" || p.DescriptionDisplay != "with ${env:TOKEN}" {
		t.Errorf("var display %q, description %q", p.VarDisplay["tok"], p.DescriptionDisplay)
	}
	if MaskURLs("steam://user:pass@host/x and https://a.b/c") != "steam://***@host/x and https://a.b/c" {
		t.Errorf("steam credentials not masked")
	}
	if got := MaskURLs("s3://AKIAX:abc/def+ghi@builds/x/ and more"); got != "s3://***@builds/x/ and more" {
		t.Errorf("raw / in a secret: MaskURLs = %q", got)
	}
	// Errors near secrets: a type error on an env-typed var, an unknown var
	// next to an env value, a --var on it: none may print the value.
	bad := edit(t, "name: t\n", "name: t\nvars: {tok: \"${env:TOKEN}\"}\n",
		"desc: d", `desc: "d ${env:TOKEN} ${vars.nope}"`,
		"expr: steps.diff.changed < 10", "expr: steps.diff.changed + vars.tok")
	errs := parseErrs(t, bad, Options{LookupEnv: env, Vars: map[string]string{"nope": "x"}})
	if len(errs) < 3 {
		t.Errorf("want 3 errors, got:\n%v", errs)
	}
	if strings.Contains(errs.Error(), secret) || strings.Contains(errs.Render(true), secret) {
		t.Fatalf("secret echoed:\n%v", errs)
	}
	if got := parseErrs(t, edit(t, "name: t\n", "name: t\nvars: {a: 1}\n"), Options{Vars: map[string]string{"b": "2"}}).Error(); !strings.HasPrefix(got, "--var b: unknown plan variable") {
		t.Errorf("--var error renders as %q", got)
	}
	missing := parseErrs(t, edit(t, "desc: d", `desc: "${env:NOT_SET}"`), Options{LookupEnv: env})
	if !strings.Contains(missing[0].Msg, "environment variable NOT_SET is not set") {
		t.Errorf("got %v", missing)
	}
}

func TestVarsOverrideAndHash(t *testing.T) {
	src := edit(t, "name: t\n", "name: t\nvars: {build: \"1.0\", max: 3, on: true}\n",
		"desc: d", `desc: "b ${vars.build}"`,
		"expr: steps.diff.changed < 10", "expr: steps.diff.changed < vars.max && vars.on")
	p1, err := Parse("t.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Parse("t.yaml", []byte(src), Options{Vars: map[string]string{"build": "2.0", "max": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if p1.Steps[0].Desc.Resolved != "b 1.0" || p2.Steps[0].Desc.Resolved != "b 2.0" {
		t.Errorf("desc %q / %q", p1.Steps[0].Desc.Resolved, p2.Steps[0].Desc.Resolved)
	}
	if p2.Vars["max"] != 7 {
		t.Errorf("max override typed %T %v", p2.Vars["max"], p2.Vars["max"])
	}
	if p1.Hash == p2.Hash || len(p1.Hash) != 64 {
		t.Errorf("hash must change with overrides: %s %s", p1.Hash, p2.Hash)
	}
	p3, _ := Parse("t.yaml", []byte(src), Options{})
	if p3.Hash != p1.Hash {
		t.Errorf("hash not stable")
	}
	errs := parseErrs(t, src, Options{Vars: map[string]string{"max": "lots"}})
	if !strings.Contains(errs[0].Msg, `variable "max" is an integer`) {
		t.Errorf("got %v", errs)
	}
	// The override reaches expressions too.
	gate := p2.Steps[2]
	ok, err := gate.Expr.Eval(EvalInput{Machine: p2.Machines[0], Image: p2.Images[0], Steps: map[string]*Output{"diff": {Changed: 5}, "update": {}}})
	if err != nil || !ok {
		t.Errorf("eval with max=7, changed=5: %v %v", ok, err)
	}
}

func TestFullPlan(t *testing.T) {
	p, err := Load("testdata/full.yaml", Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "game-b-1.4.2" || p.ASID != 1234 || p.Concurrency != 4 || p.ClanforgeURL != "https://api.multiplay.co.uk" {
		t.Errorf("top level: %+v", p)
	}
	got := map[string][]string{}
	waves := map[string]int{}
	for _, in := range p.Instances {
		var deps []string
		for _, d := range in.Deps {
			deps = append(deps, d.ID)
		}
		got[in.ID] = deps
		waves[in.ID] = in.Wave
	}
	want := map[string][]string{
		"update@buildbox-1/game-b":       nil,
		"diff@buildbox-1/game-b":         {"update@buildbox-1/game-b"},
		"small-change@buildbox-1/game-b": {"diff@buildbox-1/game-b"},
		"version@game-b":                 {"small-change@buildbox-1/game-b"},
		"mirror@game-b":                  {"version@game-b"},
		"install@eu-canary/game-b":       {"mirror@game-b"},
		"install@eu-1/game-b":            {"mirror@game-b"},
		"install@us-1/game-b":            {"mirror@game-b"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deps\n got %v\nwant %v", got, want)
	}
	if waves["install@eu-canary/game-b"] != 0 || waves["install@eu-1/game-b"] != 1 || waves["install@us-1/game-b"] != 2 || waves["mirror@game-b"] != -1 {
		t.Errorf("waves %v", waves)
	}
	byID := map[string]*Instance{}
	for _, in := range p.Instances {
		byID[in.ID] = in
	}
	v := byID["version@game-b"]
	if v.Diff != byID["diff@buildbox-1/game-b"] || v.Step.InstallAt != InstallManual || v.Step.Full != FullAuto || !v.Step.Restart || v.Step.GameBuild.Resolved != "1.4.2" {
		t.Errorf("version: %+v", v.Step)
	}
	if v.Machine != nil || v.Image == nil || !v.PerImage() {
		t.Errorf("per-image instance must have its image and no machine")
	}
	if in := byID["install@eu-1/game-b"]; in.Version != v || in.Scope["diff"] == nil || in.Scope["mirror"] != byID["mirror@game-b"] {
		t.Errorf("install inputs: version %v scope %v", in.Version, in.Scope)
	}
	if s := byID["diff@buildbox-1/game-b"].Step; s.Retries != 1 || s.Timeout.String() != "30m0s" {
		t.Errorf("diff step %+v", s)
	}
	if s := byID["install@eu-1/game-b"].Step; s.MaxFailuresCount != 1 || len(s.Waves) != 3 {
		t.Errorf("install step %+v", s)
	}
	if !p.Machines[0].Build || p.Machines[1].Build {
		t.Errorf("build machines wrong")
	}
	if len(p.FailureInstances) != 5 {
		t.Fatalf("failure instances %d", len(p.FailureInstances))
	}
	fb := p.FailureInstances[0]
	if fb.ID != "reject@buildbox-1/game-b" || len(fb.Trigger) != 3 || fb.Diff != byID["diff@buildbox-1/game-b"] || !fb.Step.Reinstall || !fb.Step.OnFailure {
		t.Errorf("reject for build target: %+v", fb)
	}
	fi := p.FailureInstances[4]
	if fi.ID != "reject@game-b" || fi.Machine != nil || len(fi.Trigger) != 2 || fi.Diff == nil {
		t.Errorf("reject for the image: %+v", fi)
	}
	// The gate's expression, as the engine will run it.
	g := byID["small-change@buildbox-1/game-b"]
	for _, c := range []struct {
		out  Output
		want bool
	}{
		{Output{Changed: 10}, true},
		{Output{Changed: 301}, false},
		{Output{Changed: 1, Removed: []string{"GameServer.x86_64"}}, false},
	} {
		out := c.out
		ok, err := g.Step.Expr.Eval(EvalInput{Machine: g.Machine, Image: g.Image, Steps: map[string]*Output{"diff": &out, "update": {}}})
		if err != nil || ok != c.want {
			t.Errorf("gate with %+v = %v, %v; want %v", c.out, ok, err, c.want)
		}
	}
}

func TestTwoImagePlan(t *testing.T) {
	p, err := Load("testdata/two-image.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, in := range p.Instances {
		count[in.Step.Name]++
		if in.Step.Name == "version" && (in.Diff == nil || in.Diff.Image != in.Image) {
			t.Errorf("%s uses diff %v", in.ID, in.Diff)
		}
		if in.Step.Type == TypeInstall && (in.Version == nil || in.Version.Image != in.Image) {
			t.Errorf("%s uses version %v", in.ID, in.Version)
		}
	}
	want := map[string]int{"update": 2, "diff": 2, "small": 2, "version": 2, "mirror": 2, "install": 7}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("instances per step %v, want %v", count, want)
	}
	inst := p.Steps[5]
	if inst.MaxFailuresCount != 3 || inst.MaxParallel != 2 {
		t.Errorf("install: max failures %d (50%% of 7 rounds down to 3)", inst.MaxFailuresCount)
	}
	if p.Description != "Ship 2.0.1 to images A and B; B lives on part of the fleet only." {
		t.Errorf("description %q", p.Description)
	}
}

// fleet builds a plan with n fleet machines and the given waves.
func fleet(n int, waves string) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nname: big\nvars: {max: 100}\nimages: [{name: img, id: 1}]\nmachines:\n  - {name: build, id: 1, labels: {role: build}}\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: m%05d, id: %d, labels: {role: fleet, region: eu}}\n", i, 1000+i)
	}
	b.WriteString(`steps:
  - {name: update, type: update, desc: d, where: 'machine.labels.role == "build"'}
  - {name: diff, type: diff, needs: [update], where: 'machine.labels.role == "build"'}
  - {name: gate, type: gate, needs: [diff], expr: steps.diff.changed < vars.max}
  - {name: version, type: version, needs: [gate]}
  - {name: mirror, type: install, needs: [version], mirroring: true}
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    when: steps.mirror.state == "succeeded" && steps.diff.changed >= 0
    mirroring: false
    waves: ` + waves + `
    max_failures: "5%"
on_failure:
  - {type: reject, reinstall: true, when: 'steps.diff.state != ""'}
`)
	return []byte(b.String())
}

func TestWaves(t *testing.T) {
	for _, c := range []struct {
		n     int
		waves string
		sizes []int
	}{
		{10, `[1, "50%", "100%"]`, []int{1, 4, 5}},
		{10, `["10%", "100%"]`, []int{1, 9}},
		{3, `[5, "100%"]`, []int{3, 0}},
		{7, `["33%", "66%", "100%"]`, []int{3, 2, 2}},
	} {
		p, err := Parse("w.yaml", fleet(c.n, c.waves), Options{})
		if err != nil {
			t.Fatal(err)
		}
		sizes := make([]int, len(c.sizes))
		last := -1
		for _, in := range p.Instances {
			if in.Step.Name != "install" {
				continue
			}
			if in.Wave < last {
				t.Errorf("instances not in wave order")
			}
			last = in.Wave
			sizes[in.Wave]++
		}
		if fmt.Sprint(sizes) != fmt.Sprint(c.sizes) {
			t.Errorf("%d machines, waves %s: sizes %v, want %v", c.n, c.waves, sizes, c.sizes)
		}
	}
}

// TestCompileCache: a large fleet compiles each expression once per scope
// shape, not once per machine.
func TestCompileCache(t *testing.T) {
	before := compiles.Load()
	p, err := Parse("big.yaml", fleet(2000, `[1, "100%"]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := compiles.Load() - before; n > 10 {
		t.Errorf("%d compilations for %d instances", n, len(p.Instances))
	}
	if len(p.Instances) != 2005 || len(p.FailureInstances) != 2002 {
		t.Errorf("instances %d, failure instances %d", len(p.Instances), len(p.FailureInstances))
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse("t.yaml", []byte("version: 2\n"), Options{})
	var a Errors
	var b *Errors
	if !errors.As(err, &a) || !errors.As(err, &b) || len(a) == 0 || len(*b) != len(a) {
		t.Fatalf("errors.As: %v %v", a, b)
	}
	_, err = Load("testdata/does-not-exist.yaml", Options{})
	if !errors.As(err, &a) || !strings.Contains(a[0].Msg, "cannot read plan") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestEmptyAndOddDocuments(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "- a list\n", "version: 1\n---\nversion: 1\n", "just text", "version: 1\nname: x\nimages: *nope\n", "<<: {a: 1}\n"} {
		_, err := Parse("t.yaml", []byte(src), Options{})
		if err == nil {
			t.Errorf("%q loaded", src)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(mini))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.yaml", src, Options{LookupEnv: noEnv})
		if (p == nil) == (err == nil) {
			t.Fatalf("plan %v and error %v", p != nil, err)
		}
		if err != nil {
			_ = err.Error()
		}
	})
}

func BenchmarkLoad10k(b *testing.B) {
	src := fleet(10_000, `[1, "10%", "50%", "100%"]`)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse("big.yaml", src, Options{})
		if err != nil || len(p.Instances) != 10_005 {
			b.Fatal(err)
		}
	}
}

// TestURLCredentialsMustBeEncoded: a raw "/" in the user-info of an update
// URL is refused wherever it comes from, without echoing the secret;
// encoded credentials and URLs without credentials load.
func TestURLCredentialsMustBeEncoded(t *testing.T) {
	const secret = "def+ghi"
	env := func(name string) (string, bool) {
		switch name {
		case "RAW":
			return "abc/" + secret, true
		case "ENCODED":
			return "abc%2F" + secret, true
		}
		return "", false
	}
	tests := []struct {
		name, url, vars string
		frag            string // "" means the plan loads
	}{
		{"literal", "s3://AKIAX:abc/def+ghi@builds/x/", "", `has a raw "/" in its credentials`},
		{"steam password", "steam://user:pa/def+ghi@install/740/", "", `has a raw "/" in its credentials`},
		// The user-info ends at the last "@": a raw "/" after an "@" in the
		// password is still inside the credentials.
		{"@ then / in the password", "s3://AKIAX:abc@def/ghi@builds/x/", "", `has a raw "/" in its credentials`},
		{"env", "s3://AKIAX:${env:RAW}@builds/x/", "", "from ${env:RAW}"},
		{"var from env", "s3://AKIAX:${vars.key}@builds/x/", `vars: {key: "${env:RAW}"}`, "from ${vars.key} (${env:RAW})"},
		{"literal encoded", "s3://AKIAX:abc%2Fdef+ghi@builds/x/", "", ""},
		{"env encoded", "s3://AKIAX:${env:ENCODED}@builds/x/", "", ""},
		{"no credentials", "s3://builds/x/?region=eu-west-1", "", ""},
		{"@ only in the query", "gs://builds/x?credentials=a/b@c", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs := []string{"    desc: d\n", "    url: \"" + tt.url + "\"\n    desc: d\n"}
			if tt.vars != "" {
				pairs = append(pairs, "name: t\n", "name: t\n"+tt.vars+"\n")
			}
			src := edit(t, pairs...)
			if tt.frag == "" {
				if _, err := Parse("t.yaml", []byte(src), Options{LookupEnv: env}); err != nil {
					t.Fatalf("plan refused: %v", err)
				}
				return
			}
			errs := parseErrs(t, src, Options{LookupEnv: env})
			if !strings.Contains(errs.Error(), tt.frag) {
				t.Errorf("want an error containing %q, got:\n%v", tt.frag, errs)
			}
			if out := errs.Render(true) + errs.Error(); strings.Contains(out, secret) {
				t.Errorf("the error echoes the secret:\n%s", out)
			}
		})
	}
}

// BenchmarkYAMLParser10k is what goccy/go-yaml's parser alone costs on
// BenchmarkLoad10k's document: the floor the loader cannot go under while
// it uses that parser.
func BenchmarkYAMLParser10k(b *testing.B) {
	src := fleet(10_000, `[1, "10%", "50%", "100%"]`)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.ParseBytes(src, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	for _, c := range []struct {
		s     string
		cands []string
		want  string
	}{
		{"sped", []string{"seed", "speed", "jitter"}, `did you mean "speed"?`}, // as close as "seed", longer prefix
		{"mirorring", []string{"mirroring", "waves"}, `did you mean "mirroring"?`},
		{"instal", []string{"install", "uninstall"}, `did you mean "install"?`},
		{"zzz", []string{"speed"}, ""},
		{"ab", []string{"ba", "ac"}, `did you mean "ac"?`},
	} {
		if got := DidYouMean(c.s, c.cands); got != c.want {
			t.Errorf("DidYouMean(%q, %q) = %q, want %q", c.s, c.cands, got, c.want)
		}
	}
}

// TestMaxFailuresBounds: max_failures takes a count or a percentage up to
// and including 100% (a budget that never aborts, written out); above that
// is an error at the value. Each accepted value resolves against the
// install step's one machine.
func TestMaxFailuresBounds(t *testing.T) {
	tests := []struct {
		value     string
		wantCount int    // MaxFailuresCount of the install step
		wantErr   string // "": loads
	}{
		{`0`, 0, ""},
		{`3`, 3, ""},
		{`"0%"`, 0, ""},
		{`"100%"`, 1, ""},
		{`"101%"`, 0, "max_failures cannot exceed 100%"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			src := edit(t, "    mirroring: false\n", "    mirroring: false\n    max_failures: "+tt.value+"\n")
			p, err := Parse("t.yaml", []byte(src), Options{LookupEnv: noEnv})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "%%") {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("max_failures: %s: %v", tt.value, err)
			}
			var s *Step
			for _, st := range p.Steps {
				if st.Name == "install" {
					s = st
				}
			}
			if s == nil || s.MaxFailures == nil {
				t.Fatalf("install step has no budget: %+v", s)
			}
			if s.MaxFailuresCount != tt.wantCount {
				t.Errorf("MaxFailuresCount = %d, want %d", s.MaxFailuresCount, tt.wantCount)
			}
		})
	}
}
