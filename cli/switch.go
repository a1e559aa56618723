package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/steps"
)

// SwitchOptions are what `rollout switch` is asked to do: switch one fleet
// to the profile of an image of the plan (To) or to a profile id.
type SwitchOptions struct {
	// Fleet is the fleet's name in the plan; without a plan, its id.
	Fleet   string
	To      string // an image of the plan, whose profile the fleet switches to
	Profile int64  // or the profile id itself
	Plan    string // names the fleets and images and gives the API settings; "" : the environment's
	Vars    map[string]string
	Yes     bool
	// MaxMachines and ForceAfter are sent as MaxMachines and Timeout
	// (0: not sent).
	MaxMachines int
	ForceAfter  time.Duration
	// PollMin and PollMax bound the reads of the switch status (0: the
	// defaults, 2s and 30s).
	PollMin, PollMax time.Duration
}

func switchFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &SwitchOptions{}
	vars := addVarFlag(fs)
	fs.StringVar(&o.Fleet, "fleet", "", "the fleet to switch: its name in the plan (its id without --plan) (required)")
	fs.StringVar(&o.To, "to", "", "switch to the profile of this image of the plan")
	fs.Int64Var(&o.Profile, "profile", 0, "switch to this profile id")
	fs.StringVar(&o.Plan, "plan", "", "plan that names the fleets and images and whose clanforge settings (url, asid) to use; else CLANFORGE_URL and CLANFORGE_ASID")
	fs.BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	fs.IntVar(&o.MaxMachines, "max-machines", 0, "restart at most N servers at a time (sent as MaxMachines; default all empty servers at once)")
	fs.DurationVar(&o.ForceAfter, "force-after", 0, "force-restart the servers left after this long, e.g. 2h (sent as Timeout; default never)")
	fs.DurationVar(&o.PollMin, "poll-min", 0, "shortest interval between two reads of the switch status, the first one's wait (default 100ms; later reads back off to --poll-max)")
	fs.DurationVar(&o.PollMax, "poll-max", 0, "longest interval between two reads of the switch status (default 30s)")
	return func(ctx context.Context, env *Env, args []string) error {
		if len(args) == 1 && o.Plan == "" {
			o.Plan = args[0]
		} else if len(args) > 0 {
			return usageErr("rollout switch: unexpected arguments %v\nusage: rollout %s", strings.Join(args, " "), Find("switch").Usage)
		}
		o.Vars = vars
		return Switch(ctx, env, *o)
	}
}

// check refuses a command line that names no fleet, both or neither of
// --to and --profile, or negative values.
func (o *SwitchOptions) check() error {
	usage := "\nusage: rollout " + Find("switch").Usage
	switch {
	case o.Fleet == "":
		return usageErr("rollout switch: --fleet NAME is required%s", usage)
	case (o.To == "") == (o.Profile == 0):
		return usageErr("rollout switch: give exactly one of --to IMAGE and --profile ID%s", usage)
	case o.Profile < 0:
		return usageErr("rollout switch: --profile must be a positive profile id")
	case o.To != "" && o.Plan == "":
		return usageErr("rollout switch: --to names an image of a plan: add --plan PLAN, or give --profile ID")
	case o.MaxMachines < 0:
		return usageErr("rollout switch: --max-machines must be at least 1 (or absent: all servers at once)")
	case o.ForceAfter < 0:
		return usageErr("rollout switch: --force-after must be a positive duration, e.g. 2h")
	case o.PollMin < 0 || o.PollMax < 0 || (o.PollMax > 0 && o.PollMax < o.PollMin):
		return usageErr("rollout switch: --poll-min and --poll-max must be positive, and --poll-max at least --poll-min")
	}
	return nil
}

// Switch switches one fleet to a profile, after a confirmation naming the
// fleet, its current profile and the new one: the manual escape hatch of a
// cut-over (plan-format.md, "More commands"). It reads the fleet's switch
// status first and sends nothing when the fleet already runs the profile
// or is still switching; otherwise it sends one PATCH (never resent: a lost
// answer is settled by the status) and follows the switch to complete,
// printing its progress.
func Switch(ctx context.Context, env *Env, o SwitchOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	p := &plan.Plan{}
	if o.Plan != "" {
		var err error
		if p, err = env.loadPlan(o.Plan, o.Vars); err != nil {
			return err
		}
	}
	return switchWith(ctx, env, o, p)
}

// switchWith is Switch once the plan is loaded ("" plan: an empty one).
func switchWith(ctx context.Context, env *Env, o SwitchOptions, p *plan.Plan) error {
	fleet, err := switchFleet(o, p)
	if err != nil {
		return err
	}
	profile, image, err := switchProfile(o, p)
	if err != nil {
		return err
	}
	pol := steps.DefaultPollPolicy()
	if o.PollMin > 0 {
		pol.Min = o.PollMin
	}
	if o.PollMax > 0 {
		pol.Max = o.PollMax
	}
	conn, err := env.connect(ctx, p, connectOptions{})
	if err != nil {
		return err
	}
	defer conn.Close()
	c := conn.client
	st, err := c.ProfileSwitchStatus(ctx, fleet.ID)
	switch {
	case err != nil && ctx.Err() != nil:
		return interruptedErr("interrupted: nothing was sent")
	case errors.Is(err, clanforge.ErrNotFound):
		return failErr("rollout switch: fleet %s (id %s) is unknown to %s: %v", fleet.Name, fleet.ID, conn.display, err)
	case err != nil:
		return failErr("rollout switch: reading the switch status of fleet %s: %v", fleet.Name, err)
	}
	imageOf := func(id int64) string {
		for _, img := range p.Images {
			if img.Profile == id {
				return img.Name
			}
		}
		return ""
	}
	target := profileText(profile, image)
	if st.ProfileID == profile && (st.State == clanforge.SwitchComplete || st.State == clanforge.SwitchNotRequested) {
		printf(env.Stdout, "fleet %s already runs %s (%s): nothing sent\n", fleet.Name, target, string(st.State))
		return nil
	}
	if st.State == clanforge.SwitchPending || st.State == clanforge.SwitchProcessing {
		return failErr("rollout switch: fleet %s is switching now (%s); nothing was sent: wait for that switch to end, then run this again", fleet.Name, steps.SwitchText(fleet.Name, st))
	}
	line := steps.SwitchLine(fleet.Name, st.ProfileID, imageOf(st.ProfileID), profile, image, o.MaxMachines, o.ForceAfter)
	if !o.Yes {
		q := fmt.Sprintf("About to switch fleet %s (id %s) on %s, restarting its servers:\n  %s\nProceed?", fleet.Name, fleet.ID, conn.display, line)
		if err := env.confirm(q); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return interruptedErr("interrupted: nothing was sent")
	}
	opt := clanforge.SwitchOptions{ProfileID: profile, Timeout: o.ForceAfter, MaxMachines: o.MaxMachines}
	sent, err := c.SwitchProfile(ctx, fleet.ID, opt)
	if err != nil {
		var ou *clanforge.OutcomeUnknownError
		switch {
		case errors.As(err, &ou):
			return failErr("rollout switch: the answer to the PATCH was lost and its outcome could not be settled; it was not sent again. Check fleet %s's switch status before trying again: %v", fleet.Name, err)
		case ctx.Err() != nil:
			return interruptedErr("interrupted while switching fleet %s: check its switch status before trying again", fleet.Name)
		}
		return failErr("rollout switch: fleet %s: %v", fleet.Name, err)
	}
	printf(env.Stdout, "switch of fleet %s to %s sent\n", fleet.Name, target)
	last := ""
	final, err := steps.WatchSwitch(ctx, c, fleet.ID, profile, sent, pol, time.Now, func(st *clanforge.ProfileSwitch) {
		if text := steps.SwitchText(fleet.Name, st); text != last {
			last = text
			printf(env.Stdout, "%s\n", text)
		}
	})
	switch {
	case err == nil:
		printf(env.Stdout, "fleet %s now runs %s\n", fleet.Name, target)
		return nil
	case ctx.Err() != nil:
		return interruptedErr("interrupted: the switch of fleet %s goes on without us (%s); run this command again to follow it", fleet.Name, steps.SwitchText(fleet.Name, final))
	}
	return failErr("rollout switch: fleet %s: %v", fleet.Name, err)
}

// switchFleet finds the fleet by name (or id) in the plan; without a plan
// the name is the fleet's id.
func switchFleet(o SwitchOptions, p *plan.Plan) (*plan.Fleet, error) {
	if o.Plan == "" && len(p.Fleets) == 0 {
		return &plan.Fleet{Name: o.Fleet, ID: o.Fleet}, nil
	}
	names := make([]string, 0, len(p.Fleets))
	for _, f := range p.Fleets {
		if f.Name == o.Fleet || f.ID == o.Fleet {
			return f, nil
		}
		names = append(names, f.Name)
	}
	if len(names) == 0 {
		return nil, usageErr("rollout switch: plan %s names no fleets (fleets: [{name, id}])", o.Plan)
	}
	msg := fmt.Sprintf("rollout switch: unknown fleet %q: plan %s has %s", o.Fleet, o.Plan, strings.Join(names, ", "))
	if hint := plan.DidYouMean(o.Fleet, names); hint != "" {
		msg += "; " + hint
	}
	return nil, usageErr("%s", msg)
}

// switchProfile is the profile to switch to, and the plan's image that
// has it ("" : none).
func switchProfile(o SwitchOptions, p *plan.Plan) (int64, string, error) {
	if o.Profile > 0 {
		for _, img := range p.Images {
			if img.Profile == o.Profile {
				return o.Profile, img.Name, nil
			}
		}
		return o.Profile, "", nil
	}
	names := make([]string, 0, len(p.Images))
	for _, img := range p.Images {
		if img.Name == o.To {
			if img.Profile <= 0 {
				return 0, "", usageErr("rollout switch: image %s has no profile in plan %s (images[].profile)", img.Name, o.Plan)
			}
			return img.Profile, img.Name, nil
		}
		names = append(names, img.Name)
	}
	msg := fmt.Sprintf("rollout switch: unknown image %q: plan %s has %s", o.To, o.Plan, strings.Join(names, ", "))
	if hint := plan.DidYouMean(o.To, names); hint != "" {
		msg += "; " + hint
	}
	return 0, "", usageErr("%s", msg)
}

// profileText is "profile 102 (game-b)", or "profile 102" when no image of
// the plan has it.
func profileText(profile int64, image string) string {
	if image == "" {
		return fmt.Sprintf("profile %d", profile)
	}
	return fmt.Sprintf("profile %d (%s)", profile, image)
}
