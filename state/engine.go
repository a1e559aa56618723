package state

import (
	"fmt"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
)

// WaitRecord is one wait of a run (an approval, a bake) in the journal: when
// it began and, once it ended, how and by whom.
type WaitRecord struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // approval, bake
	Step    string    `json:"step,omitempty"`
	Image   string    `json:"image,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until,omitzero"`
	// Decision, By, At and Reason are set on a decision record.
	Decision string    `json:"decision,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

// Recorder lets a journal serve as the engine's journal: it restores the
// outputs of instances that succeeded in an earlier run, records every
// outcome, and records and restores waits and their decisions. It keeps
// the first write error: the engine goes on (the remote jobs are real
// either way), and the caller reports it and does not let the run end as a
// success.
type Recorder struct {
	j     *Journal
	mu    sync.Mutex
	first error
}

var _ engine.Journal = (*Recorder)(nil)

// NewRecorder returns the engine's view of j.
func NewRecorder(j *Journal) *Recorder { return &Recorder{j: j} }

// Err is the first error writing the journal, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

func (r *Recorder) keep(what string, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	if r.first == nil {
		r.first = fmt.Errorf("%s: %w", what, err)
	}
	r.mu.Unlock()
}

// Restore implements engine.Journal.
func (r *Recorder) Restore(id string) (*plan.Output, bool) { return r.j.Succeeded(id) }

// Record implements engine.Journal.
func (r *Recorder) Record(id string, res engine.Result, out *plan.Output) {
	var job *JobRecord
	if res.Job != nil {
		job = &JobRecord{Kind: res.Job.Kind, ID: res.Job.ID, State: res.Job.State, StateName: res.Job.StateName, Instance: id}
	}
	r.keep("recording the outcome of "+id, r.j.Outcome(id, res.Outcome.String(), engine.ErrText(res.Err), job, out))
}

// WaitStarted implements engine.Journal.
func (r *Recorder) WaitStarted(w engine.WaitInfo) {
	r.keep("recording the wait "+w.ID, r.j.write(&Record{Type: TypeWait, Wait: waitRecord(w)}))
}

// RecordDecision implements engine.Journal.
func (r *Recorder) RecordDecision(w engine.WaitInfo, d engine.Decision) {
	wr := waitRecord(w)
	wr.Decision, wr.By, wr.At, wr.Reason = string(d.Kind), d.By, d.At.UTC(), d.Reason
	r.keep("recording the decision on "+w.ID, r.j.write(&Record{Type: TypeDecision, Wait: wr}))
}

// WaitSince implements engine.Journal.
func (r *Recorder) WaitSince(id string) (time.Time, bool) {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	w, ok := r.j.live.s.Waits[id]
	if !ok {
		return time.Time{}, false
	}
	return w.Since, true
}

// Decided implements engine.Journal.
func (r *Recorder) Decided(id string) (engine.Decision, bool) {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	w, ok := r.j.live.s.Waits[id]
	if !ok || w.Decision == "" {
		return engine.Decision{}, false
	}
	return engine.Decision{Kind: engine.DecisionKind(w.Decision), By: w.By, At: w.At, Reason: w.Reason}, true
}

func waitRecord(w engine.WaitInfo) *WaitRecord {
	return &WaitRecord{ID: w.ID, Kind: string(w.Kind), Step: w.Step, Image: w.Image, Message: MaskCredentials(w.Message),
		Since: w.Since.UTC(), Until: w.Until.UTC()}
}
