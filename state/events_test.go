package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// recorder is an observer that writes down every call, in order.
type recorder struct {
	mu    sync.Mutex
	calls []string
	sum   *engine.Summary
	res   map[string]engine.Result
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}
func (r *recorder) RunStarted(i engine.RunInfo) {
	r.add("run %s %d %v %v", i.Plan, len(i.Instances), i.Instances[0], i.Resumed)
}
func (r *recorder) WaveStarted(step, image string, wave, waves int, in []string) {
	r.add("wave %s %s %d/%d %v", step, image, wave, waves, in)
}
func (r *recorder) InstanceStarted(id string, at time.Time) {
	r.add("start %s %s", id, at.Format(time.RFC3339))
}
func (r *recorder) JobProgress(id string, j engine.JobInfo) { r.add("progress %s %d", id, j.Progress) }
func (r *recorder) InstanceFinished(id string, res engine.Result) {
	r.mu.Lock()
	if r.res == nil {
		r.res = map[string]engine.Result{}
	}
	r.res[id] = res
	r.mu.Unlock()
	r.add("finished %s %s %v", id, res.Outcome, engine.ErrText(res.Err))
}
func (r *recorder) Aborting(reason string)        { r.add("aborting %s", reason) }
func (r *recorder) RequestCount(n int64)          { r.add("requests %d", n) }
func (r *recorder) Notice(n engine.Notice)        { r.add("notice %s", n.Text) }
func (r *recorder) WaitStarted(w engine.WaitInfo) { r.add("wait %s %s %d", w.ID, w.Message, w.Wave) }
func (r *recorder) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	r.add("ended %s %s %s %s", w.ID, d.Kind, d.By, d.Reason)
}
func (r *recorder) RunFinished(s engine.Summary) {
	r.mu.Lock()
	r.sum = &s
	r.mu.Unlock()
	r.add("finished run %s", s.Verdict)
}

func fullSummary() engine.Summary {
	return engine.Summary{
		Verdict: engine.VerdictAborted, Plan: "demo", Started: t0, Finished: t0.Add(time.Minute),
		Counts:      map[engine.Outcome]int{engine.Succeeded: 3, engine.Failed: 1, engine.Skipped: 2},
		Failures:    []engine.Failure{{Instance: "gate@game", Image: "game", Err: &engine.AbortError{By: "bob@desk", Reason: "bad canary"}}},
		AbortReason: "aborted by bob@desk: bad canary",
		Decisions: []engine.DecisionRecord{{Wait: engine.WaitInfo{ID: "install@game after wave 1", Kind: engine.WaitApproval, Step: "install",
			Image: "game", Wave: 0, Since: t0, OnTimeout: plan.OnTimeoutAbort},
			Decision: engine.Decision{Kind: engine.Approved, By: "alice@laptop", At: t0.Add(time.Second), Reason: "ok"}}},
		Unfinished: []engine.UnfinishedJob{{Instance: "install@m1/game", Job: engine.JobInfo{Kind: "install", ID: 9, State: 2, StateName: "Running"}}},
		Requests:   77,
		Targets: []engine.TargetSummary{
			{Machine: "m1", Image: "game", Outcome: engine.Failed, Err: errors.New("boom"), Elapsed: 3 * time.Second},
			{Machine: "m2", Image: "game", Outcome: engine.Skipped, Err: &engine.SkipError{Reason: "rollout aborted"}},
		},
		OnFailure: []engine.OnFailureRun{
			{Instance: "reject@game", Step: "reject", Image: "game", Outcome: engine.Succeeded, Detail: "no open diff", Noop: true},
			{Instance: "reject@m1/game", Step: "reject", Machine: "m1", Image: "game", Outcome: engine.Failed, Err: errors.New("refused")},
		},
	}
}

// play sends a run's events to obs.
func play(obs engine.Observer, sum engine.Summary) {
	obs.RunStarted(engine.RunInfo{Plan: "demo", Concurrency: 2, Targets: 2, Started: t0, Resumed: true,
		Instances: []engine.InstanceInfo{{ID: "install@m1/game", Step: "install", Type: "install", Machine: "m1", Image: "game", Wave: 0}}})
	obs.WaveStarted("install", "game", 0, 2, []string{"install@m1/game"})
	obs.InstanceStarted("install@m1/game", t0)
	for p := 0; p <= 100; p += 10 {
		obs.JobProgress("install@m1/game", engine.JobInfo{Kind: "install", ID: 9, State: 2, Progress: p})
	}
	obs.InstanceFinished("install@m1/game", engine.Result{Outcome: engine.Failed, Err: errors.New("boom"), Started: t0, Finished: t0.Add(time.Second),
		Job: &engine.JobInfo{Kind: "install", ID: 9, State: 6, StateName: "Failed"}})
	obs.JobProgress("install@m1/game", engine.JobInfo{Kind: "install", ID: 9, State: 6, Progress: 100})
	obs.InstanceFinished("gate@game", engine.Result{Outcome: engine.Skipped, Err: &engine.SkipError{Reason: "rollout aborted"}})
	obs.RequestCount(12)
	obs.Notice(engine.Notice{Text: "retrying imageinstall/status in 2s"})
	obs.WaitStarted(engine.WaitInfo{ID: "install@game after wave 1", Kind: engine.WaitApproval, Wave: 0, Message: "Go on?"})
	obs.WaitEnded(engine.WaitInfo{ID: "install@game after wave 1"}, engine.Decision{Kind: engine.Aborted, By: "bob@desk", Reason: "bad canary"})
	obs.Aborting("aborted by bob@desk: bad canary")
	obs.RunFinished(sum)
}

// TestEventLogReplaysWhatTheRunSaw: a watcher of the log gets the run's
// events in order (one instance's progress coalesced, never reordered
// around its end) and the very summary the run ended with, error kinds
// and on_failure no-ops included.
func TestEventLogReplaysWhatTheRunSaw(t *testing.T) {
	dir := t.TempDir()
	l, err := CreateEventLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	direct := &recorder{}
	sum := fullSummary()
	play(engine.Fanout(direct, l), sum)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := &recorder{}
	res, err := FollowEvents(context.Background(), dir, got, FollowOptions{PID: os.Getpid(), Alive: func() bool { return false }})
	if err != nil || !res.Finished {
		t.Fatalf("follow: %+v, %v", res, err)
	}
	if !reflect.DeepEqual(res.Summary, sum) {
		t.Fatalf("summary read back\n%#v\nwant\n%#v", res.Summary, sum)
	}
	// Progress is coalesced (latest wins) but keeps its place before the
	// instance's end; everything else is as the run saw it.
	var want []string
	for _, c := range direct.calls {
		if strings.HasPrefix(c, "progress install@m1/game") && c != "progress install@m1/game 100" {
			continue
		}
		want = append(want, c)
	}
	if !reflect.DeepEqual(got.calls, want) {
		t.Fatalf("replayed\n%s\nwant\n%s", strings.Join(got.calls, "\n"), strings.Join(want, "\n"))
	}
	var se *engine.SkipError
	if !errors.As(got.res["gate@game"].Err, &se) {
		t.Fatalf("a skip reason came back as %T", got.res["gate@game"].Err)
	}
}

// TestFollowWaitsForTheRunsOwnLog: a log left by an earlier run (another
// pid) is not shown as the run in progress; the watcher waits for the new
// one, and follows it as it grows.
func TestFollowWaitsForTheRunsOwnLog(t *testing.T) {
	dir := t.TempDir()
	old := `{"t":"log","v":1,"pid":1,"started":"2020-01-01T00:00:00Z"}` + "\n" + `{"t":"run_finished","summary":{"verdict":1,"plan":"old"}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, EventsName), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	got := &recorder{}
	type result struct {
		res FollowResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := FollowEvents(context.Background(), dir, got, FollowOptions{PID: os.Getpid(), Poll: 5 * time.Millisecond, Alive: func() bool { return true }})
		done <- result{r, err}
	}()
	time.Sleep(30 * time.Millisecond)
	l, err := CreateEventLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	play(l, fullSummary())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !r.res.Finished || r.res.Summary.Plan != "demo" {
		t.Fatalf("followed %+v, %v", r.res, r.err)
	}
}

// TestFollowEndsWhenTheRunDies: a run that lets its directory go without
// a summary ends the follow, not finished.
func TestFollowEndsWhenTheRunDies(t *testing.T) {
	dir := t.TempDir()
	l, err := CreateEventLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.RunStarted(engine.RunInfo{Plan: "demo", Instances: []engine.InstanceInfo{{ID: "a"}}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := &recorder{}
	res, err := FollowEvents(context.Background(), dir, got, FollowOptions{PID: os.Getpid(), Poll: time.Millisecond, Alive: func() bool { return false }})
	if err != nil || res.Finished || len(got.calls) != 1 {
		t.Fatalf("follow of a dead run: %+v %v %v", res, err, got.calls)
	}
	if _, err := FollowEvents(context.Background(), t.TempDir(), got, FollowOptions{Alive: func() bool { return false }}); !errors.Is(err, ErrNoEventLog) {
		t.Fatalf("no log: %v", err)
	}
}

// TestEventLogIsMasked: the log is a file other processes read; secrets
// never reach it.
func TestEventLogIsMasked(t *testing.T) {
	redact.AddSecret("s3cr3t-token-value")
	t.Cleanup(redact.ResetSecrets)
	dir := t.TempDir()
	l, _ := CreateEventLog(dir)
	l.InstanceFinished("update@b/game", engine.Result{Outcome: engine.Failed, Err: errors.New("GET s3://AKIA:s3cr3t-token-value@bucket failed")})
	l.Aborting("token s3cr3t-token-value refused")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, EventsName))
	if strings.Contains(string(b), "s3cr3t") {
		t.Fatalf("secret in the event log:\n%s", b)
	}
}

// TestEventLogCoalescesProgress: observer calls only queue, and the
// progress of one instance takes one place in the queue however often it
// comes, so that a busy run costs the log memory per instance, not per
// poll.
func TestEventLogCoalescesProgress(t *testing.T) {
	dir := t.TempDir()
	l, _ := CreateEventLog(dir)
	for i := 0; i < 100000; i++ {
		l.JobProgress(fmt.Sprintf("install@m%d/game", i%500), engine.JobInfo{Progress: i % 100})
	}
	l.mu.Lock()
	queued := len(l.queue)
	l.mu.Unlock()
	if queued > 500+1 { // and the header, if not written yet
		t.Fatalf("queued %d records for the progress of 500 instances", queued)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
