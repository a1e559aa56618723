package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rollout/rollout/engine"
)

// TestCutoverProgress: a ready step's counters per region and a switch's
// servers per fleet are said in plain lines (a line for each new count,
// none for a repeated one) and carried in JSON job_progress events.
func TestCutoverProgress(t *testing.T) {
	ready := func(state int, name, detail string) engine.JobInfo {
		return engine.JobInfo{Kind: "ready", State: state, StateName: name, Detail: detail}
	}
	sw := func(state int, name, detail string, pct int) engine.JobInfo {
		return engine.JobInfo{Kind: "switch", State: state, StateName: name, Progress: pct, Detail: detail}
	}
	events := []struct {
		id  string
		job engine.JobInfo
	}{
		{"fleet_ready@game-b", ready(4, "waiting", "3 pending, 5 completed, 0 failed (eu: 2 pending, 2 completed, 0 failed; us: 1 pending, 3 completed, 0 failed)")},
		{"fleet_ready@game-b", ready(4, "waiting", "3 pending, 5 completed, 0 failed (eu: 2 pending, 2 completed, 0 failed; us: 1 pending, 3 completed, 0 failed)")},
		{"fleet_ready@game-b", ready(4, "waiting", "1 pending, 7 completed, 0 failed (eu: 1 pending, 3 completed, 0 failed; us: 0 pending, 4 completed, 0 failed)")},
		{"fleet_ready@game-b", ready(5, "ready", "0 pending, 8 completed, 0 failed (eu: 0 pending, 4 completed, 0 failed; us: 0 pending, 4 completed, 0 failed)")},
		{"cutover@prod-eu/game-b", sw(4, "processing", "prod-eu: processing 30 of 120 servers to profile 102", 25)},
		{"cutover@prod-eu/game-b", sw(4, "processing", "prod-eu: processing 40 of 120 servers to profile 102", 33)},
		{"cutover@prod-eu/game-b", sw(4, "processing", "prod-eu: processing 40 of 120 servers to profile 102", 33)},
		{"cutover@prod-eu/game-b", sw(5, "complete", "prod-eu: complete, profile 102 (120 servers switched)", 100)},
	}
	var plain, js bytes.Buffer
	p := NewPlain(&plain, WithClock((&fakeClock{t: t0}).Now))
	j := NewJSON(&js, WithClock((&fakeClock{t: t0}).Now))
	for _, e := range events {
		p.JobProgress(e.id, e.job)
		j.JobProgress(e.id, e.job)
	}
	out := plain.String()
	for _, want := range []string{
		"fleet_ready@game-b: ready waiting: 3 pending, 5 completed, 0 failed (eu: 2 pending, 2 completed, 0 failed; us: 1 pending, 3 completed, 0 failed)",
		"fleet_ready@game-b: ready ready: 0 pending, 8 completed",
		"cutover@prod-eu/game-b: switch processing: prod-eu: processing 30 of 120 servers to profile 102",
		"cutover@prod-eu/game-b: switch processing: prod-eu: processing 40 of 120 servers",
		"cutover@prod-eu/game-b: switch complete: prod-eu: complete, profile 102 (120 servers switched)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plain lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 6 {
		t.Errorf("%d plain lines, want 6 (repeats are not news):\n%s", n, out)
	}
	var details []string
	for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var ev JobProgressEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		details = append(details, ev.Job.Detail)
	}
	if len(details) != len(events) || details[0] != events[0].job.Detail || details[4] != "prod-eu: processing 30 of 120 servers to profile 102" {
		t.Errorf("json details %q", details)
	}
}
