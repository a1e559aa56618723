package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/hostile"
)

// TestJournalMasksRegisteredSecrets: an API answer that echoes the
// credentials (Basic header, URL-encoded secret, bearer token, an ${env:}
// value) in an error, a job error or a parameter is written masked: the
// journal is read back by status and copied around, so it must hold no
// secret in any encoding.
func TestJournalMasksRegisteredSecrets(t *testing.T) {
	hostile.Register(t)
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	text := hostile.Text()
	if err := j.Intent("k", "imageupdate/create", map[string]string{"desc": text}); err != nil {
		t.Fatal(err)
	}
	if err := j.Result("k", 0, errors.New(text)); err != nil {
		t.Fatal(err)
	}
	if err := j.Outcome("update@b/g", "failed", text, &JobRecord{Kind: "update", ID: 1, State: 6, Error: text}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Unfinished([]JobRecord{{Kind: "update", ID: 1, Error: text}}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, err := os.ReadFile(filepath.Join(dir, JournalName))
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range hostile.Forms() {
		if strings.Contains(string(b), f) {
			t.Errorf("journal holds the %s:\n%s", name, b)
		}
	}
	if !strings.Contains(string(b), hostile.EnvLabel) {
		t.Errorf("the ${env:} value is not labelled:\n%s", b)
	}
}
