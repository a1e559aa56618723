package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/preview"
	"github.com/rollout/rollout/schema"
	"github.com/rollout/rollout/steps"
)

func validateFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	vars := addVarFlag(fs)
	return func(ctx context.Context, env *Env, args []string) error {
		path, err := onePlan("validate", args)
		if err != nil {
			return err
		}
		return Validate(env, path, vars)
	}
}

// Validate loads a plan and prints a one-line summary of it.
func Validate(env *Env, path string, vars map[string]string) error {
	p, err := env.loadPlan(path, vars)
	if err != nil {
		return err
	}
	counts := map[plan.StepType]int{}
	for _, in := range p.Instances {
		counts[in.Step.Type]++
	}
	// Every warning the preview shows, validate shows too.
	for _, w := range p.Warnings() {
		printf(env.Stderr, "%s\n", w.String())
	}
	printf(env.Stdout, "%s: ok: plan %q, %s, %s, %s, %s (%s), concurrency %d\n",
		path, p.Name, plural(len(p.Images), "image"), plural(len(p.Machines), "machine"), plural(len(p.Targets), "target"),
		plural(len(p.Instances), "step instance"), plural(counts[plan.TypeInstall], "install"), p.Concurrency)
	return nil
}

// PlanOptions are what `rollout plan` is asked to show.
type PlanOptions struct {
	Path    string
	Vars    map[string]string
	All     bool
	JSON    bool
	Sim     bool
	Offline bool
	// PreflightTimeout bounds the read-only pre-flight; 0: a minute.
	PreflightTimeout time.Duration
}

func planFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	o := &PlanOptions{}
	vars := addVarFlag(fs)
	fs.BoolVar(&o.All, "all", false, "list every instance and machine instead of summarizing")
	fs.BoolVar(&o.JSON, "json", false, "print the preview as JSON")
	fs.BoolVar(&o.Sim, "sim", false, "run the pre-flight against the built-in simulator")
	fs.BoolVar(&o.Offline, "offline", false, "do not contact the API for the read-only pre-flight")
	fs.DurationVar(&o.PreflightTimeout, "preflight-timeout", DefaultPreflightTimeout, "give up the read-only pre-flight after this long")
	return func(ctx context.Context, env *Env, args []string) error {
		path, err := onePlan("plan", args)
		if err != nil {
			return err
		}
		o.Path, o.Vars = path, vars
		return Plan(ctx, env, *o)
	}
}

// Plan prints the dry run of a plan. It never sends a state-changing call:
// the pre-flight, made when credentials are there (or with --sim), only
// reads, so that the preview shows locks and counters.
func Plan(ctx context.Context, env *Env, o PlanOptions) error {
	if o.PreflightTimeout <= 0 {
		o.PreflightTimeout = DefaultPreflightTimeout
	}
	p, err := env.loadPlan(o.Path, o.Vars)
	if err != nil {
		return err
	}
	opt := preview.Options{All: o.All}
	if !o.Offline {
		conn, err := env.connect(ctx, p, connectOptions{sim: o.Sim, speed: 1})
		switch {
		case err != nil:
			opt.PreflightErr = err.Error()
		default:
			defer conn.Close()
			opt.BaseURL, opt.ASID = conn.display, conn.client.ASID()
			pctx, cancel := context.WithTimeout(ctx, o.PreflightTimeout)
			quiet := env.sayPreflight(conn, o.PreflightTimeout)
			rep, perr := steps.Preflight(pctx, conn.client, p, nil)
			quiet()
			cancel()
			opt.Preflight = rep
			if perr != nil {
				opt.PreflightErr = perr.Error()
				if errors.Is(perr, context.DeadlineExceeded) && ctx.Err() == nil {
					opt.PreflightErr = fmt.Sprintf("%s did not answer within %s (--preflight-timeout): %v", conn.display, o.PreflightTimeout, perr)
				}
			}
		}
	}
	if opt.ASID == 0 {
		opt.ASID = env.asid(p)
	}
	if opt.BaseURL == "" {
		opt.BaseURL = env.baseURL(p)
	}
	if ctx.Err() != nil {
		return interruptedErr("interrupted during the pre-flight; nothing was changed")
	}
	doc := preview.Build(p, opt)
	if o.JSON {
		return doc.JSON(env.Stdout)
	}
	return doc.Text(env.Stdout, o.All)
}

func schemaFlags(fs *flag.FlagSet) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		if len(args) > 0 {
			return usageErr("rollout schema takes no arguments")
		}
		_, err := env.Stdout.Write(schema.JSON)
		return err
	}
}
