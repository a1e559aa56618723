package clanforge_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"golang.org/x/time/rate"
)

// waits collects the client's Wait reports.
type waits struct {
	mu  sync.Mutex
	all []clanforge.Wait
}

func (w *waits) add(x clanforge.Wait) {
	w.mu.Lock()
	w.all = append(w.all, x)
	w.mu.Unlock()
}

func (w *waits) list() []clanforge.Wait {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]clanforge.Wait(nil), w.all...)
}

// find returns the first wait of kind whose reason contains text.
func (w *waits) find(kind clanforge.WaitKind, text string) (clanforge.Wait, bool) {
	for _, x := range w.list() {
		if x.Kind == kind && strings.Contains(x.Reason, text) {
			return x, true
		}
	}
	return clanforge.Wait{}, false
}

// hangClient is a client of base with short timeouts and a wait recorder.
func hangClient(t *testing.T, base string, w *waits, mod func(*clanforge.Config)) *clanforge.Client {
	t.Helper()
	cfg := clanforge.Config{
		BaseURL: base, ASID: testASID, AccessKey: testAccess, SecretKey: testSecret,
		RateLimit: rate.Inf, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		RequestTimeout: 150 * time.Millisecond, SlowAnswer: 40 * time.Millisecond,
		OnWait: w.add,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := clanforge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// unreachableURL is a loopback address nobody listens on.
func unreachableURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// serve starts h on an httptest server whose handlers are released when
// the test ends (a handler that never answers waits for its request's
// context).
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

// TestMisbehavingAPIsEndInBoundedTime: against each way an API can hang a
// client (issue 9 item 3), a read ends when its context's deadline passes,
// with a *GaveUpError that matches context.DeadlineExceeded and names the
// endpoint and the last failure, and every wait on the way is reported
// while it happens. No assertion here depends on elapsed time: the bound is
// the context's deadline, which the test's own timeout would catch.
func TestMisbehavingAPIsEndInBoundedTime(t *testing.T) {
	tests := []struct {
		name string
		// base returns the API's base URL.
		base func(t *testing.T) string
		mod  func(*clanforge.Config)
		// want: a wait of this kind whose reason contains text.
		wantKind clanforge.WaitKind
		wantText string
		// firstContact: the retries happen before any answer came.
		firstContact bool
		// lastErr: text of the last failure in the give-up error.
		lastErr string
	}{
		{
			name:         "unreachable port",
			base:         unreachableURL,
			wantKind:     clanforge.WaitRetry,
			wantText:     "connection refused",
			firstContact: true,
			lastErr:      "connection refused",
		},
		{
			name: "never answers",
			base: func(t *testing.T) string {
				return serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
			},
			wantKind:     clanforge.WaitRetry,
			wantText:     "no complete answer within 150ms",
			firstContact: true,
			lastErr:      "no complete answer within 150ms",
		},
		{
			name: "one byte per 100ms",
			base: func(t *testing.T) string {
				return serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(200)
					body := `{"installs":[` + strings.Repeat(`{"jobid":1},`, 1000) + `{"jobid":2}]}`
					for i := 0; i < len(body); i++ {
						if _, err := w.Write([]byte{body[i]}); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-r.Context().Done():
							return
						case <-time.After(100 * time.Millisecond):
						}
					}
				})
			},
			// The headers came at once: the body is what times out.
			wantKind: clanforge.WaitRetry,
			wantText: "no complete answer within 150ms",
			lastErr:  "no complete answer within 150ms",
		},
		{
			name: "endless body",
			base: func(t *testing.T) string {
				return serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(200)
					_, _ = w.Write([]byte(`{"installs":[`))
					chunk := []byte(strings.Repeat(`{"jobid":1,"jobstateid":2},`, 100))
					for {
						if _, err := w.Write(chunk); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-r.Context().Done():
							return
						case <-time.After(time.Millisecond):
						}
					}
				})
			},
			wantKind: clanforge.WaitRetry,
			wantText: "no complete answer within 150ms",
			lastErr:  "no complete answer within 150ms",
		},
		{
			name: "500 forever",
			base: func(t *testing.T) string {
				return serve(t, func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, 500, `{"error":true,"error_message":"internal"}`)
				})
			},
			wantKind: clanforge.WaitRetry,
			wantText: "internal (HTTP 500)",
			lastErr:  "internal (HTTP 500)",
		},
		{
			name: "huge Retry-After",
			base: func(t *testing.T) string {
				return serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", "999999999")
					writeJSON(w, 429, `{"error":true,"error_message":"slow down"}`)
				})
			},
			// The capped hold (5 minutes) outlasts the deadline: the call
			// gives up at once instead of sleeping into it.
			wantKind: clanforge.WaitHold,
			wantText: "Retry-After 999999999s capped to 5m0s",
			lastErr:  "slow down (HTTP 429)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &waits{}
			c := hangClient(t, tt.base(t), w, tt.mod)
			cx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			_, err := c.InstallStatus(cx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want one matching context.DeadlineExceeded", err)
			}
			var gu *clanforge.GaveUpError
			if !errors.As(err, &gu) || gu.Attempts < 1 || gu.Endpoint != "/cfp/v1/imageinstall/status" {
				t.Fatalf("err = %#v, want a *GaveUpError for imageinstall/status", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "clanforge: gave up on imageinstall/status after ") || !strings.Contains(msg, "last error: "+tt.lastErr) {
				t.Errorf("message %q, want the endpoint, the attempts and last error %q", msg, tt.lastErr)
			}
			for _, s := range []string{testSecret, testAccess, "accountserviceid"} {
				if strings.Contains(msg, s) {
					t.Errorf("message carries %q: %s", s, msg)
				}
			}
			got, ok := w.find(tt.wantKind, tt.wantText)
			if !ok {
				t.Fatalf("no %v wait with %q among %v", tt.wantKind, tt.wantText, w.list())
			}
			if got.Endpoint != "/cfp/v1/imageinstall/status" || got.Attempt < 2 || got.FirstContact != tt.firstContact {
				t.Errorf("wait %+v: want the endpoint, a later attempt, FirstContact=%v", got, tt.firstContact)
			}
			if strings.Contains(got.String(), "?") {
				t.Errorf("wait line shows a query: %s", got)
			}
		})
	}
}

// TestNeverAnsweringIsReportedBeforeTheAttemptEnds: an answer that does not
// come is reported after SlowAnswer, long before RequestTimeout ends the
// attempt, so a person sees the wait within seconds.
func TestNeverAnsweringIsReportedBeforeTheAttemptEnds(t *testing.T) {
	w := &waits{}
	base := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := hangClient(t, base, w, func(cfg *clanforge.Config) {
		cfg.RequestTimeout = 5 * time.Second
		cfg.SlowAnswer = 10 * time.Millisecond
	})
	cx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.VersionStatus(cx, 1); done <- err }()
	for {
		if _, ok := w.find(clanforge.WaitAnswer, "connected, no complete answer yet; this attempt gives up after 5s"); ok {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("call ended (%v) before the slow answer was reported: %v", err, w.list())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped (interrupted) retrying imageversion/1/status") {
		t.Fatalf("err = %v", err)
	}
	if ws := w.list(); ws[0].Attempt != 1 || !ws[0].FirstContact || !strings.Contains(ws[0].String(), "still waiting for an answer from imageversion/1/status") {
		t.Errorf("wait %+v / %q", ws[0], ws[0])
	}
}

// TestHugeRetryAfterIsCappedAndSaid: a Retry-After of 31 years holds the
// client for the cap only, the wait says so, and the call then succeeds.
func TestHugeRetryAfterIsCappedAndSaid(t *testing.T) {
	var n atomic.Int32
	base := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "999999999")
			writeJSON(w, 429, `{"error":true,"error_message":"slow down"}`)
			return
		}
		writeJSON(w, 200, `{"installs":[]}`)
	})
	w := &waits{}
	c := hangClient(t, base, w, func(cfg *clanforge.Config) { cfg.MaxRetryAfter = 20 * time.Millisecond })
	if _, err := c.InstallStatus(ctx(t)); err != nil {
		t.Fatal(err)
	}
	got, ok := w.find(clanforge.WaitHold, "Retry-After 999999999s capped to 20ms")
	if !ok || got.Delay != 20*time.Millisecond || got.Attempt != 2 {
		t.Fatalf("waits %v: want the capped hold said", w.list())
	}
	if s := got.String(); s != "rate limited on imageinstall/status: every request waits 20ms: Retry-After 999999999s capped to 20ms" {
		t.Errorf("line %q", s)
	}
	if n.Load() != 2 {
		t.Errorf("server saw %d requests, want 2", n.Load())
	}
}

// TestGaveUpAfterMaxAttempts: without a deadline, the attempts bound the
// read; the error names them and still exposes the last *APIError.
func TestGaveUpAfterMaxAttempts(t *testing.T) {
	base := serve(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 503, ``) })
	w := &waits{}
	c := hangClient(t, base, w, func(cfg *clanforge.Config) { cfg.MaxReadAttempts = 3 })
	_, err := c.VersionStatus(ctx(t), 7)
	var gu *clanforge.GaveUpError
	var ae *clanforge.APIError
	if !errors.As(err, &gu) || gu.Attempts != 3 || gu.Cause != nil || !errors.As(err, &ae) || ae.HTTPStatus != 503 {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no deadline passed, yet the error says so: %v", err)
	}
	if !strings.Contains(err.Error(), "(3 attempts): last error: HTTP 503") {
		t.Errorf("message %q", err)
	}
	// Two retries, each reported with the attempt it precedes.
	ws := w.list()
	if len(ws) != 2 || ws[0].Attempt != 2 || ws[1].Attempt != 3 || ws[0].FirstContact {
		t.Errorf("waits %+v", ws)
	}
}

// TestStateChangingCallAgainstHangs: a state-changing call that got no
// answer within RequestTimeout may have been acted on: it is an
// *OutcomeUnknownError, sent once. One that could not connect was never
// sent and is retried until the deadline, never reported as unknown.
func TestStateChangingCallAgainstHangs(t *testing.T) {
	t.Run("never answers", func(t *testing.T) {
		var n atomic.Int32
		base := serve(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); <-r.Context().Done() })
		c := hangClient(t, base, &waits{}, nil)
		_, err := c.CreateVersion(ctx(t), 1, clanforge.VersionOptions{})
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) || !errors.Is(err, clanforge.ErrTimeout) || n.Load() != 1 {
			t.Fatalf("err = %v after %d sends, want outcome unknown after one", err, n.Load())
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		w := &waits{}
		c := hangClient(t, unreachableURL(t), w, nil)
		cx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.CreateVersion(cx, 1, clanforge.VersionOptions{})
		if errors.Is(err, clanforge.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if _, ok := w.find(clanforge.WaitRetry, "connection refused"); !ok {
			t.Errorf("waits %v", w.list())
		}
	})
}

// TestLongRateLimitWaitIsReported: a request the client's own limiter holds
// for seconds says so; one it would hold past the deadline is not sent.
func TestLongRateLimitWaitIsReported(t *testing.T) {
	base := serve(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"installs":[]}`) })
	w := &waits{}
	c := hangClient(t, base, w, func(cfg *clanforge.Config) { cfg.RateLimit = 0.2; cfg.Burst = 1 })
	if _, err := c.InstallStatus(ctx(t)); err != nil {
		t.Fatal(err)
	}
	cx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.InstallStatus(cx); done <- err }()
	for {
		if x, ok := w.find(clanforge.WaitRateLimit, "at most 0.2 requests/s"); ok {
			if x.Delay < 2*time.Second || !strings.HasPrefix(x.String(), "waiting ") {
				t.Errorf("wait %+v", x)
			}
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitString(t *testing.T) {
	tests := []struct {
		w    clanforge.Wait
		want string
	}{
		{clanforge.Wait{Kind: clanforge.WaitRetry, Endpoint: "/cfp/v1/imageinstall/status", Attempt: 3, Delay: 4 * time.Second, Reason: "connection refused"},
			"retrying imageinstall/status in 4s (attempt 3): connection refused"},
		{clanforge.Wait{Kind: clanforge.WaitRetry, Endpoint: "/base/cfp/v1/image/options", Attempt: 2, Delay: 1234 * time.Millisecond, Reason: "connection refused", FirstContact: true},
			"no answer from the API yet; retrying image/options in 1.2s (attempt 2): connection refused"},
		{clanforge.Wait{Kind: clanforge.WaitResend, Endpoint: "/cfp/v1/imagediff/create", Attempt: 2, Delay: 800 * time.Millisecond, Reason: "proof"},
			"sending imagediff/create again in 800ms (send 2): proof"},
		{clanforge.Wait{Kind: clanforge.WaitAnswer, Endpoint: "/cfp/v2/project/1/image/2/status", Attempt: 1, Delay: 5 * time.Second, Reason: "r"},
			"still waiting for an answer from project/1/image/2/status after 5s (attempt 1): r"},
	}
	for _, tt := range tests {
		if got := tt.w.String(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}
