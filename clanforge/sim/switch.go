package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file holds the fleets and their profile switch (API §1.3, §4.15,
// §6.8).
//
// Every fleet machine hosts one game server, so "servers" and "machines" are
// the same count here (MaxMachines batches servers). A switch is, like a
// job, a pure function of its timestamps and the clock: nothing runs in the
// background and reading its status changes nothing.
//
// Life cycle of a PATCH at time t0 that has n servers to restart (those of
// the fleet not already on the profile), in batches of MaxMachines (all n
// at once without it):
//
//	[t0, t0+start)            pending     ServersPending n, ServersProcessed 0
//	each batch (switch_batch) processing  a batch's servers move to the profile at its end
//	after the last batch      complete    ServersPending 0, ServersProcessed n
//
// start and batch are durations.switch_start and durations.switch_batch,
// divided by the speed like every job duration. Timeout is not scaled: the
// Deadline is t0+Timeout exactly as sent, and at the Deadline every server
// still pending is restarted at once (complete). A PATCH whose n is 0 (the
// fleet already runs the profile) is complete at once. Scenario switches
// rules stall or fail a switch (see Scenario).

// Switch states (API §4.15). StateFailed is the simulator's own, shown only
// by the scenario's trouble: failed.
const (
	StateNotRequested = "not requested"
	StatePending      = "pending"
	StateProcessing   = "processing"
	StateComplete     = "complete"
	StateFailed       = "failed"
)

// fleet is an inventory fleet (or the invented one) with its servers.
type fleet struct {
	Fleet
	machines []*machine // fleet machines, inventory order
	sw       *fleetSwitch
}

// fleetSwitch is the latest switch of a fleet.
type fleetSwitch struct {
	profile     int64
	targets     []*machine // servers to restart, fleet order
	index       map[int64]int
	requested   time.Time
	processAt   time.Time // the end of pending
	batch       time.Duration
	size        int // servers per batch
	timeout     time.Duration
	deadline    time.Time // zero without a Timeout
	maxMachines int

	trouble   string // "" or a Trouble* value
	troubleAt time.Time
	afterDone int // servers processed when the trouble strikes
	errMsg    string
}

// view is the switch at now: its state and how many servers it restarted.
// The trouble strikes only if it comes before the Deadline; a stall then
// holds for good, past the Deadline too.
func (sw *fleetSwitch) view(now time.Time) (state string, processed int) {
	n := len(sw.targets)
	if n == 0 {
		return StateComplete, 0
	}
	if sw.trouble != "" && (sw.deadline.IsZero() || sw.troubleAt.Before(sw.deadline)) && !now.Before(sw.troubleAt) {
		switch sw.trouble {
		case TroubleStall:
			return StateProcessing, sw.afterDone
		case TroubleError:
			return TroubleError, sw.afterDone
		default:
			return StateFailed, sw.afterDone
		}
	}
	if !sw.deadline.IsZero() && !now.Before(sw.deadline) {
		return StateComplete, n
	}
	if now.Before(sw.processAt) {
		return StatePending, 0
	}
	done := n
	if sw.batch > 0 {
		done = min(int(now.Sub(sw.processAt)/sw.batch)*sw.size, n)
	}
	if done >= n {
		return StateComplete, n
	}
	return StateProcessing, done
}

// batches is how many batches the switch takes.
func (sw *fleetSwitch) batches() int {
	n := len(sw.targets)
	return (n + sw.size - 1) / sw.size
}

// inProgress reports whether a new PATCH must wait: the switch is pending or
// processing (a stalled switch processes for good).
func (sw *fleetSwitch) inProgress(now time.Time) bool {
	if sw == nil {
		return false
	}
	st, _ := sw.view(now)
	return st == StatePending || st == StateProcessing
}

// profileOf is the profile a server runs at now.
func (s *Server) profileOf(m *machine, now time.Time) int64 {
	if f := m.fleet; f != nil && f.sw != nil {
		if i, ok := f.sw.index[m.ID]; ok {
			if _, done := f.sw.view(now); i < done {
				return f.sw.profile
			}
		}
	}
	return m.profile
}

// fleetProfile is the ProfileID the status shows: the latest switch's, else
// the profile the fleet started on.
func (f *fleet) fleetProfile() int64 {
	if f.sw != nil {
		return f.sw.profile
	}
	return f.Profile
}

var reFleetID = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// buildFleets checks the inventory's fleets, puts every fleet machine in
// one (inventing DefaultFleetName when needed), settles each fleet's start
// profile and collects the known profiles. Callers are New, after images
// and machines are built.
func (s *Server) buildFleets(inv Inventory) error {
	s.fleetByID = map[string]*fleet{}
	s.profiles = map[int64]bool{}
	profileImage := map[int64]string{}
	for _, img := range s.images {
		if img.Profile < 0 {
			return fmt.Errorf("sim: image %q has a negative profile %d", img.Name, img.Profile)
		}
		if img.Profile == 0 {
			continue
		}
		if other, ok := profileImage[img.Profile]; ok {
			return fmt.Errorf("sim: images %q and %q both have profile %d (a profile runs one image)", other, img.Name, img.Profile)
		}
		profileImage[img.Profile] = img.Name
		s.profiles[img.Profile] = true
	}
	names := map[string]bool{}
	for i, fl := range inv.Fleets {
		if fl.Name == "" || !reFleetID.MatchString(fl.ID) {
			return fmt.Errorf("sim: fleet %d needs a name and an id usable as a path segment (a UUID), got %q, %q", i, fl.Name, fl.ID)
		}
		if names[fl.Name] || s.fleetByID[fl.ID] != nil {
			return fmt.Errorf("sim: fleet %q (id %s) is listed twice", fl.Name, fl.ID)
		}
		if fl.Profile < 0 {
			return fmt.Errorf("sim: fleet %q has a negative profile %d", fl.Name, fl.Profile)
		}
		names[fl.Name] = true
		f := &fleet{Fleet: fl}
		s.fleets = append(s.fleets, f)
		s.fleetByID[fl.ID] = f
	}
	var invented *fleet
	for _, m := range s.machines {
		if m.Fleet != "" && s.fleetByID[m.Fleet] == nil {
			return fmt.Errorf("sim: machine %q names unknown fleet %q", m.Name, m.Fleet)
		}
		if m.Build {
			// A build machine serves no players: in no fleet.
			continue
		}
		var f *fleet
		switch {
		case m.Fleet != "":
			f = s.fleetByID[m.Fleet]
		case len(inv.Fleets) == 1:
			f = s.fleets[0]
		default:
			if invented == nil {
				id := DefaultFleetID(s.asid)
				if names[DefaultFleetName] || s.fleetByID[id] != nil {
					return fmt.Errorf("sim: machine %q has no fleet and the fleet the simulator would invent for it (%q) clashes with an inventory fleet", m.Name, DefaultFleetName)
				}
				invented = &fleet{Fleet: Fleet{Name: DefaultFleetName, ID: id}}
			}
			f = invented
		}
		m.fleet = f
		f.machines = append(f.machines, m)
	}
	if invented != nil {
		s.fleets = append(s.fleets, invented)
		s.fleetByID[invented.ID] = invented
	}
	for _, name := range sortedKeys(s.scn.FleetProfiles) {
		if s.fleetByName(name) == nil {
			return fmt.Errorf("sim: scenario fleet_profiles names unknown fleet %q", name)
		}
	}
	for _, f := range s.fleets {
		if p := s.scn.FleetProfiles[f.Name]; p > 0 {
			f.Profile = p
		}
		if f.Profile == 0 {
			f.Profile = s.firstProfile(f)
		}
		if f.Profile != 0 {
			s.profiles[f.Profile] = true
		}
		for _, m := range f.machines {
			m.profile = f.Profile
		}
	}
	for i, t := range s.scn.Switches {
		if t.Fleet != "" && s.fleetByName(t.Fleet) == nil {
			return fmt.Errorf("sim: scenario switches[%d] names unknown fleet %q", i, t.Fleet)
		}
		if t.Profile != 0 && !s.profiles[t.Profile] {
			return fmt.Errorf("sim: scenario switches[%d] names unknown profile %d", i, t.Profile)
		}
	}
	s.switchTroubleUsed = make([]int, len(s.scn.Switches))
	return nil
}

// firstProfile is the profile of the first image (inventory order) that has
// one and that a machine of the fleet carries.
func (s *Server) firstProfile(f *fleet) int64 {
	for _, img := range s.images {
		if img.Profile == 0 {
			continue
		}
		for _, m := range f.machines {
			if m.images[img.ID] {
				return img.Profile
			}
		}
	}
	return 0
}

func (s *Server) fleetByName(name string) *fleet {
	for _, f := range s.fleets {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// switchBody is a decoded PATCH body.
type switchBody struct {
	ProfileID   int64
	HasProfile  bool
	Timeout     time.Duration
	MaxMachines int
}

// maxSwitchBody bounds the PATCH body a request may carry.
const maxSwitchBody = 1 << 16

var reJSONPositive = regexp.MustCompile(`^[1-9][0-9]*$`)

// parseSwitchBody decodes a PATCH body. Strict, it refuses what a strict
// reading of API §4.15 refuses: anything but one JSON object, a key other
// than ProfileID, Timeout and MaxMachines (case included), a repeated key,
// a value of the wrong JSON type or out of range, a missing ProfileID.
// Lenient, it reads what a forgiving server would: keys in any case (the
// last repeat wins), unknown keys ignored, numbers as JSON strings,
// Timeout as seconds, a MaxMachines or Timeout of 0 as absent.
func parseSwitchBody(body []byte, strict bool) (switchBody, error) {
	var out switchBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, errors.New("the body is empty: want a JSON object with ProfileID")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out, errors.New("the body is not a JSON object")
	}
	seen := map[string]bool{}
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("the body is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, fmt.Errorf("the body is not valid JSON: %v", err)
		}
		name := key
		if !strict {
			for _, k := range []string{"ProfileID", "Timeout", "MaxMachines"} {
				if strings.EqualFold(k, key) {
					name = k
				}
			}
		}
		switch name {
		case "ProfileID", "Timeout", "MaxMachines":
		default:
			if strict {
				return out, fmt.Errorf("unknown key %q: the body takes ProfileID, Timeout and MaxMachines", key)
			}
			continue
		}
		if strict && seen[name] {
			return out, fmt.Errorf("key %s is given twice", name)
		}
		seen[name] = true
		vals[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return out, fmt.Errorf("the body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return out, errors.New("the body has data after its JSON object")
	}

	if raw, ok := vals["ProfileID"]; ok {
		n, err := jsonInt(raw, strict)
		if err != nil || n <= 0 {
			return out, fmt.Errorf("ProfileID %s: want a positive integer", raw)
		}
		out.ProfileID, out.HasProfile = n, true
	}
	if raw, ok := vals["Timeout"]; ok {
		d, err := jsonDuration(raw, strict)
		if err != nil {
			return out, err
		}
		out.Timeout = d
	}
	if raw, ok := vals["MaxMachines"]; ok {
		n, err := jsonInt(raw, strict)
		if err != nil || n < 0 || (strict && n == 0) || n > 1<<31 {
			return out, fmt.Errorf("MaxMachines %s: want an integer greater than 0", raw)
		}
		out.MaxMachines = int(n)
	}
	if !out.HasProfile {
		return out, errors.New("ProfileID is required")
	}
	return out, nil
}

// jsonInt reads a JSON integer; lenient, a numeric string too.
func jsonInt(raw json.RawMessage, strict bool) (int64, error) {
	v := strings.TrimSpace(string(raw))
	if strict {
		if !reJSONPositive.MatchString(v) && v != "0" {
			return 0, errors.New("not a JSON integer")
		}
	} else if uq, err := strconv.Unquote(v); err == nil {
		v = strings.TrimSpace(uq)
	}
	return strconv.ParseInt(v, 10, 64)
}

// jsonDuration reads a Go duration string ("60s", "2h"); lenient, also a
// number of seconds, and 0 (no timeout).
func jsonDuration(raw json.RawMessage, strict bool) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		if !strict {
			if f, ferr := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64); ferr == nil && f >= 0 {
				return time.Duration(f * float64(time.Second)), nil
			}
		}
		return 0, fmt.Errorf("Timeout %s: want a duration string such as \"60s\" or \"2h\"", raw)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (strict && d == 0) {
		return 0, fmt.Errorf("Timeout %q: want a positive duration such as \"60s\" or \"2h\"", s)
	}
	return d, nil
}

// switchStatus renders a fleet's switch status: the answer of GET and of
// PATCH. A switch that the scenario made fail with trouble: error answers
// with the error envelope instead.
func (s *Server) switchStatus(f *fleet, now time.Time) (any, *apiError) {
	body := map[string]any{
		"ServersPending":   0,
		"ServersProcessed": 0,
		"ProfileID":        f.fleetProfile(),
		"State":            StateNotRequested,
	}
	sw := f.sw
	if sw == nil {
		return body, nil
	}
	st, done := sw.view(now)
	if st == TroubleError {
		return nil, bizErr("profile switch failed: %s", sw.errMsg)
	}
	body["State"] = st
	body["ServersProcessed"] = done
	body["ServersPending"] = len(sw.targets) - done
	if !sw.deadline.IsZero() {
		body["Deadline"] = sw.deadline.UTC().Format(time.RFC3339)
	}
	return body, nil
}

func (s *Server) lookupFleet(rt route) (*fleet, *apiError) {
	f := s.fleetByID[rt.fleetID]
	if f == nil {
		return nil, notFound("fleet not found: %s", rt.fleetID)
	}
	return f, nil
}

// switchPatch starts a switch. Refused, with nothing changed: an unknown
// fleet (404), a body that does not decode, an unknown profile, and a fleet
// whose switch is still pending or processing ("profile switch in
// progress": the simulator does not queue or merge switches, so a resent
// PATCH shows as a refusal rather than as a silent second switch).
func (s *Server) switchPatch(rt route, rc *reqCtx, now time.Time) (any, *apiError) {
	f, ae := s.lookupFleet(rt)
	if ae != nil {
		return nil, ae
	}
	if rc.bodyErr != nil {
		return nil, bizErr("invalid switchprofile body: %s", rc.bodyErr.Error())
	}
	b, err := parseSwitchBody(rc.body, false)
	if err != nil {
		return nil, bizErr("invalid switchprofile body: %s", err.Error())
	}
	if !s.profiles[b.ProfileID] {
		return nil, bizErr("profile not found: %d", b.ProfileID)
	}
	if f.sw.inProgress(now) {
		st, _ := f.sw.view(now)
		return nil, bizErr("profile switch in progress for fleet %s (%s to profile %d)", f.ID, st, f.sw.profile)
	}
	// Settle the servers the previous switch restarted.
	if old := f.sw; old != nil {
		_, done := old.view(now)
		for _, m := range old.targets[:done] {
			m.profile = old.profile
		}
	}
	sw := &fleetSwitch{
		profile: b.ProfileID, index: map[int64]int{}, requested: now,
		processAt: now.Add(s.scaled(s.dur.SwitchStart)), batch: s.scaled(s.dur.SwitchBatch),
		timeout: b.Timeout, maxMachines: b.MaxMachines,
	}
	for _, m := range f.machines {
		if m.profile != b.ProfileID {
			sw.index[m.ID] = len(sw.targets)
			sw.targets = append(sw.targets, m)
		}
	}
	sw.size = len(sw.targets)
	if b.MaxMachines > 0 && b.MaxMachines < sw.size {
		sw.size = b.MaxMachines
	}
	if b.Timeout > 0 {
		sw.deadline = now.Add(b.Timeout)
	}
	if len(sw.targets) > 0 {
		s.applyTrouble(f, sw)
	}
	f.sw = sw
	rc.applied = true
	return s.switchStatus(f, now)
}

// applyTrouble gives a new switch the first matching scenario trouble.
func (s *Server) applyTrouble(f *fleet, sw *fleetSwitch) {
	for i, t := range s.scn.Switches {
		if t.Fleet != "" && t.Fleet != f.Name {
			continue
		}
		if t.Profile != 0 && t.Profile != sw.profile {
			continue
		}
		if t.Times > 0 {
			if s.switchTroubleUsed[i] >= t.Times {
				continue
			}
			s.switchTroubleUsed[i]++
		}
		// The trouble strikes before the last batch, so that it always
		// shows (unless the Deadline comes first).
		after := min(t.After, sw.batches()-1)
		sw.trouble = t.Trouble
		sw.troubleAt = sw.processAt.Add(time.Duration(after) * sw.batch)
		sw.afterDone = min(after*sw.size, len(sw.targets))
		sw.errMsg = t.Error
		if sw.errMsg == "" {
			sw.errMsg = "injected switch failure"
		}
		return
	}
}

func (s *Server) switchGet(rt route, now time.Time) (any, *apiError) {
	f, ae := s.lookupFleet(rt)
	if ae != nil {
		return nil, ae
	}
	return s.switchStatus(f, now)
}

// Switch is one PATCH of the profile switch as the simulator received it,
// whatever became of it.
type Switch struct {
	// Request is the PATCH's entry in the request log (status, fault,
	// dropped answer, strict refusal).
	Request
	FleetID string
	// Fleet is the fleet's name ("" for an unknown fleet).
	Fleet       string
	ContentType string
	Body        string
	// ProfileID, Timeout and MaxMachines are read from the body leniently
	// (zero when absent or unreadable).
	ProfileID   int64
	Timeout     time.Duration
	MaxMachines int
	// Applied is true when the PATCH started a switch (or completed one at
	// once); a refused or faulted PATCH changed nothing.
	Applied bool
}

// Switches returns every PATCH of the profile switch, in arrival order.
func (s *Server) Switches() []Switch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Switch(nil), s.switches...)
}

// FleetInfo is a snapshot of one fleet and its latest switch.
type FleetInfo struct {
	Name string
	ID   string
	// Profile is the ProfileID its switch status shows: the latest
	// switch's, else the profile it started on.
	Profile int64
	// State, ServersPending and ServersProcessed are the switch status
	// (State may be StateFailed, or "error" for trouble: error).
	State            string
	ServersPending   int
	ServersProcessed int
	Deadline         time.Time // zero without a Timeout
	// Machines are the fleet's machine ids, inventory order.
	Machines []int64
}

// Fleets returns every fleet (the invented one last) at the clock's
// current time.
func (s *Server) Fleets() []FleetInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.tick()
	s.advance(now)
	var out []FleetInfo
	for _, f := range s.fleets {
		fi := FleetInfo{Name: f.Name, ID: f.ID, Profile: f.fleetProfile(), State: StateNotRequested}
		if sw := f.sw; sw != nil {
			st, done := sw.view(now)
			fi.State, fi.ServersProcessed, fi.ServersPending, fi.Deadline = st, done, len(sw.targets)-done, sw.deadline
		}
		for _, m := range f.machines {
			fi.Machines = append(fi.Machines, m.ID)
		}
		out = append(out, fi)
	}
	return out
}

// MachineProfile returns the profile a fleet machine's server runs now (0
// for a build machine or an unknown id).
func (s *Server) MachineProfile(machineID int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machineByID[machineID]
	if m == nil || m.fleet == nil {
		return 0
	}
	return s.profileOf(m, s.tick())
}
