package steps

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// Key returns the journal key of a state-changing call: the instance id,
// the call's endpoint name and the attempt, e.g.
// "diff@buildbox-1/game-b imagediff/create#1".
func Key(instID, endpoint string, attempt int) string {
	return fmt.Sprintf("%s %s#%d", instID, endpoint, attempt)
}

// QueueKey returns the journal key of queueing one install job; a job is
// queued at most once, so the key carries the job id and no attempt.
func QueueKey(instID string, jobID int64) string {
	return fmt.Sprintf("%s imageinstall/queue/%d", instID, jobID)
}

// Endpoint names used in journal keys and paths sent to the journal.
const (
	epUpdateCreate  = "imageupdate/create"
	epDiffCreate    = "imagediff/create"
	epDiffRetry     = "imagediff/retry"
	epDiffReject    = "imagediff/reject"
	epVersionCreate = "imageversion/create"
)

const apiPrefix = "/cfp/v1/"

// settlement is what the API says about an intent whose answer an earlier
// run never recorded.
type settlement struct {
	// adopt is the job the earlier call made; 0 when it made none.
	adopt int64
	// done: the earlier call took effect but made no job to poll.
	done bool
	// err: the outcome cannot be settled; nothing may be sent.
	err error
}

// call describes one journaled state-changing call.
type call struct {
	key      string
	endpoint string            // path sent to the journal, e.g. /cfp/v1/imagediff/create
	params   map[string]string // masked display values
	// settle asks the API what became of an earlier intent without a
	// recorded job. Required.
	settle func(ctx context.Context) settlement
	// send makes the call.
	send func(ctx context.Context) (*clanforge.Job, error)
}

// errNothingToPoll tells the caller that an earlier run's call took effect
// but left no job to attach to.
var errNothingToPoll = errors.New("earlier call took effect; no job to poll")

// do sends c once per intent, or recovers what an earlier run's call did.
// The returned job is the one the call made (id only when adopted from the
// journal or a lock holder: the caller reads its status next). adopted tells
// the caller that the job came from an earlier run.
func (r *runner) do(ctx context.Context, c call) (job *clanforge.Job, adopted bool, err error) {
	intent, result, prior := r.journal.Prior(c.key)
	if result && prior != 0 {
		// The earlier run saw the answer: re-attach, never send again.
		return &clanforge.Job{ID: prior}, true, nil
	}
	if intent && !result {
		// Sent, but no answer was recorded (the process died, or the
		// answer was lost and the outcome stayed unknown): settle before
		// sending. A recorded error answer is a known outcome: the API
		// refused the call, or it was never sent (an unknown outcome is
		// never recorded as an answer), so it made nothing.
		s := c.settle(ctx)
		if s.err != nil {
			return nil, false, s.err
		}
		if s.adopt != 0 {
			if err := r.journal.Result(c.key, s.adopt, nil); err != nil {
				return nil, false, fmt.Errorf("journal: %w", err)
			}
			return &clanforge.Job{ID: s.adopt}, true, nil
		}
		if s.done {
			return nil, true, errNothingToPoll
		}
	}
	// Nothing state-changing goes out once the run is being stopped.
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := r.journal.Intent(c.key, c.endpoint, c.params); err != nil {
		// An unrecorded call could be sent twice after a crash: refuse.
		return nil, false, fmt.Errorf("journal: recording intent %q: %w", c.key, err)
	}
	job, err = c.send(ctx)
	var id int64
	if job != nil && err == nil {
		id = job.ID
	}
	// An answer whose outcome is unknown is no answer: the intent stays
	// without a result, so that the run counts as unfinished and a resume
	// settles it from the API. A failed Result write is survivable for
	// the same reason.
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
		_ = r.journal.Result(c.key, id, err)
	}
	if err != nil {
		return job, false, err
	}
	return job, false, nil
}

// lockSettle adopts the image's lock holder when it is of kind: after a lost
// create answer, a holder of that kind is the job the call made (the
// engine's pre-flight ensured no foreign lock existed when the rollout first
// started, and updates and diffs of one image are serialized).
//
// No holder proves a diff create made nothing: a diff locks its image until
// it is rejected or turned into a version, which only this run would do.
// It proves nothing for an update: one that was made and already finished
// leaves no lock either, and no read tells the two apart. The update is
// then neither sent again nor assumed done: the person decides, with
// --resend or --assume-sent for that instance (Env.Resend, Env.AssumeSent),
// after looking at the build machine or the Clanforge panel.
func (r *runner) lockSettle(kind string) func(context.Context) settlement {
	return func(ctx context.Context) settlement {
		k, id, err := r.env.Client.LockHolder(ctx, r.inst.Image.ID)
		if err != nil {
			return settlement{err: fmt.Errorf("settling an earlier %s create from image/options: %w", kind, err)}
		}
		switch {
		case k == kind && id != 0:
			return settlement{adopt: id}
		case kind != "update" || r.env.Resend[r.inst.ID]:
			return settlement{}
		case r.env.AssumeSent[r.inst.ID]:
			return settlement{done: true}
		}
		return settlement{err: &UnsettledUpdateError{Instance: r.inst.ID, Image: r.inst.Image.Name, Machine: machineName(r.inst)}}
	}
}

// UnsettledUpdateError is an imageupdate/create an earlier run sent whose
// answer it never recorded, with no update holding the image now: it was
// either never made or made and finished, and only a person can tell.
type UnsettledUpdateError struct {
	Instance, Image, Machine string
}

func (e *UnsettledUpdateError) Error() string {
	return fmt.Sprintf("an earlier run sent imageupdate/create for image %s on %s and stopped before its answer; no update holds the image now, "+
		"so the update was either never made or made and already finished, and no read of the API tells which. rollout will not send it twice "+
		"on a guess: look at %s (or the image's updates in the Clanforge panel), then continue with --resume and either --assume-sent %s "+
		"(the build is there: go on to the diff) or --resend %s (it is not: send the update again)",
		e.Image, e.Machine, e.Machine, e.Instance, e.Instance)
}

// Is matches clanforge.ErrOutcomeUnknown: the outcome is unknown.
func (e *UnsettledUpdateError) Is(target error) bool { return target == clanforge.ErrOutcomeUnknown }

func machineName(in *plan.Instance) string {
	if in.Machine == nil {
		return "the build machine"
	}
	return in.Machine.Name
}

// maskURL hides credentials in a URL-like value (the user-info, secret
// query parameters); the rules live in package redact.
func maskURL(s string) string { return redact.Text(s) }

// maskedError hides secrets in an error's text but keeps its chain, so
// errors.Is and errors.As still see the original.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// mask removes every secret the step carries from err's text: values that
// came from the environment (shown by their ${env:NAME} display) and
// credentials inside URLs.
func (r *runner) mask(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := r.maskText(msg)
	if masked == msg {
		return err
	}
	return &maskedError{msg: masked, err: err}
}

// maskText hides, in free text from the API or the client, every secret
// the step's values carry (plan.Step.Secrets: each ${env:NAME} value shown
// as ${env:NAME}, each whole value as its Display, in every encoding the
// output boundary knows), then whatever else the boundary masks (the
// process's registered secrets, URL credentials). The step does not rely on
// the command having registered its values: an error leaving a step is
// already safe to show.
func (r *runner) maskText(s string) string {
	if secrets := r.step.Secrets(); len(secrets) > 0 {
		s = redact.NewSet(secrets...).Mask(s)
	}
	return redact.String(s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
