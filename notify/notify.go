// Package notify owns the plan's webhooks: it turns the run's own events
// (started, a wave, an approval waiting, approved, a root-cause failure,
// aborting, finished) into one message per event for each webhook whose
// events list it, in Slack's incoming-webhook text format or as the run's
// JSON event, and delivers them without ever holding the rollout back.
//
// Every message is sent at most once per event, across resumed runs too:
// the journal records each notification before it is sent (and how it
// went after), and a notification the journal already holds is never sent
// again. Delivery retries a bounded number of times with backoff; a message
// that cannot be delivered is a warning, never a failure of the rollout.
// Webhook URLs are secrets: they appear in no output.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
	"github.com/rollout/rollout/report"
)

// Journal records notifications so that each is sent at most once.
type Journal interface {
	// Notified reports whether a notification with key was recorded (sent,
	// being sent, or given up) by this run or an earlier one.
	Notified(key string) bool
	// RecordNotify records a notification: status "sending" before the
	// first attempt, then "sent" or "failed: <why>".
	RecordNotify(key, event, status string) error
}

// Options configure a Notifier.
type Options struct {
	Journal Journal // nil: nothing is remembered across runs
	// Client sends the POSTs; nil: a client with a 10 s timeout.
	Client *http.Client
	// Commands gives the exact commands that approve and abort a wait,
	// for approval messages.
	Commands func(engine.WaitInfo) (approve, abort string)
	// Warn reports a notification that could not be delivered (or
	// recorded). It must not block.
	Warn func(string)
	// AutoApprove tells that the run approves every approval itself (run
	// --auto-approve): nobody is asked, so no approval message is sent;
	// approved is.
	AutoApprove bool
	// Attempts bounds the sends of one message (default 4); Backoff is the
	// first delay between them, doubled each time (default 1 s).
	Attempts int
	Backoff  time.Duration
	Now      func() time.Time
}

// Notifier is an engine.Observer that sends the plan's webhooks. Its
// observer methods only queue messages; Close waits for the queue.
type Notifier struct {
	plan  string
	hooks []*plan.Notify
	opt   Options

	mu      sync.Mutex
	queue   []message
	wake    chan struct{}
	done    chan struct{}
	closed  bool
	stopped bool // Close gave up waiting: nothing more is sent
}

type message struct {
	key   string
	event string
	hook  *plan.Notify
	body  []byte
}

// New returns a notifier for p's webhooks, or nil when p has none. Call
// Close when the run has ended.
func New(p *plan.Plan, opt Options) *Notifier {
	if len(p.Notify) == 0 {
		return nil
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 4
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Warn == nil {
		opt.Warn = func(string) {}
	}
	for _, h := range p.Notify {
		// The URL is a secret wherever it came from.
		redact.AddSecret(h.URL.Resolved)
	}
	n := &Notifier{plan: p.Name, hooks: p.Notify, opt: opt, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go n.deliver()
	return n
}

var _ engine.Observer = (*Notifier)(nil)

// Close waits, at most until ctx ends, for the queued messages to be
// delivered or given up, and stops the notifier. Undelivered messages are
// warned about.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.poke()
	select {
	case <-n.done:
	case <-ctx.Done():
		n.mu.Lock()
		left := len(n.queue)
		n.stopped = true
		n.mu.Unlock()
		if left > 0 {
			n.opt.Warn(fmt.Sprintf("notify: %d notification(s) not delivered before the run ended", left))
		}
	}
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// emit queues one message per webhook that wants event, unless the journal
// says it was sent already. key names the event across runs.
func (n *Notifier) emit(event, key, text string, data any) {
	for i, h := range n.hooks {
		if !wants(h, event) {
			continue
		}
		hk := fmt.Sprintf("%s#%d", key, i)
		if n.opt.Journal != nil && n.opt.Journal.Notified(hk) {
			continue
		}
		body, err := n.body(h, event, text, data)
		if err != nil {
			n.opt.Warn(fmt.Sprintf("notify: %s: %v", event, err))
			continue
		}
		n.mu.Lock()
		n.queue = append(n.queue, message{key: hk, event: event, hook: h, body: body})
		n.mu.Unlock()
	}
	n.poke()
}

func wants(h *plan.Notify, event string) bool {
	for _, e := range h.Events {
		if e == event {
			return true
		}
	}
	return false
}

// body is the message for one webhook. Every string is masked and escaped
// by the output boundary: a message may quote an API error.
func (n *Notifier) body(h *plan.Notify, event, text string, data any) ([]byte, error) {
	var buf bytes.Buffer
	enc := redact.NewJSONEncoder(&buf)
	enc.SetEscapeHTML(false)
	var err error
	if h.Format == "json" {
		err = enc.Encode(JSONMessage{V: 1, Event: event, Plan: n.plan, Text: text, Data: data})
	} else {
		err = enc.Encode(SlackMessage{Text: text})
	}
	return bytes.TrimSpace(buf.Bytes()), err
}

// SlackMessage is the body of a Slack-compatible incoming webhook.
type SlackMessage struct {
	Text string `json:"text"`
}

// JSONMessage is the body of a json-format webhook: the event's name, the
// plan, the same text as the Slack message, and the run's own JSON event.
type JSONMessage struct {
	V     int    `json:"v"`
	Event string `json:"event"`
	Plan  string `json:"plan"`
	Text  string `json:"text"`
	Data  any    `json:"data"`
}

// deliver sends queued messages one at a time until Close.
func (n *Notifier) deliver() {
	defer close(n.done)
	for {
		n.mu.Lock()
		if n.stopped || (len(n.queue) == 0 && n.closed) {
			n.mu.Unlock()
			return
		}
		if len(n.queue) == 0 {
			n.mu.Unlock()
			<-n.wake
			continue
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.send(m)
	}
}

// send delivers one message: recorded before the first attempt, so that a
// crash between the record and the POST can lose a message but never send
// it twice.
func (n *Notifier) send(m message) {
	j := n.opt.Journal
	if j != nil {
		if err := j.RecordNotify(m.key, m.event, "sending"); err != nil {
			n.opt.Warn(fmt.Sprintf("notify: %s not sent: recording it failed: %v", m.event, err))
			return
		}
	}
	var last error
	delay := n.opt.Backoff
	for attempt := 1; attempt <= n.opt.Attempts; attempt++ {
		if last = n.post(m); last == nil {
			if j != nil {
				_ = j.RecordNotify(m.key, m.event, "sent")
			}
			return
		}
		var perm *permanentError
		if errors.As(last, &perm) || attempt == n.opt.Attempts {
			break
		}
		time.Sleep(delay)
		delay *= 2
		n.mu.Lock()
		stopped := n.stopped
		n.mu.Unlock()
		if stopped {
			break
		}
	}
	msg := redact.Terminal(last.Error())
	n.opt.Warn(fmt.Sprintf("notify: the %s message to a %s webhook was not delivered: %s", m.event, formatName(m.hook), msg))
	if j != nil {
		_ = j.RecordNotify(m.key, m.event, "failed: "+msg)
	}
}

func formatName(h *plan.Notify) string {
	if h.Format == "" {
		return "slack"
	}
	return h.Format
}

// permanentError is an answer that another attempt would not change.
type permanentError struct{ status int }

func (e *permanentError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

func (n *Notifier) post(m message) error {
	req, err := http.NewRequest(http.MethodPost, m.hook.URL.Resolved, bytes.NewReader(m.body))
	if err != nil {
		// The error would quote the URL: say only what kind it was.
		return errors.New("the webhook URL is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rollout-notify/1")
	resp, err := n.opt.Client.Do(req)
	if err != nil {
		return transportError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return &permanentError{status: resp.StatusCode}
}

// transportError says what went wrong sending, without the URL or the
// address net/http and net put in their errors: a webhook URL is a secret,
// and its host is part of it.
func transportError(err error) error {
	var op *net.OpError
	var se *os.SyscallError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return errors.New("no answer in time")
	case errors.As(err, &se):
		return fmt.Errorf("%s: %v", se.Syscall, se.Err)
	case errors.As(err, &op):
		return fmt.Errorf("%s failed", op.Op)
	}
	return errors.New("the request failed")
}

// event renders one observer call as the run's JSON event, for json-format
// webhooks, through the same reporter that writes run --json.
func event(call func(o engine.Observer)) any {
	var buf bytes.Buffer
	call(report.NewJSON(&buf))
	var v any
	if json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &v) != nil {
		return nil
	}
	return v
}

// RunStarted implements engine.Observer: "started", once per rollout (a
// resumed run does not send it again).
func (n *Notifier) RunStarted(info engine.RunInfo) {
	text := fmt.Sprintf("rollout %s started: %d targets, concurrency %d", n.name(), info.Targets, info.Concurrency)
	if info.Resumed {
		text = fmt.Sprintf("rollout %s resumed: %d targets, concurrency %d", n.name(), info.Targets, info.Concurrency)
	}
	n.emit(plan.EventStarted, "started", text, event(func(o engine.Observer) { o.RunStarted(info) }))
}

// WaveStarted implements engine.Observer: "wave".
func (n *Notifier) WaveStarted(step, image string, wave, waves int, ids []string) {
	text := fmt.Sprintf("rollout %s: wave %d/%d of %s on %s started (%d machines)", n.name(), wave+1, waves, term(step), term(image), len(ids))
	n.emit(plan.EventWave, fmt.Sprintf("wave %s@%s %d", step, image, wave), text,
		event(func(o engine.Observer) { o.WaveStarted(step, image, wave, waves, ids) }))
}

// InstanceStarted implements engine.Observer.
func (n *Notifier) InstanceStarted(string, time.Time) {}

// JobProgress implements engine.Observer.
func (n *Notifier) JobProgress(string, engine.JobInfo) {}

// InstanceFinished implements engine.Observer: "failed" for a failure
// (dependents skipped because of it are not failures of their own).
func (n *Notifier) InstanceFinished(id string, r engine.Result) {
	if r.Outcome != engine.Failed {
		return
	}
	text := fmt.Sprintf("rollout %s: %s failed: %s", n.name(), term(id), term(engine.ErrText(r.Err)))
	n.emit(plan.EventFailed, "failed "+id, text, event(func(o engine.Observer) { o.InstanceFinished(id, r) }))
}

// Aborting implements engine.Observer: "aborted".
func (n *Notifier) Aborting(reason string) {
	text := fmt.Sprintf("rollout %s is aborting: %s; nothing new starts", n.name(), term(reason))
	n.emit(plan.EventAborted, "aborted", text, event(func(o engine.Observer) { o.Aborting(reason) }))
}

// RequestCount implements engine.Observer.
func (n *Notifier) RequestCount(int64) {}

// Notice implements engine.Observer.
func (n *Notifier) Notice(engine.Notice) {}

// WaitStarted implements engine.Observer: "approval", with the exact
// commands that approve or abort. Bake times are not announced.
func (n *Notifier) WaitStarted(w engine.WaitInfo) {
	if w.Kind != engine.WaitApproval || n.opt.AutoApprove {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s waits for approval of %s", n.name(), term(w.ID))
	if w.Message != "" {
		fmt.Fprintf(&b, ": %s", term(w.Message))
	}
	if w.Progress != "" {
		fmt.Fprintf(&b, " (%s)", term(w.Progress))
	}
	if !w.Until.IsZero() {
		fmt.Fprintf(&b, "; until %s UTC, then %s", w.Until.UTC().Format("15:04"), orAbort(w.OnTimeout))
	}
	if n.opt.Commands != nil {
		approve, abort := n.opt.Commands(w)
		fmt.Fprintf(&b, "\napprove: `%s`\nabort: `%s`", term(approve), term(abort))
	}
	n.emit(plan.EventApproval, "approval "+w.ID, b.String(), event(func(o engine.Observer) { o.WaitStarted(w) }))
}

func orAbort(t plan.OnTimeout) string {
	if t == "" {
		return "abort"
	}
	return string(t)
}

// WaitEnded implements engine.Observer: "approved", also for
// --auto-approve.
func (n *Notifier) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	if d.Kind != engine.Approved && d.Kind != engine.AutoApproved {
		return
	}
	who := term(d.By)
	if d.Kind == engine.AutoApproved {
		who = "--auto-approve"
	}
	text := fmt.Sprintf("rollout %s: %s approved by %s", n.name(), term(w.ID), who)
	if d.Reason != "" && d.Kind == engine.Approved {
		text += ": " + term(d.Reason)
	}
	n.emit(plan.EventApproved, "approved "+w.ID, text, event(func(o engine.Observer) { o.WaitEnded(w, d) }))
}

// RunFinished implements engine.Observer: "finished", unless the run was
// interrupted (it goes on when resumed).
func (n *Notifier) RunFinished(s engine.Summary) {
	if s.Verdict == engine.VerdictInterrupted {
		return
	}
	took := s.Finished.Sub(s.Started).Round(time.Second)
	text := fmt.Sprintf("rollout %s finished: %s after %s (%d succeeded, %d failed, %d skipped)", n.name(), s.Verdict, took,
		s.Counts[engine.Succeeded], s.Counts[engine.Failed], s.Counts[engine.Skipped])
	n.emit(plan.EventFinished, "finished", text, event(func(o engine.Observer) { o.RunFinished(s) }))
}

func (n *Notifier) name() string { return "*" + term(n.plan) + "*" }

func term(s string) string { return redact.Terminal(s) }
