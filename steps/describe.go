package steps

import (
	"fmt"

	"github.com/rollout/rollout/plan"
)

// Call is one API call an instance would make, for the dry-run preview.
// Method is empty for a step that makes no call (a gate).
type Call struct {
	Method   string
	Endpoint string
	// Params are display values: secrets masked, ids of jobs that do not
	// exist yet as placeholders such as <diffid from diff@buildbox-1/game-b>.
	Params   map[string]string
	Mutating bool
	Note     string
}

// Describe lists the calls inst would make, in order, without making any.
// It is pure: it reads only the plan.
func Describe(inst *plan.Instance, asid int64) []Call {
	if inst == nil || inst.Step == nil || inst.Image == nil {
		return nil
	}
	s := inst.Step
	a := itoa(asid)
	switch s.Type {
	case plan.TypeUpdate:
		p := map[string]string{
			"accountserviceid": a,
			"imageid":          itoa(inst.Image.ID),
			"machineid":        machineID(inst),
			"desc":             s.Desc.Display,
		}
		note := "starts the update job"
		if s.URL.Resolved != "" || s.URL.Display != "" {
			p["url"] = maskURL(s.URL.Display)
		} else {
			note += "; url omitted: the image's default update URL is used"
		}
		if s.Retries > 0 {
			note += fmt.Sprintf("; created again after a failed job, at most %d more time(s)", s.Retries)
		}
		return []Call{
			{Method: "GET", Endpoint: apiPrefix + epUpdateCreate, Params: p, Mutating: true, Note: note},
			{Method: "GET", Endpoint: apiPrefix + "imageupdate/<updateid>/status", Params: map[string]string{"accountserviceid": a},
				Note: "polled near jobeta until the update ends"},
		}
	case plan.TypeDiff:
		calls := []Call{
			{Method: "GET", Endpoint: apiPrefix + epDiffCreate, Params: map[string]string{
				"accountserviceid": a,
				"imageid":          itoa(inst.Image.ID),
				"machineid":        machineID(inst),
			}, Mutating: true, Note: "starts the diff; it locks the image until rejected or versioned"},
			{Method: "GET", Endpoint: apiPrefix + "imagediff/<diffid>/status", Params: map[string]string{"accountserviceid": a},
				Note: "polled near jobeta until the diff ends; gives added, modified, removed"},
		}
		if s.Retries > 0 {
			calls = append(calls, Call{Method: "GET", Endpoint: apiPrefix + "imagediff/<diffid>/retry",
				Params: map[string]string{"accountserviceid": a}, Mutating: true,
				Note: fmt.Sprintf("only if the diff fails: re-runs the same diff, at most %d time(s)", s.Retries)})
		}
		return calls
	case plan.TypeGate:
		src := "<no expression>"
		if s.Expr != nil {
			src = s.Expr.Source
		}
		return []Call{{Note: "no API call; fails unless " + src}}
	case plan.TypeVersion:
		diffid := placeholder("diffid", inst.Diff)
		full := boolParam(s.Full == plan.FullTrue)
		if s.Full == plan.FullAuto {
			full = "<1 if " + instName(inst.Diff) + " has no changes, else not sent>"
		}
		note := "turns the diff into a version (the diff's lock is released)"
		if s.InstallAt == plan.InstallNow {
			note += "; install jobs start by themselves"
		} else {
			note += "; install jobs wait in Pending until queued"
		}
		return []Call{
			{Method: "GET", Endpoint: apiPrefix + epVersionCreate, Params: versionParams(asid, diffid, s, full), Mutating: true, Note: note},
			{Method: "GET", Endpoint: apiPrefix + "imageversion/<imageversionid>/status", Params: map[string]string{"accountserviceid": a},
				Note: "polled near jobeta until packaging ends"},
		}
	case plan.TypeInstall:
		version := placeholder("versionid", inst.Version)
		find := fmt.Sprintf("finds the job(s) with target_imageversionid=%s, mirroring=%t", version, s.Mirroring)
		jobs := "its machine job"
		if s.Mirroring {
			jobs = "the version's mirror jobs (one per location)"
		} else {
			find += ", machine=" + machineID(inst)
		}
		calls := []Call{{Method: "GET", Endpoint: apiPrefix + "imageinstall/status",
			Params: map[string]string{"accountserviceid": a},
			Note:   find + "; one shared read per interval serves every install instance"}}
		now := inst.Version != nil && inst.Version.Step != nil && inst.Version.Step.InstallAt == plan.InstallNow
		if now {
			calls[0].Note += "; install_at=now: " + jobs + " start(s) by itself, only watched"
			return calls
		}
		calls = append(calls, Call{Method: "GET", Endpoint: apiPrefix + "imageinstall/<jobid>/queue",
			Params: map[string]string{"accountserviceid": a, "mirroring": fmt.Sprint(s.Mirroring)}, Mutating: true,
			Note: "queues " + jobs + " once, if Pending; then watched until it leaves the list (completed) or fails"})
		return calls
	case plan.TypeReject:
		diffid := placeholder("diffid", inst.Diff)
		if inst.Diff == nil {
			return []Call{{Note: "no diff in scope: nothing to reject"}}
		}
		return []Call{
			{Method: "GET", Endpoint: apiPrefix + "image/options",
				Params: map[string]string{"accountserviceid": a, "imageid": itoa(inst.Image.ID)},
				Note:   "checks that " + diffid + " still locks the image (created by this run, neither rejected nor versioned)"},
			{Method: "GET", Endpoint: apiPrefix + "imagediff/" + diffid + "/reject",
				Params:   map[string]string{"accountserviceid": a, "reinstall": boolParam(s.Reinstall)},
				Mutating: true, Note: rejectNote(s.Reinstall)},
		}
	}
	return nil
}

func rejectNote(reinstall bool) string {
	if reinstall {
		return "only if the diff is still open; also reinstalls the build machine (the uninstall job is reported, it has no status endpoint)"
	}
	return "only if the diff is still open; releases the image lock"
}

func machineID(inst *plan.Instance) string {
	if inst.Machine == nil {
		return "<no machine>"
	}
	return itoa(inst.Machine.ID)
}

func instName(in *plan.Instance) string {
	if in == nil {
		return "<none>"
	}
	return in.ID
}

// placeholder names a value that exists only once another instance ran.
func placeholder(field string, from *plan.Instance) string {
	return fmt.Sprintf("<%s from %s>", field, instName(from))
}
