package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAutoApprovedPauseAnnouncesEachWaveOnce: with --auto-approve, the
// approval after wave 1 ends as soon as it starts, and the wave after it
// is announced once: one line, one wave event in the event log and one
// wave notification. (The engine announced it twice: ending the wait
// inside the check of whether the wave may open opened and announced it,
// and the check then announced it again. A decision restored from the
// journal on a resume ends its wait by the same path.)
func TestAutoApprovedPauseAnnouncesEachWaveOnce(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t)
	src := approvePlan("    pause_after: [approve]\n") + fmt.Sprintf(`notify:
  - url: %q
    format: json
    events: [wave]
`, hook.URL)
	f := newFixture(t, src, fastScenario)
	cmd, out := f.start(f.runArgs("--auto-approve")...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: exit %d\n%s", exitCode(err), out)
	}
	for _, line := range []string{"install game: wave 1/2 started", "install game: wave 2/2 started"} {
		if n := strings.Count(out.String(), line); n != 1 {
			t.Errorf("%q printed %d times, want once:\n%s", line, n, out)
		}
	}
	if !strings.Contains(out.String(), "install@game after wave 1 approved automatically") {
		t.Errorf("the pause was not auto-approved:\n%s", out)
	}
	log, err := os.ReadFile(filepath.Join(f.stateDir(), "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	waves := map[int]int{}
	for _, line := range strings.Split(string(log), "\n") {
		var ev struct {
			T    string `json:"t"`
			Wave int    `json:"wave"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.T == "wave" {
			waves[ev.Wave]++
		}
	}
	if waves[0] != 1 || waves[1] != 1 || len(waves) != 2 {
		t.Errorf("wave events in the event log by wave: %v, want one each of 0 and 1", waves)
	}
	if got := hook.counts(); got["json wave"] != 2 || len(got) != 1 {
		t.Errorf("the webhook got %v, want 2 wave messages", got)
	}
	checkOneJobPerIntent(t, f.sim)
}
