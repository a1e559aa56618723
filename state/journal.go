// Package state owns a rollout's state directory (by default
// .rollout/<plan name>/): the lock that keeps two runs off it, and the
// append-only journal (journal.jsonl) that records every state-changing call
// before it is sent and after it answered, the install jobs the rollout saw
// listed (which leave every list when they complete), every instance's
// outcome and output, and how each run started and ended. A resumed run replays the
// journal so that it never sends a state-changing call twice and skips the
// instances that already succeeded; `rollout status` reads the same replay.
//
// Each journal record is one JSON line written with a single write. An
// intent, and every record that is rare (a run's start and end, decisions),
// is fsync'ed before the call returns: nothing is sent before its intent is
// durable. The records that come by the thousand in a large rollout
// (answers, outcomes, listed installs) are written at once but synced
// with the next intent, or within lazySyncDelay, or at Close: one fsync
// then covers every record written before it (group commit), so that a
// 10,000-machine run does not wait on 30,000 of them. Only a crash of the
// whole machine can lose such a record, and each is one a resume settles
// from the API anyway. A process killed in the middle of a write leaves
// at most a torn last line: replay ignores it, and Open cuts the file back
// to the last complete line before appending.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// Version is the version of the journal records this package writes. A
// journal holding a newer version is refused rather than misread.
const Version = 1

// JournalName is the journal's file name inside the state directory.
const JournalName = "journal.jsonl"

// Record types.
const (
	TypePlan       = "plan"
	TypeRunStart   = "run_start"
	TypePreflight  = "preflight"
	TypeIntent     = "intent"
	TypeResult     = "result"
	TypeOutcome    = "outcome"
	TypeUnfinished = "unfinished"
	TypeInstalls   = "installs"
	TypeFinish     = "finish"
	// TypeWait records that a wait (an approval, a bake) began; TypeDecision
	// how it ended and who ended it.
	TypeWait     = "wait"
	TypeDecision = "decision"
)

// Record is one journal line. Fields a record type does not use stay empty.
type Record struct {
	V    int       `json:"v"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`

	// plan (the first record)
	Plan string `json:"plan,omitempty"`
	Hash string `json:"hash,omitempty"`
	// Instances lists every instance id of the plan, so that a status
	// shows the targets nothing was recorded for yet.
	Instances []string `json:"instances,omitempty"`

	// run_start
	PID     int    `json:"pid,omitempty"`
	Host    string `json:"host,omitempty"`
	User    string `json:"user,omitempty"`
	Resumed bool   `json:"resumed,omitempty"`
	// API is the base URL the run talks to (never with credentials); Sim
	// marks a run against the built-in simulator, whose jobs end with it.
	API string `json:"api,omitempty"`
	Sim bool   `json:"sim,omitempty"`
	// PlanFile is the plan's path as the run was given it, so that
	// status can print commands that work.
	PlanFile string `json:"plan_file,omitempty"`
	// Overrides are a person's decisions on calls an earlier run left
	// unanswered (--resend, --assume-sent).
	Overrides []string `json:"overrides,omitempty"`

	// preflight
	Facts []Fact `json:"facts,omitempty"`

	// intent, result
	Key      string            `json:"key,omitempty"`
	Endpoint string            `json:"endpoint,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	JobID    int64             `json:"job_id,omitempty"`

	// result, outcome
	Error string `json:"error,omitempty"`

	// outcome
	Instance string          `json:"instance,omitempty"`
	Outcome  string          `json:"outcome,omitempty"`
	Job      *JobRecord      `json:"job,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`

	// unfinished, installs
	Jobs []JobRecord `json:"jobs,omitempty"`

	// wait, decision
	Wait *WaitRecord `json:"wait,omitempty"`

	// finish: the run's verdict (succeeded, failed, aborted,
	// interrupted). Journals written before verdicts were recorded carry
	// the exit status instead.
	Verdict string `json:"verdict,omitempty"`
	Exit    *int   `json:"exit,omitempty"`
}

// Fact is something the pre-flight checks found, e.g. a lock on an image:
// {Kind: "lock", Image: "game-b", Detail: "diffid", JobID: 218595}.
type Fact struct {
	Kind    string `json:"kind"`
	Image   string `json:"image,omitempty"`
	Machine string `json:"machine,omitempty"`
	JobID   int64  `json:"job_id,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// JobRecord is the last known state of a remote job.
type JobRecord struct {
	Instance  string `json:"instance,omitempty"`
	Kind      string `json:"kind"` // update, diff, version, mirror, install, uninstall
	ID        int64  `json:"id"`
	State     int    `json:"state,omitempty"`
	StateName string `json:"state_name,omitempty"`
	Progress  int    `json:"progress,omitempty"`
	Error     string `json:"error,omitempty"`
	// Version and Machine say what an install job installs where (the
	// installs record): its target version, and for a machine job (kind
	// install) its machine.
	Version int64 `json:"version,omitempty"`
	Machine int64 `json:"machine,omitempty"`
}

// Terminal reports whether the job's last known state is an end state
// (Completed, Failed, Squashed).
func (j JobRecord) Terminal() bool { return j.State >= 5 && j.State <= 7 }

// Option tunes Open.
type Option func(*options)

type options struct {
	now       func() time.Time
	instances []string
	existing  bool
	// wrap, when set, stands in for the journal's file (tests that watch
	// what is written and synced).
	wrap func(journalFile) journalFile
}

// journalFile is what the journal does with its file once it is open.
type journalFile interface {
	Write([]byte) (int, error)
	Sync() error
	Truncate(int64) error
	Close() error
}

// lazySyncDelay bounds how long a record written without a sync of its own
// waits for one.
const lazySyncDelay = 200 * time.Millisecond

// WithClock sets the clock that stamps records (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Journal is an open, locked state directory. It implements steps.Journal and
// is safe for concurrent use.
type Journal struct {
	dir  string
	path string
	now  func() time.Time
	lock *dirLock

	mu     sync.Mutex
	f      journalFile
	size   int64 // bytes known to be whole records
	closed bool
	// synced is how much of the file is known durable; syncing is set
	// while one caller syncs for everyone (without holding mu), and
	// synced wakes those who wait for it. lazy is the timer that syncs
	// records written without a sync of their own.
	synced  int64
	syncing bool
	syncCh  chan struct{}
	lazy    *time.Timer
	// summary is what earlier runs left, as replayed at Open. It is kept
	// up to date with this run's records so that Prior and Succeeded see
	// both.
	prior *Summary
	live  *replayer
}

// PlanChangedError says the journal belongs to another version of the plan.
type PlanChangedError struct {
	Dir      string
	Plan     string
	Old, New string // hashes
}

func (e *PlanChangedError) Error() string {
	return fmt.Sprintf("the plan %q changed since the journal in %s was written (hash %s, now %s): "+
		"resuming could skip or repeat the wrong steps; start over with --fresh (the old journal is kept)",
		e.Plan, e.Dir, short(e.Old), short(e.New))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Open creates dir if needed, locks it, replays the journal an earlier run
// left there (cutting off a torn last line) and writes the plan header when
// the journal is new. It fails with *LockedError when another rollout holds
// the directory and with *PlanChangedError when the journal was written for a
// plan with another hash. Close releases the lock.
func Open(dir, planName, planHash string, opts ...Option) (*Journal, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := acquireLock(dir, o.now())
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, path: filepath.Join(dir, JournalName), now: o.now, lock: lock}
	if err := j.open(planName, planHash, o); err != nil {
		lock.release()
		return nil, err
	}
	return j, nil
}

func (j *Journal) open(planName, planHash string, o options) error {
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("read journal %s: %w", j.path, err)
	}
	r := newReplayer()
	good, err := r.feed(j.path, data)
	if err != nil {
		f.Close()
		return err
	}
	if good < int64(len(data)) {
		// A torn last line: the write that made it never returned, so
		// nothing it announced was sent. Cut it off so that the next
		// record starts on a line of its own.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("cut torn last line of %s: %w", j.path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", j.path, err)
		}
	}
	j.f, j.size, j.synced, j.live = f, good, good, r
	if o.wrap != nil {
		j.f = o.wrap(f)
	}
	if o.existing {
		if r.records == 0 {
			f.Close()
			return fmt.Errorf("no journal in %s: %w", j.dir, fs.ErrNotExist)
		}
		j.prior = r.summary()
		return nil
	}
	if r.records == 0 {
		if err := j.write(&Record{Type: TypePlan, Plan: planName, Hash: planHash, Instances: o.instances}); err != nil {
			f.Close()
			return err
		}
		// The new file's name must survive a crash as well as its content.
		if err := syncDir(j.dir); err != nil {
			f.Close()
			return err
		}
	} else if r.s.PlanHash != planHash {
		f.Close()
		return &PlanChangedError{Dir: j.dir, Plan: planName, Old: r.s.PlanHash, New: planHash}
	}
	j.prior = r.summary()
	return nil
}

// Dir is the state directory.
func (j *Journal) Dir() string { return j.dir }

// Path is the journal file's path.
func (j *Journal) Path() string { return j.path }

// Summary is what earlier runs left in the journal, replayed at Open. It is
// empty (but for the plan) for a new journal.
func (j *Journal) Summary() *Summary { return j.prior }

// StaleLock returns what a rollout that died without releasing the lock left
// in the lock file, when Open took such a lock over.
func (j *Journal) StaleLock() (LockInfo, bool) {
	if j.lock == nil || j.lock.stale == nil {
		return LockInfo{}, false
	}
	return *j.lock.stale, true
}

// append writes one record as one line with one write, and applies it to
// the live summary. A failed write is cut back off so that a later record
// does not land after a torn line. It does not sync: see write and
// writeLazy. Callers hold j.mu.
func (j *Journal) append(rec *Record) error {
	if j.closed || j.f == nil {
		return errors.New("journal is closed")
	}
	rec.V = Version
	if rec.Time.IsZero() {
		rec.Time = j.now().UTC()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode journal record: %w", err)
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		_ = j.f.Truncate(j.size)
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	j.size += int64(len(b))
	j.live.apply(rec)
	return nil
}

// syncLocked returns once the first upTo bytes are durable. One caller at
// a time syncs, without holding j.mu so that others keep writing; those
// who wait meanwhile are served by the next sync, which covers everything
// written by then (group commit). Callers hold j.mu.
func (j *Journal) syncLocked(upTo int64) error {
	for j.synced < upTo {
		if j.syncing {
			ch := j.syncCh
			j.mu.Unlock()
			<-ch
			j.mu.Lock()
			continue
		}
		if j.f == nil {
			return errors.New("journal is closed")
		}
		j.syncing, j.syncCh = true, make(chan struct{})
		f, target := j.f, j.size
		j.mu.Unlock()
		err := f.Sync()
		j.mu.Lock()
		j.syncing = false
		close(j.syncCh)
		if err != nil {
			return fmt.Errorf("sync journal %s: %w", j.path, err)
		}
		j.synced = max(j.synced, target)
	}
	return nil
}

// write appends rec and returns once it is durable.
func (j *Journal) write(rec *Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.append(rec); err != nil {
		return err
	}
	return j.syncLocked(j.size)
}

// writeLazy appends rec and returns without waiting for a sync: the next
// sync covers it, at the latest lazySyncDelay from now. For the records
// that come by the thousand and that a resume can do without (see the
// package doc).
func (j *Journal) writeLazy(rec *Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.append(rec); err != nil {
		return err
	}
	if j.lazy == nil {
		j.lazy = time.AfterFunc(lazySyncDelay, j.syncLazy)
	}
	return nil
}

// syncLazy syncs what writeLazy left unsynced. A failure is not lost: the
// next intent's sync fails the same way and refuses the call.
func (j *Journal) syncLazy() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lazy = nil
	if j.closed {
		return
	}
	_ = j.syncLocked(j.size)
}

// RunStart records that a run began (its pid, host, and whether it resumes
// an earlier one).
func (j *Journal) RunStart(resumed bool) error {
	return j.Start(RunStartInfo{Resumed: resumed})
}

// Preflight records what the checks before the first call found.
func (j *Journal) Preflight(facts []Fact) error {
	fs := make([]Fact, len(facts))
	for i, f := range facts {
		f.Detail = MaskCredentials(f.Detail)
		fs[i] = f
	}
	return j.write(&Record{Type: TypePreflight, Facts: fs})
}

// Intent records a state-changing call before it is sent. params must
// already be masked; values that still look like credentials are masked
// again here.
func (j *Journal) Intent(key, endpoint string, params map[string]string) error {
	if key == "" {
		return errors.New("journal intent without a key")
	}
	return j.write(&Record{Type: TypeIntent, Key: key, Endpoint: MaskCredentials(endpoint), Params: maskParams(params)})
}

// Result records the answer to the call announced under key: the job id it
// made (0 when none) or its error.
func (j *Journal) Result(key string, jobID int64, callErr error) error {
	if key == "" {
		return errors.New("journal result without a key")
	}
	rec := &Record{Type: TypeResult, Key: key, JobID: jobID}
	if callErr != nil {
		rec.Error = MaskCredentials(callErr.Error())
		if rec.Error == "" {
			rec.Error = "error"
		}
	}
	// Lost in a machine crash, an answer is settled from the API like
	// one that never came.
	return j.writeLazy(rec)
}

// Prior returns what was recorded under key, by earlier runs or this one:
// whether the intent was written, whether a result followed and its job id.
func (j *Journal) Prior(key string) (intent, result bool, jobID int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	in, ok := j.live.s.Intents[key]
	if !ok {
		return false, false, 0
	}
	return true, in.HasResult, in.JobID
}

// PriorResult returns a copy of everything recorded under key (endpoint,
// masked params, and the answer's job id or error), for a step that must
// tell an answered error from an answer that made no job.
func (j *Journal) PriorResult(key string) (Intent, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	in, ok := j.live.s.Intents[key]
	if !ok {
		return Intent{}, false
	}
	return *in, true
}

// SeenInstalls records the install jobs a read of imageinstall/status listed
// that no earlier record names, in one installs record; it writes nothing
// when every job is known. See steps.Journal.
func (j *Journal) SeenInstalls(jobs []steps.SeenInstall) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var recs []JobRecord
	batch := map[installKey]map[int64]bool{}
	for _, s := range jobs {
		k := installKeyOf(s.InstallInterest)
		if s.ID == 0 || j.live.installs[k][s.ID] || batch[k][s.ID] {
			continue
		}
		if batch[k] == nil {
			batch[k] = map[int64]bool{}
		}
		batch[k][s.ID] = true
		recs = append(recs, JobRecord{Kind: k.kind(), ID: s.ID, Version: s.VersionID, Machine: k.machine})
	}
	if len(recs) == 0 {
		return nil
	}
	if err := j.append(&Record{Type: TypeInstalls, Jobs: recs}); err != nil {
		return err
	}
	// Synced with the next intent at the latest, which is all a queue
	// call needs: the record is written before any instance can queue
	// one of these jobs.
	if j.lazy == nil {
		j.lazy = time.AfterFunc(lazySyncDelay, j.syncLazy)
	}
	return nil
}

// InstallJobs returns the ids of the install jobs of interest in that any
// run recorded: listed (installs records), queued by instance instID, or
// named as instID's unfinished jobs by an interrupt. Sorted. See
// steps.Journal.
func (j *Journal) InstallJobs(instID string, in steps.InstallInterest) []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.live.installJobs(instID, in)
}

// Outcome records how an instance ended, with its last job and its output
// (which a resumed run restores for the expressions of its dependents).
func (j *Journal) Outcome(instanceID, outcome, errMsg string, job *JobRecord, out *plan.Output) error {
	rec := &Record{Type: TypeOutcome, Instance: instanceID, Outcome: outcome, Error: MaskCredentials(errMsg)}
	if job != nil {
		jr := *job
		jr.Instance = ""
		jr.Error = MaskCredentials(jr.Error)
		rec.Job = &jr
	}
	if out != nil {
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode output of %s: %w", instanceID, err)
		}
		rec.Output = b
	}
	// Lost in a machine crash, an outcome only makes a resume run the
	// instance again, which re-attaches to its jobs through its intents.
	return j.writeLazy(rec)
}

// Unfinished records the remote jobs an interrupt left running.
func (j *Journal) Unfinished(jobs []JobRecord) error {
	js := make([]JobRecord, len(jobs))
	for i, jr := range jobs {
		jr.Error = MaskCredentials(jr.Error)
		js[i] = jr
	}
	return j.write(&Record{Type: TypeUnfinished, Jobs: js})
}

// Succeeded reports whether the last recorded outcome of the instance, in an
// earlier run or this one, is a success, and returns the output it recorded.
func (j *Journal) Succeeded(instanceID string) (*plan.Output, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.live.s.Succeeded(instanceID)
}

// Ours reports whether this journal (any run) saw a call create the job of
// that kind and id, e.g. Ours("diff", 218595). A lock held by such a job is
// the rollout's own, not someone else's.
func (j *Journal) Ours(kind string, id int64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.live.jobs[jobKey{kind, id}]
	return ok
}

// Close releases the lock. Records already written stay on disk.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	var err error
	if j.f != nil {
		// What was written lazily is made durable before the file goes.
		err = j.syncLocked(j.size)
	}
	j.closed = true
	if j.lazy != nil {
		j.lazy.Stop()
		j.lazy = nil
	}
	if j.f != nil {
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
		j.f = nil
	}
	if lerr := j.lock.release(); err == nil {
		err = lerr
	}
	return err
}

// DefaultDir is the state directory of a plan: .rollout/<plan name>, with the
// name reduced to characters that are safe in a file name.
func DefaultDir(planName string) string {
	return filepath.Join(".rollout", safeName(planName))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(name string) string {
	s := unsafeChars.ReplaceAllString(name, "-")
	s = strings.Trim(s, "-")
	if s == "" || strings.Trim(s, ".") == "" {
		return "default"
	}
	return s
}

// Fresh moves the journal in dir aside as journal-<UTC time>.jsonl, so that
// the next Open starts a new one while nothing is lost. It takes the
// directory's lock while it does so and fails with *LockedError when a
// rollout is running. It returns the new name of the old journal, or "" when
// there was none.
func Fresh(dir string) (string, error) {
	return fresh(dir, time.Now())
}

func fresh(dir string, now time.Time) (string, error) {
	path := filepath.Join(dir, JournalName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	lock, err := acquireLock(dir, now)
	if err != nil {
		return "", err
	}
	defer lock.release()
	stamp := now.UTC().Format("20060102T150405Z")
	for i := 0; ; i++ {
		name := "journal-" + stamp + ".jsonl"
		if i > 0 {
			name = fmt.Sprintf("journal-%s-%d.jsonl", stamp, i)
		}
		dst := filepath.Join(dir, name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Rename(path, dst); err != nil {
			return "", fmt.Errorf("move old journal aside: %w", err)
		}
		return dst, syncDir(dir)
	}
}

// Replay reads the journal in dir without locking it (a running rollout may
// be appending to it) and summarizes it. A torn last line is ignored. When
// there is no journal the error wraps fs.ErrNotExist.
func Replay(dir string) (*Summary, error) {
	path := filepath.Join(dir, JournalName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no journal in %s (no rollout of this plan ran here): %w", dir, fs.ErrNotExist)
		}
		return nil, err
	}
	r := newReplayer()
	if _, err := r.feed(path, data); err != nil {
		return nil, err
	}
	return r.summary(), nil
}

// syncDir makes a directory's entries (a new or renamed file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// splitLines returns each complete line of data and the length of the
// complete part.
func splitLines(data []byte) (lines [][]byte, good int64) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, data[:i])
		good += int64(i + 1)
		data = data[i+1:]
	}
	return lines, good
}
