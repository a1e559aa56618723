package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// Summary is a replayed journal: what `rollout status` shows and what a
// resumed run needs.
type Summary struct {
	Plan     string
	PlanHash string
	Created  time.Time // time of the plan record
	// AllInstances is every instance id of the plan, when the journal
	// recorded them (journals of older versions did not).
	AllInstances []string
	Runs         []Run
	// Finished is true when the last run wrote its finish record; Verdict
	// is then how it ended (succeeded, failed, aborted, interrupted). An
	// unfinished last run crashed or was killed.
	Finished bool
	Verdict  string
	// Preflight is what the last run's pre-flight checks found.
	Preflight []Fact
	// Instances holds the last recorded outcome of each instance.
	Instances map[string]*InstanceOutcome
	// Intents holds every state-changing call announced, by key.
	Intents map[string]*Intent
	// OpenJobs are remote jobs the journal saw created whose end it did not
	// see: diffs neither rejected nor turned into a version (an open diff
	// locks its image even when it completed or failed), and updates,
	// versions, queued installs and uninstalls without a terminal state or
	// a recorded outcome of their instance. Sorted by kind and id.
	OpenJobs []JobRecord
	// Unfinished is what the last interrupt recorded, if the last run was
	// interrupted.
	Unfinished []JobRecord
	// TornTail is true when the journal ended in a torn line, which was
	// ignored.
	TornTail bool
	// Waits are the waits of every run by id (approvals, bakes), with
	// their decisions once taken. A decision stands across runs: a
	// resumed run does not ask again.
	Waits map[string]*WaitRecord
	// Decisions lists every decision in the order they were taken.
	Decisions []WaitRecord
	// Notified maps each notification recorded to how it went.
	Notified map[string]string
}

// Run is one run of the plan in this state directory.
type Run struct {
	PID      int
	Host     string
	User     string
	Started  time.Time
	Resumed  bool
	API      string    // base URL the run talked to
	Sim      bool      // against the built-in simulator
	PlanFile string    // the plan's path as the run was given it
	Finished time.Time // zero when the run never wrote its finish record
	Verdict  string    // how it ended, once Finished is set
}

// InstanceOutcome is how an instance last ended.
type InstanceOutcome struct {
	ID      string
	Outcome string
	Error   string
	Job     *JobRecord
	Output  json.RawMessage
	Time    time.Time
}

// Intent is one announced state-changing call and its answer, if any.
type Intent struct {
	Key       string
	Endpoint  string
	Params    map[string]string
	Time      time.Time
	HasResult bool
	JobID     int64
	Error     string
}

// Instance is the instance id a key names: the part before the first space
// ("diff@buildbox-1/game-b imagediff/create#1").
func (in *Intent) Instance() string {
	id, _, _ := strings.Cut(in.Key, " ")
	return id
}

// PendingIntents are the calls announced without a recorded answer: each may
// or may not have reached the API. Sorted by time, then key.
func (s *Summary) PendingIntents() []*Intent {
	var out []*Intent
	for _, in := range s.Intents {
		if !in.HasResult {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Time.Equal(out[b].Time) {
			return out[a].Time.Before(out[b].Time)
		}
		return out[a].Key < out[b].Key
	})
	return out
}

// OpenDiffs are the open jobs that are diffs.
func (s *Summary) OpenDiffs() []JobRecord {
	var out []JobRecord
	for _, j := range s.OpenJobs {
		if j.Kind == "diff" {
			out = append(out, j)
		}
	}
	return out
}

// Succeeded reports whether the instance's last outcome is a success and
// returns the output it recorded (an empty succeeded output when none was
// recorded).
func (s *Summary) Succeeded(instanceID string) (*plan.Output, bool) {
	o, ok := s.Instances[instanceID]
	if !ok || o.Outcome != "succeeded" {
		return nil, false
	}
	out := &plan.Output{}
	if len(o.Output) > 0 {
		if err := json.Unmarshal(o.Output, out); err != nil {
			return nil, false
		}
	}
	if out.State == "" {
		out.State = "succeeded"
	}
	return out, true
}

// TargetStatus is the outcome of a target's instances: the worst of them.
type TargetStatus struct {
	Target  string // "machine/image", or "image" for per-image instances
	Outcome string
	Error   string // of the instance that decided Outcome
	// Missing counts the target's instances with no recorded outcome:
	// not started, or still running when the journal was read.
	Missing int
	// OpenDiff is a diff of this target that still locks its image.
	OpenDiff int64
	// Instances are the recorded outcomes, by instance id.
	Instances []*InstanceOutcome
}

var severity = map[string]int{"failed": 5, "cancelled": 4, "skipped": 3, "skipped-when": 1, "succeeded": 0}

// targetOf is the target an instance id names: the part after '@'.
func targetOf(id string) string {
	if _, t, ok := strings.Cut(id, "@"); ok {
		return t
	}
	return id
}

// Targets groups the recorded outcomes by target (the part of an instance id
// after '@'), sorted by target. Every target of the plan is listed when the
// journal recorded the plan's instances, also those nothing was recorded
// for. A target whose instances have not all ended is "unfinished" unless
// one of them failed; one whose diff still locks its image is never
// "succeeded".
func (s *Summary) Targets() []TargetStatus {
	by := map[string]*TargetStatus{}
	get := func(t string) *TargetStatus {
		ts := by[t]
		if ts == nil {
			ts = &TargetStatus{Target: t}
			by[t] = ts
		}
		return ts
	}
	for _, id := range s.AllInstances {
		if _, ok := s.Instances[id]; !ok {
			get(targetOf(id)).Missing++
		}
	}
	for _, o := range s.Instances {
		ts := get(targetOf(o.ID))
		if ts.Outcome == "" || severity[o.Outcome] > severity[ts.Outcome] {
			ts.Outcome, ts.Error = o.Outcome, o.Error
		}
		ts.Instances = append(ts.Instances, o)
	}
	for _, d := range s.OpenDiffs() {
		get(targetOf(d.Instance)).OpenDiff = d.ID
	}
	out := make([]TargetStatus, 0, len(by))
	for _, ts := range by {
		sort.Slice(ts.Instances, func(a, b int) bool { return ts.Instances[a].ID < ts.Instances[b].ID })
		switch {
		case ts.Outcome == "failed" || ts.Outcome == "cancelled":
		case ts.Missing > 0 && len(ts.Instances) == 0:
			ts.Outcome = "not started"
		case ts.Missing > 0:
			ts.Outcome, ts.Error = "unfinished", fmt.Sprintf("%d of %d steps not ended", ts.Missing, ts.Missing+len(ts.Instances))
		}
		if ts.OpenDiff != 0 && ts.Outcome == "succeeded" {
			ts.Outcome = "unfinished"
		}
		out = append(out, *ts)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Target < out[b].Target })
	return out
}

type jobKey struct {
	kind string
	id   int64
}

type jobState struct {
	rec JobRecord
	// ended: seen in a terminal state, or its instance's outcome was
	// recorded with no sign of the job still running.
	ended    bool
	rejected bool
	versions bool
}

// replayer folds records into a Summary. Open keeps it and applies the
// current run's records too, so that Prior sees both.
type replayer struct {
	s    Summary
	jobs map[jobKey]*jobState
	// byInstance lists the jobs each instance made (every job whose
	// rec.Instance names it, maybe more: check), so that an outcome
	// touches its instance's jobs, not every job of the run.
	byInstance map[string][]*jobState
	records    int
	// installs holds the install jobs the installs records name, by what
	// they install; instJobs the install jobs tied to an instance by its
	// queue intents, its recorded outcome or an interrupt's unfinished
	// list. A resumed install instance reads both (installJobs).
	installs map[installKey]map[int64]bool
	instJobs map[string]map[int64]bool
}

func newReplayer() *replayer {
	return &replayer{
		s:          Summary{Instances: map[string]*InstanceOutcome{}, Intents: map[string]*Intent{}, Waits: map[string]*WaitRecord{}, Notified: map[string]string{}},
		jobs:       map[jobKey]*jobState{},
		byInstance: map[string][]*jobState{},
		installs:   map[installKey]map[int64]bool{},
		instJobs:   map[string]map[int64]bool{},
	}
}

// installKey is what an install job installs: a version, on a mirror or on
// one machine.
type installKey struct {
	version   int64
	mirroring bool
	machine   int64 // 0 for mirror jobs
}

func installKeyOf(in steps.InstallInterest) installKey {
	k := installKey{version: in.VersionID, mirroring: in.Mirroring}
	if !in.Mirroring {
		k.machine = in.Machine
	}
	return k
}

func (k installKey) kind() string {
	if k.mirroring {
		return "mirror"
	}
	return "install"
}

func isInstallKind(kind string) bool { return kind == "install" || kind == "mirror" }

func (r *replayer) tieInstall(instance string, id int64) {
	if instance == "" || id == 0 {
		return
	}
	if r.instJobs[instance] == nil {
		r.instJobs[instance] = map[int64]bool{}
	}
	r.instJobs[instance][id] = true
}

// installJobs is the union of the install jobs recorded for in and those
// tied to instance, sorted.
func (r *replayer) installJobs(instance string, in steps.InstallInterest) []int64 {
	set := map[int64]bool{}
	for id := range r.installs[installKeyOf(in)] {
		set[id] = true
	}
	for id := range r.instJobs[instance] {
		set[id] = true
	}
	out := make([]int64, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// queueJob is the install job a queue intent names (its endpoint carries the
// id: /cfp/v1/imageinstall/<jobid>/queue), or 0 for any other intent.
func queueJob(in *Intent) int64 {
	if !strings.Contains(in.Endpoint, "imageinstall") || !strings.Contains(in.Endpoint, "queue") {
		return 0
	}
	return idFrom(in, "jobid")
}

// feed applies every complete line of data. It returns the length of the
// part that holds complete lines; bytes after it are a torn last line.
func (r *replayer) feed(path string, data []byte) (int64, error) {
	lines, good := splitLines(data)
	if good < int64(len(data)) {
		r.s.TornTail = true
	}
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return 0, fmt.Errorf("%s line %d is not a journal record (%v); the journal is damaged: "+
				"inspect it, or start over with --fresh (the old journal is kept)", path, i+1, err)
		}
		if rec.V > Version {
			return 0, fmt.Errorf("%s line %d has record version %d, newer than this rollout understands (%d): "+
				"use a newer rollout, or start over with --fresh", path, i+1, rec.V, Version)
		}
		if r.records == 0 && rec.Type != TypePlan {
			return 0, fmt.Errorf("%s does not start with a plan record; it is not a rollout journal", path)
		}
		r.apply(&rec)
	}
	return good, nil
}

var digits = regexp.MustCompile(`/(\d+)/`)

// idFrom finds a job id in the params (name) or in the endpoint path
// ("imagediff/218595/reject").
func idFrom(in *Intent, name string) int64 {
	if v, ok := in.Params[name]; ok {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			return id
		}
	}
	if m := digits.FindStringSubmatch("/" + in.Endpoint + "/"); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		return id
	}
	return 0
}

func (r *replayer) job(kind string, id int64, instance string) *jobState {
	k := jobKey{kind, id}
	js := r.jobs[k]
	if js == nil {
		js = &jobState{rec: JobRecord{Instance: instance, Kind: kind, ID: id}}
		r.jobs[k] = js
		r.byInstance[instance] = append(r.byInstance[instance], js)
	}
	return js
}

func (r *replayer) apply(rec *Record) {
	r.records++
	switch rec.Type {
	case TypePlan:
		r.s.Plan, r.s.PlanHash, r.s.Created = rec.Plan, rec.Hash, rec.Time
		r.s.AllInstances = rec.Instances
	case TypeRunStart:
		r.s.Runs = append(r.s.Runs, Run{PID: rec.PID, Host: rec.Host, User: rec.User, Started: rec.Time, Resumed: rec.Resumed, API: rec.API, Sim: rec.Sim, PlanFile: rec.PlanFile})
		r.s.Finished, r.s.Verdict = false, ""
		r.s.Preflight, r.s.Unfinished = nil, nil
	case TypePreflight:
		r.s.Preflight = append(r.s.Preflight, rec.Facts...)
	case TypeIntent:
		// A key is written once per intent; should it come again the
		// later one wins, with its answer still to come.
		in := &Intent{Key: rec.Key, Endpoint: rec.Endpoint, Params: rec.Params, Time: rec.Time}
		r.s.Intents[rec.Key] = in
		// A queue intent ties its job to the instance whether or not an
		// answer followed: the job existed, and the instance drives it.
		r.tieInstall(in.Instance(), queueJob(in))
	case TypeResult:
		in := r.s.Intents[rec.Key]
		if in == nil {
			in = &Intent{Key: rec.Key, Time: rec.Time}
			r.s.Intents[rec.Key] = in
		}
		in.HasResult, in.JobID, in.Error = true, rec.JobID, rec.Error
		if rec.Error == "" {
			r.created(in)
		}
	case TypeOutcome:
		r.s.Instances[rec.Instance] = &InstanceOutcome{
			ID: rec.Instance, Outcome: rec.Outcome, Error: rec.Error, Job: rec.Job, Output: rec.Output, Time: rec.Time,
		}
		r.outcome(rec)
		if rec.Job != nil && isInstallKind(rec.Job.Kind) {
			r.tieInstall(rec.Instance, rec.Job.ID)
		}
	case TypeInstalls:
		for _, jr := range rec.Jobs {
			k := installKey{version: jr.Version, mirroring: jr.Kind == "mirror", machine: jr.Machine}
			if k.mirroring {
				k.machine = 0
			}
			if r.installs[k] == nil {
				r.installs[k] = map[int64]bool{}
			}
			r.installs[k][jr.ID] = true
		}
	case TypeUnfinished:
		r.s.Unfinished = append(r.s.Unfinished, rec.Jobs...)
		for _, jr := range rec.Jobs {
			if isInstallKind(jr.Kind) {
				r.tieInstall(jr.Instance, jr.ID)
			}
			if js, ok := r.jobs[jobKey{jr.Kind, jr.ID}]; ok {
				inst := js.rec.Instance
				js.rec = jr
				if js.rec.Instance == "" {
					js.rec.Instance = inst
				}
				if js.rec.Instance != inst {
					r.byInstance[js.rec.Instance] = append(r.byInstance[js.rec.Instance], js)
				}
				js.ended = jr.Terminal()
			}
		}
	case TypeWait:
		if rec.Wait != nil {
			w := *rec.Wait
			if old, ok := r.s.Waits[w.ID]; ok && old.Decision == "" && old.Since.Before(w.Since) {
				// A resumed wait keeps its first start.
				w.Since = old.Since
			}
			if old, ok := r.s.Waits[w.ID]; !ok || old.Decision == "" {
				r.s.Waits[w.ID] = &w
			}
		}
	case TypeDecision:
		if rec.Wait != nil && rec.Wait.Decision != "" && rec.Wait.Decision != string(engine.Stopped) {
			w := *rec.Wait
			if old, ok := r.s.Waits[w.ID]; ok && old.Since.Before(w.Since) {
				w.Since = old.Since
			}
			r.s.Waits[w.ID] = &w
			r.s.Decisions = append(r.s.Decisions, w)
		}
	case TypeNotify:
		r.s.Notified[rec.Key] = rec.Error
	case TypeFinish:
		r.s.Finished = true
		r.s.Verdict = rec.Verdict
		if r.s.Verdict == "" && rec.Exit != nil {
			r.s.Verdict = verdictOfExit(*rec.Exit)
		}
		if n := len(r.s.Runs); n > 0 {
			r.s.Runs[n-1].Finished = rec.Time
			r.s.Runs[n-1].Verdict = r.s.Verdict
		}
	}
}

// created notes the job a successful call made or settled, from its
// endpoint.
func (r *replayer) created(in *Intent) {
	ep, inst := in.Endpoint, in.Instance()
	switch {
	case strings.Contains(ep, "imageupdate/create"):
		if in.JobID != 0 {
			r.job("update", in.JobID, inst)
		}
	case strings.Contains(ep, "imagediff/create"), strings.HasSuffix(ep, "/retry") && strings.Contains(ep, "imagediff"):
		if in.JobID != 0 {
			js := r.job("diff", in.JobID, inst)
			js.ended = false // a retry runs it again
		}
	case strings.Contains(ep, "imagediff") && strings.Contains(ep, "reject"):
		if id := idFrom(in, "diffid"); id != 0 {
			if js, ok := r.jobs[jobKey{"diff", id}]; ok {
				js.rejected = true
			}
		}
		if in.JobID != 0 && in.JobID != idFrom(in, "diffid") {
			r.job("uninstall", in.JobID, inst)
		}
	case strings.Contains(ep, "imageversion/create"):
		if id := idFrom(in, "diffid"); id != 0 {
			if js, ok := r.jobs[jobKey{"diff", id}]; ok {
				js.versions = true
			}
		}
		if in.JobID != 0 {
			r.job("version", in.JobID, inst)
		}
	case strings.Contains(ep, "imageinstall") && strings.Contains(ep, "queue"):
		id := in.JobID
		if id == 0 {
			id = idFrom(in, "jobid")
		}
		if id != 0 {
			kind := "install"
			if in.Params["mirroring"] == "true" || in.Params["mirroring"] == "1" {
				kind = "mirror"
			}
			r.job(kind, id, inst)
		}
	}
}

// outcome applies an instance's end to the jobs it made: its recorded job
// takes the recorded state, and unless the instance was cancelled or its job
// was last seen running, its jobs have ended.
func (r *replayer) outcome(rec *Record) {
	var running *jobKey
	if rec.Job != nil {
		for _, kind := range []string{rec.Job.Kind, "install", "mirror"} {
			if js, ok := r.jobs[jobKey{kind, rec.Job.ID}]; ok {
				js.rec.State, js.rec.StateName, js.rec.Progress, js.rec.Error =
					rec.Job.State, rec.Job.StateName, rec.Job.Progress, rec.Job.Error
				if !rec.Job.Terminal() && rec.Job.State != 0 {
					k := jobKey{js.rec.Kind, js.rec.ID}
					running = &k
				}
				break
			}
		}
	}
	if rec.Outcome == "cancelled" {
		return
	}
	for _, js := range r.byInstance[rec.Instance] {
		if js.rec.Instance != rec.Instance || (running != nil && *running == (jobKey{js.rec.Kind, js.rec.ID})) {
			continue
		}
		js.ended = true
	}
}

func (r *replayer) summary() *Summary {
	s := r.s
	s.Instances = make(map[string]*InstanceOutcome, len(r.s.Instances))
	for k, v := range r.s.Instances {
		c := *v
		s.Instances[k] = &c
	}
	s.Intents = make(map[string]*Intent, len(r.s.Intents))
	for k, v := range r.s.Intents {
		c := *v
		s.Intents[k] = &c
	}
	s.Waits = make(map[string]*WaitRecord, len(r.s.Waits))
	for k, v := range r.s.Waits {
		c := *v
		s.Waits[k] = &c
	}
	s.Decisions = append([]WaitRecord(nil), r.s.Decisions...)
	s.Notified = make(map[string]string, len(r.s.Notified))
	for k, v := range r.s.Notified {
		s.Notified[k] = v
	}
	s.Runs = append([]Run(nil), r.s.Runs...)
	s.Preflight = append([]Fact(nil), r.s.Preflight...)
	s.Unfinished = append([]JobRecord(nil), r.s.Unfinished...)
	var open []*jobState
	for _, js := range r.jobs {
		if js.rec.Kind == "diff" {
			if !js.rejected && !js.versions {
				open = append(open, js)
			}
			continue
		}
		if !js.ended {
			open = append(open, js)
		}
	}
	sort.Slice(open, func(a, b int) bool {
		if open[a].rec.Kind != open[b].rec.Kind {
			return open[a].rec.Kind < open[b].rec.Kind
		}
		return open[a].rec.ID < open[b].rec.ID
	})
	s.OpenJobs = nil
	for _, js := range open {
		s.OpenJobs = append(s.OpenJobs, js.rec)
	}
	return &s
}
