package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/charmbracelet/x/term"
	"golang.org/x/time/rate"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
)

// connectOptions choose between the real API and the built-in simulator.
type connectOptions struct {
	sim      bool
	speed    float64
	scenario string
	// rateLimit caps requests per second; 0: the client's default for the
	// real API, none for the in-process simulator (it is not a shared
	// service to protect, and a cap there only slows large rollouts).
	rateLimit float64
}

// conn is a client, and the in-process simulator behind it with --sim.
type conn struct {
	client  *clanforge.Client
	sim     *sim.Server
	base    string // base URL the client talks to
	display string // base URL as shown to people
	// waits receives the client's waits (retries, holds, slow answers):
	// stderr lines during the pre-flight, the engine's notices during the
	// run.
	waits atomic.Pointer[func(clanforge.Wait)]
}

func (c *conn) Close() {
	if c.sim != nil {
		c.sim.Close()
	}
}

// onWait sends the client's waits to f from now on.
func (c *conn) onWait(f func(clanforge.Wait)) { c.waits.Store(&f) }

func (c *conn) wait(w clanforge.Wait) {
	if f := c.waits.Load(); f != nil {
		(*f)(w)
	}
}

func (env *Env) baseURL(p *plan.Plan) string {
	if u := env.Getenv("CLANFORGE_URL"); u != "" {
		return u
	}
	if p.ClanforgeURL != "" {
		return p.ClanforgeURL
	}
	return clanforge.DefaultBaseURL
}

func (env *Env) asid(p *plan.Plan) int64 {
	if p.ASID != 0 {
		return p.ASID
	}
	if s := env.Getenv("CLANFORGE_ASID"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return 0
}

// connect builds the client. With --sim it starts the simulator on a
// loopback port, ignoring clanforge.url and CLANFORGE_URL; without
// credentials in the environment the two share generated ones. Against the
// real API the credentials are CLANFORGE_TOKEN (sent as a Bearer token, as
// the API's current operator documents) or the CLANFORGE_ACCESS_KEY and
// CLANFORGE_SECRET_KEY pair (Basic); with both, the token wins.
func (env *Env) connect(ctx context.Context, p *plan.Plan, o connectOptions) (*conn, error) {
	access, secret := env.Getenv("CLANFORGE_ACCESS_KEY"), env.Getenv("CLANFORGE_SECRET_KEY")
	token := env.Getenv("CLANFORGE_TOKEN")
	asid := env.asid(p)
	if s := env.Getenv("CLANFORGE_ASID"); s != "" && p.ASID == 0 {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return nil, usageErr("CLANFORGE_ASID must be an integer account service id")
		}
	}
	c := &conn{}
	base := env.baseURL(p)
	rl := rate.Limit(o.rateLimit)
	if o.sim {
		srv, u, err := startSim(p, &asid, &access, &secret, token, o)
		if err != nil {
			return nil, err
		}
		c.sim, base = srv, u
		c.display = u + " (built-in simulator)"
		if o.rateLimit == 0 {
			rl = rate.Inf
		}
	} else {
		if asid == 0 {
			return nil, usageErr("no account service id: set clanforge.asid in the plan or CLANFORGE_ASID")
		}
		if token == "" && (access == "" || secret == "") {
			return nil, usageErr("no credentials: set CLANFORGE_TOKEN, or CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY (or use --sim)")
		}
		c.display = base
	}
	cfg := clanforge.Config{BaseURL: base, ASID: asid, AccessKey: access, SecretKey: secret, Token: token,
		UserAgent: "rollout", RateLimit: rl, OnWait: c.wait}
	if token != "" {
		// The token wins: no Basic header is sent at all.
		cfg.AccessKey, cfg.SecretKey = "", ""
	}
	cl, err := clanforge.New(cfg)
	if err != nil {
		c.Close()
		return nil, usageErr("%v", err)
	}
	c.client, c.base = cl, base
	return c, nil
}

// startSim starts the in-process simulator of p's inventory and returns it
// with its base URL. It accepts the environment's credentials; without
// any, the simulator and the client share generated ones.
func startSim(p *plan.Plan, asid *int64, access, secret *string, token string, o connectOptions) (*sim.Server, string, error) {
	if token == "" && (*access == "" || *secret == "") {
		*access, *secret = "sim-"+randomHex(8), randomHex(16)
		redact.AddBasicAuth(*access, *secret)
	}
	inv := sim.InventoryFromPlan(p)
	if *asid == 0 {
		*asid = inv.ASID
	}
	inv.ASID = *asid
	var sc sim.Scenario
	if o.scenario != "" {
		var err error
		if sc, err = sim.LoadScenario(o.scenario); err != nil {
			return nil, "", usageErr("%v", err)
		}
	}
	// Our own runs meet the simulator in strict mode: it refuses anything
	// a strict reading of the API reference refuses, so a client mistake
	// shows up here rather than in production.
	sc.Strict = true
	srv, err := sim.New(simConfig(inv, *access, *secret, token, sc, o.speed))
	if err != nil {
		return nil, "", fmt.Errorf("starting the simulator: %w", err)
	}
	u, err := srv.Start("127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("starting the simulator: %w", err)
	}
	return srv, u, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func stdoutIsTerminal() bool { return term.IsTerminal(os.Stdout.Fd()) }

// color reports whether output to w may be colored: a terminal, and no
// NO_COLOR in the environment.
func (env *Env) color(w any) bool {
	if env.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

func isTerminalFile(f *os.File) bool { return term.IsTerminal(f.Fd()) }

// simConfig is the simulator's configuration: it accepts the credentials
// the client will send, a token as Bearer and the key pair as Basic.
func simConfig(inv sim.Inventory, access, secret, token string, sc sim.Scenario, speed float64) sim.Config {
	return sim.Config{Inventory: inv, AccessKey: access, SecretKey: secret, Token: token, Scenario: sc, Speed: speed}
}
