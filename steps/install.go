package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
func (r *runner) runInstall(ctx context.Context) error {
	c := r.env.Client
	ver := r.in.Version
	if ver == nil || ver.VersionID == 0 {
		return fmt.Errorf("install step %q: no version id in scope (the version step produced none)", r.step.Name)
	}
	versionID := ver.VersionID
	mirroring := r.step.Mirroring
	kind := KindInstall
	interest := InstallInterest{VersionID: versionID, Mirroring: mirroring}
	if mirroring {
		kind = KindMirror
	} else {
		if r.inst.Machine == nil {
			return fmt.Errorf("install step %q: a machine install has no machine", r.step.Name)
		}
		interest.Machine = r.inst.Machine.ID
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
	sub, err := w.Subscribe(interest)
	if err != nil {
		return fmt.Errorf("watching imageinstall/status: %w", err)
	}
	defer sub.Close()

	seen := map[int64]clanforge.Install{} // last listed state of each job
	gone := map[int64]bool{}              // left the list: completed
	queued := map[int64]bool{}            // queue sent (or settled) once
	// Jobs the shared watcher listed before this instance subscribed count
	// as seen: one that the next read no longer lists completed while the
	// instance waited for its turn (install_at now runs jobs unasked).
	for _, j := range sub.Known() {
		seen[j.ID] = j
	}
	empty, readErrs := 0, 0
	for {
		var snap InstallSnapshot
		select {
		case <-ctx.Done():
			r.setInstallOutput(seen, gone)
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

		listed := make(map[int64]bool, len(snap.Jobs))
		for _, j := range snap.Jobs {
			listed[j.ID] = true
			j.Job = r.emit(kind, j.Job)
			seen[j.ID] = j
		}
		for id, j := range seen {
			if !listed[id] && !gone[id] {
				// Completed (and squashed) jobs leave the list; a failed
				// one stays with state 6, so a vanished job completed.
				gone[id] = true
				done := j.Job
				done.State = clanforge.StateCompleted
				done.StateName = clanforge.StateCompleted.String()
				done.Progress = 100
				done.Error = ""
				seen[id] = clanforge.Install{Job: done, Mirroring: j.Mirroring, Mirror: j.Mirror,
					Machine: j.Machine, Location: j.Location, TargetVersionID: j.TargetVersionID}
				r.emit(kind, done)
			}
		}
		r.setInstallOutput(seen, gone)

		live := 0
		var squashed []int64
		for _, j := range snap.Jobs {
			switch j.State {
			case clanforge.StateFailed:
				return r.installFailed(kind, &j)
			case clanforge.StateSquashed:
				squashed = append(squashed, j.ID)
				continue
			case clanforge.StatePending:
				if manual && !queued[j.ID] {
					queued[j.ID] = true
					if err := r.queue(ctx, kind, &j); err != nil {
						return err
					}
				}
			}
			live++
		}
		if len(seen) == 0 {
			empty++
			if empty >= discoveryReads {
				return r.installNotFound(ctx, interest, empty)
			}
			continue
		}
		if live > 0 {
			continue
		}
		if len(gone) > 0 {
			return nil
		}
		// Only squashed jobs: another install superseded ours.
		return fmt.Errorf("%s job(s) %v for version %d were squashed (superseded by another install) and no other job for this target is listed", kind, squashed, versionID)
	}
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

// queue pushes one pending job into the processing queue, once per job for
// the life of the rollout (the journal key carries the job id).
func (r *runner) queue(ctx context.Context, kind string, j *clanforge.Install) error {
	c := r.env.Client
	jobID, mirroring := j.ID, j.Mirroring
	qj, adopted, err := r.do(ctx, call{
		key:      QueueKey(r.inst.ID, jobID),
		endpoint: fmt.Sprintf("%simageinstall/%d/queue", apiPrefix, jobID),
		params: map[string]string{
			"accountserviceid": itoa(c.ASID()),
			"mirroring":        fmt.Sprint(mirroring),
		},
		settle: func(ctx context.Context) settlement {
			inst, listed, err := c.FindInstall(ctx, jobID)
			if err != nil {
				return settlement{err: fmt.Errorf("settling an earlier queue of install job %d: %w", jobID, err)}
			}
			if !listed || inst.State != clanforge.StatePending {
				return settlement{done: true}
			}
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
