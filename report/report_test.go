package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 22, 15, 4, 5, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func job(kind string, id int64, state int, progress int) engine.JobInfo {
	names := map[int]string{1: "Created", 2: "Pending", 3: "Queued", 4: "Running", 5: "Completed", 6: "Failed", 7: "Squashed"}
	return engine.JobInfo{Kind: kind, ID: id, State: state, StateName: names[state], Progress: progress}
}

var instances = []engine.InstanceInfo{
	{ID: "update@build-1/game-b", Step: "update", Type: "update", Machine: "build-1", Image: "game-b", Wave: -1},
	{ID: "diff@build-1/game-b", Step: "diff", Type: "diff", Machine: "build-1", Image: "game-b", Wave: -1},
	{ID: "version@game-b", Step: "version", Type: "version", Image: "game-b", Wave: -1},
	{ID: "install@fleet-1/game-b", Step: "install", Type: "install", Machine: "fleet-1", Image: "game-b", Wave: 0},
	{ID: "install@fleet-2/game-b", Step: "install", Type: "install", Machine: "fleet-2", Image: "game-b", Wave: 1},
	{ID: "install@fleet-3/game-b", Step: "install", Type: "install", Machine: "fleet-3", Image: "game-b", Wave: 1},
	{ID: "reject@build-1/game-b", Step: "reject", Type: "reject", Machine: "build-1", Image: "game-b", Wave: -1, OnFailure: true},
}

// scenario drives an observer through a synthetic run and returns the
// number of observer calls it made.
type scenario func(o engine.Observer, c *fakeClock) int

// buildAndVersion is the common start: update, diff and version succeed.
func buildAndVersion(o engine.Observer, c *fakeClock) int {
	calls := 0
	call := func(f func()) { f(); calls++ }
	call(func() {
		o.RunStarted(engine.RunInfo{Plan: "weekly", Concurrency: 2, Instances: instances, Targets: 4, Started: c.Now()})
	})
	s := c.Advance(time.Second)
	call(func() { o.InstanceStarted("update@build-1/game-b", s) })
	call(func() { o.JobProgress("update@build-1/game-b", job("update", 101, 1, 0)) })
	c.Advance(2 * time.Second)
	running := job("update", 101, 4, 5)
	running.ETA = c.Now().Add(90 * time.Second)
	call(func() { o.JobProgress("update@build-1/game-b", running) })
	// Polls every few seconds; only the 25% steps are worth a line.
	for _, p := range []int{10, 20, 26, 30, 49, 51, 74, 76, 99} {
		c.Advance(5 * time.Second)
		call(func() { o.JobProgress("update@build-1/game-b", job("update", 101, 4, p)) })
	}
	c.Advance(3 * time.Second)
	call(func() { o.JobProgress("update@build-1/game-b", job("update", 101, 5, 100)) })
	call(func() { o.RequestCount(14) })
	call(func() {
		o.InstanceFinished("update@build-1/game-b", engine.Result{Outcome: engine.Succeeded, Started: s,
			Finished: c.Now(), Job: ptr(job("update", 101, 5, 100))})
	})
	s = c.Advance(time.Second)
	call(func() { o.InstanceStarted("diff@build-1/game-b", s) })
	call(func() { o.JobProgress("diff@build-1/game-b", job("diff", 202, 4, 0)) })
	c.Advance(12 * time.Second)
	call(func() { o.JobProgress("diff@build-1/game-b", job("diff", 202, 5, 100)) })
	call(func() {
		o.InstanceFinished("diff@build-1/game-b", engine.Result{Outcome: engine.Succeeded, Started: s,
			Finished: c.Now(), Detail: "3 added, 1 modified, 0 removed"})
	})
	s = c.Advance(time.Second)
	call(func() { o.InstanceStarted("version@game-b", s) })
	call(func() { o.JobProgress("version@game-b", job("version", 303, 2, 0)) })
	c.Advance(20 * time.Second)
	call(func() { o.JobProgress("version@game-b", job("version", 303, 5, 100)) })
	call(func() {
		o.InstanceFinished("version@game-b", engine.Result{Outcome: engine.Succeeded, Started: s, Finished: c.Now()})
	})
	return calls
}

func ptr[T any](v T) *T { return &v }

// aborted: the first install wave fails, the budget is exceeded, the
// second wave never starts and the diff's reject runs.
func aborted(o engine.Observer, c *fakeClock) int {
	start := c.Now()
	calls := buildAndVersion(o, c)
	call := func(f func()) { f(); calls++ }
	c.Advance(time.Second)
	call(func() { o.WaveStarted("install", "game-b", 0, 2, []string{"install@fleet-1/game-b"}) })
	s := c.Now()
	call(func() { o.InstanceStarted("install@fleet-1/game-b", s) })
	call(func() { o.JobProgress("install@fleet-1/game-b", job("install", 4242, 3, 0)) })
	c.Advance(30 * time.Second)
	failed := job("install", 4242, 6, 40)
	failed.Error = "disk full"
	call(func() { o.JobProgress("install@fleet-1/game-b", failed) })
	r := engine.Result{Outcome: engine.Failed, Err: errors.New("install job 4242 failed: disk full"), Started: s, Finished: c.Now(), Job: &failed}
	call(func() { o.InstanceFinished("install@fleet-1/game-b", r) })
	call(func() { o.Aborting("1 install failure exceeds max_failures 0") })
	for _, id := range []string{"install@fleet-2/game-b", "install@fleet-3/game-b"} {
		call(func() {
			o.InstanceFinished(id, engine.Result{Outcome: engine.Skipped, Err: errors.New("the rollout aborted before it started")})
		})
	}
	rs := c.Advance(time.Second)
	call(func() { o.InstanceStarted("reject@build-1/game-b", rs) })
	c.Advance(2 * time.Second)
	call(func() {
		o.InstanceFinished("reject@build-1/game-b", engine.Result{Outcome: engine.Succeeded, Started: rs, Finished: c.Now()})
	})
	call(func() { o.RequestCount(57) })
	end := c.Advance(time.Second)
	call(func() {
		o.RunFinished(engine.Summary{
			Plan: "weekly", Started: start, Finished: end,
			Counts:      map[engine.Outcome]int{engine.Succeeded: 4, engine.Failed: 1, engine.Skipped: 2},
			Failures:    []engine.Failure{{Instance: "install@fleet-1/game-b", Machine: "fleet-1", Image: "game-b", Err: r.Err}},
			Verdict:     engine.VerdictAborted,
			AbortReason: "1 install failure exceeds max_failures 0",
			Requests:    57,
			Targets: []engine.TargetSummary{
				{Machine: "build-1", Image: "game-b", Outcome: engine.Succeeded, Elapsed: 56 * time.Second},
				{Image: "game-b", Outcome: engine.Succeeded, Elapsed: 20 * time.Second},
				{Machine: "fleet-1", Image: "game-b", Outcome: engine.Failed, Err: r.Err, Elapsed: 30 * time.Second},
				{Machine: "fleet-2", Image: "game-b", Outcome: engine.Skipped, Err: errors.New("the rollout aborted before it started")},
				{Machine: "fleet-3", Image: "game-b", Outcome: engine.Skipped, Err: errors.New("the rollout aborted before it started")},
			},
			OnFailure: []engine.OnFailureRun{{Instance: "reject@build-1/game-b", Machine: "build-1", Image: "game-b",
				Outcome: engine.Succeeded, Detail: "nothing to reject: no diff of this run was still open"}},
		})
	})
	return calls
}

// interrupted: Ctrl-C while the second wave's installs run.
func interrupted(o engine.Observer, c *fakeClock) int {
	start := c.Now()
	calls := buildAndVersion(o, c)
	call := func(f func()) { f(); calls++ }
	c.Advance(time.Second)
	call(func() { o.WaveStarted("install", "game-b", 0, 2, []string{"install@fleet-1/game-b"}) })
	s := c.Now()
	call(func() { o.InstanceStarted("install@fleet-1/game-b", s) })
	c.Advance(40 * time.Second)
	call(func() { o.JobProgress("install@fleet-1/game-b", job("install", 4242, 5, 100)) })
	call(func() {
		o.InstanceFinished("install@fleet-1/game-b", engine.Result{Outcome: engine.Succeeded, Started: s, Finished: c.Now()})
	})
	c.Advance(time.Second)
	call(func() {
		o.WaveStarted("install", "game-b", 1, 2, []string{"install@fleet-2/game-b", "install@fleet-3/game-b"})
	})
	s = c.Now()
	var unfinished []engine.UnfinishedJob
	for i, id := range []string{"install@fleet-2/game-b", "install@fleet-3/game-b"} {
		j := job("install", int64(4243+i), 4, 30+20*i)
		call(func() { o.InstanceStarted(id, s) })
		call(func() { o.JobProgress(id, j) })
		unfinished = append(unfinished, engine.UnfinishedJob{Instance: id, Job: j})
	}
	c.Advance(15 * time.Second)
	for _, u := range unfinished {
		call(func() {
			o.InstanceFinished(u.Instance, engine.Result{Outcome: engine.Cancelled, Err: errors.New("interrupted"), Started: s,
				Finished: c.Now(), Job: ptr(u.Job)})
		})
	}
	call(func() {
		o.InstanceFinished("reject@build-1/game-b", engine.Result{Outcome: engine.Skipped, Err: errors.New("interrupted before it started")})
	})
	end := c.Advance(time.Second)
	call(func() {
		o.RunFinished(engine.Summary{
			Plan: "weekly", Started: start, Finished: end,
			Counts:     map[engine.Outcome]int{engine.Succeeded: 4, engine.Cancelled: 2, engine.Skipped: 1},
			Verdict:    engine.VerdictInterrupted,
			Unfinished: unfinished,
			Requests:   61,
			Targets: []engine.TargetSummary{
				{Machine: "build-1", Image: "game-b", Outcome: engine.Succeeded, Elapsed: 56 * time.Second},
				{Image: "game-b", Outcome: engine.Succeeded, Elapsed: 20 * time.Second},
				{Machine: "fleet-1", Image: "game-b", Outcome: engine.Succeeded, Elapsed: 40 * time.Second},
				{Machine: "fleet-2", Image: "game-b", Outcome: engine.Cancelled, Err: errors.New("interrupted"), Elapsed: 15 * time.Second},
				{Machine: "fleet-3", Image: "game-b", Outcome: engine.Cancelled, Err: errors.New("interrupted"), Elapsed: 15 * time.Second},
			},
		})
	})
	return calls
}

var scenarios = []struct {
	name string
	run  scenario
}{
	{"aborted", aborted},
	{"interrupted", interrupted},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestPlainGolden(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &fakeClock{t: t0}
			p := NewPlain(&buf, WithClock(c.Now))
			sc.run(p, c)
			if err := p.Err(); err != nil {
				t.Fatal(err)
			}
			golden(t, sc.name+".txt", buf.Bytes())
		})
	}
}

func TestJSONEveryCallIsOneVersionedLine(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &fakeClock{t: t0}
			calls := sc.run(NewJSON(&buf, WithClock(c.Now)), c)
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != calls {
				t.Fatalf("%d lines for %d observer calls", len(lines), calls)
			}
			var last Header
			for i, l := range lines {
				var h struct {
					V    *int    `json:"v"`
					Type *string `json:"type"`
					Time *string `json:"time"`
				}
				if err := json.Unmarshal([]byte(l), &h); err != nil {
					t.Fatalf("line %d %q: %v", i+1, l, err)
				}
				if h.V == nil || *h.V != EventVersion || h.Type == nil || *h.Type == "" || h.Time == nil {
					t.Fatalf("line %d %q lacks v, type or time", i+1, l)
				}
				if _, err := time.Parse(time.RFC3339Nano, *h.Time); err != nil {
					t.Errorf("line %d: time %q: %v", i+1, *h.Time, err)
				}
				json.Unmarshal([]byte(l), &last)
			}
			if last.Type != EventRunFinished {
				t.Errorf("last event is %q, want run_finished", last.Type)
			}
			var fin RunFinishedEvent
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &fin); err != nil {
				t.Fatal(err)
			}
			if fin.Status != sc.name || len(fin.Targets) != 5 || fin.Requests == 0 {
				t.Errorf("run_finished = %+v", fin)
			}
			golden(t, sc.name+".jsonl", buf.Bytes())
		})
	}
}

func TestPlainThrottlesProgress(t *testing.T) {
	tests := []struct {
		name string
		jobs []engine.JobInfo
		want int
	}{
		{"same state, small steps", []engine.JobInfo{job("diff", 1, 4, 1), job("diff", 1, 4, 5), job("diff", 1, 4, 20), job("diff", 1, 4, 24)}, 1},
		{"each quarter", []engine.JobInfo{job("diff", 1, 4, 0), job("diff", 1, 4, 25), job("diff", 1, 4, 50), job("diff", 1, 4, 75)}, 4},
		{"going back does not repeat", []engine.JobInfo{job("diff", 1, 4, 60), job("diff", 1, 4, 30), job("diff", 1, 4, 70)}, 1},
		{"every state change", []engine.JobInfo{job("diff", 1, 1, 0), job("diff", 1, 2, 0), job("diff", 1, 3, 0), job("diff", 1, 4, 0), job("diff", 1, 5, 100)}, 5},
		{"a new job (retry) is a change", []engine.JobInfo{job("diff", 1, 6, 0), job("diff", 2, 6, 0)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := NewPlain(&buf, WithClock((&fakeClock{t: t0}).Now))
			for _, j := range tt.jobs {
				p.JobProgress("diff@b/g", j)
			}
			if got := strings.Count(buf.String(), "\n"); got != tt.want {
				t.Errorf("%d lines, want %d:\n%s", got, tt.want, buf.String())
			}
		})
	}
}

func TestNoCredentialsAdded(t *testing.T) {
	const (
		secret = "S3CR3T-K3Y"
		raw    = "fetch s3://AKIA:" + secret + "@bucket/b.zip: 403"
		masked = "fetch s3://***@bucket/b.zip: 403"
	)
	for _, name := range []string{"plain", "json"} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &fakeClock{t: t0}
			var o engine.Observer = NewPlain(&buf, WithClock(c.Now))
			if name == "json" {
				o = NewJSON(&buf, WithClock(c.Now))
			}
			for _, e := range []string{raw, masked} {
				failed := job("update", 9, 6, 0)
				failed.Error = e
				o.JobProgress("update@b/g", failed)
				o.InstanceFinished("update@b/g", engine.Result{Outcome: engine.Failed, Err: errors.New(e), Job: &failed})
				o.Aborting(e)
				o.RunFinished(engine.Summary{Plan: "p", AbortReason: e, Verdict: engine.VerdictAborted,
					Failures: []engine.Failure{{Instance: "update@b/g", Err: errors.New(e)}},
					Targets:  []engine.TargetSummary{{Machine: "b", Image: "g", Outcome: engine.Failed, Err: errors.New(e)}}})
			}
			out := buf.String()
			if strings.Contains(out, secret) {
				t.Errorf("output holds the secret:\n%s", out)
			}
			// The masked form passes through as the engine gave it.
			if n := strings.Count(out, masked); n < 8 {
				t.Errorf("masked error shown %d times, want at least 8:\n%s", n, out)
			}
		})
	}
}

func TestConcurrentCalls(t *testing.T) {
	var pbuf, jbuf bytes.Buffer
	c := &fakeClock{t: t0}
	p, j := NewPlain(&pbuf, WithClock(c.Now)), NewJSON(&jbuf, WithClock(c.Now))
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("install@m%d/g", i)
			for _, o := range []engine.Observer{p, j} {
				o.InstanceStarted(id, c.Now())
				o.JobProgress(id, job("install", int64(i), 4, 50))
				o.RequestCount(int64(i))
				o.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded})
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(pbuf.String(), "\n"); got != 3*n {
		t.Errorf("plain: %d lines, want %d", got, 3*n)
	}
	sc := bufio.NewScanner(&jbuf)
	lines := 0
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("interleaved JSON line %q", sc.Text())
		}
		lines++
	}
	if lines != 4*n {
		t.Errorf("json: %d lines, want %d", lines, 4*n)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		d            time.Duration
		stamp, human string
	}{
		{0, "[00:00]", "0s"},
		{9*time.Second + 400*time.Millisecond, "[00:09]", "9s"},
		{62 * time.Second, "[01:02]", "1m02s"},
		{time.Hour + 2*time.Minute + 3*time.Second, "[1:02:03]", "1h02m03s"},
		{-time.Second, "[00:00]", "0s"},
	}
	for _, tt := range tests {
		if got := stamp(tt.d); got != tt.stamp {
			t.Errorf("stamp(%v) = %q, want %q", tt.d, got, tt.stamp)
		}
		if got := formatDuration(tt.d); got != tt.human {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.human)
		}
	}
}

// TestPlainInstanceWithSeveralJobs: a mirror instance reports each
// location's job in turn on every read; only changes make lines.
func TestPlainInstanceWithSeveralJobs(t *testing.T) {
	var b bytes.Buffer
	c := &fakeClock{t: time.Date(2026, 11, 22, 15, 4, 5, 0, time.UTC)}
	p := NewPlain(&b, WithClock(c.Now))
	p.RunStarted(engine.RunInfo{Plan: "p", Started: c.Now()})
	for read := 0; read < 10; read++ {
		for _, id := range []int64{661201, 661202} {
			p.JobProgress("mirror@game", engine.JobInfo{Kind: "mirror", ID: id, State: 4, StateName: "Running", Progress: 10})
		}
	}
	if n := strings.Count(b.String(), "mirror@game:"); n != 2 {
		t.Fatalf("%d job lines for 2 jobs read 10 times, want 2:\n%s", n, b.String())
	}
}

// TestNothingToRejectSaidOnce: on_failure rejects that found no open diff
// (one per failed install) are said once, not once per failed target.
func TestNothingToRejectSaidOnce(t *testing.T) {
	nothing := "nothing to reject: no diff of this run was still open"
	s := engine.Summary{Plan: "p", Verdict: engine.VerdictFailed, Started: t0, Finished: t0.Add(time.Minute),
		OnFailure: []engine.OnFailureRun{
			{Instance: "reject@buildbox-1/game", Step: "reject", Outcome: engine.Succeeded, Detail: "rejected diff 7"},
			{Instance: "reject@eu-1/game", Step: "reject", Outcome: engine.Succeeded, Detail: nothing, Noop: true},
			{Instance: "reject@eu-2/game", Step: "reject", Outcome: engine.Succeeded, Detail: nothing, Noop: true},
			{Instance: "reject@eu-3/game", Step: "reject", Outcome: engine.Succeeded, Detail: nothing, Noop: true},
		}}
	var buf bytes.Buffer
	NewPlain(&buf, WithClock((&fakeClock{t: t0}).Now)).RunFinished(s)
	out := buf.String()
	if n := strings.Count(out, "nothing to reject"); n != 1 {
		t.Fatalf("said %d times:\n%s", n, out)
	}
	for _, want := range []string{"reject on 3 targets: " + nothing, "reject@buildbox-1/game: rejected diff 7"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}
