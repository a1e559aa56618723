package clanforge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Endpoint paths. The documented path forms are used (ID as a path segment,
// API §4); the server also accepts the ID in the query, which we do not rely on.
const (
	pathUpdateCreate   = "/cfp/v1/imageupdate/create"
	pathDiffCreate     = "/cfp/v1/imagediff/create"
	pathVersionCreate  = "/cfp/v1/imageversion/create"
	pathInstallStatus  = "/cfp/v1/imageinstall/status"
	pathImageOptions   = "/cfp/v1/image/options"
	alreadyQueuedToken = "already queued"
)

// Path builders take ids as text: Calls lets a preview pass placeholders.
func pathUpdateStatus(id string) string  { return "/cfp/v1/imageupdate/" + id + "/status" }
func pathDiffStatus(id string) string    { return "/cfp/v1/imagediff/" + id + "/status" }
func pathDiffRetry(id string) string     { return "/cfp/v1/imagediff/" + id + "/retry" }
func pathDiffReject(id string) string    { return "/cfp/v1/imagediff/" + id + "/reject" }
func pathVersionStatus(id string) string { return "/cfp/v1/imageversion/" + id + "/status" }
func pathInstallQueue(id string) string  { return "/cfp/v1/imageinstall/" + id + "/queue" }
func pathImageStatus(asid, image string) string {
	return "/cfp/v2/project/" + asid + "/image/" + image + "/status"
}
func pathSwitchProfile(fleet string) string { return "/cfp/v2/fleet/" + fleet + "/switchprofile" }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// bit spells a boolean the way the v1 endpoints document it: 1 or 0.
func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// send sends call and returns the raw JSON object of a successful answer.
func (c *Client) send(ctx context.Context, call Call) ([]byte, error) {
	req, err := c.Request(ctx, call)
	if err != nil {
		return nil, err
	}
	// The body is decoded once, by the caller's decoder; do has only made
	// sure that it is a JSON object without an error envelope.
	_, body, err := c.do(ctx, req, true, call.Mutating)
	return body, err
}

// read sends a safe read built by Calls and decodes it; a decode failure is
// a *DecodeError naming the endpoint.
func read[T any](ctx context.Context, c *Client, call Call, decode func([]byte) (T, error)) (T, error) {
	var zero T
	body, err := c.send(ctx, call)
	if err != nil {
		return zero, err
	}
	v, err := decode(body)
	if err != nil {
		return zero, c.decodeError(call.Path, err)
	}
	return v, nil
}

func (c *Client) decodeError(path string, err error) error {
	return &DecodeError{Endpoint: c.endpoint(path), HTTPStatus: 200, Reason: c.redactor.Replace(redactUserinfo(err.Error()))}
}

// endpoint is the request path as it appears in errors (base path included).
func (c *Client) endpoint(path string) string { return c.base.Path + path }

// mutate sends a state-changing call and decodes its answer. An answer that
// arrived but cannot be decoded, or lacks the id it must carry, is as good as
// lost: it becomes an *OutcomeUnknownError for the caller to settle.
func mutate[T any](ctx context.Context, c *Client, call Call, decode func([]byte) (T, error)) (T, error) {
	var zero T
	body, err := c.send(ctx, call)
	if err != nil {
		return zero, err
	}
	v, err := decode(body)
	if err != nil {
		return zero, &OutcomeUnknownError{Endpoint: c.endpoint(call.Path), Cause: c.decodeError(call.Path, err)}
	}
	return v, nil
}

var errNoID = errors.New("the answer carries no job id")

func jobDecoder(field jobIDField) func([]byte) (*Job, error) {
	return func(b []byte) (*Job, error) {
		j, err := decodeJob(b, field, 0)
		if err != nil {
			return nil, err
		}
		if j.ID == 0 {
			return nil, errNoID
		}
		return j, nil
	}
}

// asOutcomeUnknown returns err as an *OutcomeUnknownError when it is one.
func asOutcomeUnknown(err error) (*OutcomeUnknownError, bool) {
	var ou *OutcomeUnknownError
	ok := errors.As(err, &ou)
	return ou, ok
}

// unsettled annotates an outcome-unknown error with why settling failed.
func unsettled(ou *OutcomeUnknownError, why error) error {
	if why == nil {
		return ou
	}
	return &OutcomeUnknownError{Endpoint: ou.Endpoint, Cause: fmt.Errorf("%w; settling it failed: %v", ou.Cause, why)}
}

// inconclusive annotates an outcome-unknown error with what a settling read
// that worked did show, when that cannot decide the outcome.
func inconclusive(ou *OutcomeUnknownError, known string) error {
	return &OutcomeUnknownError{Endpoint: ou.Endpoint, Cause: ou.Cause, Known: known}
}

// resendAfterProof is called when a read proved that a state-changing call
// whose answer was lost (ou) took no effect, after sends sends. It waits a
// backoff, reported as a WaitResend, and returns nil when the call may be
// sent again; a *NotAppliedError when the resends are used up or ctx ended
// (nothing new is sent after an interrupt).
//
// Sending again is safe only because each caller's proof also holds
// against a send still being processed: a second diff create is refused
// as locked by the first one's diff, a second queue is answered "already
// queued", a second reject is refused once the first released the lock.
// Each caller recognises that refusal as the earlier send's success.
func (c *Client) resendAfterProof(ctx context.Context, ou *OutcomeUnknownError, sends int, proof string) error {
	na := &NotAppliedError{Endpoint: ou.Endpoint, Sends: sends, Proof: proof, Last: ou.Cause}
	if c.cfg.MaxResends < 0 || sends > c.cfg.MaxResends {
		return na
	}
	if err := ctx.Err(); err != nil {
		na.Stopped = err
		return na
	}
	d := c.backoff(sends)
	c.emit(Wait{Kind: WaitResend, Endpoint: ou.Endpoint, Attempt: sends + 1, Delay: d,
		Reason: fmt.Sprintf("the answer was lost (%s), but %s, so the call took no effect", c.reason(ou.Cause), proof)})
	if err := c.sleep(ctx, d); err != nil {
		na.Stopped = err
		return na
	}
	return nil
}

// holder names a lock holder for messages: "diff 42", "no lock".
func holder(kind string, id int64) string {
	if kind == "" {
		return "no lock"
	}
	return fmt.Sprintf("%s %d", kind, id)
}

// CreateUpdate calls imageupdate/create. desc is required (API §4.1); a blank
// one is refused before anything is sent. url may be empty when the image has a
// default update URL; credentials inside it must already be URL-encoded (the
// query encoding the client adds is the second encoding the docs ask for,
// API §4.1.1). A lost answer is settled from image/options: a new updateid
// lock holder that was not there before the call is the job the call made
// (API §7 #8: an update in progress is reported as the image's updateid).
//
// A lost answer that the settle read cannot prove (no new update lock) is an
// *OutcomeUnknownError saying what was seen; the call is never sent twice,
// because an update that was made and has already finished leaves no lock
// either, so no read can prove that the call took no effect.
func (c *Client) CreateUpdate(ctx context.Context, imageID, machineID int64, desc, url string) (*Job, error) {
	if strings.TrimSpace(strings.Trim(desc, `"`)) == "" {
		// desc is a required parameter (API §4.1): refuse here, before
		// anything is sent, rather than let the server refuse the call.
		return nil, fmt.Errorf("clanforge: imageupdate/create of image %d: the description (desc) is required and must not be blank", imageID)
	}
	beforeKind, beforeID, err := c.lockBefore(ctx, imageID, "imageupdate/create", true)
	if err != nil {
		return nil, err
	}
	asked := time.Now()
	j, err := mutate(ctx, c, c.Calls().UpdateCreate(itoa(imageID), itoa(machineID), desc, url), jobDecoder(idUpdate))
	if err == nil {
		c.locks.set(imageID, "update", j.ID, asked)
		return j, nil
	}
	c.lockRefused(imageID, err, asked)
	ou, ok := asOutcomeUnknown(err)
	if !ok {
		return nil, err
	}
	k, id, err := c.LockHolder(ctx, imageID)
	if err != nil {
		return nil, unsettled(ou, err)
	}
	if isNewHolder("update", k, id, beforeKind, beforeID) {
		c.locks.set(imageID, "update", id, time.Now())
		return adoptJob(ctx, id, c.UpdateStatus), nil
	}
	return nil, inconclusive(ou, fmt.Sprintf("image %d shows no new update lock (%s; before the call: %s): "+
		"either the call made no update, or it made one that has already finished, which leaves no lock; no read can tell which",
		imageID, holder(k, id), holder(beforeKind, beforeID)))
}

// lockBefore returns image imageID's lock holder before a call to endpoint
// whose lost answer the holder afterwards settles. With reuse, a holder the
// client learned within Config.LockReuse stands in for a read (see
// DefaultLockReuse for why that proves as much).
func (c *Client) lockBefore(ctx context.Context, imageID int64, endpoint string, reuse bool) (string, int64, error) {
	if reuse {
		if r, ok := c.locks.recent(imageID, c.cfg.LockReuse, time.Now()); ok {
			return r.kind, r.id, nil
		}
	}
	k, id, err := c.LockHolder(ctx, imageID)
	if err != nil {
		return "", 0, fmt.Errorf("clanforge: reading the lock holder of image %d before %s: %w", imageID, endpoint, err)
	}
	return k, id, nil
}

// lockRefused takes in the error of a create on image imageID asked at
// asked: a lock refusal names the holder; any other failure leaves the
// holder unknown (the call may have taken the lock).
func (c *Client) lockRefused(imageID int64, err error, asked time.Time) {
	var le *LockedError
	if errors.As(err, &le) && le.HolderID != 0 {
		c.locks.set(imageID, le.HolderKind, le.HolderID, asked)
		return
	}
	c.locks.forget(imageID)
}

// isNewHolder reports whether the lock holder k/id read after a lost create
// answer is the job the call made: a holder of the call's kind that was not
// there before the call. Another client creating a job on the same image in
// the same instant would be mistaken for ours; the docs offer nothing
// better (API §8).
func isNewHolder(kind, k string, id int64, beforeKind string, beforeID int64) bool {
	return k == kind && id != 0 && !(beforeKind == kind && beforeID == id)
}

// adoptJob returns the job id a settle proved, with its state when a read
// of it works. Without the state the id is still proven; the caller's next
// poll brings the state (StateUnknown is not terminal, so a poller keeps
// going).
func adoptJob(ctx context.Context, id int64, status func(context.Context, int64) (*Job, error)) *Job {
	j, err := status(ctx, id)
	if err != nil {
		return &Job{ID: id}
	}
	return j
}

// UpdateStatus reads imageupdate/<id>/status.
func (c *Client) UpdateStatus(ctx context.Context, updateID int64) (*Job, error) {
	asked := time.Now()
	j, err := read(ctx, c, c.Calls().UpdateStatus(itoa(updateID)), func(b []byte) (*Job, error) {
		return decodeJob(b, idUpdate, updateID)
	})
	if err == nil {
		c.locks.updateRead(updateID, j, asked)
	}
	return j, err
}

// CreateDiff calls imagediff/create. A lost answer is settled from
// image/options: a new diffid lock holder that was not there before the
// call is the diff the call made. A diff locks its image from its creation
// until it is rejected or accepted, so a lock holder unchanged since before
// the call proves the call made no diff: it is then sent again after a
// backoff, at most Config.MaxResends times, and when those run out the
// error is a *NotAppliedError (nothing was made). Even if an earlier
// request were still being processed, a resend could not make a second
// diff: it would be refused with "image locked by diffid: N", naming the
// earlier send's diff, which is then adopted.
func (c *Client) CreateDiff(ctx context.Context, imageID, machineID int64) (_ *Job, err error) {
	beforeKind, beforeID, err := c.lockBefore(ctx, imageID, "imagediff/create", true)
	if err != nil {
		return nil, err
	}
	// However this call ends, the memo's reading is spent: a made diff
	// holds the lock, and anything else leaves it unknown, except a
	// refusal that names the holder.
	asked := time.Now()
	defer func() {
		if err == nil {
			c.locks.forget(imageID)
			return
		}
		c.lockRefused(imageID, err, asked)
	}()
	call := c.Calls().DiffCreate(itoa(imageID), itoa(machineID))
	diffJob := func(ctx context.Context, id int64) (*Job, error) {
		d, err := c.DiffStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		return &d.Job, nil
	}
	for sends := 1; ; sends++ {
		j, err := mutate(ctx, c, call, jobDecoder(idDiff))
		if err == nil {
			return j, nil
		}
		var le *LockedError
		if sends > 1 && errors.As(err, &le) && isNewHolder("diff", le.HolderKind, le.HolderID, beforeKind, beforeID) {
			// The resend was refused because a diff that was not there
			// before the first send now locks the image: an earlier send
			// made it after all (it was still being processed when the
			// lock was read). It is ours.
			return adoptJob(ctx, le.HolderID, diffJob), nil
		}
		ou, ok := asOutcomeUnknown(err)
		if !ok {
			return nil, err
		}
		k, id, lerr := c.LockHolder(ctx, imageID)
		if lerr != nil {
			return nil, unsettled(ou, lerr)
		}
		if isNewHolder("diff", k, id, beforeKind, beforeID) {
			return adoptJob(ctx, id, diffJob), nil
		}
		if k != beforeKind || id != beforeID {
			return nil, inconclusive(ou, fmt.Sprintf("image %d's lock changed from %s to %s, which does not show whether a diff was made",
				imageID, holder(beforeKind, beforeID), holder(k, id)))
		}
		proof := fmt.Sprintf("image %d's lock is unchanged (%s), and a new diff would hold it", imageID, holder(k, id))
		if err := c.resendAfterProof(ctx, ou, sends, proof); err != nil {
			return nil, err
		}
	}
}

// DiffStatus reads imagediff/<id>/status with its file lists. diff_info is
// not sent: the file maps come without it (API §4.5) and the game/image/
// machine objects are not needed.
func (c *Client) DiffStatus(ctx context.Context, diffID int64) (*Diff, error) {
	return read(ctx, c, c.Calls().DiffStatus(itoa(diffID), false), func(b []byte) (*Diff, error) {
		return decodeDiff(b, diffID)
	})
}

// RetryDiff calls imagediff/<id>/retry (allowed on Completed or Failed diffs).
// A lost answer is settled from the diff's status: a diff that was terminal
// before the call and is back in states 1–4 afterwards (or whose jobcreated
// or jobupdated moved on) was re-run by the call.
func (c *Client) RetryDiff(ctx context.Context, diffID int64) (*Job, error) {
	// A re-run diff holds its image's lock: what the client knew of it
	// is stale.
	defer c.locks.forgetAll()
	before, err := c.DiffStatus(ctx, diffID)
	if err != nil {
		return nil, fmt.Errorf("clanforge: reading diff %d before imagediff/retry: %w", diffID, err)
	}
	j, err := mutate(ctx, c, c.Calls().DiffRetry(itoa(diffID)), func(b []byte) (*Job, error) {
		// The retry answer's table lists diffid, but the diff is known.
		return decodeJob(b, idDiff, diffID)
	})
	if err == nil {
		return j, nil
	}
	ou, ok := asOutcomeUnknown(err)
	if !ok {
		return nil, err
	}
	after, serr := c.DiffStatus(ctx, diffID)
	if serr != nil {
		return nil, unsettled(ou, serr)
	}
	rerun := after.State >= StateCreated && after.State <= StateRunning ||
		after.Created.After(before.Created) || after.Updated.After(before.Updated)
	if !before.State.Terminal() {
		return nil, inconclusive(ou, fmt.Sprintf("diff %d was %s before the call, so its state cannot show a re-run", diffID, before.State))
	}
	if !rerun {
		// Not proof enough to send it again: a re-run that began and
		// ended within the second of the diff's last update would look
		// exactly like this (the timestamps have one-second resolution).
		return nil, inconclusive(ou, fmt.Sprintf("diff %d shows no re-run (still %s, its times unchanged), but a re-run that ended within the same second would look the same",
			diffID, after.State))
	}
	return &after.Job, nil
}

// RejectDiff calls imagediff/<id>/reject. A lost answer is settled from
// image/options: a diff that held the image's lock before the call and no
// longer does was rejected (Uninstall is then nil, its job id unknowable).
// One that still holds it was not: the call is sent again after a backoff,
// at most Config.MaxResends times (then a *NotAppliedError). A resend
// refused while the lock is gone means an earlier send did it.
func (c *Client) RejectDiff(ctx context.Context, diffID int64, reinstall bool) (*RejectResult, error) {
	defer c.locks.forgetAll()
	// The lock lives on the image, which the diff status names only with
	// diff_info=1; read it to know where to look after a lost answer.
	imageID, err := read(ctx, c, c.Calls().DiffStatus(itoa(diffID), true), decodeDiffImage)
	if err != nil {
		return nil, fmt.Errorf("clanforge: reading diff %d before imagediff/reject: %w", diffID, err)
	}
	var beforeKind string
	var beforeID int64
	if imageID != 0 {
		if beforeKind, beforeID, err = c.lockBefore(ctx, imageID, "imagediff/reject", false); err != nil {
			return nil, err
		}
	}
	held := imageID != 0 && beforeKind == "diff" && beforeID == diffID
	for sends := 1; ; sends++ {
		res, err := mutate(ctx, c, c.Calls().DiffReject(itoa(diffID), reinstall), func(b []byte) (*RejectResult, error) {
			return decodeReject(b, diffID)
		})
		if err == nil {
			return res, nil
		}
		ou, ok := asOutcomeUnknown(err)
		if !ok {
			if sends > 1 && held {
				// A resend refused: an earlier send that was still being
				// processed may have rejected the diff meanwhile.
				if k, id, lerr := c.LockHolder(ctx, imageID); lerr == nil && !(k == "diff" && id == diffID) {
					return &RejectResult{DiffID: diffID}, nil
				}
			}
			return nil, err
		}
		if !held {
			return nil, inconclusive(ou, fmt.Sprintf("diff %d did not hold its image's lock before the call, so the lock cannot show whether it was rejected", diffID))
		}
		k, id, serr := c.LockHolder(ctx, imageID)
		if serr != nil {
			return nil, unsettled(ou, serr)
		}
		if !(k == "diff" && id == diffID) {
			return &RejectResult{DiffID: diffID}, nil
		}
		proof := fmt.Sprintf("diff %d still holds the lock of image %d, which a reject releases", diffID, imageID)
		if err := c.resendAfterProof(ctx, ou, sends, proof); err != nil {
			return nil, err
		}
	}
}

// decodeDiffImage reads the image id out of a diff status sent with
// diff_info=1 (API §7 #7: {imageid,name,gameversionid}); 0 when absent.
func decodeDiffImage(b []byte) (int64, error) {
	var r struct {
		Image *struct {
			ImageID flexInt `json:"imageid"`
		} `json:"image"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	if r.Image == nil {
		return 0, nil
	}
	return r.Image.ImageID.V, nil
}

// CreateVersion calls imageversion/create. Its lost answer cannot be settled
// from one read (the diff is consumed and the lock released, API §8), so it
// returns an *OutcomeUnknownError and is not resent here. The caller may
// settle it further: a diff that still locks the image proves the create
// never took effect (steps does that, and finds a version that was made from
// the install jobs it generates).
//
// The parameters are built by Calls.VersionCreate, which says how each is
// spelled.
func (c *Client) CreateVersion(ctx context.Context, diffID int64, opt VersionOptions) (*Job, error) {
	// Accepting a diff releases its image's lock.
	defer c.locks.forgetAll()
	return mutate(ctx, c, c.Calls().VersionCreate(itoa(diffID), opt), jobDecoder(idVersion))
}

// VersionStatus reads imageversion/<id>/status.
func (c *Client) VersionStatus(ctx context.Context, versionID int64) (*Job, error) {
	return read(ctx, c, c.Calls().VersionStatus(itoa(versionID)), func(b []byte) (*Job, error) {
		return decodeJob(b, idVersion, versionID)
	})
}

// InstallStatus reads imageinstall/status: every install job of the ASID that
// has not completed (Failed ones included, API §7 #16).
func (c *Client) InstallStatus(ctx context.Context) ([]Install, error) {
	return read(ctx, c, c.Calls().InstallStatus(), decodeInstalls)
}

// FindInstall reads imageinstall/status and returns the install job jobID.
// listed is false when the job is not in the list, which means it completed
// or was squashed (API §7 #16); inst is then nil.
func (c *Client) FindInstall(ctx context.Context, jobID int64) (inst *Install, listed bool, err error) {
	all, err := c.InstallStatus(ctx)
	if err != nil {
		return nil, false, err
	}
	for i := range all {
		if all[i].ID == jobID {
			return &all[i], true, nil
		}
	}
	return nil, false, nil
}

// QueueInstall calls imageinstall/<jobid>/queue. An "already queued" answer
// and a lost answer settled from imageinstall/status both count as success,
// with AlreadyQueued set; the result then carries the job as listed (or only
// its id when it already left the list).
//
// A lost answer after which the job is still Pending (so not queued) is
// sent again after a backoff, at most Config.MaxResends times (then a
// *NotAppliedError).
//
// "already queued" is matched case-insensitively anywhere in error_message:
// the text is not documented.
func (c *Client) QueueInstall(ctx context.Context, jobID int64, mirroring bool) (*QueueResult, error) {
	call := c.Calls().InstallQueue(itoa(jobID), mirroring)
	for sends := 1; ; sends++ {
		res, err := mutate(ctx, c, call, func(b []byte) (*QueueResult, error) {
			return decodeQueue(b, jobID)
		})
		if err == nil {
			return res, nil
		}
		var ae *APIError
		if errors.As(err, &ae) && strings.Contains(strings.ToLower(ae.Message), alreadyQueuedToken) {
			return &QueueResult{Job: Job{ID: jobID}, AlreadyQueued: true}, nil
		}
		ou, ok := asOutcomeUnknown(err)
		if !ok {
			return nil, err
		}
		inst, listed, serr := c.FindInstall(ctx, jobID)
		if serr != nil {
			return nil, unsettled(ou, serr)
		}
		if !listed {
			return &QueueResult{Job: Job{ID: jobID}, AlreadyQueued: true}, nil
		}
		if inst.State == StateUnknown {
			return nil, inconclusive(ou, fmt.Sprintf("install job %d's state cannot be read (%q)", jobID, inst.StateName))
		}
		if inst.State != StatePending && inst.State != StateCreated {
			return &QueueResult{Job: inst.Job, AlreadyQueued: true}, nil
		}
		// Queueing moves a job out of Pending at once, so a job still
		// Pending was not queued: it is sent again. Were an earlier
		// request still in flight, the next would be answered "already
		// queued", which counts as success above.
		proof := fmt.Sprintf("install job %d is still %s, and a queued job leaves that state at once", jobID, inst.State)
		if err := c.resendAfterProof(ctx, ou, sends, proof); err != nil {
			return nil, err
		}
	}
}

// ImageStatus reads the v2 rollout counters of an image. The ASID is a path
// segment here (API §4.12) and, unlike on the v1 calls, it is not sent in the
// query: the page's table does not list it there (see NewRequest). detail is
// spelled true/false.
func (c *Client) ImageStatus(ctx context.Context, imageID int64, detail bool) (*ImageStatus, error) {
	return read(ctx, c, c.Calls().ImageStatus(itoa(imageID), detail), decodeImageStatus)
}

// ImageOptions reads image/options for one image (lock holders, update URL).
func (c *Client) ImageOptions(ctx context.Context, imageID int64) (*ImageOptions, error) {
	game, err := c.gameFor(ctx, imageID)
	if err != nil {
		return nil, err
	}
	gameID := ""
	if game != 0 {
		gameID = itoa(game)
	}
	asked := time.Now()
	o, err := read(ctx, c, c.Calls().ImageOptions(gameID, itoa(imageID)), decodeImageOptions)
	if err == nil && imageID != 0 {
		k, id := o.lockHolder()
		c.locks.set(imageID, k, id, asked)
	}
	return o, err
}

// gameFor finds the game an image belongs to. The options page says gameid
// and imageid must be given together, and the plan names only images, so
// the client asks image/options without filters for the account's games:
// with one game that is the answer; with several, the game whose image list
// (asked with gameid and imageid together) names the image. The answer is
// cached for the client's life. Config.GameID skips the discovery.
//
// A server that lists no games at all gets imageid alone: no server
// faithful to the docs answers that way (every image belongs to a game, and
// games is not optional), so only a lenient stand-in sees it, and imageid is
// what the lock lookup needs.
func (c *Client) gameFor(ctx context.Context, imageID int64) (int64, error) {
	if c.cfg.GameID != 0 {
		return c.cfg.GameID, nil
	}
	c.mu.Lock()
	g, ok := c.gameOf[imageID]
	c.mu.Unlock()
	if ok {
		return g, nil
	}
	all, err := read(ctx, c, c.Calls().ImageOptions("", ""), decodeImageOptions)
	if err != nil {
		// Credentials and interrupts are answers in themselves. Any other
		// refusal of the unfiltered listing (a server that wants filters)
		// is not worth failing over: imageid alone is what older clients
		// send, and the lock read itself will say if it is refused too.
		var ae *APIError
		if errors.Is(err, ErrAuth) || ctx.Err() != nil || !errors.As(err, &ae) {
			return 0, err
		}
		all = &ImageOptions{}
	}
	switch len(all.Games) {
	case 0:
		g = 0
	case 1:
		g = all.Games[0].ID
	default:
		var lastErr error
		for _, game := range all.Games {
			o, err := read(ctx, c, c.Calls().ImageOptions(itoa(game.ID), itoa(imageID)), decodeImageOptions)
			if err != nil {
				if errors.Is(err, ErrAuth) || ctx.Err() != nil {
					return 0, err
				}
				// Asked with another game's id, a strict server may
				// refuse rather than list that game's images.
				lastErr = err
				continue
			}
			for _, img := range o.Images {
				if img.ID == imageID {
					g = game.ID
				}
			}
			if g != 0 {
				break
			}
		}
		if g == 0 {
			msg := fmt.Sprintf("image %d belongs to none of the account's %d games", imageID, len(all.Games))
			if lastErr != nil {
				msg += fmt.Sprintf(" (the last game's read failed: %v)", lastErr)
			}
			return 0, &APIError{Endpoint: c.endpoint(pathImageOptions), HTTPStatus: 404, Code: 0, Message: msg}
		}
	}
	c.mu.Lock()
	if c.gameOf == nil {
		c.gameOf = map[int64]int64{}
	}
	c.gameOf[imageID] = g
	c.mu.Unlock()
	return g, nil
}

// LockHolder returns who locks an image according to image/options: kind
// "diff" or "update" and the holder's id, or "" and 0 when the image is free.
// When both are reported the diff wins: it is the lock that must be
// rejected, an update lock ends by itself.
//
// The resume logic uses it to settle an intent recorded without a result.
func (c *Client) LockHolder(ctx context.Context, imageID int64) (kind string, id int64, err error) {
	o, err := c.ImageOptions(ctx, imageID)
	if err != nil {
		return "", 0, err
	}
	kind, id = o.lockHolder()
	return kind, id, nil
}

// lockHolder is LockHolder's reading of an answer.
func (o *ImageOptions) lockHolder() (string, int64) {
	switch {
	case o.DiffID != 0:
		return "diff", o.DiffID
	case o.UpdateID != 0:
		return "update", o.UpdateID
	}
	return "", 0
}

// SwitchProfile asks a reservation fleet to switch its servers to a profile:
// PATCH /cfp/v2/fleet/<fleetid>/switchprofile with the JSON body
// {"ProfileID", "Timeout", "MaxMachines"}, the last two only when set
// (API §4.15). Timeout is sent as a Go duration ("2h", "90m").
//
// The PATCH changes state, so it goes the never-resend-blindly way: over a
// connection that is not reused, sent once. A lost answer is settled by
// reading the switch status: the requested profile pending, processing or
// complete means the PATCH took, and that status is returned. Anything
// else is an *OutcomeUnknownError saying what the read showed; it is not
// sent again (a second PATCH while the first is still on its way could
// start a second switch).
func (c *Client) SwitchProfile(ctx context.Context, fleetID string, opt SwitchOptions) (*ProfileSwitch, error) {
	if err := checkFleetID(fleetID); err != nil {
		return nil, err
	}
	if opt.ProfileID <= 0 || opt.Timeout < 0 || opt.MaxMachines < 0 {
		return nil, fmt.Errorf("clanforge: switchprofile of fleet %s: ProfileID must be positive and Timeout and MaxMachines not negative (got %d, %s, %d)",
			fleetID, opt.ProfileID, opt.Timeout, opt.MaxMachines)
	}
	st, err := mutate(ctx, c, c.Calls().SwitchProfile(fleetID, opt), decodeSwitch)
	if err == nil {
		return st, nil
	}
	ou, ok := asOutcomeUnknown(err)
	if !ok {
		return nil, err
	}
	after, serr := c.ProfileSwitchStatus(ctx, fleetID)
	if serr != nil {
		return nil, unsettled(ou, serr)
	}
	if after.ProfileID == opt.ProfileID && after.State.Requested() {
		return after, nil
	}
	return nil, inconclusive(ou, fmt.Sprintf("fleet %s's switch status shows %s for profile %d, not a switch to profile %d",
		fleetID, after.State, after.ProfileID, opt.ProfileID))
}

// ProfileSwitchStatus reads GET /cfp/v2/fleet/<fleetid>/switchprofile: the
// state of the fleet's last profile switch ("not requested" before any).
func (c *Client) ProfileSwitchStatus(ctx context.Context, fleetID string) (*ProfileSwitch, error) {
	if err := checkFleetID(fleetID); err != nil {
		return nil, err
	}
	return read(ctx, c, c.Calls().SwitchStatus(fleetID), decodeSwitch)
}

// checkFleetID refuses a fleet id that could change the request's path.
// Fleet ids are UUIDs (API §1.1); letters, digits, '-', '_' and '.' are
// accepted.
func checkFleetID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return fmt.Errorf("clanforge: fleet id %q is not a fleet UUID", truncate(id, 60))
	}
	return nil
}

func urlValues(kv ...string) url.Values {
	q := make(url.Values, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}
