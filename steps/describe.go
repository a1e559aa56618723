package steps

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
)

// Call is one API call an instance would make, for the dry-run preview.
// Method is empty for a step that makes no call (a gate).
type Call struct {
	Method   string
	Endpoint string
	// Params are display values: secrets masked, ids of jobs that do not
	// exist yet as placeholders such as <diffid from diff@buildbox-1/game-b>.
	Params map[string]string
	// Body is the JSON body as sent (the profile switch PATCH); "" for
	// the GETs.
	Body     string
	Mutating bool
	Note     string
}

// Describe lists the calls inst would make, in order, without making any.
// It is pure: it reads only the plan. Every call is built by the client's
// own builder (clanforge.Calls), the one the client sends from, so the
// preview shows the very requests the client would send; only display
// values differ: secrets are shown masked (${env:NAME}, masked URL
// credentials), and ids that do not exist yet as placeholders such as
// <diffid from diff@buildbox-1/game-b>.
func Describe(inst *plan.Instance, asid int64) []Call {
	if inst == nil || inst.Step == nil || inst.Image == nil {
		return nil
	}
	s := inst.Step
	k := clanforge.Calls{ASID: asid}
	image := itoa(inst.Image.ID)
	switch s.Type {
	case plan.TypeUpdate:
		url := ""
		note := "starts the update job"
		if s.URL.Resolved != "" || s.URL.Display != "" {
			url = maskURL(s.URL.Display)
		} else {
			note += "; url omitted: the image's default update URL is used"
		}
		if s.Retries > 0 {
			note += fmt.Sprintf("; created again after a failed job, at most %d more time(s)", s.Retries)
		}
		return []Call{
			describe(k.UpdateCreate(image, machineID(inst), s.Desc.Display, url), note),
			describe(k.UpdateStatus("<updateid>"), "polled near jobeta until the update ends"),
		}
	case plan.TypeDiff:
		calls := []Call{
			describe(k.DiffCreate(image, machineID(inst)), "starts the diff; it locks the image until rejected or versioned"),
			describe(k.DiffStatus("<diffid>", false), "polled near jobeta until the diff ends; gives added, modified, removed"),
		}
		if s.Retries > 0 {
			calls = append(calls, describe(k.DiffRetry("<diffid>"),
				fmt.Sprintf("only if the diff fails: re-runs the same diff, at most %d time(s)", s.Retries)))
		}
		return calls
	case plan.TypeGate:
		src := "<no expression>"
		if s.Expr != nil {
			src = s.Expr.Source
		}
		return []Call{{Note: "no API call; fails unless " + src}}
	case plan.TypeVersion:
		opt := clanforge.VersionOptions{
			Restart:           s.Restart,
			Full:              s.Full == plan.FullTrue || s.Full == plan.FullAuto,
			Force:             s.Force,
			InstallNow:        s.InstallAt == plan.InstallNow,
			DisableTimeout:    s.DisableTimeout,
			DisablePercentage: s.DisablePercentage,
		}
		if s.GameBuild.Resolved != "" || s.GameBuild.Display != "" {
			opt.GameBuild = maskURL(s.GameBuild.Display)
		}
		create := describe(k.VersionCreate(placeholder("diffid", inst.Diff), opt), "")
		if s.Full == plan.FullAuto {
			// Decided at run time from the diff's file lists.
			create.Params["full"] = "<1 if " + instName(inst.Diff) + " has no changes, else not sent>"
		}
		create.Note = "turns the diff into a version (the diff's lock is released)"
		if s.InstallAt == plan.InstallNow {
			create.Note += "; install jobs start by themselves"
		} else {
			create.Note += "; install jobs wait in Pending until queued"
		}
		return []Call{
			create,
			describe(k.VersionStatus("<imageversionid>"), "polled near jobeta until packaging ends"),
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
		calls := []Call{describe(k.InstallStatus(), find+"; one shared read per interval serves every install instance")}
		now := inst.Version != nil && inst.Version.Step != nil && inst.Version.Step.InstallAt == plan.InstallNow
		if now {
			calls[0].Note += "; install_at=now: " + jobs + " start(s) by itself, only watched"
			return calls
		}
		return append(calls, describe(k.InstallQueue("<jobid>", s.Mirroring),
			"queues "+jobs+" once, if Pending; then watched until it leaves the list (completed) or fails"))
	case plan.TypeReady:
		return []Call{describe(k.ImageStatus(image, true), readyNote(s))}
	case plan.TypeSwitch:
		return describeSwitch(k, inst)
	case plan.TypeReject:
		diffid := placeholder("diffid", inst.Diff)
		if inst.Diff == nil {
			return []Call{{Note: "no diff in scope: nothing to reject"}}
		}
		// The game id the client adds to image/options is found at run
		// time (one read per image); the preview cannot know it.
		return []Call{
			describe(k.ImageOptions("", image),
				"checks that "+diffid+" still locks the image (created by this run, neither rejected nor versioned)"),
			describe(k.DiffReject(diffid, s.Reinstall), rejectNote(s.Reinstall)),
		}
	}
	return nil
}

// describe turns a call built by clanforge.Calls into the preview's form:
// the query as display parameters (one value each: no call repeats one).
func describe(c clanforge.Call, note string) Call {
	p := make(map[string]string, len(c.Query))
	for k, vs := range c.Query {
		if len(vs) > 0 {
			p[k] = vs[0]
		}
	}
	return Call{Method: c.Method, Endpoint: c.Path, Params: p, Body: c.BodyJSON(), Mutating: c.Mutating, Note: note}
}

// readyNote says how a ready step reads the counters and when it ends.
func readyNote(s *plan.Step) string {
	until := "status.pending == 0"
	if s.Until != nil {
		until = s.Until.Source
	}
	note := "read with backoff (the counters have no ETA) until " + until
	if s.FailIf != nil {
		note += "; fails as soon as " + s.FailIf.Source
	}
	if s.Timeout > 0 {
		note += "; fails at the timeout (" + clanforge.CompactDuration(s.Timeout) + ")"
	}
	if len(s.Fleets) == 0 {
		return note + "; counts every fleet of the image"
	}
	names := make([]string, len(s.Fleets))
	for i, f := range s.Fleets {
		names[i] = f.Name
	}
	return note + "; counts fleet(s) " + strings.Join(names, ", ")
}

// describeSwitch lists a switch instance's calls: the status read first,
// the PATCH with its body, the polls to complete.
func describeSwitch(k clanforge.Calls, inst *plan.Instance) []Call {
	s := inst.Step
	f := inst.Fleet
	if f == nil {
		return []Call{{Note: "no fleet: nothing to switch"}}
	}
	profile, image := SwitchTarget(s)
	if profile <= 0 {
		return []Call{{Note: "no profile to switch " + f.Name + " to: the plan must give the image a profile"}}
	}
	target := profileLabel(profile, image)
	var calls []Call
	if s.OnFailure {
		calls = append(calls, Call{Note: "only if this run switched " + f.Name + " (its journal holds the PATCH of a switch step for it); else nothing is sent, and that is said"})
	}
	return append(calls,
		describe(k.SwitchStatus(f.ID), "reads "+f.Name+"'s switch first: a fleet that already runs "+target+" gets no PATCH"),
		describe(k.SwitchProfile(f.ID, switchOptions(s, profile)), "sent once (journaled; a lost answer is settled by the GET, never resent)"),
		describe(k.SwitchStatus(f.ID), "polled with backoff until State is complete; fails on another state, an error answer, or processing past the Deadline"),
	)
}

// SwitchLine says what a switch would do to one fleet, e.g. "prod-eu:
// profile 101 (game-a) → 102 (game-b), 10 machines at a time, forced after
// 2h". current is the profile the fleet runs now (0: not read), with
// currentImage the plan's image that has it ("" : none).
func SwitchLine(fleet string, current int64, currentImage string, profile int64, image string, maxMachines int, forceAfter time.Duration) string {
	from := "profile unknown"
	if current != 0 {
		from = profileLabel(current, currentImage)
	}
	to := strconv.FormatInt(profile, 10)
	if image != "" {
		to += " (" + image + ")"
	}
	batch := "all servers at once"
	if maxMachines > 0 {
		batch = fmt.Sprintf("%d machines at a time", maxMachines)
	}
	force := "never forced"
	if forceAfter > 0 {
		force = "forced after " + clanforge.CompactDuration(forceAfter)
	}
	return fmt.Sprintf("%s: %s → %s, %s, %s", fleet, from, to, batch, force)
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
