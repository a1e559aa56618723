package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/state"
)

// RejectOptions name the diff `rollout reject` rejects.
type RejectOptions struct {
	Diff      int64
	Reinstall bool
	Yes       bool
	Plan      string // whose clanforge settings to use; "" : the environment's
	Vars      map[string]string
	// StateDir is the journal the reject is recorded in; "" : the plan's,
	// when a plan is named.
	StateDir string
}

func rejectFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &RejectOptions{}
	vars := addVarFlag(fs)
	fs.Int64Var(&o.Diff, "diff", 0, "the diff to reject (required)")
	fs.BoolVar(&o.Reinstall, "reinstall", false, "also reinstall the diff's machine to the image's last good version")
	fs.BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	fs.StringVar(&o.Plan, "plan", "", "plan whose clanforge settings (url, asid) to use; else CLANFORGE_URL and CLANFORGE_ASID")
	fs.StringVar(&o.StateDir, "state-dir", "", "journal to record the reject in (default: the plan's, .rollout/<plan name>)")
	return func(ctx context.Context, env *Env, args []string) error {
		if err := planArgOrFlag("reject", args, &o.Plan); err != nil {
			return err
		}
		o.Vars = vars
		return Reject(ctx, env, *o)
	}
}

// Reject rejects one open diff, after a confirmation: the manual escape
// hatch for a diff that locks an image.
func Reject(ctx context.Context, env *Env, o RejectOptions) error {
	diff, reinstall, yes, planPath := &o.Diff, &o.Reinstall, &o.Yes, &o.Plan
	var err error
	if *diff <= 0 {
		return usageErr("rollout reject: --diff N is required\nusage: rollout %s", Find("reject").Usage)
	}
	p := &plan.Plan{}
	if *planPath != "" {
		if p, err = env.loadPlan(*planPath, o.Vars); err != nil {
			return err
		}
	}
	conn, err := env.connect(ctx, p, connectOptions{})
	if err != nil {
		return err
	}
	defer conn.Close()
	c := conn.client
	d, err := c.DiffStatus(ctx, *diff)
	if err != nil && ctx.Err() != nil {
		return interruptedErr("interrupted: nothing was sent")
	}
	if err != nil {
		return failErr("rollout reject: reading diff %d: %v", *diff, err)
	}
	what := "reject"
	if *reinstall {
		what = "reject, and reinstall its machine to the image's last good version,"
	}
	if !*yes {
		q := fmt.Sprintf("About to %s diff %d (state %s; %d added, %d modified, %d removed) on account service %d at %s.",
			what, *diff, d.State, len(d.Added), len(d.Modified), len(d.Removed), c.ASID(), conn.display)
		if err := env.confirm(q); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return interruptedErr("interrupted: nothing was sent")
	}
	rec := env.rejectRecorder(o, p, *diff)
	defer rec.close()
	if err := rec.intent(); err != nil {
		return err
	}
	res, err := c.RejectDiff(ctx, *diff, *reinstall)
	rec.result(err)
	if err != nil {
		if ctx.Err() != nil {
			return interruptedErr("interrupted while rejecting diff %d: check it with rollout status --refresh or image/options before trying again", *diff)
		}
		var ue *clanforge.OutcomeUnknownError
		if errors.As(err, &ue) {
			return failErr("rollout reject: the answer was lost and the outcome could not be settled; check with: rollout status --refresh, or image/options: %v", err)
		}
		return failErr("rollout reject: %v", err)
	}
	printf(env.Stdout, "diff %d rejected; its image is unlocked\n", res.DiffID)
	if res.Uninstall != nil {
		printf(env.Stdout, "reinstall job %d started (%s)\n", res.Uninstall.ID, res.Uninstall.State)
	}
	return nil
}

// rejectJournal records a manual reject in the journal of the run that
// made the diff, with the same discipline as a run (intent before the call,
// result after), so that status no longer lists the diff as open. Without a
// journal, or while a run holds it, the reject is still made and that is
// said.
type rejectJournal struct {
	env  *Env
	j    *state.Journal
	key  string
	diff int64
	// params are the call's parameters as recorded.
	params map[string]string
}

func (env *Env) rejectRecorder(o RejectOptions, p *plan.Plan, diff int64) *rejectJournal {
	r := &rejectJournal{env: env, diff: diff}
	dir := o.StateDir
	if dir == "" && p != nil && p.Name != "" {
		dir = defaultStateDir(p, false)
	}
	if dir == "" {
		return r
	}
	j, err := state.OpenExisting(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return r
	case err != nil:
		printf(env.Stderr, "rollout reject: not recorded in the journal in %s: %v\n", dir, err)
		return r
	}
	r.j = j
	r.key = fmt.Sprintf("manual-reject@%d imagediff/reject#%d", diff, time.Now().UnixNano())
	r.params = map[string]string{"diffid": fmt.Sprint(diff), "reinstall": boolParam(o.Reinstall)}
	return r
}

func (r *rejectJournal) intent() error {
	if r.j == nil {
		return nil
	}
	if err := r.j.Intent(r.key, fmt.Sprintf("/cfp/v1/imagediff/%d/reject", r.diff), r.params); err != nil {
		return failErr("rollout reject: recording the reject in the journal: %v; nothing was sent", err)
	}
	return nil
}

func (r *rejectJournal) result(callErr error) {
	if r.j == nil {
		return
	}
	// The reinstall job is not recorded: it has no status endpoint, so a
	// journal could never see it end and would list it as open forever.
	if err := r.j.Result(r.key, 0, callErr); err != nil {
		printf(r.env.Stderr, "rollout reject: recording the answer in the journal: %v\n", err)
	}
}

func (r *rejectJournal) close() {
	if r.j != nil {
		r.j.Close()
	}
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// SimOptions are what `rollout sim` serves.
type SimOptions struct {
	Listen   string
	Plan     string
	Vars     map[string]string
	Speed    float64
	Scenario string
}

func simFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &SimOptions{}
	vars := addVarFlag(fs)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.Plan, "plan", "", "plan whose images and machines make the inventory (required)")
	fs.Float64Var(&o.Speed, "speed", 0, "speed factor for every job duration (default 1)")
	fs.StringVar(&o.Scenario, "scenario", "", "scenario file: durations, injected failures and API faults")
	return func(ctx context.Context, env *Env, args []string) error {
		if err := planArgOrFlag("sim", args, &o.Plan); err != nil {
			return err
		}
		if o.Plan == "" {
			return usageErr("rollout sim: --plan PLAN is required\nusage: rollout %s", Find("sim").Usage)
		}
		speedSet := false
		fs.Visit(func(f *flag.Flag) { speedSet = speedSet || f.Name == "speed" })
		if speedSet && o.Speed <= 0 {
			return usageErr("rollout sim: --speed must be greater than 0 (1 is real time, 10 ten times faster)")
		}
		o.Vars = vars
		return Sim(ctx, env, *o)
	}
}

// Sim serves the built-in simulator until ctx ends.
func Sim(ctx context.Context, env *Env, o SimOptions) error {
	listen, planPath, speed, scenario := &o.Listen, &o.Plan, &o.Speed, &o.Scenario
	var err error
	if *speed < 0 {
		return usageErr("rollout sim: --speed must be positive")
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usageErr("rollout sim: --listen %q: want host:port, e.g. 127.0.0.1:8080", *listen)
	}
	p, err := env.loadPlan(*planPath, o.Vars)
	if err != nil {
		return err
	}
	var sc sim.Scenario
	if *scenario != "" {
		if sc, err = sim.LoadScenario(*scenario); err != nil {
			return usageErr("%v", err)
		}
	}
	// The simulator accepts exactly the credentials a client of it would
	// send: those of the same environment variables.
	access, secret := env.Getenv("CLANFORGE_ACCESS_KEY"), env.Getenv("CLANFORGE_SECRET_KEY")
	token := env.Getenv("CLANFORGE_TOKEN")
	if token == "" && (access == "" || secret == "") {
		return usageErr("rollout sim: set CLANFORGE_TOKEN, or CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY, to the credentials the simulator should accept\n" +
			"(any values will do for a local simulator, e.g. export CLANFORGE_ACCESS_KEY=demo CLANFORGE_SECRET_KEY=demo-secret)")
	}
	var creds []string
	if token != "" {
		creds = append(creds, "the token in CLANFORGE_TOKEN as Bearer")
	}
	if access != "" && secret != "" {
		creds = append(creds, "CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY over Basic auth")
	}
	credNote := strings.Join(creds, ", and ")
	inv := sim.InventoryFromPlan(p)
	if id := env.asid(p); id != 0 {
		inv.ASID = id
	}
	srv, err := sim.New(simConfig(inv, access, secret, token, sc, *speed))
	if err != nil {
		return failErr("rollout sim: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return failErr("rollout sim: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	printf(env.Stdout, "Clanforge simulator for plan %q listening on http://%s\n", p.Name, ln.Addr())
	printf(env.Stdout, "  account service id %d; accepts %s\n", inv.ASID, credNote)
	for _, img := range inv.Images {
		printf(env.Stdout, "  image %s (id %d)\n", img.Name, img.ID)
	}
	auth := `-u "$CLANFORGE_ACCESS_KEY:$CLANFORGE_SECRET_KEY"`
	if token != "" {
		auth = `-H "Authorization: Bearer $CLANFORGE_TOKEN"`
	}
	printf(env.Stdout, "  %d machines; speed %gx\n", len(inv.Machines), max(*speed, sc.Speed, 1))
	fmt.Fprintf(env.Stdout, "  try: curl %s 'http://%s/cfp/v1/imageinstall/status?accountserviceid=%d'\n", auth, ln.Addr(), inv.ASID)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return failErr("rollout sim: %v", err)
	}
	printf(env.Stdout, "simulator stopped\n")
	if ctx.Err() != nil {
		return interruptedErr("")
	}
	return nil
}
