package tui

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/internal/hostile"
)

// framer forwards every observer call to the view, delivers it as a tick
// would, and checks the frames that result: the list, the detail pane of
// the first row and the filter, each with no raw control character other
// than the view's own styles, no secret, and a frame that still fills the
// terminal exactly.
type framer struct {
	t     *testing.T
	h     *harness
	calls int
}

func (f *framer) check(what string) {
	f.t.Helper()
	f.calls++
	f.h.tick(time.Second)
	for _, view := range []struct {
		name string
		keys []string
		back []string
	}{
		{"list", nil, nil},
		{"detail", []string{"enter"}, []string{"esc"}},
		{"filter", []string{"/", "m"}, []string{"esc"}},
	} {
		f.h.press(view.keys...)
		hostile.Check(f.t, "live view "+view.name+" after "+what, withoutSGR(f.h.m.Render()), false)
		f.h.checkFrame()
		f.h.press(view.back...)
	}
}

func (f *framer) RunStarted(i engine.RunInfo) { f.h.ui.RunStarted(i); f.check("RunStarted") }
func (f *framer) WaveStarted(s, i string, w, n int, ids []string) {
	f.h.ui.WaveStarted(s, i, w, n, ids)
	f.check("WaveStarted")
}
func (f *framer) InstanceStarted(id string, at time.Time) {
	f.h.ui.InstanceStarted(id, at)
	f.check("InstanceStarted")
}
func (f *framer) JobProgress(id string, j engine.JobInfo) {
	f.h.ui.JobProgress(id, j)
	f.check("JobProgress")
}
func (f *framer) InstanceFinished(id string, r engine.Result) {
	f.h.ui.InstanceFinished(id, r)
	f.check("InstanceFinished")
}
func (f *framer) Aborting(r string)             { f.h.ui.Aborting(r); f.check("Aborting") }
func (f *framer) Notice(n engine.Notice)        { f.h.ui.Notice(n); f.check("Notice") }
func (f *framer) WaitStarted(w engine.WaitInfo) { f.h.ui.WaitStarted(w); f.check("WaitStarted") }
func (f *framer) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	f.h.ui.WaitEnded(w, d)
	f.check("WaitEnded")
}
func (f *framer) RequestCount(n int64) { f.h.ui.RequestCount(n); f.check("RequestCount") }
func (f *framer) RunFinished(s engine.Summary) {
	f.h.ui.RunFinished(s)
	f.check("RunFinished")
}

// sgr matches the Select Graphic Rendition sequences the view's styles write
// (bold and faint stay on without colour). Every hostile string carries
// other controls as well (CSI 2J, OSC 52, C1, CR), so removing these hides
// nothing the check must see.
var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

func withoutSGR(s string) string { return sgr.ReplaceAllString(s, "") }

// TestLiveViewHostile: hostile names, state names, errors, details and
// reasons reach every frame of the live view escaped and masked.
func TestLiveViewHostile(t *testing.T) {
	hostile.Register(t)
	for _, size := range [][2]int{{80, 24}, {160, 30}} {
		f := &framer{t: t, h: newHarness(t, size[0], size[1], false)}
		hostile.Run(f, t0)
		if f.calls < 10 {
			t.Fatalf("only %d observer calls", f.calls)
		}
		if !strings.Contains(f.h.m.Render(), `\x1b`) {
			t.Errorf("the frame does not show the escapes it received:\n%s", f.h.m.Render())
		}
	}
}

// TestSummaryHostile: the summary printed after the view has gone, plain
// and coloured, shows the hostile summary escaped and masked; with colour
// the only escape sequences are the styles' own.
func TestSummaryHostile(t *testing.T) {
	hostile.Register(t)
	sum := hostile.Run(newBuffer(), t0)
	plain := RenderSummary(sum, 100, false)
	hostile.Check(t, "summary", plain, false)
	if !strings.Contains(plain, `\u009b31mRED`) {
		t.Errorf("summary does not show the escapes it received:\n%s", plain)
	}
	colored := RenderSummary(sum, 100, true)
	hostile.Check(t, "coloured summary", withoutSGR(colored), false)
}
