package steps

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// TestEnvValuesMaskedInStepErrors: a value the plan read with ${env:NAME}
// that the API quotes back in a job error (whole, alone, or URL-encoded)
// leaves the step as ${env:NAME}: in the returned error, the output's job
// error and every progress report. The step does this itself, with nothing
// registered in the process-wide registry, so that removing its masking
// fails here.
func TestEnvValuesMaskedInStepErrors(t *testing.T) {
	redact.ResetSecrets()
	const secret = "hunter2/ENV+SECRET"
	src := strings.Replace(simPlan, `desc: "build ${vars.build}"`, `desc: "build ${env:BUILD_TAG}"`, 1)
	p, err := plan.Parse(t.Name()+".yaml", []byte(src), plan.Options{LookupEnv: func(n string) (string, bool) {
		return secret, n == "BUILD_TAG"
	}})
	if err != nil {
		t.Fatal(err)
	}
	jobErr := `desc "build ` + secret + `" refused: tag ` + secret + ` unknown (tag=` + url.QueryEscape(secret) + `)`
	e := simtest.Start(t, p, sim.Scenario{Speed: 400, Failures: []sim.Failure{{Kind: sim.KindUpdate, Times: 1, Error: jobErr}}},
		simtest.ReadAttempts(3))
	pol := PollPolicy{Min: 5 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	env := &Env{Client: e.Client, Journal: &MemJournal{}, Poll: pol, Installs: NewInstallWatcher(e.Client, pol)}
	var update *plan.Instance
	for _, in := range p.Instances {
		if in.Step.Type == plan.TypeUpdate {
			update = in
		}
	}
	var mu sync.Mutex
	var reported []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := Run(ctx, env, update, plan.Inputs{}, func(u JobUpdate) {
		mu.Lock()
		reported = append(reported, u.Job.Error)
		mu.Unlock()
	})
	if err == nil {
		t.Fatal("the update did not fail")
	}
	mu.Lock()
	texts := append([]string{err.Error(), out.Job.Error}, reported...)
	mu.Unlock()
	for _, text := range texts {
		for _, leak := range []string{secret, url.QueryEscape(secret), "hunter2"} {
			if strings.Contains(text, leak) {
				t.Errorf("%q shows the ${env:BUILD_TAG} value as %q", text, leak)
			}
		}
	}
	want := `desc "build ${env:BUILD_TAG}" refused: tag ${env:BUILD_TAG} unknown (tag=${env:BUILD_TAG})`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
}
