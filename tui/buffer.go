package tui

import (
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
)

// eventKind tells which Observer call an ordered event came from.
type eventKind uint8

const (
	evRunStarted eventKind = iota + 1
	evWaveStarted
	evInstanceStarted
	evInstanceFinished
	evAborting
	evRunFinished
	evNotice
	evWaitStarted
	evWaitEnded
)

// event is one ordered Observer call. Progress is not an event: it is
// coalesced separately (latest per instance wins).
type event struct {
	kind    eventKind
	id      string // instance id; step for waves
	image   string // waves
	wave    int
	waves   int
	at      time.Time
	result  engine.Result
	reason  string
	run     *engine.RunInfo
	summary *engine.Summary
	notice  engine.Notice
	wait    engine.WaitInfo
	dec     engine.Decision
}

// batch is everything the engine reported since the previous tick.
type batch struct {
	events   []event
	progress map[string]engine.JobInfo
	requests int64
	hasReq   bool
}

func (b *batch) empty() bool {
	return len(b.events) == 0 && len(b.progress) == 0 && !b.hasReq
}

// buffer is the engine-facing half of the UI. Its methods are called from the
// engine's goroutines and only take a mutex for the length of a slice append or
// a map store, so they never wait on the terminal. The program drains it on a
// tick (see Model.drainCmd); Program.Send is never used because it blocks
// until the event loop reads the message.
//
// Ordering: ordered events keep their order; progress is coalesced per
// instance and applied after the ordered events of the same batch, and
// progress for an instance that already finished is ignored, so a late
// progress event can never resurrect a finished instance.
type buffer struct {
	mu       sync.Mutex
	events   []event
	progress map[string]engine.JobInfo
	spare    map[string]engine.JobInfo // recycled progress map
	requests int64
	hasReq   bool
}

func newBuffer() *buffer {
	return &buffer{progress: make(map[string]engine.JobInfo)}
}

func (b *buffer) push(e event) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
}

// RunStarted implements engine.Observer.
func (b *buffer) RunStarted(info engine.RunInfo) {
	// Copy the instance slice: the engine owns the original.
	info.Instances = append([]engine.InstanceInfo(nil), info.Instances...)
	b.push(event{kind: evRunStarted, run: &info})
}

// WaveStarted implements engine.Observer.
func (b *buffer) WaveStarted(step, image string, wave, waves int, _ []string) {
	b.push(event{kind: evWaveStarted, id: step, image: image, wave: wave, waves: waves})
}

// InstanceStarted implements engine.Observer.
func (b *buffer) InstanceStarted(id string, at time.Time) {
	b.push(event{kind: evInstanceStarted, id: id, at: at})
}

// JobProgress implements engine.Observer. It is the hot path: one map store
// under the mutex, no allocation once the instance has a slot in the map.
func (b *buffer) JobProgress(id string, job engine.JobInfo) {
	b.mu.Lock()
	b.progress[id] = job
	b.mu.Unlock()
}

// InstanceFinished implements engine.Observer.
func (b *buffer) InstanceFinished(id string, r engine.Result) {
	if r.Job != nil {
		j := *r.Job
		r.Job = &j
	}
	b.push(event{kind: evInstanceFinished, id: id, result: r})
}

// Aborting implements engine.Observer.
func (b *buffer) Aborting(reason string) {
	b.push(event{kind: evAborting, reason: reason})
}

// RequestCount implements engine.Observer. n is the running total of API
// requests; only the latest value matters.
func (b *buffer) RequestCount(n int64) {
	b.mu.Lock()
	if n > b.requests || !b.hasReq {
		b.requests = n
	}
	b.hasReq = true
	b.mu.Unlock()
}

// Notice implements engine.Observer.
func (b *buffer) Notice(n engine.Notice) {
	b.push(event{kind: evNotice, notice: n})
}

// WaitStarted implements engine.Observer.
func (b *buffer) WaitStarted(w engine.WaitInfo) { b.push(event{kind: evWaitStarted, wait: w}) }

// WaitEnded implements engine.Observer.
func (b *buffer) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	b.push(event{kind: evWaitEnded, wait: w, dec: d})
}

// RunFinished implements engine.Observer.
func (b *buffer) RunFinished(s engine.Summary) {
	b.push(event{kind: evRunFinished, summary: &s})
}

// drain takes everything buffered so far.
func (b *buffer) drain() batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := batch{events: b.events, requests: b.requests, hasReq: b.hasReq}
	b.events = nil
	if len(b.progress) > 0 {
		out.progress = b.progress
		if b.spare != nil {
			b.progress, b.spare = b.spare, nil
		} else {
			b.progress = make(map[string]engine.JobInfo, len(out.progress))
		}
	}
	return out
}

// recycle hands a drained progress map back for reuse, so that a steady
// stream of progress does not allocate a new map on every tick.
func (b *buffer) recycle(m map[string]engine.JobInfo) {
	if m == nil {
		return
	}
	clear(m)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = m
	}
	b.mu.Unlock()
}

var _ engine.Observer = (*buffer)(nil)
