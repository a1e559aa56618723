package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rollout/rollout/plan"
)

// A run waits for people and clocks in two places: an approve instance
// waits for an approval (or its timeout), and an install step's pause_after
// holds the next wave for an approval or a bake time. Both are waits: they
// hold no concurrency slot, they are announced to observers (WaitStarted,
// WaitEnded), recorded in the journal with who decided and when, and a
// resumed run does not ask again for a decision already taken.

// WaitKind says what ends a wait.
type WaitKind string

// Wait kinds.
const (
	WaitApproval WaitKind = "approval" // a person approves (or aborts)
	WaitBake     WaitKind = "bake"     // a bake time passes
)

// WaitInfo describes one wait.
type WaitInfo struct {
	// ID names the wait: the approve instance's id, or
	// "<step>@<image> after wave N" (1-based) for a pause.
	ID    string
	Kind  WaitKind
	Step  string
	Image string
	// Wave is the 0-based wave a pause follows; -1 for an approve step.
	Wave    int
	Message string
	Since   time.Time
	// Until is when the wait ends by itself (a bake's end, an approval's
	// timeout); zero: only a person ends it.
	Until     time.Time
	OnTimeout plan.OnTimeout
	// Progress says where the rollout stands while it waits, e.g. "3 of 120
	// machines on image version 48811, 0 failed".
	Progress string
}

// DecisionKind says how a wait ended.
type DecisionKind string

// Decision kinds.
const (
	Approved     DecisionKind = "approved"      // by a person
	AutoApproved DecisionKind = "auto-approved" // run --auto-approve
	TimedOut     DecisionKind = "timed-out"     // the approval's timeout passed
	Baked        DecisionKind = "baked"         // the bake time passed
	Aborted      DecisionKind = "aborted"       // a person aborted the rollout
	Stopped      DecisionKind = "stopped"       // the run stopped (interrupt, budget abort)
)

// Decision is how a wait ended, and who ended it.
type Decision struct {
	Kind DecisionKind
	// By is "user@host" for a person, "--auto-approve", or "" for a clock.
	By     string
	At     time.Time
	Reason string
}

// DecisionRecord is one ended wait, for the summary.
type DecisionRecord struct {
	Wait     WaitInfo
	Decision Decision
}

// Request is a decision made outside the engine: an approval or an abort,
// from the live view or another terminal.
type Request struct {
	// Abort aborts the rollout; otherwise the request approves.
	Abort bool
	// Step names what to approve: an approve step, or an install step whose
	// pause waits; "" approves the only approval waiting.
	Step   string
	By     string // "user@host"
	At     time.Time
	Reason string
	// Reply, when set, is called once: nil when the request was applied,
	// or an error saying why not (nothing waiting, an unknown step).
	Reply func(error)
}

// wait is a wait in progress. Only the scheduler goroutine touches it.
type wait struct {
	info  WaitInfo
	node  *node    // the approve instance; nil for a pause
	pause *waveKey // the wave a pause follows; nil for an approval
	timer *time.Timer
}

// waitFired is a wait's timer going off.
type waitFired struct{ id string }

func pauseID(k waveKey) string {
	return fmt.Sprintf("%s@%s after wave %d", k.step, k.image, k.wave+1)
}

// startWait registers w, restoring a decision an earlier run recorded:
// such a wait ends at once, and nobody is asked again.
func (e *Engine) startWait(w *wait) {
	if e.opt.Journal != nil {
		if d, ok := e.opt.Journal.Decided(w.info.ID); ok {
			e.obs.WaitStarted(w.info)
			e.endWait(w, d, true)
			return
		}
		if since, ok := e.opt.Journal.WaitSince(w.info.ID); ok && since.Before(w.info.Since) {
			// A wait an earlier run began keeps its start, so that a
			// resume neither restarts a bake nor extends a timeout.
			if !w.info.Until.IsZero() {
				w.info.Until = w.info.Until.Add(since.Sub(w.info.Since))
			}
			w.info.Since = since
		}
	}
	e.waits[w.info.ID] = w
	w.info.Progress = e.progressFor(w.info)
	if e.opt.Journal != nil {
		e.opt.Journal.WaitStarted(w.info)
	}
	e.obs.WaitStarted(w.info)
	if w.info.Kind == WaitApproval && e.opt.AutoApprove {
		e.endWait(w, Decision{Kind: AutoApproved, By: "--auto-approve", At: e.now(), Reason: "run --auto-approve"}, false)
		return
	}
	if !w.info.Until.IsZero() {
		id := w.info.ID
		w.timer = time.AfterFunc(max(w.info.Until.Sub(e.now()), 0), func() {
			select {
			case e.waitCh <- waitFired{id}:
			case <-e.stopCh:
			}
		})
	}
}

// endWait ends w with d: it records the decision (unless it came from the
// journal), tells observers, and finishes the approve instance or resumes
// the paused waves.
func (e *Engine) endWait(w *wait, d Decision, restored bool) {
	if w.timer != nil {
		w.timer.Stop()
	}
	delete(e.waits, w.info.ID)
	if d.At.IsZero() {
		d.At = e.now()
	}
	if !restored && e.opt.Journal != nil && d.Kind != Stopped {
		e.opt.Journal.RecordDecision(w.info, d)
	}
	e.decisions = append(e.decisions, DecisionRecord{Wait: w.info, Decision: d})
	e.obs.WaitEnded(w.info, d)
	if w.node != nil {
		e.endApproval(w, d)
		return
	}
	if w.pause != nil {
		e.passed[*w.pause] = true
		switch d.Kind {
		case Aborted, Stopped:
			return
		case TimedOut:
			if w.info.OnTimeout != plan.OnTimeoutContinue {
				e.abort(fmt.Sprintf("nobody approved %s within its timeout (on_timeout: abort)", w.info.ID))
				return
			}
		}
		// The failure budget is checked again when a pause ends: what
		// failed during the bake counts before the next wave starts.
		if st := e.stepByName(w.pause.step); st != nil {
			e.checkBudget(st, e.imageByName(w.pause.image))
		}
		e.openWavesAfter(*w.pause)
	}
}

// endApproval finishes an approve instance by its decision.
func (e *Engine) endApproval(w *wait, d Decision) {
	n := w.node
	r := Result{Started: w.info.Since, Finished: d.At}
	out := &plan.Output{Approval: &plan.Approval{By: d.By, At: d.At, Comment: d.Reason}}
	switch d.Kind {
	case Approved, AutoApproved:
		r.Outcome, out.State = Succeeded, plan.OutputSucceeded
		r.Detail = "approved by " + d.By
	case TimedOut:
		if w.info.OnTimeout == plan.OnTimeoutContinue {
			r.Outcome, out.State = Succeeded, plan.OutputSucceeded
			out.Approval.By = "timeout"
			r.Detail = "nobody approved in time; went on (on_timeout: continue)"
			break
		}
		r.Outcome, out.State = Failed, plan.OutputFailed
		r.Err = fmt.Errorf("nobody approved within %s (on_timeout: abort)", w.info.Until.Sub(w.info.Since).Round(time.Second))
	case Aborted:
		r.Outcome, out.State = Failed, plan.OutputFailed
		r.Err = &AbortError{By: d.By, Reason: d.Reason}
	default:
		r.Outcome, out.State = Cancelled, plan.OutputFailed
		r.Err = skip("stopped while waiting for approval")
		if !e.interrupted {
			r.Outcome, r.Err = Skipped, skip(e.stopReason())
		}
	}
	e.finish(n, r, out, d.At)
	if d.Kind == TimedOut && w.info.OnTimeout != plan.OnTimeoutContinue {
		e.abort(fmt.Sprintf("nobody approved %s within its timeout (on_timeout: abort)", n.inst.ID))
	}
}

// AbortError is the failure of a wait that a person ended by aborting the
// rollout.
type AbortError struct {
	By     string
	Reason string
}

func (e *AbortError) Error() string {
	s := "aborted by " + e.By
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// startApproval turns an approve instance that may run into a wait.
func (e *Engine) startApproval(n *node) {
	now := e.now()
	n.status = holding
	n.result.Started = now
	e.obs.InstanceStarted(n.inst.ID, now)
	st := n.inst.Step
	info := WaitInfo{ID: n.inst.ID, Kind: WaitApproval, Step: st.Name, Image: n.inst.Image.Name, Wave: -1,
		Message: st.Message.Display, Since: now, OnTimeout: st.OnTimeout}
	if st.Timeout > 0 {
		info.Until = now.Add(e.scaled(st.Timeout))
	}
	e.startWait(&wait{info: info, node: n})
}

// pauseBefore reports whether the waves after k must wait for a pause, and
// starts that pause when it has not begun. A pause entry k applies between
// wave k and the next wave that has instances.
func (e *Engine) pauseBefore(k waveKey) bool {
	if e.passed[k] {
		return false
	}
	st := e.stepByName(k.step)
	if st == nil || k.wave >= len(st.PauseAfter) {
		return false
	}
	p := st.PauseAfter[k.wave]
	if !p.Approve && p.Bake <= 0 {
		e.passed[k] = true
		return false
	}
	id := pauseID(k)
	if _, ok := e.waits[id]; ok {
		return true
	}
	now := e.now()
	info := WaitInfo{ID: id, Step: k.step, Image: k.image, Wave: k.wave, Since: now, OnTimeout: plan.OnTimeoutAbort}
	if p.Approve {
		info.Kind = WaitApproval
		info.Message = fmt.Sprintf("Go on with %s on %s after wave %d?", k.step, k.image, k.wave+1)
	} else {
		info.Kind = WaitBake
		info.Until = now.Add(e.scaled(p.Bake))
		info.Message = fmt.Sprintf("baking %s after wave %d of %s", p.Bake, k.wave+1, k.step)
	}
	e.startWait(&wait{info: info, pause: &k})
	// startWait may have ended it at once (a decision restored from the
	// journal, --auto-approve): then the waves go on.
	_, waiting := e.waits[id]
	return waiting
}

func (e *Engine) imageByName(name string) *plan.Image {
	for _, img := range e.p.Images {
		if img.Name == name {
			return img
		}
	}
	return nil
}

func (e *Engine) stepByName(name string) *plan.Step {
	for _, s := range e.p.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// request applies a decision made outside the engine.
func (e *Engine) request(r Request) {
	err := e.applyRequest(r)
	if r.Reply != nil {
		r.Reply(err)
	}
}

func (e *Engine) applyRequest(r Request) error {
	if r.At.IsZero() {
		r.At = e.now()
	}
	if r.Abort {
		if e.interrupted {
			return fmt.Errorf("the run is stopping (interrupted); nothing to abort")
		}
		reason := "aborted by " + r.By
		if r.Reason != "" {
			reason += ": " + r.Reason
		}
		// Waiting approvals fail: on_failure runs for their images.
		for _, w := range e.sortedWaits() {
			if w.node != nil {
				e.endWait(w, Decision{Kind: Aborted, By: r.By, At: r.At, Reason: r.Reason}, false)
			}
		}
		e.abort(reason)
		return nil
	}
	var match []*wait
	for _, w := range e.sortedWaits() {
		if w.info.Kind == WaitApproval && (r.Step == "" || r.Step == w.info.Step || r.Step == w.info.ID) {
			match = append(match, w)
		}
	}
	switch {
	case len(match) == 0:
		return fmt.Errorf("%s", e.nothingWaiting(r.Step))
	case len(match) > 1 && r.Step == "":
		var ids []string
		for _, w := range match {
			ids = append(ids, fmt.Sprintf("%s (--step %s)", w.info.ID, w.info.Step))
		}
		return fmt.Errorf("several approvals are waiting: %s; name one with --step", strings.Join(ids, ", "))
	}
	for _, w := range match {
		e.endWait(w, Decision{Kind: Approved, By: r.By, At: r.At, Reason: r.Reason}, false)
	}
	return nil
}

// nothingWaiting says what the run is doing instead, for an approval that
// matches nothing.
func (e *Engine) nothingWaiting(step string) string {
	what := "nothing is waiting for an approval now"
	if step != "" {
		what = fmt.Sprintf("nothing named %q is waiting for an approval now", step)
		if e.stepByName(step) == nil && !e.hasApproveStep(step) {
			what = fmt.Sprintf("the plan has no step %q", step)
		}
	}
	var waiting []string
	for _, w := range e.sortedWaits() {
		if w.info.Kind == WaitApproval {
			waiting = append(waiting, fmt.Sprintf("%s (--step %s)", w.info.ID, w.info.Step))
		} else {
			waiting = append(waiting, fmt.Sprintf("%s bakes until %s", w.info.ID, w.info.Until.Format(time.TimeOnly)))
		}
	}
	if len(waiting) > 0 {
		return what + "; waiting: " + strings.Join(waiting, ", ")
	}
	return fmt.Sprintf("%s; %d instances running, %d ready", what, e.runningN, len(e.readyList))
}

func (e *Engine) hasApproveStep(name string) bool {
	for _, n := range e.nodes {
		if n.inst.Step.Name == name {
			return true
		}
	}
	return false
}

func (e *Engine) sortedWaits() []*wait {
	out := make([]*wait, 0, len(e.waits))
	for _, w := range e.waits {
		out = append(out, w)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].info.ID < out[b].info.ID })
	return out
}

// abort stops the rollout as a budget abort does: nothing new starts, what
// runs ends, on_failure runs. Waits end: pauses and approvals with nothing
// left to approve.
func (e *Engine) abort(reason string) {
	if e.aborted || e.interrupted {
		return
	}
	e.aborted = true
	e.abortReason = reason
	e.obs.Aborting(reason)
	e.skipAllNotStarted("rollout aborted")
	e.cancelWaits()
}

// cancelWaits ends every wait because the run stops.
func (e *Engine) cancelWaits() {
	for _, w := range e.sortedWaits() {
		e.endWait(w, Decision{Kind: Stopped, At: e.now(), Reason: e.stopReason()}, false)
	}
}

// progressFor says where the rollout stands, for a wait's banner: how many
// of the image's machine installs succeeded and failed so far.
func (e *Engine) progressFor(w WaitInfo) string {
	total, done, failed := 0, 0, 0
	version := int64(0)
	for _, n := range e.nodes {
		in := n.inst
		if in.Step.Type != plan.TypeInstall || in.Step.Mirroring || in.Image.Name != w.Image || in.Step.OnFailure {
			continue
		}
		total++
		switch {
		case n.status == ended && n.result.Outcome == Succeeded:
			done++
		case n.status == ended && n.result.Outcome == Failed:
			failed++
		}
		if in.Version != nil {
			if vn := e.byID[in.Version.ID]; vn != nil && vn.out != nil && vn.out.VersionID != 0 {
				version = vn.out.VersionID
			}
		}
	}
	if total == 0 {
		return ""
	}
	on := "the new version"
	if version != 0 {
		on = fmt.Sprintf("image version %d", version)
	}
	return fmt.Sprintf("%d of %d machines on %s, %d failed", done, total, on, failed)
}

// scaled is d divided by Options.TimeScale (the simulator's speed), so that
// bake times and approval timeouts keep their proportion to the jobs of a
// simulated world that runs faster than real time.
func (e *Engine) scaled(d time.Duration) time.Duration {
	if e.opt.TimeScale > 1 {
		return time.Duration(float64(d) / e.opt.TimeScale)
	}
	return d
}
