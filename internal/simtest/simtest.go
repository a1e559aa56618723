// Package simtest is test support, imported only from _test.go files and
// from the fleetplan tool beside it (never by the command users get): it
// owns the fixture that tests of several packages share, a Clanforge
// simulator served over real HTTP in strict mode with a client pointed at
// it, the YAML of the fleet plan those tests roll out, and the yardsticks
// of the polling benchmark (the ideal schedule of a run, and a 1 s polling
// script's, see ideal.go).
//
// Strict mode is on by default because the simulator then refuses what a
// strict reading of the API reference refuses, which holds every test that
// goes through the client to the documented API; Start reports each refusal
// as a test error when the test ends.
package simtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/plan"
)

// Env is a running simulator and a client of it.
type Env struct {
	Server *sim.Server
	// URL is the base URL the client talks to: the simulator's own, or
	// that of the handler set with Front.
	URL    string
	Client *clanforge.Client
}

// Option changes what Start sets up.
type Option func(*settings)

type settings struct {
	access, secret string
	token          string
	inv            *sim.Inventory
	clock          sim.Clock
	lenient        bool
	ownRefusals    bool
	readAttempts   int
	front          func(*sim.Server) http.Handler
}

// Credentials sets the only keys the simulator accepts, and the client's.
// The default keys are fine unless a test looks at them.
func Credentials(access, secret string) Option {
	return func(s *settings) { s.access, s.secret = access, secret }
}

// Token makes the simulator accept the bearer token tok, and the client
// send only it (no Basic header).
func Token(tok string) Option {
	return func(s *settings) { s.token = tok }
}

// Inventory serves inv instead of the plan's inventory; Start's plan may
// then be nil.
func Inventory(inv sim.Inventory) Option {
	return func(s *settings) { s.inv = &inv }
}

// Clock runs the simulator on c (a *sim.FakeClock, typically) instead of
// the wall clock.
func Clock(c sim.Clock) Option {
	return func(s *settings) { s.clock = c }
}

// Lenient leaves strict mode as the scenario sets it instead of turning it
// on.
func Lenient() Option {
	return func(s *settings) { s.lenient = true }
}

// OwnRefusals is for a test that provokes strict refusals on purpose and
// checks Server.StrictRefusals itself: Start then does not report them.
func OwnRefusals() Option {
	return func(s *settings) { s.ownRefusals = true }
}

// ReadAttempts bounds the client's attempts at a read
// (clanforge.Config.MaxReadAttempts); by default it retries until its
// context ends.
func ReadAttempts(n int) Option {
	return func(s *settings) { s.readAttempts = n }
}

// Front serves the handler f returns in front of the simulator, for a test
// that stands between the client and the simulator; the client and Env.URL
// then go through it.
func Front(f func(*sim.Server) http.Handler) Option {
	return func(s *settings) { s.front = f }
}

// Start serves the simulator of p's inventory (sim.InventoryFromPlan) on a
// free loopback port with scenario sc, in strict mode unless Lenient, and
// returns it with a client of the simulator's account. The client has no
// rate limit and a backoff of milliseconds, so that faults cost a test
// little time. The server is closed when the test ends.
func Start(tb testing.TB, p *plan.Plan, sc sim.Scenario, opts ...Option) *Env {
	tb.Helper()
	s := settings{access: "simtest-access", secret: "simtest-secret"}
	for _, o := range opts {
		o(&s)
	}
	var inv sim.Inventory
	switch {
	case s.inv != nil:
		inv = *s.inv
	case p != nil:
		inv = sim.InventoryFromPlan(p)
	default:
		tb.Fatal("simtest.Start: neither a plan nor an Inventory option")
	}
	if !s.lenient {
		sc.Strict = true
	}
	srv, err := sim.New(sim.Config{Inventory: inv, AccessKey: s.access, SecretKey: s.secret, Token: s.token, Scenario: sc, Clock: s.clock})
	if err != nil {
		tb.Fatalf("simulator: %v", err)
	}
	if !s.ownRefusals {
		tb.Cleanup(func() {
			for _, r := range srv.StrictRefusals() {
				tb.Errorf("strict refusal of %s: %s", r.Path, r.Strict)
			}
		})
	}
	var base string
	if s.front != nil {
		hs := httptest.NewServer(s.front(srv))
		tb.Cleanup(hs.Close)
		base = hs.URL
	} else {
		if base, err = srv.Start("127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { srv.Close() })
	}
	access, secret := s.access, s.secret
	if s.token != "" {
		access, secret = "", ""
	}
	c, err := clanforge.New(clanforge.Config{
		BaseURL: base, ASID: srv.ASID(), AccessKey: access, SecretKey: secret, Token: s.token,
		RateLimit: rate.Inf, MaxReadAttempts: s.readAttempts, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	return &Env{Server: srv, URL: base, Client: c}
}

// Plan parses src as a plan named after the test, failing the test on an
// error. ${env:...} finds nothing, so that no test depends on the
// environment of the machine that runs it.
func Plan(tb testing.TB, src string) *plan.Plan {
	tb.Helper()
	p, err := plan.Parse(tb.Name()+".yaml", []byte(src), plan.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		tb.Fatalf("plan: %v", err)
	}
	return p
}

// Scenario parses a simulator scenario, failing the test on an error; ""
// is the calm scenario.
func Scenario(tb testing.TB, src string) sim.Scenario {
	tb.Helper()
	sc, err := sim.ParseScenario([]byte(src))
	if err != nil {
		tb.Fatalf("scenario: %v", err)
	}
	return sc
}
