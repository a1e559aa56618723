package e2e

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMisbehavingAPIsEndInBoundedTime: against an API that is unreachable,
// never answers, answers one byte at a time, streams an endless body,
// answers 500 forever or asks to retry after 31 years, run and plan say at
// once what they are trying, say every retry, and give up with exit 1 once
// --preflight-timeout has passed, changing nothing.
func TestMisbehavingAPIsEndInBoundedTime(t *testing.T) {
	slowly := func(w http.ResponseWriter, body string, every time.Duration) {
		w.WriteHeader(200)
		f, _ := w.(http.Flusher)
		for i := 0; i < len(body); i++ {
			if _, err := w.Write([]byte{body[i]}); err != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
			time.Sleep(every)
		}
	}
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	cases := []struct {
		name    string
		handler http.HandlerFunc
		url     string
		want    string
	}{
		{name: "unreachable", url: dead, want: "connection refused"},
		{name: "never answers", handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, want: "image/options"},
		{name: "one byte at a time", handler: func(w http.ResponseWriter, r *http.Request) {
			slowly(w, `{"games":[],"images":[],"machines":[]}`, 200*time.Millisecond)
		}, want: "image/options"},
		{name: "endless body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			chunk := bytes.Repeat([]byte(" "), 1<<16)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, want: "image/options"},
		{name: "500 forever", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, want: "500"},
		{name: "Retry-After 999999999", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "999999999")
			w.WriteHeader(429)
		}, want: "capped"},
	}
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(killPlan), 0o644); err != nil {
		t.Fatal(err)
	}
	const limit = 3 * time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				u = srv.URL
			}
			for _, args := range [][]string{
				{"run", planPath, "--no-tui", "--state-dir", t.TempDir(), "--preflight-timeout", limit.String()},
				{"plan", planPath, "--preflight-timeout", limit.String()},
			} {
				cmd := exec.Command(binary, args...)
				cmd.Env = append(os.Environ(), "CLANFORGE_URL="+u, "CLANFORGE_ACCESS_KEY=hang-access", "CLANFORGE_SECRET_KEY=hang-secret-value")
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(limit + 60*time.Second):
					_ = cmd.Process.Kill()
					t.Fatalf("%s: still running after %s:\n%s", args[0], limit+60*time.Second, out.String())
				}
				took := time.Since(start)
				t.Logf("%s against %s: ended after %s (exit %d)", args[0], tc.name, took.Round(10*time.Millisecond), exitCode(err))
				s := out.String()
				if args[0] == "run" {
					if exitCode(err) != exitFailed {
						t.Errorf("run: exit %d, want 1:\n%s", exitCode(err), s)
					}
					if !strings.Contains(s, "nothing was changed") || !strings.Contains(s, "pre-flight: reading") {
						t.Errorf("run does not say what it tried and that nothing changed:\n%s", s)
					}
				} else if !strings.Contains(s, "Pre-flight") {
					t.Errorf("plan printed no preview with its pre-flight outcome:\n%s", s)
				}
				if !strings.Contains(s, tc.want) {
					t.Errorf("%s: output lacks %q:\n%s", args[0], tc.want, s)
				}
			}
		})
	}
}
