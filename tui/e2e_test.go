package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/rollout/rollout/engine"
)

// fakeEngine plays a small rollout through an Observer from its own
// goroutines, the way the engine does: build steps, then a wave of installs
// whose progress streams until ctx is cancelled, then RunFinished.
func fakeEngine(ctx context.Context, obs engine.Observer) {
	info := fixture(6)
	info.Started = time.Now()
	obs.RunStarted(info)
	for _, id := range []string{"update@buildbox-1/game-b", "diff@buildbox-1/game-b", "small-change@buildbox-1/game-b", "version@game-b", "mirror@game-b"} {
		now := time.Now()
		obs.InstanceStarted(id, now)
		obs.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: now, Finished: now})
	}
	obs.WaveStarted("install", "game-b", 0, 3, []string{installID(1)})
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := installID(i)
			obs.InstanceStarted(id, time.Now())
			for p := 0; ; p = (p + 1) % 100 {
				obs.JobProgress(id, engine.JobInfo{Kind: "install", ID: int64(9100 + i), StateName: "Running", Progress: p})
				obs.RequestCount(int64(p))
				select {
				case <-ctx.Done():
					obs.InstanceFinished(id, engine.Result{Outcome: engine.Cancelled, Err: errors.New("interrupted")})
					return
				case <-time.After(time.Millisecond):
				}
			}
		}(i)
	}
	wg.Wait()
	obs.RunFinished(engine.Summary{
		Plan: info.Plan, Started: info.Started, Finished: time.Now(), Verdict: engine.VerdictInterrupted,
		Counts: map[engine.Outcome]int{engine.Succeeded: 5, engine.Cancelled: 3, engine.Skipped: 5},
		Unfinished: []engine.UnfinishedJob{
			{Instance: installID(1), Job: engine.JobInfo{Kind: "install", ID: 9101, StateName: "Running", Progress: 50}},
		},
	})
}

func contains(s string) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, []byte(s)) }
}

// TestEndToEnd drives the real program (teatest v2) with a synthetic engine:
// live rows appear, ctrl+c asks, y cancels through Options.Cancel, the view
// stays until RunFinished, then the program ends by itself.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancels int
	var mu sync.Mutex
	u := New(Options{NoColor: true, Tick: 10 * time.Millisecond, Cancel: func() {
		mu.Lock()
		cancels++
		mu.Unlock()
		cancel()
	}})
	tm := teatest.NewTestModel(t, u.Model(), teatest.WithInitialTermSize(100, 30),
		teatest.WithProgramOptions(tea.WithoutSignalHandler()))
	go fakeEngine(ctx, u)

	teatest.WaitFor(t, tm.Output(), contains("Running"), teatest.WithDuration(10*time.Second))
	tm.Send(keyMsg("ctrl+c"))
	teatest.WaitFor(t, tm.Output(), contains("Cancel the rollout?"), teatest.WithDuration(10*time.Second))
	mu.Lock()
	if cancels != 0 {
		t.Fatal("cancelled before the user confirmed")
	}
	mu.Unlock()
	tm.Send(keyMsg("y"))

	fm, ok := tm.FinalModel(t, teatest.WithFinalTimeout(20*time.Second)).(*Model)
	if !ok {
		t.Fatal("final model is not *Model")
	}
	mu.Lock()
	defer mu.Unlock()
	if cancels != 1 || !fm.userQuit || fm.forceQuit {
		t.Fatalf("cancels=%d userQuit=%v forceQuit=%v", cancels, fm.userQuit, fm.forceQuit)
	}
	s, done := u.Summary()
	if !done || (s.Verdict != engine.VerdictInterrupted) {
		t.Fatalf("summary not received: %v %+v", done, s)
	}
	if c := fm.st.cnt; c.cancelled != 3 || c.succeeded != 5 {
		t.Fatalf("final counts %+v", c)
	}
	out := RenderSummary(s, 80, false)
	for _, want := range []string{"INTERRUPTED", "install job 9101"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// syncBuf is a goroutine-safe output buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, out *syncBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunCancelled drives UI.Run itself through its Options (input pipe,
// output buffer, fixed size): q, then y, returns ErrCancelled once the engine
// finished.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inR, inW := io.Pipe()
	defer inW.Close()
	out := &syncBuf{}
	u := New(Options{In: inR, Out: out, Width: 80, Height: 24, NoColor: true, Tick: 10 * time.Millisecond, Cancel: cancel})
	go fakeEngine(ctx, u)
	errc := make(chan error, 1)
	go func() { errc <- u.Run(context.Background()) }()

	waitOutput(t, out, "Running")
	if _, err := inW.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "Cancel the rollout?")
	if _, err := inW.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrCancelled) {
			t.Fatalf("Run = %v, want ErrCancelled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after RunFinished")
	}
}

// TestRunContextEnded: when the caller's context ends, Run returns its error.
func TestRunContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	defer inW.Close()
	out := &syncBuf{}
	u := New(Options{In: inR, Out: out, Width: 80, Height: 24, NoColor: true, Tick: 10 * time.Millisecond})
	u.RunStarted(fixture(2))
	errc := make(chan error, 1)
	go func() { errc <- u.Run(ctx) }()
	waitOutput(t, out, "buildbox-1")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}
