package tui

import (
	"strconv"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/hostile"
)

// bigRun is a 5,000-target run in full swing: a quarter finished, some
// failed, 20 running with progress, the rest waiting.
func bigRun(b *testing.B) *harness { return bigRunN(b, 5000) }

// bigRunN is bigRun with n targets.
func bigRunN(b *testing.B, n int) *harness {
	h := newHarness(b, 120, 40, true)
	h.running(n)
	for i := 5; i < n/4; i++ {
		id := installID(i)
		h.ui.InstanceFinished(id, engine.Result{Outcome: engine.Succeeded, Started: t0, Finished: t0.Add(time.Minute)})
	}
	for i := n / 4; i < n/4+10; i++ {
		h.fail(i, "imageinstall failed: machine unreachable")
	}
	for i := n/4 + 10; i < n/4+30; i++ {
		h.ui.InstanceStarted(installID(i), t0)
		h.ui.JobProgress(installID(i), engine.JobInfo{Kind: "install", ID: int64(i), StateName: "Running", Progress: i % 100})
	}
	h.tick(time.Second)
	return h
}

// BenchmarkView5000 is one frame (View) at 5,000 targets, 120×40, colour on.
func BenchmarkView5000(b *testing.B) {
	h := bigRun(b)
	h.press("down", "down")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = h.m.View()
	}
}

// BenchmarkView5000Filtered is the same frame with a filter active.
func BenchmarkView5000Filtered(b *testing.B) {
	h := bigRun(b)
	h.press("/")
	h.typeText("eu-1")
	h.press("enter")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = h.m.View()
	}
}

// BenchmarkBatch10000Progress applies a tick that carries 10,000 progress
// events for 5,000 targets (coalesced to one per instance) and renders the
// frame: the cost of a burst on the program side.
func BenchmarkBatch10000Progress(b *testing.B) {
	h := bigRun(b)
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = installID(i + 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for k := 0; k < 10000; k++ {
			h.ui.JobProgress(ids[k%len(ids)], engine.JobInfo{Progress: (n + k) % 100, StateName: "Running"})
		}
		h.tick(100 * time.Millisecond)
		_ = h.m.View()
	}
}

// BenchmarkJobProgress is the engine-side cost of one JobProgress call, from
// many goroutines at once, with nobody draining (the worst case for the
// engine: the map only grows to one slot per instance).
func BenchmarkJobProgress(b *testing.B) {
	u := New(Options{NoColor: true})
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = "install@m" + strconv.Itoa(i) + "/img"
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u.JobProgress(ids[i%len(ids)], engine.JobInfo{Progress: i % 100})
			i++
		}
	})
}

// BenchmarkBatch10000ProgressSecrets is BenchmarkBatch10000Progress with
// credentials and an ${env:} value registered, as in a real run: every
// string entering the view is checked against every form of each.
func BenchmarkBatch10000ProgressSecrets(b *testing.B) {
	hostile.Register(b)
	BenchmarkBatch10000Progress(b)
}

// BenchmarkView10000 is one frame at 10,000 targets, 120×40, colour on.
func BenchmarkView10000(b *testing.B) {
	h := bigRunN(b, 10000)
	h.press("down", "down")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = h.m.View()
	}
}

// BenchmarkBatch10000Targets applies a tick that carries 20,000 progress
// events for 10,000 targets (coalesced to one per instance) and renders
// the frame: the worst burst at 10k.
func BenchmarkBatch10000Targets(b *testing.B) {
	h := bigRunN(b, 10000)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = installID(i + 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for k := 0; k < 20000; k++ {
			h.ui.JobProgress(ids[k%len(ids)], engine.JobInfo{Progress: (n + k) % 100, StateName: "Running"})
		}
		h.tick(100 * time.Millisecond)
		_ = h.m.View()
	}
}

// BenchmarkTick10000 is one tick of a 10,000-target run as it goes: the
// running jobs report progress, a few instances end and others start, and
// the frame is rendered. The program does this ten times a second, so
// ns/op ÷ 1e8 is the share of a core the live view costs.
func BenchmarkTick10000(b *testing.B) {
	const n, running = 10000, 100
	h := newHarness(b, 120, 40, true)
	info := fixture(n)
	info.Concurrency = running
	h.ui.RunStarted(info)
	h.flush()
	for _, id := range []string{updateID, diffID, gateID, versionID, mirrorID} {
		h.succeed(id, 0, time.Minute, nil, "")
	}
	next := 1 // next machine to start
	started := make([]int, 0, running)
	for ; next <= running; next++ {
		h.runJob(installID(next), time.Minute)
		started = append(started, next)
	}
	h.tick(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for k := 0; b.Loop(); k++ {
		for j, i := range started {
			h.ui.JobProgress(installID(i), engine.JobInfo{Kind: "install", ID: int64(i), State: 2, StateName: "Running",
				Progress: (k + j) % 100, Start: t0, ETA: h.clk.t.Add(time.Minute)})
		}
		// Two end and two start per tick: 20 a second.
		for e := 0; e < 2 && next <= n; e++ {
			i := started[0]
			started = started[1:]
			h.end(installID(i), h.clk.t.Add(-time.Minute))
			h.runJob(installID(next), time.Minute)
			started = append(started, next)
			next++
		}
		h.tick(100 * time.Millisecond)
		_ = h.m.View()
	}
}
