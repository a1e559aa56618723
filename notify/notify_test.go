package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/notify"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
	"github.com/rollout/rollout/state"
)

// receiver is a local webhook: it records every POST body and answers
// with the statuses of fail first.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	fail   []int
	delay  time.Duration
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-req.Context().Done():
				return
			}
		}
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.fail) > 0 {
			code := r.fail[0]
			r.fail = r.fail[1:]
			w.WriteHeader(code)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body is not JSON: %q", b)
		}
		r.bodies = append(r.bodies, m)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		out = append(out, b["text"].(string))
	}
	return out
}

func hook(url, format string, events ...string) *plan.Notify {
	return &plan.Notify{URL: plan.Value{Resolved: url, Display: "${env:HOOK}"}, Format: format, Events: events}
}

var all = []string{"started", "wave", "approval", "approved", "failed", "aborted", "finished"}

// drive sends a run's events through o: a start, two waves, an approval
// and its decision, a failure, and the end.
func drive(o engine.Observer, resumed bool) {
	t0 := time.Date(2026, 12, 1, 14, 2, 0, 0, time.UTC)
	o.RunStarted(engine.RunInfo{Plan: "p", Concurrency: 4, Targets: 3, Started: t0, Resumed: resumed})
	o.WaveStarted("install", "game-b", 0, 2, []string{"install@eu-1/game-b"})
	w := engine.WaitInfo{ID: "install@game-b after wave 1", Kind: engine.WaitApproval, Step: "install", Image: "game-b", Since: t0,
		Message: "go on?", Progress: "1 of 3 machines on image version 7, 0 failed"}
	o.WaitStarted(w)
	o.WaitEnded(w, engine.Decision{Kind: engine.Approved, By: "alice@laptop", At: t0.Add(time.Minute)})
	o.WaveStarted("install", "game-b", 1, 2, []string{"install@eu-2/game-b", "install@us-1/game-b"})
	o.InstanceFinished("install@us-1/game-b", engine.Result{Outcome: engine.Failed, Err: errors.New("disk full")})
	o.InstanceFinished("install@eu-2/game-b", engine.Result{Outcome: engine.Succeeded})
	o.RunFinished(engine.Summary{Plan: "p", Verdict: engine.VerdictFailed, Started: t0, Finished: t0.Add(5 * time.Minute),
		Counts: map[engine.Outcome]int{engine.Succeeded: 2, engine.Failed: 1}})
}

func closeWithin(n *notify.Notifier, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n.Close(ctx)
}

func TestOneMessagePerEventAndNoneRepeatedAfterAResume(t *testing.T) {
	slack, js := newReceiver(t), newReceiver(t)
	p := &plan.Plan{Name: "p", Notify: []*plan.Notify{hook(slack.srv.URL, "slack", all...), hook(js.srv.URL, "json", "approval", "finished")}}
	j, err := state.Open(t.TempDir(), "p", "h")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cmds := func(w engine.WaitInfo) (string, string) {
		return "rollout approve p.yaml --step " + w.Step, "rollout abort p.yaml"
	}
	n := notify.New(p, notify.Options{Journal: j, Commands: cmds, Backoff: time.Millisecond})
	drive(n, false)
	closeWithin(n, 10*time.Second)

	got := slack.texts()
	want := []string{"started", "wave 1/2", "waits for approval", "approved by alice@laptop", "wave 2/2", "install@us-1/game-b failed: disk full", "finished: failed"}
	if len(got) != len(want) {
		t.Fatalf("%d slack messages, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) || !strings.Contains(got[i], "*p*") {
			t.Errorf("message %d %q lacks %q or the plan's name", i, got[i], w)
		}
	}
	if !strings.Contains(got[2], "rollout approve p.yaml --step install") || !strings.Contains(got[2], "rollout abort p.yaml") {
		t.Errorf("the approval message lacks the commands: %q", got[2])
	}
	js.mu.Lock()
	if len(js.bodies) != 2 || js.bodies[0]["event"] != "approval" || js.bodies[1]["event"] != "finished" || js.bodies[0]["plan"] != "p" {
		t.Errorf("json webhook got %v", js.bodies)
	}
	data, _ := js.bodies[0]["data"].(map[string]any)
	if data["type"] != "wait_started" {
		t.Errorf("json message does not carry the run's event: %v", js.bodies[0])
	}
	js.mu.Unlock()

	// A resumed run of the same rollout sends nothing already sent.
	n2 := notify.New(p, notify.Options{Journal: j, Commands: cmds, Backoff: time.Millisecond})
	drive(n2, true)
	closeWithin(n2, 10*time.Second)
	if again := slack.texts(); len(again) != len(want) {
		t.Fatalf("the resumed run sent %d more:\n%s", len(again)-len(want), strings.Join(again[len(want):], "\n"))
	}
}

// TestDeliveryNeverHoldsTheRunBack: a receiver that is slow, or down, costs
// the observer calls nothing; a message that cannot be delivered is a
// warning that does not show the URL.
func TestDeliveryNeverHoldsTheRunBack(t *testing.T) {
	slow := newReceiver(t)
	slow.delay = 2 * time.Second
	p := &plan.Plan{Name: "p", Notify: []*plan.Notify{
		hook(slow.srv.URL+"/T0SECRET/hook", "slack", all...),
		hook("http://127.0.0.1:1/T1SECRET/down", "slack", all...),
	}}
	var mu sync.Mutex
	var warnings []string
	n := notify.New(p, notify.Options{Backoff: time.Millisecond, Attempts: 2,
		Client: &http.Client{Timeout: 200 * time.Millisecond},
		Warn:   func(s string) { mu.Lock(); warnings = append(warnings, s); mu.Unlock() }})
	start := time.Now()
	drive(n, false)
	if el := time.Since(start); el > time.Second {
		t.Fatalf("the observer calls took %s: delivery held the run back", el)
	}
	closeWithin(n, 1500*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) == 0 {
		t.Fatal("an undeliverable webhook gave no warning")
	}
	for _, w := range warnings {
		if strings.Contains(w, "SECRET") || strings.Contains(w, "127.0.0.1:1") {
			t.Errorf("a warning shows the webhook URL: %q", w)
		}
	}
	if s := redact.String(slow.srv.URL + "/T0SECRET/hook"); strings.Contains(s, "T0SECRET") {
		t.Errorf("the webhook URL is not masked by the output boundary: %q", s)
	}
}

// TestRetriesThenDelivers: a receiver that fails twice gets the message on
// the third send, once.
func TestRetriesThenDelivers(t *testing.T) {
	r := newReceiver(t)
	r.fail = []int{503, 500}
	p := &plan.Plan{Name: "p", Notify: []*plan.Notify{hook(r.srv.URL, "slack", "started")}}
	n := notify.New(p, notify.Options{Backoff: time.Millisecond})
	n.RunStarted(engine.RunInfo{Plan: "p", Targets: 1, Concurrency: 1})
	closeWithin(n, 5*time.Second)
	if got := r.texts(); len(got) != 1 {
		t.Fatalf("delivered %d times", len(got))
	}
}

// TestAutoApproveSendsApprovedOnly: with --auto-approve nobody is asked, so
// no approval message goes out; approved does.
func TestAutoApproveSendsApprovedOnly(t *testing.T) {
	r := newReceiver(t)
	p := &plan.Plan{Name: "p", Notify: []*plan.Notify{hook(r.srv.URL, "slack", "approval", "approved")}}
	n := notify.New(p, notify.Options{Backoff: time.Millisecond, AutoApprove: true})
	w := engine.WaitInfo{ID: "go_live@game-b", Kind: engine.WaitApproval, Step: "go_live", Image: "game-b"}
	n.WaitStarted(w)
	n.WaitEnded(w, engine.Decision{Kind: engine.AutoApproved, By: "--auto-approve"})
	closeWithin(n, 5*time.Second)
	got := r.texts()
	if len(got) != 1 || !strings.Contains(got[0], "approved by --auto-approve") {
		t.Fatalf("messages %q", got)
	}
}
