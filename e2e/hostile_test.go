package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// TestEchoingServerLeaksNoCredentials: a server that echoes the request's
// Authorization header and query (URL-encoded secrets included) and sends
// escape sequences in its error text gets none of it printed raw, by run or
// by plan, on stdout or stderr.
func TestEchoingServerLeaksNoCredentials(t *testing.T) {
	const access, secret, token = "AKECHOACCESS01", "echo/Secret+Value=7", "echo-bearer-token-99"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "refused \x1b[2J\x1b]52;c;Zm9v\x07 auth=" + r.Header.Get("Authorization") + " query=" + r.URL.RawQuery +
			" raw=" + secret + "\nrollout succeeded (forged)"
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "error": true, "error_code": 1, "error_message": msg})
	}))
	defer srv.Close()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(killPlan), 0o644); err != nil {
		t.Fatal(err)
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), access, token,
		base64.StdEncoding.EncodeToString([]byte(access + ":" + secret))}
	for _, env := range [][]string{
		{"CLANFORGE_ACCESS_KEY=" + access, "CLANFORGE_SECRET_KEY=" + secret},
		{"CLANFORGE_TOKEN=" + token, "CLANFORGE_ACCESS_KEY=" + access, "CLANFORGE_SECRET_KEY=" + secret},
	} {
		for _, args := range [][]string{
			{"run", planPath, "--no-tui", "--state-dir", filepath.Join(dir, "state"), "--preflight-timeout", "5s"},
			{"plan", planPath},
			{"plan", planPath, "--json"},
		} {
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), append(env, "CLANFORGE_URL="+srv.URL)...)
			out, _ := cmd.CombinedOutput()
			s := string(out)
			for _, f := range forms {
				if strings.Contains(s, f) {
					t.Errorf("%v printed a credential form %q:\n%s", args, f, s)
				}
			}
			if strings.ContainsAny(s, "\x1b\x07") || strings.Contains(s, "\nrollout succeeded (forged)") {
				t.Errorf("%v printed raw control characters or a forged line:\n%q", args, s)
			}
		}
	}
}

// TestBearerOnly: with only CLANFORGE_TOKEN set, a whole rollout runs with
// every request carrying the Bearer header and no Basic one, and the token
// appears in no output and not in the journal. The cut-over plan of the
// contract is one of them: its readiness reads, its PATCHes and the status
// reads of its switches carry the token too.
func TestBearerOnly(t *testing.T) {
	const token = "bearer-only-token-5c1d"
	hook := newReceiver(t)
	for _, tc := range []struct {
		name    string
		src     string
		args    []string
		patches int
	}{
		{"image update", killPlan, nil, 0},
		{"cut-over", contractPlan(t, hook.URL, ""), []string{"--auto-approve"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			planPath := filepath.Join(dir, "plan.yaml")
			if err := os.WriteFile(planPath, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := plan.Load(planPath, plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var bad, seen, patches, v2 atomic.Int64
			e := simtest.Start(t, p, simtest.Scenario(t, fastScenario), simtest.Token(token),
				simtest.Front(func(srv *sim.Server) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						seen.Add(1)
						if r.Method == http.MethodPatch {
							patches.Add(1)
						}
						if strings.HasPrefix(r.URL.Path, "/cfp/v2/") {
							v2.Add(1)
						}
						if r.Header.Get("Authorization") != "Bearer "+token || len(r.Header.Values("Authorization")) != 1 {
							bad.Add(1)
						}
						srv.ServeHTTP(w, r)
					})
				}))
			args := append([]string{"run", planPath, "--no-tui", "--state-dir", filepath.Join(dir, "state"), "--poll-min", "10ms", "--poll-max", "100ms"}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "CLANFORGE_URL="+e.URL, "CLANFORGE_TOKEN="+token, "CLANFORGE_ACCESS_KEY=", "CLANFORGE_SECRET_KEY=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			if seen.Load() == 0 || bad.Load() != 0 {
				t.Fatalf("%d of %d requests without the Bearer header alone", bad.Load(), seen.Load())
			}
			if int(patches.Load()) != tc.patches || (tc.patches > 0 && v2.Load() <= patches.Load()) {
				t.Fatalf("%d PATCHes and %d v2 requests, want %d PATCHes and the reads around them", patches.Load(), v2.Load(), tc.patches)
			}
			journal, _ := os.ReadFile(filepath.Join(dir, "state", "journal.jsonl"))
			for _, b := range [][]byte{out, journal} {
				if bytes.Contains(b, []byte(token)) {
					t.Fatalf("the token was written:\n%s", b)
				}
			}
		})
	}
}
