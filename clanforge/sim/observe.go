package sim

import (
	"sort"
	"time"
)

// Event is one entry of the job timeline. Events are appended in time
// order; Seq orders events with the same Time. Event is one of:
//
//	created    a job was created (by a request, or an install job by its version)
//	queued     the job entered Queued (on its own or through imageinstall/queue)
//	started    the job entered Running
//	completed  the job ended in Completed
//	failed     the job ended in Failed (Detail is joberror)
//	squashed   an install job was superseded before it started (Detail names the job)
//	retried    a diff (or update) was reset to Created by a retry
//	rejected   a diff was rejected (Detail says whether a reinstall was started)
//	consumed   a diff was accepted by imageversion/create (Detail is the version id)
//
// Pending is not recorded: it is a cosmetic phase between created and queued.
type Event struct {
	Seq       int
	Time      time.Time
	Kind      Kind
	JobID     int64
	ImageID   int64
	Image     string
	MachineID int64  // 0 for version and mirror jobs
	Machine   string // "" for version and mirror jobs
	Location  string // region of mirror and install jobs
	Event     string
	Detail    string
}

// Request is one entry of the request log.
type Request struct {
	Seq  int
	Time time.Time
	// Endpoint is the endpoint name (EPUpdateCreate, ...), EPUnknown for a
	// path that matched none.
	Endpoint string
	Path     string
	// Mutating is true for create, retry, reject and queue calls, whatever
	// their outcome.
	Mutating bool
	Status   int
	// Fault is the injected fault: "", "drop", "rate_limit" or "server_error".
	Fault string
	// Dropped is true when the work was done but the answer was not sent.
	Dropped bool
	// ErrorMessage is the error_message of an error answer.
	ErrorMessage string
	// Strict is why strict mode refused the request (Scenario.Strict); ""
	// when it did not. Such a request did nothing.
	Strict string
}

func (s *Server) record(at time.Time, j *job, ev, detail string) {
	e := Event{
		Seq: len(s.timeline) + 1, Time: at, Kind: j.kind, JobID: j.id,
		ImageID: j.image.ID, Image: j.image.Name, Event: ev, Detail: detail,
	}
	if j.machine != nil {
		e.MachineID, e.Machine = j.machine.ID, j.machine.Name
	}
	if j.loc != nil {
		e.Location = j.loc.name
	}
	s.timeline = append(s.timeline, e)
}

// Timeline returns a copy of the job timeline up to the clock's current time.
func (s *Server) Timeline() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	return append([]Event(nil), s.timeline...)
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// StrictRefusals returns the requests strict mode refused (Scenario.Strict),
// in arrival order. A client that keeps to the documented API gets none.
func (s *Server) StrictRefusals() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Strict != "" {
			out = append(out, r)
		}
	}
	return out
}

// JobInfo is a snapshot of one job.
type JobInfo struct {
	Kind          Kind
	ID            int64
	ImageID       int64
	MachineID     int64 // 0 when the job has no machine
	Location      string
	State         int
	StateName     string
	Progress      int
	Error         string
	Failed        int
	TargetVersion int64 // install and mirror jobs
	Held          bool  // an install job waiting to be queued
	Created       time.Time
	Queued        time.Time
	Started       time.Time
	Ended         time.Time // zero until Completed or Failed
}

// Jobs returns a snapshot of every job at the clock's current time, sorted
// by kind and id.
func (s *Server) Jobs() []JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.tick()
	s.advance(now)
	var out []JobInfo
	for _, k := range allKinds {
		for _, j := range s.jobs[k] {
			out = append(out, s.jobInfo(j, now))
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Job returns one job's snapshot.
func (s *Server) Job(kind Kind, id int64) (JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.tick()
	s.advance(now)
	j, ok := s.jobs[kind][id]
	if !ok {
		return JobInfo{}, false
	}
	return s.jobInfo(j, now), true
}

func (s *Server) jobInfo(j *job, now time.Time) JobInfo {
	st := j.stateAt(now)
	ji := JobInfo{
		Kind: j.kind, ID: j.id, ImageID: j.image.ID, MachineID: j.machine.idOr0(),
		State: st, StateName: stateNames[st], Progress: j.progressAt(now),
		Failed: j.failed, Held: j.held && (st == stCreated || st == stPending),
		Created: j.created, Queued: j.queuedAt, Started: j.startAt,
	}
	if st == stFailed {
		ji.Error = j.errMsg
	}
	if st == stCompleted || st == stFailed {
		ji.Ended = j.endAt
	}
	if j.loc != nil {
		ji.Location = j.loc.name
	}
	if j.target != nil {
		ji.TargetVersion = j.target.id
	}
	return ji
}

// Lock is the holder of an image lock.
type Lock struct {
	DiffID   int64 // 0 when no outstanding diff
	UpdateID int64 // 0 when no update in progress
}

// Locks returns the current lock holders by image id (images without a lock
// are left out).
func (s *Server) Locks() map[int64]Lock {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	out := map[int64]Lock{}
	for _, img := range s.images {
		var l Lock
		if img.openDiff != nil {
			l.DiffID = img.openDiff.id
		}
		if img.activeUpdate != nil {
			l.UpdateID = img.activeUpdate.id
		}
		if l != (Lock{}) {
			out[img.ID] = l
		}
	}
	return out
}

// LatestVersion returns the id of the image's latest version (0 for an
// unknown image).
func (s *Server) LatestVersion(imageID int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	if img := s.imageByID[imageID]; img != nil {
		return img.latest.id
	}
	return 0
}

// InstalledVersion returns the version a fleet machine has of an image (0
// when unknown or a build machine).
func (s *Server) InstalledVersion(machineID, imageID int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	if v := s.installed[mkey{machineID, imageID}]; v != nil {
		return v.id
	}
	return 0
}

// MachineFiles returns the paths a machine holds of an image, sorted.
func (s *Server) MachineFiles(machineID, imageID int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	m, img := s.machineByID[machineID], s.imageByID[imageID]
	if m == nil || img == nil {
		return nil
	}
	return s.filesOn(m, img).paths()
}

// GameBuild returns the game build label last set by a completed version of
// the image (game_build).
func (s *Server) GameBuild(imageID int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.tick())
	if img := s.imageByID[imageID]; img != nil {
		return img.gameBuild
	}
	return ""
}

// SetAllocations turns active allocations on an image on or off (see force
// in imageversion/create).
func (s *Server) SetAllocations(imageID int64, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if img := s.imageByID[imageID]; img != nil {
		img.allocated = active
	}
}
