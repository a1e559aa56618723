package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/rollout/rollout/redact"
)

// secretsPlan reads TOKEN, KEY, USER and TAG from the environment in every
// kind of place a value can be interpolated (reject steps, the only kind
// on_failure allows, have none).
const secretsPlan = `version: 1
name: t
description: "token ${env:TOKEN}"
vars: {tok: "${env:TOKEN}", n: 3, tag: "v-${env:TAG}-x", lit: "cost $${HOME}"}
images: [{name: img, id: 1}]
machines:
  - {name: b, id: 1, labels: {role: build}}
  - {name: f, id: 2, labels: {role: fleet}}
steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "d ${vars.tok} and ${env:KEY}"
    url: "s3://${env:USER}:${env:KEY}@bucket/x/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
  - name: version
    type: version
    needs: [diff]
    game_build: "${env:TAG}${env:KEY}"
  - name: install
    type: install
    needs: [version]
    mirroring: true
`

var secretsEnv = map[string]string{
	"TOKEN": "hunter2-TOKEN",
	"KEY":   "k3y%2Fwith+chars",
	"USER":  "AKIAUSER",
	"TAG":   "1.4.2-rc",
}

func TestPlanSecrets(t *testing.T) {
	p, err := Parse("t.yaml", []byte(secretsPlan), Options{LookupEnv: func(n string) (string, bool) {
		v, ok := secretsEnv[n]
		return v, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Secrets()
	has := func(value, label string) bool { return slices.Contains(got, redact.Secret{Value: value, Label: label}) }
	for _, want := range []redact.Secret{
		{Value: "hunter2-TOKEN", Label: "${env:TOKEN}"},
		{Value: "k3y%2Fwith+chars", Label: "${env:KEY}"},
		{Value: "1.4.2-rc", Label: "${env:TAG}"},
		// The URL's user-info is masked as a whole in its Display; its
		// user and password are secrets each.
		{Value: "AKIAUSER:k3y%2Fwith+chars", Label: redact.Mask},
		{Value: "AKIAUSER"},
		{Value: "k3y%2Fwith+chars"},
		// Two touching values cannot be told apart: their concatenation.
		{Value: "1.4.2-rck3y%2Fwith+chars", Label: "${env:TAG}${env:KEY}"},
		// Whole values, labelled as the plan shows them.
		{Value: "d hunter2-TOKEN and k3y%2Fwith+chars", Label: "d ${env:TOKEN} and ${env:KEY}"},
		{Value: "token hunter2-TOKEN", Label: "token ${env:TOKEN}"},
	} {
		if !has(want.Value, want.Label) {
			t.Errorf("Secrets() lacks %+v", want)
		}
	}
	for _, s := range got {
		if s.Value == "3" || strings.Contains(s.Value, "HOME") {
			t.Errorf("Secrets() holds %+v, which is no secret", s)
		}
	}
	// Every value read from the environment is among them: registered, no
	// output shows it.
	redact.ResetSecrets()
	t.Cleanup(redact.ResetSecrets)
	redact.Register(got...)
	for name, v := range secretsEnv {
		if out := redact.Terminal("echo: " + v + " / " + strings.ReplaceAll(v, "%", "%25")); strings.Contains(out, v) || strings.Contains(out, "k3y%252F") {
			t.Errorf("${env:%s} survives: %q", name, out)
		}
	}
}

func TestValueSecrets(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		want []redact.Secret
	}{
		{"shown as is", Value{Resolved: "build 1", Display: "build 1"}, nil},
		{"only a $${ escape", Value{Resolved: "a ${b}", Display: "a $${b}"}, nil},
		{"one env value", Value{Resolved: "build 1.4.2", Display: "build ${env:V}"},
			[]redact.Secret{{Value: "build 1.4.2", Label: "build ${env:V}"}, {Value: "1.4.2", Label: "${env:V}"}}},
		{"env value next to an escape", Value{Resolved: "${x}-secret1", Display: "$${x}-${env:S}"},
			[]redact.Secret{{Value: "${x}-secret1", Label: "$${x}-${env:S}"}, {Value: "secret1", Label: "${env:S}"}}},
		{"ambiguous: both readings", Value{Resolved: "a-b-c", Display: "${env:X}-${env:Y}"},
			[]redact.Secret{{Value: "a-b-c", Label: "${env:X}-${env:Y}"}, {Value: "a", Label: "${env:X}"}, {Value: "b-c", Label: "${env:Y}"},
				{Value: "a-b", Label: "${env:X}"}, {Value: "c", Label: "${env:Y}"}}},
		// A webhook URL masked whole: no user and password are read out
		// of it ("https" would be no secret).
		{"a URL masked whole", Value{Resolved: "https://hooks.example.com/T1/B2", Display: "***"},
			[]redact.Secret{{Value: "https://hooks.example.com/T1/B2", Label: "***"}}},
		{"query parameter", Value{Resolved: "https://h/x?token=abc123&a=1", Display: "https://h/x?token=***&a=1"},
			[]redact.Secret{{Value: "https://h/x?token=abc123&a=1", Label: "https://h/x?token=***&a=1"}, {Value: "abc123", Label: "***"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Secrets(); !slices.Equal(got, tt.want) {
				t.Errorf("Secrets() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestWebhookFromEnvironmentSecrets: a notify url built around a value
// from the environment ("${env:HOOK}/slack") shows masked whole; the
// environment value is a secret labelled with its name, and no part of
// the URL's shape ("http", "//127.0.0.1…") becomes one, which would mask
// every "http" of every output.
func TestWebhookFromEnvironmentSecrets(t *testing.T) {
	src := strings.Replace(secretsPlan, "steps:\n", "notify:\n  - {url: \"${env:HOOK}/slack\", events: [finished]}\nsteps:\n", 1)
	env := map[string]string{"HOOK": "http://127.0.0.1:8099/hook"}
	for k, v := range secretsEnv {
		env[k] = v
	}
	p, err := Parse("t.yaml", []byte(src), Options{LookupEnv: func(n string) (string, bool) { v, ok := env[n]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notify) != 1 || p.Notify[0].URL.Display != redact.Mask {
		t.Fatalf("notify %+v", p.Notify)
	}
	got := p.Secrets()
	for _, want := range []redact.Secret{
		{Value: "http://127.0.0.1:8099/hook/slack", Label: redact.Mask},
		{Value: "http://127.0.0.1:8099/hook", Label: "${env:HOOK}"},
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() lacks %+v: %+v", want, got)
		}
	}
	for _, s := range got {
		if !strings.Contains(s.Value, "127.0.0.1") && strings.HasPrefix("http://127.0.0.1:8099/hook/slack", s.Value) {
			t.Errorf("Secrets() holds %+v, a piece of the URL's shape", s)
		}
	}
	redact.ResetSecrets()
	t.Cleanup(redact.ResetSecrets)
	redact.Register(got...)
	if out := redact.Terminal("see https://docs.example.com and http://127.0.0.1:8099/hook"); out != "see https://docs.example.com and ${env:HOOK}" {
		t.Errorf("Terminal = %q", out)
	}
}
