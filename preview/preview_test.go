package preview

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout/rollout/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("preview differs from %s (run with -update if intended):\n%s", path, got)
	}
}

func load(t testing.TB, path string) *plan.Plan {
	t.Helper()
	p, err := plan.Load(path, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTwoImagePreviewGolden(t *testing.T) {
	p := load(t, "../examples/two-images.yaml")
	var b bytes.Buffer
	if err := Build(p, Options{ASID: p.ASID}).Text(&b, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "two-images", b.Bytes())
	// Every machine and every step of the two-image rollout is named.
	for _, m := range p.Machines {
		if !strings.Contains(b.String(), m.Name) {
			t.Errorf("machine %s not named", m.Name)
		}
	}
	for _, s := range p.Steps {
		if !strings.Contains(b.String(), s.Name+" ("+string(s.Type)+")") {
			t.Errorf("step %s not named", s.Name)
		}
	}
}

// bigPlan is one image on 500 fleet machines.
func bigPlan(t *testing.T, n int) *plan.Plan {
	var b strings.Builder
	b.WriteString("version: 1\nname: big\nclanforge: {asid: 9}\nimages: [{name: game, id: 1}]\nmachines:\n  - {name: build, id: 1, labels: {role: build}}\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: m%04d, id: %d, labels: {role: fleet}}\n", i, 1000+i)
	}
	b.WriteString(`steps:
  - {name: update, type: update, where: 'machine.labels.role == "build"', desc: x, url: "s3://KEY:SECRET@b/x/"}
  - {name: diff, type: diff, needs: [update], where: 'machine.labels.role == "build"'}
  - {name: version, type: version, needs: [diff]}
  - {name: mirror, type: install, needs: [version], mirroring: true}
  - {name: install, type: install, needs: [mirror], where: 'machine.labels.role == "fleet"', mirroring: false, waves: ["1%", "10%", "100%"], max_failures: "2%"}
`)
	p, err := plan.Parse("big.yaml", []byte(b.String()), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLargePlanIsSummarizedUnlessAll(t *testing.T) {
	p := bigPlan(t, 500)
	var short, full bytes.Buffer
	d := Build(p, Options{ASID: 9})
	if err := d.Text(&short, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Text(&full, true); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(short.String(), "\n"); n > 80 {
		t.Errorf("the summarized preview of 500 machines has %d lines", n)
	}
	for _, w := range []string{"… and 497 more instances", "wave 1 of game: 5 machines", "wave 2 of game: 45 machines", "wave 3 of game: 450 machines", "aborts the rollout when more than 10 of its 500 instances fail", "warning: step install: wave 2"} {
		if !strings.Contains(short.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, short.String())
		}
	}
	for i := 0; i < 500; i++ {
		if name := fmt.Sprintf("install@m%04d/game", i); !strings.Contains(full.String(), name) {
			t.Fatalf("--all does not list %s", name)
		}
	}
	for _, out := range []string{short.String(), full.String()} {
		if strings.Contains(out, "SECRET") || strings.Contains(out, "KEY:") {
			t.Fatal("a credential in a URL was shown")
		}
	}
}

func TestJSONForm(t *testing.T) {
	p := load(t, "../examples/canary.yaml")
	var b bytes.Buffer
	if err := Build(p, Options{ASID: p.ASID}).JSON(&b); err != nil {
		t.Fatal(err)
	}
	var d Doc
	if err := json.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || len(d.Steps) != len(p.Steps) || d.Counts["install"] != 10 {
		t.Fatalf("doc %+v", d)
	}
	mut := 0
	for _, s := range d.Steps {
		for _, in := range s.Instances {
			for _, c := range in.Calls {
				if c.Mutating {
					mut++
				}
			}
		}
	}
	// update, diff, version, one mirror queue and 9 machine queues.
	if mut != 13 {
		t.Errorf("%d state-changing calls described, want 13", mut)
	}
}

// TestEnvValuesNeverShown: values read with ${env:NAME} appear as
// ${env:NAME} in every form of the preview, whatever key holds them.
func TestEnvValuesNeverShown(t *testing.T) {
	const secret = "hunter2-secret-token"
	src := `version: 1
name: env
description: "token ${env:ROLLOUT_TEST_TOKEN}"
clanforge: {asid: 9}
vars: {token: "${env:ROLLOUT_TEST_TOKEN}"}
images: [{name: game, id: 1}]
machines: [{name: b, id: 1}]
steps:
  - {name: update, type: update, desc: "with ${env:ROLLOUT_TEST_TOKEN}", url: "s3://${env:ROLLOUT_TEST_TOKEN}@b/x/"}
`
	p, err := plan.Parse("env.yaml", []byte(src), plan.Options{LookupEnv: func(n string) (string, bool) {
		if n == "ROLLOUT_TEST_TOKEN" {
			return secret, true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	d := Build(p, Options{ASID: 9})
	if err := d.Text(&text, true); err != nil {
		t.Fatal(err)
	}
	if err := d.JSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), js.String()} {
		if strings.Contains(out, secret) {
			t.Fatalf("an environment value was shown:\n%s", out)
		}
		if !strings.Contains(out, "${env:ROLLOUT_TEST_TOKEN}") {
			t.Errorf("the preview does not say where the value comes from:\n%s", out)
		}
	}
}
