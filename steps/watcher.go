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
// context given to Start ends), so the watcher leaks nothing. The interval
// follows the jobs' ETAs under the poll policy: near the earliest ETA of a
// watched job, backing off from Min while some watched job has none, never
// sooner than Min after the previous read.
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
	backoff time.Duration
	nextAt  time.Time // real clock: when the next read may go out
	prevSig map[InstallInterest]string
	// known keeps, per interest, the last listed state of every job any
	// read listed. A job leaves the list when it completes, so under
	// install_at now a machine's job can come and go while its instance
	// still waits for a slot; the watcher, reading for other instances,
	// saw it, and the instance learns from known that it existed.
	known map[InstallInterest]map[int64]clanforge.Install
	// names resolves a machine job's machine given by name; see
	// SetMachineNames.
	names map[string]int64
	// journal records every listed job of a version some subscriber
	// asked for (versions), once (recorded), so that a resumed run
	// knows jobs that complete while no instance watches them. See
	// SetJournal.
	journal  Journal
	versions map[int64]bool
	recorded map[int64]bool
}

type installRead struct {
	at    time.Time // Env clock
	sent  time.Time // real clock: when the read was sent
	real  time.Time // real clock, for spacing reads
	index map[InstallInterest][]clanforge.Install
	err   error
}

// NewInstallWatcher returns a watcher reading through c under policy p.
func NewInstallWatcher(c *clanforge.Client, p PollPolicy) *InstallWatcher {
	w := newWatcher(p)
	w.read = c.InstallStatus
	return w
}

func newWatcher(p PollPolicy) *InstallWatcher {
	return &InstallWatcher{
		policy: p.normalized(),
		now:    time.Now,
		parent: context.Background(),
		subs:   map[*InstallSubscription]struct{}{},
		wake:   make(chan struct{}, 1),
		known:  map[InstallInterest]map[int64]clanforge.Install{},

		versions: map[int64]bool{},
		recorded: map[int64]bool{},
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
	}
}

// recordLocked writes the jobs of watched versions that are not recorded
// yet. A failed write is retried with the next read; the queue intent of
// a manual install names its job anyway. Callers hold w.mu.
func (w *InstallWatcher) recordLocked(jobs []SeenInstall) {
	if w.journal == nil {
		return
	}
	var fresh []SeenInstall
	for _, j := range jobs {
		if w.versions[j.VersionID] && !w.recorded[j.ID] {
			fresh = append(fresh, j)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if err := w.journal.SeenInstalls(fresh); err != nil {
		return
	}
	for _, j := range fresh {
		w.recorded[j.ID] = true
	}
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
		var jobs []SeenInstall
		for k, byID := range w.known {
			if k.VersionID != in.VersionID {
				continue
			}
			for id := range byID {
				jobs = append(jobs, SeenInstall{InstallInterest: k, ID: id})
			}
		}
		w.recordLocked(jobs)
	}
	for _, j := range w.known[in] {
		s.known = append(s.known, j)
	}
	slices.SortFunc(s.known, func(a, b clanforge.Install) int { return cmp.Compare(a.ID, b.ID) })
	w.subs[s] = struct{}{}
	// A new subscriber wants to find its jobs soon: restart the backoff.
	w.backoff = 0
	if l := w.last; l != nil && l.err == nil && time.Since(l.real) < w.policy.Min {
		// A fresh read serves the newcomer at no cost: a wave of many
		// instances starting together triggers one read, not many.
		s.deliver(InstallSnapshot{Seq: w.seq, At: l.at, Sent: l.sent, Jobs: l.index[in]})
	}
	if l := w.last; l != nil {
		if soon := l.real.Add(w.policy.Min); soon.Before(w.nextAt) {
			w.nextAt = soon
		}
	}
	if w.running {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	} else {
		w.startLocked()
	}
	return s, nil
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
	}
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
		wait := time.Until(w.nextAt)
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
		sent := time.Now()
		list, err := w.read(ctx)
		if ctx.Err() != nil {
			w.parentEnded(gen)
			return
		}
		w.reads.Add(1)
		w.publish(gen, sent, list, err)
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

// publish indexes one read, schedules the next and fans the read out.
func (w *InstallWatcher) publish(gen int, sent time.Time, list []clanforge.Install, err error) {
	realNow := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen != w.gen {
		return
	}
	now := w.now()
	index := make(map[InstallInterest][]clanforge.Install)
	var seen []SeenInstall
	if err == nil {
		for i := range list {
			if in := &list[i]; in.Machine == 0 && in.MachineName != "" {
				in.Machine = w.names[in.MachineName]
			}
			k := interestOf(&list[i])
			index[k] = append(index[k], list[i])
			if w.known[k] == nil {
				w.known[k] = map[int64]clanforge.Install{}
			}
			w.known[k][list[i].ID] = list[i]
			seen = append(seen, SeenInstall{InstallInterest: k, ID: list[i].ID})
		}
		// Recorded before any subscriber sees the read.
		w.recordLocked(seen)
	}
	w.seq++
	w.last = &installRead{at: now, sent: sent, real: realNow, index: index, err: err}
	w.nextAt = realNow.Add(w.nextDelayLocked(now, index, err))
	for s := range w.subs {
		snap := InstallSnapshot{Seq: w.seq, At: now, Jobs: index[s.key], Err: err}
		if err == nil {
			snap.Sent = sent
		}
		s.deliver(snap)
	}
}

// nextDelayLocked picks the interval before the next read: near the
// earliest future ETA among the watched jobs, or the backoff when some
// watched job (or some subscriber still looking for its jobs) has none.
// Any change in the watched jobs restarts the backoff at Min.
func (w *InstallWatcher) nextDelayLocked(now time.Time, index map[InstallInterest][]clanforge.Install, err error) time.Duration {
	p := w.policy
	if err != nil {
		w.backoff = p.grow(w.backoff)
		return w.backoff
	}
	sig := make(map[InstallInterest]string, len(w.subs))
	changed := false
	d := p.Max
	needBackoff := false
	for s := range w.subs {
		if _, done := sig[s.key]; done {
			continue
		}
		jobs := index[s.key]
		b := make([]byte, 0, 16*len(jobs))
		for i := range jobs {
			j := &jobs[i]
			b = fmt.Appendf(b, "%d:%d;", j.ID, j.State)
			if j.State.Terminal() {
				continue
			}
			if e, ok := p.untilETA(now, j.ETA); ok {
				d = min(d, e)
			} else {
				needBackoff = true
			}
		}
		if len(jobs) == 0 {
			needBackoff = true
		}
		sig[s.key] = string(b)
		if prev, ok := w.prevSig[s.key]; !ok || prev != sig[s.key] {
			changed = true
		}
	}
	w.prevSig = sig
	if changed {
		w.backoff = 0
	}
	if needBackoff {
		w.backoff = p.grow(w.backoff)
		d = min(d, w.backoff)
	}
	return p.clamp(d)
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
