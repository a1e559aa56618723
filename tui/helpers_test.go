package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/rollout/rollout/engine"
)

// t0 is the fixed start of every synthetic run.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// fixture is a plan with one build machine and n fleet machines carrying one
// image: update and diff on the build machine, version and mirror per image,
// install on the fleet in three waves.
func fixture(n int) engine.RunInfo {
	const img = "game-b"
	info := engine.RunInfo{Plan: "game-b-1.4.2", Concurrency: 4, Started: t0, Targets: n + 1}
	// Each step needs the one before it, as the plan's DAG says.
	add := func(step, typ, machine string, wave int, deps ...string) {
		id := step + "@" + img
		if machine != "" {
			id = step + "@" + machine + "/" + img
		}
		info.Instances = append(info.Instances, engine.InstanceInfo{
			ID: id, Step: step, Type: typ, Machine: machine, Image: img, Wave: wave, Deps: deps,
		})
	}
	add("update", "update", "buildbox-1", -1)
	add("diff", "diff", "buildbox-1", -1, "update@buildbox-1/game-b")
	add("small-change", "gate", "buildbox-1", -1, "diff@buildbox-1/game-b")
	add("version", "version", "", -1, "small-change@buildbox-1/game-b")
	add("mirror", "install", "", -1, "version@game-b")
	for i := 1; i <= n; i++ {
		wave := 2
		switch {
		case i == 1:
			wave = 0
		case i <= (n+1)/2:
			wave = 1
		}
		add("install", "install", fleetName(i), wave, "mirror@game-b")
	}
	return info
}

func fleetName(i int) string {
	region := "eu"
	if i%3 == 0 {
		region = "us"
	}
	return fmt.Sprintf("%s-%02d", region, i)
}

func installID(i int) string { return "install@" + fleetName(i) + "/game-b" }

// harness drives a model the way the program does, without a terminal.
type harness struct {
	t        testing.TB
	ui       *UI
	m        *Model
	clk      *fakeClock
	cancels  int
	lastCmd  tea.Cmd
	lastKeys []string
}

func newHarness(t testing.TB, w, h int, color bool) *harness {
	hs := &harness{t: t, clk: &fakeClock{t: t0}}
	hs.ui = New(Options{
		PlanName: "game-b-1.4.2", Width: w, Height: h, NoColor: !color,
		Now: hs.clk.Now, Cancel: func() { hs.cancels++ },
	})
	hs.ui.color = color
	hs.ui.model = newModel(hs.ui.buf, hs.ui.opt, color)
	hs.m = hs.ui.Model()
	return hs
}

// flush delivers everything observed so far, as a tick would.
func (h *harness) flush() tea.Cmd {
	_, cmd := h.m.Update(h.m.Drain())
	h.lastCmd = cmd
	return cmd
}

// tick advances the clock and flushes.
func (h *harness) tick(d time.Duration) tea.Cmd {
	h.clk.Advance(d)
	return h.flush()
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "home":
		return tea.KeyPressMsg{Code: tea.KeyHome}
	case "end":
		return tea.KeyPressMsg{Code: tea.KeyEnd}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)
	if len(r) != 1 {
		panic("unknown key " + k)
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

func (h *harness) press(keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = h.m.Update(keyMsg(k))
	}
	h.lastCmd = cmd
	return cmd
}

func (h *harness) typeText(s string) {
	for _, r := range s {
		h.press(string(r))
	}
}

// frame is the current frame without ANSI sequences.
func (h *harness) frame() string { return ansi.Strip(h.m.Render()) }

// checkFrame asserts the frame fills the terminal exactly and never wraps.
func (h *harness) checkFrame() {
	h.t.Helper()
	out := h.m.Render()
	lines := strings.Split(out, "\n")
	if len(lines) != h.m.h {
		h.t.Errorf("frame has %d lines, terminal has %d", len(lines), h.m.h)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > h.m.w {
			h.t.Errorf("line %d is %d cells wide, terminal is %d: %q", i, w, h.m.w, ansi.Strip(l))
		}
	}
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// scenario events, applied through the UI's Observer methods.

func (h *harness) start(n int) {
	h.ui.RunStarted(fixture(n))
	h.flush()
}

func (h *harness) succeed(id string, started, took time.Duration, job *engine.JobInfo, detail string) {
	h.ui.InstanceStarted(id, t0.Add(started))
	h.ui.InstanceFinished(id, engine.Result{
		Outcome: engine.Succeeded, Started: t0.Add(started), Finished: t0.Add(started + took), Job: job, Detail: detail,
	})
}

// running builds the standard "running" picture: build steps done, mirror
// done, wave 1 of the fleet installing.
func (h *harness) running(n int) {
	h.start(n)
	h.succeed("update@buildbox-1/game-b", 0, 2*time.Minute,
		&engine.JobInfo{Kind: "update", ID: 9001, State: 3, StateName: "Completed", Progress: 100}, "")
	h.succeed("diff@buildbox-1/game-b", 2*time.Minute, time.Minute,
		&engine.JobInfo{Kind: "diff", ID: 9002, State: 3, StateName: "Completed", Progress: 100}, "3 added, 1 modified, 0 removed")
	h.succeed("small-change@buildbox-1/game-b", 3*time.Minute, 0, nil, "")
	h.succeed("version@game-b", 3*time.Minute, time.Minute,
		&engine.JobInfo{Kind: "version", ID: 9003, State: 3, StateName: "Completed", Progress: 100}, "")
	h.succeed("mirror@game-b", 4*time.Minute, 2*time.Minute,
		&engine.JobInfo{Kind: "install", ID: 9004, State: 3, StateName: "Completed", Progress: 100}, "")
	h.ui.WaveStarted("install", "game-b", 0, 3, []string{installID(1)})
	h.succeed(installID(1), 6*time.Minute, 3*time.Minute,
		&engine.JobInfo{Kind: "install", ID: 9100, State: 3, StateName: "Completed", Progress: 100}, "")
	h.ui.WaveStarted("install", "game-b", 1, 3, nil)
	for i := 2; i <= 4; i++ {
		id := installID(i)
		h.ui.InstanceStarted(id, t0.Add(9*time.Minute))
		for p := 0; p <= 10*i; p += 5 {
			h.ui.JobProgress(id, engine.JobInfo{Kind: "install", ID: int64(9100 + i), State: 2, StateName: "Running",
				Progress: p, ETA: t0.Add(time.Duration(11+i) * time.Minute)})
		}
	}
	h.ui.RequestCount(100)
	h.clk.t = t0.Add(9*time.Minute + 30*time.Second)
	h.flush()
	h.ui.RequestCount(160)
	h.tick(5 * time.Second)
}

// fail makes fleet machine i fail its install.
func (h *harness) fail(i int, msg string) {
	id := installID(i)
	h.ui.InstanceFinished(id, engine.Result{
		Outcome: engine.Failed, Err: errors.New(msg), Started: t0.Add(9 * time.Minute), Finished: h.clk.t,
		Job: &engine.JobInfo{Kind: "install", ID: int64(9100 + i), State: 6, StateName: "Failed", Progress: 40,
			Error: msg},
	})
}

func teaWindowSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
