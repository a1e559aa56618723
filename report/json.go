package report

import (
	"io"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// EventVersion is the version of the events JSON writes, in every event's
// "v" field.
const EventVersion = 1

// Event types, in the "type" field.
const (
	EventRunStarted       = "run_started"
	EventWaveStarted      = "wave_started"
	EventInstanceStarted  = "instance_started"
	EventJobProgress      = "job_progress"
	EventInstanceFinished = "instance_finished"
	EventAborting         = "aborting"
	EventNotice           = "api_wait"
	EventWaitStarted      = "wait_started"
	EventWaitEnded        = "wait_ended"
	EventRequestCount     = "request_count"
	EventRunFinished      = "run_finished"
)

// JSON writes one JSON object per line for every observer call. Every
// object has "v" (EventVersion), "type" and "time" (RFC 3339, UTC); the
// other fields depend on the type and use snake_case names. Every string
// value is masked by the output boundary (redact.JSONEncoder): the known
// secrets in every encoding, URL credentials; characters a terminal would
// act on are \u escapes even where encoding/json leaves them raw.
type JSON struct {
	mu       sync.Mutex
	enc      *redact.JSONEncoder
	now      func() time.Time
	err      error
	commands func(engine.WaitInfo) (approve, abort string)
}

// NewJSON returns a reporter writing to w.
func NewJSON(w io.Writer, opts ...Option) *JSON {
	c := newConfig(opts)
	enc := redact.NewJSONEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSON{enc: enc, now: c.now, commands: c.commands}
}

// Err is the first error writing to w, if any.
func (j *JSON) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Header starts every event.
type Header struct {
	V    int       `json:"v"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
}

// The event bodies. Exported so that consumers and tests can decode them.
type (
	RunStartedEvent struct {
		Header
		Plan        string         `json:"plan"`
		Concurrency int            `json:"concurrency"`
		Targets     int            `json:"targets"`
		Started     time.Time      `json:"started"`
		Resumed     bool           `json:"resumed"`
		Instances   []InstanceJSON `json:"instances"`
	}
	InstanceJSON struct {
		ID        string `json:"id"`
		Step      string `json:"step"`
		Type      string `json:"type"`
		Machine   string `json:"machine,omitempty"`
		Image     string `json:"image"`
		Wave      int    `json:"wave"` // 0-based; -1 without waves
		OnFailure bool   `json:"on_failure,omitempty"`
	}
	WaveStartedEvent struct {
		Header
		Step      string   `json:"step"`
		Image     string   `json:"image"`
		Wave      int      `json:"wave"` // 0-based
		Waves     int      `json:"waves"`
		Instances []string `json:"instances"`
	}
	InstanceStartedEvent struct {
		Header
		ID string    `json:"id"`
		At time.Time `json:"at"`
	}
	JobJSON struct {
		Kind      string `json:"kind"`
		ID        int64  `json:"id"`
		State     int    `json:"state"`
		StateName string `json:"state_name"`
		Progress  int    `json:"progress"`
		ETA       string `json:"eta,omitempty"` // RFC 3339; absent when unknown
		Error     string `json:"error,omitempty"`
		// Detail is the progress in words of a ready step (counters per
		// region) or a switch (servers per fleet); absent for jobs.
		Detail string `json:"detail,omitempty"`
	}
	JobProgressEvent struct {
		Header
		ID  string  `json:"id"`
		Job JobJSON `json:"job"`
	}
	InstanceFinishedEvent struct {
		Header
		ID        string    `json:"id"`
		Outcome   string    `json:"outcome"`
		Error     string    `json:"error,omitempty"`
		Started   time.Time `json:"started"`
		Finished  time.Time `json:"finished"`
		ElapsedMS int64     `json:"elapsed_ms"`
		Job       *JobJSON  `json:"job,omitempty"`
		Detail    string    `json:"detail,omitempty"`
	}
	AbortingEvent struct {
		Header
		Reason string `json:"reason"`
	}
	// WaitJSON is a wait of the run: an approval or a bake time.
	WaitJSON struct {
		ID        string    `json:"id"`
		Kind      string    `json:"kind"`
		Step      string    `json:"step"`
		Image     string    `json:"image"`
		Wave      int       `json:"wave"`
		Message   string    `json:"message,omitempty"`
		Since     time.Time `json:"since"`
		Until     time.Time `json:"until,omitzero"`
		OnTimeout string    `json:"on_timeout,omitempty"`
		Progress  string    `json:"progress,omitempty"`
	}
	// WaitStartedEvent: the run waits for a person or a clock, with the
	// commands that approve or abort from another terminal.
	WaitStartedEvent struct {
		Header
		Wait    WaitJSON `json:"wait"`
		Approve string   `json:"approve_command,omitempty"`
		Abort   string   `json:"abort_command,omitempty"`
	}
	// DecisionJSON is how a wait ended and who ended it.
	DecisionJSON struct {
		Wait     WaitJSON  `json:"wait"`
		Decision string    `json:"decision"`
		By       string    `json:"by,omitempty"`
		At       time.Time `json:"at"`
		Reason   string    `json:"reason,omitempty"`
	}
	WaitEndedEvent struct {
		Header
		DecisionJSON
	}
	// NoticeEvent is a wait of the API client: a retry, a Retry-After
	// hold, a resend proven harmless, a slow answer.
	NoticeEvent struct {
		Header
		Kind        string `json:"kind"`
		Endpoint    string `json:"endpoint"`
		Attempt     int    `json:"attempt,omitempty"`
		DelayMS     int64  `json:"delay_ms"`
		Reason      string `json:"reason,omitempty"`
		Text        string `json:"text"`
		Unreachable bool   `json:"unreachable,omitempty"`
	}
	RequestCountEvent struct {
		Header
		Requests int64 `json:"requests"`
	}
	RunFinishedEvent struct {
		Header
		Plan        string           `json:"plan"`
		Status      string           `json:"status"` // succeeded, failed, aborted, interrupted
		Started     time.Time        `json:"started"`
		Finished    time.Time        `json:"finished"`
		ElapsedMS   int64            `json:"elapsed_ms"`
		Counts      map[string]int   `json:"counts"`
		Failures    []FailureJSON    `json:"failures"`
		Aborted     bool             `json:"aborted"`
		AbortReason string           `json:"abort_reason,omitempty"`
		Interrupted bool             `json:"interrupted"`
		Unfinished  []UnfinishedJSON `json:"unfinished"`
		Requests    int64            `json:"requests"`
		Targets     []TargetJSON     `json:"targets"`
		OnFailure   []OnFailureJSON  `json:"on_failure"`
		Decisions   []DecisionJSON   `json:"decisions"`
		Switches    []OnFailureJSON  `json:"switches,omitempty"`
	}
	FailureJSON struct {
		Instance string `json:"instance"`
		Machine  string `json:"machine,omitempty"`
		Image    string `json:"image"`
		Error    string `json:"error"`
	}
	OnFailureJSON struct {
		Instance string `json:"instance"`
		Machine  string `json:"machine,omitempty"`
		Image    string `json:"image"`
		Outcome  string `json:"outcome"`
		Error    string `json:"error,omitempty"`
		Detail   string `json:"detail,omitempty"`
	}
	UnfinishedJSON struct {
		Instance string  `json:"instance"`
		Job      JobJSON `json:"job"`
	}
	TargetJSON struct {
		Machine   string `json:"machine,omitempty"`
		Image     string `json:"image"`
		Outcome   string `json:"outcome"`
		Error     string `json:"error,omitempty"`
		ElapsedMS int64  `json:"elapsed_ms"`
	}
)

func (j *JSON) header(typ string) Header {
	return Header{V: EventVersion, Type: typ, Time: j.now().UTC()}
}

// emit encodes one event as one line. j.mu must be held.
func (j *JSON) emit(v any) {
	if j.err != nil {
		return
	}
	if err := j.enc.Encode(v); err != nil {
		j.err = err
	}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func jobJSON(job engine.JobInfo) JobJSON {
	out := JobJSON{Kind: job.Kind, ID: job.ID, State: job.State, StateName: job.StateName,
		Progress: job.Progress, Error: job.Error, Detail: job.Detail}
	if !job.ETA.IsZero() {
		out.ETA = job.ETA.UTC().Format(time.RFC3339)
	}
	return out
}

// RunStarted implements engine.Observer.
func (j *JSON) RunStarted(info engine.RunInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ev := RunStartedEvent{Header: j.header(EventRunStarted), Plan: info.Plan, Concurrency: info.Concurrency,
		Targets: info.Targets, Started: utc(info.Started), Resumed: info.Resumed,
		Instances: make([]InstanceJSON, 0, len(info.Instances))}
	for _, in := range info.Instances {
		ev.Instances = append(ev.Instances, InstanceJSON{ID: in.ID, Step: in.Step, Type: in.Type,
			Machine: in.Machine, Image: in.Image, Wave: in.Wave, OnFailure: in.OnFailure})
	}
	j.emit(ev)
}

// WaveStarted implements engine.Observer.
func (j *JSON) WaveStarted(step, image string, wave, waves int, instances []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if instances == nil {
		instances = []string{}
	}
	j.emit(WaveStartedEvent{Header: j.header(EventWaveStarted), Step: step, Image: image,
		Wave: wave, Waves: waves, Instances: instances})
}

// InstanceStarted implements engine.Observer.
func (j *JSON) InstanceStarted(id string, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(InstanceStartedEvent{Header: j.header(EventInstanceStarted), ID: id, At: utc(at)})
}

// JobProgress implements engine.Observer.
func (j *JSON) JobProgress(id string, job engine.JobInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(JobProgressEvent{Header: j.header(EventJobProgress), ID: id, Job: jobJSON(job)})
}

// InstanceFinished implements engine.Observer.
func (j *JSON) InstanceFinished(id string, r engine.Result) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ev := InstanceFinishedEvent{Header: j.header(EventInstanceFinished), ID: id, Outcome: string(r.Outcome),
		Error: engine.ErrText(r.Err), Started: utc(r.Started), Finished: utc(r.Finished), Detail: r.Detail}
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		ev.ElapsedMS = r.Finished.Sub(r.Started).Milliseconds()
	}
	if r.Job != nil {
		jj := jobJSON(*r.Job)
		ev.Job = &jj
	}
	j.emit(ev)
}

// Aborting implements engine.Observer.
func (j *JSON) Aborting(reason string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(AbortingEvent{Header: j.header(EventAborting), Reason: reason})
}

// WaitStarted implements engine.Observer.
func (j *JSON) WaitStarted(w engine.WaitInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ev := WaitStartedEvent{Header: j.header(EventWaitStarted), Wait: waitJSON(w)}
	if w.Kind == engine.WaitApproval && j.commands != nil {
		ev.Approve, ev.Abort = j.commands(w)
	}
	j.emit(ev)
}

// WaitEnded implements engine.Observer.
func (j *JSON) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(WaitEndedEvent{Header: j.header(EventWaitEnded), DecisionJSON: decisionJSON(w, d)})
}

func waitJSON(w engine.WaitInfo) WaitJSON {
	return WaitJSON{ID: w.ID, Kind: string(w.Kind), Step: w.Step, Image: w.Image, Wave: w.Wave, Message: w.Message,
		Since: utc(w.Since), Until: utc(w.Until), OnTimeout: string(w.OnTimeout), Progress: w.Progress}
}

func decisionJSON(w engine.WaitInfo, d engine.Decision) DecisionJSON {
	return DecisionJSON{Wait: waitJSON(w), Decision: string(d.Kind), By: d.By, At: utc(d.At), Reason: d.Reason}
}

// Notice implements engine.Observer.
func (j *JSON) Notice(n engine.Notice) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(NoticeEvent{Header: j.header(EventNotice), Kind: n.Kind, Endpoint: n.Endpoint, Attempt: n.Attempt,
		DelayMS: n.Delay.Milliseconds(), Reason: n.Reason, Text: n.Text, Unreachable: n.Unreachable})
}

// RequestCount implements engine.Observer.
func (j *JSON) RequestCount(n int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(RequestCountEvent{Header: j.header(EventRequestCount), Requests: n})
}

// RunFinished implements engine.Observer: the full summary in one event.
func (j *JSON) RunFinished(s engine.Summary) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ev := RunFinishedEvent{Header: j.header(EventRunFinished), Plan: s.Plan, Status: runStatus(s),
		Started: utc(s.Started), Finished: utc(s.Finished), Counts: map[string]int{},
		Failures: []FailureJSON{}, Aborted: s.Verdict == engine.VerdictAborted, AbortReason: s.AbortReason,
		Interrupted: s.Verdict == engine.VerdictInterrupted, Unfinished: []UnfinishedJSON{}, Requests: s.Requests,
		Targets: []TargetJSON{}, OnFailure: []OnFailureJSON{}, Decisions: []DecisionJSON{}}
	for _, d := range s.Decisions {
		ev.Decisions = append(ev.Decisions, decisionJSON(d.Wait, d.Decision))
	}
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		ev.ElapsedMS = s.Finished.Sub(s.Started).Milliseconds()
	}
	for o, n := range s.Counts {
		ev.Counts[string(o)] = n
	}
	for _, f := range s.Failures {
		ev.Failures = append(ev.Failures, FailureJSON{Instance: f.Instance, Machine: f.Machine, Image: f.Image, Error: engine.ErrText(f.Err)})
	}
	for _, u := range s.Unfinished {
		ev.Unfinished = append(ev.Unfinished, UnfinishedJSON{Instance: u.Instance, Job: jobJSON(u.Job)})
	}
	for _, t := range s.Targets {
		ev.Targets = append(ev.Targets, TargetJSON{Machine: t.Machine, Image: t.Image, Outcome: string(t.Outcome),
			Error: engine.ErrText(t.Err), ElapsedMS: t.Elapsed.Milliseconds()})
	}
	for _, o := range s.Switches {
		ev.Switches = append(ev.Switches, OnFailureJSON{Instance: o.Instance, Image: o.Image,
			Outcome: string(o.Outcome), Error: engine.ErrText(o.Err), Detail: o.Detail})
	}
	for _, o := range s.OnFailure {
		ev.OnFailure = append(ev.OnFailure, OnFailureJSON{Instance: o.Instance, Machine: o.Machine, Image: o.Image,
			Outcome: string(o.Outcome), Error: engine.ErrText(o.Err), Detail: o.Detail})
	}
	j.emit(ev)
}
