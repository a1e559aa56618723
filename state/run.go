package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rollout/rollout/plan"
)

// RunStartInfo describes a run as it starts.
type RunStartInfo struct {
	Resumed  bool
	API      string // base URL, without credentials
	Sim      bool
	PlanFile string // the plan's path as given
	// Overrides are a person's decisions on unanswered calls, e.g.
	// "resend update@buildbox-1/game".
	Overrides []string
}

// Start records that a run began: its pid, host and user, the API it talks
// to, and whether it resumes an earlier run.
func (j *Journal) Start(info RunStartInfo) error {
	host, _ := os.Hostname()
	return j.write(&Record{Type: TypeRunStart, PID: os.Getpid(), Host: host, User: currentUser(),
		Resumed: info.Resumed, API: MaskCredentials(info.API), Sim: info.Sim, PlanFile: info.PlanFile, Overrides: info.Overrides})
}

// WithInstances lists the plan's instance ids in a new journal's first
// record, so that `rollout status` can show what never ran.
func WithInstances(ids []string) Option {
	return func(o *options) { o.instances = ids }
}

// OpenExisting opens and locks the journal already in dir, whatever plan
// wrote it, to record an action taken outside a run (a manual reject). It
// fails with *LockedError while a rollout holds the directory, and with an
// error wrapping fs.ErrNotExist when there is no journal.
func OpenExisting(dir string, opts ...Option) (*Journal, error) {
	if _, err := os.Stat(filepath.Join(dir, JournalName)); err != nil {
		return nil, fmt.Errorf("no journal in %s: %w", dir, err)
	}
	return Open(dir, "", "", append(opts, func(o *options) { o.existing = true })...)
}

// FinishVerdict records how the run ended: its verdict, as the engine
// decided it ("succeeded", "failed", "aborted", "interrupted").
func (j *Journal) FinishVerdict(verdict string) error {
	return j.write(&Record{Type: TypeFinish, Verdict: verdict})
}

// verdictOfExit reads the verdict of a finish record written before
// verdicts were recorded, from its exit status.
func verdictOfExit(code int) string {
	switch code {
	case 0:
		return "succeeded"
	case 130:
		return "interrupted"
	}
	return "failed"
}

// OwnsLock reports whether a lock holder of img (a job of kind "diff" or
// "update") was created by this rollout: a job the journal saw created, or,
// for a create whose answer never arrived (the process died between the
// intent and its result), the lock of that kind on that image. The first
// run's pre-flight proved that no foreign lock existed then, and the engine
// serializes updates and diffs per image, so such a lock can only be the
// lost create's job; the step settles it the same way. This is the one
// place that decides which locks are ours.
func (j *Journal) OwnsLock(img *plan.Image, kind string, id int64) bool {
	if j.Ours(kind, id) {
		return true
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	want := fmt.Sprint(img.ID)
	for _, in := range j.live.s.Intents {
		if in.HasResult || in.Params["imageid"] != want {
			continue
		}
		switch {
		case kind == "diff" && strings.HasSuffix(in.Endpoint, "imagediff/create"),
			kind == "update" && strings.HasSuffix(in.Endpoint, "imageupdate/create"):
			return true
		}
	}
	return false
}

// currentUser names who runs this process, for the journal: $USER, else
// the login name, else the uid.
func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u := os.Getenv("LOGNAME"); u != "" {
		return u
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}
