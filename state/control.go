package state

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// A run in progress is steered from other terminals through files in its
// state directory, so that any process on the machine that can read the
// directory can reach it, whatever the run prints to (the live view, plain
// lines, JSON in CI), and so that neither side's crash can leave the other
// hanging:
//
//   - control/<id>.req is a request (an approval or an abort), written to a
//     hidden temporary file and renamed into place, so that the run never
//     reads half a request;
//   - the run claims a request by renaming it to control/<id>.taken (only
//     one of the run and a requester withdrawing it can win that rename),
//     hands it to the engine, writes the engine's answer to
//     control/<id>.reply the same atomic way, and removes the .taken file;
//   - waiting.json says what the run waits for now (kept current from the
//     engine's WaitStarted and WaitEnded), so that status and approve can
//     say it without asking the run.
//
// The lock file (CheckFree) says whether a run holds the directory: a
// requester never waits for an answer from a directory nobody holds, and a
// run never waits for a requester at all. A request a run claimed and did
// not answer before it died (.taken without .reply) is left over for the
// next run of the directory, which applies it only if it still matches.

// File names in the state directory.
const (
	ControlDirName = "control"
	WaitingName    = "waiting.json"
)

// ControlVersion is the version of the control files this package writes.
const ControlVersion = 1

// ControlRequest is one request from outside the run.
type ControlRequest struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Abort aborts the rollout; otherwise the request approves.
	Abort bool `json:"abort,omitempty"`
	// Step is an approve step, an install step whose pause waits, or a
	// wait's id; "" approves the only approval waiting.
	Step   string    `json:"step,omitempty"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by"` // user@host
	At     time.Time `json:"at"`
	PID    int       `json:"pid,omitempty"` // the requester's
	// Seen lists the approvals the run had published as waiting when the
	// request was made. A request left over by a run that died is applied
	// by the next run only to one of these: never to a wait its author
	// did not see.
	Seen []string `json:"seen,omitempty"`
}

// ControlReply is the run's answer to a request.
type ControlReply struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	OK bool   `json:"ok"`
	// Message says what was done ("approved install@game-b after wave 1
	// as alice@laptop") or why nothing was, and what waits instead.
	Message string `json:"message"`
	// Usage marks a request that names no step or wait of the plan.
	Usage bool `json:"usage,omitempty"`
	// Approved lists the waits the request ended.
	Approved []string  `json:"approved,omitempty"`
	At       time.Time `json:"at"`
	PID      int       `json:"pid,omitempty"` // the run's
}

// Actor names who acts from this process, for the journal and the
// events: "user@host". The user is $USER (or $LOGNAME), else the
// account's name, else the uid.
func Actor() string {
	u := currentUser()
	if strings.HasPrefix(u, "uid ") {
		if cu, err := user.Current(); err == nil && cu.Username != "" {
			u = cu.Username
		}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown-host"
	}
	return u + "@" + host
}

func controlDir(dir string) string { return filepath.Join(dir, ControlDirName) }

// newRequestID is unique on the machine and sorts by time, so that a run
// applies requests in the order they were made.
func newRequestID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%d-%s", now.UTC().UnixNano(), os.Getpid(), hex.EncodeToString(b[:]))
}

// writeAtomic writes v as masked JSON to path through a hidden temporary
// file and a rename: a reader sees the whole file or none.
func writeAtomic(path string, v any) error {
	var buf bytes.Buffer
	if err := redact.NewJSONEncoder(&buf).Encode(v); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// SubmitRequest writes r into dir's control directory for the run to
// apply, filling in its version and id. It does not check that a run holds
// the directory: the caller asks CheckFree first and watches for the answer
// with ReadReply.
func SubmitRequest(dir string, r *ControlRequest) error {
	if err := os.MkdirAll(controlDir(dir), 0o755); err != nil {
		return fmt.Errorf("create control directory: %w", err)
	}
	r.V = ControlVersion
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = r.At.UTC()
	if r.ID == "" {
		r.ID = newRequestID(r.At)
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	if err := writeAtomic(filepath.Join(controlDir(dir), r.ID+".req"), r); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	return nil
}

// WithdrawRequest takes back a request the run has not claimed. It
// reports false when the run claimed it first: an answer is then due.
func WithdrawRequest(dir, id string) (bool, error) {
	err := os.Remove(filepath.Join(controlDir(dir), id+".req"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// ReadReply returns the run's answer to request id, if it has come. The
// reply file is removed once read: it was written for this reader alone.
func ReadReply(dir, id string) (*ControlReply, bool, error) {
	path := filepath.Join(controlDir(dir), id+".reply")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var r ControlReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false, fmt.Errorf("the run's answer %s is not valid: %w", path, err)
	}
	_ = os.Remove(path)
	return &r, true, nil
}

// Claimed reports whether the run has claimed request id and not yet
// answered it.
func Claimed(dir, id string) bool {
	_, err := os.Stat(filepath.Join(controlDir(dir), id+".taken"))
	return err == nil
}

// ClaimedRequest is a request the run took, or a bad file in its place.
type ClaimedRequest struct {
	Request ControlRequest
	// Err says why the file is not a request; it is answered with it.
	Err error
}

// Inbox is the run's side of the control directory.
type Inbox struct {
	dir string // the control directory
	pid int
}

// replyKeep is how long an answer nobody collected stays: the requester
// died or gave up. Long enough for any requester still reading.
const replyKeep = time.Hour

// OpenInbox prepares dir's control directory for the run that holds dir,
// and clears what is stale: answers nobody collected within an hour and
// temporary files of writers that died.
func OpenInbox(dir string) (*Inbox, error) {
	cd := controlDir(dir)
	if err := os.MkdirAll(cd, 0o755); err != nil {
		return nil, fmt.Errorf("create control directory: %w", err)
	}
	in := &Inbox{dir: cd, pid: os.Getpid()}
	entries, err := os.ReadDir(cd)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".reply") && !strings.HasSuffix(name, ".tmp") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > replyKeep {
			_ = os.Remove(filepath.Join(cd, name))
		}
	}
	return in, nil
}

// Leftovers returns the requests an earlier run claimed and never
// answered (it died), oldest first. They stay claimed: the caller applies
// each if it still matches, and answers it.
func (in *Inbox) Leftovers() []ClaimedRequest {
	return in.read(".taken", false)
}

// Claim takes every request waiting in the directory, oldest first.
func (in *Inbox) Claim() []ClaimedRequest {
	return in.read(".req", true)
}

func (in *Inbox) read(suffix string, claim bool) []ClaimedRequest {
	entries, err := os.ReadDir(in.dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, suffix) && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []ClaimedRequest
	for _, n := range names {
		id := strings.TrimSuffix(n, suffix)
		path := filepath.Join(in.dir, n)
		if claim {
			taken := filepath.Join(in.dir, id+".taken")
			if err := os.Rename(path, taken); err != nil {
				continue // withdrawn in the meantime
			}
			path = taken
		}
		var c ClaimedRequest
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			c.Err = err
		default:
			if err := json.Unmarshal(b, &c.Request); err != nil {
				c.Err = fmt.Errorf("not a request: %v", err)
			} else if c.Request.V > ControlVersion {
				c.Err = fmt.Errorf("request version %d is newer than this rollout understands (%d)", c.Request.V, ControlVersion)
			}
		}
		c.Request.ID = id
		out = append(out, c)
	}
	return out
}

// Answer writes the reply to request id and drops the claimed request.
func (in *Inbox) Answer(id string, r ControlReply) error {
	r.V, r.ID, r.PID = ControlVersion, id, in.pid
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = r.At.UTC()
	err := writeAtomic(filepath.Join(in.dir, id+".reply"), r)
	// The request goes even when the answer could not be written: a run
	// must never apply one request twice.
	_ = os.Remove(filepath.Join(in.dir, id+".taken"))
	return err
}

// Waiting is what a run waits for now: waiting.json.
type Waiting struct {
	V       int       `json:"v"`
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Plan    string    `json:"plan"`
	Updated time.Time `json:"updated"`
	Waits   []Wait    `json:"waits"`
}

// Wait is one wait of a run in progress, with the commands that end it.
type Wait struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // approval, bake
	Step      string    `json:"step"`
	Image     string    `json:"image"`
	Wave      int       `json:"wave"` // 0-based wave a pause follows; -1 for an approve step
	Message   string    `json:"message,omitempty"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until,omitzero"`
	OnTimeout string    `json:"on_timeout,omitempty"`
	Progress  string    `json:"progress,omitempty"`
	Approve   string    `json:"approve_command,omitempty"`
	Abort     string    `json:"abort_command,omitempty"`
}

// WaitOf is the published form of an engine wait.
func WaitOf(w engine.WaitInfo) Wait {
	return Wait{ID: w.ID, Kind: string(w.Kind), Step: w.Step, Image: w.Image, Wave: w.Wave, Message: w.Message,
		Since: w.Since.UTC(), Until: utcOrZero(w.Until), OnTimeout: string(w.OnTimeout), Progress: w.Progress}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// WriteWaiting publishes what the run waits for, atomically and masked.
func WriteWaiting(dir string, w *Waiting) error {
	w.V = ControlVersion
	if w.Waits == nil {
		w.Waits = []Wait{}
	}
	return writeAtomic(filepath.Join(dir, WaitingName), w)
}

// RemoveWaiting drops waiting.json when the run ends.
func RemoveWaiting(dir string) error {
	err := os.Remove(filepath.Join(dir, WaitingName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// ReadWaiting reads what a run published as waiting. It is current only
// while that run holds the directory (CheckFree): a run that died leaves
// its last state behind.
func ReadWaiting(dir string) (*Waiting, error) {
	b, err := os.ReadFile(filepath.Join(dir, WaitingName))
	if err != nil {
		return nil, err
	}
	var w Waiting
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, WaitingName), err)
	}
	return &w, nil
}

// Holder says whether a live rollout holds dir, and what its lock file
// says about it (pid, host, start; zero while it has not written them).
func Holder(dir string) (LockInfo, bool) {
	var le *LockedError
	if err := CheckFree(dir); errors.As(err, &le) {
		return le.Holder, true
	}
	return LockInfo{}, false
}
