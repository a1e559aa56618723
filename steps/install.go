package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// discoveryReads is how many reads of imageinstall/status an install
// instance waits for its job(s) to appear before it gives up. The version
// the instance needs has completed before it starts, so its jobs should be
// listed already; a few reads cover a platform that lists them late.
const discoveryReads = 4

// readErrorLimit is how many failed reads in a row an install instance
// tolerates (each already retried by the client) before it fails.
const readErrorLimit = 3

// runInstall finds the install job(s) of the version in scope, queues the
// pending ones once (install_at manual), and watches them until they leave
// the list (completed) or fail (state 6, which stays listed).
//
// A resumed instance starts from every job of its interest the journal
// names (listed, queued or left unfinished by any earlier run): one that
// the first read no longer lists completed while the rollout was down.
func (r *runner) runInstall(ctx context.Context) error {
	c := r.env.Client
	kind, interest, err := r.installInterest()
	if err != nil {
		return err
	}
	// Under install_at=now the platform starts the jobs by itself: queue
	// nothing, only watch.
	manual := r.inst.Version == nil || r.inst.Version.Step == nil ||
		r.inst.Version.Step.InstallAt != plan.InstallNow

	w := r.env.Installs
	if w == nil {
		w = NewInstallWatcher(c, r.policy)
		w.SetClock(r.now)
		defer w.Close()
	}
	w.SetJournal(r.journal)
	w.shareBook(r.env.paceBook())
	sub, err := w.Subscribe(interest)
	if err != nil {
		return fmt.Errorf("watching imageinstall/status: %w", err)
	}
	defer sub.Close()

	iw := &installWatch{r: r, kind: kind, interest: interest, manual: manual,
		seen: map[int64]clanforge.Install{}, gone: map[int64]bool{},
		qs: &queuer{r: r, kind: kind, jobs: map[int64]*queueState{}, sub: sub}}
	iw.seedKnown(sub)
	return iw.watch(ctx, sub)
}

// installInterest says which jobs the instance watches: the mirroring jobs
// of the version in scope, or the install jobs of it on the instance's
// machine.
func (r *runner) installInterest() (string, InstallInterest, error) {
	ver := r.in.Version
	if ver == nil || ver.VersionID == 0 {
		return "", InstallInterest{}, fmt.Errorf("install step %q: no version id in scope (the version step produced none)", r.step.Name)
	}
	mirroring := r.step.Mirroring
	kind := KindInstall
	interest := InstallInterest{VersionID: ver.VersionID, Mirroring: mirroring}
	if mirroring {
		kind = KindMirror
	} else {
		if r.inst.Machine == nil {
			return "", InstallInterest{}, fmt.Errorf("install step %q: a machine install has no machine", r.step.Name)
		}
		interest.Machine = r.inst.Machine.ID
	}
	return kind, interest, nil
}

// installWatch is what one install instance knows while it watches its
// jobs.
type installWatch struct {
	r        *runner
	kind     string
	interest InstallInterest
	manual   bool                        // install_at manual: pending jobs are ours to queue
	seen     map[int64]clanforge.Install // last listed state of each job
	gone     map[int64]bool              // left the list: completed
	qs       *queuer
}

// seedKnown counts as seen the jobs known before the first read of this
// instance.
func (iw *installWatch) seedKnown(sub *InstallSubscription) {
	// Jobs the shared watcher listed before this instance subscribed count
	// as seen: one that the next read no longer lists completed while the
	// instance waited for its turn (install_at now runs jobs unasked).
	for _, j := range sub.Known() {
		iw.seen[j.ID] = j
	}
	// So do the jobs earlier runs recorded: a job that completed while
	// the rollout was down has left the list, and only the journal still
	// knows it existed.
	for _, id := range iw.r.journal.InstallJobs(iw.r.inst.ID, iw.interest) {
		if _, ok := iw.seen[id]; !ok {
			iw.seen[id] = clanforge.Install{Job: clanforge.Job{ID: id}, Mirroring: iw.interest.Mirroring,
				Machine: iw.interest.Machine, TargetVersionID: iw.interest.VersionID}
		}
	}
}

// watch takes the shared watcher's reads until the jobs end: nil once every
// job left the list, an error when one failed, none was found, all were
// squashed, reads kept failing or ctx ended.
func (iw *installWatch) watch(ctx context.Context, sub *InstallSubscription) error {
	empty, readErrs := 0, 0
	for {
		var snap InstallSnapshot
		select {
		case <-ctx.Done():
			iw.r.setInstallOutput(iw.seen, iw.gone)
			return ctx.Err()
		case snap = <-sub.C():
		}
		if snap.Err != nil {
			readErrs++
			if readErrs >= readErrorLimit || errors.Is(snap.Err, clanforge.ErrAuth) ||
				errors.Is(snap.Err, errWatcherStopped) {
				return fmt.Errorf("reading imageinstall/status: %w", snap.Err)
			}
			continue
		}
		readErrs = 0

		iw.observe(snap)
		live, squashed, err := iw.advance(ctx, snap)
		if err != nil {
			return err
		}
		if len(iw.seen) == 0 {
			empty++
			if empty >= discoveryReads {
				return iw.r.installNotFound(ctx, iw.interest, empty)
			}
			continue
		}
		if live > 0 {
			continue
		}
		if len(iw.gone) > 0 {
			return nil
		}
		// Only squashed jobs: another install superseded ours.
		return fmt.Errorf("%s job(s) %v for version %d were squashed (superseded by another install) and no other job for this target is listed", iw.kind, squashed, iw.interest.VersionID)
	}
}

// observe records the jobs a read lists, marks those that left the list as
// completed, and updates the instance's output.
func (iw *installWatch) observe(snap InstallSnapshot) {
	r := iw.r
	listed := make(map[int64]bool, len(snap.Jobs))
	for _, j := range snap.Jobs {
		listed[j.ID] = true
		j.Job = r.emit(iw.kind, j.Job)
		iw.seen[j.ID] = j
	}
	for id, j := range iw.seen {
		if !listed[id] && !iw.gone[id] {
			// Completed (and squashed) jobs leave the list; a failed
			// one stays with state 6, so a vanished job completed.
			iw.gone[id] = true
			done := j.Job
			done.State = clanforge.StateCompleted
			done.StateName = clanforge.StateCompleted.String()
			done.Progress = 100
			done.Error = ""
			iw.seen[id] = clanforge.Install{Job: done, Mirroring: j.Mirroring, Mirror: j.Mirror,
				Machine: j.Machine, Location: j.Location, TargetVersionID: j.TargetVersionID}
			r.emit(iw.kind, done)
			if iw.manual {
				// A queue whose answer was lost is settled: the
				// job was queued (it ran to its end).
				iw.qs.settled(id)
			}
		}
	}
	r.setInstallOutput(iw.seen, iw.gone)
}

// advance acts on each listed job's state: a failed job fails the instance,
// a pending one is queued (install_at manual), one past pending settles its
// queue. It returns how many jobs are still live and the squashed ones.
func (iw *installWatch) advance(ctx context.Context, snap InstallSnapshot) (int, []int64, error) {
	live := 0
	var squashed []int64
	for _, j := range snap.Jobs {
		switch j.State {
		case clanforge.StateFailed:
			return 0, nil, iw.r.installFailed(iw.kind, &j)
		case clanforge.StateSquashed:
			squashed = append(squashed, j.ID)
			continue
		case clanforge.StatePending:
			if iw.manual {
				if err := iw.qs.pending(ctx, &j, snap.Sent); err != nil {
					return 0, nil, err
				}
			}
		case clanforge.StateQueued, clanforge.StateRunning:
			if iw.manual {
				// Past Pending: whoever queued it, it is queued.
				iw.qs.settled(j.ID)
			}
		}
		live++
	}
	return live, squashed, nil
}

// setInstallOutput puts the job ids in the output, and as the instance's
// job the least advanced one still listed (the one the rollout waits for).
func (r *runner) setInstallOutput(seen map[int64]clanforge.Install, gone map[int64]bool) {
	ids := make([]int64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	r.out.JobIDs = ids
	var pick *clanforge.Install
	for _, id := range ids {
		j := seen[id]
		if pick == nil || (gone[pick.ID] && !gone[id]) ||
			(gone[pick.ID] == gone[id] && j.Progress < pick.Progress) {
			jj := j
			pick = &jj
		}
	}
	if pick != nil {
		r.out.Job = jobOutput(pick.Job)
	}
}

func (r *runner) installFailed(kind string, j *clanforge.Install) error {
	msg := j.Error
	if msg == "" {
		msg = "no error message given"
	}
	if j.Mirroring {
		where := j.Mirror
		if where == "" {
			where = fmt.Sprintf("location %d", j.Location)
		}
		return fmt.Errorf("%s job %d (%s) for version %d failed: %s", kind, j.ID, where, j.TargetVersionID, msg)
	}
	return fmt.Errorf("%s job %d on machine %d for version %d failed: %s", kind, j.ID, j.Machine, j.TargetVersionID, msg)
}

// queueSendLimit bounds how often one install job is queued within a run
// when every earlier call was proven to have done nothing (a read sent after
// the call still listed the job Pending). It is well above what transient
// faults need: most lost answers settle as queued on the next read.
const queueSendLimit = 6

// queueState is what one instance knows about queueing one job.
type queueState struct {
	sends int  // queue calls this run sent (or tried to send) for the job
	done  bool // queued: an answer said so, or a read showed it moved on
	// lost is set while the outcome of the last call is unknown (its
	// answer was lost, or it failed in a way that does not prove it did
	// nothing): when the call returned, on the real clock. A read sent
	// after it settles the call.
	lost time.Time
	// notBefore spaces resends out (the real clock).
	notBefore time.Time
	wait      time.Duration
}

// queuer queues the pending jobs of one install instance, each once, and
// settles a call whose outcome is unknown from the shared watcher's later
// reads rather than from reads of its own: the watcher reads anyway, and a
// settle that waits on its own reads can starve under faults while the
// watcher's reads succeed.
type queuer struct {
	r    *runner
	kind string
	jobs map[int64]*queueState
	// sub hears of every queue call, so that the watcher aims its reads
	// at the job's end (or, after a lost answer, reads soon to settle it).
	sub *InstallSubscription
}

func (q *queuer) state(id int64) *queueState {
	st := q.jobs[id]
	if st == nil {
		st = &queueState{}
		q.jobs[id] = st
	}
	return st
}

// settled notes that job id is queued, as a read showed (it left Pending or
// the list). A queue intent of this run or an earlier one that has no
// recorded answer gets one now, so that the journal no longer lists it as
// pending.
func (q *queuer) settled(id int64) {
	st := q.state(id)
	if st.done {
		return
	}
	st.done = true
	key := QueueKey(q.r.inst.ID, id)
	if intent, result, job := q.r.journal.Prior(key); intent && (!result || job == 0) {
		_ = q.r.journal.Result(key, id, nil)
	}
	st.lost = time.Time{}
}

// pending handles job j, listed Pending by a read sent at sent: it queues
// the job once, or again when a read sent after an earlier call whose
// outcome is unknown still lists it Pending, which proves that call did
// nothing (queueing moves a job out of Pending at once). A call the API
// refused ends the instance; so does a job still Pending after
// queueSendLimit calls.
func (q *queuer) pending(ctx context.Context, j *clanforge.Install, sent time.Time) error {
	st := q.state(j.ID)
	if st.done {
		// An answer said queued; this read may have been sent before the
		// call arrived.
		return nil
	}
	if st.sends > 0 {
		if st.lost.IsZero() || sent.IsZero() || !sent.After(st.lost) || time.Now().Before(st.notBefore) {
			return nil
		}
		if st.sends >= queueSendLimit {
			return fmt.Errorf("queueing %s job %d (imageinstall/%d/queue): sent %d times, and each time a later read of imageinstall/status still listed the job Pending, so none of the calls took effect; giving up",
				q.kind, j.ID, j.ID, st.sends)
		}
	}
	st.sends++
	callSent := q.r.now()
	err := q.r.queue(ctx, q.kind, j)
	switch {
	case err == nil:
		st.done, st.lost = true, time.Time{}
		q.sub.Queued(j.ID, callSent, true)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case refused(err):
		return err
	case errors.Is(err, clanforge.ErrNotApplied):
		// The client already sent it again as often as reads proved the
		// earlier sends did nothing (clanforge.Config.MaxResends): it owns
		// those resends, and they are not multiplied here. Nothing was
		// queued; a later run may queue the job.
		return fmt.Errorf("queueing %s job %d (imageinstall/%d/queue): %w", q.kind, j.ID, j.ID, err)
	}
	// The outcome is unknown (or nothing was sent): the watcher's next
	// read settles it.
	q.sub.Queued(j.ID, callSent, false)
	st.lost = time.Now()
	st.wait = q.r.policy.grow(st.wait)
	st.notBefore = st.lost.Add(st.wait)
	q.r.emit(q.kind, clanforge.Job{ID: j.ID, State: j.State, StateName: "settling",
		Error: fmt.Sprintf("the answer to queueing job %d was lost (%v); a later read of imageinstall/status settles it", j.ID, err)})
	return nil
}

// refused reports whether err is an answer of the API that refused the call
// outright (an error envelope or a 4xx other than 429), or a journal
// failure: the call cannot have taken effect, and sending it again would be
// refused again.
func refused(err error) bool {
	if errors.Is(err, clanforge.ErrOutcomeUnknown) || errors.Is(err, clanforge.ErrRateLimited) {
		return false
	}
	if errors.Is(err, errJournal) {
		return true
	}
	var ae *clanforge.APIError
	return errors.As(err, &ae) && ae.HTTPStatus < 500
}

// errJournal marks a queue call that could not be recorded.
var errJournal = errors.New("journal")

// queue pushes one pending job into the processing queue. The journal key
// carries the job id, so an earlier run's call is found: one that got its
// answer is not sent again. One without an answer is sent again only
// because the caller holds a read, sent after that run ended, that lists
// the job Pending: proof the earlier call did nothing.
//
// The call, the client's own settling of a lost answer included, is bounded
// by callBudget; past it, the caller settles it from the watcher's reads.
func (r *runner) queue(ctx context.Context, kind string, j *clanforge.Install) error {
	c := r.env.Client
	jobID, mirroring := j.ID, j.Mirroring
	cctx, cancel := context.WithTimeout(ctx, r.policy.callBudget())
	defer cancel()
	qj, adopted, err := r.do(cctx, call{
		key:      QueueKey(r.inst.ID, jobID),
		endpoint: fmt.Sprintf("%simageinstall/%d/queue", apiPrefix, jobID),
		params: map[string]string{
			"accountserviceid": itoa(c.ASID()),
			"mirroring":        fmt.Sprint(mirroring),
		},
		settle: func(context.Context) settlement {
			// The caller's read lists the job Pending and was sent
			// after the earlier call: it did nothing.
			return settlement{}
		},
		send: func(ctx context.Context) (*clanforge.Job, error) {
			qr, err := c.QueueInstall(ctx, jobID, mirroring)
			if err != nil {
				return nil, err
			}
			// The journal keeps the listed job id: it is the one status
			// reads name, whatever id the queue answer carries.
			qj := qr.Job
			qj.ID = jobID
			return &qj, nil
		},
	})
	if errors.Is(err, errNothingToPoll) {
		return nil
	}
	if err != nil {
		// do reports an intent it could not record as "journal: ...",
		// without a sentinel; nothing was sent, and a resend would fail
		// the same way.
		if strings.HasPrefix(err.Error(), "journal: ") {
			err = fmt.Errorf("%w: %w", errJournal, err)
		}
		return fmt.Errorf("queueing %s job %d (imageinstall/%d/queue): %w", kind, jobID, jobID, err)
	}
	if !adopted && qj != nil && qj.State != clanforge.StateUnknown {
		r.emit(kind, *qj)
	}
	return nil
}

// installNotFound ends an instance whose job never appeared. A job that
// completed before the first look is not listed any more; the image's
// rollout counters tell that case apart: nothing pending, nothing failed
// and some machine on the latest version.
func (r *runner) installNotFound(ctx context.Context, in InstallInterest, reads int) error {
	what := fmt.Sprintf("no machine install job for version %d on machine %d", in.VersionID, in.Machine)
	if in.Mirroring {
		what = fmt.Sprintf("no mirror job for version %d", in.VersionID)
	}
	st, err := r.env.Client.ImageStatus(ctx, r.inst.Image.ID, false)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s appeared in imageinstall/status after %d reads (and image status could not be read: %v)", what, reads, err)
	}
	if st.Pending == 0 && st.Failed == 0 && st.Completed > 0 {
		return nil
	}
	return fmt.Errorf("%s appeared in imageinstall/status after %d reads; image %d counters: %d pending, %d failed, %d completed machines",
		what, reads, r.inst.Image.ID, st.Pending, st.Failed, st.Completed)
}
