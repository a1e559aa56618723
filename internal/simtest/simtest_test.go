package simtest_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
)

// TestStartServesThePlan: the client reaches the simulator of the plan's
// account, in strict mode, through a Front handler when one is set.
func TestStartServesThePlan(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("fleet", []string{"game-a", "game-b"}, 3, 2, "", "steps.diff.changed > 0", ""))
	if len(p.Machines) != 4 || len(p.Images) != 2 || p.ASID != 1234 {
		t.Fatalf("plan has %d machines, %d images, asid %d", len(p.Machines), len(p.Images), p.ASID)
	}
	var seen atomic.Int64
	e := simtest.Start(t, p, simtest.Scenario(t, ""), simtest.Front(func(s *sim.Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			s.ServeHTTP(w, r)
		})
	}))
	if e.Server.ASID() != 1234 {
		t.Errorf("simulator ASID %d", e.Server.ASID())
	}
	if _, err := e.Client.InstallStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 1 || len(e.Server.Requests()) != 1 {
		t.Errorf("front saw %d requests, simulator %d; want 1 each", seen.Load(), len(e.Server.Requests()))
	}
}

// TestStartIsStrict: strict mode is on unless Lenient, so a request that a
// strict reading of the API refuses (image/options with imageid alone, which
// the client never sends) is refused.
func TestStartIsStrict(t *testing.T) {
	p := simtest.Plan(t, simtest.FleetPlan("strict", []string{"game"}, 1, 1, "", "", ""))
	for _, lenient := range []bool{false, true} {
		opts := []simtest.Option{simtest.OwnRefusals(), simtest.Credentials("ak", "sk")}
		if lenient {
			opts = append(opts, simtest.Lenient())
		}
		e := simtest.Start(t, p, sim.Scenario{}, opts...)
		req, err := http.NewRequest(http.MethodGet, e.URL+"/cfp/v1/image/options?accountserviceid=1234&imageid=5530", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("ak", "sk")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		refused := res.StatusCode == http.StatusBadRequest && len(e.Server.StrictRefusals()) == 1
		if refused == lenient {
			t.Errorf("lenient %v: answered %d, refusals %+v", lenient, res.StatusCode, e.Server.StrictRefusals())
		}
	}
}
