package state

import (
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

// TestHistoryListsEveryRun: the runs of the current journal and of those
// --fresh set aside, oldest first, each with who started it, how it ended,
// the decisions it took and the ids its calls created, attributed to the
// run that sent the call.
func TestHistoryListsEveryRun(t *testing.T) {
	t.Setenv("USER", "carol")
	dir := t.TempDir()
	if _, err := History(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("history of an empty directory: %v", err)
	}

	// The first rollout: one run that finished.
	j := mustOpen(t, dir, "h1")
	must(t, j.Start(RunStartInfo{API: "https://api.example", PlanFile: "plan.yaml"}))
	must(t, j.Intent("update@b/game imageupdate/create#1", "/cfp/v1/imageupdate/create", map[string]string{"imageid": "5531"}))
	must(t, j.Result("update@b/game imageupdate/create#1", 101, nil))
	must(t, j.Intent("diff@b/game imagediff/create#1", "/cfp/v1/imagediff/create", nil))
	must(t, j.Result("diff@b/game imagediff/create#1", 0, errors.New("refused"))) // made nothing
	must(t, j.Outcome("update@b/game", "succeeded", "", nil, nil))
	rec := NewRecorder(j)
	w := engine.WaitInfo{ID: "gate@game", Kind: engine.WaitApproval, Step: "gate", Image: "game", Since: t0}
	rec.WaitStarted(w)
	rec.RecordDecision(w, engine.Decision{Kind: engine.Approved, By: "alice@laptop", At: t0.Add(time.Minute), Reason: "ok"})
	must(t, j.FinishVerdict("succeeded"))
	j.Close()
	if _, err := fresh(dir, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// The second rollout: a run that was killed while waiting, then a
	// resumed run still going (it wrote no finish record).
	j = mustOpen(t, dir, "h2")
	must(t, j.Start(RunStartInfo{}))
	must(t, j.Intent("install@m1/game imageinstall/queue/9100", "/cfp/v1/imageinstall/9100/queue", map[string]string{"mirroring": "false"}))
	w2 := engine.WaitInfo{ID: "install@game after wave 1", Kind: engine.WaitApproval, Step: "install", Image: "game", Since: t0}
	NewRecorder(j).WaitStarted(w2)
	must(t, j.Start(RunStartInfo{Resumed: true}))
	// The resumed run settles the first run's queue.
	must(t, j.Result("install@m1/game imageinstall/queue/9100", 0, nil))
	j.Close()

	runs, err := History(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs: %+v", len(runs), runs)
	}
	first, killed, resumed := runs[0], runs[1], runs[2]
	if first.Journal == JournalName || first.User != "carol" || first.Verdict != "succeeded" || first.Finished.IsZero() ||
		first.PlanFile != "plan.yaml" || first.Outcomes["succeeded"] != 1 || first.PlanHash != "h1" {
		t.Fatalf("first run %+v", first)
	}
	if want := []CreatedID{{Kind: "update", ID: 101, Instance: "update@b/game"}}; !sameIDs(first.Created, want) {
		t.Fatalf("first run created %+v", first.Created)
	}
	if len(first.Decisions) != 1 || first.Decisions[0].By != "alice@laptop" || first.Decisions[0].Reason != "ok" || first.Decisions[0].Decision != "approved" {
		t.Fatalf("first run decisions %+v", first.Decisions)
	}
	if killed.Journal != JournalName || killed.Index != 1 || !killed.Finished.IsZero() || len(killed.Waiting) != 1 || killed.Waiting[0].ID != w2.ID {
		t.Fatalf("killed run %+v", killed)
	}
	if want := []CreatedID{{Kind: "install", ID: 9100, Instance: "install@m1/game"}}; !sameIDs(killed.Created, want) {
		t.Fatalf("the queue is the killed run's, which sent it: %+v", killed.Created)
	}
	if !resumed.Resumed || resumed.Index != 2 || len(resumed.Created) != 0 {
		t.Fatalf("resumed run %+v", resumed)
	}
}

func sameIDs(got, want []CreatedID) bool {
	g := append([]CreatedID(nil), got...)
	for i := range g {
		g[i].At = time.Time{}
	}
	return reflect.DeepEqual(g, want)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCreatedByNamesEveryKind reads the ids of each state-changing call.
func TestCreatedByNamesEveryKind(t *testing.T) {
	tests := []struct {
		key, ep string
		params  map[string]string
		job     int64
		want    []CreatedID
	}{
		{"version@game imageversion/create#1", "/cfp/v1/imageversion/create", map[string]string{"diffid": "7"}, 300,
			[]CreatedID{{Kind: "version", ID: 300, Instance: "version@game"}}},
		{"diff@b/game imagediff/retry#2", "/cfp/v1/imagediff/7/retry", nil, 7,
			[]CreatedID{{Kind: "diff", ID: 7, Instance: "diff@b/game"}}},
		{"mirror@game imageinstall/queue/55", "/cfp/v1/imageinstall/55/queue", map[string]string{"mirroring": "true"}, 0,
			[]CreatedID{{Kind: "mirror", ID: 55, Instance: "mirror@game"}}},
		{"reject@b/game imagediff/reject#1", "/cfp/v1/imagediff/reject", map[string]string{"diffid": "7", "reinstall": "1"}, 888,
			[]CreatedID{{Kind: "reject", ID: 7, Instance: "reject@b/game"}, {Kind: "uninstall", ID: 888, Instance: "reject@b/game"}}},
		{"cutover@prod-eu fleet/switchprofile#1", "/cfp/v2/fleet/c0a3e2a1/switchprofile", map[string]string{"ProfileID": "102"}, 0,
			[]CreatedID{{Kind: "switch", Instance: "cutover@prod-eu", Fleet: "c0a3e2a1", Profile: "102"}}},
	}
	for _, tc := range tests {
		got := createdBy(&Record{Key: tc.key, Endpoint: tc.ep, Params: tc.params}, tc.job)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.ep, got, tc.want)
		}
	}
}
