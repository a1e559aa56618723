package steps

// The step tests run against the simulator (clanforge/sim, through a
// stepRig or a simRig): it is our one model of the API. fakeAPI, a scripted
// Clanforge, stays for the two tests in this file, which need answers the
// simulator does not give and should not be made to give:
//
//   - TestPollingNeverTighterThanMin scripts an update's jobeta read by read
//     (none, in the past, just ahead) and counts the reads exactly. The
//     simulator's jobeta is its own clock's run-time estimate, so it cannot
//     be made to lie in the past or vanish while a job runs.
//   - TestInstallMatchesAMachineGivenByName lists install jobs whose
//     machine field is the machine's name: the reference types the field
//     "id or name" (API §7 #17), and the simulator, which follows one
//     reading of it, always gives the id.
//   - TestWatcherAimsAtJobETA (poll_test.go) scripts an install job that
//     reads Running with no progress and a jobeta two seconds ahead, read
//     after read, and records when each list read was served
//     (installReads): the simulator's jobeta and progress move with its
//     clock.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// fakeAPI is a scripted Clanforge: an update walks through a script of
// states, one step per status read, and a queued install job one step per
// read of imageinstall/status, so tests depend on read counts, never on
// the wall clock. It counts every request by route.
type fakeAPI struct {
	mu   sync.Mutex
	next int64
	hits map[string]int
	jobs map[int64]*fjob

	installs []*finst
	all      map[int64]*finst

	updateScripts [][]step // per create, in order; default: Running, Completed
	installScript []step   // states a queued job walks
	// machineNames, when set, makes install entries name their machine
	// instead of giving its id.
	machineNames map[int64]string
	// installReads records each read of imageinstall/status: when it
	// was served and the states it listed.
	installReads []fakeInstallRead
}

// fakeInstallRead is one read of imageinstall/status as the fake served it.
type fakeInstallRead struct {
	at     time.Time
	states []step // the listed jobs' states
}

type step struct {
	st   clanforge.JobState
	prog int
	eta  time.Duration // from the read; 0: none; negative: in the past
	err  string
}

var (
	sRun  = step{st: clanforge.StateRunning, prog: 50}
	sDone = step{st: clanforge.StateCompleted, prog: 100}
)

type fjob struct {
	script []step
	pos    int
	cur    step
}

type finst struct {
	id        int64
	mirroring bool
	machine   int64
	location  int64
	mirror    string
	version   int64
	pos       int
	cur       step
	queued    bool
}

func newFake(t *testing.T) (*fakeAPI, *clanforge.Client) {
	f := &fakeAPI{
		next:          1000,
		hits:          map[string]int{},
		jobs:          map[int64]*fjob{},
		all:           map[int64]*finst{},
		installScript: []step{{st: clanforge.StateQueued}, sRun, sDone},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := clanforge.New(clanforge.Config{
		BaseURL: srv.URL, ASID: 1234, AccessKey: "AKIDTESTKEY", SecretKey: "SECRETTESTKEY",
		RateLimit: rate.Inf, MaxReadAttempts: 2, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeAPI) hit(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[route]
}

// listVersion lists one Pending machine job per machine and one mirror job
// of a fresh version id, and returns the version id.
func (f *fakeAPI) listVersion(ms []*plan.Machine) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	v := f.next
	jobs := []*finst{{mirroring: true, mirror: "mirror-0", location: 30, version: v}}
	for _, m := range ms {
		jobs = append(jobs, &finst{machine: m.ID, location: 30, version: v})
	}
	for _, in := range jobs {
		f.next++
		in.id = f.next
		in.cur = step{st: clanforge.StatePending}
		f.installs = append(f.installs, in)
		f.all[in.id] = in
	}
	return v
}

var reJob = regexp.MustCompile(`^/cfp/v1/(imageupdate|imageinstall)/(\d+)/(status|queue)$`)

func jobJSON(idField string, id int64, s step, now time.Time) map[string]any {
	m := map[string]any{
		idField: id, "jobcreated": now.Unix(), "jobupdated": now.Unix(), "jobstart": nil,
		"jobeta": nil, "jobprogress": s.prog, "jobstateid": int(s.st), "jobstatename": s.st.String(),
		"jobfailed": 0, "joberror": nil, "success": true,
	}
	if s.eta != 0 {
		m["jobeta"] = now.Add(s.eta).Unix()
	}
	if s.err != "" {
		m["joberror"] = s.err
	}
	return m
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out any
	apiErr := ""
	route := r.URL.Path
	if m := reJob.FindStringSubmatch(r.URL.Path); m != nil {
		route = m[1] + "/" + m[3]
		id, _ := strconv.ParseInt(m[2], 10, 64)
		out, apiErr = f.jobCall(m[1], id, r.URL.Query().Get("mirroring") == "true", now)
	} else {
		switch r.URL.Path {
		case "/cfp/v1/imageupdate/create":
			route = "imageupdate/create"
			script := []step{sRun, sDone}
			if n := f.hits[route]; n < len(f.updateScripts) {
				script = f.updateScripts[n]
			}
			f.next++
			f.jobs[f.next] = &fjob{script: script}
			out = jobJSON("updateid", f.next, step{st: clanforge.StateCreated}, now)
		case "/cfp/v1/image/options":
			// The client reads the lock before a create: there is none.
			route = "image/options"
			out = map[string]any{"diffid": nil, "updateid": nil, "games": []any{}, "images": []any{}}
		case "/cfp/v1/imageinstall/status":
			route = "imageinstall/status"
			list := []any{}
			kept := f.installs[:0]
			for _, in := range f.installs {
				if in.queued {
					in.cur = f.installScript[min(in.pos, len(f.installScript)-1)]
					in.pos++
				}
				if in.cur.st == clanforge.StateCompleted {
					continue // completed jobs leave the list
				}
				kept = append(kept, in)
				m := jobJSON("jobid", in.id, in.cur, now)
				m["mirroring"] = in.mirroring
				m["mirror"] = in.mirror
				m["machine"] = in.machine
				if name, ok := f.machineNames[in.machine]; ok {
					m["machine"] = name
				}
				m["location"] = in.location
				m["target_imageversionid"] = in.version
				list = append(list, m)
			}
			f.installs = kept
			out = map[string]any{"installs": list}
			rd := fakeInstallRead{at: now}
			for _, in := range kept {
				rd.states = append(rd.states, in.cur)
			}
			f.installReads = append(f.installReads, rd)
		default:
			http.NotFound(w, r)
			return
		}
	}
	f.hits[route]++
	w.Header().Set("Content-Type", "application/json")
	if apiErr != "" {
		json.NewEncoder(w).Encode(map[string]any{"success": false, "error": true, "error_code": 1, "error_message": apiErr})
		return
	}
	json.NewEncoder(w).Encode(out)
}

// jobCall serves an update's status and an install job's queue. Callers
// hold f.mu.
func (f *fakeAPI) jobCall(group string, id int64, mirroring bool, now time.Time) (any, string) {
	if group == "imageinstall" {
		in := f.all[id]
		switch {
		case in == nil:
			return nil, "unknown install job"
		case mirroring != in.mirroring:
			return nil, "mirroring flag does not match the job"
		case in.cur.st != clanforge.StatePending:
			return nil, "install job already queued"
		}
		in.queued = true
		in.cur = step{st: clanforge.StateQueued}
		field := "machinejobid"
		if in.mirroring {
			field = "versionmirrorid"
		}
		return jobJSON(field, id, in.cur, now), ""
	}
	j := f.jobs[id]
	if j == nil {
		return nil, "unknown job"
	}
	j.cur = j.script[min(j.pos, len(j.script)-1)]
	j.pos++
	return jobJSON("updateid", id, j.cur, now), ""
}

func fleet(n int) []*plan.Machine {
	ms := make([]*plan.Machine, n)
	for i := range ms {
		ms[i] = &plan.Machine{Name: fmt.Sprintf("m%d", i), ID: int64(812000 + i), Index: i + 1}
	}
	return ms
}

// TestInstallMatchesAMachineGivenByName: install entries that name their
// machine instead of giving its id are matched through the plan's names.
func TestInstallMatchesAMachineGivenByName(t *testing.T) {
	f, c := newFake(t)
	ms := fleet(2)
	f.machineNames = map[int64]string{ms[0].ID: ms[0].Name, ms[1].ID: ms[1].Name}
	v := f.listVersion(ms)
	env := newEnv(c, &MemJournal{}, testPol)
	defer env.Installs.Close()
	env.Installs.SetMachineNames(map[string]int64{ms[0].Name: ms[0].ID, ms[1].Name: ms[1].ID})
	out, err := Run(context.Background(), env, installInst(installStep(false), ms[1], plan.InstallManual),
		plan.Inputs{Version: &plan.Output{VersionID: v}}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hit("imageinstall/queue") != 1 || len(out.JobIDs) != 1 {
		t.Fatalf("queue calls %d, output %+v", f.hit("imageinstall/queue"), out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.all[out.JobIDs[0]]; in == nil || in.machine != ms[1].ID || in.mirroring {
		t.Errorf("queued job %+v, want the job of machine %d", in, ms[1].ID)
	}
}

// TestPollingNeverTighterThanMin polls a job whose ETA is always in the past
// and one without ETA: the reads stay at least Min apart.
func TestPollingNeverTighterThanMin(t *testing.T) {
	for _, eta := range []time.Duration{0, -5 * time.Second, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("eta ", eta), func(t *testing.T) {
			f, c := newFake(t)
			run := step{st: clanforge.StateRunning, prog: 40, eta: eta}
			f.updateScripts = [][]step{{run, run, run, run, run, run, sDone}}
			pol := PollPolicy{Min: 15 * time.Millisecond, Max: 30 * time.Millisecond, Factor: 2}
			start := time.Now()
			if _, err := Run(context.Background(), newEnv(c, nil, pol), instFor(updateStep(0), build1), plan.Inputs{}, nil); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			reads := f.hit("imageupdate/status")
			if reads != 7 {
				t.Errorf("reads = %d, want 7", reads)
			}
			if int(elapsed/pol.Min)+1 < reads {
				t.Errorf("%d reads in %v: tighter than Min %v", reads, elapsed, pol.Min)
			}
		})
	}
}
