package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rollout/rollout/state"
)

// HistoryOptions are what `rollout history` is asked to show.
type HistoryOptions struct {
	Plan     string // the plan file or its name; "" : the only plan run here
	Vars     map[string]string
	StateDir string
	JSON     bool
	Sim      bool
}

func historyFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &HistoryOptions{}
	vars := addVarFlag(fs)
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory (default .rollout/<plan name>)")
	fs.BoolVar(&o.JSON, "json", false, "print the history as a JSON document")
	fs.BoolVar(&o.Sim, "sim", false, "show the runs against the built-in simulator (.rollout/<plan name>.sim)")
	return func(ctx context.Context, env *Env, args []string) error {
		name, err := atMostOnePlan("history", "plan", args)
		if err != nil {
			return err
		}
		o.Plan, o.Vars = name, vars
		return History(ctx, env, *o)
	}
}

// History lists every run of a plan recorded in its state directory, the
// journals --fresh set aside included: when and by whom each started, how
// it ended and how long it took, who approved what, and the remote ids it
// created.
func History(_ context.Context, env *Env, o HistoryOptions) error {
	loc, err := env.locate("history", o.Plan, o.Vars, o.StateDir, locateOptions{sim: o.Sim})
	if err != nil {
		return err
	}
	runs, err := state.History(loc.dir)
	if err != nil {
		return noJournalErr("history", loc.dir, err)
	}
	return printDoc(env.Stdout, historyDocument(runs, loc.dir), o.JSON)
}

// HistoryDoc is `rollout history --json`: version 1 of the document. New
// fields may be added within version 1; a change of meaning bumps V.
type HistoryDoc struct {
	V        int          `json:"v"`
	Plan     string       `json:"plan"`
	StateDir string       `json:"state_dir"`
	Runs     []HistoryRun `json:"runs"`
}

// HistoryRun is one run.
type HistoryRun struct {
	Journal string `json:"journal"`
	// Attempt is the run's place in its journal, from 1: a later attempt
	// resumed the rollout the first one started.
	Attempt  int        `json:"attempt"`
	Plan     string     `json:"plan"`
	PlanHash string     `json:"plan_hash,omitempty"`
	PID      int        `json:"pid"`
	User     string     `json:"user,omitempty"`
	Host     string     `json:"host,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	// Outcome is the run's verdict (succeeded, failed, aborted,
	// interrupted), "running" while a run holds the directory, or
	// "unfinished" for a run that crashed or was killed.
	Outcome string `json:"outcome"`
	// DurationMS is finish minus start; for an unfinished run, up to its
	// last record.
	DurationMS int64          `json:"duration_ms"`
	Resumed    bool           `json:"resumed"`
	Sim        bool           `json:"sim,omitempty"`
	API        string         `json:"api,omitempty"`
	PlanFile   string         `json:"plan_file,omitempty"`
	Outcomes   map[string]int `json:"outcomes"`
	Approvals  []HistoryWait  `json:"approvals"`
	// Waiting lists what the run waited for when it stopped.
	Waiting []HistoryWait     `json:"waiting,omitempty"`
	Created []state.CreatedID `json:"created"`
}

// HistoryWait is one decision on a wait (or a wait left open).
type HistoryWait struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"`
	Decision string     `json:"decision,omitempty"`
	By       string     `json:"by,omitempty"`
	At       *time.Time `json:"at,omitempty"`
	Since    time.Time  `json:"since"`
	Reason   string     `json:"reason,omitempty"`
}

func historyDocument(runs []state.HistoryRun, dir string) *HistoryDoc {
	d := &HistoryDoc{V: 1, StateDir: dir, Runs: []HistoryRun{}}
	_, held := state.Holder(dir)
	for i, r := range runs {
		h := HistoryRun{Journal: r.Journal, Attempt: r.Index, Plan: r.Plan, PlanHash: r.PlanHash, PID: r.PID, User: r.User,
			Host: r.Host, Started: r.Started.UTC(), Resumed: r.Resumed, Sim: r.Sim, API: r.API, PlanFile: r.PlanFile,
			Outcomes: r.Outcomes, Approvals: []HistoryWait{}, Created: r.Created}
		if h.Created == nil {
			h.Created = []state.CreatedID{}
		}
		for j := range h.Created {
			h.Created[j].At = h.Created[j].At.UTC()
		}
		end := r.Last
		switch {
		case !r.Finished.IsZero():
			h.Finished, h.Outcome, end = utcOrNil(r.Finished), r.Verdict, r.Finished
		case held && i == len(runs)-1 && r.Journal == state.JournalName:
			h.Outcome = "running"
		default:
			h.Outcome = "unfinished"
		}
		h.DurationMS = end.Sub(r.Started).Milliseconds()
		for _, w := range r.Decisions {
			at := w.At.UTC()
			h.Approvals = append(h.Approvals, HistoryWait{ID: w.ID, Kind: w.Kind, Decision: w.Decision, By: w.By, At: &at, Since: w.Since.UTC(), Reason: w.Reason})
		}
		for _, w := range r.Waiting {
			h.Waiting = append(h.Waiting, HistoryWait{ID: w.ID, Kind: w.Kind, Since: w.Since.UTC()})
		}
		d.Runs = append(d.Runs, h)
		d.Plan = r.Plan
	}
	return d
}

// text renders the history for people, oldest run first.
func (d *HistoryDoc) text(out io.Writer) error {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "History of %s (%s): %s\n", d.Plan, d.StateDir, plural(len(d.Runs), "run"))
	journal := ""
	for i, r := range d.Runs {
		if r.Journal != journal {
			journal = r.Journal
			what := "the current journal"
			if journal != state.JournalName {
				what = "set aside by --fresh"
			}
			fmt.Fprintf(w, "\n%s (%s, plan hash %s):\n", journal, what, shortHash(r.PlanHash))
		}
		who := r.User
		if r.Host != "" {
			who += "@" + r.Host
		}
		kind := "run"
		if r.Resumed {
			kind = "resumed"
		}
		dur := (time.Duration(r.DurationMS) * time.Millisecond).Round(time.Second)
		took := "took " + dur.String()
		if r.Finished == nil {
			took = "for at least " + dur.String()
		}
		sim := ""
		if r.Sim {
			sim = " (simulator)"
		}
		fmt.Fprintf(w, "  #%d %s %s by %s, pid %d%s: %s, %s\n", i+1, kind, r.Started.Local().Format(time.DateTime), orUnknownWho(who), r.PID, sim,
			strings.ToUpper(r.Outcome), took)
		if len(r.Outcomes) > 0 {
			var parts []string
			for _, k := range sortedKeys(r.Outcomes) {
				parts = append(parts, fmt.Sprintf("%s %d", k, r.Outcomes[k]))
			}
			fmt.Fprintf(w, "      steps: %s\n", strings.Join(parts, ", "))
		}
		for _, a := range r.Approvals {
			line := fmt.Sprintf("      %s: %s", a.ID, a.Decision)
			if a.By != "" {
				line += " by " + a.By
			}
			if a.At != nil {
				line += " at " + a.At.Local().Format(time.DateTime)
			}
			if a.Reason != "" {
				line += ": " + a.Reason
			}
			fmt.Fprintln(w, line)
		}
		for _, x := range r.Waiting {
			fmt.Fprintf(w, "      %s: still waiting when the run stopped (since %s)\n", x.ID, x.Since.Local().Format(time.DateTime))
		}
		if len(r.Created) > 0 {
			fmt.Fprintf(w, "      ids: %s\n", createdText(r.Created))
		}
	}
	return w.Flush()
}

func orUnknownWho(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "—"
	}
	return h
}

// createdText groups ids by kind: "update 101; diff 102; version 103;
// install 9100, 9101 (2)".
func createdText(ids []state.CreatedID) string {
	by := map[string][]string{}
	var kinds []string
	for _, c := range ids {
		if _, ok := by[c.Kind]; !ok {
			kinds = append(kinds, c.Kind)
		}
		v := fmt.Sprint(c.ID)
		if c.Kind == "switch" {
			v = c.Fleet
			if c.Profile != "" {
				v += " to profile " + c.Profile
			}
		}
		if c.Outside {
			v += " (manual)"
		}
		by[c.Kind] = append(by[c.Kind], v)
	}
	order := map[string]int{"update": 0, "diff": 1, "version": 2, "mirror": 3, "install": 4, "switch": 5, "reject": 6, "uninstall": 7}
	sort.SliceStable(kinds, func(a, b int) bool { return order[kinds[a]] < order[kinds[b]] })
	var parts []string
	for _, k := range kinds {
		vs := by[k]
		s := k + " " + strings.Join(vs, ", ")
		if len(vs) > 8 {
			s = fmt.Sprintf("%s %s … %s (%d)", k, strings.Join(vs[:4], ", "), vs[len(vs)-1], len(vs))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
