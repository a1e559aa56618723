package state

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// TestControlRequestRoundTrip: a request is claimed once, oldest first,
// answered, and the answer is read once.
func TestControlRequestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in, err := OpenInbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := &ControlRequest{Step: "gate", Reason: "looks good", By: "alice@laptop", At: t0}
	second := &ControlRequest{Abort: true, By: "bob@desk", At: t0.Add(time.Second)}
	for _, r := range []*ControlRequest{second, first} {
		if err := SubmitRequest(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	got := in.Claim()
	if len(got) != 2 || got[0].Request.ID != first.ID || got[1].Request.ID != second.ID {
		t.Fatalf("claimed %+v, want %s then %s", got, first.ID, second.ID)
	}
	if g := got[0].Request; g.Step != "gate" || g.By != "alice@laptop" || !g.At.Equal(t0) || g.Reason != "looks good" || g.V != ControlVersion {
		t.Fatalf("request read back as %+v", g)
	}
	if again := in.Claim(); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	if !Claimed(dir, first.ID) {
		t.Fatal("a claimed request is not shown as claimed")
	}
	if ok, _ := WithdrawRequest(dir, first.ID); ok {
		t.Fatal("a request the run claimed was withdrawn")
	}
	if err := in.Answer(first.ID, ControlReply{OK: true, Message: "approved gate@game as alice@laptop"}); err != nil {
		t.Fatal(err)
	}
	if Claimed(dir, first.ID) {
		t.Fatal("an answered request is still claimed")
	}
	r, ok, err := ReadReply(dir, first.ID)
	if err != nil || !ok || !r.OK || r.Message != "approved gate@game as alice@laptop" || r.PID != os.Getpid() {
		t.Fatalf("reply %+v %v %v", r, ok, err)
	}
	if _, ok, _ := ReadReply(dir, first.ID); ok {
		t.Fatal("a reply was read twice")
	}
}

// TestWithdrawRaceHasOneWinner: a requester taking its request back and a
// run claiming it never both succeed, so a request is applied or taken
// back, never both and never lost.
func TestWithdrawRaceHasOneWinner(t *testing.T) {
	dir := t.TempDir()
	in, err := OpenInbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		r := &ControlRequest{By: "a@b"}
		if err := SubmitRequest(dir, r); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var claimed []ClaimedRequest
		var withdrawn bool
		wg.Add(2)
		go func() { defer wg.Done(); claimed = in.Claim() }()
		go func() { defer wg.Done(); withdrawn, _ = WithdrawRequest(dir, r.ID) }()
		wg.Wait()
		if withdrawn == (len(claimed) == 1) {
			t.Fatalf("round %d: withdrawn %v, claimed %d", i, withdrawn, len(claimed))
		}
		if len(claimed) == 1 {
			_ = in.Answer(r.ID, ControlReply{})
			_, _, _ = ReadReply(dir, r.ID)
		}
	}
}

// TestLeftoversAreWhatADeadRunTook: requests a run claimed and never
// answered are the next run's leftovers; a damaged file is reported, not
// dropped.
func TestLeftoversAreWhatADeadRunTook(t *testing.T) {
	dir := t.TempDir()
	in, _ := OpenInbox(dir)
	r := &ControlRequest{Step: "gate", By: "a@b", Seen: []string{"gate@game"}}
	if err := SubmitRequest(dir, r); err != nil {
		t.Fatal(err)
	}
	if got := in.Claim(); len(got) != 1 {
		t.Fatalf("claimed %d", len(got))
	}
	if err := os.WriteFile(filepath.Join(dir, ControlDirName, "999-1-x.taken"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The run dies here; the next one opens the inbox.
	next, _ := OpenInbox(dir)
	left := next.Leftovers()
	if len(left) != 2 {
		t.Fatalf("leftovers %+v", left)
	}
	var good, bad int
	for _, l := range left {
		switch {
		case l.Err != nil:
			bad++
		case l.Request.ID == r.ID && l.Request.Seen[0] == "gate@game":
			good++
		}
	}
	if good != 1 || bad != 1 {
		t.Fatalf("leftovers %+v", left)
	}
}

// TestWaitingIsMaskedAndReadBack: waiting.json goes through the output
// boundary like every other file the program writes.
func TestWaitingIsMaskedAndReadBack(t *testing.T) {
	redact.AddSecret("hunter2-secret-value")
	t.Cleanup(redact.ResetSecrets)
	dir := t.TempDir()
	w := &Waiting{PID: 42, Plan: "p", Updated: t0, Waits: []Wait{WaitOf(engine.WaitInfo{ID: "gate@game", Kind: engine.WaitApproval,
		Step: "gate", Image: "game", Wave: -1, Message: "ship hunter2-secret-value?", Since: t0})}}
	if err := WriteWaiting(dir, w); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, WaitingName))
	if strings.Contains(string(b), "hunter2") {
		t.Fatalf("secret in waiting.json: %s", b)
	}
	got, err := ReadWaiting(dir)
	if err != nil || got.PID != 42 || len(got.Waits) != 1 || got.Waits[0].ID != "gate@game" || got.Waits[0].Wave != -1 {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if err := RemoveWaiting(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveWaiting(dir); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}

// TestHolder tells a held directory from a free one.
func TestHolder(t *testing.T) {
	dir := t.TempDir()
	if _, held := Holder(dir); held {
		t.Fatal("an empty directory is held")
	}
	j := mustOpen(t, dir, "h")
	info, held := Holder(dir)
	if !held || info.PID != os.Getpid() {
		t.Fatalf("held %v by %+v", held, info)
	}
	j.Close()
	if _, held := Holder(dir); held {
		t.Fatal("held after Close")
	}
}

func TestActor(t *testing.T) {
	t.Setenv("USER", "alice")
	host, _ := os.Hostname()
	if got := Actor(); got != "alice@"+host {
		t.Fatalf("Actor() = %q", got)
	}
}
