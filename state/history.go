package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
)

// HistoryRun is one run of a plan as its journal recorded it: who started
// it and when, how it ended, the decisions taken while it ran, and the
// remote ids its calls created.
type HistoryRun struct {
	// Journal is the journal file's name in the state directory
	// (journal.jsonl, or journal-<time>.jsonl once --fresh set it aside).
	Journal  string
	Plan     string
	PlanHash string
	// Index is the run's place in its journal, from 1; runs after the
	// first resumed an earlier one.
	Index    int
	PID      int
	User     string
	Host     string
	Started  time.Time
	Resumed  bool
	Sim      bool
	API      string
	PlanFile string
	// Finished is zero when the run wrote no finish record: it crashed,
	// was killed, or is still running. Last is the time of its last
	// record then.
	Finished time.Time
	Last     time.Time
	Verdict  string
	// Outcomes counts the outcomes the run recorded, by outcome.
	Outcomes map[string]int
	// Decisions are the waits the run ended (approvals with who and when,
	// timeouts, bake times), in order; Waiting the waits it began and
	// never ended (it stopped while waiting).
	Decisions []WaitRecord
	Waiting   []WaitRecord
	// Created lists the remote ids the run's calls made or acted on, in
	// order.
	Created []CreatedID
}

// CreatedID is one remote id a run's call created or acted on.
type CreatedID struct {
	// Kind is update, diff, version, mirror or install (a queued job),
	// uninstall, reject (the diff rejected) or switch.
	Kind     string    `json:"kind"`
	ID       int64     `json:"id,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Fleet    string    `json:"fleet,omitempty"`   // switch
	Profile  string    `json:"profile,omitempty"` // switch
	At       time.Time `json:"at"`
	// Outside marks an action recorded after the run ended: a manual
	// `rollout reject`.
	Outside bool `json:"outside_run,omitempty"`
}

// History reads every journal in dir, the current one and those --fresh
// set aside, and returns every run they record, oldest first. A journal
// that cannot be read is reported as an error naming it; a torn last line
// is ignored as replay ignores it.
func History(dir string) ([]HistoryRun, error) {
	old, err := filepath.Glob(filepath.Join(dir, "journal-*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(old)
	files := append(old, filepath.Join(dir, JournalName))
	var runs []HistoryRun
	found := false
	for _, path := range files {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		rs, err := historyOf(filepath.Base(path), data)
		if err != nil {
			return nil, err
		}
		runs = append(runs, rs...)
	}
	if !found {
		return nil, fmt.Errorf("no journal in %s (no rollout of this plan ran here): %w", dir, os.ErrNotExist)
	}
	sort.SliceStable(runs, func(a, b int) bool { return runs[a].Started.Before(runs[b].Started) })
	return runs, nil
}

// historyOf folds one journal into its runs.
func historyOf(name string, data []byte) ([]HistoryRun, error) {
	lines, _ := splitLines(data)
	var (
		runs     []HistoryRun
		plan     string
		hash     string
		intents  = map[string]*Record{}
		intentOf = map[string]int{} // key -> index of the run that sent it
		waiting  = map[string]WaitRecord{}
	)
	cur := func() *HistoryRun {
		if len(runs) == 0 {
			return nil
		}
		return &runs[len(runs)-1]
	}
	closeWaits := func() {
		r := cur()
		if r == nil {
			return
		}
		ids := sortedKeysOf(waiting)
		for _, id := range ids {
			r.Waiting = append(r.Waiting, waiting[id])
		}
		clear(waiting)
	}
	for i, line := range lines {
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("%s line %d is not a journal record (%v)", name, i+1, err)
		}
		if rec.V > Version {
			return nil, fmt.Errorf("%s line %d has record version %d, newer than this rollout understands (%d)", name, i+1, rec.V, Version)
		}
		if r := cur(); r != nil && rec.Type != TypeRunStart && rec.Time.After(r.Last) {
			r.Last = rec.Time
		}
		switch rec.Type {
		case TypePlan:
			plan, hash = rec.Plan, rec.Hash
		case TypeRunStart:
			closeWaits()
			runs = append(runs, HistoryRun{Journal: name, Plan: plan, PlanHash: hash, Index: len(runs) + 1, PID: rec.PID,
				User: rec.User, Host: rec.Host, Started: rec.Time, Last: rec.Time, Resumed: rec.Resumed, Sim: rec.Sim,
				API: rec.API, PlanFile: rec.PlanFile, Outcomes: map[string]int{}})
		case TypeIntent:
			c := rec
			intents[rec.Key] = &c
			intentOf[rec.Key] = len(runs) - 1
		case TypeResult:
			in := intents[rec.Key]
			if in == nil || rec.Error != "" {
				continue
			}
			ri, ok := intentOf[rec.Key]
			if !ok || ri < 0 {
				// Recorded before any run: a manual action in a
				// journal that has none yet.
				continue
			}
			r := &runs[ri]
			for _, c := range createdBy(in, rec.JobID) {
				c.At = rec.Time
				c.Outside = !r.Finished.IsZero() && in.Time.After(r.Finished)
				r.Created = append(r.Created, c)
			}
		case TypeOutcome:
			if r := cur(); r != nil {
				r.Outcomes[rec.Outcome]++
			}
		case TypeWait:
			if rec.Wait != nil {
				waiting[rec.Wait.ID] = *rec.Wait
			}
		case TypeDecision:
			if rec.Wait == nil {
				continue
			}
			delete(waiting, rec.Wait.ID)
			if r := cur(); r != nil && rec.Wait.Decision != string(engine.Stopped) {
				r.Decisions = append(r.Decisions, *rec.Wait)
			}
		case TypeFinish:
			if r := cur(); r != nil {
				r.Finished = rec.Time
				r.Verdict = rec.Verdict
				if r.Verdict == "" && rec.Exit != nil {
					r.Verdict = verdictOfExit(*rec.Exit)
				}
			}
		}
	}
	closeWaits()
	return runs, nil
}

func sortedKeysOf[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// createdBy names what a successful state-changing call made or acted on,
// from its endpoint, as replay reads it.
func createdBy(in *Record, jobID int64) []CreatedID {
	ep := in.Endpoint
	inst, _, _ := strings.Cut(in.Key, " ")
	intent := &Intent{Key: in.Key, Endpoint: ep, Params: in.Params}
	switch {
	case strings.Contains(ep, "switchprofile"):
		fleet := ""
		if parts := strings.Split(strings.Trim(ep, "/"), "/"); len(parts) >= 2 {
			for i, p := range parts {
				if p == "fleet" && i+1 < len(parts) {
					fleet = parts[i+1]
				}
			}
		}
		return []CreatedID{{Kind: "switch", Instance: inst, Fleet: fleet, Profile: firstParam(in.Params, "ProfileID", "profileid", "profile")}}
	case strings.Contains(ep, "imageupdate/create"):
		return job("update", jobID, inst)
	case strings.Contains(ep, "imagediff/create"), strings.Contains(ep, "imagediff") && strings.HasSuffix(ep, "/retry"):
		return job("diff", jobID, inst)
	case strings.Contains(ep, "imagediff") && strings.Contains(ep, "reject"):
		diff := idFrom(intent, "diffid")
		out := []CreatedID{{Kind: "reject", ID: diff, Instance: inst}}
		if jobID != 0 && jobID != diff {
			out = append(out, CreatedID{Kind: "uninstall", ID: jobID, Instance: inst})
		}
		return out
	case strings.Contains(ep, "imageversion/create"):
		return job("version", jobID, inst)
	case strings.Contains(ep, "imageinstall") && strings.Contains(ep, "queue"):
		id := jobID
		if id == 0 {
			id = idFrom(intent, "jobid")
		}
		kind := "install"
		if in.Params["mirroring"] == "true" || in.Params["mirroring"] == "1" {
			kind = "mirror"
		}
		return job(kind, id, inst)
	}
	return nil
}

func job(kind string, id int64, inst string) []CreatedID {
	if id == 0 {
		return nil
	}
	return []CreatedID{{Kind: kind, ID: id, Instance: inst}}
}

func firstParam(p map[string]string, names ...string) string {
	for _, n := range names {
		if v, ok := p[n]; ok {
			return v
		}
	}
	return ""
}
