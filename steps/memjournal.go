package steps

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MemJournal is the state journal's semantics (state.Journal) kept in
// memory, for tests and for commands that journal nothing on disk. Package
// state's contract test drives both through the same sequences of calls and
// holds them to the same answers.
//
// Everything recorded counts, whichever run recorded it: Prior answers from
// every intent and answer written so far (a test seeds what an earlier run
// left by making that run's Intent and Result calls first). A new intent
// under a key awaits its own answer. An error answer is an answer, kept
// with the job id it was given: the API refused the call, or it was never
// sent (an unknown outcome is never recorded as an answer). InstallJobs is
// the union of the jobs SeenInstalls recorded for the interest (a mirror
// job's machine is ignored, as in the state journal) and the jobs named by
// the instance's queue intents, answered or not.
//
// Two things the state journal does are not here. It masks credentials in
// what it writes; MemJournal keeps params as given, so that a test sees
// exactly what a step handed over. And it also ties install jobs to an
// instance from the records an engine writes beyond Journal (an instance's
// outcome, the jobs an interrupt left running); nothing in this package
// writes those.
//
// The zero value is ready to use. A MemJournal is safe for concurrent use.
type MemJournal struct {
	mu sync.Mutex
	// log is every record in the order it was made.
	log []memRecord
	// byKey is the last intent under each key and its answer.
	byKey map[string]*memRecord
	// seen holds the jobs SeenInstalls recorded, by what they install;
	// queued the jobs an instance's queue intents name, by instance.
	seen   map[InstallInterest]map[int64]bool
	queued map[string]map[int64]bool
}

// memRecord is one Intent, Result or (with seen set) SeenInstalls record.
// In byKey it is an intent with its answer folded in.
type memRecord struct {
	key      string
	endpoint string
	params   map[string]string
	answered bool
	jobID    int64
	err      string
	seen     []SeenInstall
}

var _ Journal = (*MemJournal)(nil)

// Intent records a call about to be sent. A key announced again awaits its
// new answer.
func (j *MemJournal) Intent(key, endpoint string, params map[string]string) error {
	if key == "" {
		return errors.New("journal intent without a key")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	rec := memRecord{key: key, endpoint: endpoint, params: params}
	j.log = append(j.log, rec)
	if j.byKey == nil {
		j.byKey = map[string]*memRecord{}
	}
	j.byKey[key] = &rec
	// A queue intent ties its job to the instance whether or not an
	// answer follows: the job existed, and the instance drives it.
	if id := queueJobOf(endpoint, params); id != 0 {
		inst, _, _ := strings.Cut(key, " ")
		if j.queued == nil {
			j.queued = map[string]map[int64]bool{}
		}
		if j.queued[inst] == nil {
			j.queued[inst] = map[int64]bool{}
		}
		j.queued[inst][id] = true
	}
	return nil
}

// Result records the answer to the call announced under key: the job id it
// made (0 when none) or its error. An answer with no intent before it still
// counts as both.
func (j *MemJournal) Result(key string, jobID int64, callErr error) error {
	if key == "" {
		return errors.New("journal result without a key")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	rec := memRecord{key: key, answered: true, jobID: jobID}
	if callErr != nil {
		rec.err = callErr.Error()
		if rec.err == "" {
			rec.err = "error"
		}
	}
	j.log = append(j.log, rec)
	if j.byKey == nil {
		j.byKey = map[string]*memRecord{}
	}
	in := j.byKey[key]
	if in == nil {
		in = &memRecord{key: key}
		j.byKey[key] = in
	}
	in.answered, in.jobID, in.err = true, rec.jobID, rec.err
	return nil
}

// Prior returns what was recorded under key: whether an intent was
// written, whether an answer followed and its job id.
func (j *MemJournal) Prior(key string) (intent, result bool, jobID int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	in, ok := j.byKey[key]
	if !ok {
		return false, false, 0
	}
	return true, in.answered, in.jobID
}

// SeenInstalls records the listed jobs not recorded yet, as one record; it
// records nothing when every job is known.
func (j *MemJournal) SeenInstalls(jobs []SeenInstall) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var fresh []SeenInstall
	for _, s := range jobs {
		k := memInterest(s.InstallInterest)
		if s.ID == 0 || j.seen[k][s.ID] {
			continue
		}
		if j.seen == nil {
			j.seen = map[InstallInterest]map[int64]bool{}
		}
		if j.seen[k] == nil {
			j.seen[k] = map[int64]bool{}
		}
		j.seen[k][s.ID] = true
		s.InstallInterest = k
		fresh = append(fresh, s)
	}
	if len(fresh) > 0 {
		j.log = append(j.log, memRecord{seen: fresh})
	}
	return nil
}

// InstallJobs returns the jobs recorded as listed for in and those instID's
// queue intents name, sorted.
func (j *MemJournal) InstallJobs(instID string, in InstallInterest) []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := []int64{}
	for id := range j.seen[memInterest(in)] {
		out = append(out, id)
	}
	for id := range j.queued[instID] {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// memInterest is what a job installs, as the state journal keys it: a
// mirror job's machine plays no part.
func memInterest(in InstallInterest) InstallInterest {
	if in.Mirroring {
		in.Machine = 0
	}
	return in
}

var pathID = regexp.MustCompile(`/(\d+)/`)

// queueJobOf is the install job a queue intent names, as the state journal
// reads it: its jobid parameter, else the id in its path
// (/cfp/v1/imageinstall/<jobid>/queue); 0 for any other intent.
func queueJobOf(endpoint string, params map[string]string) int64 {
	if !strings.Contains(endpoint, "imageinstall") || !strings.Contains(endpoint, "queue") {
		return 0
	}
	if v, ok := params["jobid"]; ok {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			return id
		}
	}
	if m := pathID.FindStringSubmatch("/" + endpoint + "/"); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		return id
	}
	return 0
}
