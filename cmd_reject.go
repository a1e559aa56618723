package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
)

func cmdReject(ctx context.Context, a *app, args []string) error {
	fs := newFlags("reject")
	vars := varFlags{}
	fs.Var(vars, "var", "override a plan variable (name=value), repeatable")
	diff := fs.Int64("diff", 0, "the diff to reject (required)")
	reinstall := fs.Bool("reinstall", false, "also reinstall the diff's machine to the image's last good version")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	planPath := fs.String("plan", "", "plan whose clanforge settings (url, asid) to use; else CLANFORGE_URL and CLANFORGE_ASID")
	pos, err := parseArgs(fs, "reject", args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && *planPath == "" {
		*planPath = pos[0]
	} else if len(pos) > 0 {
		return usageErr("rollout reject: unexpected arguments %v\nusage: rollout %s", pos, usageOf("reject"))
	}
	if *diff <= 0 {
		return usageErr("rollout reject: --diff N is required\nusage: rollout %s", usageOf("reject"))
	}
	p := &plan.Plan{}
	if *planPath != "" {
		if p, err = a.loadPlan(*planPath, vars); err != nil {
			return err
		}
	}
	conn, err := a.connect(ctx, p, connectOptions{})
	if err != nil {
		return err
	}
	defer conn.Close()
	c := conn.client
	d, err := c.DiffStatus(ctx, *diff)
	if err != nil && ctx.Err() != nil {
		return &exitError{code: exitInterrupted, msg: "interrupted: nothing was sent"}
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
		if err := a.confirm(q); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return &exitError{code: exitInterrupted, msg: "interrupted: nothing was sent"}
	}
	res, err := c.RejectDiff(ctx, *diff, *reinstall)
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted while rejecting diff %d: check it with rollout status --refresh or image/options before trying again", *diff)}
		}
		var ue *clanforge.OutcomeUnknownError
		if errors.As(err, &ue) {
			return failErr("rollout reject: the answer was lost and the outcome could not be settled; check with: rollout status --refresh, or image/options: %v", err)
		}
		return failErr("rollout reject: %v", err)
	}
	fmt.Fprintf(a.stdout, "diff %d rejected; its image is unlocked\n", res.DiffID)
	if res.Uninstall != nil {
		fmt.Fprintf(a.stdout, "reinstall job %d started (%s)\n", res.Uninstall.ID, res.Uninstall.State)
	}
	return nil
}

func cmdSim(ctx context.Context, a *app, args []string) error {
	fs := newFlags("sim")
	vars := varFlags{}
	fs.Var(vars, "var", "override a plan variable (name=value), repeatable")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	planPath := fs.String("plan", "", "plan whose images and machines make the inventory (required)")
	speed := fs.Float64("speed", 0, "speed factor for every job duration (default 1)")
	scenario := fs.String("scenario", "", "scenario file: durations, injected failures and API faults")
	pos, err := parseArgs(fs, "sim", args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && *planPath == "" {
		*planPath = pos[0]
	} else if len(pos) > 0 {
		return usageErr("rollout sim: unexpected arguments %v\nusage: rollout %s", pos, usageOf("sim"))
	}
	if *planPath == "" {
		return usageErr("rollout sim: --plan PLAN is required\nusage: rollout %s", usageOf("sim"))
	}
	if *speed < 0 {
		return usageErr("rollout sim: --speed must be positive")
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usageErr("rollout sim: --listen %q: want host:port, e.g. 127.0.0.1:8080", *listen)
	}
	p, err := a.loadPlan(*planPath, vars)
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
	access, secret := a.getenv("CLANFORGE_ACCESS_KEY"), a.getenv("CLANFORGE_SECRET_KEY")
	if access == "" || secret == "" {
		return usageErr("rollout sim: set CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY to the credentials the simulator should accept\n" +
			"(any values will do for a local simulator, e.g. export CLANFORGE_ACCESS_KEY=demo CLANFORGE_SECRET_KEY=demo-secret)")
	}
	credNote := "the credentials in CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY"
	inv := sim.InventoryFromPlan(p)
	if id := a.asid(p); id != 0 {
		inv.ASID = id
	}
	srv, err := sim.New(sim.Config{Inventory: inv, AccessKey: access, SecretKey: secret, Scenario: sc, Speed: *speed})
	if err != nil {
		return failErr("rollout sim: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return failErr("rollout sim: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(a.stdout, "Clanforge simulator for plan %q listening on http://%s\n", p.Name, ln.Addr())
	fmt.Fprintf(a.stdout, "  account service id %d; accepts %s over Basic auth\n", inv.ASID, credNote)
	for _, img := range inv.Images {
		fmt.Fprintf(a.stdout, "  image %s (id %d)\n", img.Name, img.ID)
	}
	fmt.Fprintf(a.stdout, "  %d machines; speed %gx\n  try: curl -u \"$CLANFORGE_ACCESS_KEY:$CLANFORGE_SECRET_KEY\" 'http://%s/cfp/v1/imageinstall/status?accountserviceid=%d'\n", len(inv.Machines), max(*speed, sc.Speed, 1), ln.Addr(), inv.ASID)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return failErr("rollout sim: %v", err)
	}
	fmt.Fprintln(a.stdout, "simulator stopped")
	if ctx.Err() != nil {
		return &exitError{code: exitInterrupted}
	}
	return nil
}
