package tui

import (
	"time"

	"github.com/rollout/rollout/engine"
)

// The run's time left.
//
// The estimate plays the rest of the run forward the way the engine
// schedules it: the plan's DAG, waves of a step on one image one after the
// other, at most the concurrency limit at once, ready instances started in
// plan order. Every unfinished instance weighs what it should still take:
// a running one its job's time left (to its jobeta, plus how long after
// their jobeta instances were seen to end: the engine notices an end at
// its next read), a waiting one the mean duration seen so far for its
// step. The estimate is when the last of them would end: the remaining
// critical path, bounded by the concurrency limit.
//
// An instance that ends as expected leaves the estimate where the clock
// had taken it; one that ends early takes off at most its own remaining
// share; only a step's mean moves with what was seen, by one sample's
// worth. Instances that cannot run any more (a dependency failed, the run
// is aborting) weigh nothing.
//
// A step nothing has been seen of yet is expected to take what its running
// jobs' jobetas say, else the mean of the steps seen to end (of those with
// a jobeta while none has ended); until there is anything at all (a
// finished instance, a running job with a jobeta) the header says
// "estimating…".

// stepStat is what was seen of one step.
type stepStat struct {
	// free steps (gates, approvals) call nothing that takes time.
	free bool
	sum  time.Duration // durations of the instances that succeeded
	n    int
	// Per estimate: the expected durations of running jobs with a jobeta,
	// and what one instance of the step is expected to take.
	etaSum time.Duration
	etaN   int
	exp    time.Duration
	known  bool
}

// mean is the mean duration of the step's instances that succeeded.
func (st *stepStat) mean() (time.Duration, bool) {
	if st.n == 0 {
		return 0, false
	}
	return st.sum / time.Duration(st.n), true
}

// estGraph is the DAG the estimate plays forward, built once per
// RunStarted, with the scratch space of one estimate.
type estGraph struct {
	// Instance i's dependencies are deps[depOff[i]:depOff[i+1]], its
	// dependents users[userOff[i]:userOff[i+1]].
	depOff, deps   []int32
	userOff, users []int32
	// wave is instance i's wave (one per step, image and wave number), -1
	// for none; wave w's instances are members[memOff[w]:memOff[w+1]],
	// and it opens when the wave before it (prevWave[w], -1 for none) has
	// ended.
	wave            []int32
	prevWave, next  []int32
	memOff, members []int32

	// Scratch of one estimate.
	weight  []time.Duration
	pending []int32 // dependencies not yet ended
	bad     []bool  // failed, or cannot run because something it needs failed
	queued  []bool
	left    []int32 // unfinished instances per wave
	open    []bool
	ready   readyQueue
	running finishQueue
}

// isFree reports whether a step type takes no time of its own worth
// estimating: a gate evaluates an expression, an approval waits for a
// person nobody can predict.
func isFree(typ string) bool { return typ == "gate" || typ == "approve" }

// buildEstimate derives the estimate's graph and step table from the run's
// instances (raw: as the engine named them, for the dependency ids).
func (s *state) buildEstimate(raw []engine.InstanceInfo) {
	n := len(s.insts)
	stepIdx := map[string]int32{}
	type waveKey struct {
		step, image string
		wave        int
	}
	waveIdx := map[waveKey]int32{}
	var waveKeys []waveKey
	g := &s.graph
	g.wave = make([]int32, n)
	g.depOff = make([]int32, n+1)
	nUsers := make([]int32, n+1)
	for i := range s.insts {
		in := &s.insts[i]
		k, ok := stepIdx[raw[i].Step]
		if !ok {
			k = int32(len(s.steps))
			stepIdx[raw[i].Step] = k
			s.steps = append(s.steps, stepStat{free: isFree(raw[i].Type)})
		}
		in.step = k
		g.wave[i] = -1
		if w := raw[i].Wave; w >= 0 && !raw[i].OnFailure {
			key := waveKey{raw[i].Step, raw[i].Image, w}
			wi, ok := waveIdx[key]
			if !ok {
				wi = int32(len(waveKeys))
				waveIdx[key] = wi
				waveKeys = append(waveKeys, key)
			}
			g.wave[i] = wi
		}
		for _, d := range raw[i].Deps {
			if j, ok := s.byID[d]; ok && int(j) != i {
				g.deps = append(g.deps, j)
				nUsers[j+1]++
			}
		}
		g.depOff[i+1] = int32(len(g.deps))
	}
	g.userOff = nUsers
	for i := range n {
		g.userOff[i+1] += g.userOff[i]
	}
	g.users = make([]int32, len(g.deps))
	fill := append([]int32(nil), g.userOff[:n]...)
	for i := range n {
		for _, d := range g.deps[g.depOff[i]:g.depOff[i+1]] {
			g.users[fill[d]] = int32(i)
			fill[d]++
		}
	}

	// A wave opens when the closest lower wave of its step on its image
	// has ended.
	nw := len(waveKeys)
	g.prevWave, g.next = make([]int32, nw), make([]int32, nw)
	for w, key := range waveKeys {
		g.prevWave[w], g.next[w] = -1, -1
		for lower := key.wave - 1; lower >= 0; lower-- {
			if p, ok := waveIdx[waveKey{key.step, key.image, lower}]; ok {
				g.prevWave[w] = p
				break
			}
		}
	}
	for w, p := range g.prevWave {
		if p >= 0 {
			g.next[p] = int32(w)
		}
	}
	g.memOff = make([]int32, nw+1)
	for _, w := range g.wave {
		if w >= 0 {
			g.memOff[w+1]++
		}
	}
	for w := range nw {
		g.memOff[w+1] += g.memOff[w]
	}
	g.members = make([]int32, g.memOff[nw])
	fill = append(fill[:0], g.memOff[:nw]...)
	for i, w := range g.wave {
		if w >= 0 {
			g.members[fill[w]] = int32(i)
			fill[w]++
		}
	}

	g.weight, g.pending = make([]time.Duration, n), make([]int32, n)
	g.bad, g.queued = make([]bool, n), make([]bool, n)
	g.left, g.open = make([]int32, nw), make([]bool, nw)
}

// estimate computes the run's time left (see the top of this file). It
// runs once per batch, not per frame, in time linear in the plan (times
// the logarithm of what is ready at once).
func (s *state) estimate() {
	s.etaKnown = false
	if !s.haveRun || s.finished || len(s.insts) == 0 {
		return
	}
	fallback, ok := s.expectations()
	if !ok {
		return // nothing to go on yet: "estimating…"
	}
	s.eta = s.playForward(fallback)
	s.etaKnown = true
}

// expectations sets what one instance of each step is expected to take:
// the mean duration of its instances that succeeded, else what its
// running jobs' jobetas say (plus the lag seen so far). It returns what a
// step nothing was seen of is expected to take: the mean of the steps
// whose instances were seen to end, else of those with a jobeta; false
// when there is neither. Only ends move that guess: a jobeta arriving
// moves its own step's expectation, not every other one's.
func (s *state) expectations() (time.Duration, bool) {
	for k := range s.steps {
		s.steps[k].etaSum, s.steps[k].etaN = 0, 0
	}
	for i := range s.insts {
		in := &s.insts[i]
		if in.status == stRunning && in.hasJob && !in.started.IsZero() && in.job.ETA.After(in.started) {
			st := &s.steps[in.step]
			st.etaSum += in.job.ETA.Sub(in.started)
			st.etaN++
		}
	}
	lag := s.lag()
	var seenSum, etaSum time.Duration
	seenN, etaN := 0, 0
	for k := range s.steps {
		st := &s.steps[k]
		st.known = true
		switch m, ok := st.mean(); {
		case ok:
			st.exp = m
			if !st.free {
				seenSum += m
				seenN++
			}
		case st.etaN > 0:
			st.exp = st.etaSum/time.Duration(st.etaN) + lag
			if !st.free {
				etaSum += st.exp
				etaN++
			}
		default:
			st.known = false
		}
	}
	switch {
	case seenN > 0:
		return seenSum / time.Duration(seenN), true
	case etaN > 0:
		return etaSum / time.Duration(etaN), true
	}
	return 0, false
}

// playForward runs the rest of the plan forward from now, as a list
// schedule with the expected durations, and returns when it would end.
func (s *state) playForward(fallback time.Duration) time.Duration {
	g := &s.graph
	now := s.now
	slots := max(s.run.Concurrency, 1)
	g.ready.reset()
	g.running.reset()
	clear(g.left)
	clear(g.open)
	for i := range s.insts {
		in := &s.insts[i]
		g.queued[i] = false
		g.bad[i] = in.status == stDone && in.outcome != engine.Succeeded
		if in.status == stDone || in.status == stStandby {
			continue
		}
		if w := g.wave[i]; w >= 0 {
			g.left[w]++
			if in.status == stRunning {
				g.open[w] = true // the engine opened it
			}
		}
	}
	for i := range s.insts {
		in := &s.insts[i]
		if in.status == stDone || in.status == stStandby {
			continue
		}
		var pending int32
		for _, d := range g.deps[g.depOff[i]:g.depOff[i+1]] {
			switch dep := &s.insts[d]; {
			case dep.status != stDone && dep.status != stStandby:
				pending++
			case g.bad[d]:
				g.bad[i] = true
			}
		}
		g.pending[i] = pending
		g.weight[i] = 0
		if !g.bad[i] {
			g.weight[i] = s.remaining(in, fallback, now)
		}
		if in.status == stRunning {
			g.queued[i] = true
			if g.weight[i] > 0 {
				// An approval waiting for its decision holds no slot;
				// everything else running does.
				slots--
			}
			g.running.push(finish{at: g.weight[i], i: int32(i)})
		}
	}
	// Waves open in order: the first of each chain, a later one once the
	// one before it has nothing left, or when the engine opened it.
	for w := range g.prevWave {
		if g.prevWave[w] >= 0 {
			continue
		}
		prevEnded := true
		for x := int32(w); x >= 0; x = g.next[x] {
			if prevEnded || g.open[x] {
				g.open[x] = true
				for _, i := range g.members[g.memOff[x]:g.memOff[x+1]] {
					s.queue(i)
				}
			}
			prevEnded = g.open[x] && g.left[x] == 0
		}
	}
	for i := range s.insts {
		if g.wave[i] < 0 {
			s.queue(int32(i))
		}
	}

	var t time.Duration
	for {
		for g.ready.len() > 0 && (slots > 0 || g.weight[g.ready.peek()] == 0) {
			i := g.ready.pop()
			if g.weight[i] > 0 {
				slots--
			}
			g.running.push(finish{at: t + g.weight[i], i: i})
		}
		if g.running.len() == 0 {
			return t
		}
		f := g.running.pop()
		t = max(t, f.at)
		if g.weight[f.i] > 0 {
			slots++
		}
		s.release(f.i)
	}
}

// openWave marks wave w open and queues its members that are ready; a wave
// with nothing left opens the next one at once.
func (s *state) openWave(w int32) {
	g := &s.graph
	for ; w >= 0; w = g.next[w] {
		g.open[w] = true
		for _, i := range g.members[g.memOff[w]:g.memOff[w+1]] {
			s.queue(i)
		}
		if g.left[w] > 0 {
			return
		}
	}
}

// queue makes instance i ready when it is unfinished, not yet queued, its
// dependencies have ended and its wave is open.
func (s *state) queue(i int32) {
	g := &s.graph
	if g.queued[i] || g.pending[i] > 0 || (g.wave[i] >= 0 && !g.open[g.wave[i]]) || s.aborting {
		// While aborting nothing new starts: the run ends with what is
		// running.
		return
	}
	if st := s.insts[i].status; st == stDone || st == stStandby {
		return
	}
	g.queued[i] = true
	if g.bad[i] {
		g.weight[i] = 0
	}
	g.ready.push(i)
}

// release ends instance i in the played-forward run.
func (s *state) release(i int32) {
	g := &s.graph
	for _, u := range g.users[g.userOff[i]:g.userOff[i+1]] {
		if g.bad[i] {
			g.bad[u] = true
		}
		g.pending[u]--
		s.queue(u)
	}
	if w := g.wave[i]; w >= 0 {
		if g.left[w]--; g.left[w] == 0 && g.next[w] >= 0 {
			s.openWave(g.next[w])
		}
	}
}

// readyQueue holds the ready instances of a played-forward run, taken in
// plan order (lowest index first), as the engine starts them. Instances
// mostly become ready in plan order (a wave's members, a step's
// dependents), so those go to a plain queue and only the others to a
// heap: a wave of thousands costs a slice append each, not a heap's
// logarithm.
type readyQueue struct {
	asc  []int32 // increasing
	head int
	rest []int32 // min-heap
}

func (q *readyQueue) reset() { q.asc, q.head, q.rest = q.asc[:0], 0, q.rest[:0] }

func (q *readyQueue) len() int { return len(q.asc) - q.head + len(q.rest) }

func (q *readyQueue) push(i int32) {
	if len(q.asc) == q.head || i > q.asc[len(q.asc)-1] {
		q.asc = append(q.asc, i)
		return
	}
	heapPush(&q.rest, i, func(a, b int32) bool { return a < b })
}

// peek is the lowest index queued.
func (q *readyQueue) peek() int32 {
	if q.head < len(q.asc) && (len(q.rest) == 0 || q.asc[q.head] < q.rest[0]) {
		return q.asc[q.head]
	}
	return q.rest[0]
}

func (q *readyQueue) pop() int32 {
	if q.head < len(q.asc) && (len(q.rest) == 0 || q.asc[q.head] < q.rest[0]) {
		i := q.asc[q.head]
		q.head++
		return i
	}
	return heapPop(&q.rest, func(a, b int32) bool { return a < b })
}

// finish is when a played-forward instance ends.
type finish struct {
	at time.Duration
	i  int32
}

func (f finish) before(o finish) bool { return f.at < o.at || f.at == o.at && f.i < o.i }

// finishQueue holds the running instances of a played-forward run, taken
// by end (then plan order). Instances of one step started one after the
// other end in that order, so, as in readyQueue, those go to a plain
// queue and only the others to a heap.
type finishQueue struct {
	asc  []finish
	head int
	rest []finish
}

func (q *finishQueue) reset() { q.asc, q.head, q.rest = q.asc[:0], 0, q.rest[:0] }

func (q *finishQueue) len() int { return len(q.asc) - q.head + len(q.rest) }

func (q *finishQueue) push(f finish) {
	if len(q.asc) == q.head || !f.before(q.asc[len(q.asc)-1]) {
		q.asc = append(q.asc, f)
		return
	}
	heapPush(&q.rest, f, finish.before)
}

func (q *finishQueue) pop() finish {
	if q.head < len(q.asc) && (len(q.rest) == 0 || q.asc[q.head].before(q.rest[0])) {
		f := q.asc[q.head]
		q.head++
		return f
	}
	return heapPop(&q.rest, finish.before)
}

// heapPush and heapPop keep *h a binary min-heap by less.
func heapPush[T any](h *[]T, x T, less func(a, b T) bool) {
	*h = append(*h, x)
	a := *h
	for c := len(a) - 1; c > 0; {
		p := (c - 1) / 2
		if !less(a[c], a[p]) {
			break
		}
		a[p], a[c] = a[c], a[p]
		c = p
	}
}

func heapPop[T any](h *[]T, less func(a, b T) bool) T {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for p := 0; ; {
		c := 2*p + 1
		if c >= len(a) {
			break
		}
		if c+1 < len(a) && less(a[c+1], a[c]) {
			c++
		}
		if !less(a[c], a[p]) {
			break
		}
		a[p], a[c] = a[c], a[p]
		p = c
	}
	*h = a
	return top
}

// remaining is what an unfinished instance should still take.
func (s *state) remaining(in *instance, fallback time.Duration, now time.Time) time.Duration {
	st := &s.steps[in.step]
	if st.free {
		return 0
	}
	exp := fallback
	if st.known {
		exp = st.exp
	}
	if in.status != stRunning {
		return exp
	}
	if d, ok, byETA := s.jobLeftBy(in); ok {
		if byETA {
			// The job ends at its jobeta; the instance when the engine
			// has seen that.
			d += s.lag()
		}
		return d
	}
	if in.started.IsZero() {
		return exp
	}
	return max(exp-now.Sub(in.started), 0)
}
