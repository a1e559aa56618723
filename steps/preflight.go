package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// ImageFacts is what the pre-flight read about one image of the plan.
type ImageFacts struct {
	Name      string
	ID        int64
	LockKind  string // "diff", "update" or ""
	LockID    int64
	Own       bool // the lock is held by a job this rollout created
	UpdateURL bool // the image has a default update URL
	Counters  *clanforge.Counters
	Builds    int // build machines carrying the image in the plan
	Fleet     int // fleet machines carrying the image in the plan
}

// FleetFacts is what the pre-flight read about one fleet of the plan: its
// profile switch status (API §4.15).
type FleetFacts struct {
	Name string
	ID   string
	// Known is false when the API does not know the fleet (404).
	Known bool
	// Profile is the ProfileID the switch status shows: the profile the
	// fleet runs or is switching to. ProfileImage names the plan's image
	// with that profile ("" when none has it).
	Profile      int64
	ProfileImage string
	// State is the switch status's State ("not requested" before any
	// switch); ServersPending and ServersProcessed its counts.
	State            string
	ServersPending   int
	ServersProcessed int
	Deadline         time.Time `json:",omitzero"`
}

// PreflightReport is the read-only check made before a run changes
// anything, and shown by the preview.
type PreflightReport struct {
	ASID     int64
	Images   []ImageFacts
	Fleets   []FleetFacts `json:",omitempty"`
	Installs int          // install jobs listed for the account before the run
	Problems []string
}

// OK reports whether the run may start.
func (r *PreflightReport) OK() bool { return len(r.Problems) == 0 }

// ErrPreflight wraps every pre-flight refusal.
var ErrPreflight = errors.New("pre-flight check failed")

// PreflightError lists what stops the run.
type PreflightError struct{ Report *PreflightReport }

func (e *PreflightError) Error() string {
	return "pre-flight check failed:\n  - " + strings.Join(e.Report.Problems, "\n  - ")
}

// Is matches ErrPreflight.
func (e *PreflightError) Is(target error) bool { return target == ErrPreflight }

// Preflight checks, with reads only, that the credentials are accepted, that
// every image is known and that no image is locked by a job this rollout did
// not create. own reports whether a lock holder (a job id of kind "diff" or
// "update" on img) was created by this rollout, from the journal of an
// earlier attempt.
func Preflight(ctx context.Context, c *clanforge.Client, p *plan.Plan, own func(img *plan.Image, kind string, id int64) bool) (*PreflightReport, error) {
	r := &PreflightReport{ASID: c.ASID()}
	for _, img := range p.Images {
		f := ImageFacts{Name: img.Name, ID: img.ID}
		for _, t := range p.Targets {
			if t.Image != img {
				continue
			}
			if t.Machine.Build {
				f.Builds++
			} else {
				f.Fleet++
			}
		}
		opts, err := c.ImageOptions(ctx, img.ID)
		switch {
		case errors.Is(err, clanforge.ErrAuth):
			return r, fmt.Errorf("credentials refused for account service %d: check CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY and that the key may use this ASID: %w", c.ASID(), err)
		case errors.Is(err, clanforge.ErrNotFound):
			r.Problems = append(r.Problems, fmt.Sprintf("image %s (id %d) is not known to account service %d", img.Name, img.ID, c.ASID()))
			r.Images = append(r.Images, f)
			continue
		case err != nil:
			return r, fmt.Errorf("reading image/options for image %s (id %d): %w", img.Name, img.ID, err)
		}
		if len(opts.Images) > 0 && !containsID(opts.Images, img.ID) {
			r.Problems = append(r.Problems, fmt.Sprintf("image %s (id %d) is not among the account's images", img.Name, img.ID))
		}
		f.UpdateURL = opts.UpdateURL != ""
		switch {
		case opts.DiffID != 0:
			f.LockKind, f.LockID = "diff", opts.DiffID
		case opts.UpdateID != 0:
			f.LockKind, f.LockID = "update", opts.UpdateID
		}
		if f.LockKind != "" {
			f.Own = own != nil && own(img, f.LockKind, f.LockID)
			if !f.Own {
				r.Problems = append(r.Problems, lockProblem(img, f.LockKind, f.LockID))
			}
		}
		if st, err := c.ImageStatus(ctx, img.ID, false); err == nil {
			cnt := st.Counters
			f.Counters = &cnt
		}
		r.Images = append(r.Images, f)
	}
	if list, err := c.InstallStatus(ctx); err == nil {
		r.Installs = len(list)
	}
	if err := preflightFleets(ctx, c, p, r); err != nil {
		return r, err
	}
	return r, nil
}

// preflightFleets checks the cut-over parts of a plan: every fleet the plan
// names is known to the API (its switch status answers; a 404 is an
// unknown fleet), and every image a switch names has a profile. It records
// each fleet's current profile and switch state for the preview. Whether a
// profile id exists cannot be read (the API has no read of profiles; only
// a PATCH would tell): the preview shows the profile the fleet runs and the
// one it would switch to instead.
func preflightFleets(ctx context.Context, c *clanforge.Client, p *plan.Plan, r *PreflightReport) error {
	imageOf := map[int64]string{}
	for _, img := range p.Images {
		if img.Profile != 0 {
			imageOf[img.Profile] = img.Name
		}
	}
	for _, f := range p.Fleets {
		ff := FleetFacts{Name: f.Name, ID: f.ID}
		st, err := c.ProfileSwitchStatus(ctx, f.ID)
		switch {
		case errors.Is(err, clanforge.ErrAuth):
			return fmt.Errorf("credentials refused reading fleet %s (id %s): %w", f.Name, f.ID, err)
		case errors.Is(err, clanforge.ErrNotFound):
			r.Problems = append(r.Problems, fmt.Sprintf("unknown fleet %s: the API does not know fleet id %s", f.Name, f.ID))
			r.Fleets = append(r.Fleets, ff)
			continue
		case err != nil:
			return fmt.Errorf("reading the switch status of fleet %s (id %s): %w", f.Name, f.ID, err)
		}
		ff.Known = true
		ff.Profile, ff.ProfileImage = st.ProfileID, imageOf[st.ProfileID]
		ff.State, ff.ServersPending, ff.ServersProcessed, ff.Deadline = string(st.State), st.ServersPending, st.ServersProcessed, st.Deadline
		r.Fleets = append(r.Fleets, ff)
	}
	seen := map[*plan.Step]bool{}
	for _, s := range append(append([]*plan.Step{}, p.Steps...), p.OnFailure...) {
		if s.Type != plan.TypeSwitch || seen[s] {
			continue
		}
		seen[s] = true
		switch profile, image := SwitchTarget(s); {
		case profile > 0:
		case image != "":
			r.Problems = append(r.Problems, fmt.Sprintf("switch step %s names image %s, which has no profile (images[].profile)", s.Name, image))
		default:
			r.Problems = append(r.Problems, fmt.Sprintf("switch step %s names neither an image with a profile (to) nor a profile", s.Name))
		}
	}
	return nil
}

func lockProblem(img *plan.Image, kind string, id int64) string {
	if kind == "diff" {
		return fmt.Sprintf("image %s (id %d) is locked by diff %d, which this rollout did not create; "+
			"whoever owns it must accept or reject it (rollout reject --diff %d, or the Clanforge panel) before this rollout can run", img.Name, img.ID, id, id)
	}
	return fmt.Sprintf("image %s (id %d) is locked by image update %d, which this rollout did not create; "+
		"wait for that update to finish, then reject or accept its diff", img.Name, img.ID, id)
}

func containsID(list []clanforge.NamedID, id int64) bool {
	for _, x := range list {
		if x.ID == id {
			return true
		}
	}
	return false
}
