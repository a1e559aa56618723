package steps

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// simJob answers reads of a job created (or queued) at anchor that starts
// running after startup and then runs for run, the way the simulator
// answers them: Created, Pending and Queued a third of its startup each,
// jobstart and jobeta in whole seconds, progress truncated to a hundredth. Time is simulated: nothing here sleeps.
type simJob struct {
	anchor       time.Time
	startup, run time.Duration
}

func (j simJob) end() time.Time { return j.anchor.Add(j.startup + j.run) }

func (j simJob) at(t time.Time) *clanforge.Job {
	s, e := j.anchor.Add(j.startup), j.end()
	switch {
	case t.Before(j.anchor.Add(j.startup / 3)):
		return &clanforge.Job{State: clanforge.StateCreated}
	case t.Before(j.anchor.Add(2 * j.startup / 3)):
		return &clanforge.Job{State: clanforge.StatePending}
	case t.Before(s):
		return &clanforge.Job{State: clanforge.StateQueued}
	case t.Before(e):
		return &clanforge.Job{State: clanforge.StateRunning, Progress: int(100 * t.Sub(s) / j.run),
			Start: time.Unix(s.Unix(), 0), ETA: time.Unix(e.Unix(), 0)}
	}
	return &clanforge.Job{State: clanforge.StateCompleted, Progress: 100}
}

// pollSim polls j with a pacer as pollJob does, each read answered a
// millisecond after it is sent, and returns the reads and how long after
// the job's end the read that saw it ended was answered.
func pollSim(p PollPolicy, book *paceBook, kind string, j simJob) (reads int, latency time.Duration, trace string) {
	pc := newPacer(p.normalized(), kind, book, j.anchor)
	now := j.anchor
	job := &clanforge.Job{State: clanforge.StateCreated}
	for !job.State.Terminal() && reads < 1000 {
		now = now.Add(pc.next(now, job))
		job = j.at(now)
		reads++
		trace += fmt.Sprintf(" %v:%s/%d", now.Sub(j.anchor).Round(time.Millisecond), job.State, job.Progress)
		pc.observe(now, now.Add(time.Millisecond), job)
		now = now.Add(time.Millisecond)
	}
	return reads, now.Sub(j.end()), trace
}

var simBase = time.Unix(1_700_000_000, 300_000_000)

// endRange returns the earliest and latest end the reads allow; ok is false
// when nothing bounds the end from above.
func (m *endModel) endRange() (lo, hi time.Time, ok bool) {
	r, feasible := m.place(true)
	if !feasible || !r.eBounded {
		return time.Time{}, time.Time{}, false
	}
	return r.eLo, r.eHi, true
}

// TestPacerPlacesTheEnd: at the default policy, a job is read a few times
// whatever its length, and its end is seen soon after it comes: for a
// sub-second job within a read floor, for a ten-minute one within a
// second, with no more reads than the flat 2 s floor used to make.
func TestPacerPlacesTheEnd(t *testing.T) {
	p := DefaultPollPolicy()
	for _, tt := range []struct {
		name         string
		startup, run time.Duration
		maxReads     int
		maxLatency   time.Duration
	}{
		{"sub-second, first of its kind", 300 * time.Millisecond, 900 * time.Millisecond, 5, p.Min},
		// Share spares a read here for up to 4/3 of MaxLate (three
		// tenths of 12 s would be 3.6 s).
		{"ten times longer", 3 * time.Second, 9 * time.Second, 8, 1600 * time.Millisecond},
		// The flat 2 s floor read this one 28 times.
		{"ten minutes", 30 * time.Second, 10 * time.Minute, 29, time.Second},
	} {
		reads, latency, trace := pollSim(p, &paceBook{}, KindUpdate, simJob{simBase, tt.startup, tt.run})
		if reads > tt.maxReads || latency > tt.maxLatency || latency < 0 {
			t.Errorf("%s: %d reads (at most %d), end seen %v after it came (at most %v):%s", tt.name, reads, tt.maxReads, latency, tt.maxLatency, trace)
		}
	}
}

// TestPacerLearnsTheKind: once the run has seen jobs of a kind end, the
// next ones are read where those ended: two reads, or one, each, with their
// ends seen within what the policy's Share accepts. The default policy
// trades latency for reads (DefaultPollPolicy); a policy with a Share of a
// tenth holds the ends tighter with more reads.
func TestPacerLearnsTheKind(t *testing.T) {
	tenth := DefaultPollPolicy()
	tenth.Share = 0.1
	for _, tt := range []struct {
		name       string
		p          PollPolicy
		scale      time.Duration // the jobs' lengths are scaled by scale/1s
		maxLatency time.Duration // for any install
		avgLatency time.Duration // on average
		avgReads   float64
	}{
		// A tenth of 0.6 s on average.
		{"share a tenth", tenth, time.Second, 150 * time.Millisecond, 60 * time.Millisecond, 2.2},
		// One read each where the tighter policy makes 1.43: aimed just
		// after the ninetieth percentile of the kind's ends, which waits
		// half the span on average, at most two thirds of three tenths
		// of a 0.7 s job (140 ms); the few that outlast it take a second
		// read.
		{"default", DefaultPollPolicy(), time.Second, 350 * time.Millisecond, 140 * time.Millisecond, 1.2},
		// Ten times longer, MaxLate (a second) bounds what Share would
		// let wait: three tenths of 6 s are 1.8 s. Without it the ends
		// were seen 0.62 s late on average, one 2.8 s late.
		{"default, ten times longer", DefaultPollPolicy(), 10 * time.Second, 1600 * time.Millisecond, 500 * time.Millisecond, 1.6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			book := &paceBook{}
			var reads int
			var latency time.Duration
			const n = 40
			for i := 0; i < n; i++ {
				// Installs of 0.5 to 0.7 s, each queued 1.37 s after
				// the last (at scale 1s).
				sc := func(d time.Duration) time.Duration { return time.Duration(float64(d) * tt.scale.Seconds()) }
				run := sc(400*time.Millisecond + time.Duration((i*7919)%200)*time.Millisecond)
				r, l, trace := pollSim(tt.p, book, KindInstall, simJob{simBase.Add(sc(time.Duration(i) * 1370 * time.Millisecond)), sc(100 * time.Millisecond), run})
				if l < 0 || l > tt.maxLatency {
					t.Errorf("install %d: end seen %v after it came:%s", i, l, trace)
				}
				if i >= 5 {
					reads += r
					latency += l
				}
			}
			if avg := float64(reads) / (n - 5); avg > tt.avgReads {
				t.Errorf("%.2f reads per install once the kind is known, want at most %.1f", avg, tt.avgReads)
			}
			if avg := latency / (n - 5); avg > tt.avgLatency {
				t.Errorf("ends seen %v after they came on average, want at most %v", avg, tt.avgLatency)
			}
			t.Logf("%.2f reads per install, ends seen %v late on average", float64(reads)/(n-5), latency/(n-5))
		})
	}
}

// TestPacerWithoutKnowledge: without an anchor, a book or progress, the
// pacer is the plain one: it aims at jobeta plus a margin and backs off
// from Min while the job has no ETA ahead (TestPacer holds the numbers).
// A job that never starts is read ever more rarely, up to Max.
func TestPacerWithoutKnowledge(t *testing.T) {
	p := PollPolicy{Min: 100 * time.Millisecond, Max: 30 * time.Second, Factor: 1.5}.normalized()
	pc := newPacer(p, KindUpdate, &paceBook{}, simBase)
	var last time.Duration
	now := simBase
	for i := 0; i < 40; i++ {
		d := pc.next(now, &clanforge.Job{State: clanforge.StatePending})
		if d < last || d < p.Min || d > p.Max {
			t.Fatalf("read %d after %v: delay %v after %v", i, now.Sub(simBase), d, last)
		}
		last = d
		now = now.Add(d)
		pc.observe(now, now, &clanforge.Job{State: clanforge.StatePending})
	}
	if last != p.Max {
		t.Errorf("a job that never starts is read every %v at the end, want Max %v", last, p.Max)
	}
}

// TestEndModel: two reads of a running job pin its end to within a few
// hundredths of its run (their progress differs by 28 hundredths here), from their progress and the reads' own times,
// although jobstart and jobeta are whole seconds; and reads that contradict
// the API's times (another clock) or a job whose progress does not follow
// its clock still leave a placement.
func TestEndModel(t *testing.T) {
	j := simJob{simBase, 300 * time.Millisecond, 900 * time.Millisecond}
	var m endModel
	m.startAfter(j.anchor)
	m.endAfter(j.anchor)
	for _, at := range []time.Duration{450 * time.Millisecond, 700 * time.Millisecond} {
		t0 := j.anchor.Add(at)
		m.running(t0, t0.Add(time.Millisecond), j.at(t0))
	}
	lo, hi, ok := m.endRange()
	if !ok || lo.After(j.end()) || hi.Before(j.end()) || hi.Sub(lo) > 55*time.Millisecond {
		t.Errorf("end placed in [%v, %v] (ok %v), want a span of at most 55ms around %v",
			lo.Sub(j.anchor), hi.Sub(j.anchor), ok, j.end().Sub(j.anchor))
	}
	// A jobeta ten seconds off the reads' clock is dropped, the progress
	// kept.
	off := *j.at(j.anchor.Add(time.Second))
	off.ETA = off.ETA.Add(-10 * time.Second)
	m.running(j.anchor.Add(time.Second), j.anchor.Add(time.Second+time.Millisecond), &off)
	if lo, hi, ok := m.endRange(); !ok || lo.After(j.end()) || hi.Before(j.end()) {
		t.Errorf("with a contradicting jobeta: [%v, %v] ok %v", lo.Sub(j.anchor), hi.Sub(j.anchor), ok)
	}
	// Progress that jumps back contradicts itself: the model still
	// places the end from the API's times.
	var m2 endModel
	m2.startAfter(j.anchor)
	for _, at := range []time.Duration{700 * time.Millisecond, 1100 * time.Millisecond} {
		t0 := j.anchor.Add(at)
		job := j.at(t0)
		if at > time.Second {
			job.Progress = 1
		}
		m2.running(t0, t0.Add(time.Millisecond), job)
	}
	if lo, hi, ok := m2.endRange(); !ok || lo.After(j.end()) || hi.Before(j.end()) {
		t.Errorf("with a contradicting progress: [%v, %v] ok %v", lo.Sub(j.anchor), hi.Sub(j.anchor), ok)
	}
}

// TestPaceBookExplores: jobs of a kind that had always ended by their first
// read say only that such jobs end within the least time seen; the next is
// read halfway there, so that a read finds one running and places it.
func TestPaceBookExplores(t *testing.T) {
	b := &paceBook{}
	b.add(KindInstall, paceSample{end: span{0, 800 * time.Millisecond}})
	b.add(KindInstall, paceSample{end: span{0, 400 * time.Millisecond}})
	typ, ok := b.typical(KindInstall)
	if !ok || typ.end != (span{0, 400 * time.Millisecond}) || typ.startKnown || typ.runKnown {
		t.Fatalf("typical %+v ok %v", typ, ok)
	}
	pc := newPacer(DefaultPollPolicy(), KindInstall, b, simBase)
	if d := pc.next(simBase, &clanforge.Job{State: clanforge.StateQueued}); d != 200*time.Millisecond {
		t.Errorf("next read after %v, want halfway to 400ms", d)
	}
	// A placed job counts, and the loose bounds no longer do.
	b.add(KindInstall, paceSample{start: span{90 * time.Millisecond, 110 * time.Millisecond}, startKnown: true,
		end: span{590 * time.Millisecond, 610 * time.Millisecond}})
	typ, _ = b.typical(KindInstall)
	if !typ.startKnown || !typ.runKnown || typ.end.lo < 500*time.Millisecond || typ.end.hi > 700*time.Millisecond {
		t.Errorf("after a placed job: %+v", typ)
	}
}

// TestVertices: the corners of a region given by half-planes.
func TestVertices(t *testing.T) {
	// 0 ≤ S ≤ 1, 2 ≤ E ≤ 3.
	pts := vertices([]halfPlane{{-1, 0, 0}, {1, 0, 1}, {0, -1, -2}, {0, 1, 3}})
	if len(pts) != 4 {
		t.Fatalf("%d corners: %v", len(pts), pts)
	}
	for _, p := range pts {
		if (math.Abs(p[0]) > 1e-9 && math.Abs(p[0]-1) > 1e-9) || (math.Abs(p[1]-2) > 1e-9 && math.Abs(p[1]-3) > 1e-9) {
			t.Errorf("corner %v", p)
		}
	}
	if pts := vertices([]halfPlane{{1, 0, 0}, {-1, 0, -1}}); len(pts) != 0 {
		t.Errorf("an empty region has corners %v", pts)
	}
}

// TestWatcherAimsAtJobETA: the shared install watcher paces its reads by
// the jobs it serves: a job running with a jobeta (whole seconds, at least
// one ahead here) and no progress to go by is not read again before that
// ETA, however small Min. Ignoring jobeta, the watcher would back off from
// Min and read it again within milliseconds.
func TestWatcherAimsAtJobETA(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(1)
	eta := step{st: clanforge.StateRunning, prog: 0, eta: 2 * time.Second}
	f.installScript = []step{{st: clanforge.StateQueued}, eta, eta, sDone}
	v := f.listVersion(ms)
	pol := PollPolicy{Min: 10 * time.Millisecond, Max: 5 * time.Second, Factor: 1.5}
	env := newEnv(c, nil, pol)
	defer env.Installs.Close()
	if _, err := Run(context.Background(), env, installInst(installStep(false), ms[0], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	reads := slices.Clone(f.installReads)
	f.mu.Unlock()
	running := 0
	for i, rd := range reads[:len(reads)-1] {
		// The list also holds the version's mirror job, never queued
		// here (Pending): the machine's job is the one that runs.
		if !slices.ContainsFunc(rd.states, func(s step) bool { return s.st == clanforge.StateRunning }) {
			continue
		}
		running++
		// The ETA the read showed lay more than a second ahead.
		if gap := reads[i+1].at.Sub(rd.at); gap < 900*time.Millisecond {
			t.Errorf("read %d showed the job running with its ETA a second or more ahead; the next read came %v later", i+1, gap)
		}
	}
	if running != 2 {
		t.Errorf("%d reads showed the job running, want 2", running)
	}
}

// TestWatcherRestsWhenJobsLeft: a subscriber whose job a read listed and a
// later read no longer lists (it completed) is not looking for its job: it
// wants no read, so the watcher does not read the whole list again at once
// for it (at 10,000 machines such reads came between every two rounds). A
// subscriber whose job no read listed yet does want one soon.
func TestWatcherRestsWhenJobsLeft(t *testing.T) {
	pol := PollPolicy{Min: 10 * time.Millisecond, Max: 10 * time.Second, Factor: 1.5}
	w := newWatcher(pol)
	w.read = func(ctx context.Context) ([]clanforge.Install, error) {
		<-ctx.Done() // the test publishes the reads itself
		return nil, ctx.Err()
	}
	defer w.Close()
	ended := InstallInterest{VersionID: 7, Machine: 9}
	sub, err := w.Subscribe(ended)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w.mu.Lock()
	gen := w.gen
	w.mu.Unlock()
	t0 := time.Now()
	job := clanforge.Install{Job: clanforge.Job{ID: 1, State: clanforge.StateRunning, Progress: 50}, TargetVersionID: 7, Machine: 9}
	w.publish(gen, t0, t0, []clanforge.Install{job}, nil)
	t1 := time.Now()
	w.publish(gen, t1, t1, nil, nil)
	w.mu.Lock()
	next := w.nextLocked()
	w.mu.Unlock()
	if next.Before(t1.Add(pol.Max)) {
		t.Errorf("after its job left the list, the next read comes %v after the last, want Max %v", next.Sub(t1), pol.Max)
	}
	looking, err := w.Subscribe(InstallInterest{VersionID: 8, Machine: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer looking.Close()
	t2 := time.Now()
	w.publish(gen, t2, t2, nil, nil)
	w.mu.Lock()
	next = w.nextLocked()
	w.mu.Unlock()
	if next.After(t2.Add(pol.Max / 2)) {
		t.Errorf("with a subscriber whose job was never listed, the next read comes %v after the last", next.Sub(t2))
	}
}

// TestWatcherLooksForNewJobsAfterMin: an instance subscribes as soon as
// its version is seen completed, which is when the platform makes the
// version's install jobs; a read at once finds them Created, not yet
// Pending, and has to be made again (issue 12's request log showed it
// after every version). The first read for a subscriber whose jobs no read
// listed comes Min after it subscribed, the first ever read included.
func TestWatcherLooksForNewJobsAfterMin(t *testing.T) {
	pol := PollPolicy{Min: 150 * time.Millisecond, Max: 10 * time.Second, Factor: 1.5}
	for _, earlier := range []bool{false, true} {
		t.Run(fmt.Sprintf("earlier reads %v", earlier), func(t *testing.T) {
			w := newWatcher(pol)
			reads := make(chan time.Time, 16)
			w.read = func(ctx context.Context) ([]clanforge.Install, error) {
				reads <- time.Now()
				return nil, nil
			}
			defer w.Close()
			if earlier {
				// Another instance's subscription, long served.
				other, err := w.Subscribe(InstallInterest{VersionID: 6, Machine: 9})
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				<-reads
				time.Sleep(2 * pol.Min)
			}
			t0 := time.Now()
			sub, err := w.Subscribe(InstallInterest{VersionID: 7, Machine: 9})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for {
				select {
				case at := <-reads:
					if at.Before(t0) {
						continue // the other subscriber's
					}
					if d := at.Sub(t0); d < pol.Min {
						t.Errorf("the first read for the new subscriber came %v after it subscribed, want Min %v or more", d, pol.Min)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no read for the new subscriber")
				}
				break
			}
		})
	}
}

// TestPaceBookNinetieth: with quantileFrom placed jobs or more, the latest
// end the book gives is the ninetieth percentile of their ends plus a
// twentieth, not the slowest one's plus a tenth; with fewer, the slowest
// one's still bounds it.
func TestPaceBookNinetieth(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		name string
		ends []time.Duration // placed to ±5 ms
		hi   time.Duration
	}{
		{"few", []time.Duration{500 * ms, 550 * ms, 600 * ms, 900 * ms}, 905*ms + 90*ms + 500*ms/1000},
		{"ten", []time.Duration{500 * ms, 520 * ms, 540 * ms, 560 * ms, 580 * ms, 600 * ms, 620 * ms, 640 * ms, 660 * ms, 900 * ms},
			660*ms + 33*ms},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &paceBook{}
			for _, e := range tt.ends {
				b.add(KindInstall, paceSample{end: span{e - 5*ms, e + 5*ms}})
			}
			typ, ok := b.typical(KindInstall)
			if !ok {
				t.Fatal("nothing known")
			}
			if d := typ.end.hi - tt.hi; d < -2*ms || d > 2*ms {
				t.Errorf("latest end %v, want %v", typ.end.hi, tt.hi)
			}
		})
	}
}
