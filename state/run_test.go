package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/rollout/rollout/plan"
)

// TestOldJournalsExitStatusReadsAsVerdict: journals written before verdicts
// were recorded carry an exit status; it still reads as the right verdict.
func TestOldJournalsExitStatusReadsAsVerdict(t *testing.T) {
	for code, want := range map[string]string{"0": "succeeded", "1": "failed", "130": "interrupted"} {
		dir := t.TempDir()
		src := `{"v":1,"type":"plan","time":"2026-01-01T00:00:00Z","plan":"p","hash":"h"}
{"v":1,"type":"run_start","time":"2026-01-01T00:00:01Z","pid":1}
{"v":1,"type":"finish","time":"2026-01-01T00:00:02Z","exit":` + code + `}
`
		if err := os.WriteFile(filepath.Join(dir, JournalName), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Replay(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Finished || s.Verdict != want || s.Runs[0].Verdict != want {
			t.Errorf("exit %s: verdict %q, want %q", code, s.Verdict, want)
		}
	}
}

func TestOwnsLock(t *testing.T) {
	j, err := Open(t.TempDir(), "p", "h")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	img := &plan.Image{Name: "game", ID: 5531}
	// A diff this journal saw created is ours.
	_ = j.Intent("diff@b/game imagediff/create#1", "/cfp/v1/imagediff/create", map[string]string{"imageid": "5531"})
	_ = j.Result("diff@b/game imagediff/create#1", 77, nil)
	// An update whose answer never arrived makes an update lock on that
	// image ours.
	_ = j.Intent("update@b/game imageupdate/create#1", "/cfp/v1/imageupdate/create", map[string]string{"imageid": "5531"})
	tests := []struct {
		kind string
		id   int64
		img  *plan.Image
		want bool
	}{
		{"diff", 77, img, true},
		{"diff", 78, img, false},
		{"update", 90, img, true},
		{"update", 90, &plan.Image{Name: "other", ID: 5530}, false},
	}
	for _, tt := range tests {
		if got := j.OwnsLock(tt.img, tt.kind, tt.id); got != tt.want {
			t.Errorf("OwnsLock(%s, %s %d) = %v, want %v", tt.img.Name, tt.kind, tt.id, got, tt.want)
		}
	}
}

func TestCheckFreeAndOpenExisting(t *testing.T) {
	dir := t.TempDir()
	if err := CheckFree(dir); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := OpenExisting(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting without a journal: %v", err)
	}
	j, err := Open(dir, "p", "h")
	if err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if err := CheckFree(dir); !errors.As(err, &le) || le.Holder.PID != os.Getpid() {
		t.Fatalf("CheckFree while held: %v", err)
	}
	if _, err := OpenExisting(dir); !errors.As(err, &le) {
		t.Fatalf("OpenExisting while held: %v", err)
	}
	j.Close()
	if err := CheckFree(dir); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// OpenExisting takes a journal whatever plan wrote it.
	j, err = OpenExisting(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Summary().Plan != "p" {
		t.Fatalf("plan %q", j.Summary().Plan)
	}
}
