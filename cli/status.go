package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// StatusOptions are what `rollout status` is asked to show.
type StatusOptions struct {
	Plan     string // a plan file, or "" to find the only journal
	Vars     map[string]string
	StateDir string
	Refresh  bool
	JSON     bool
	Sim      bool
}

func statusFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &StatusOptions{}
	vars := addVarFlag(fs)
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory (default .rollout/<plan name>)")
	fs.BoolVar(&o.Refresh, "refresh", false, "read the live state of open jobs from the API")
	fs.BoolVar(&o.JSON, "json", false, "print the journal summary as JSON")
	fs.BoolVar(&o.Sim, "sim", false, "with --refresh: ask a fresh built-in simulator (shows only what it knows)")
	return func(ctx context.Context, env *Env, args []string) error {
		if len(args) > 1 {
			return usageErr("rollout status: at most one plan file\nusage: rollout %s", Find("status").Usage)
		}
		if len(args) == 1 {
			o.Plan = args[0]
		}
		o.Vars = vars
		return Status(ctx, env, *o)
	}
}

// Status prints the journal's view of a plan's last run. The plan may be
// named by its file or by its name (as in .rollout/<name>); with neither,
// the only state directory under .rollout/ is shown.
func Status(ctx context.Context, env *Env, o StatusOptions) error {
	var p *plan.Plan
	dir := &o.StateDir
	if o.Plan != "" {
		if _, err := os.Stat(o.Plan); err != nil && !strings.ContainsAny(o.Plan, "/\\") {
			// Not a file: a plan's name, as the state directory has it.
			if *dir == "" {
				*dir = findStateDir(o.Plan, o.Sim)
			}
		} else {
			var err error
			if p, err = env.loadPlan(o.Plan, o.Vars); err != nil {
				return err
			}
			if *dir == "" {
				*dir = defaultStateDir(p, o.Sim)
				if _, err := os.Stat(*dir); err != nil && !o.Sim {
					if alt := defaultStateDir(p, true); dirExists(alt) {
						*dir = alt
					}
				}
			}
		}
	}
	if *dir == "" {
		found, _ := filepath.Glob(filepath.Join(".rollout", "*", state.JournalName))
		switch len(found) {
		case 0:
			return failErr("rollout status: no journal under .rollout/: name the plan (its file or its name) or --state-dir")
		case 1:
			*dir = filepath.Dir(found[0])
		default:
			var names []string
			for _, f := range found {
				names = append(names, filepath.Base(filepath.Dir(f)))
			}
			return usageErr("rollout status: several plans have run here: %s; name one (rollout status NAME) or give --state-dir", strings.Join(names, ", "))
		}
	}
	sum, err := state.Replay(*dir)
	if errors.Is(err, os.ErrNotExist) {
		return failErr("rollout status: no journal in %s: this plan has not run here", *dir)
	}
	if err != nil {
		return failErr("rollout status: %v", err)
	}
	if o.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	w := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Plan %s (journal %s)\n", sum.Plan, filepath.Join(*dir, state.JournalName))
	for i, r := range sum.Runs {
		end := "did not finish (crashed, killed or still running)"
		if !r.Finished.IsZero() {
			end = fmt.Sprintf("finished %s, %s", r.Finished.Format("2006-01-02 15:04:05"), r.Verdict)
		}
		kind := "run"
		if r.Resumed {
			kind = "resumed run"
		}
		fmt.Fprintf(w, "  %s %d: pid %d, started %s, %s\n", kind, i+1, r.PID, r.Started.Format("2006-01-02 15:04:05"), end)
	}
	if sum.TornTail {
		fmt.Fprintln(w, "  (the journal ended in a torn line, written when the process was killed; it was ignored)")
	}
	fmt.Fprintln(w, "\nTargets:")
	for _, t := range sum.Targets() {
		why := t.Error
		if t.OpenDiff != 0 {
			why = strings.TrimPrefix(why+"; ", "; ") + fmt.Sprintf("diff %d still locks the image", t.OpenDiff)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", t.Target, t.Outcome, why)
	}
	if len(sum.AllInstances) == 0 && len(sum.Instances) > 0 {
		fmt.Fprintln(w, "  (targets nothing was recorded for are not listed: this journal predates that record)")
	}
	var live *clanforge.Client
	if o.Refresh {
		if p == nil {
			return usageErr("rollout status --refresh: name the plan, so that the API address and account are known")
		}
		conn, err := env.connect(ctx, p, connectOptions{sim: o.Sim})
		if err != nil {
			return err
		}
		defer conn.Close()
		live = conn.client
	}
	fmt.Fprintln(w, "\nOpen remote jobs:")
	if len(sum.OpenJobs) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, j := range sum.OpenJobs {
		line := fmt.Sprintf("  %s %d\t%s\tlast seen %s", j.Kind, j.ID, j.Instance, stateName(j.StateName))
		if live != nil {
			line += "\tnow " + liveState(ctx, live, j)
		}
		fmt.Fprintln(w, line)
	}
	if diffs := sum.OpenDiffs(); len(diffs) > 0 {
		fmt.Fprintln(w, "\nOpen diffs (each locks its image until rejected or turned into a version):")
		for _, d := range diffs {
			fmt.Fprintf(w, "  diff %d\t%s\treject with: rollout reject --diff %d --state-dir %s%s [--reinstall]\n", d.ID, d.Instance, d.ID, *dir, planArg(sum))
		}
	}
	switch {
	case len(sum.Runs) > 0 && !sum.Finished:
		fmt.Fprintf(w, "\nThe last run did not finish (crashed or killed, or still running). Continue it with: %s\n", continueCommand(sum, *dir))
	case len(sum.Runs) > 0 && sum.Verdict == engine.VerdictInterrupted.String():
		fmt.Fprintf(w, "\nThe last run was interrupted; its remote jobs may still run. Continue it with: %s\n", continueCommand(sum, *dir))
	}
	return w.Flush()
}

func stateName(s string) string {
	if s == "" {
		return "(no state yet)"
	}
	return s
}

// liveState reads one open job's current state.
func liveState(ctx context.Context, c *clanforge.Client, j state.JobRecord) string {
	var job *clanforge.Job
	var err error
	switch j.Kind {
	case "update":
		job, err = c.UpdateStatus(ctx, j.ID)
	case "diff":
		var d *clanforge.Diff
		if d, err = c.DiffStatus(ctx, j.ID); d != nil {
			job = &d.Job
		}
	case "version":
		job, err = c.VersionStatus(ctx, j.ID)
	case "install", "mirror":
		var in *clanforge.Install
		var listed bool
		in, listed, err = c.FindInstall(ctx, j.ID)
		if err == nil && !listed {
			return "no longer listed (completed)"
		}
		if in != nil {
			job = &in.Job
		}
	default:
		return "(no status endpoint)"
	}
	if err != nil {
		return "unknown: " + state.MaskCredentials(err.Error())
	}
	if job == nil {
		return "unknown"
	}
	s := job.State.String()
	if job.Error != "" {
		// joberror is the API's free text and may quote a build URL.
		s += ": " + state.MaskCredentials(job.Error)
	}
	return s
}

// findStateDir is the state directory of a plan named name: the real runs',
// or, with sim or when only it exists, the simulated runs'.
func findStateDir(name string, sim bool) string {
	p := &plan.Plan{Name: name}
	real, simulated := defaultStateDir(p, false), defaultStateDir(p, true)
	if sim || (!dirExists(real) && dirExists(simulated)) {
		return simulated
	}
	return real
}

func dirExists(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, state.JournalName))
	return err == nil && !st.IsDir()
}

// planArg is " --plan FILE" when the journal knows the plan's file.
func planArg(sum *state.Summary) string {
	if f := lastPlanFile(sum); f != "" {
		return " --plan " + f
	}
	return ""
}

func lastPlanFile(sum *state.Summary) string {
	for i := len(sum.Runs) - 1; i >= 0; i-- {
		if sum.Runs[i].PlanFile != "" {
			return sum.Runs[i].PlanFile
		}
	}
	return ""
}

// continueCommand is the exact command that resumes the journal's run.
func continueCommand(sum *state.Summary, dir string) string {
	f := lastPlanFile(sum)
	if f == "" {
		f = "PLAN"
	}
	cmd := "rollout run " + f + " --resume"
	if dir != defaultStateDir(&plan.Plan{Name: sum.Plan}, false) {
		cmd += " --state-dir " + dir
	}
	return cmd
}
