package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// The run's side of control. A run in progress takes approvals and aborts
// from its own live view and, through files in its state directory (see
// package state: control/<id>.req, answered in control/<id>.reply), from
// `rollout approve`, `rollout abort` and `rollout watch` in any other
// terminal on the machine. Both feed the one channel the engine reads
// (engine.Options.Control); the engine decides, records the decision in
// the journal and tells the observers, and its reply goes back to whoever
// asked. The controller also publishes what the run waits for in
// waiting.json, for status and approve.

// controlPoll is how often the run looks for requests in its control
// directory: fast enough that `rollout approve` answers at once, cheap
// enough (one directory read) to cost the run nothing.
const controlPoll = 100 * time.Millisecond

// controller feeds engine.Options.Control and answers requests.
type controller struct {
	engine.NopObserver
	dir      string // the state directory
	p        *plan.Plan
	inbox    *state.Inbox
	commands func(engine.WaitInfo) (approve, abort string)
	// decided reads a decision the journal holds (an earlier run's).
	decided func(id string) (engine.Decision, bool)
	started time.Time
	poll    time.Duration

	ch      chan engine.Request
	done    chan struct{} // closed once the engine returned
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	mu        sync.Mutex
	waits     map[string]engine.WaitInfo // waiting now
	seen      map[string]bool            // every wait this run began
	ended     map[string]engine.Decision // how this run's waits ended
	dirty     bool
	leftovers []leftover
	verdict   string
	warn      func(string)
}

// leftover is a request an earlier run of this directory took and never
// answered (it died), or one made before this run began: it is applied to
// the wait its author saw, once that wait is waiting again.
type leftover struct {
	req    state.ControlRequest
	target string // the wait it approves; "" for an abort
}

// newController opens the run's control directory and takes in what an
// earlier run left there. warn reports a problem the run should mention
// but go on with.
func newController(dir string, p *plan.Plan, rec engine.Journal, commands func(engine.WaitInfo) (string, string), warn func(string)) (*controller, error) {
	inbox, err := state.OpenInbox(dir)
	if err != nil {
		return nil, err
	}
	c := &controller{dir: dir, p: p, inbox: inbox, commands: commands, started: time.Now(), poll: controlPoll,
		ch: make(chan engine.Request), done: make(chan struct{}), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{}),
		waits: map[string]engine.WaitInfo{}, seen: map[string]bool{}, ended: map[string]engine.Decision{}, warn: warn}
	if rec != nil {
		c.decided = rec.Decided
	}
	// What an earlier run published is stale from here on.
	c.dirty = true
	for _, l := range inbox.Leftovers() {
		c.takeLeftover(l)
	}
	return c, nil
}

// requests is the channel the engine reads.
func (c *controller) requests() <-chan engine.Request { return c.ch }

// start begins watching the control directory.
func (c *controller) start() { go c.loop() }

// finish tells the controller that the engine returned: requests still
// coming are answered with how the run ended, and waiting.json goes.
func (c *controller) finish(verdict string) {
	c.mu.Lock()
	c.verdict = verdict
	c.mu.Unlock()
	close(c.done)
	close(c.stop)
	<-c.stopped
	// Whatever arrived in the meantime is answered, so that no
	// requester waits for a run that is gone.
	for _, cr := range c.inbox.Claim() {
		c.answer(cr.Request.ID, c.endedReply())
	}
	c.mu.Lock()
	lefts := c.leftovers
	c.leftovers = nil
	c.mu.Unlock()
	for _, l := range lefts {
		c.answer(l.req.ID, state.ControlReply{Message: fmt.Sprintf("the run ended (%s) before %s waited again; nothing was applied", verdict, l.target)})
	}
	if err := state.RemoveWaiting(c.dir); err != nil {
		c.warn(fmt.Sprintf("could not remove %s: %v", state.WaitingName, err))
	}
}

func (c *controller) endedReply() state.ControlReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return state.ControlReply{Message: fmt.Sprintf("the run has ended (%s); nothing waits any more", c.verdict)}
}

func (c *controller) loop() {
	defer close(c.stopped)
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			c.publish()
			return
		case <-t.C:
		case <-c.wake:
		}
		c.publish()
		for _, cr := range c.inbox.Claim() {
			if cr.Err != nil {
				c.answer(cr.Request.ID, state.ControlReply{Message: fmt.Sprintf("the request file could not be read: %v", cr.Err)})
				continue
			}
			if cr.Request.At.Before(c.started) {
				// Made before this run began (its run died before
				// taking it): it applies only to what its author saw.
				c.takeLeftover(cr)
				continue
			}
			c.answer(cr.Request.ID, c.submit(requestOf(cr.Request)))
		}
		c.applyLeftovers()
	}
}

func requestOf(r state.ControlRequest) engine.Request {
	return engine.Request{Abort: r.Abort, Step: r.Step, By: r.By, At: r.At, Reason: r.Reason}
}

func (c *controller) answer(id string, r state.ControlReply) {
	if err := c.inbox.Answer(id, r); err != nil {
		c.warn(fmt.Sprintf("could not answer the request %s: %v", id, err))
	}
}

// submit hands a request to the engine and waits for its answer, which
// comes at once unless the engine has returned.
func (c *controller) submit(r engine.Request) state.ControlReply {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	if r.By == "" {
		r.By = state.Actor()
	}
	if !r.Abort && r.Step != "" {
		if msg, ok := c.unknownStep(r.Step); ok {
			return state.ControlReply{Usage: true, Message: msg}
		}
	}
	reply := make(chan error, 1)
	r.Reply = func(err error) { reply <- err }
	select {
	case c.ch <- r:
	case <-c.done:
		return c.endedReply()
	}
	var err error
	select {
	case err = <-reply:
	case <-c.done:
		select {
		case err = <-reply:
		default:
			return c.endedReply()
		}
	}
	if err != nil {
		return state.ControlReply{Message: err.Error()}
	}
	return c.applied(r)
}

// applied says what an accepted request did. The engine ends the waits
// (and tells the observers, this controller among them) before it replies,
// so they are known here.
func (c *controller) applied(r engine.Request) state.ControlReply {
	c.mu.Lock()
	var ids []string
	for id, d := range c.ended {
		if d.By == r.By && d.At.Equal(r.At) && (d.Kind == engine.Approved || d.Kind == engine.Aborted) {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	sort.Strings(ids)
	why := ""
	if r.Reason != "" {
		why = ": " + r.Reason
	}
	if r.Abort {
		msg := fmt.Sprintf("aborted the rollout as %s%s; nothing new starts, on_failure runs", r.By, why)
		if len(ids) > 0 {
			msg += fmt.Sprintf(" (ended the wait for %s)", strings.Join(ids, ", "))
		}
		return state.ControlReply{OK: true, Message: msg}
	}
	if len(ids) == 0 {
		ids = []string{r.Step}
	}
	return state.ControlReply{OK: true, Approved: ids, Message: fmt.Sprintf("approved %s as %s%s", strings.Join(ids, ", "), r.By, why)}
}

// unknownStep says, for a name that is no step of the plan and no wait of
// this run, what the plan has instead.
func (c *controller) unknownStep(name string) (string, bool) {
	var names []string
	for _, s := range c.p.Steps {
		if s.Name == name {
			return "", false
		}
		names = append(names, s.Name)
	}
	for _, in := range c.p.Instances {
		if in.ID == name {
			return "", false
		}
	}
	c.mu.Lock()
	known := c.seen[name]
	c.mu.Unlock()
	if known {
		return "", false
	}
	if step, _, ok := strings.Cut(name, "@"); ok && strings.Contains(name, " after wave ") {
		for _, s := range c.p.Steps {
			if s.Name == step {
				return "", false
			}
		}
	}
	msg := fmt.Sprintf("the plan %q has no step %q", c.p.Name, name)
	if h := plan.DidYouMean(name, names); h != "" {
		msg += "; " + h
	}
	return msg + "; " + c.waitingNow(), true
}

// waitingNow says what waits now, for an answer that approves nothing.
func (c *controller) waitingNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waits) == 0 {
		return "nothing is waiting for an approval now"
	}
	var out []string
	for _, id := range sortedKeys(c.waits) {
		w := c.waits[id]
		if w.Kind == engine.WaitApproval {
			out = append(out, fmt.Sprintf("%s (--step %s)", w.ID, w.Step))
		} else {
			out = append(out, fmt.Sprintf("%s bakes until %s", w.ID, w.Until.Local().Format(time.TimeOnly)))
		}
	}
	return "waiting now: " + strings.Join(out, ", ")
}

// WaitStarted implements engine.Observer.
func (c *controller) WaitStarted(w engine.WaitInfo) {
	c.mu.Lock()
	c.waits[w.ID] = w
	c.seen[w.ID] = true
	c.dirty = true
	c.mu.Unlock()
	c.kick()
}

// WaitEnded implements engine.Observer.
func (c *controller) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	c.mu.Lock()
	delete(c.waits, w.ID)
	c.ended[w.ID] = d
	c.dirty = true
	c.mu.Unlock()
	c.kick()
}

func (c *controller) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// publish writes waiting.json when the waits changed.
func (c *controller) publish() {
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return
	}
	c.dirty = false
	host, _ := os.Hostname()
	w := &state.Waiting{PID: os.Getpid(), Host: host, Plan: c.p.Name, Updated: time.Now().UTC()}
	for _, id := range sortedKeys(c.waits) {
		info := c.waits[id]
		pw := state.WaitOf(info)
		if info.Kind == engine.WaitApproval && c.commands != nil {
			pw.Approve, pw.Abort = c.commands(info)
		}
		w.Waits = append(w.Waits, pw)
	}
	c.mu.Unlock()
	if err := state.WriteWaiting(c.dir, w); err != nil {
		c.warn(fmt.Sprintf("could not publish what the run waits for (%s): %v", state.WaitingName, err))
	}
}

// takeLeftover decides what an earlier request still means: an abort
// aborts; an approval approves the wait its author saw, once it waits
// again, unless the journal already holds a decision on it.
func (c *controller) takeLeftover(cr state.ClaimedRequest) {
	r := cr.Request
	if cr.Err != nil {
		c.answer(r.ID, state.ControlReply{Message: fmt.Sprintf("the request file could not be read: %v", cr.Err)})
		return
	}
	if r.Abort {
		c.mu.Lock()
		c.leftovers = append(c.leftovers, leftover{req: r})
		c.mu.Unlock()
		return
	}
	var targets []string
	for _, id := range r.Seen {
		step, _, _ := strings.Cut(id, "@")
		if r.Step == "" || r.Step == id || r.Step == step {
			targets = append(targets, id)
		}
	}
	if len(targets) == 0 || (r.Step == "" && len(targets) > 1) {
		c.answer(r.ID, state.ControlReply{Message: fmt.Sprintf("the run this approval was made for (at %s by %s) stopped before applying it, "+
			"and it does not say which wait it meant; nothing was applied: approve again", r.At.Local().Format(time.DateTime), r.By)})
		return
	}
	for _, t := range targets {
		if c.decided != nil {
			if d, ok := c.decided(t); ok {
				msg := fmt.Sprintf("%s was already %s by %s at %s", t, d.Kind, orWhom(d.By), d.At.Local().Format(time.DateTime))
				c.answer(r.ID, state.ControlReply{OK: d.By == r.By && d.At.Equal(r.At), Message: msg, Approved: []string{t}})
				return
			}
		}
	}
	c.mu.Lock()
	for _, t := range targets {
		c.leftovers = append(c.leftovers, leftover{req: r, target: t})
	}
	c.mu.Unlock()
}

func orWhom(by string) string {
	if by == "" {
		return "the clock"
	}
	return by
}

// applyLeftovers applies each leftover whose wait is waiting now; an
// abort at once.
func (c *controller) applyLeftovers() {
	c.mu.Lock()
	var due, gone []leftover
	kept := c.leftovers[:0]
	for _, l := range c.leftovers {
		_, waiting := c.waits[l.target]
		_, ended := c.ended[l.target]
		switch {
		case l.req.Abort || waiting:
			due = append(due, l)
		case ended:
			gone = append(gone, l)
		default:
			kept = append(kept, l)
		}
	}
	c.leftovers = kept
	ended := make(map[string]engine.Decision, len(gone))
	for _, l := range gone {
		ended[l.target] = c.ended[l.target]
	}
	c.mu.Unlock()
	for _, l := range gone {
		// Ended in this run by other means: it no longer applies.
		d := ended[l.target]
		c.answer(l.req.ID, state.ControlReply{Message: fmt.Sprintf("%s was already %s by %s; nothing was applied", l.target, d.Kind, orWhom(d.By))})
	}
	for _, l := range due {
		r := requestOf(l.req)
		if !r.Abort {
			r.Step = l.target
		}
		c.answer(l.req.ID, c.submit(r))
	}
}

// approveFromView and abortFromView are the live view's a and x: the same
// requests as from another terminal, by whoever runs this process.
func (c *controller) approveFromView(how string) func(id string) (string, error) {
	return func(id string) (string, error) {
		return replyErr(c.submit(engine.Request{Step: id, By: state.Actor(), At: time.Now(), Reason: "approved in " + how}))
	}
}

func (c *controller) abortFromView(how string) func(reason string) (string, error) {
	return func(reason string) (string, error) {
		if reason == "" {
			reason = "aborted in " + how
		}
		return replyErr(c.submit(engine.Request{Abort: true, By: state.Actor(), At: time.Now(), Reason: reason}))
	}
}

func replyErr(r state.ControlReply) (string, error) {
	if !r.OK {
		return "", fmt.Errorf("%s", r.Message)
	}
	return r.Message, nil
}

// controlCommands are the exact commands that approve a wait of this run
// or abort it from another terminal.
func controlCommands(o RunOptions) func(engine.WaitInfo) (string, string) {
	extra := ""
	if o.StateDir != "" {
		extra = " --state-dir " + shellQuote(o.StateDir)
	}
	planArg := shellQuote(o.Path)
	return func(w engine.WaitInfo) (string, string) {
		return fmt.Sprintf("rollout approve %s --step %s%s", planArg, shellQuote(w.Step), extra),
			fmt.Sprintf("rollout abort %s%s --reason TEXT", planArg, extra)
	}
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters that never need it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
