package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

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
	fs.BoolVar(&o.Sim, "sim", false, "show the runs against the built-in simulator (.rollout/<plan name>.sim); with --refresh, ask a fresh simulator (it knows none of their jobs)")
	return func(ctx context.Context, env *Env, args []string) error {
		name, err := atMostOnePlan("status", "plan file", args)
		if err != nil {
			return err
		}
		o.Plan, o.Vars = name, vars
		return Status(ctx, env, *o)
	}
}

// Status prints the journal's view of a plan's last run. The plan may be
// named by its file or by its name (as in .rollout/<name>); with neither,
// the only state directory under .rollout/ is shown.
func Status(ctx context.Context, env *Env, o StatusOptions) error {
	loc, err := env.locate("status", o.Plan, o.Vars, o.StateDir, locateOptions{sim: o.Sim})
	if err != nil {
		return err
	}
	p, dir := loc.p, &loc.dir
	sum, err := state.Replay(*dir)
	if err != nil {
		return noJournalErr("status", *dir, err)
	}
	var live *clanforge.Client
	if o.Refresh {
		if p == nil {
			return usageErr("rollout status --refresh: name the plan file, so that the API address and account are known")
		}
		conn, err := env.connect(ctx, p, connectOptions{sim: o.Sim})
		if err != nil {
			return err
		}
		defer conn.Close()
		live = conn.client
	}
	return printDoc(env.Stdout, statusDocument(ctx, sum, *dir, live), o.JSON)
}

// StatusDoc is `rollout status --json`: version 1 of the document, built
// from the journal (and, with --refresh, the API). New fields may be added
// within version 1; a change of meaning bumps V.
type StatusDoc struct {
	V        int    `json:"v"`
	Plan     string `json:"plan"`
	StateDir string `json:"state_dir"`
	Journal  string `json:"journal"`
	// Status is how the last run stands: running, unfinished (crashed or
	// killed), interrupted, succeeded, failed or aborted; "not run" when
	// the journal holds no run.
	Status     string         `json:"status"`
	Runs       []StatusRun    `json:"runs"`
	Targets    []StatusTarget `json:"targets"`
	OpenJobs   []StatusJob    `json:"open_jobs"`
	OpenDiffs  []StatusJob    `json:"open_diffs"`
	Unfinished []StatusJob    `json:"unfinished"`
	// Waiting is what the run in progress waits for now (waiting_live),
	// or what the last run waited for when it stopped.
	Waiting     []StatusWait `json:"waiting"`
	WaitingLive bool         `json:"waiting_live,omitempty"`
	// Decisions lists how every wait ended, and who ended it, in order.
	Decisions []StatusDecision `json:"decisions"`
	Next      string           `json:"next,omitempty"` // the command to continue, when there is one
	TornTail  bool             `json:"torn_tail,omitempty"`
	Complete  bool             `json:"targets_complete"` // every target of the plan is listed
}

// StatusRun is one run recorded in the journal.
type StatusRun struct {
	PID      int        `json:"pid"`
	Host     string     `json:"host,omitempty"`
	User     string     `json:"user,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Verdict  string     `json:"verdict,omitempty"`
	Resumed  bool       `json:"resumed"`
	Sim      bool       `json:"sim,omitempty"`
	API      string     `json:"api,omitempty"`
}

// StatusWait is one wait of a run: an approval or a bake time.
type StatusWait struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"` // approval, bake
	Step     string     `json:"step,omitempty"`
	Image    string     `json:"image,omitempty"`
	Message  string     `json:"message,omitempty"`
	Since    time.Time  `json:"since"`
	Until    *time.Time `json:"until,omitempty"`
	Progress string     `json:"progress,omitempty"`
	Approve  string     `json:"approve_command,omitempty"`
	Abort    string     `json:"abort_command,omitempty"`
}

// StatusDecision is how one wait ended and who ended it.
type StatusDecision struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Decision string    `json:"decision"` // approved, auto-approved, timed-out, baked, aborted
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
}

// StatusTarget is one target's outcome.
type StatusTarget struct {
	Target   string `json:"target"`
	Outcome  string `json:"outcome"`
	Error    string `json:"error,omitempty"`
	OpenDiff int64  `json:"open_diff,omitempty"`
}

// StatusJob is one remote job.
type StatusJob struct {
	Kind      string `json:"kind"`
	ID        int64  `json:"id"`
	Instance  string `json:"instance,omitempty"`
	StateName string `json:"state_name,omitempty"`
	Now       string `json:"now,omitempty"` // with --refresh: what the API says now
	Reject    string `json:"reject,omitempty"`
}

func statusDocument(ctx context.Context, sum *state.Summary, dir string, live *clanforge.Client) *StatusDoc {
	d := &StatusDoc{V: 1, Plan: sum.Plan, StateDir: dir, Journal: filepath.Join(dir, state.JournalName),
		Runs: []StatusRun{}, Targets: []StatusTarget{}, OpenJobs: []StatusJob{}, OpenDiffs: []StatusJob{}, Unfinished: []StatusJob{},
		Waiting: []StatusWait{}, Decisions: []StatusDecision{},
		TornTail: sum.TornTail, Complete: len(sum.AllInstances) > 0 || len(sum.Instances) == 0}
	for _, r := range sum.Runs {
		d.Runs = append(d.Runs, StatusRun{PID: r.PID, Host: r.Host, User: r.User, Started: r.Started.UTC(), Finished: utcOrNil(r.Finished),
			Verdict: r.Verdict, Resumed: r.Resumed, Sim: r.Sim, API: r.API})
	}
	switch {
	case len(sum.Runs) == 0:
		d.Status = "not run"
	case !sum.Finished && state.CheckFree(dir) != nil:
		d.Status = "running"
	case !sum.Finished:
		d.Status = "unfinished"
		d.Next = continueCommand(sum, dir)
	default:
		d.Status = sum.Verdict
		if sum.Verdict == engine.VerdictInterrupted.String() {
			d.Next = continueCommand(sum, dir)
		}
	}
	d.addWaits(sum, dir)
	for _, t := range sum.Targets() {
		d.Targets = append(d.Targets, StatusTarget{Target: t.Target, Outcome: t.Outcome, Error: t.Error, OpenDiff: t.OpenDiff})
	}
	for _, j := range sum.OpenJobs {
		sj := StatusJob{Kind: j.Kind, ID: j.ID, Instance: j.Instance, StateName: j.StateName}
		if live != nil {
			sj.Now = liveState(ctx, live, j)
		}
		d.OpenJobs = append(d.OpenJobs, sj)
	}
	for _, j := range sum.OpenDiffs() {
		d.OpenDiffs = append(d.OpenDiffs, StatusJob{Kind: j.Kind, ID: j.ID, Instance: j.Instance, StateName: j.StateName,
			Reject: fmt.Sprintf("rollout reject --diff %d --state-dir %s%s", j.ID, dir, planArg(sum))})
	}
	for _, j := range sum.Unfinished {
		d.Unfinished = append(d.Unfinished, StatusJob{Kind: j.Kind, ID: j.ID, Instance: j.Instance, StateName: j.StateName})
	}
	return d
}

// addWaits fills in what the run waits for: from waiting.json while a run
// holds the directory (it is current then), else from the journal, the
// waits its last run began and never ended; and every decision.
func (d *StatusDoc) addWaits(sum *state.Summary, dir string) {
	for _, w := range sum.Decisions {
		d.Decisions = append(d.Decisions, StatusDecision{ID: w.ID, Kind: w.Kind, Decision: w.Decision, By: w.By, At: w.At.UTC(), Reason: w.Reason})
	}
	if d.Status == "running" {
		holder, held := state.Holder(dir)
		w, err := state.ReadWaiting(dir)
		if !held || err != nil || (holder.PID != 0 && w.PID != holder.PID) {
			return
		}
		d.WaitingLive = true
		for _, x := range w.Waits {
			d.Waiting = append(d.Waiting, StatusWait{ID: x.ID, Kind: x.Kind, Step: x.Step, Image: x.Image, Message: x.Message,
				Since: x.Since.UTC(), Until: utcOrNil(x.Until), Progress: x.Progress, Approve: x.Approve, Abort: x.Abort})
		}
		return
	}
	if d.Status != "unfinished" && d.Status != engine.VerdictInterrupted.String() {
		return
	}
	for _, id := range sortedKeys(sum.Waits) {
		w := sum.Waits[id]
		if w.Decision != "" {
			continue
		}
		d.Waiting = append(d.Waiting, StatusWait{ID: w.ID, Kind: w.Kind, Step: w.Step, Image: w.Image, Message: w.Message,
			Since: w.Since.UTC(), Until: utcOrNil(w.Until)})
	}
}

// utcOrNil is t in UTC for a document, or nil (left out) when t is unset.
func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// text renders the document for people.
func (d *StatusDoc) text(out io.Writer) error {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Plan %s (journal %s): %s\n", d.Plan, d.Journal, d.Status)
	for i, r := range d.Runs {
		end := "did not finish (crashed, killed or still running)"
		if r.Finished != nil {
			end = fmt.Sprintf("finished %s, %s", r.Finished.Local().Format(time.DateTime), r.Verdict)
		}
		kind := "run"
		if r.Resumed {
			kind = "resumed run"
		}
		who := ""
		if r.User != "" {
			who = " by " + r.User
		}
		fmt.Fprintf(w, "  %s %d: pid %d%s, started %s, %s\n", kind, i+1, r.PID, who, r.Started.Local().Format(time.DateTime), end)
	}
	if d.TornTail {
		fmt.Fprintln(w, "  (the journal ended in a torn line, written when the process was killed; it was ignored)")
	}
	fmt.Fprintln(w, "\nTargets:")
	for _, t := range d.Targets {
		why := t.Error
		if t.OpenDiff != 0 {
			why = strings.TrimPrefix(why+"; ", "; ") + fmt.Sprintf("diff %d still locks the image", t.OpenDiff)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", t.Target, t.Outcome, why)
	}
	if !d.Complete {
		fmt.Fprintln(w, "  (targets nothing was recorded for are not listed: this journal predates that record)")
	}
	fmt.Fprintln(w, "\nOpen remote jobs:")
	if len(d.OpenJobs) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, j := range d.OpenJobs {
		line := fmt.Sprintf("  %s %d\t%s\tlast seen %s", j.Kind, j.ID, j.Instance, stateName(j.StateName))
		if j.Now != "" {
			line += "\tnow " + j.Now
		}
		fmt.Fprintln(w, line)
	}
	if len(d.Waiting) > 0 {
		if d.WaitingLive {
			fmt.Fprintln(w, "\nWaiting now:")
		} else {
			fmt.Fprintln(w, "\nWaiting when the last run stopped (a resumed run waits again):")
		}
		for _, x := range d.Waiting {
			line := fmt.Sprintf("  %s\t%s since %s", x.ID, waitWord(x.Kind), x.Since.Local().Format(time.DateTime))
			if x.Until != nil {
				line += ", until " + x.Until.Local().Format(time.DateTime)
			}
			if x.Progress != "" {
				line += " — " + x.Progress
			}
			if x.Message != "" {
				line += ": " + x.Message
			}
			fmt.Fprintln(w, line)
			if x.Approve != "" {
				fmt.Fprintf(w, "    approve: %s\n", x.Approve)
			}
			if x.Abort != "" {
				fmt.Fprintf(w, "    abort:   %s\n", x.Abort)
			}
		}
	}
	if len(d.Decisions) > 0 {
		fmt.Fprintln(w, "\nApprovals and pauses:")
		for _, x := range d.Decisions {
			line := fmt.Sprintf("  %s\t%s", x.ID, x.Decision)
			if x.By != "" {
				line += " by " + x.By
			}
			line += " at " + x.At.Local().Format(time.DateTime)
			if x.Reason != "" {
				line += ": " + x.Reason
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(d.OpenDiffs) > 0 {
		fmt.Fprintln(w, "\nOpen diffs (each locks its image until rejected or turned into a version):")
		for _, j := range d.OpenDiffs {
			fmt.Fprintf(w, "  diff %d\t%s\treject with: %s [--reinstall]\n", j.ID, j.Instance, j.Reject)
		}
	}
	switch d.Status {
	case "running":
		fmt.Fprintln(w, "\nA rollout is running in this state directory now.")
	case "unfinished":
		fmt.Fprintf(w, "\nThe last run did not finish (crashed or killed). Continue it with: %s\n", d.Next)
	case "interrupted":
		fmt.Fprintf(w, "\nThe last run was interrupted; its remote jobs may still run. Continue it with: %s\n", d.Next)
	}
	return w.Flush()
}

func waitWord(kind string) string {
	if kind == string(engine.WaitBake) {
		return "baking"
	}
	return "waiting for approval"
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
		return "unknown: " + err.Error()
	}
	if job == nil {
		return "unknown"
	}
	s := job.State.String()
	if job.Error != "" {
		// joberror is the API's free text and may quote a build URL.
		s += ": " + job.Error
	}
	return s
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
