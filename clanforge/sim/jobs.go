package sim

import (
	"container/heap"
	"strconv"
	"time"
)

// Job states (API §3.2). Pending is never stored: a Created job is Pending
// once a third of the startup time has passed, which keeps that cosmetic
// transition free of events.
const (
	stCreated   = 1
	stPending   = 2
	stQueued    = 3
	stRunning   = 4
	stCompleted = 5
	stFailed    = 6
	stSquashed  = 7
)

var stateNames = map[int]string{
	stCreated:   "Created",
	stPending:   "Pending",
	stQueued:    "Queued",
	stRunning:   "Running",
	stCompleted: "Completed", // not "Complete" (API §7 #3)
	stFailed:    "Failed",
	stSquashed:  "Squashed",
}

// StateName returns the exact jobstatename of a state id.
func StateName(id int) string { return stateNames[id] }

// image is an inventory image with its version chain and locks.
type image struct {
	Image
	idx           int
	gameVersionID string
	gameBuild     string
	latest        *version
	allocated     bool
	// openDiff is the outstanding diff locking the image (neither rejected
	// nor consumed by a version); activeUpdate the update in progress.
	openDiff     *job
	activeUpdate *job
	fleet        []*machine // fleet machines carrying the image, inventory order
}

type machine struct {
	Machine
	loc    *location
	images map[int64]bool
	fleet  *fleet // nil for a build machine
	// profile is what its server ran when its fleet's latest switch began
	// (profileOf gives the profile now).
	profile int64
}

type location struct {
	id         int64
	name       string
	regionUUID string
	mirror     string
}

type version struct {
	id    int64
	image *image
	files fileSet
	full  bool
}

type mkey struct{ machine, image int64 }

// waitKey names the mirror job a machine install waits for.
type waitKey struct{ version, location int64 }

type waiter struct {
	j   *job
	gen int
}

// job is any long-running operation. Its stored state changes only when the
// event queue processes one of its events (queued, start, end) or when a
// request acts on it; everything else a read shows (Pending, progress,
// jobupdated) is computed from its timestamps.
type job struct {
	kind    Kind
	id      int64
	gen     int // bumped on retry/requeue/squash: older events are ignored
	image   *image
	machine *machine
	loc     *location

	created    time.Time
	pendingAt  time.Time
	queuedAt   time.Time
	startAt    time.Time
	eta        time.Time
	endAt      time.Time
	squashedAt time.Time
	updated    time.Time // last stored transition

	state   int
	held    bool
	failing bool
	failMsg string
	errMsg  string
	failed  int

	// update
	url, desc string
	// diff
	result     *diffResult
	diffFiles  fileSet
	rejected   bool
	consumedBy int64
	// version
	ver       *version
	restart   bool
	installAt *time.Time // nil: omitted
	gameBuild string
	// mirror and install
	target    *version
	mirroring bool
}

// stateAt is the job's state id at now; now is never before the last
// processed event.
func (j *job) stateAt(now time.Time) int {
	if j.state == stCreated && !now.Before(j.pendingAt) {
		return stPending
	}
	return j.state
}

func (j *job) progressAt(now time.Time) int {
	switch j.stateAt(now) {
	case stRunning:
		total := j.eta.Sub(j.startAt)
		if total <= 0 {
			return 0
		}
		p := int(100 * now.Sub(j.startAt) / total)
		return min(max(p, 0), 99)
	case stCompleted:
		return 100
	case stFailed:
		total := j.eta.Sub(j.startAt)
		if total <= 0 {
			return 0
		}
		return min(int(100*j.endAt.Sub(j.startAt)/total), 99)
	}
	return 0
}

func (j *job) updatedAt(now time.Time) time.Time {
	switch j.stateAt(now) {
	case stPending:
		if j.pendingAt.After(j.updated) {
			return j.pendingAt
		}
	case stRunning:
		// Progress changes count as updates; report when it last moved.
		total := j.eta.Sub(j.startAt)
		if total > 0 {
			p := j.progressAt(now)
			return j.startAt.Add(total * time.Duration(p) / 100)
		}
	}
	return j.updated
}

// event kinds of the queue.
const (
	evQueue = iota
	evStart
	evEnd
)

type event struct {
	at   time.Time
	seq  uint64
	j    *job
	gen  int
	what int
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(a, b int) bool {
	if !h[a].at.Equal(h[b].at) {
		return h[a].at.Before(h[b].at)
	}
	return h[a].seq < h[b].seq
}
func (h eventHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (s *Server) push(j *job, at time.Time, what int) {
	s.evSeq++
	heap.Push(&s.events, event{at: at, seq: s.evSeq, j: j, gen: j.gen, what: what})
}

// advance processes every event due at or before now, in time order. This
// is the whole job engine: there is no goroutine per job, and the outcome
// depends only on the timestamps, never on when (or how often) it runs, so
// status reads stay pure.
func (s *Server) advance(now time.Time) {
	for s.events.Len() > 0 && !s.events[0].at.After(now) {
		e := heap.Pop(&s.events).(event)
		if e.gen != e.j.gen {
			continue
		}
		switch e.what {
		case evQueue:
			s.onQueued(e.j, e.at)
		case evStart:
			s.onStart(e.j, e.at)
		case evEnd:
			s.onEnd(e.j, e.at)
		}
	}
}

func (s *Server) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

func (s *Server) startup() time.Duration { return s.scaled(s.dur.Startup) }

// runTime is the job's run time: the kind's duration at the current speed,
// scaled by a jitter factor derived from the seed, the job and its run.
func (s *Server) runTime(j *job) time.Duration {
	d := s.scaled(s.dur.of(j.kind))
	if s.scn.Jitter > 0 {
		h := hash64("jitter", strconv.FormatInt(s.scn.Seed, 10), string(j.kind), strconv.FormatInt(j.id, 10), strconv.Itoa(j.gen))
		u := float64(h>>11) / float64(1<<53)
		d = time.Duration(float64(d) * (1 + s.scn.Jitter*(2*u-1)))
	}
	return d
}

// newJob creates a job at now in state Created.
func (s *Server) newJob(kind Kind, id int64, img *image, m *machine, now time.Time) *job {
	j := &job{kind: kind, id: id, image: img, machine: m, state: stCreated}
	s.resetJob(j, now)
	s.jobs[kind][id] = j
	return j
}

// resetJob (re)starts a job from Created at now, keeping its failure count.
func (s *Server) resetJob(j *job, now time.Time) {
	j.gen++
	j.state = stCreated
	j.created = now
	j.updated = now
	j.pendingAt = now.Add(s.startup() / 3)
	j.queuedAt, j.startAt, j.eta, j.endAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	j.failing, j.failMsg, j.errMsg = false, "", ""
}

// autoQueue makes a job move on by itself: it is Queued two thirds into the
// startup time, or at notBefore if that is later (install_at).
func (s *Server) autoQueue(j *job, notBefore time.Time) {
	t := j.created.Add(2 * s.startup() / 3)
	if notBefore.After(t) {
		t = notBefore
	}
	s.push(j, t, evQueue)
}

func (s *Server) onQueued(j *job, at time.Time) {
	if j.state != stCreated {
		return
	}
	s.enqueue(j, at)
}

// enqueue moves a job to Queued at at, squashes the older unstarted installs
// it supersedes, and schedules its start. It returns the number squashed.
func (s *Server) enqueue(j *job, at time.Time) int {
	j.gen++
	j.state = stQueued
	j.queuedAt = at
	j.updated = at
	s.record(at, j, "queued", "")
	n := 0
	if j.kind == KindInstall || j.kind == KindMirror {
		n = s.squashOlder(j, at)
	}
	s.scheduleStart(j)
	return n
}

// squashOlder squashes older unstarted install jobs of the same machine (or,
// for mirror jobs, the same location) and image. API §6.6 documents it for
// machine jobs; doing the same for mirror jobs is our inference, which keeps
// superseded held mirror jobs from staying listed forever.
func (s *Server) squashOlder(j *job, at time.Time) int {
	n := 0
	for _, o := range s.installGroup[groupKey(j)] {
		if o == j || o.id > j.id {
			continue
		}
		if o.state != stCreated && o.state != stQueued {
			continue
		}
		o.gen++
		o.state = stSquashed
		o.squashedAt = at
		o.updated = at
		s.record(at, o, "squashed", "by job "+strconv.FormatInt(j.id, 10))
		n++
	}
	return n
}

// installKey groups install jobs that supersede each other: machine jobs of
// one machine and image, mirror jobs of one location and image.
type installKey struct {
	kind  Kind
	where int64
	image int64
}

func groupKey(j *job) installKey {
	if j.kind == KindMirror {
		return installKey{j.kind, j.loc.id, j.image.ID}
	}
	return installKey{j.kind, j.machine.ID, j.image.ID}
}

// scheduleStart schedules a queued job's start a third of the startup time
// after it was queued. A machine install also waits for its location's
// mirror job of the same version to complete (mirror network hierarchy,
// API §6.6 [inferred]); until then it stays Queued.
func (s *Server) scheduleStart(j *job) {
	t := j.queuedAt.Add(s.startup() / 3)
	if j.kind == KindInstall {
		wk := waitKey{j.target.id, j.loc.id}
		if m := s.mirrorOf[wk]; m != nil {
			if m.state != stCompleted {
				s.waiters[wk] = append(s.waiters[wk], waiter{j, j.gen})
				return
			}
			if m.endAt.After(t) {
				t = m.endAt
			}
		}
	}
	s.push(j, t, evStart)
}

func (s *Server) onStart(j *job, at time.Time) {
	j.state = stRunning
	j.startAt = at
	j.updated = at
	full := s.runTime(j)
	j.eta = at.Add(full)
	s.record(at, j, "started", "")
	switch {
	case j.kind == KindInstall && j.image.openDiff != nil:
		// An outstanding diff makes installs on its image fail (API §6.4).
		j.failing = true
		j.failMsg = "image locked by diffid: " + strconv.FormatInt(j.image.openDiff.id, 10)
		j.endAt = at
	case j.kind == KindInstall && s.neverReady[j.loc]:
		// never_ready_regions: the install runs and never ends. Its
		// progress stops at 99 and its jobeta passes, as a hung install's
		// would; the machine stays pending in the v2 counters.
		return
	default:
		if msg, ok := s.injectedFailure(j); ok {
			// An injected failure strikes half way through the run.
			j.failing = true
			j.failMsg = msg
			j.endAt = at.Add(full / 2)
		} else {
			j.endAt = at.Add(full)
		}
	}
	s.push(j, j.endAt, evEnd)
}

func (s *Server) injectedFailure(j *job) (string, bool) {
	for i, f := range s.scn.Failures {
		if f.Kind != j.kind {
			continue
		}
		if f.Machine != "" && (j.machine == nil || j.machine.Name != f.Machine) {
			continue
		}
		if f.Image != "" && f.Image != j.image.Name && f.Image != strconv.FormatInt(j.image.ID, 10) {
			continue
		}
		if f.Region != "" {
			loc := j.loc
			if loc == nil && j.machine != nil {
				loc = j.machine.loc
			}
			if loc == nil || loc.name != f.Region {
				continue
			}
		}
		if f.Times > 0 {
			if s.failuresUsed[i] >= f.Times {
				continue
			}
			s.failuresUsed[i]++
		}
		msg := f.Error
		if msg == "" {
			msg = "injected failure"
		}
		return msg, true
	}
	return "", false
}

func (s *Server) onEnd(j *job, at time.Time) {
	j.updated = at
	if j.kind == KindUpdate && j.image.activeUpdate == j {
		j.image.activeUpdate = nil
	}
	if j.failing {
		j.state = stFailed
		// jobfailed counts failures; it survives retries (API §7 #4).
		j.failed++
		j.errMsg = j.failMsg
		s.record(at, j, "failed", j.errMsg)
		return
	}
	j.state = stCompleted
	s.record(at, j, "completed", "")
	k := mkey{j.machine.idOr0(), j.image.ID}
	switch j.kind {
	case KindUpdate:
		latest := j.image.latest.files
		s.machineFiles[k] = s.buildChanges(j).apply(latest, j.url+"\x00"+j.desc)
	case KindDiff:
		mf := s.filesOn(j.machine, j.image)
		r := computeDiff(j.image.latest.files, mf)
		j.result = &r
		j.diffFiles = mf.clone()
	case KindVersion:
		img := j.image
		if img.latest == nil || j.ver.id > img.latest.id {
			img.latest = j.ver
			if j.gameBuild != "" {
				img.gameBuild = j.gameBuild
			}
			s.createInstalls(j, at)
		}
	case KindMirror:
		wk := waitKey{j.target.id, j.loc.id}
		for _, w := range s.waiters[wk] {
			if w.j.gen != w.gen || w.j.state != stQueued {
				continue
			}
			t := w.j.queuedAt.Add(s.startup() / 3)
			if at.After(t) {
				t = at
			}
			s.push(w.j, t, evStart)
		}
		delete(s.waiters, wk)
	case KindInstall:
		s.installed[k] = j.target
	case KindUninstall:
		// The reinstall puts the image's latest version back ("last known
		// good", API §7 #20).
		s.machineFiles[k] = j.image.latest.files.clone()
	}
}

func (m *machine) idOr0() int64 {
	if m == nil {
		return 0
	}
	return m.ID
}

// filesOn is what a machine holds of an image: what an update or reinstall
// put there, else the image's latest version.
func (s *Server) filesOn(m *machine, img *image) fileSet {
	if fs, ok := s.machineFiles[mkey{m.ID, img.ID}]; ok {
		return fs
	}
	return img.latest.files
}

// buildChanges is what the update's build changes: the scenario's builds
// entry if one matches, else changes derived from the image, url and desc.
func (s *Server) buildChanges(j *job) changeSet {
	for _, b := range s.scn.Builds {
		if b.URL != "" && b.URL != j.url {
			continue
		}
		if b.Desc != "" && b.Desc != j.desc {
			continue
		}
		if b.Image != "" && b.Image != j.image.Name && b.Image != strconv.FormatInt(j.image.ID, 10) {
			continue
		}
		return changeSet{Added: b.Added, Modified: b.Modified, Removed: b.Removed}
	}
	return derivedChanges(j.image.latest.files, j.image.ID, j.url, j.desc)
}

// createInstalls generates the install jobs of a completed version: one
// mirror job per location that has fleet machines carrying the image, then
// one machine job per such fleet machine, all created at the version's end.
func (s *Server) createInstalls(vj *job, at time.Time) {
	img := vj.image
	var locs []*location
	seen := map[*location]bool{}
	for _, m := range img.fleet {
		if !seen[m.loc] {
			seen[m.loc] = true
			locs = append(locs, m.loc)
		}
	}
	var created []*job
	for _, loc := range locs {
		mj := s.newInstall(KindMirror, img, nil, loc, vj, at)
		s.mirrorOf[waitKey{vj.ver.id, loc.id}] = mj
		created = append(created, mj)
	}
	for _, m := range img.fleet {
		created = append(created, s.newInstall(KindInstall, img, m, m.loc, vj, at))
	}
	for _, j := range created {
		// Without install_at the jobs are held in Pending until queued
		// (API §7 #13, configurable with held_installs); with NOW() or a
		// timestamp they move on by themselves.
		if vj.installAt == nil && s.heldInstalls {
			j.held = true
			continue
		}
		var nb time.Time
		if vj.installAt != nil {
			nb = *vj.installAt
		}
		s.autoQueue(j, nb)
	}
}

func (s *Server) newInstall(kind Kind, img *image, m *machine, loc *location, vj *job, at time.Time) *job {
	s.nextInstall++
	j := s.newJob(kind, s.nextInstall, img, m, at)
	j.loc = loc
	j.target = vj.ver
	j.restart = vj.restart
	j.installAt = vj.installAt
	j.mirroring = kind == KindMirror
	s.installs = append(s.installs, j)
	s.installByID[j.id] = j
	s.installGroup[groupKey(j)] = append(s.installGroup[groupKey(j)], j)
	if m != nil {
		s.lastInstall[mkey{m.ID, img.ID}] = j
	}
	s.record(at, j, "created", "")
	return j
}
