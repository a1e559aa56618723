package tui

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// instStatus is where an instance is in its life.
type instStatus uint8

const (
	stWaiting instStatus = iota
	stRunning
	stDone
	// stStandby is an on_failure instance that runs only if something
	// fails; it is counted nowhere until it starts.
	stStandby
)

// instance is the view's copy of one step instance.
type instance struct {
	info     engine.InstanceInfo
	row      int32
	status   instStatus
	outcome  engine.Outcome
	started  time.Time
	finished time.Time
	job      engine.JobInfo
	hasJob   bool
	err      string
	detail   string
	step     int32 // index into state.steps

	// The last reading of the job's progress (readP at readAt on the
	// view's clock) and the progress the row shows, interpolated between
	// reads (see progress.go).
	readAt time.Time
	readP  int
	shown  float64
}

// group orders rows: failed first, then running, waiting, finished.
type group uint8

const (
	gFailed group = iota
	gRunning
	gWaiting
	gDone
	nGroups
)

// row is one target (machine, image), or the per-image instances of an image
// (machine "").
type row struct {
	machine string
	image   string
	ord     int32 // plan order: first appearance in RunInfo.Instances
	insts   []int32
	search  string // lower-case "machine image", for the filter

	group    group
	cur      int32 // index into insts of the instance shown on the row, -1 none
	done     int
	total    int // instances that run: on_failure ones count once started
	lastErr  string
	outcome  engine.Outcome // summary outcome once finished
	started  time.Time
	finished time.Time
}

// counts are instance counts by what the header shows.
type counts struct {
	waiting, running, succeeded, failed, skipped, cancelled int
}

func (c counts) finished() int { return c.succeeded + c.failed + c.skipped + c.cancelled }
func (c counts) total() int    { return c.waiting + c.running + c.finished() }

// waveState is the current wave of one waved step for one image.
type waveState struct {
	step, image string
	wave, waves int
}

type reqSample struct {
	at time.Time
	n  int64
}

// state is everything the view knows about the run. Only the program's
// goroutine touches it. Every string it holds for display has been through
// clean (see cleaner); instance ids are looked up by the engine's own id.
type state struct {
	plan        string
	run         engine.RunInfo
	haveRun     bool
	insts       []instance
	byID        map[string]int32
	rows        []row
	order       []int32 // all rows, by group then plan order
	buckets     [nGroups][]int32
	cnt         counts
	waves       []waveState
	aborting    bool
	abortReason string
	// waits are the run's waits in progress (approvals, bakes), in the
	// order they began; decisions how the ended ones ended, and who ended
	// them (cleaned, as every string here).
	waits     []engine.WaitInfo
	decisions []engine.DecisionRecord
	// rawWait maps a cleaned wait id to the engine's own, which is what
	// an approval names.
	rawWait map[string]string
	// notice is the API client's last wait, shown while it is fresh.
	notice     string
	noticeAt   time.Time
	finished   bool
	summary    engine.Summary
	requests   int64
	reqSamples []reqSample
	reqRate    float64
	// steps is what was seen of each step, graph the DAG the estimate
	// walks (see estimate.go).
	steps []stepStat
	graph estGraph
	// lagSum over lagN is how long after their job's jobeta the instances
	// that succeeded ended, on average (see lag).
	lagSum time.Duration
	lagN   int
	// planOrd is the first appearance of each image, and of each step
	// (keyed "\x00"+step), in RunInfo.Instances: plan order.
	planOrd  map[string]int
	eta      time.Duration
	etaKnown bool
	now      time.Time

	clean cleaner

	touched    []int32
	touchedGen []uint32
	gen        uint32
	// version increases whenever order changed, and change whenever any row
	// changed, so that views derived from them (the filtered list) know when
	// to rebuild.
	version uint64
	change  uint64
}

func newState(plan string) *state {
	s := &state{byID: map[string]int32{}}
	s.plan = s.clean.str(plan)
	return s
}

// reset rebuilds the rows from a RunStarted event.
func (s *state) reset(info engine.RunInfo) {
	plan := s.plan
	if info.Plan != "" {
		plan = s.clean.str(info.Plan)
	}
	raw := info.Instances
	info.Plan = plan
	info.Instances = make([]engine.InstanceInfo, len(raw))
	for i, in := range raw {
		info.Instances[i] = s.clean.instance(in)
		// The estimate keeps the dependencies as indices.
		info.Instances[i].Deps = nil
	}
	*s = state{plan: plan, run: info, haveRun: true, now: s.now, clean: s.clean,
		byID: make(map[string]int32, len(info.Instances))}
	s.insts = make([]instance, len(info.Instances))
	rowByKey := make(map[string]int32, info.Targets+8)
	s.planOrd = map[string]int{}
	for _, in := range info.Instances {
		for _, k := range []string{in.Image, "\x00" + in.Step} {
			if _, ok := s.planOrd[k]; !ok {
				s.planOrd[k] = len(s.planOrd)
			}
		}
	}
	for i, in := range info.Instances {
		// Rows and ids are keyed by the engine's own strings: two names
		// that differ only in what cleaning hides stay apart.
		key := raw[i].Machine + "\x00" + raw[i].Image
		r, ok := rowByKey[key]
		if !ok {
			r = int32(len(s.rows))
			rowByKey[key] = r
			s.rows = append(s.rows, row{
				machine: in.Machine, image: in.Image, ord: r, cur: -1, group: gWaiting,
				search: strings.ToLower(in.Machine + " " + in.Image),
			})
		}
		s.insts[i] = instance{info: in, row: r}
		if in.OnFailure {
			s.insts[i].status = stStandby
		}
		s.rows[r].insts = append(s.rows[r].insts, int32(i))
		s.byID[raw[i].ID] = int32(i)
	}
	for i := range s.insts {
		if s.insts[i].status == stWaiting {
			s.cnt.waiting++
		}
	}
	s.buildEstimate(raw)
	s.touchedGen = make([]uint32, len(s.rows))
	for r := range s.rows {
		s.recomputeRow(int32(r))
	}
	s.rebuildOrder()
}

func (s *state) touch(r int32) {
	if s.touchedGen[r] != s.gen {
		s.touchedGen[r] = s.gen
		s.touched = append(s.touched, r)
	}
}

// setStatus moves an instance between header counters.
func (s *state) setStatus(in *instance, st instStatus, oc engine.Outcome) {
	s.count(in, -1)
	in.status, in.outcome = st, oc
	s.count(in, +1)
}

func (s *state) count(in *instance, d int) {
	switch in.status {
	case stWaiting:
		s.cnt.waiting += d
	case stRunning:
		s.cnt.running += d
	case stDone:
		switch in.outcome {
		case engine.Succeeded:
			s.cnt.succeeded += d
		case engine.Failed:
			s.cnt.failed += d
		case engine.Cancelled:
			s.cnt.cancelled += d
		default:
			s.cnt.skipped += d
		}
	}
}

// apply folds one batch into the state. now is the injected clock's time.
func (s *state) apply(b batch, now time.Time) {
	s.now = now
	s.gen++
	if s.gen == 0 { // wrapped: forget stale marks
		clear(s.touchedGen)
		s.gen = 1
	}
	s.touched = s.touched[:0]
	for i := range b.events {
		s.applyEvent(&b.events[i])
	}
	for id, job := range b.progress {
		i, ok := s.byID[id]
		if !ok {
			continue
		}
		in := &s.insts[i]
		if in.status == stDone {
			continue // late progress of a finished instance
		}
		if in.status == stWaiting || in.status == stStandby {
			s.setStatus(in, stRunning, "")
		}
		in.onReading(s.clean.job(job), now)
		s.touch(in.row)
	}
	s.advance(now)
	if b.hasReq {
		s.requests = b.requests
	}
	s.sampleRequests(now)

	reorder := false
	if len(s.touched) > 0 {
		s.change++
	}
	for _, r := range s.touched {
		if s.recomputeRow(r) {
			reorder = true
		}
	}
	if reorder {
		s.rebuildOrder()
	}
	s.estimate()
}

func (s *state) applyEvent(e *event) {
	switch e.kind {
	case evRunStarted:
		s.reset(*e.run)
		s.gen = 1
	case evWaveStarted:
		e.id, e.image = s.clean.str(e.id), s.clean.str(e.image)
		for i := range s.waves {
			w := &s.waves[i]
			if w.step == e.id && w.image == e.image {
				w.wave, w.waves = e.wave, e.waves
				return
			}
		}
		s.waves = append(s.waves, waveState{step: e.id, image: e.image, wave: e.wave, waves: e.waves})
		// Images start their waves in any order; the header lists them in
		// plan order so that a glance finds the same image at the same place.
		slices.SortStableFunc(s.waves, func(a, b waveState) int {
			return cmp.Or(cmp.Compare(s.planOrd[a.image], s.planOrd[b.image]),
				cmp.Compare(s.planOrd["\x00"+a.step], s.planOrd["\x00"+b.step]))
		})
	case evInstanceStarted:
		i, ok := s.byID[e.id]
		if !ok {
			return
		}
		in := &s.insts[i]
		if in.status == stDone {
			return
		}
		if in.status == stWaiting || in.status == stStandby {
			s.setStatus(in, stRunning, "")
		}
		in.started = e.at
		s.touch(in.row)
	case evInstanceFinished:
		i, ok := s.byID[e.id]
		if !ok {
			return
		}
		in := &s.insts[i]
		r := e.result
		s.setStatus(in, stDone, r.Outcome)
		if !r.Started.IsZero() {
			in.started = r.Started
		}
		in.finished = r.Finished
		in.err = s.clean.text(engine.ErrText(r.Err))
		in.detail = s.clean.str(r.Detail)
		if r.Job != nil {
			in.job, in.hasJob = s.clean.job(*r.Job), true
		}
		if r.Outcome == engine.Succeeded && !r.Restored && !in.started.IsZero() && in.finished.After(in.started) {
			// A restored instance ran in an earlier process: its
			// duration says nothing of this one's pace.
			st := &s.steps[in.step]
			st.sum += in.finished.Sub(in.started)
			st.n++
			if in.hasJob && in.job.ETA.After(in.started) {
				// How long after its job's jobeta the instance ended:
				// the poller's last read, whole-second jobetas.
				s.lagSum += in.finished.Sub(in.job.ETA)
				s.lagN++
			}
		}
		s.touch(in.row)
	case evAborting:
		s.aborting = true
		s.abortReason = s.clean.str(e.reason)
	case evWaitStarted:
		w := redact.Copy(e.wait, redact.Terminal)
		s.waits = append(s.waits, w)
		if s.rawWait == nil {
			s.rawWait = map[string]string{}
		}
		s.rawWait[w.ID] = e.wait.ID
		if i, ok := s.byID[e.wait.ID]; ok {
			s.touch(s.insts[i].row)
		}
	case evWaitEnded:
		if i, ok := s.byID[e.wait.ID]; ok {
			s.touch(s.insts[i].row)
		}
		for i, w := range s.waits {
			if s.rawWait[w.ID] == e.wait.ID {
				s.waits = append(s.waits[:i], s.waits[i+1:]...)
				break
			}
		}
		if e.dec.Kind != engine.Stopped {
			s.decisions = append(s.decisions, redact.Copy(engine.DecisionRecord{Wait: e.wait, Decision: e.dec}, redact.Terminal))
		}
	case evNotice:
		s.notice, s.noticeAt = s.clean.str(e.notice.Text), e.notice.At
	case evRunFinished:
		s.finished = true
		s.summary = cleanSummary(*e.summary)
		if e.summary.Requests > s.requests {
			s.requests = e.summary.Requests
		}
	}
}

// recomputeRow derives a row's display fields from its instances and reports
// whether its group changed.
func (s *state) recomputeRow(ri int32) bool {
	r := &s.rows[ri]
	running, failed, waiting, last := int32(-1), int32(-1), int32(-1), int32(-1)
	done, standby := 0, 0
	skipped, cancelled := false, false
	var started, finished time.Time
	runErr := ""
	for k, ii := range r.insts {
		in := &s.insts[ii]
		if !in.started.IsZero() && (started.IsZero() || in.started.Before(started)) {
			started = in.started
		}
		switch in.status {
		case stStandby:
			standby++
		case stRunning:
			if running < 0 {
				running = int32(k)
			}
			if in.job.Error != "" && runErr == "" {
				runErr = in.job.Error
			}
		case stWaiting:
			if waiting < 0 {
				waiting = int32(k)
			}
		case stDone:
			done++
			last = int32(k)
			if in.finished.After(finished) {
				finished = in.finished
			}
			switch in.outcome {
			case engine.Failed:
				failed = int32(k)
			case engine.Cancelled:
				cancelled = true
				if failed < 0 {
					failed = int32(k)
				}
			case engine.Skipped:
				skipped = true
			}
		}
	}
	g := gDone
	switch {
	case failed >= 0:
		g = gFailed
	case running >= 0:
		g = gRunning
	case done+standby < len(r.insts):
		g = gWaiting
	}
	cur := last
	switch {
	case running >= 0:
		cur = running
	case failed >= 0:
		cur = failed
	case waiting >= 0:
		cur = waiting
	}
	r.cur = cur
	r.done = done
	r.total = len(r.insts) - standby
	r.started = started
	r.finished = finished
	r.lastErr = runErr
	if failed >= 0 {
		r.lastErr = s.insts[r.insts[failed]].err
	} else if runErr == "" && skipped && done+standby == len(r.insts) {
		// A skipped target says why (a dependency failed, the run aborted).
		for _, ii := range r.insts {
			if in := &s.insts[ii]; in.outcome == engine.Skipped && in.err != "" {
				r.lastErr = in.err
				break
			}
		}
	}
	switch {
	case failed >= 0 && !cancelled:
		r.outcome = engine.Failed
	case cancelled:
		r.outcome = engine.Cancelled
	case skipped:
		r.outcome = engine.Skipped
	default:
		r.outcome = engine.Succeeded
	}
	changed := r.group != g
	r.group = g
	return changed
}

// rebuildOrder sorts rows by group, keeping plan order inside a group. A
// bucket pass is linear and stable, so 5,000 rows cost microseconds.
func (s *state) rebuildOrder() {
	for g := range s.buckets {
		s.buckets[g] = s.buckets[g][:0]
	}
	for i := range s.rows {
		g := s.rows[i].group
		s.buckets[g] = append(s.buckets[g], int32(i))
	}
	s.order = s.order[:0]
	for g := range s.buckets {
		s.order = append(s.order, s.buckets[g]...)
	}
	s.version++
}

// sampleRequests keeps about five seconds of request totals for the rate.
func (s *state) sampleRequests(now time.Time) {
	const window = 5 * time.Second
	s.reqSamples = append(s.reqSamples, reqSample{at: now, n: s.requests})
	drop := 0
	// Keep the newest sample that is at least a window old, so that the rate
	// always spans a full window once the run is that old.
	for drop < len(s.reqSamples)-2 && now.Sub(s.reqSamples[drop+1].at) >= window {
		drop++
	}
	if drop > 0 {
		s.reqSamples = append(s.reqSamples[:0], s.reqSamples[drop:]...)
	}
	first, last := s.reqSamples[0], s.reqSamples[len(s.reqSamples)-1]
	if dt := last.at.Sub(first.at); dt > 0 {
		s.reqRate = float64(last.n-first.n) / dt.Seconds()
	} else {
		s.reqRate = 0
	}
}

// advance moves the progress of every running job to where it should be
// at now. It is linear in the plan, once per batch.
func (s *state) advance(now time.Time) {
	for i := range s.insts {
		if in := &s.insts[i]; in.status == stRunning {
			in.advance(now)
		}
	}
}

// minPaceRun is the shortest run of a job its pace is taken over: jobstart
// has whole seconds, so over less than ten seconds the pace could be off
// by more than a tenth, and a short job is read again soon anyway.
const minPaceRun = 10 * time.Second

// jobLeft estimates how long a running instance still needs: the job's own
// jobeta first, then its pace since its start (the progress shown, which
// moves between reads), then the step's observed mean. A jobeta already in
// the past says nothing any more (Clanforge's estimates are often
// optimistic): showing "0s" for minutes would read as "about to end", so
// the other estimates take over and, when there is none, it is unknown.
func (s *state) jobLeft(in *instance) (time.Duration, bool) {
	d, ok, _ := s.jobLeftBy(in)
	return d, ok
}

// jobLeftBy is jobLeft, and whether it is the jobeta's.
func (s *state) jobLeftBy(in *instance) (left time.Duration, ok, byETA bool) {
	if in.status != stRunning {
		return 0, false, false
	}
	if in.hasJob && !in.job.ETA.IsZero() && !in.job.ETA.Before(s.now) {
		return in.job.ETA.Sub(s.now), true, true
	}
	start := in.started
	if in.hasJob && !in.job.Start.IsZero() {
		start = in.job.Start
	}
	if p := in.shown; in.hasJob && p > 0 && p < 100 && !start.IsZero() && s.now.Sub(start) >= minPaceRun {
		return time.Duration(float64(s.now.Sub(start)) * (100 - p) / p), true, false
	}
	elapsed := time.Duration(0)
	if !in.started.IsZero() {
		elapsed = max(s.now.Sub(in.started), 0)
	}
	if m, ok := s.steps[in.step].mean(); ok && m > elapsed {
		return m - elapsed, true, false
	}
	return 0, false, false
}

// lag is how long after its job's jobeta an instance ends, as seen so far
// (never less than nothing): the engine notices an end only at its next
// read, and jobetas have whole seconds.
func (s *state) lag() time.Duration {
	if s.lagN == 0 {
		return 0
	}
	return max(s.lagSum/time.Duration(s.lagN), 0)
}

// shownWait is the wait the banner shows and a approves: the first
// approval waiting, else the first wait (a bake).
func (s *state) shownWait() (engine.WaitInfo, bool) {
	for _, w := range s.waits {
		if w.Kind == engine.WaitApproval {
			return w, true
		}
	}
	if len(s.waits) > 0 {
		return s.waits[0], false
	}
	return engine.WaitInfo{}, false
}

// waitOf is the wait an instance is (an approve instance waiting), if any.
func (s *state) waitOf(id string) (engine.WaitInfo, bool) {
	for _, w := range s.waits {
		if w.ID == id {
			return w, true
		}
	}
	return engine.WaitInfo{}, false
}

// noticeFor is how long an API notice stays in the header after it came:
// long enough to read, short enough not to outlive the trouble.
const noticeFor = 15 * time.Second

// apiNotice is the API notice to show now, or "".
func (s *state) apiNotice() string {
	if s.notice == "" || s.finished || s.now.Sub(s.noticeAt) > noticeFor {
		return ""
	}
	return s.notice
}

// elapsed is the run's age on the injected clock.
func (s *state) elapsed() time.Duration {
	if s.finished && !s.summary.Finished.IsZero() && !s.summary.Started.IsZero() {
		return s.summary.Finished.Sub(s.summary.Started)
	}
	if s.run.Started.IsZero() {
		return 0
	}
	return max(s.now.Sub(s.run.Started), 0)
}
