package state

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// EventsName is the event log of the run in progress (or the last run) in
// the state directory.
const EventsName = "events.jsonl"

// The event log lets `rollout watch` show a run from another terminal as
// the run's own live view shows it: every engine event, in order, so that a
// watcher that attaches late catches up and ends on the same summary. The
// journal alone could not do that: it holds outcomes, not what is running,
// its jobs' progress, waves or the summary.
//
// The log belongs to one run: the run starts it afresh with a header that
// names its pid, and a watcher follows it only while that pid holds the
// directory's lock. It is written off the engine's goroutines: an event is
// queued in memory (the progress of one instance coalesced, latest wins,
// as the live view does) and a writer goroutine encodes and appends the
// queue a few times a second, so the run never waits for the disk. Every
// string is masked by the output boundary (redact's JSON encoder) before
// it is written; a failure to write stops the log, never the run.
//
// The records are this package's own, not the JSON reporter's public
// events: they keep what a faithful replay needs (error kinds, on_failure
// no-ops) and may change with the program; the header's version says
// which.

// EventLogVersion is the version of the event log's records.
const EventLogVersion = 1

// Record kinds of the event log ("t").
const (
	evHeader       = "log"
	evRunStarted   = "run_started"
	evWave         = "wave"
	evStarted      = "started"
	evProgress     = "progress"
	evFinished     = "finished"
	evAborting     = "aborting"
	evRequests     = "requests"
	evNotice       = "notice"
	evWaitStarted  = "wait"
	evWaitEnded    = "wait_ended"
	evRunFinished  = "run_finished"
	eventLogPeriod = 100 * time.Millisecond
)

// logRecord is one line of the event log.
type logRecord struct {
	T string `json:"t"`
	// header
	V       int       `json:"v,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`

	Run       *engine.RunInfo  `json:"run,omitempty"`
	ID        string           `json:"id,omitempty"`
	Step      string           `json:"step,omitempty"`
	Image     string           `json:"image,omitempty"`
	Wave      int              `json:"wave,omitempty"`
	Waves     int              `json:"waves,omitempty"`
	Instances []string         `json:"instances,omitempty"`
	At        time.Time        `json:"at,omitzero"`
	Job       *engine.JobInfo  `json:"job,omitempty"`
	Result    *logResult       `json:"result,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	N         int64            `json:"n,omitempty"`
	Notice    *engine.Notice   `json:"notice,omitempty"`
	Wait      *engine.WaitInfo `json:"wait,omitempty"`
	Decision  *engine.Decision `json:"decision,omitempty"`
	Summary   *logSummary      `json:"summary,omitempty"`
}

// logErr keeps an error's text and the kinds the views tell apart.
type logErr struct {
	Text  string `json:"text"`
	Skip  bool   `json:"skip,omitempty"`
	Abort bool   `json:"abort,omitempty"`
	By    string `json:"by,omitempty"`
	Why   string `json:"why,omitempty"`
}

func errOf(err error) *logErr {
	if err == nil {
		return nil
	}
	e := &logErr{Text: err.Error()}
	var se *engine.SkipError
	var ae *engine.AbortError
	switch {
	case errors.As(err, &ae):
		e.Abort, e.By, e.Why = true, ae.By, ae.Reason
	case errors.As(err, &se):
		e.Skip = true
	}
	return e
}

func (e *logErr) err() error {
	switch {
	case e == nil:
		return nil
	case e.Abort:
		return &engine.AbortError{By: e.By, Reason: e.Why}
	case e.Skip:
		return &engine.SkipError{Reason: e.Text}
	}
	return errors.New(e.Text)
}

type logResult struct {
	Outcome  engine.Outcome  `json:"outcome"`
	Err      *logErr         `json:"err,omitempty"`
	Started  time.Time       `json:"started,omitzero"`
	Finished time.Time       `json:"finished,omitzero"`
	Job      *engine.JobInfo `json:"job,omitempty"`
	Detail   string          `json:"detail,omitempty"`
	Restored bool            `json:"restored,omitempty"`
}

type logSummary struct {
	Verdict     engine.Verdict          `json:"verdict"`
	Plan        string                  `json:"plan"`
	Started     time.Time               `json:"started,omitzero"`
	Finished    time.Time               `json:"finished,omitzero"`
	Counts      map[engine.Outcome]int  `json:"counts,omitempty"`
	Failures    []logFailure            `json:"failures,omitempty"`
	AbortReason string                  `json:"abort_reason,omitempty"`
	Decisions   []engine.DecisionRecord `json:"decisions,omitempty"`
	Unfinished  []engine.UnfinishedJob  `json:"unfinished,omitempty"`
	Requests    int64                   `json:"requests,omitempty"`
	Targets     []logTarget             `json:"targets,omitempty"`
	OnFailure   []logOnFailure          `json:"on_failure,omitempty"`
}

type logFailure struct {
	Instance, Machine, Image string
	Err                      *logErr
}

type logTarget struct {
	Machine, Image string
	Outcome        engine.Outcome
	Err            *logErr
	Elapsed        time.Duration
}

type logOnFailure struct {
	Instance, Step, Machine, Image string
	Outcome                        engine.Outcome
	Err                            *logErr
	Detail                         string
	Noop                           bool
}

func summaryOf(s engine.Summary) *logSummary {
	ls := &logSummary{Verdict: s.Verdict, Plan: s.Plan, Started: s.Started, Finished: s.Finished, Counts: s.Counts,
		AbortReason: s.AbortReason, Decisions: s.Decisions, Unfinished: s.Unfinished, Requests: s.Requests}
	for _, f := range s.Failures {
		ls.Failures = append(ls.Failures, logFailure{f.Instance, f.Machine, f.Image, errOf(f.Err)})
	}
	for _, t := range s.Targets {
		ls.Targets = append(ls.Targets, logTarget{t.Machine, t.Image, t.Outcome, errOf(t.Err), t.Elapsed})
	}
	for _, o := range s.OnFailure {
		ls.OnFailure = append(ls.OnFailure, logOnFailure{o.Instance, o.Step, o.Machine, o.Image, o.Outcome, errOf(o.Err), o.Detail, o.Noop})
	}
	return ls
}

func (ls *logSummary) summary() engine.Summary {
	s := engine.Summary{Verdict: ls.Verdict, Plan: ls.Plan, Started: ls.Started, Finished: ls.Finished, Counts: ls.Counts,
		AbortReason: ls.AbortReason, Decisions: ls.Decisions, Unfinished: ls.Unfinished, Requests: ls.Requests}
	if s.Counts == nil {
		s.Counts = map[engine.Outcome]int{}
	}
	for _, f := range ls.Failures {
		s.Failures = append(s.Failures, engine.Failure{Instance: f.Instance, Machine: f.Machine, Image: f.Image, Err: f.Err.err()})
	}
	for _, t := range ls.Targets {
		s.Targets = append(s.Targets, engine.TargetSummary{Machine: t.Machine, Image: t.Image, Outcome: t.Outcome, Err: t.Err.err(), Elapsed: t.Elapsed})
	}
	for _, o := range ls.OnFailure {
		s.OnFailure = append(s.OnFailure, engine.OnFailureRun{Instance: o.Instance, Step: o.Step, Machine: o.Machine, Image: o.Image,
			Outcome: o.Outcome, Err: o.Err.err(), Detail: o.Detail, Noop: o.Noop})
	}
	return s
}

// EventLog writes the engine's events of one run to events.jsonl. It
// implements engine.Observer; its methods never block on the disk.
type EventLog struct {
	path string

	mu      sync.Mutex
	queue   []logRecord
	pending map[string]int // instance id -> index in queue of its unwritten progress
	err     error
	closed  bool

	f    *os.File
	w    *bufio.Writer
	wake chan struct{}
	done chan struct{}
}

var _ engine.Observer = (*EventLog)(nil)

// CreateEventLog starts dir's event log afresh for the run of this process
// (the one that holds dir) and starts its writer.
func CreateEventLog(dir string) (*EventLog, error) {
	path := filepath.Join(dir, EventsName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create event log: %w", err)
	}
	l := &EventLog{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), pending: map[string]int{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	l.queue = append(l.queue, logRecord{T: evHeader, V: EventLogVersion, PID: os.Getpid(), Started: time.Now().UTC()})
	go l.writer()
	return l, nil
}

// Err is the first error writing the log, if any. The log stops at it; the
// run goes on.
func (l *EventLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close writes what is queued and closes the file.
func (l *EventLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.Err()
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	cerr := l.f.Close()
	if err := l.Err(); err != nil {
		return err
	}
	return cerr
}

func (l *EventLog) writer() {
	defer close(l.done)
	t := time.NewTicker(eventLogPeriod)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.wake:
		}
		l.mu.Lock()
		batch := l.queue
		l.queue = nil
		clear(l.pending)
		closed := l.closed
		failed := l.err != nil
		l.mu.Unlock()
		if !failed && len(batch) > 0 {
			if err := l.write(batch); err != nil {
				l.mu.Lock()
				l.err = fmt.Errorf("write %s: %w", l.path, err)
				l.mu.Unlock()
			}
		}
		if closed {
			return
		}
	}
}

func (l *EventLog) write(batch []logRecord) error {
	enc := redact.NewJSONEncoder(l.w)
	enc.SetEscapeHTML(false)
	for i := range batch {
		if err := enc.Encode(&batch[i]); err != nil {
			return err
		}
	}
	return l.w.Flush()
}

// push queues r. A progress record replaces the unwritten progress of the
// same instance in place; any other record about an instance ends that
// coalescing, so that order within one instance is kept.
func (l *EventLog) push(r logRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.err != nil {
		return
	}
	if r.T == evProgress {
		if i, ok := l.pending[r.ID]; ok {
			l.queue[i].Job = r.Job
			return
		}
		l.pending[r.ID] = len(l.queue)
	} else if r.ID != "" {
		delete(l.pending, r.ID)
	}
	l.queue = append(l.queue, r)
}

// RunStarted implements engine.Observer.
func (l *EventLog) RunStarted(info engine.RunInfo) {
	info.Instances = append([]engine.InstanceInfo(nil), info.Instances...)
	l.push(logRecord{T: evRunStarted, Run: &info})
}

// WaveStarted implements engine.Observer.
func (l *EventLog) WaveStarted(step, image string, wave, waves int, instances []string) {
	l.push(logRecord{T: evWave, Step: step, Image: image, Wave: wave, Waves: waves, Instances: append([]string(nil), instances...)})
}

// InstanceStarted implements engine.Observer.
func (l *EventLog) InstanceStarted(id string, at time.Time) {
	l.push(logRecord{T: evStarted, ID: id, At: at})
}

// JobProgress implements engine.Observer.
func (l *EventLog) JobProgress(id string, job engine.JobInfo) {
	l.push(logRecord{T: evProgress, ID: id, Job: &job})
}

// InstanceFinished implements engine.Observer.
func (l *EventLog) InstanceFinished(id string, r engine.Result) {
	l.push(logRecord{T: evFinished, ID: id, Result: &logResult{Outcome: r.Outcome, Err: errOf(r.Err), Started: r.Started,
		Finished: r.Finished, Job: r.Job, Detail: r.Detail, Restored: r.Restored}})
}

// Aborting implements engine.Observer.
func (l *EventLog) Aborting(reason string) { l.push(logRecord{T: evAborting, Reason: reason}) }

// RequestCount implements engine.Observer.
func (l *EventLog) RequestCount(n int64) { l.push(logRecord{T: evRequests, N: n}) }

// Notice implements engine.Observer.
func (l *EventLog) Notice(n engine.Notice) { l.push(logRecord{T: evNotice, Notice: &n}) }

// WaitStarted implements engine.Observer.
func (l *EventLog) WaitStarted(w engine.WaitInfo) { l.push(logRecord{T: evWaitStarted, Wait: &w}) }

// WaitEnded implements engine.Observer.
func (l *EventLog) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	l.push(logRecord{T: evWaitEnded, Wait: &w, Decision: &d})
}

// RunFinished implements engine.Observer.
func (l *EventLog) RunFinished(s engine.Summary) {
	l.push(logRecord{T: evRunFinished, Summary: summaryOf(s)})
	// The end goes out at once: a watcher is waiting for it.
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// FollowOptions tune FollowEvents.
type FollowOptions struct {
	// PID is the run to follow: the holder of the directory's lock. A
	// log whose header names another pid is the previous run's, not yet
	// replaced: FollowEvents waits for the new one.
	PID int
	// Alive reports whether that run still holds the directory; asked
	// whenever the log has nothing new. Required.
	Alive func() bool
	// Poll is how often the log is read for new records (default 100ms).
	Poll time.Duration
}

// FollowResult is how a followed run ended.
type FollowResult struct {
	// Finished is true when the run's summary arrived; Summary is it.
	Finished bool
	Summary  engine.Summary
}

// ErrNoEventLog says a run holds the directory but never started an event
// log for it (a rollout of an older version).
var ErrNoEventLog = errors.New("the run in progress writes no event log")

// FollowEvents replays dir's event log into obs from its start, then
// follows it as the run appends, until the run's summary arrived (which
// obs has received), the run stopped holding the directory without one
// (crashed or killed: Finished is false), or ctx ended.
func FollowEvents(ctx context.Context, dir string, obs engine.Observer, o FollowOptions) (FollowResult, error) {
	if o.Poll <= 0 {
		o.Poll = eventLogPeriod
	}
	path := filepath.Join(dir, EventsName)
	var (
		f       *os.File
		partial []byte
		res     FollowResult
		header  bool
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil && !os.IsNotExist(err) {
				return res, err
			}
		}
		progressed, stale := false, false
		if f != nil {
			n, err := f.Read(buf)
			if err != nil && err != io.EOF {
				return res, err
			}
			if n > 0 {
				progressed = true
				partial = append(partial, buf[:n]...)
			}
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				line := partial[:i]
				partial = partial[i+1:]
				var r logRecord
				if err := json.Unmarshal(line, &r); err != nil {
					return res, fmt.Errorf("%s: a damaged record: %v", path, err)
				}
				if !header {
					if r.T != evHeader || r.V > EventLogVersion {
						return res, fmt.Errorf("%s is not an event log this rollout can read", path)
					}
					if o.PID > 0 && r.PID != o.PID {
						// The previous run's log: wait for this run's.
						f.Close()
						f, partial, stale = nil, nil, true
						break
					}
					header = true
					continue
				}
				if dispatch(obs, &r, &res) {
					return res, nil
				}
			}
		}
		if progressed && !stale {
			continue
		}
		if !o.Alive() {
			// One last read: the run may have written its end just
			// before it let the directory go.
			if f != nil {
				if rest, _ := io.ReadAll(f); len(rest) > 0 {
					partial = append(partial, rest...)
					continue
				}
			}
			if f == nil && !header {
				return res, ErrNoEventLog
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// dispatch hands one record to obs; it reports the run's end.
func dispatch(obs engine.Observer, r *logRecord, res *FollowResult) bool {
	switch r.T {
	case evRunStarted:
		if r.Run != nil {
			obs.RunStarted(*r.Run)
		}
	case evWave:
		obs.WaveStarted(r.Step, r.Image, r.Wave, r.Waves, r.Instances)
	case evStarted:
		obs.InstanceStarted(r.ID, r.At)
	case evProgress:
		if r.Job != nil {
			obs.JobProgress(r.ID, *r.Job)
		}
	case evFinished:
		if r.Result != nil {
			obs.InstanceFinished(r.ID, engine.Result{Outcome: r.Result.Outcome, Err: r.Result.Err.err(), Started: r.Result.Started,
				Finished: r.Result.Finished, Job: r.Result.Job, Detail: r.Result.Detail, Restored: r.Result.Restored})
		}
	case evAborting:
		obs.Aborting(r.Reason)
	case evRequests:
		obs.RequestCount(r.N)
	case evNotice:
		if r.Notice != nil {
			obs.Notice(*r.Notice)
		}
	case evWaitStarted:
		if r.Wait != nil {
			obs.WaitStarted(*r.Wait)
		}
	case evWaitEnded:
		if r.Wait != nil && r.Decision != nil {
			obs.WaitEnded(*r.Wait, *r.Decision)
		}
	case evRunFinished:
		if r.Summary != nil {
			res.Finished, res.Summary = true, r.Summary.summary()
			obs.RunFinished(res.Summary)
			return true
		}
	}
	// Unknown records come from a newer rollout within the same version:
	// skipped.
	return false
}
