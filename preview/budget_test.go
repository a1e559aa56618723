package preview

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/simtest"
)

// TestBudgetScopeIsSaid: the preview says whether a step's failure budget
// counts all images together or each image on its own.
func TestBudgetScopeIsSaid(t *testing.T) {
	for _, tc := range []struct {
		extra, want string
	}{
		{"    max_failures: \"10%\"\n", "aborts the rollout when more than 3 of its 30 instances, all images together, fail"},
		{"    max_failures: \"10%\"\n    max_failures_per: image\n", "aborts the rollout when more than 1 of game-a's 10, or more than 1 of game-b's 10, or more than 1 of game-c's 10 fail"},
	} {
		p := simtest.Plan(t, simtest.FleetPlan("budget", []string{"game-a", "game-b", "game-c"}, 10, 4, tc.extra, "", ""))
		var b bytes.Buffer
		if err := Build(p, Options{}).Text(&b, false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("preview lacks %q:\n%s", tc.want, b.String())
		}
	}
}
