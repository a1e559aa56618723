package steps

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollout/rollout/clanforge"
)

// InstallInterest selects the install jobs one install instance drives:
// those of one version, of one kind (mirror or machine jobs), and for
// machine jobs on one machine.
type InstallInterest struct {
	VersionID int64
	Mirroring bool
	Machine   int64 // machine jobs only; 0 for mirror jobs
}

func interestOf(in *clanforge.Install) InstallInterest {
	k := InstallInterest{VersionID: in.TargetVersionID, Mirroring: in.Mirroring}
	if !in.Mirroring {
		k.Machine = in.Machine
	}
	return k
}

// InstallSnapshot is one read of imageinstall/status as one subscriber sees
// it.
type InstallSnapshot struct {
	// Seq numbers the watcher's reads from 1; a subscriber may see gaps
	// when it is slower than the reads.
	Seq int64
	// At is when the answer arrived (Env.Now's clock).
	At time.Time
	// Sent is when the read was sent (the real clock), zero for a
	// snapshot that carries only an error. A read sent after a call's
	// answer (or its loss) sees what the call did: install steps settle
	// a queue call whose answer was lost from such a read.
	Sent time.Time
	// Jobs are the listed jobs matching the subscription's interest.
	Jobs []clanforge.Install
	// Err is set when the read failed after the client's own retries.
	Err error
}

// InstallWatcher is the one shared reader of imageinstall/status: it serves
// every install instance from one read per interval. The endpoint returns
// the whole account's unfinished installs, so a wave of a thousand machines
// costs one read per interval, not a thousand.
//
// A reading goroutine runs only while someone is subscribed: it starts with
// the first subscription and ends when the last one closes (or when the
// context given to Start ends), so the watcher leaks nothing.
//
// The reads are paced by the jobs they serve. Every job a subscriber waits
// for (queued, or moving by itself under install_at) has a pacer, as a job
// polled on its own has: it places the job's end from its jobeta, jobstart,
// jobprogress and the reads' times, or from how long the run's earlier
// installs took, and says when it wants a read. The watcher reads when the
// earliest job wants it, later if that lets jobs whose wants lie close
// together share one read, never sooner after the previous read was sent
// than Min, nor than Share of the watched jobs' length. A held Pending job
// wants no read (its instance queues it from the read that listed it), a
// held job still Created one soon (it turns Pending, queueable, shortly);
// a subscriber whose jobs are not listed yet wants one, backing off from
// Min. How much reading the list costs (the whole account's unfinished
// installs, thousands of entries in a large rollout) therefore follows
// the jobs' ends, not the number of instances or how often they start.
type InstallWatcher struct {
	read   func(context.Context) ([]clanforge.Install, error)
	policy PollPolicy
	now    func() time.Time
	reads  atomic.Int64

	mu      sync.Mutex
	parent  context.Context
	closed  bool
	subs    map[*InstallSubscription]struct{}
	running bool
	gen     int
	cancel  context.CancelFunc
	wake    chan struct{}
	wg      sync.WaitGroup
	seq     int64
	last    *installRead
	// errBackoff spaces reads after failures; findBackoff reads for
	// subscribers whose jobs are not listed yet.
	errBackoff  time.Duration
	findBackoff time.Duration
	// findAfter (real clock) is the earliest read for a subscriber whose
	// jobs no read listed yet: Min after it subscribed. Its version has
	// just been seen completed, which is when the platform makes install
	// jobs, and a read at once would find them Created, not yet ready to
	// be queued (API §6.2), and cost a read for nothing.
	findAfter time.Time
	// jobs keeps the last listed state of every job any read listed, and
	// byKey the same jobs by interest. A job leaves the list when it
	// completes, so under install_at now a machine's job can come and go
	// while its instance still waits for a slot; the watcher, reading for
	// other instances, saw it, and the instance learns from it that it
	// existed (Known).
	jobs  map[int64]*watchedJob
	byKey map[InstallInterest][]*watchedJob
	// book keeps how long the run's installs took (see paceBook).
	book *paceBook
	// names resolves a machine job's machine given by name; see
	// SetMachineNames.
	names map[string]int64
	// journal records every listed job of a version some subscriber
	// asked for (versions), once, so that a resumed run knows jobs that
	// complete while no instance watches them. unrecorded holds the
	// jobs still to write. See SetJournal.
	journal    Journal
	versions   map[int64]bool
	unrecorded []*watchedJob
	// wants and watched are nextLocked's scratch space.
	wants   []want
	watched map[InstallInterest]bool
}

// want is when one job wants the next read, and how much later it may come.
type want struct {
	at    time.Time
	slack time.Duration
}

// watchedJob is one install job as the reads list it.
type watchedJob struct {
	in  clanforge.Install
	key InstallInterest
	seq int64 // the read that last listed it
	pos int   // its place in that read's list
	// recorded: written to the journal (or not to be: see recordLocked).
	recorded bool
	// pc paces the reads for the job while a subscriber waits for it to
	// end; queued is when a subscriber queued it. want is when the job
	// wants the next read (zero: none) and slack how much later it may
	// come, both on the Env clock.
	pc     *pacer
	queued time.Time
	want   time.Time
	slack  time.Duration
	// createdWait spaces the looks at a held job still Created.
	createdWait time.Duration
}

type installRead struct {
	seq  int64
	at   time.Time // Env clock, when the answer arrived
	sent time.Time // real clock: when the read was sent
	real time.Time // real clock, when the answer arrived
	err  error
}

// NewInstallWatcher returns a watcher reading through c under policy p.
func NewInstallWatcher(c *clanforge.Client, p PollPolicy) *InstallWatcher {
	w := newWatcher(p)
	w.read = c.InstallStatus
	return w
}

func newWatcher(p PollPolicy) *InstallWatcher {
	return &InstallWatcher{
		policy:   p.normalized(),
		now:      time.Now,
		parent:   context.Background(),
		subs:     map[*InstallSubscription]struct{}{},
		wake:     make(chan struct{}, 1),
		jobs:     map[int64]*watchedJob{},
		byKey:    map[InstallInterest][]*watchedJob{},
		versions: map[int64]bool{},
	}
}

// shareBook makes the watcher learn from and add to the run's record of
// job lengths (Env.paceBook). The first book bound stays.
func (w *InstallWatcher) shareBook(b *paceBook) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.book == nil {
		w.book = b
	}
}

// SetJournal makes the watcher record, through j's SeenInstalls, every job
// a read lists for a version that some subscriber asked for, before any
// subscriber sees it: no instance can queue a job the journal does not
// know. Under install_at now a machine's job may start, complete and leave
// the list while its instance still waits for its wave; the record lets a
// resumed run tell that job completed rather than never existed. The first
// install instance binds the run's journal if nobody did (see runInstall);
// a journal already bound stays.
func (w *InstallWatcher) SetJournal(j Journal) {
	if j == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.journal == nil {
		w.journal = j
		w.recordLocked()
	}
}

// recordLocked writes the jobs of watched versions that are not recorded
// yet. A failed write is retried with the next read; the queue intent of
// a manual install names its job anyway. Callers hold w.mu.
func (w *InstallWatcher) recordLocked() {
	if len(w.unrecorded) == 0 {
		return
	}
	if w.journal == nil {
		// Nothing to record to (yet): SetJournal collects them again.
		return
	}
	fresh := make([]SeenInstall, 0, len(w.unrecorded))
	for _, wj := range w.unrecorded {
		if !wj.recorded {
			fresh = append(fresh, SeenInstall{InstallInterest: wj.key, ID: wj.in.ID})
		}
	}
	if len(fresh) > 0 {
		if err := w.journal.SeenInstalls(fresh); err != nil {
			return
		}
	}
	for _, wj := range w.unrecorded {
		wj.recorded = true
	}
	w.unrecorded = w.unrecorded[:0]
}

// SetMachineNames lets the watcher match machine jobs whose `machine` field
// arrives as a name rather than an id (its type is undocumented, API §7
// #17): names maps machine names to ids, normally from the plan. Call it
// before the first subscription.
func (w *InstallWatcher) SetMachineNames(names map[string]int64) {
	w.mu.Lock()
	w.names = names
	w.mu.Unlock()
}

// SetClock makes the watcher compare job ETAs with now instead of the wall
// clock (the simulator's clock when it runs faster than real time). Call it
// before the first subscription.
func (w *InstallWatcher) SetClock(now func() time.Time) {
	if now != nil {
		w.mu.Lock()
		w.now = now
		w.mu.Unlock()
	}
}

// Start binds the watcher to ctx: when ctx ends, reading stops, every
// subscriber gets a final snapshot carrying the error, and later
// subscriptions fail. Without Start the watcher lives until Close.
func (w *InstallWatcher) Start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parent = ctx
	if w.running {
		// Rebind the running reader to the new parent.
		w.stopLocked()
		w.startLocked()
	}
}

// Reads returns how many reads of imageinstall/status the watcher made.
func (w *InstallWatcher) Reads() int64 { return w.reads.Load() }

// Close stops the watcher and waits for its reader to end. Subscriptions
// still open get a final snapshot with an error.
func (w *InstallWatcher) Close() {
	w.mu.Lock()
	w.closed = true
	w.stopLocked()
	w.failSubsLocked(errors.New("install watcher closed"))
	w.mu.Unlock()
	w.wg.Wait()
}

// errWatcherStopped is the cause given to subscribers when the watcher's
// context ends.
var errWatcherStopped = errors.New("install watcher stopped")

// Subscribe registers interest in the jobs of in. The caller must Close the
// subscription when it is done with it.
func (w *InstallWatcher) Subscribe(in InstallInterest) (*InstallSubscription, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("install watcher closed")
	}
	if err := w.parent.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errWatcherStopped, err)
	}
	s := &InstallSubscription{w: w, key: in, ch: make(chan InstallSnapshot, 1)}
	if !w.versions[in.VersionID] {
		// A version watched for the first time: record the jobs of it
		// that earlier reads (for other versions' subscribers) listed.
		w.versions[in.VersionID] = true
		for _, wj := range w.jobs {
			if wj.key.VersionID == in.VersionID && !wj.recorded {
				w.unrecorded = append(w.unrecorded, wj)
			}
		}
		w.recordLocked()
	}
	for _, wj := range w.byKey[in] {
		s.known = append(s.known, wj.in)
	}
	slices.SortFunc(s.known, func(a, b clanforge.Install) int { return cmp.Compare(a.ID, b.ID) })
	w.subs[s] = struct{}{}
	// A new subscriber wants to find its jobs soon: restart the backoff.
	w.findBackoff = 0
	if len(w.byKey[in]) == 0 {
		w.findAfter = time.Now().Add(w.policy.Min)
	}
	if l := w.last; l != nil && l.err == nil {
		// The last read serves the newcomer at no cost when it lists its
		// jobs (held ones it queues at once) or is fresh: a wave of many
		// instances starting together triggers no read of its own.
		jobs := w.listedLocked(in, l.seq)
		if len(jobs) > 0 || time.Since(l.real) < w.policy.Min {
			s.deliver(InstallSnapshot{Seq: l.seq, At: l.at, Sent: l.sent, Jobs: jobs})
		}
	}
	if w.running {
		w.wakeLocked()
	} else {
		w.startLocked()
	}
	return s, nil
}

func (w *InstallWatcher) wakeLocked() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// listedLocked returns the jobs of in that read seq listed, in the read's
// order.
func (w *InstallWatcher) listedLocked(in InstallInterest, seq int64) []clanforge.Install {
	var out []clanforge.Install
	var pos []int
	for _, wj := range w.byKey[in] {
		if wj.seq == seq {
			out = append(out, wj.in)
			pos = append(pos, wj.pos)
		}
	}
	if len(out) > 1 {
		idx := make([]int, len(out))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(pos[a], pos[b]) })
		sorted := make([]clanforge.Install, len(out))
		for i, k := range idx {
			sorted[i] = out[k]
		}
		out = sorted
	}
	return out
}

// queued tells the watcher that a subscriber queued job id at sent (Env
// clock): its end is due a run time from then, and the reads are aimed
// there. answered is false when the call's answer was lost: a read is then
// wanted soon, to settle it.
func (w *InstallWatcher) queued(id int64, sent time.Time, answered bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wj := w.jobs[id]
	if wj == nil {
		return
	}
	wj.queued = sent
	kind := KindInstall
	if wj.in.Mirroring {
		kind = KindMirror
	}
	wj.pc = newPacer(w.policy, kind, w.book, sent)
	now := w.now()
	if answered {
		wj.want, wj.slack = wj.pc.wanted(now, &clanforge.Job{ID: id, State: clanforge.StateQueued})
	} else {
		wj.want, wj.slack = now.Add(w.policy.Min), 0
	}
	w.wakeLocked()
}

func (w *InstallWatcher) startLocked() {
	ctx, cancel := context.WithCancel(w.parent)
	w.gen++
	w.cancel = cancel
	w.running = true
	w.wg.Add(1)
	go w.loop(ctx, w.gen)
}

func (w *InstallWatcher) stopLocked() {
	if w.running {
		w.running = false
		w.cancel()
		w.cancel = nil
		w.gen++
	}
}

func (w *InstallWatcher) failSubsLocked(err error) {
	for s := range w.subs {
		s.deliver(InstallSnapshot{Seq: w.seq, At: w.now(), Err: err})
	}
}

func (w *InstallWatcher) unsubscribe(s *InstallSubscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.subs[s]; !ok {
		return
	}
	delete(w.subs, s)
	if len(w.subs) == 0 {
		// Nobody listens: stop reading, and abort a read in flight.
		w.stopLocked()
		return
	}
	// Its jobs may have been what the next read was for.
	w.wakeLocked()
}

// loop is the reader of one generation; it ends when its context ends or
// when the watcher moves to another generation.
func (w *InstallWatcher) loop(ctx context.Context, gen int) {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		if gen != w.gen || len(w.subs) == 0 {
			w.mu.Unlock()
			return
		}
		wait := time.Until(w.nextLocked())
		w.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-w.wake:
				t.Stop()
				continue
			case <-ctx.Done():
				t.Stop()
				w.parentEnded(gen)
				return
			}
		}
		if ctx.Err() != nil {
			w.parentEnded(gen)
			return
		}
		asked, askedAt := time.Now(), w.now()
		var sent time.Time
		list, err := w.read(clanforge.WithSentAt(ctx, &sent))
		if ctx.Err() != nil {
			w.parentEnded(gen)
			return
		}
		// The read's own send time, past the client's rate limit and
		// retries.
		if sent.IsZero() {
			sent = asked
		}
		sentAt := askedAt.Add(sent.Sub(asked))
		w.reads.Add(1)
		w.publish(gen, sent, sentAt, list, err)
	}
}

// parentEnded tells the subscribers of gen that reading stopped because the
// watcher's own context ended (not because they all left).
func (w *InstallWatcher) parentEnded(gen int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.parent.Err(); err != nil && (gen == w.gen || !w.running) {
		w.running = false
		w.failSubsLocked(fmt.Errorf("%w: %w", errWatcherStopped, err))
	}
}

// publish takes in one read (sent at sent on the real clock, sentAt on the
// Env clock), lets the pacers of the jobs it shows say when they want the
// next one, and fans it out.
func (w *InstallWatcher) publish(gen int, sent, sentAt time.Time, list []clanforge.Install, err error) {
	realNow := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen != w.gen {
		return
	}
	now := w.now()
	w.seq++
	seq := w.seq
	w.last = &installRead{seq: seq, at: now, sent: sent, real: realNow, err: err}
	if err != nil {
		w.errBackoff = w.policy.grow(w.errBackoff)
		for s := range w.subs {
			s.deliver(InstallSnapshot{Seq: seq, At: now, Err: err})
		}
		return
	}
	w.errBackoff = 0
	for i := range list {
		in := &list[i]
		if in.Machine == 0 && in.MachineName != "" {
			in.Machine = w.names[in.MachineName]
		}
		wj := w.jobs[in.ID]
		if wj == nil {
			wj = &watchedJob{key: interestOf(in)}
			w.jobs[in.ID] = wj
			w.byKey[wj.key] = append(w.byKey[wj.key], wj)
			if w.versions[wj.key.VersionID] {
				w.unrecorded = append(w.unrecorded, wj)
			}
		}
		wj.in, wj.seq, wj.pos = *in, seq, i
	}
	// Recorded before any subscriber sees the read.
	w.recordLocked()

	watched := map[InstallInterest]bool{}
	for s := range w.subs {
		watched[s.key] = true
	}
	missing := false
	for key := range watched {
		jobs := w.byKey[key]
		listed := false
		for _, wj := range jobs {
			if wj.seq != seq {
				// Gone from the list: completed (failed jobs stay).
				if wj.pc != nil {
					done := wj.in.Job
					done.State = clanforge.StateCompleted
					wj.pc.observe(sentAt, now, &done)
					wj.pc, wj.want = nil, time.Time{}
				}
				continue
			}
			listed = true
			wj.pace(w, sentAt, now)
		}
		if !listed && len(jobs) == 0 {
			// Not listed yet (rather than listed and gone: ended).
			missing = true
		}
	}
	if missing {
		w.findBackoff = w.policy.grow(w.findBackoff)
	} else {
		w.findBackoff = 0
	}
	for s := range w.subs {
		s.deliver(InstallSnapshot{Seq: seq, At: now, Sent: sent, Jobs: w.listedLocked(s.key, seq)})
	}
}

// pace lets the job's pacer take in the read that listed it and say when it
// wants the next one. A held job nobody queued yet wants none: its
// instance queues it from this read.
func (wj *watchedJob) pace(w *InstallWatcher, sentAt, now time.Time) {
	job := &wj.in.Job
	if job.State.Terminal() {
		wj.pc, wj.want = nil, time.Time{}
		return
	}
	held := (job.State == clanforge.StatePending || job.State == clanforge.StateCreated) && wj.in.InstallAt.IsZero()
	if wj.pc == nil {
		switch {
		case held && wj.queued.IsZero() && job.State == clanforge.StateCreated:
			// About to turn Pending, when its instance can queue it:
			// looked at as a wait is.
			if wj.createdWait == 0 {
				wj.createdWait = w.policy.Min
			} else {
				wj.createdWait = w.policy.growWaiting(wj.createdWait)
			}
			wj.want, wj.slack = now.Add(wj.createdWait), 0
			return
		case held && wj.queued.IsZero():
			wj.want = time.Time{}
			return
		}
		kind := KindInstall
		if wj.in.Mirroring {
			kind = KindMirror
		}
		wj.pc = newPacer(w.policy, kind, w.book, wj.queued)
	}
	wj.pc.observe(sentAt, now, job)
	wj.want, wj.slack = wj.pc.wanted(now, job)
}

// nextLocked is when the next read may go out (real clock): when the
// earliest watched job wants one, or later when that lets jobs whose wants
// lie close together share it; when a subscriber still looks for its jobs,
// backing off; never sooner than Min, nor than the least slack of the jobs
// it serves, after the last read was sent.
func (w *InstallWatcher) nextLocked() time.Time {
	l := w.last
	if l == nil {
		return w.findAfter
	}
	if l.err != nil {
		return l.sent.Add(w.errBackoff)
	}
	// The scratch space is the watcher's: this runs on every wake.
	wants := w.wants[:0]
	watched := w.watched
	if watched == nil {
		watched = map[InstallInterest]bool{}
		w.watched = watched
	}
	clear(watched)
	defer func() { w.wants = wants[:0] }()
	missing := false
	for s := range w.subs {
		if watched[s.key] {
			continue
		}
		watched[s.key] = true
		listed := false
		for _, wj := range w.byKey[s.key] {
			if wj.seq != l.seq {
				continue
			}
			listed = true
			if !wj.want.IsZero() {
				wants = append(wants, want{wj.want, wj.slack})
			}
		}
		missing = missing || (!listed && len(w.byKey[s.key]) == 0)
	}
	now := w.now()
	// Env clock to real clock.
	real := func(t time.Time) time.Time { return time.Now().Add(t.Sub(now)) }
	next := l.sent.Add(w.policy.Max)
	if missing {
		next = maxTime(l.sent.Add(max(w.findBackoff, w.policy.Min)), w.findAfter)
	}
	// Reads of the shared list are at least Min apart, and at least the
	// least slack of the jobs they serve (Share of a job's length): a
	// list read that often already sees each of them end within what
	// the policy accepts, and reading it more often only adds requests
	// (each the whole account's list).
	gap := w.policy.Min
	if len(wants) > 0 {
		least := wants[0].slack
		for _, o := range wants[1:] {
			least = min(least, o.slack)
		}
		gap = max(gap, least)
		// A read may come later than a job wants it by the job's slack.
		slack := func(w want) time.Duration { return w.slack }
		slices.SortFunc(wants, func(a, b want) int { return a.at.Compare(b.at) })
		at, deadline := wants[0].at, wants[0].at.Add(slack(wants[0]))
		for _, o := range wants[1:] {
			if o.at.After(deadline) {
				break
			}
			at = o.at
			if d := o.at.Add(slack(o)); d.Before(deadline) {
				deadline = d
			}
		}
		if r := real(at); r.Before(next) {
			next = r
		}
	}
	if floor := l.sent.Add(gap); next.Before(floor) {
		next = floor
	}
	return next
}

// InstallSubscription receives the watcher's reads for one interest.
type InstallSubscription struct {
	w     *InstallWatcher
	key   InstallInterest
	ch    chan InstallSnapshot
	known []clanforge.Install
}

// Known returns the jobs of the subscription's interest that some read
// before the subscription listed, each in its last listed state, ordered by
// id. One that a later read no longer lists has completed: failed jobs stay
// listed.
func (s *InstallSubscription) Known() []clanforge.Install { return slices.Clone(s.known) }

// C delivers the latest read; a slow receiver skips older reads.
func (s *InstallSubscription) C() <-chan InstallSnapshot { return s.ch }

// Close ends the subscription. It is safe to call more than once.
func (s *InstallSubscription) Close() { s.w.unsubscribe(s) }

// Queued tells the watcher that the subscriber queued job id with a call
// sent at sent (Env clock), so that the reads are aimed at the job's end;
// answered is false when the call's answer was lost, and a read soon is
// wanted to settle it.
func (s *InstallSubscription) Queued(id int64, sent time.Time, answered bool) {
	s.w.queued(id, sent, answered)
}

// deliver replaces any unread snapshot with snap. Callers hold w.mu, so
// deliveries never race each other.
func (s *InstallSubscription) deliver(snap InstallSnapshot) {
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- snap:
	default:
	}
}
