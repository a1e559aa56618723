package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// epSwitchProfile names the profile switch PATCH in journal keys:
// "cutover@game-b/prod-eu switchprofile#1".
const epSwitchProfile = "switchprofile"

// SwitchKey is the journal key of a switch instance's PATCH. One instance
// sends at most one PATCH (it switches one fleet once), so the attempt is
// always 1.
func SwitchKey(instID string) string { return Key(instID, epSwitchProfile, 1) }

// DeadlineGrace is how long past a switch's Deadline (plus the poll
// policy's Max, one read interval) a switch may still be pending or
// processing before the step gives up on it: the API forces the rest at the
// Deadline, which it shows to the second.
const DeadlineGrace = 2 * time.Second

// SwitchTarget is the profile a switch step makes its fleets run: the
// profile of the image named by to, else the step's profile. image names
// the image, "" when the step gave a profile id alone. profile is 0 when
// neither gives one (a plan error the loader reports; checked again here).
func SwitchTarget(s *plan.Step) (profile int64, image string) {
	if s.To != nil {
		return s.To.Profile, s.To.Name
	}
	return s.Profile, ""
}

// switchOptions is the PATCH body of a step: ProfileID, and force_after
// and max_machines as Timeout and MaxMachines when set.
func switchOptions(s *plan.Step, profile int64) clanforge.SwitchOptions {
	return clanforge.SwitchOptions{ProfileID: profile, Timeout: s.ForceAfter, MaxMachines: s.MaxMachines}
}

// runSwitch makes the instance's fleet run the step's profile. As an
// on_failure step it first finds out whether this run switched the fleet
// (switchedByThisRun) and does nothing, saying so, when it did not.
func (r *runner) runSwitch(ctx context.Context) error {
	f := r.inst.Fleet
	if f == nil {
		return fmt.Errorf("switch step %q: the instance names no fleet", r.step.Name)
	}
	profile, image := SwitchTarget(r.step)
	if profile <= 0 {
		if image != "" {
			return fmt.Errorf("switch step %q: image %s has no profile (images[].profile) to switch fleet %s to", r.step.Name, image, f.Name)
		}
		return fmt.Errorf("switch step %q names neither an image with a profile (to) nor a profile", r.step.Name)
	}
	if r.step.OnFailure {
		switched, why, err := r.switchedByThisRun(ctx, f)
		if err != nil {
			return err
		}
		if !switched {
			// The output's words name no fleet, so that reporters can
			// say them once for every fleet (the instance ids name them).
			r.out.Noop = true
			r.out.Detail = why + "; nothing to switch back"
			r.progress(JobUpdate{Kind: KindSwitch, Job: clanforge.Job{State: clanforge.StateCompleted, StateName: "nothing to do", Progress: 100}, Detail: r.maskText(f.Name + ": " + r.out.Detail)})
			return nil
		}
	}
	return r.switchFleet(ctx, f, profile, image)
}

// switchedByThisRun reports whether a switch of this run sent fleet f a
// PATCH that took: the instances that trigger this on_failure instance
// include every switch instance of the run, and the journal holds each
// one's PATCH under SwitchKey. A recorded answer says it took. An intent
// with no answer recorded (the process died) or with an error answer (which
// may have been a lost one) is settled by the fleet's switch status: that
// switch's profile pending, processing or complete means it took.
func (r *runner) switchedByThisRun(ctx context.Context, f *plan.Fleet) (bool, string, error) {
	for _, t := range r.inst.Trigger {
		if t == nil || t.Step == nil || t.Step.Type != plan.TypeSwitch || t.Step.OnFailure || t.Fleet == nil || t.Fleet.ID != f.ID {
			continue
		}
		intent, result, id := r.journal.Prior(SwitchKey(t.ID))
		if !intent {
			continue
		}
		if result && id != 0 {
			return true, "", nil
		}
		fwd, _ := SwitchTarget(t.Step)
		st, err := r.env.Client.ProfileSwitchStatus(ctx, f.ID)
		if err != nil {
			return false, "", fmt.Errorf("settling whether %s switched fleet %s: reading its switch status: %w", t.ID, f.Name, err)
		}
		if st.ProfileID == fwd && st.State.Requested() {
			return true, "", nil
		}
	}
	return false, "not switched by this run", nil
}

// switchFleet makes fleet f run profile. Unless an earlier run already
// recorded this instance's intent, it reads the switch status first: a
// switch to another profile under way is waited out (the API takes no new
// PATCH while one runs); then nothing is sent when the fleet already runs
// the profile (complete on it, or "not requested" showing it: no switch
// was ever asked and the fleet runs that profile), nor when a switch to the
// profile is under way (it is watched instead); see beforePatch. A status
// that reads as an error answer decides nothing and the PATCH goes out.
// Otherwise it sends the PATCH once through the journal (a lost answer is settled by the status)
// and watches the switch to complete.
func (r *runner) switchFleet(ctx context.Context, f *plan.Fleet, profile int64, image string) error {
	c := r.env.Client
	key := SwitchKey(r.inst.ID)
	opt := switchOptions(r.step, profile)
	target := profileLabel(profile, image)
	if intent, _, _ := r.journal.Prior(key); !intent {
		st, err := r.readSwitch(ctx, f)
		switch {
		case unreadableSwitch(err):
			// The status read was answered, in words, with an error (a
			// switch that failed may read so): it cannot show that the
			// fleet already runs the profile, and a PATCH is the way out
			// of that state, so it goes out for the API to accept or
			// refuse.
			r.progress(JobUpdate{Kind: KindSwitch, Job: clanforge.Job{State: clanforge.StateRunning, StateName: "status unreadable"},
				Detail: r.maskText(fmt.Sprintf("%s: the switch status reads as an error (%v): sending the switch to %s", f.Name, err, target))})
		case err != nil:
			return err
		default:
			if done, err := r.beforePatch(ctx, f, st, profile, target); done {
				return err
			}
		}
	}
	var answer *clanforge.ProfileSwitch
	_, _, err := r.do(ctx, call{
		key:      key,
		endpoint: clanforge.Calls{}.SwitchProfile(f.ID, opt).Path,
		params:   switchParams(opt),
		settle: func(ctx context.Context) settlement {
			st, err := c.ProfileSwitchStatus(ctx, f.ID)
			if err != nil {
				return settlement{err: fmt.Errorf("settling an earlier switchprofile of fleet %s: %w", f.Name, err)}
			}
			if st.ProfileID == profile && st.State.Requested() {
				return settlement{adopt: profile}
			}
			return settlement{}
		},
		send: func(ctx context.Context) (*clanforge.Job, error) {
			st, err := c.SwitchProfile(ctx, f.ID, opt)
			if err != nil {
				return nil, err
			}
			answer = st
			// A PATCH makes no job: the journal records the profile it
			// asked for as its result, so that a resume re-attaches
			// instead of sending it again.
			return &clanforge.Job{ID: profile}, nil
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("switchprofile of fleet %s to %s: %w", f.Name, target, err)
	}
	st := answer
	if st == nil {
		// Re-attached from the journal or settled: read where it is.
		if st, err = r.readSwitch(ctx, f); err != nil {
			return err
		}
	}
	r.out.Detail = fmt.Sprintf("%s switched to %s", f.Name, target)
	return r.watch(ctx, f, profile, st)
}

// beforePatch decides from fleet f's switch status st whether a PATCH is
// needed; done means it is not, and err is the step's outcome. A switch to
// another profile under way is waited out first (the API takes no new
// PATCH while one runs).
func (r *runner) beforePatch(ctx context.Context, f *plan.Fleet, st *clanforge.ProfileSwitch, profile int64, target string) (done bool, err error) {
	if busy(st) && st.ProfileID != profile {
		r.reportSwitch(f, st, clanforge.StateRunning)
		if st, err = r.awaitIdle(ctx, f, st); err != nil {
			return true, err
		}
	}
	switch {
	case st.ProfileID == profile && (st.State == clanforge.SwitchComplete || st.State == clanforge.SwitchNotRequested):
		// Complete on the profile, or on it from before any switch was
		// requested (the status then shows the profile the fleet runs):
		// either way it runs the profile already.
		r.reportSwitch(f, st, clanforge.StateCompleted)
		r.out.Detail = fmt.Sprintf("%s already runs %s: nothing sent", f.Name, target)
		return true, nil
	case st.ProfileID == profile && busy(st):
		// Someone else's switch to this very profile is under way: a
		// second PATCH would be refused, and this one's end is what the
		// step wants anyway.
		r.out.Detail = fmt.Sprintf("%s: a switch to %s was already under way: watched, nothing sent", f.Name, target)
		return true, r.watch(ctx, f, profile, st)
	}
	return false, nil
}

// watch polls the switch to its end with WatchSwitch, reporting each read.
func (r *runner) watch(ctx context.Context, f *plan.Fleet, profile int64, st *clanforge.ProfileSwitch) error {
	last, err := WatchSwitch(ctx, r.env.Client, f.ID, profile, st, r.policy, r.now, func(st *clanforge.ProfileSwitch) {
		// The read that ends the watch is reported once, below, as
		// the end it is.
		if busy(st) {
			r.reportSwitch(f, st, clanforge.StateRunning)
		}
	})
	switch {
	case err == nil:
		r.reportSwitch(f, last, clanforge.StateCompleted)
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &waitTimeout{msg: fmt.Sprintf("the switch of fleet %s to profile %d had not completed when the step's timeout passed: %s", f.Name, profile, SwitchText(f.Name, last)), cause: ctx.Err()}
	case ctx.Err() != nil:
		return ctx.Err()
	}
	if last != nil {
		r.reportSwitch(f, last, clanforge.StateFailed)
	}
	return fmt.Errorf("fleet %s: %w", f.Name, err)
}

// awaitIdle waits while fleet f's switch to another profile is pending or
// processing. A switch still at it past its Deadline (and the grace) has
// stalled: the wait ends and the PATCH goes out, for the API to accept or
// refuse in words.
func (r *runner) awaitIdle(ctx context.Context, f *plan.Fleet, st *clanforge.ProfileSwitch) (*clanforge.ProfileSwitch, error) {
	pc := switchPacer{p: r.policy}
	for busy(st) && !pastDeadline(st, r.now(), r.policy) {
		if err := sleep(ctx, pc.next(st)); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return st, &waitTimeout{msg: fmt.Sprintf("fleet %s was still switching to profile %d when the step's timeout passed: %s", f.Name, st.ProfileID, SwitchText(f.Name, st)), cause: err}
			}
			return st, err
		}
		nst, err := r.readSwitch(ctx, f)
		if err != nil {
			return st, err
		}
		st = nst
		r.reportSwitch(f, st, clanforge.StateRunning)
	}
	return st, nil
}

// unreadableSwitch reports whether err is the API's answer, in words, to a
// switch status read: an error envelope that is neither refused
// credentials, an unknown fleet nor rate limiting. A transport error is
// not one (the status may read fine a moment later).
func unreadableSwitch(err error) bool {
	var ae *clanforge.APIError
	return errors.As(err, &ae) && !errors.Is(err, clanforge.ErrAuth) && !errors.Is(err, clanforge.ErrNotFound) && !errors.Is(err, clanforge.ErrRateLimited)
}

// readSwitch reads fleet f's switch status; a 404 is an unknown fleet.
func (r *runner) readSwitch(ctx context.Context, f *plan.Fleet) (*clanforge.ProfileSwitch, error) {
	st, err := r.env.Client.ProfileSwitchStatus(ctx, f.ID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, clanforge.ErrNotFound) {
			return nil, fmt.Errorf("fleet %s (id %s) is unknown to the API: %w", f.Name, f.ID, err)
		}
		return nil, fmt.Errorf("reading the switch status of fleet %s: %w", f.Name, err)
	}
	return st, nil
}

// reportSwitch tells the engine where the fleet's switch is.
func (r *runner) reportSwitch(f *plan.Fleet, st *clanforge.ProfileSwitch, state clanforge.JobState) {
	if st == nil {
		return
	}
	job := clanforge.Job{State: state, StateName: string(st.State), Progress: switchProgress(st)}
	r.progress(JobUpdate{Kind: KindSwitch, Job: job, Detail: r.maskText(SwitchText(f.Name, st))})
}

func switchProgress(st *clanforge.ProfileSwitch) int {
	total := st.ServersPending + st.ServersProcessed
	switch {
	case total > 0:
		return st.ServersProcessed * 100 / total
	case st.State == clanforge.SwitchComplete:
		return 100
	}
	return 0
}

// switchParams are the PATCH body as the journal records it, each key's
// value as the client's builder writes it ("2h" for Timeout), so that the
// journal and the request agree.
func switchParams(opt clanforge.SwitchOptions) map[string]string {
	return BodyParams(clanforge.Calls{}.SwitchProfile("-", opt))
}

// BodyParams flattens a call's JSON body object to display values: strings
// as they are, numbers as written.
func BodyParams(c clanforge.Call) map[string]string {
	body := c.BodyJSON()
	if body == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, raw := range m {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(raw)
		}
	}
	return out
}

// busy reports whether a switch is pending or processing.
func busy(st *clanforge.ProfileSwitch) bool {
	return st.State == clanforge.SwitchPending || st.State == clanforge.SwitchProcessing
}

// pastDeadline reports whether a switch with a Deadline is past it by more
// than the grace and one read interval.
func pastDeadline(st *clanforge.ProfileSwitch, now time.Time, pol PollPolicy) bool {
	return !st.Deadline.IsZero() && now.After(st.Deadline.Add(DeadlineGrace+pol.normalized().Max))
}

// WatchSwitch reads fleet fleetID's switch status (starting from st when
// given, else with a read) until it is complete on profile, calling seen
// with each status read. Reads back off from the policy's Min to its Max,
// starting over when the state changes. It fails, returning the last
// status, when a read fails, when the status shows another profile
// (another switch replaced this one), a state other than pending,
// processing and complete (including "not requested" and any state the
// API does not document), or a switch still pending or processing past
// its Deadline (see DeadlineGrace). When ctx ends it returns ctx's error.
func WatchSwitch(ctx context.Context, c *clanforge.Client, fleetID string, profile int64, st *clanforge.ProfileSwitch, pol PollPolicy, now func() time.Time, seen func(*clanforge.ProfileSwitch)) (*clanforge.ProfileSwitch, error) {
	pol = pol.normalized()
	if now == nil {
		now = time.Now
	}
	if seen == nil {
		seen = func(*clanforge.ProfileSwitch) {}
	}
	if st == nil {
		var err error
		if st, err = c.ProfileSwitchStatus(ctx, fleetID); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("reading the switch status: %w", err)
		}
	}
	pc := switchPacer{p: pol}
	for {
		seen(st)
		switch {
		case st.ProfileID != profile:
			return st, fmt.Errorf("the switch status now shows profile %d (%s), not %d: another switch replaced this one", st.ProfileID, st.State, profile)
		case st.State == clanforge.SwitchComplete:
			return st, nil
		case !busy(st):
			return st, fmt.Errorf("the switch to profile %d shows state %q (%d servers processed, %d pending), not pending, processing or complete", profile, string(st.State), st.ServersProcessed, st.ServersPending)
		case pastDeadline(st, now(), pol):
			return st, fmt.Errorf("the switch to profile %d is still %s past its Deadline %s (%d servers processed, %d pending): the API should have forced the rest by then",
				profile, st.State, st.Deadline.UTC().Format(time.RFC3339), st.ServersProcessed, st.ServersPending)
		}
		if err := sleep(ctx, pc.next(st)); err != nil {
			return st, err
		}
		nst, err := c.ProfileSwitchStatus(ctx, fleetID)
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, fmt.Errorf("reading the switch status: %w", err)
		}
		st = nst
	}
}

// switchPacer spaces the reads of one switch: it has no ETA, so the reads
// back off as a wait does (PollPolicy.growWaiting), starting over at Min
// when the state changes.
type switchPacer struct {
	p       PollPolicy
	backoff time.Duration
	last    clanforge.SwitchState
}

func (pc *switchPacer) next(st *clanforge.ProfileSwitch) time.Duration {
	if st.State != pc.last {
		pc.last, pc.backoff = st.State, 0
	}
	if pc.backoff == 0 {
		pc.backoff = pc.p.Min
	} else {
		pc.backoff = pc.p.growWaiting(pc.backoff)
	}
	return pc.backoff
}

// SwitchText says where a fleet's switch is, e.g. "prod-eu: processing 30
// of 120 servers".
func SwitchText(fleet string, st *clanforge.ProfileSwitch) string {
	if st == nil {
		return fleet + ": switch status not read"
	}
	total := st.ServersPending + st.ServersProcessed
	switch st.State {
	case clanforge.SwitchPending, clanforge.SwitchProcessing:
		s := fmt.Sprintf("%s: %s %d of %d servers to profile %d", fleet, st.State, st.ServersProcessed, total, st.ProfileID)
		if !st.Deadline.IsZero() {
			s += ", the rest forced at " + st.Deadline.UTC().Format(time.RFC3339)
		}
		return s
	case clanforge.SwitchComplete:
		return fmt.Sprintf("%s: complete, profile %d (%d servers switched)", fleet, st.ProfileID, st.ServersProcessed)
	case clanforge.SwitchNotRequested:
		return fmt.Sprintf("%s: profile %d, no switch requested", fleet, st.ProfileID)
	}
	return fmt.Sprintf("%s: state %q, profile %d, %d of %d servers", fleet, string(st.State), st.ProfileID, st.ServersProcessed, total)
}

// profileLabel is "profile 102 (game-b)", or "profile 102" without an
// image name.
func profileLabel(profile int64, image string) string {
	if image == "" {
		return fmt.Sprintf("profile %d", profile)
	}
	return fmt.Sprintf("profile %d (%s)", profile, image)
}
