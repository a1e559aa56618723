package simtest

import (
	"math"
	"slices"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
)

// This file holds the yardsticks of issue 12's polling benchmark: the ideal
// schedule of a plan, which is what a rollout with zero polling latency
// would take, and the schedule and request count of a script that polls
// every job once a second. Both replay the plan's instance DAG by the
// engine's rules with the run times the simulator recorded, so that a run
// can be compared with them afterwards.

// InstanceWork returns how long each instance of p kept the simulator busy,
// from its job record: for update, diff and version instances the job of
// their step's kind on their machine and image, from its creation to its
// end; for install instances (mirror or machine) the longest of their jobs
// from being queued to their end, because the jobs exist before the
// instance starts and the instance's work is to queue them and see them
// end. Instances without a job (gates, rejects that found nothing, approvals)
// take no time. The second result counts the jobs found.
//
// An instance is matched to its jobs by kind, image and machine, which
// identifies it in plans with one step of each kind, such as FleetPlan's.
func InstanceWork(p *plan.Plan, jobs []sim.JobInfo) (map[string]time.Duration, int) {
	type key struct {
		kind           sim.Kind
		image, machine int64
	}
	byKey := map[key][]sim.JobInfo{}
	for _, j := range jobs {
		if j.Ended.IsZero() {
			continue
		}
		byKey[key{j.Kind, j.ImageID, j.MachineID}] = append(byKey[key{j.Kind, j.ImageID, j.MachineID}], j)
	}
	out := map[string]time.Duration{}
	found := 0
	for _, in := range p.Instances {
		var k key
		k.image = in.Image.ID
		if in.Machine != nil {
			k.machine = in.Machine.ID
		}
		queued := false
		switch in.Step.Type {
		case plan.TypeUpdate:
			k.kind = sim.KindUpdate
		case plan.TypeDiff:
			k.kind = sim.KindDiff
		case plan.TypeVersion:
			k.kind = sim.KindVersion
		case plan.TypeInstall:
			k.kind, queued = sim.KindInstall, true
			if in.Step.Mirroring {
				k.kind, k.machine = sim.KindMirror, 0
			}
		default:
			continue
		}
		var d time.Duration
		for _, j := range byKey[k] {
			from := j.Created
			if queued {
				from = j.Queued
			}
			d = max(d, j.Ended.Sub(from))
			found++
		}
		out[in.ID] = d
	}
	return out, found
}

// Detect says when a scheduler learns that an instance it started at start
// and whose work took d has ended, and how many status reads it spent on
// it. The ideal scheduler learns it at start+d with no read.
type Detect func(in *plan.Instance, start time.Duration, d time.Duration) (seen time.Duration, reads int)

// IdealDetect is the ideal scheduler's detection: at the end, for free.
func IdealDetect(_ *plan.Instance, start, d time.Duration) (time.Duration, int) { return start + d, 0 }

// Schedule replays p's instance DAG as the engine schedules it, with every
// instance taking work[id] and its end seen as detect says, and returns the
// makespan and the status reads detect counted. The rules are the engine's:
// an instance starts once its dependencies ended and its wave is open (every
// instance of the earlier waves of its step and image ended), in plan order,
// within the concurrency limit (gates and approvals take no slot), the
// step's max_parallel, and one update or diff at a time per image. Nothing
// fails; on_failure instances never run.
func Schedule(p *plan.Plan, concurrency int, work map[string]time.Duration, detect Detect) (makespan time.Duration, reads int) {
	if concurrency <= 0 {
		concurrency = max(p.Concurrency, 1)
	}
	type node struct {
		in      *plan.Instance
		pending int
		users   []*node
		started bool
		done    bool
		end     time.Duration // when its end is seen
	}
	type waveKey struct {
		step, image string
		wave        int
	}
	nodes := make([]*node, len(p.Instances))
	byID := map[string]*node{}
	waveLeft := map[waveKey]int{}
	for i, in := range p.Instances {
		nodes[i] = &node{in: in}
		byID[in.ID] = nodes[i]
		if in.Wave >= 0 {
			waveLeft[waveKey{in.Step.Name, in.Image.Name, in.Wave}]++
		}
	}
	for _, n := range nodes {
		for _, d := range n.in.Deps {
			if dn := byID[d.ID]; dn != nil {
				n.pending++
				dn.users = append(dn.users, n)
			}
		}
	}
	waveOpen := func(in *plan.Instance) bool {
		for w := 0; w < in.Wave; w++ {
			if waveLeft[waveKey{in.Step.Name, in.Image.Name, w}] > 0 {
				return false
			}
		}
		return true
	}
	var now time.Duration
	slots := 0
	stepRunning := map[string]int{}
	imageBusy := map[string]bool{}
	var running []*node
	for {
		// Start what may start, in plan order.
		for _, n := range nodes {
			if n.started || n.pending > 0 || (n.in.Wave >= 0 && !waveOpen(n.in)) {
				continue
			}
			st := n.in.Step
			free := st.Type == plan.TypeGate || st.Type == plan.TypeApprove
			serial := st.Type == plan.TypeUpdate || st.Type == plan.TypeDiff
			if (!free && slots >= concurrency) || (st.MaxParallel > 0 && stepRunning[st.Name] >= st.MaxParallel) ||
				(serial && imageBusy[n.in.Image.Name]) {
				continue
			}
			n.started = true
			seen, r := now, 0
			if !free {
				seen, r = detect(n.in, now, work[n.in.ID])
				slots++
			}
			reads += r
			n.end = seen
			stepRunning[st.Name]++
			if serial {
				imageBusy[n.in.Image.Name] = true
			}
			running = append(running, n)
		}
		if len(running) == 0 {
			break
		}
		// End the instance seen first (plan order breaks ties).
		i := 0
		for k, n := range running {
			if n.end < running[i].end {
				i = k
			}
		}
		n := running[i]
		running = slices.Delete(running, i, i+1)
		now = max(now, n.end)
		makespan = max(makespan, n.end)
		n.done = true
		st := n.in.Step
		if st.Type != plan.TypeGate && st.Type != plan.TypeApprove {
			slots--
		}
		stepRunning[st.Name]--
		if st.Type == plan.TypeUpdate || st.Type == plan.TypeDiff {
			imageBusy[n.in.Image.Name] = false
		}
		if n.in.Wave >= 0 {
			waveLeft[waveKey{st.Name, n.in.Image.Name, n.in.Wave}]--
		}
		for _, u := range n.users {
			u.pending--
		}
	}
	return makespan, reads
}

// ScriptDetect is the detection of a script that polls every job once a
// second: it reads a job's status every second from the moment its instance
// started it and sees the end at its first read after it, and it polls
// install jobs (mirror and machine) through one shared imageinstall/status
// read per second, on a grid of whole seconds from the start, while any
// install instance runs. It returns the Detect to give Schedule and a
// function that tells, after Schedule, how many shared install reads the
// script made (Schedule counts only the per-job reads).
func ScriptDetect(poll time.Duration) (Detect, func() int) {
	ticks := map[int64]bool{}
	detect := func(in *plan.Instance, start, d time.Duration) (time.Duration, int) {
		if in.Step.Type == plan.TypeInstall {
			first := int64(start/poll) + 1
			last := int64(math.Ceil(float64(start+d) / float64(poll)))
			last = max(last, first)
			for t := first; t <= last; t++ {
				ticks[t] = true
			}
			return time.Duration(last) * poll, 0
		}
		n := max(int64(math.Ceil(float64(d)/float64(poll))), 1)
		return start + time.Duration(n)*poll, int(n)
	}
	return detect, func() int { return len(ticks) }
}
