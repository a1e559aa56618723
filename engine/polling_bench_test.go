package engine_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/state"
	"github.com/rollout/rollout/steps"
)

// pollingScenario gives issue 12's shape its job lengths at the short
// scale: every job takes 0.5-1.4 s from its creation (installs: from being
// queued) to its end, the platform's startup included, with a seeded
// jitter of a fifth.
const pollingScenario = `
seed: 12
jitter: 0.2
durations: {startup: 300ms, update: 900ms, diff: 600ms, version: 800ms, mirror: 500ms, install: 500ms}
`

// BenchmarkPollingOverhead measures what polling costs a rollout at the
// default settings, on issue 12's shape: two images, 12 fleet machines,
// waves 1/50%/100%, concurrency 3, run by the real engine, steps and client
// against the simulator over HTTP, with the real journal, at two time
// scales: sub-second jobs, and the same jobs ten times longer. The policy
// is steps.DefaultPollPolicy, the one `rollout run --sim` uses at speed 1
// (it scales the policy only for faster simulators), and the client keeps
// its default rate limit, as against the real API. It reports:
//
//   - makespan/ideal: the engine's run time over the ideal schedule, the
//     same DAG replayed with each instance's real work from the simulator's
//     job record and no polling latency (simtest.Schedule); goal ≤ 1.15;
//   - script/ideal: the same for a script polling every job once a second,
//     for scale;
//   - status-reads/job: reads of job status endpoints (imageinstall/status
//     included, once per read however many jobs it serves) per job the
//     simulator ran; goal ≤ 1.5;
//   - requests and script-requests: the run's requests (the pre-flight
//     excluded) and the 1 s script's (the same state-changing calls plus
//     its reads); requests/script, goal ≤ 7/6;
//   - requests/job.
func BenchmarkPollingOverhead(b *testing.B) {
	for _, sc := range []struct {
		name  string
		speed float64
	}{{"short", 1}, {"long", 0.1}} {
		b.Run(sc.name, func(b *testing.B) {
			var m pollingMetrics
			for i := 0; i < b.N; i++ {
				m.add(runPollingShape(b, sc.speed))
			}
			m.report(b, b.N)
		})
	}
}

type pollingMetrics struct {
	ratio, script, readsPerJob, requests, scriptRequests, perScript, perJob, ideal float64
}

func (m *pollingMetrics) add(o pollingMetrics) {
	m.ratio += o.ratio
	m.script += o.script
	m.readsPerJob += o.readsPerJob
	m.requests += o.requests
	m.scriptRequests += o.scriptRequests
	m.perScript += o.perScript
	m.perJob += o.perJob
	m.ideal += o.ideal
}

func (m *pollingMetrics) report(b *testing.B, n int) {
	if n == 0 {
		return
	}
	f := float64(n)
	b.ReportMetric(m.ratio/f, "makespan/ideal")
	b.ReportMetric(m.script/f, "script/ideal")
	b.ReportMetric(m.readsPerJob/f, "status-reads/job")
	b.ReportMetric(m.requests/f, "requests")
	b.ReportMetric(m.scriptRequests/f, "script-requests")
	b.ReportMetric(m.perScript/f, "requests/script")
	b.ReportMetric(m.perJob/f, "requests/job")
	b.ReportMetric(m.ideal/f, "ideal-s")
}

// runPollingShape runs issue 12's shape once with the simulator at speed
// (1: sub-second jobs; 0.1: ten times longer) and measures it.
func runPollingShape(b *testing.B, speed float64) pollingMetrics {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	p := simtest.Plan(b, simtest.FleetPlan("polling", []string{"game-a", "game-b"}, 12, 3, `    waves: [1, "50%", "100%"]
`, "", ""))
	scn := simtest.Scenario(b, pollingScenario+fmt.Sprintf("speed: %g\n", speed))
	e := simtest.Start(b, p, scn, simtest.Credentials("bench-access", "bench-secret"))
	// The client at its defaults, as `rollout run` builds it for the API.
	c, err := clanforge.New(clanforge.Config{BaseURL: e.URL, ASID: e.Server.ASID(), AccessKey: "bench-access", SecretKey: "bench-secret"})
	if err != nil {
		b.Fatal(err)
	}
	j, err := state.Open(b.TempDir(), p.Name, p.Hash)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	pol := steps.DefaultPollPolicy()
	ctx := context.Background()
	if _, err := steps.Preflight(ctx, c, p, j.OwnsLock); err != nil {
		b.Fatal(err)
	}
	w := steps.NewInstallWatcher(c, pol)
	w.SetMachineNames(steps.MachineIDs(p))
	defer w.Close()
	env := &steps.Env{Client: c, Installs: w, Journal: j, Poll: pol, Now: time.Now, Fleet: steps.FleetOf(p)}
	before, logBefore := c.Requests(), len(e.Server.Requests())
	b.StartTimer()
	s, err := engine.New(p, engine.Options{Executor: steps.Executor{Env: env}, Journal: state.NewRecorder(j), Requests: c.Requests}).Run(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if s.Verdict != engine.VerdictSucceeded {
		b.Fatalf("run: %v %+v", s.Verdict, s.Failures)
	}
	requests := c.Requests() - before
	log := e.Server.Requests()[logBefore:]
	statusReads, mutating := 0, 0
	for _, r := range log {
		switch r.Endpoint {
		case sim.EPUpdateStatus, sim.EPDiffStatus, sim.EPVersionStatus, sim.EPInstallStatus:
			statusReads++
		}
		if r.Mutating {
			mutating++
		}
	}
	if os.Getenv("POLLING_LOG") != "" {
		// The run's requests and the simulator's job timeline, in
		// seconds from the engine's start, to see where the time went.
		t0 := s.Started
		for _, r := range log {
			b.Logf("%8.3f %s %s", r.Time.Sub(t0).Seconds(), r.Endpoint, r.Path)
		}
		for _, ev := range e.Server.Timeline() {
			b.Logf("%8.3f   %s %d %s %s", ev.Time.Sub(t0).Seconds(), ev.Kind, ev.JobID, ev.Machine, ev.Event)
		}
	}
	jobs := e.Server.Jobs()
	work, found := simtest.InstanceWork(p, jobs)
	if found != len(jobs) {
		b.Fatalf("matched %d of the simulator's %d jobs to instances", found, len(jobs))
	}
	ideal, _ := simtest.Schedule(p, 3, work, simtest.IdealDetect)
	detect, shared := simtest.ScriptDetect(time.Second)
	script, scriptReads := simtest.Schedule(p, 3, work, detect)
	scriptRequests := mutating + scriptReads + shared()
	makespan := s.Finished.Sub(s.Started)
	b.Logf("speed %g: makespan %s, ideal %s, 1 s script %s; %d requests (%d state-changing, %d status reads) for %d jobs; script %d",
		speed, makespan.Round(time.Millisecond), ideal.Round(time.Millisecond), script, requests, mutating, statusReads, len(jobs), scriptRequests)
	return pollingMetrics{
		ratio:          makespan.Seconds() / ideal.Seconds(),
		script:         script.Seconds() / ideal.Seconds(),
		readsPerJob:    float64(statusReads) / float64(len(jobs)),
		requests:       float64(requests),
		scriptRequests: float64(scriptRequests),
		perScript:      float64(requests) / float64(scriptRequests),
		perJob:         float64(requests) / float64(len(jobs)),
		ideal:          ideal.Seconds(),
	}
}
