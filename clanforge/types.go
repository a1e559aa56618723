package clanforge

import (
	"strings"
	"time"
)

// JobState is the numeric jobstateid of a Clanforge job. The client decides a
// job's outcome from this value, never from the response's success flag,
// because success only says that the request itself worked (API §7 #2).
type JobState int

// Job states, exactly as documented in API §3.2.
const (
	StateUnknown   JobState = 0
	StateCreated   JobState = 1
	StatePending   JobState = 2
	StateQueued    JobState = 3
	StateRunning   JobState = 4
	StateCompleted JobState = 5
	StateFailed    JobState = 6
	StateSquashed  JobState = 7
)

// Terminal reports whether a job in this state will not change any more.
func (s JobState) Terminal() bool {
	return s == StateCompleted || s == StateFailed || s == StateSquashed
}

// String returns the documented state name.
func (s JobState) String() string {
	switch s {
	case StateCreated:
		return "Created"
	case StatePending:
		return "Pending"
	case StateQueued:
		return "Queued"
	case StateRunning:
		return "Running"
	case StateCompleted:
		return "Completed"
	case StateFailed:
		return "Failed"
	case StateSquashed:
		return "Squashed"
	}
	return "Unknown"
}

// Job holds the job fields every long-running image operation reports
// (API §3.1). Timestamps that the API leaves unset are the zero time.
type Job struct {
	// ID is the job's own id: updateid, diffid, imageversionid,
	// uninstalljobid, jobid, versionmirrorid or machinejobid.
	ID        int64
	Created   time.Time
	Start     time.Time
	Updated   time.Time
	ETA       time.Time
	Progress  int
	State     JobState
	StateName string
	Failed    int
	Error     string
}

// Diff is a difference analysis with its file lists. The lists hold paths
// only, sorted, because the file objects are undocumented (API §7 #6).
type Diff struct {
	Job
	Added    []string
	Modified []string
	Removed  []string
}

// Changed is the number of files the diff adds, modifies or removes.
func (d *Diff) Changed() int { return len(d.Added) + len(d.Modified) + len(d.Removed) }

// VersionOptions are the parameters of imageversion/create besides diffid.
type VersionOptions struct {
	Restart   bool
	Full      bool
	GameBuild string // empty: not sent
	Force     bool
	// InstallNow sends install_at=NOW(); false omits install_at so that the
	// generated install jobs wait in Pending until they are queued.
	InstallNow        bool
	DisableTimeout    int     // minutes; 0: not sent
	DisablePercentage float64 // 0: not sent
}

// Install is one entry of imageinstall/status (API §4.10).
type Install struct {
	Job
	Mirroring bool
	Mirror    string
	// Machine and Location are ids; the docs leave their type open (API
	// §7 #17), so a non-numeric value lands in MachineName/LocationName.
	Machine         int64
	MachineName     string
	Location        int64
	LocationName    string
	ImagePath       string
	TargetVersionID int64
	InstallAt       time.Time
	Restart         bool
}

// QueueResult is the answer of imageinstall/<jobid>/queue.
type QueueResult struct {
	Job
	VersionMirrorID  int64 // mirror jobs
	MachineJobID     int64 // machine jobs
	InstallsSquashed int   // machine jobs
	// AlreadyQueued is set when the call was answered "already queued" or its
	// lost answer was settled by reading imageinstall/status: either way the
	// job is queued and nothing more needs to be sent.
	AlreadyQueued bool
}

// RejectResult is the answer of imagediff/<diffid>/reject.
type RejectResult struct {
	DiffID int64
	// Uninstall is the reinstall job started with reinstall=1; nil otherwise,
	// or when the answer was lost and the rejection was settled from
	// image/options (the uninstall job id is then unknowable).
	Uninstall *Job
}

// Counters are the three v2 rollout counters.
type Counters struct {
	Pending   int `json:"pending_machines"`
	Failed    int `json:"failed_machines"`
	Completed int `json:"completed_machines"`
}

// RegionStatus is one region of a fleet in the v2 image status.
type RegionStatus struct {
	Name string `json:"name"`
	Counters
}

// FleetStatus is one fleet in the v2 image status.
type FleetStatus struct {
	Regions map[string]RegionStatus `json:"regions"`
	Counters
}

// ImageStatus is the v2 image status (API §4.12).
type ImageStatus struct {
	Counters
	Fleets map[string]FleetStatus
}

// NamedID is an {id, name} pair from image/options.
type NamedID struct {
	ID   int64
	Name string
}

// ImageOptions is the answer of image/options (API §4.13).
type ImageOptions struct {
	DiffID    int64 // diff locking the image; 0: none
	UpdateID  int64 // update locking the image; 0: none
	UpdateURL string
	Games     []NamedID
	Images    []NamedID
	Machines  []NamedID
}

// SwitchOptions are the body of a profile switch (API §4.15).
type SwitchOptions struct {
	ProfileID int64
	// Timeout, when set, force-restarts the servers left when it expires;
	// 0: not sent.
	Timeout time.Duration
	// MaxMachines, when set, is the size of each restart batch; 0: not
	// sent (all empty servers at once).
	MaxMachines int
}

// SwitchState is the State of a profile switch, lower-cased.
type SwitchState string

// The documented switch states (API §4.15).
const (
	SwitchNotRequested SwitchState = "not requested"
	SwitchPending      SwitchState = "pending"
	SwitchProcessing   SwitchState = "processing"
	SwitchComplete     SwitchState = "complete"
)

// Requested reports whether the state belongs to a switch that was asked
// for: pending, processing or complete.
func (s SwitchState) Requested() bool {
	return s == SwitchPending || s == SwitchProcessing || s == SwitchComplete
}

// ProfileSwitch is the answer of the profile switch PATCH and GET.
type ProfileSwitch struct {
	ServersPending   int
	ServersProcessed int
	ProfileID        int64
	State            SwitchState
	// Deadline is when the rest is forced; zero when no Timeout was set.
	Deadline time.Time
}

// switchRequest is the PATCH body; the optional fields are left out when
// unset, as the page documents them.
type switchRequest struct {
	ProfileID   int64  `json:"ProfileID"`
	Timeout     string `json:"Timeout,omitempty"`
	MaxMachines int    `json:"MaxMachines,omitempty"`
}

func switchBody(opt SwitchOptions) switchRequest {
	b := switchRequest{ProfileID: opt.ProfileID, MaxMachines: opt.MaxMachines}
	if opt.Timeout > 0 {
		b.Timeout = CompactDuration(opt.Timeout)
	}
	return b
}

// CompactDuration writes a duration as the page's examples do ("60s",
// "2h"): Go's form without its zero tails, "2h0m0s" -> "2h". It is how a
// switch's Timeout is sent, so a description of the switch says it the
// same way.
func CompactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
