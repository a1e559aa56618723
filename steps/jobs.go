package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// runUpdate creates an image update and polls it to its end. A failed job
// is created again (a new intent, one attempt number up) while retries are
// left; a create the API refuses is not retried, because the refusal
// (a lock, a bad URL) would only repeat.
func (r *runner) runUpdate(ctx context.Context) error {
	c := r.env.Client
	img, m := r.inst.Image, r.inst.Machine
	if m == nil {
		return fmt.Errorf("update step %q has no machine", r.step.Name)
	}
	attempts := r.step.Retries + 1
	var lastErr error
	for a := 1; a <= attempts; a++ {
		key := Key(r.inst.ID, epUpdateCreate, a)
		anchor := r.now()
		job, adopted, err := r.do(ctx, call{
			key:      key,
			endpoint: apiPrefix + epUpdateCreate,
			params:   r.updateParams(),
			settle:   r.lockSettle("update"),
			send: func(ctx context.Context) (*clanforge.Job, error) {
				return c.CreateUpdate(ctx, img.ID, m.ID, r.step.Desc.Resolved, r.step.URL.Resolved)
			},
		})
		if err != nil {
			if errors.Is(err, errNothingToPoll) {
				return nil
			}
			if ctx.Err() != nil && errors.Is(err, clanforge.ErrOutcomeUnknown) {
				// The run is being interrupted and the answer was lost:
				// settle it now, while the update holds its lock.
				r.settleInterrupted(ctx, KindUpdate, key, r.lockSettle("update"))
				return ctx.Err()
			}
			var unsettled *UnsettledUpdateError
			if errors.Is(err, clanforge.ErrOutcomeUnknown) && !errors.As(err, &unsettled) {
				// The client could not settle the lost answer from the
				// lock either: a person decides, as on a resume.
				return fmt.Errorf("imageupdate/create: %w (%w)", &UnsettledUpdateError{Instance: r.inst.ID, Image: img.Name, Machine: m.Name}, err)
			}
			return fmt.Errorf("imageupdate/create: %w", err)
		}
		id := job.ID
		if adopted {
			anchor = time.Time{}
		}
		job, err = r.attach(ctx, KindUpdate, job, anchor, func(ctx context.Context) (*clanforge.Job, error) {
			return c.UpdateStatus(ctx, id)
		})
		if err != nil {
			return err
		}
		if job.State == clanforge.StateCompleted {
			return nil
		}
		lastErr = jobError(KindUpdate, job)
	}
	if attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", lastErr, attempts)
	}
	return lastErr
}

func (r *runner) updateParams() map[string]string {
	p := map[string]string{
		"accountserviceid": itoa(r.env.Client.ASID()),
		"imageid":          itoa(r.inst.Image.ID),
		"machineid":        itoa(r.inst.Machine.ID),
		"desc":             r.step.Desc.Display,
	}
	if r.step.URL.Resolved != "" {
		p["url"] = maskURL(r.step.URL.Display)
	}
	return p
}

// interruptSettleBudget bounds the reads that settle a lost answer while the
// run is being interrupted.
const interruptSettleBudget = 15 * time.Second

// settleInterrupted settles a create whose answer was lost as the run was
// being interrupted, and records the job it made. The client's own settle
// read went out on the cancelled context and failed; reads may go on after
// an interrupt (only state-changing calls stop), and now is the time to
// read: an update holds its image's lock only while it runs, and a resume
// may come after it ended, when nothing would name it; a diff holds it until
// accepted or rejected, but a resume's pre-flight takes a lock held by a job
// the journal does not name for someone else's. The job is reported so that
// the run lists it as unfinished.
func (r *runner) settleInterrupted(ctx context.Context, kind, key string, settle func(context.Context) settlement) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptSettleBudget)
	defer cancel()
	s := settle(sctx)
	if s.err != nil || s.adopt == 0 {
		return
	}
	if err := r.journal.Result(key, s.adopt, nil); err != nil {
		return
	}
	r.report(kind, clanforge.Job{ID: s.adopt})
}

// attach polls a job to its end. A job known only by id (re-attached from
// the journal or adopted from a lock) is read first. anchor is when the
// call that made the job was sent, zero when the job came from elsewhere.
func (r *runner) attach(ctx context.Context, kind string, job *clanforge.Job, anchor time.Time, read func(context.Context) (*clanforge.Job, error)) (*clanforge.Job, error) {
	if job.State == clanforge.StateUnknown {
		nj, err := read(ctx)
		if err != nil {
			return job, fmt.Errorf("reading %s job %d: %w", kind, job.ID, err)
		}
		job = nj
	}
	job, err := r.pollJob(ctx, kind, job, anchor, read)
	if err != nil && ctx.Err() == nil {
		return job, fmt.Errorf("reading %s job %d: %w", kind, job.ID, err)
	}
	return job, err
}

// runDiff creates a diff and polls it; a failed diff is re-run with the
// retry endpoint (same diffid) while retries are left. The diff id is in
// the output even when the diff fails, so that an on_failure reject can
// release the lock it holds.
func (r *runner) runDiff(ctx context.Context) error {
	if r.inst.Machine == nil {
		return fmt.Errorf("diff step %q has no machine", r.step.Name)
	}
	job, anchor, err := r.createDiff(ctx)
	if err != nil {
		return err
	}
	diffID := job.ID
	r.out.DiffID = diffID
	d := &diffReader{c: r.env.Client, id: diffID}
	for retry := 0; ; retry++ {
		job, err = r.attach(ctx, KindDiff, job, anchor, d.read)
		if err != nil {
			return err
		}
		if job.State == clanforge.StateCompleted {
			return r.diffCompleted(ctx, d)
		}
		if retry >= r.step.Retries || job.State != clanforge.StateFailed {
			err := jobError(KindDiff, job)
			if retry > 0 {
				err = fmt.Errorf("%w (after %d retries)", err, retry)
			}
			return err
		}
		job, anchor, err = r.retryDiff(ctx, diffID, retry)
		if err != nil {
			return err
		}
	}
}

// createDiff sends imagediff/create once (journalled), and returns the diff
// job with the anchor its polling starts from: zero when the diff was
// adopted rather than made just now.
func (r *runner) createDiff(ctx context.Context) (*clanforge.Job, time.Time, error) {
	c := r.env.Client
	img, m := r.inst.Image, r.inst.Machine
	createKey := Key(r.inst.ID, epDiffCreate, 1)
	anchor := r.now()
	job, adopted, err := r.do(ctx, call{
		key:      createKey,
		endpoint: apiPrefix + epDiffCreate,
		params: map[string]string{
			"accountserviceid": itoa(c.ASID()),
			"imageid":          itoa(img.ID),
			"machineid":        itoa(m.ID),
		},
		settle: r.lockSettle("diff"),
		send: func(ctx context.Context) (*clanforge.Job, error) {
			return c.CreateDiff(ctx, img.ID, m.ID)
		},
	})
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, clanforge.ErrOutcomeUnknown) {
			// Interrupted with the answer lost: record the diff now, so
			// that a resume's pre-flight knows its lock is ours.
			r.settleInterrupted(ctx, KindDiff, createKey, r.lockSettle("diff"))
			return nil, anchor, ctx.Err()
		}
		return nil, anchor, fmt.Errorf("imagediff/create: %w", err)
	}
	if adopted {
		anchor = time.Time{}
	}
	return job, anchor, nil
}

// diffReader reads one diff's status and keeps the last answer, whose file
// lists are the diff's output.
type diffReader struct {
	c    *clanforge.Client
	id   int64
	last *clanforge.Diff
}

func (d *diffReader) read(ctx context.Context) (*clanforge.Job, error) {
	dd, err := d.c.DiffStatus(ctx, d.id)
	if err != nil {
		return nil, err
	}
	d.last = dd
	return &dd.Job, nil
}

// diffCompleted puts the completed diff's file lists in the output.
func (r *runner) diffCompleted(ctx context.Context, d *diffReader) error {
	if d.last == nil || d.last.ID != d.id {
		// attach always reads at least once unless the create
		// answer was already terminal, which a diff never is;
		// read once more rather than guess the file lists.
		if _, err := d.read(ctx); err != nil {
			return fmt.Errorf("reading diff %d: %w", d.id, err)
		}
	}
	r.out.Added = d.last.Added
	r.out.Modified = d.last.Modified
	r.out.Removed = d.last.Removed
	r.out.Changed = d.last.Changed()
	return nil
}

// retryDiff sends the retry that follows failure retry+1 of the diff, and
// returns the diff job with the anchor its polling starts from: zero when
// the retry was settled or adopted rather than made just now.
func (r *runner) retryDiff(ctx context.Context, diffID int64, retry int) (*clanforge.Job, time.Time, error) {
	retryCall := r.diffRetryCall(diffID, retry)
	anchor := r.now()
	job, _, err := r.do(ctx, retryCall)
	// The client settles a lost retry answer from the diff's
	// timestamps, which have one-second resolution; when it cannot,
	// the failure count can (do settles an answered error like a
	// missing answer), with a bounded number of proven-harmless
	// resends.
	var wait time.Duration
	for sends := 1; err != nil && errors.Is(err, clanforge.ErrOutcomeUnknown) && ctx.Err() == nil && sends < retrySendLimit; sends++ {
		wait = r.policy.grow(wait)
		if serr := sleep(ctx, wait); serr != nil {
			break
		}
		job, _, err = r.do(ctx, retryCall)
	}
	if err != nil && errors.Is(err, clanforge.ErrOutcomeUnknown) && ctx.Err() == nil {
		switch st := retryCall.settle(ctx); {
		case st.err == nil && st.adopt != 0:
			_ = r.journal.Result(retryCall.key, st.adopt, nil)
			job, err = &clanforge.Job{ID: st.adopt}, nil
		case st.err == nil:
			return nil, anchor, fmt.Errorf("imagediff/%d/retry was sent %d times; the answer to each was lost, and each time the diff had not run again afterwards, so none took effect; giving up", diffID, retrySendLimit)
		}
	}
	if err != nil {
		return nil, anchor, fmt.Errorf("imagediff/%d/retry: %w", diffID, err)
	}
	if job.ID == 0 {
		job.ID = diffID
	}
	if job.State == clanforge.StateUnknown {
		// Settled or adopted: not made just now.
		anchor = time.Time{}
	}
	return job, anchor, nil
}

// diffRetryCall is the journalled imagediff/{id}/retry call that follows
// failure retry+1 of the diff.
func (r *runner) diffRetryCall(diffID int64, retry int) call {
	c := r.env.Client
	return call{
		key:      Key(r.inst.ID, epDiffRetry, retry+1),
		endpoint: fmt.Sprintf("%simagediff/%d/retry", apiPrefix, diffID),
		params:   map[string]string{"accountserviceid": itoa(c.ASID()), "diffid": itoa(diffID)},
		// A retry whose answer was lost (in this run, or never
		// recorded by an earlier one) is settled from the diff's
		// failure count: retry n is sent after n failures (the
		// first run and n-1 retries each failed once), so a diff
		// still Failed with jobfailed n has not run since, and the
		// retry is sent again. Running again, completed, or failed
		// once more: the retry took effect, and the diff is polled
		// (API §7 #4: jobfailed counts failures).
		settle: func(ctx context.Context) settlement {
			d, err := c.DiffStatus(ctx, diffID)
			if err != nil {
				return settlement{err: fmt.Errorf("settling an earlier imagediff/%d/retry from its status: %w", diffID, err)}
			}
			if d.State == clanforge.StateFailed && d.Failed == retry+1 {
				return settlement{}
			}
			return settlement{adopt: diffID}
		},
		send: func(ctx context.Context) (*clanforge.Job, error) {
			return c.RetryDiff(ctx, diffID)
		},
	}
}

// runGate evaluates the gate's expression; false fails the instance. It
// makes no API call.
func (r *runner) runGate() error {
	if r.step.Expr == nil {
		return fmt.Errorf("gate %q has no expression", r.step.Name)
	}
	in := plan.EvalInput{
		Machine: r.inst.Machine,
		Image:   r.inst.Image,
		Steps:   r.in.Scope,
	}
	ok, err := r.step.Expr.Eval(in)
	if err != nil {
		return fmt.Errorf("gate %q: evaluating %s: %w", r.step.Name, r.step.Expr.Source, err)
	}
	if !ok {
		// Say why, not only what was asked: the values the expression
		// read.
		if why := r.step.Expr.Explain(in); why != "" {
			return fmt.Errorf("gate %q is false: %s, where %s", r.step.Name, r.step.Expr.Source, why)
		}
		return fmt.Errorf("gate %q is false: %s", r.step.Name, r.step.Expr.Source)
	}
	return nil
}

// versionOptions maps the step's keys to the create call. full: auto sends
// full=1 exactly when the diff has no changes.
func (r *runner) versionOptions(diff *plan.Output) clanforge.VersionOptions {
	s := r.step
	full := s.Full == plan.FullTrue || (s.Full == plan.FullAuto && diff.Changed == 0)
	return clanforge.VersionOptions{
		Restart:           s.Restart,
		Full:              full,
		GameBuild:         s.GameBuild.Resolved,
		Force:             s.Force,
		InstallNow:        s.InstallAt == plan.InstallNow,
		DisableTimeout:    s.DisableTimeout,
		DisablePercentage: s.DisablePercentage,
	}
}

// versionParams are the create call's query parameters for the journal and
// the preview, with display values.
func versionParams(asid int64, diffid string, s *plan.Step, full string) map[string]string {
	// full and force are sent only as 1, as the client does: the API
	// describes no other value for them.
	p := map[string]string{
		"accountserviceid": itoa(asid),
		"diffid":           diffid,
		"restart":          boolParam(s.Restart),
	}
	if full != "0" {
		p["full"] = full
	}
	if s.Force {
		p["force"] = "1"
	}
	if s.GameBuild.Resolved != "" || s.GameBuild.Display != "" {
		p["game_build"] = maskURL(s.GameBuild.Display)
	}
	if s.InstallAt == plan.InstallNow {
		p["install_at"] = "NOW()"
	}
	if s.DisableTimeout > 0 {
		p["disable_timeout"] = fmt.Sprint(s.DisableTimeout)
	}
	if s.DisablePercentage > 0 {
		p["disable_percentage"] = fmt.Sprintf("%.2f", s.DisablePercentage)
	}
	return p
}

// runVersion turns the diff in scope into a version and polls its packaging
// job. A lost create answer is never resent blindly: it is settled (see
// settleLostVersion), and sent again only when the diff provably still
// locks the image, which a consumed diff would not.
func (r *runner) runVersion(ctx context.Context) error {
	c := r.env.Client
	diff := r.in.Diff
	if diff == nil || diff.DiffID == 0 {
		return fmt.Errorf("version step %q: no diff id in scope (the diff step produced none)", r.step.Name)
	}
	diffID := diff.DiffID
	opt := r.versionOptions(diff)
	create := call{
		key:      Key(r.inst.ID, epVersionCreate, 1),
		endpoint: apiPrefix + epVersionCreate,
		params:   versionParams(c.ASID(), itoa(diffID), r.step, boolParam(opt.Full)),
		settle: func(ctx context.Context) settlement {
			k, id, err := c.LockHolder(ctx, r.inst.Image.ID)
			if err != nil {
				return settlement{err: fmt.Errorf("settling an earlier imageversion/create from image/options: %w", err)}
			}
			if k == "diff" && id == diffID {
				// The diff still locks the image: it was not consumed,
				// so the earlier create never took effect.
				return settlement{}
			}
			return r.settleVersionFromInstalls(ctx, diffID)
		},
		send: func(ctx context.Context) (*clanforge.Job, error) {
			return c.CreateVersion(ctx, diffID, opt)
		},
	}
	anchor := r.now()
	job, adopted, err := r.do(ctx, create)
	var ou *clanforge.OutcomeUnknownError
	if errors.As(err, &ou) {
		// The client never resends a version create whose answer was
		// lost; settle it exactly as a resumed run would.
		job, err = r.settleLostVersion(ctx, create, err)
		adopted = true
	}
	if err != nil {
		if errors.As(err, &ou) {
			return fmt.Errorf("outcome unknown: the answer to imageversion/create for diff %d was lost and could not be settled, so it was not sent again; check imageversion for diff %d: %w", diffID, diffID, err)
		}
		return fmt.Errorf("imageversion/create for diff %d: %w", diffID, err)
	}
	id := job.ID
	r.out.VersionID = id
	if adopted {
		anchor = time.Time{}
	}
	job, err = r.attach(ctx, KindVersion, job, anchor, func(ctx context.Context) (*clanforge.Job, error) {
		return c.VersionStatus(ctx, id)
	})
	if err != nil {
		return err
	}
	if job.State != clanforge.StateCompleted {
		return jobError(KindVersion, job)
	}
	return nil
}

// runReject rejects the diff in scope when this run created it and it still
// holds the image's lock. With reinstall the uninstall job it starts has no
// status endpoint (API §7 #20): it is reported once and the step ends.
func (r *runner) runReject(ctx context.Context) error {
	c := r.env.Client
	diff := r.in.Diff
	if diff == nil || diff.DiffID == 0 {
		// No diff of this run in scope: nothing to reject.
		return nil
	}
	diffID := diff.DiffID
	open := func(ctx context.Context) (bool, error) { return r.diffHoldsLock(ctx, diffID) }
	isOpen, err := open(ctx)
	if err != nil {
		return err
	}
	if !isOpen {
		// Already rejected, or turned into a version: either way not ours
		// to reject any more.
		return nil
	}
	// Reject is refused while the diff runs (a diff step that timed out);
	// wait for it to end first.
	if err := r.waitDiffEnded(ctx, diffID); err != nil {
		return err
	}
	var res *clanforge.RejectResult
	_, _, err = r.do(ctx, call{
		key:      Key(r.inst.ID, epDiffReject, 1),
		endpoint: fmt.Sprintf("%simagediff/%d/reject", apiPrefix, diffID),
		params: map[string]string{
			"accountserviceid": itoa(c.ASID()),
			"diffid":           itoa(diffID),
			"reinstall":        boolParam(r.step.Reinstall),
		},
		settle: func(ctx context.Context) settlement {
			isOpen, err := open(ctx)
			if err != nil {
				return settlement{err: err}
			}
			if !isOpen {
				return settlement{done: true}
			}
			return settlement{}
		},
		send: func(ctx context.Context) (*clanforge.Job, error) {
			rr, err := c.RejectDiff(ctx, diffID, r.step.Reinstall)
			if err != nil {
				return nil, err
			}
			res = rr
			if rr.Uninstall != nil {
				return rr.Uninstall, nil
			}
			return &clanforge.Job{}, nil
		},
	})
	if errors.Is(err, errNothingToPoll) {
		// An earlier run's reject took effect (settled from the lock).
		r.out.DiffID = diffID
		return nil
	}
	if err != nil {
		return fmt.Errorf("imagediff/%d/reject: %w", diffID, err)
	}
	// The output names the diff it rejected, so that the summary can say
	// what the rollout cleaned up.
	r.out.DiffID = diffID
	if res != nil && res.Uninstall != nil {
		r.report(KindUninstall, *res.Uninstall)
	}
	return nil
}

// diffHoldsLock reports whether the diff still holds the lock of the
// instance's image.
func (r *runner) diffHoldsLock(ctx context.Context, diffID int64) (bool, error) {
	k, id, err := r.env.Client.LockHolder(ctx, r.inst.Image.ID)
	if err != nil {
		return false, fmt.Errorf("reading the lock of image %d: %w", r.inst.Image.ID, err)
	}
	return k == "diff" && id == diffID, nil
}

// waitDiffEnded polls the diff until it is in a terminal state.
func (r *runner) waitDiffEnded(ctx context.Context, diffID int64) error {
	c := r.env.Client
	d, err := c.DiffStatus(ctx, diffID)
	if err != nil {
		return fmt.Errorf("reading diff %d: %w", diffID, err)
	}
	if !d.State.Terminal() {
		if _, err := r.pollJob(ctx, KindDiff, &d.Job, time.Time{}, func(ctx context.Context) (*clanforge.Job, error) {
			d, err := c.DiffStatus(ctx, diffID)
			if err != nil {
				return nil, err
			}
			return &d.Job, nil
		}); err != nil {
			return fmt.Errorf("waiting for diff %d to end before rejecting it: %w", diffID, err)
		}
	}
	return nil
}

// settleVersionFromInstalls finds the version an earlier imageversion/create
// made when its answer was never recorded (the process died in between) and
// the diff no longer locks the image, so the create took effect. No endpoint
// maps a diff to its version, but a completed version generates install jobs
// for every fleet machine that carries the image, each naming its
// target_imageversionid: the newest version targeted on this image's fleet
// machines is ours. The pre-flight proved no foreign diff locked the image
// when the rollout first started, and a version needs a diff, so no one else
// can have made a newer version of it since. While the version is still
// packaging no install job exists yet, so this waits for them, reported as a
// job in state "settling", for at most versionSettleReads reads that find
// none (and within the step's timeout). Under install_at now the jobs may
// instead have run and completed, leaving the list, while the rollout was
// down: then nothing names the version any more, and the wait ends with an
// outcome that is known to have taken effect but cannot be identified.
//
// When the same machines carry several images, the install entries'
// imagepath (documented as "/home/cf/<imageid>" in the API example) tells
// them apart; if it cannot, the outcome stays unknown rather than guessed.
func (r *runner) settleVersionFromInstalls(ctx context.Context, diffID int64) settlement {
	img := r.inst.Image.ID
	unknown := func(why string) settlement {
		return settlement{err: unsettled(fmt.Sprintf("outcome unknown: an earlier imageversion/create for diff %d was sent but its answer was not recorded, and the diff no longer locks image %d (%s); check imageversion for diff %d before running again", diffID, img, why, diffID))}
	}
	fleet := map[int64]bool{}
	for _, m := range r.env.Fleet[img] {
		fleet[m] = true
	}
	if len(fleet) == 0 {
		return unknown("the image has no fleet machine whose install jobs could name the version")
	}
	pol := r.policy
	wait := pol.Min
	start := time.Now()
	for reads := 1; ; reads++ {
		list, err := r.env.Client.InstallStatus(ctx)
		if err != nil {
			return settlement{err: fmt.Errorf("settling an earlier imageversion/create from imageinstall/status: %w", err)}
		}
		ours, other := int64(0), false
		for _, in := range list {
			if in.Mirroring || !fleet[in.Machine] {
				continue
			}
			if in.ImagePath != "" && !strings.HasSuffix(strings.TrimRight(in.ImagePath, "/"), "/"+itoa(img)) {
				continue // another image's install on a shared machine
			}
			if in.ImagePath == "" && len(r.env.Fleet) > 1 {
				other = true
			}
			ours = max(ours, in.TargetVersionID)
		}
		switch {
		case ours != 0 && other:
			return unknown("install jobs on machines shared with other images do not say which image they install")
		case ours != 0:
			return settlement{adopt: ours}
		case reads >= versionSettleReads:
			return settlement{err: unsettled(fmt.Sprintf("an earlier imageversion/create for diff %d took effect (the diff no longer locks image %d), but the version it made cannot be identified: "+
				"after %d reads of imageinstall/status over %s no install job on the image's fleet machines names it (under install_at now they may all have run and completed while the rollout was down, and nothing else names a version); "+
				"nothing was sent again; check the image's latest version", diffID, img, reads, time.Since(start).Round(time.Second)))}
		}
		r.progress(JobUpdate{Kind: KindVersion, Job: clanforge.Job{StateName: "settling", Error: fmt.Sprintf("waiting for the install jobs of the version made from diff %d", diffID)}})
		select {
		case <-ctx.Done():
			return settlement{err: fmt.Errorf("settling an earlier imageversion/create for diff %d: %w", diffID, ctx.Err())}
		case <-time.After(wait):
		}
		wait = min(time.Duration(float64(wait)*pol.Factor), pol.Max)
	}
}

// retrySendLimit bounds the sends of one diff retry whose answers were lost
// and each settled as not taken effect.
const retrySendLimit = 3

// versionSettleReads bounds the reads of imageinstall/status that look for
// the install jobs of a version whose create answer was never recorded: with
// the default poll policy about twelve minutes, more than a version takes to
// package.
const versionSettleReads = 30

// versionSendLimit bounds how often one version create is sent within a
// run when each earlier send was proven to have made nothing (the diff
// still locked the image after its answer was lost).
const versionSendLimit = 5

// settleLostVersion settles a version create whose answer was lost in this
// run: the version the install jobs name is adopted; a diff that still locks
// the image proves the create never took effect, and it is sent again, with
// backoff, up to versionSendLimit sends in all. A resend cannot make a second
// version even if an earlier request is still being processed somewhere,
// because a diff is consumed by the first version made from it and the API
// refuses a version from a consumed diff.
//
// Its errors say what is known: a settle that could not read the API is
// "could not be settled" (an *OutcomeUnknownError-like error); a create
// whose every lost answer was settled as "nothing made" ends with an error
// that says so and does not match clanforge.ErrOutcomeUnknown.
func (r *runner) settleLostVersion(ctx context.Context, create call, lost error) (*clanforge.Job, error) {
	diffID := r.in.Diff.DiffID
	sends := 1
	var wait time.Duration
	for {
		st := create.settle(ctx)
		switch {
		case st.err != nil:
			return nil, st.err
		case st.adopt != 0:
			_ = r.journal.Result(create.key, st.adopt, nil)
			return &clanforge.Job{ID: st.adopt}, nil
		}
		// Settled: the create made nothing.
		if sends >= versionSendLimit {
			// The lost answers were all settled: say so, and not in
			// the words of an unsettled one.
			cause := lost
			var ou *clanforge.OutcomeUnknownError
			if errors.As(lost, &ou) && ou.Cause != nil {
				cause = ou.Cause
			}
			return nil, fmt.Errorf("imageversion/create for diff %d was sent %d times; the answer to each was lost, and each time the diff still locked image %d afterwards, so none made a version; giving up (last failure: %v)",
				diffID, sends, r.inst.Image.ID, cause)
		}
		wait = r.policy.grow(wait)
		r.progress(JobUpdate{Kind: KindVersion, Job: clanforge.Job{StateName: "settling",
			Error: fmt.Sprintf("the answer to imageversion/create was lost and the diff still locks the image, so nothing was made: sending it again in %s (send %d of at most %d)", wait, sends+1, versionSendLimit)}})
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		if err := r.journal.Intent(create.key, create.endpoint, create.params); err != nil {
			return nil, fmt.Errorf("journal: recording intent %q: %w", create.key, err)
		}
		sends++
		job, err := create.send(ctx)
		var id int64
		if job != nil && err == nil {
			id = job.ID
		}
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
			// As in do: an unknown outcome is no answer.
			_ = r.journal.Result(create.key, id, err)
		}
		if err == nil {
			return job, nil
		}
		var ou *clanforge.OutcomeUnknownError
		if !errors.As(err, &ou) {
			return nil, fmt.Errorf("after a lost answer (%v), the diff still locked the image and the create was sent again: %w", lost, err)
		}
		lost = err
	}
}

// unsettled is an outcome the API could not settle; it matches
// clanforge.ErrOutcomeUnknown so callers treat it like a lost answer.
type unsettled string

func (e unsettled) Error() string { return string(e) }

// Is matches clanforge.ErrOutcomeUnknown.
func (e unsettled) Is(target error) bool { return target == clanforge.ErrOutcomeUnknown }
