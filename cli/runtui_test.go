package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/tui"
)

// lockedBuf is a goroutine-safe output buffer.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunWithTUIRecordsTheEndWhileTheViewStays: the run's end is recorded
// (journal, verdict, state directory let go) as soon as the engine is
// done, also while a finished view stays open for a person; the view then
// leaves at q, and the summary, then what recording said, are printed.
// Unattended, the view leaves at the end by itself.
func TestRunWithTUIRecordsTheEndWhileTheViewStays(t *testing.T) {
	for _, attended := range []bool{true, false} {
		t.Run(fmt.Sprintf("attended=%v", attended), func(t *testing.T) {
			inR, inW := io.Pipe()
			defer inW.Close()
			out, errOut := &lockedBuf{}, &lockedBuf{}
			ui := tui.New(tui.Options{In: inR, Out: out, Width: 100, Height: 24, NoColor: true, Tick: 10 * time.Millisecond, StayOpen: attended})
			env := &Env{Stdout: out, Stderr: errOut, Getenv: func(string) string { return "" }, IsTerminal: func() bool { return true }}
			sum := engine.Summary{Plan: "p", Verdict: engine.VerdictFailed, Started: time.Now(), Finished: time.Now(),
				Counts:   map[engine.Outcome]int{engine.Failed: 1},
				Failures: []engine.Failure{{Instance: "install@m1/game", Machine: "m1", Image: "game", Err: errors.New("disk full")}}}
			recorded := make(chan struct{})
			errc := make(chan error, 1)
			go func() {
				errc <- env.runWithTUI(context.Background(), func() {}, ui, func() (*engine.Summary, error) {
					ui.RunStarted(engine.RunInfo{Plan: "p", Concurrency: 1, Started: sum.Started,
						Instances: []engine.InstanceInfo{{ID: "install@m1/game", Step: "install", Type: "install", Machine: "m1", Image: "game", Wave: -1}}})
					ui.InstanceFinished("install@m1/game", engine.Result{Outcome: engine.Failed, Err: errors.New("disk full")})
					ui.RunFinished(sum)
					return &sum, nil
				}, func(s *engine.Summary, err error, w io.Writer) error {
					fmt.Fprintln(w, "recorded the end")
					close(recorded)
					return &RunError{Verdict: s.Verdict}
				})
			}()
			select {
			case <-recorded:
			case <-time.After(20 * time.Second):
				t.Fatal("the end was not recorded")
			}
			if attended {
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(out.String(), "press q to leave") {
					if time.Now().After(deadline) {
						t.Fatal("the finished view never said how to leave")
					}
					time.Sleep(5 * time.Millisecond)
				}
				select {
				case err := <-errc:
					t.Fatalf("runWithTUI returned (%v) before the person pressed q", err)
				case <-time.After(100 * time.Millisecond):
				}
				if strings.Contains(errOut.String(), "recorded the end") {
					t.Fatal("what recording said was printed under the live view")
				}
				if _, err := inW.Write([]byte("q")); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(20 * time.Second):
				t.Fatal("runWithTUI did not return")
			}
			var re *RunError
			if !errors.As(err, &re) || re.Verdict != engine.VerdictFailed {
				t.Fatalf("runWithTUI = %v, want the recorded result", err)
			}
			if s := out.String(); !strings.Contains(s, "disk full") || !strings.Contains(s, "FAILED") {
				t.Fatalf("no summary after the view:\n%s", s)
			}
			if got := errOut.String(); got != "recorded the end\n" {
				t.Fatalf("stderr %q", got)
			}
		})
	}
}
