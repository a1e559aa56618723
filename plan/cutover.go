package plan

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The additions for cut-over and control (still format 1): images'
// profiles, fleets, machines' fleet, and the keys of ready, approve and
// switch steps and of an install's pause_after and max_failures_per. Plans
// without them mean what they meant before.

// imageProfile checks an image's profile: a positive id that no other
// image has, since a switch to a profile must tell which image the fleet
// then runs.
func (l *loader) imageProfile(ri *rawImage, img *Image, byProfile map[int64]*Image) {
	if !ri.Profile.Set {
		if ri.Profile.Given {
			l.badProfile[img] = true
		}
		return
	}
	switch prev := byProfile[ri.Profile.V]; {
	case ri.Profile.V < 1:
		l.errNode(ri.Profile.node, "", "image profile must be a positive fleet profile id")
		l.badProfile[img] = true
	case prev != nil:
		l.errNode(ri.Profile.node, "", "profile %d is already the profile of image %q (line %d): a profile runs one image", ri.Profile.V, prev.Name, prev.Pos.Line)
		l.badProfile[img] = true
	default:
		img.Profile = ri.Profile.V
		byProfile[img.Profile] = img
	}
}

// fleetID matches a fleet's UUID. The id goes into the path of the
// profile switch (/cfp/v2/fleet/<id>/switchprofile), so nothing else is
// accepted.
var fleetID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// fleets checks the plan's fleets: names and ids unique, ids UUIDs.
func (l *loader) fleets(rp *rawPlan, p *Plan) {
	if rp.have["fleets"] && len(rp.Fleets) == 0 {
		l.errNode(rp.FleetsNode, "leave fleets out when the plan switches no fleet", "fleets must list at least one fleet")
	}
	byName := map[string]*Fleet{}
	byID := map[string]*Fleet{}
	for _, rf := range rp.Fleets {
		if !rf.Name.Set {
			continue
		}
		f := &Fleet{Name: rf.Name.V, ID: rf.ID.V, Pos: rf.Pos}
		if prev := byName[f.Name]; prev != nil {
			l.errNode(rf.Name.node, "", "duplicate fleet %q (first defined on line %d)", f.Name, prev.Pos.Line)
			continue
		}
		if !validName(f.Name) {
			l.errNode(rf.Name.node, "", "fleet name %q must be non-empty and contain no spaces, / or @", f.Name)
		}
		if rf.ID.Set {
			if !fleetID.MatchString(f.ID) {
				l.errNode(rf.ID.node, "", "fleet id must be the fleet's UUID, like c0a3e2a1-6955-415c-b1d4-af9199833e6a, not %q", f.ID)
			} else if prev := byID[strings.ToLower(f.ID)]; prev != nil {
				l.errNode(rf.ID.node, "", "fleet id %s is already used by fleet %q (line %d)", f.ID, prev.Name, prev.Pos.Line)
			}
			byID[strings.ToLower(f.ID)] = f
		}
		byName[f.Name] = f
		p.Fleets = append(p.Fleets, f)
	}
}

// fleetNames lists the plan's fleet names, for suggestions.
func fleetNames(p *Plan) []string {
	names := make([]string, 0, len(p.Fleets))
	for _, f := range p.Fleets {
		names = append(names, f.Name)
	}
	return names
}

// fleetByName finds a fleet of the plan by name, or reports that there is
// none (what says what names it, for the message).
func (l *loader) fleetByName(p *Plan, name pv[string], what string) *Fleet {
	for _, f := range p.Fleets {
		if f.Name == name.V {
			return f
		}
	}
	if len(p.Fleets) == 0 {
		l.errNode(name.node, "add a fleets list of {name, id}", "%s names fleet %q, but the plan has no fleets", what, name.V)
	} else {
		l.errNode(name.node, DidYouMean(name.V, fleetNames(p)), "%s names unknown fleet %q (the plan's fleets: %s)", what, name.V, strings.Join(fleetNames(p), ", "))
	}
	return nil
}

// machineFleet gives m the fleet it names, or the plan's only fleet.
func (l *loader) machineFleet(rm *rawMachine, m *Machine, p *Plan) {
	switch {
	case rm.Fleet.Set:
		m.Fleet = l.fleetByName(p, rm.Fleet, fmt.Sprintf("machine %q", m.Name))
	case len(p.Fleets) == 1:
		m.Fleet = p.Fleets[0]
	}
}

// maxFailuresPer checks max_failures_per: the scope max_failures counts
// in, all the step's instances (step, the default) or each image's.
func (l *loader) maxFailuresPer(rs *rawStep, s *Step) {
	if !rs.MaxFailuresPer.Set {
		return
	}
	if !rs.MaxFailures.Given {
		l.errNode(rs.MaxFailuresPer.node, "add max_failures, or remove max_failures_per", "max_failures_per says how max_failures counts, but the step has no max_failures")
		return
	}
	s.MaxFailuresPerImage = rs.MaxFailuresPer.V == "image"
}

// pauseAfter checks an install's pause_after: it needs waves, and has at
// most one entry per wave boundary.
func (l *loader) pauseAfter(rs *rawStep, s *Step) {
	if !rs.PauseAfterSet.Set {
		return
	}
	switch {
	case s.Mirroring:
		l.errNode(rs.PauseAfterSet.node, "", "pause_after applies to machine installs with waves (mirroring: false), not to a mirroring install")
		return
	case !rs.WavesSet.Set:
		l.errNode(rs.PauseAfterSet.node, "add waves, e.g. waves: [1, \"100%\"]", "pause_after pauses between waves, but the step has no waves")
		return
	}
	ok := true
	for i, p := range rs.PauseAfter {
		if !p.Set {
			ok = false
			continue
		}
		if n := len(rs.Waves); i >= n-1 && n > 0 {
			l.errNode(p.node, "remove it: a pause follows a wave only when another wave comes after it",
				"pause_after entry %d would follow wave %d of %d, the last one: pause_after has at most one entry per wave boundary (%d here)", i+1, i+1, n, n-1)
			ok = false
			break
		}
		s.PauseAfter = append(s.PauseAfter, p.V)
	}
	if !ok {
		s.PauseAfter = nil
	}
}

// readyKeys checks a ready step's fleets (until and fail_if are compiled
// with the step's scope during expansion).
func (l *loader) readyKeys(rs *rawStep, s *Step, p *Plan) {
	if s.Type == TypeReady {
		s.Fleets = l.stepFleets(rs, s, p)
	}
}

// approveKeys interpolates an approve step's message and sets its
// on_timeout (abort unless it says continue).
func (l *loader) approveKeys(rs *rawStep, s *Step, vs *varState) {
	if v, ok := l.interpolate(rs.Message, "message", vs); ok {
		s.Message = v
	}
	if s.Type != TypeApprove {
		return
	}
	s.OnTimeout = OnTimeoutAbort
	if rs.OnTimeout.Set {
		s.OnTimeout = OnTimeout(rs.OnTimeout.V)
	}
}

// switchKeys checks a switch step: exactly one of to (an image with a
// profile) and profile, its fleets (default: all; the plan must have some),
// max_machines and force_after.
func (l *loader) switchKeys(rs *rawStep, s *Step, vs *varState, p *Plan) {
	if s.Type != TypeSwitch {
		return
	}
	switch {
	case rs.To.Given && rs.Profile.Given:
		l.errNode(rs.Profile.node, "remove profile to switch to the profile of image to, or remove to", "a switch step takes to (an image) or profile (a profile id), not both")
	case !rs.To.Given && !rs.Profile.Given:
		l.errAt(s.Pos, 1, "add to: <image name> (an image with a profile) or profile: <profile id>", "switch step %q needs to (the image whose profile the fleets switch to) or profile (a profile id)", s.Name)
	case rs.To.Set:
		s.To = l.switchTo(rs, s, vs, p)
	case rs.Profile.Set:
		if rs.Profile.V < 1 {
			l.errNode(rs.Profile.node, "", "profile must be a positive fleet profile id")
		} else {
			s.Profile = rs.Profile.V
		}
	}
	if len(p.Fleets) == 0 && !rs.FleetsSet.Set {
		l.errAt(s.Pos, 1, "add a fleets list of {name, id} to the plan", "switch step %q switches fleets, but the plan has no fleets", s.Name)
	}
	s.Fleets = l.stepFleets(rs, s, p)
	if rs.MaxMachines.Set {
		if rs.MaxMachines.V < 1 || rs.MaxMachines.V > math.MaxInt32 {
			l.errNode(rs.MaxMachines.node, "", "max_machines must be at least 1 (leave it out to let Clanforge choose)")
		} else {
			s.MaxMachines = int(rs.MaxMachines.V)
		}
	}
	if rs.ForceAfter.Set {
		d, err := time.ParseDuration(rs.ForceAfter.V)
		switch {
		case err != nil:
			l.errNode(rs.ForceAfter.node, "", "force_after must be a Go duration like 30m or 2h")
		case d <= 0:
			l.errNode(rs.ForceAfter.node, "", "force_after must be positive")
		default:
			s.ForceAfter = d
		}
	}
}

// switchTo finds the image a switch's to names; it must have a profile.
func (l *loader) switchTo(rs *rawStep, s *Step, vs *varState, p *Plan) *Image {
	v, ok := l.interpolate(rs.To, "to", vs)
	if !ok {
		return nil
	}
	var names []string
	for _, img := range p.Images {
		names = append(names, img.Name)
		if img.Name != v.Resolved {
			continue
		}
		if img.Profile == 0 {
			if l.badProfile[img] {
				return nil // its profile is reported
			}
			l.errNode(rs.To.node, fmt.Sprintf("add profile: <id> to image %s (line %d)", img.Name, img.Pos.Line),
				"switch step %q switches to image %q, which has no profile: a switch needs images[].profile", s.Name, img.Name)
			return nil
		}
		return img
	}
	if !l.partialTargets {
		l.errNode(rs.To.node, DidYouMean(v.Resolved, names), "switch step %q: to names unknown image %q (the plan's images: %s)", s.Name, v.Display, strings.Join(names, ", "))
	}
	return nil
}

// stepFleets resolves a ready or switch step's fleets: those it names, or
// every fleet of the plan.
func (l *loader) stepFleets(rs *rawStep, s *Step, p *Plan) []*Fleet {
	if !rs.FleetsSet.Set {
		return p.Fleets
	}
	if len(rs.Fleets) == 0 {
		l.errNode(rs.FleetsSet.node, "leave fleets out for every fleet of the plan", "fleets must name at least one fleet")
		return nil
	}
	var out []*Fleet
	for _, name := range rs.Fleets {
		if !name.Set {
			continue
		}
		f := l.fleetByName(p, name, fmt.Sprintf("step %q", s.Name))
		switch {
		case f == nil:
		case slices.Contains(out, f):
			l.errNode(name.node, "", "step %q lists fleet %q twice", s.Name, f.Name)
		default:
			out = append(out, f)
		}
	}
	return out
}

// switchImage is the image a switch step's instances belong to: the image
// to names, else the image whose profile is the step's profile, else the
// plan's first image (a profile no image of the plan runs).
func switchImage(p *Plan, s *Step) *Image {
	if s.To != nil {
		return s.To
	}
	for _, img := range p.Images {
		if s.Profile != 0 && img.Profile == s.Profile {
			return img
		}
	}
	if len(p.Images) > 0 {
		return p.Images[0]
	}
	return nil
}
