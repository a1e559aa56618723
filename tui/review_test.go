package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
)

// selectedLine is the frame line that carries the cursor.
func (h *harness) selectedLine() string {
	for _, l := range strings.Split(h.frame(), "\n") {
		if strings.HasPrefix(l, "› ") {
			return l
		}
	}
	return ""
}

func TestCursorFollowsTheTargetTheUserChose(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want string // machine on the cursor line after eu-02 and eu-03 finished
	}{
		// Nothing pressed: the cursor stays on the first row, whichever.
		{"untouched", nil, "eu-04"},
		// The user went to eu-04: it stays selected while rows above it
		// finish and move to the bottom.
		{"moved", []string{"down", "down"}, "eu-04"},
		{"moved to us-03", []string{"down"}, "us-03"},
		// Home goes back to following the top.
		{"home", []string{"down", "home"}, "eu-04"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 100, 30, false)
			h.running(8)
			h.press(tt.keys...)
			for _, i := range []int{2, 3} {
				h.succeed(installID(i), 9*time.Minute, time.Minute, nil, "")
			}
			h.tick(time.Second)
			if got := h.selectedLine(); !strings.Contains(got, tt.want) {
				t.Fatalf("cursor line = %q, want %s\n%s", got, tt.want, h.frame())
			}
			h.press("enter")
			if !strings.Contains(h.frame(), "machine "+tt.want) {
				t.Fatalf("enter opened another target:\n%s", h.frame())
			}
		})
	}
}

func TestFilterUnpinsTheCursor(t *testing.T) {
	h := newHarness(t, 100, 30, false)
	h.running(8)
	h.press("down", "down", "down")
	h.press("/")
	h.typeText("us-")
	h.press("enter")
	if h.m.list.cursor != 0 || h.m.list.pinned {
		t.Fatalf("after a new filter cursor = %d pinned = %v, want the first match", h.m.list.cursor, h.m.list.pinned)
	}
}

func TestJobLeftIgnoresAPassedJobETA(t *testing.T) {
	id := "update@buildbox-1/game-b"
	tests := []struct {
		name     string
		progress int
		eta      time.Duration // from t0
		now      time.Duration // from t0
		want     time.Duration
		known    bool
	}{
		{"eta ahead", 10, 5 * time.Minute, 2 * time.Minute, 3 * time.Minute, true},
		// jobeta passed: the progress rate takes over (half done in 10m).
		{"eta passed, progress", 50, 2 * time.Minute, 10 * time.Minute, 10 * time.Minute, true},
		// jobeta passed and nothing else to go by: unknown, not "0s".
		{"eta passed, no progress", 0, 2 * time.Minute, 10 * time.Minute, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 80, 24, false)
			h.start(2)
			h.ui.InstanceStarted(id, t0)
			h.ui.JobProgress(id, engine.JobInfo{Kind: "update", ID: 1, State: 2, StateName: "Running",
				Progress: tt.progress, ETA: t0.Add(tt.eta)})
			h.clk.t = t0.Add(tt.now)
			h.flush()
			in := &h.m.st.insts[h.m.st.byID[id]]
			got, ok := h.m.st.jobLeft(in)
			if ok != tt.known || got != tt.want {
				t.Fatalf("jobLeft = %v, %v; want %v, %v", got, ok, tt.want, tt.known)
			}
		})
	}
}

func TestFooterKeepsTheCancelKeyAt80Columns(t *testing.T) {
	for _, keys := range [][]string{nil, {"f"}, {"/", "e", "u", "enter"}} {
		h := newHarness(t, 80, 24, false)
		h.running(12)
		h.fail(3, "boom")
		h.tick(time.Second)
		h.press(keys...)
		lines := strings.Split(h.frame(), "\n")
		if foot := lines[len(lines)-1]; !strings.Contains(foot, "q cancel") {
			t.Errorf("after %v the footer hides the cancel key: %q", keys, foot)
		}
		h.checkFrame()
	}
}

func TestDetailNamesStandbyOnFailureSteps(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	info := fixture(2)
	info.Instances = append(info.Instances, engine.InstanceInfo{
		ID: "reject@game-b", Step: "reject", Type: "reject", Image: "game-b", Wave: -1, OnFailure: true,
	})
	h.ui.RunStarted(info)
	h.flush()
	h.press("/")
	h.typeText("version")
	h.press("enter", "enter")
	f := h.frame()
	if !strings.Contains(f, "reject") || !strings.Contains(f, "only on failure") {
		t.Fatalf("the standby reject is not explained:\n%s", f)
	}
	h.ui.InstanceStarted("reject@game-b", t0)
	h.tick(time.Second)
	if f := h.frame(); !strings.Contains(f, "reject (on failure)") {
		t.Fatalf("a running on_failure step is not named in full:\n%s", f)
	}
}

func TestWidthFollowsTheTerminal(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.m.Update(teaWindowSize(132, 43))
	if got := h.ui.Width(); got != 132 {
		t.Fatalf("Width = %d after a 132-column resize", got)
	}
}

func TestShortErrPutsTheCauseFirst(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want string
	}{
		{"disk full", 40, "disk full"},
		{"install job 661206 on machine 812347 failed: disk full on /home/cf", 80,
			"install job 661206 on machine 812347 failed: disk full on /home/cf"},
		{"install job 661206 on machine 812347 for version 48802 failed: disk full on /home/cf", 50,
			"install job 661206 on mach…: disk full on /home/cf"},
		// The cause alone nearly fills the cell: it comes first.
		{"install job 661206 failed: disk full on /home/cf", 24, "disk full on /home/cf —…"},
		{"dependency small-change@buildbox-1/game failed and more words", 20, "dependency small-ch…"},
		{"line one: cause\nline two", 12, "cause … — l…"},
	}
	for _, tt := range tests {
		if got := shortErr(tt.in, tt.w); got != tt.want || lenCells(got) > tt.w {
			t.Errorf("shortErr(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
	}
}

func TestRowErrorShowsTheCauseAt80Columns(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(6)
	h.fail(2, "install job 661206 on machine 812347 for version 48802 failed: disk full on /home/cf")
	h.tick(time.Second)
	if f := h.frame(); !strings.Contains(f, ": disk full on /home/cf") {
		t.Fatalf("the cause of the failure is cut off:\n%s", f)
	}
	h.checkFrame()
}

func TestWavesListedInPlanOrder(t *testing.T) {
	h := newHarness(t, 120, 40, false)
	info := fixture(2)
	for _, in := range fixture(2).Instances {
		in.Image = "game-c"
		in.ID += "-c"
		info.Instances = append(info.Instances, in)
	}
	h.ui.RunStarted(info)
	h.ui.WaveStarted("install", "game-c", 0, 3, nil)
	h.ui.WaveStarted("install", "game-b", 1, 3, nil)
	h.flush()
	if f := h.frame(); !strings.Contains(f, "waves install/game-b 2/3 · install/game-c 1/3") {
		t.Fatalf("waves not in plan order:\n%s", f)
	}
}

func TestEmptyListSaysWhy(t *testing.T) {
	h := newHarness(t, 80, 24, false)
	h.running(4)
	h.press("f")
	if f := h.frame(); !strings.Contains(f, "no failed target so far") {
		t.Fatalf("failures only with no failure:\n%s", f)
	}
	h.press("f", "/")
	h.typeText("nosuchmachine")
	if f := h.frame(); !strings.Contains(f, "no target matches — esc clears the filter") {
		t.Fatalf("a filter matching nothing:\n%s", f)
	}
}
