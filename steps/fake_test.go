package steps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// fakeAPI is a scripted Clanforge: every job walks through a script of
// states, one step per status read (install jobs: one step per read of
// imageinstall/status once queued), so tests depend on read counts, never on
// the wall clock. It counts every request by route.
type fakeAPI struct {
	t  *testing.T
	mu sync.Mutex

	next  int64
	hits  map[string]int
	reads map[int64]int // status reads per job id
	jobs  map[int64]*fjob
	locks map[int64]lock // image id -> holder

	installs []*finst
	all      map[int64]*finst

	updateScripts [][]step // per create, in order; default: Running, Completed
	diffScripts   [][]step // per create or retry
	diffFiles     [3][]string
	versionScript []step
	// genInstalls makes the install jobs of a version when it completes.
	genInstalls   func(versionID int64, now bool) []*finst
	installScript []step // states a queued (or install_at=NOW()) job walks

	counters      clanforge.Counters
	versionParams url.Values
	dropVersion   bool // act on imageversion/create, then drop the connection
	// machineNames, when set, makes install entries name their machine
	// instead of giving its id (the field's type is undocumented).
	machineNames    map[int64]string
	statusReadTimes []time.Time
	// installReads records each read of imageinstall/status: when it
	// was served and the states it listed.
	installReads []fakeInstallRead

	// Faults, each entry used by one request in order: "500" answers
	// HTTP 500 before any work, "drop" does the work and closes the
	// connection without an answer.
	versionFaults []string // imageversion/create
	updateFaults  []string // imageupdate/create
	retryFaults   []string // imagediff/<id>/retry
	dropDiff      bool     // act on imagediff/create, then drop the connection
	queueFaults   []string // imageinstall/<id>/queue
	// failStatusReads answers the next N reads of imageinstall/status
	// with HTTP 500; each faulted queue request sets it to
	// failStatusAfterQueue (the client's own settle reads then fail).
	failStatusReads      int
	failStatusAfterQueue int
	// afterWork, when set, is called with the route of every request
	// once its work is done and before its answer goes out (or is
	// dropped).
	afterWork func(route string)
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

func sFail(msg string) step { return step{st: clanforge.StateFailed, err: msg} }

type lock struct {
	kind string
	id   int64
}

type fjob struct {
	id      int64
	kind    string // update, diff, version
	image   int64
	script  []step
	pos     int
	failed  int
	cur     step
	changed int
	// diff: rejected or consumed
	closed bool
}

type finst struct {
	id        int64
	mirroring bool
	machine   int64
	location  int64
	mirror    string
	version   int64
	script    []step
	pos       int
	cur       step
	moving    bool // queued, or install_at=NOW()
}

func newFake(t *testing.T) (*fakeAPI, *clanforge.Client) {
	f := &fakeAPI{
		t:             t,
		next:          1000,
		hits:          map[string]int{},
		reads:         map[int64]int{},
		jobs:          map[int64]*fjob{},
		locks:         map[int64]lock{},
		all:           map[int64]*finst{},
		diffFiles:     [3][]string{{"Data/level9.pak"}, {"GameServer.x86_64"}, {"Data/old.bik"}},
		versionScript: []step{sRun, sDone},
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

func (f *fakeAPI) setLock(image int64, kind string, id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks[image] = lock{kind, id}
}

// addJob registers a job the way an earlier run would have left it.
func (f *fakeAPI) addJob(kind string, image int64, script []step) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.jobs[f.next] = &fjob{id: f.next, kind: kind, image: image, script: script, cur: step{st: clanforge.StateCreated}, changed: 3}
	return f.next
}

// addInstall lists an install job.
func (f *fakeAPI) addInstall(in *finst) *finst {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addInstallLocked(in)
	return in
}

func (f *fakeAPI) addInstallLocked(in *finst) {
	f.next++
	in.id = f.next
	if in.cur.st == 0 {
		in.cur = step{st: clanforge.StatePending}
	}
	if in.script == nil {
		in.script = f.installScript
	}
	f.installs = append(f.installs, in)
	f.all[in.id] = in
}

var (
	reJob   = regexp.MustCompile(`^/cfp/v1/(imageupdate|imagediff|imageversion|imageinstall)/(\d+)/(status|retry|reject|queue)$`)
	reImgSt = regexp.MustCompile(`^/cfp/v2/project/\d+/image/(\d+)/status$`)
)

func jobJSON(idField string, id int64, s step, failed int, now time.Time) map[string]any {
	m := map[string]any{
		idField: id, "jobcreated": now.Unix(), "jobupdated": now.Unix(), "jobstart": nil,
		"jobeta": nil, "jobprogress": s.prog, "jobstateid": int(s.st), "jobstatename": s.st.String(),
		"jobfailed": failed, "joberror": nil, "success": true,
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
	q := r.URL.Query()
	now := time.Now()
	f.mu.Lock()
	var out any
	var apiErr string
	drop := false
	route := r.URL.Path
	i64 := func(k string) int64 { v, _ := strconv.ParseInt(q.Get(k), 10, 64); return v }
	fault := ""
	pop := func(faults *[]string) {
		if len(*faults) > 0 {
			fault, *faults = (*faults)[0], (*faults)[1:]
		}
	}
	switch {
	case r.URL.Path == "/cfp/v1/imageversion/create":
		route = "imageversion/create"
		pop(&f.versionFaults)
	case r.URL.Path == "/cfp/v1/imageupdate/create":
		route = "imageupdate/create"
		pop(&f.updateFaults)
	case reJob.MatchString(r.URL.Path) && strings.HasSuffix(r.URL.Path, "/retry"):
		route = "imagediff/retry"
		pop(&f.retryFaults)
	case reJob.MatchString(r.URL.Path) && strings.HasSuffix(r.URL.Path, "/queue"):
		route = "imageinstall/queue"
		pop(&f.queueFaults)
		if fault != "" {
			f.failStatusReads = f.failStatusAfterQueue
		}
	case r.URL.Path == "/cfp/v1/imageinstall/status" && f.failStatusReads > 0:
		route = "imageinstall/status"
		f.failStatusReads--
		fault = "500"
	}
	if fault == "500" {
		f.hits[route]++
		f.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if fault == "drop" {
		drop = true
	}
	if m := reJob.FindStringSubmatch(r.URL.Path); m != nil {
		route = m[1] + "/" + m[3]
		id, _ := strconv.ParseInt(m[2], 10, 64)
		out, apiErr = f.jobCall(m[1], m[3], id, q, now)
	} else if m := reImgSt.FindStringSubmatch(r.URL.Path); m != nil {
		route = "image/status"
		out = map[string]any{"pending_machines": f.counters.Pending, "failed_machines": f.counters.Failed, "completed_machines": f.counters.Completed}
	} else {
		switch r.URL.Path {
		case "/cfp/v1/imageupdate/create":
			route = "imageupdate/create"
			img := i64("imageid")
			if l, ok := f.locks[img]; ok {
				apiErr = fmt.Sprintf("image locked by %sid: %d", l.kind, l.id)
				break
			}
			script := []step{sRun, sDone}
			if n := f.hits[route]; n < len(f.updateScripts) {
				script = f.updateScripts[n]
			}
			f.next++
			f.jobs[f.next] = &fjob{id: f.next, kind: "update", image: img, script: script}
			f.locks[img] = lock{"update", f.next}
			out = jobJSON("updateid", f.next, step{st: clanforge.StateCreated}, 0, now)
		case "/cfp/v1/imagediff/create":
			route = "imagediff/create"
			img := i64("imageid")
			if l, ok := f.locks[img]; ok {
				apiErr = fmt.Sprintf("image locked by %sid: %d", l.kind, l.id)
				break
			}
			script := []step{sRun, sDone}
			if len(f.diffScripts) > 0 {
				script, f.diffScripts = f.diffScripts[0], f.diffScripts[1:]
			}
			f.next++
			f.jobs[f.next] = &fjob{id: f.next, kind: "diff", image: img, script: script, changed: len(f.diffFiles[0]) + len(f.diffFiles[1]) + len(f.diffFiles[2])}
			f.locks[img] = lock{"diff", f.next}
			out = jobJSON("diffid", f.next, step{st: clanforge.StateCreated}, 0, now)
			drop = drop || f.dropDiff
		case "/cfp/v1/imageversion/create":
			route = "imageversion/create"
			d := f.jobs[i64("diffid")]
			switch {
			case d == nil || d.kind != "diff":
				apiErr = "unknown diff"
			case d.closed || d.cur.st != clanforge.StateCompleted:
				apiErr = "diff is not completed"
			case d.changed == 0 && q.Get("full") != "1":
				apiErr = "diff has no changes: full=1 required"
			}
			if apiErr != "" {
				break
			}
			d.closed = true
			delete(f.locks, d.image)
			f.versionParams = q
			f.next++
			f.jobs[f.next] = &fjob{id: f.next, kind: "version", image: d.image, script: f.versionScript, changed: boolInt(q.Get("install_at") == "NOW()")}
			out = jobJSON("imageversionid", f.next, step{st: clanforge.StateCreated}, 0, now)
			drop = drop || f.dropVersion
		case "/cfp/v1/imageinstall/status":
			route = "imageinstall/status"
			list := []any{}
			kept := f.installs[:0]
			for _, in := range f.installs {
				if in.moving && in.cur.st != clanforge.StateFailed {
					in.cur = in.script[min(in.pos, len(in.script)-1)]
					in.pos++
				}
				if in.cur.st == clanforge.StateCompleted || in.cur.st == clanforge.StateSquashed {
					continue // completed and squashed jobs leave the list
				}
				kept = append(kept, in)
				m := jobJSON("jobid", in.id, in.cur, boolInt(in.cur.st == clanforge.StateFailed), now)
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
		case "/cfp/v1/image/options":
			route = "image/options"
			o := map[string]any{"diffid": nil, "updateid": nil, "games": []any{}, "images": []any{}}
			if l, ok := f.locks[i64("imageid")]; ok {
				o[l.kind+"id"] = l.id
			}
			out = o
		default:
			f.mu.Unlock()
			http.NotFound(w, r)
			return
		}
	}
	f.hits[route]++
	after := f.afterWork
	f.mu.Unlock()
	if after != nil {
		after(route)
	}
	if drop {
		hj, _ := w.(http.Hijacker)
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if apiErr != "" {
		json.NewEncoder(w).Encode(map[string]any{"success": false, "error": true, "error_code": 1, "error_message": apiErr})
		return
	}
	json.NewEncoder(w).Encode(out)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// jobCall serves the per-job endpoints. Callers hold f.mu.
func (f *fakeAPI) jobCall(group, verb string, id int64, q url.Values, now time.Time) (any, string) {
	if group == "imageinstall" {
		in := f.all[id]
		if in == nil {
			return nil, "unknown install job"
		}
		if (q.Get("mirroring") == "true") != in.mirroring {
			return nil, "mirroring flag does not match the job"
		}
		if in.cur.st != clanforge.StatePending {
			return nil, "install job already queued"
		}
		in.moving = true
		in.cur = step{st: clanforge.StateQueued}
		field := "machinejobid"
		if in.mirroring {
			field = "versionmirrorid"
		}
		return jobJSON(field, id, in.cur, 0, now), ""
	}
	j := f.jobs[id]
	if j == nil {
		return nil, "unknown job"
	}
	idField := map[string]string{"imageupdate": "updateid", "imagediff": "diffid", "imageversion": "imageversionid"}[group]
	switch verb {
	case "status":
		f.reads[id]++
		f.statusReadTimes = append(f.statusReadTimes, now)
		j.cur = j.script[min(j.pos, len(j.script)-1)]
		j.pos++
		if j.cur.st == clanforge.StateFailed && j.pos == len(j.script) {
			j.failed++
		}
		if j.cur.st.Terminal() && j.kind == "update" {
			if l := f.locks[j.image]; l.kind == "update" && l.id == id {
				delete(f.locks, j.image)
			}
		}
		if j.kind == "version" && j.cur.st == clanforge.StateCompleted && f.genInstalls != nil && j.pos == len(j.script) {
			for _, in := range f.genInstalls(id, j.changed == 1) {
				f.addInstallLocked(in)
			}
			f.genInstalls = nil
		}
		m := jobJSON(idField, id, j.cur, j.failed, now)
		if j.kind == "diff" && j.cur.st == clanforge.StateCompleted {
			for i, k := range []string{"added", "modified", "removed"} {
				files := map[string]any{}
				if j.changed > 0 {
					for _, p := range f.diffFiles[i] {
						files[p] = map[string]any{"size": 1}
					}
				}
				m[k] = files
			}
		}
		if q.Get("diff_info") == "1" {
			m["image"] = map[string]any{"imageid": j.image, "name": "img"}
		}
		return m, ""
	case "retry":
		if !j.cur.st.Terminal() {
			return nil, "diff is not completed or failed"
		}
		j.script = []step{sRun, sDone}
		if len(f.diffScripts) > 0 {
			j.script, f.diffScripts = f.diffScripts[0], f.diffScripts[1:]
		}
		j.pos = 0
		j.cur = step{st: clanforge.StateCreated}
		return jobJSON("diffid", id, j.cur, j.failed, now), ""
	case "reject":
		if !j.cur.st.Terminal() {
			return nil, "diff is not completed or failed"
		}
		if j.closed {
			return nil, "diff already rejected or accepted"
		}
		j.closed = true
		delete(f.locks, j.image)
		if q.Get("reinstall") == "1" {
			f.next++
			return jobJSON("uninstalljobid", f.next, step{st: clanforge.StateCreated}, 0, now), ""
		}
		return map[string]any{"diffid": id}, ""
	}
	return nil, "unknown verb"
}

// memJournal records calls in memory; prior seeds what an "earlier run"
// left behind.
type memJournal struct {
	mu      sync.Mutex
	intents []string
	params  map[string]map[string]string
	results map[string]int64
	prior   map[string]priorRec
	// seen holds what SeenInstalls recorded, in this run or (seeded by a
	// test) an earlier one; writes counts the SeenInstalls calls that had
	// something new to record.
	seen   map[InstallInterest]map[int64]bool
	writes int
}

type priorRec struct {
	intent, result bool
	job            int64
}

func newJournal() *memJournal {
	return &memJournal{params: map[string]map[string]string{}, results: map[string]int64{}, prior: map[string]priorRec{},
		seen: map[InstallInterest]map[int64]bool{}}
}

func (j *memJournal) SeenInstalls(jobs []SeenInstall) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	wrote := false
	for _, s := range jobs {
		if j.seen[s.InstallInterest][s.ID] {
			continue
		}
		if j.seen[s.InstallInterest] == nil {
			j.seen[s.InstallInterest] = map[int64]bool{}
		}
		j.seen[s.InstallInterest][s.ID] = true
		wrote = true
	}
	if wrote {
		j.writes++
	}
	return nil
}

// InstallJobs returns the jobs recorded as seen for in and those an
// earlier run queued under instID (the prior queue keys).
func (j *memJournal) InstallJobs(instID string, in InstallInterest) []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	set := map[int64]bool{}
	for id := range j.seen[in] {
		set[id] = true
	}
	for key, p := range j.prior {
		rest, ok := strings.CutPrefix(key, instID+" imageinstall/queue/")
		if id, err := strconv.ParseInt(rest, 10, 64); ok && p.intent && err == nil {
			set[id] = true
		}
	}
	out := make([]int64, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (j *memJournal) Intent(key, endpoint string, params map[string]string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.intents = append(j.intents, key)
	j.params[key] = params
	// A new intent under a key awaits its own answer, as in the state
	// journal.
	delete(j.results, key)
	return nil
}

func (j *memJournal) Result(key string, id int64, err error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.results[key] = id
	return nil
}

// Prior answers from this run's records first, as the state journal does,
// then from what the test seeded as an earlier run's.
func (j *memJournal) Prior(key string) (bool, bool, int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.params[key]; ok {
		id, answered := j.results[key]
		return true, answered, id
	}
	if id, ok := j.results[key]; ok {
		return true, true, id
	}
	p := j.prior[key]
	return p.intent, p.result, p.job
}

func (j *memJournal) keys() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.intents...)
}

// Plan fixtures, built by hand: the executors only read exported fields.
var (
	imgB    = &plan.Image{Name: "game-b", ID: 5531}
	build1  = &plan.Machine{Name: "buildbox-1", ID: 770001, Build: true}
	testPol = PollPolicy{Min: 2 * time.Millisecond, Max: 10 * time.Millisecond, Factor: 1.5}
)

func fleet(n int) []*plan.Machine {
	ms := make([]*plan.Machine, n)
	for i := range ms {
		ms[i] = &plan.Machine{Name: fmt.Sprintf("m%d", i), ID: int64(812000 + i), Index: i + 1}
	}
	return ms
}

func instFor(s *plan.Step, m *plan.Machine) *plan.Instance {
	in := &plan.Instance{Step: s, Image: imgB, Machine: m, Wave: -1}
	if m != nil {
		in.Target = &plan.Target{Machine: m, Image: imgB}
		in.ID = s.Name + "@" + in.Target.Key()
	} else {
		in.ID = s.Name + "@" + imgB.Name
	}
	return in
}

func versionInst(at plan.InstallAt) *plan.Instance {
	return instFor(&plan.Step{Name: "version", Type: plan.TypeVersion, InstallAt: at, Full: plan.FullAuto}, nil)
}

func newEnv(c *clanforge.Client, j Journal, pol PollPolicy) *Env {
	return &Env{Client: c, Journal: j, Poll: pol, Installs: NewInstallWatcher(c, pol)}
}

// updates collects progress reports.
type updates struct {
	mu  sync.Mutex
	all []JobUpdate
}

func (u *updates) add(j JobUpdate) {
	u.mu.Lock()
	u.all = append(u.all, j)
	u.mu.Unlock()
}

func (u *updates) states(kind string) []clanforge.JobState {
	u.mu.Lock()
	defer u.mu.Unlock()
	var s []clanforge.JobState
	for _, j := range u.all {
		if j.Kind == kind && (len(s) == 0 || s[len(s)-1] != j.Job.State) {
			s = append(s, j.Job.State)
		}
	}
	return s
}

// waitGoroutines waits until the goroutine count drops to at most base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	n := runtime.Stack(buf, true)
	t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), base, buf[:n])
}

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
