package clanforge_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"golang.org/x/time/rate"
)

// These tests hold issue 9 item 5: a state-changing call whose lost answer
// a read proves harmless is sent again, a bounded number of times, so a
// burst of 5xx does not fail a rollout; and the exactly-once guarantee
// holds when a lost answer's call was in fact applied. The simulator's own
// job and request records are the judge.

// resendClient is a client of the simulator that records its waits.
func (e *simEnv) resendClient(t *testing.T, w *waits, maxResends int) *clanforge.Client {
	t.Helper()
	c, err := clanforge.New(clanforge.Config{
		BaseURL: e.url, ASID: simASID, AccessKey: testAccess, SecretKey: testSecret,
		RateLimit: rate.Inf, MaxReadAttempts: 5, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		MaxResends: maxResends, OnWait: w.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// sends counts the requests the simulator saw for endpoint.
func (e *simEnv) sends(endpoint string) int {
	n := 0
	for _, r := range e.srv.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// pendingMirror makes a version of image B and returns its held mirror
// install job, ready to be queued.
func (e *simEnv) pendingMirror(t *testing.T, cx context.Context) *clanforge.Install {
	t.Helper()
	e.update(t, cx)
	d := e.diff(t, cx)
	v, err := e.c.CreateVersion(cx, d.ID, clanforge.VersionOptions{Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	e.poll(t, "version", func() (*clanforge.Job, error) { return e.c.VersionStatus(cx, v.ID) })
	ins, err := e.c.InstallStatus(cx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ins {
		if ins[i].Mirroring && ins[i].TargetVersionID == v.ID && ins[i].State == clanforge.StatePending {
			return &ins[i]
		}
	}
	t.Fatalf("no pending mirror job for version %d: %+v", v.ID, ins)
	return nil
}

// TestBurstOf5xxIsSurvived: each state-changing call that a read can prove
// harmless meets a burst of four 5xx answers (the simulator refuses before
// doing any work). The call is sent five times, each resend reported, and
// the simulator made exactly one job (or one rejection, one queueing).
func TestBurstOf5xxIsSurvived(t *testing.T) {
	const burst = 4
	tests := []struct {
		endpoint string
		// run makes the call under test with c and checks its outcome
		// against the simulator.
		run func(t *testing.T, e *simEnv, c *clanforge.Client, cx context.Context)
	}{
		{sim.EPDiffCreate, func(t *testing.T, e *simEnv, c *clanforge.Client, cx context.Context) {
			e.update(t, cx)
			j, err := c.CreateDiff(cx, simImgB, simBuildbox)
			if err != nil {
				t.Fatalf("CreateDiff: %v", err)
			}
			if n := e.countJobs(sim.KindDiff); n != 1 {
				t.Fatalf("%d diff jobs, want 1", n)
			}
			if kind, id, _ := c.LockHolder(cx, simImgB); kind != "diff" || id != j.ID {
				t.Errorf("lock %s %d, want the returned diff %d", kind, id, j.ID)
			}
		}},
		{sim.EPDiffReject, func(t *testing.T, e *simEnv, c *clanforge.Client, cx context.Context) {
			e.update(t, cx)
			d := e.diff(t, cx)
			if _, err := c.RejectDiff(cx, d.ID, true); err != nil {
				t.Fatalf("RejectDiff: %v", err)
			}
			if kind, _, _ := c.LockHolder(cx, simImgB); kind != "" {
				t.Errorf("image still locked by a %s", kind)
			}
			if n := e.countJobs(sim.KindUninstall); n != 1 {
				t.Errorf("%d reinstall jobs, want 1", n)
			}
		}},
		{sim.EPInstallQueue, func(t *testing.T, e *simEnv, c *clanforge.Client, cx context.Context) {
			m := e.pendingMirror(t, cx)
			q, err := c.QueueInstall(cx, m.ID, true)
			if err != nil || q.AlreadyQueued {
				t.Fatalf("QueueInstall: %+v %v, want queued by the last send", q, err)
			}
			if j, ok := e.srv.Job(sim.KindMirror, m.ID); !ok || j.Held {
				t.Fatalf("mirror job %d: %+v (found %v), want queued", m.ID, j, ok)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			e := newSim(t, sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{
				{Endpoint: tt.endpoint, Fault: sim.FaultServerError, Count: burst},
			}}})
			w := &waits{}
			c := e.resendClient(t, w, 0) // the default MaxResends
			tt.run(t, e, c, ctx(t))
			if n := e.sends(tt.endpoint); n != burst+1 {
				t.Errorf("%s sent %d times, want %d (the burst, then the one that worked)", tt.endpoint, n, burst+1)
			}
			var resends []clanforge.Wait
			for _, x := range w.list() {
				if x.Kind == clanforge.WaitResend {
					resends = append(resends, x)
				}
			}
			if len(resends) != burst || resends[0].Attempt != 2 || !strings.Contains(resends[0].Reason, "HTTP 500") ||
				!strings.Contains(resends[0].Reason, "so the call took no effect") {
				t.Errorf("resend waits %+v, want %d, each with its proof", resends, burst)
			}
		})
	}
}

// TestBurstBeyondTheResends: a burst longer than the resends allowed ends
// in a *NotAppliedError that says the call took no effect (not "could not
// be settled"); nothing was made, and a later call makes exactly one diff.
func TestBurstBeyondTheResends(t *testing.T) {
	e := newSim(t, sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{
		{Endpoint: sim.EPDiffCreate, Fault: sim.FaultServerError, Count: 3},
	}}})
	c := e.resendClient(t, &waits{}, 2)
	cx := ctx(t)
	e.update(t, cx)
	_, err := c.CreateDiff(cx, simImgB, simBuildbox)
	var na *clanforge.NotAppliedError
	if !errors.As(err, &na) || na.Sends != 3 || errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want not applied after 3 sends", err)
	}
	if msg := err.Error(); strings.Contains(msg, "could not be settled") || !strings.Contains(msg, "took no effect") ||
		!strings.Contains(msg, "image 5531's lock is unchanged (no lock)") {
		t.Errorf("message %q", msg)
	}
	if n := e.countJobs(sim.KindDiff); n != 0 {
		t.Fatalf("%d diff jobs, want none", n)
	}
	if _, err := c.CreateDiff(cx, simImgB, simBuildbox); err != nil {
		t.Fatal(err)
	}
	if n := e.countJobs(sim.KindDiff); n != 1 {
		t.Fatalf("%d diff jobs, want 1", n)
	}
}

// TestResendKeepsExactlyOnce: two sends refused with 5xx (no work), then a
// send the simulator applies but whose answer it drops. The settle read
// finds the job that send made and adopts it: three sends, one job, never a
// fourth send.
func TestResendKeepsExactlyOnce(t *testing.T) {
	faults := func(ep string) sim.Scenario {
		return sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{
			{Endpoint: ep, Fault: sim.FaultServerError, Count: 2},
			{Endpoint: ep, Fault: sim.FaultDrop, Skip: 2},
		}}}
	}
	t.Run("diff create", func(t *testing.T) {
		e := newSim(t, faults(sim.EPDiffCreate))
		c := e.resendClient(t, &waits{}, 0)
		cx := ctx(t)
		e.update(t, cx)
		j, err := c.CreateDiff(cx, simImgB, simBuildbox)
		if err != nil {
			t.Fatal(err)
		}
		jobs := 0
		for _, sj := range e.srv.Jobs() {
			if sj.Kind == sim.KindDiff {
				jobs++
				if sj.ID != j.ID {
					t.Errorf("the simulator's diff is %d, the client returned %d", sj.ID, j.ID)
				}
			}
		}
		if jobs != 1 || e.sends(sim.EPDiffCreate) != 3 {
			t.Fatalf("%d diff jobs after %d sends, want 1 after 3", jobs, e.sends(sim.EPDiffCreate))
		}
	})
	t.Run("install queue", func(t *testing.T) {
		e := newSim(t, faults(sim.EPInstallQueue))
		c := e.resendClient(t, &waits{}, 0)
		cx := ctx(t)
		m := e.pendingMirror(t, cx)
		q, err := c.QueueInstall(cx, m.ID, true)
		if err != nil || !q.AlreadyQueued {
			t.Fatalf("QueueInstall: %+v %v, want settled as queued", q, err)
		}
		if e.sends(sim.EPInstallQueue) != 3 {
			t.Fatalf("queue sent %d times, want 3", e.sends(sim.EPInstallQueue))
		}
		if j, ok := e.srv.Job(sim.KindMirror, m.ID); !ok || j.Held {
			t.Fatalf("mirror job %d: %+v", m.ID, j)
		}
	})
}
