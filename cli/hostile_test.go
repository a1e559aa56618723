package cli

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/rollout/rollout/internal/hostile"
	"github.com/rollout/rollout/state"
)

// TestStatusHostile: a journal whose instance names, errors and job states
// carry escapes and the credentials in every encoding (as a hostile plan or
// an echoing server leaves them) prints nothing raw and no secret, as text
// and as JSON.
func TestStatusHostile(t *testing.T) {
	hostile.Register(t)
	dir := filepath.Join(t.TempDir(), "state")
	j, err := state.Open(dir, hostile.Name("plan"), "h", state.WithInstances([]string{"install@" + hostile.Name("eu-1") + "/game"}))
	if err != nil {
		t.Fatal(err)
	}
	_ = j.RunStart(false)
	inst := "diff@" + hostile.Name("build") + "/game"
	_ = j.Intent(inst+" imagediff/create#1", "/cfp/v1/imagediff/create", map[string]string{"imageid": "1"})
	_ = j.Result(inst+" imagediff/create#1", 77, nil)
	_ = j.Outcome(inst, "failed", hostile.Text(), &state.JobRecord{Kind: "diff", ID: 77, State: 4, StateName: hostile.StateName(), Error: hostile.Text()}, nil)
	j.Close()
	for _, asJSON := range []bool{false, true} {
		r := &rig{t: t}
		err := Status(context.Background(), r.env(), StatusOptions{StateDir: dir, JSON: asJSON})
		if err != nil {
			t.Fatal(err)
		}
		name := "status"
		if asJSON {
			name = "status --json"
		}
		hostile.Check(t, name, r.out.String(), !asJSON)
	}
}

// TestErrorsHostile: errors made from outside text (a plan path, an API
// error) are escaped and masked on their own, so that a newline in them
// cannot forge a line.
func TestErrorsHostile(t *testing.T) {
	hostile.Register(t)
	for _, err := range []error{
		failErr("rollout run: pre-flight: %v\nnothing was changed", errors.New(hostile.Text())),
		usageErr("rollout run: the last run of %q finished", hostile.Name("plan")),
		interruptedErr("interrupted while rejecting diff %d: %s", 7, hostile.StateName()),
	} {
		hostile.Check(t, "error", err.Error(), false)
	}
}
