package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// receiver is a webhook that records every message it gets, the stand-in
// for Slack or a CI system that a plan's notify section posts to.
type receiver struct {
	// URL is where it listens, with a path that a test can look for in
	// outputs: like a Slack webhook's, it is the secret part.
	URL string

	mu   sync.Mutex
	msgs []hookMessage
}

// hookMessage is one POST, classified by its body: a json-format message
// names its event; a slack-format one has only text.
type hookMessage struct {
	Format string // "json" or "slack"
	Event  string // json only
	Plan   string // json only
	Text   string
	Body   string
}

// webhookPath is the secret path of every receiver's URL.
const webhookPath = "/services/T0SECRET/B0SECRET/hook-s3cr3t-9f2c"

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m struct {
			V     int    `json:"v"`
			Event string `json:"event"`
			Plan  string `json:"plan"`
			Text  string `json:"text"`
		}
		msg := hookMessage{Body: string(body)}
		if req.Method != http.MethodPost || req.URL.Path != webhookPath || json.Unmarshal(body, &m) != nil {
			msg.Format = "bad: " + req.Method + " " + req.URL.Path
		} else if m.Event != "" {
			msg.Format, msg.Event, msg.Plan, msg.Text = "json", m.Event, m.Plan, m.Text
		} else {
			msg.Format, msg.Text = "slack", m.Text
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, msg)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + webhookPath
	return r
}

func (r *receiver) messages() []hookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookMessage(nil), r.msgs...)
}

// slackEvent names the event of a slack-format message from its text, as
// the notifier words them.
func slackEvent(text string) string {
	switch {
	case strings.Contains(text, " started: "):
		return "started"
	case strings.Contains(text, ": wave "):
		return "wave"
	case strings.Contains(text, " waits for approval of "):
		return "approval"
	case strings.Contains(text, " approved by "):
		return "approved"
	case strings.Contains(text, " is aborting: "):
		return "aborted"
	case strings.Contains(text, " finished: "):
		return "finished"
	case strings.Contains(text, " failed: "):
		return "failed"
	}
	return "unknown: " + text
}

// counts is how many messages of each format and event arrived, keyed
// "json started", "slack wave", ...
func (r *receiver) counts() map[string]int {
	out := map[string]int{}
	for _, m := range r.messages() {
		ev := m.Event
		if m.Format == "slack" {
			ev = slackEvent(m.Text)
		}
		out[m.Format+" "+ev]++
	}
	return out
}

// noSecretIn fails the test when any of secrets appears in one of the
// outputs, or in any file of the state directory (journal, event log,
// waiting and control files).
func noSecretIn(t *testing.T, stateDir string, outputs map[string]string, secrets ...string) {
	t.Helper()
	all := map[string]string{}
	for k, v := range outputs {
		all[k] = v
	}
	_ = filepath.WalkDir(stateDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, rerr := os.ReadFile(path)
		if rerr == nil {
			all[path] = string(b)
		}
		return nil
	})
	if len(all) == 0 {
		t.Fatal("nothing to look at")
	}
	for name, text := range all {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q", name, s)
			}
		}
	}
}
