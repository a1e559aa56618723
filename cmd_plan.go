package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/preview"
	"github.com/rollout/rollout/schema"
)

// loadPlan loads a plan and turns every plan error into exit status 2 with
// all the errors, positioned, on stderr.
func (a *app) loadPlan(path string, vars varFlags) (*plan.Plan, error) {
	p, err := plan.Load(path, plan.Options{Vars: vars})
	if err == nil {
		return p, nil
	}
	var pe plan.Errors
	if errors.As(err, &pe) {
		return nil, &exitError{code: exitUsage, msg: pe.Render(a.color(a.stderr))}
	}
	return nil, usageErr("%v", err)
}

func cmdValidate(ctx context.Context, a *app, args []string) error {
	fs := newFlags("validate")
	vars := varFlags{}
	fs.Var(vars, "var", "override a plan variable (name=value), repeatable")
	pos, err := parseArgs(fs, "validate", args)
	if err != nil {
		return err
	}
	path, err := onePlan("validate", pos)
	if err != nil {
		return err
	}
	p, err := a.loadPlan(path, vars)
	if err != nil {
		return err
	}
	counts := map[plan.StepType]int{}
	for _, in := range p.Instances {
		counts[in.Step.Type]++
	}
	fmt.Fprintf(a.stdout, "%s: ok: plan %q, %s, %s, %s, %s (%s), concurrency %d\n",
		path, p.Name, plural(len(p.Images), "image"), plural(len(p.Machines), "machine"), plural(len(p.Targets), "target"),
		plural(len(p.Instances), "step instance"), plural(counts[plan.TypeInstall], "install"), p.Concurrency)
	return nil
}

func cmdPlan(ctx context.Context, a *app, args []string) error {
	fs := newFlags("plan")
	vars := varFlags{}
	fs.Var(vars, "var", "override a plan variable (name=value), repeatable")
	all := fs.Bool("all", false, "list every instance and machine instead of summarizing")
	asJSON := fs.Bool("json", false, "print the preview as JSON")
	simFlag := fs.Bool("sim", false, "run the pre-flight against the built-in simulator")
	offline := fs.Bool("offline", false, "do not contact the API for the read-only pre-flight")
	pos, err := parseArgs(fs, "plan", args)
	if err != nil {
		return err
	}
	path, err := onePlan("plan", pos)
	if err != nil {
		return err
	}
	p, err := a.loadPlan(path, vars)
	if err != nil {
		return err
	}
	opt := preview.Options{All: *all}
	// The pre-flight only reads. It is made when credentials are there (or
	// with --sim), so that the preview shows locks and counters.
	if !*offline {
		conn, err := a.connect(ctx, p, connectOptions{sim: *simFlag, speed: 1})
		switch {
		case err != nil:
			opt.PreflightErr = err.Error()
			var ee *exitError
			if errors.As(err, &ee) {
				opt.PreflightErr = ee.msg
			}
		default:
			defer conn.Close()
			opt.BaseURL, opt.ASID = conn.display, conn.client.ASID()
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			rep, perr := engine.Preflight(pctx, conn.client, p, nil)
			cancel()
			opt.Preflight = rep
			if perr != nil {
				opt.PreflightErr = perr.Error()
			}
		}
	}
	if opt.ASID == 0 {
		opt.ASID = a.asid(p)
	}
	if opt.BaseURL == "" {
		opt.BaseURL = a.baseURL(p)
	}
	if ctx.Err() != nil {
		return &exitError{code: exitInterrupted, msg: "interrupted during the pre-flight; nothing was changed"}
	}
	doc := preview.Build(p, opt)
	if *asJSON {
		return doc.JSON(a.stdout)
	}
	return doc.Text(a.stdout, *all)
}

func cmdSchema(ctx context.Context, a *app, args []string) error {
	fs := newFlags("schema")
	pos, err := parseArgs(fs, "schema", args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("rollout schema takes no arguments")
	}
	_, err = a.stdout.Write(schema.JSON)
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
