package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/rollout/rollout/engine"
)

// defaultTick is how often the program drains the engine's events: fast
// enough to feel live, slow enough that a burst of progress costs one frame.
const defaultTick = 100 * time.Millisecond

// batchMsg carries one drained batch into Update.
type batchMsg struct {
	b  batch
	at time.Time
}

// Model is the Bubble Tea model of the live view. It is a pointer model:
// Update mutates it in place and returns it. Build one with UI.Model; tests
// drive it with Update (feeding UI.Model().Drain()) and View.
type Model struct {
	buf    *buffer
	now    func() time.Time
	tick   time.Duration
	cancel func()

	st     *state
	styles Styles
	bare   Styles // no attributes at all, for the selected row
	keys   keyMap
	w, h   int

	header   headerModel
	list     listModel
	detail   detailModel
	inDetail bool
	filter   filterModel
	failOnly bool
	confirm  confirmModel
	help     helpModel

	cancelling bool // the user confirmed; waiting for RunFinished
	ended      bool // the run finished and the view stays until q
	userQuit   bool
	forceQuit  bool
	quitting   bool

	// approve and abort send a confirmed decision to the run; watch
	// makes q leave the view instead of cancelling the run.
	approve  func(id string) (string, error)
	abort    func(reason string) (string, error)
	watch    bool
	detached bool
	// stayOpen keeps the view after the run ended until q (see
	// Options.StayOpen).
	stayOpen bool
	// flash is the answer to the last approve or abort, shown in the
	// footer for flashFor; flashErr marks a refusal.
	flash    string
	flashErr bool
	flashAt  time.Time
	deciding bool // a decision is on its way to the run
}

// flashFor is how long the answer to an approve or abort stays in the
// footer.
const flashFor = 10 * time.Second

// decidedMsg is the run's answer to an approve or abort of the view.
type decidedMsg struct {
	text string
	err  error
}

func newModel(buf *buffer, opt Options, color bool) *Model {
	st := NewStyles(color)
	keys := defaultKeys()
	if opt.Watch {
		keys = watchKeys()
	}
	keys.Approve.SetEnabled(opt.Approve != nil)
	keys.Abort.SetEnabled(opt.Abort != nil)
	m := &Model{
		buf:      buf,
		now:      opt.Now,
		tick:     opt.Tick,
		cancel:   opt.Cancel,
		st:       newState(opt.PlanName),
		styles:   st,
		bare:     bareStyles(),
		keys:     keys,
		approve:  opt.Approve,
		abort:    opt.Abort,
		watch:    opt.Watch,
		stayOpen: opt.StayOpen,
		header:   headerModel{approve: opt.Approve != nil, abort: opt.Abort != nil},
		w:        opt.Width,
		h:        opt.Height,
		filter:   newFilter(st),
		help:     newHelp(st),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.tick <= 0 {
		m.tick = defaultTick
	}
	if m.w <= 0 {
		m.w = 80
	}
	if m.h <= 0 {
		m.h = 24
	}
	m.st.now = m.now()
	return m
}

// bareStyles has no attributes, so that a row rendered with it can be wrapped
// in the selection style without inner resets breaking the highlight.
func bareStyles() Styles {
	s := NewStyles(false)
	p := s.Label
	s.Title, s.Faint, s.ColHeader, s.Failed, s.Running, s.Waiting, s.Done, s.Skipped, s.Cancelled, s.Err,
		s.BarFull, s.BarEmpty, s.Banner, s.Notice, s.Prompt = p, p, p, p, p, p, p, p, p, p, p, p, p, p, p
	return s
}

// Drain takes what the engine reported since the last call and wraps it as a
// message for Update. The program calls it on every tick; tests call it
// directly. It is safe to call from any goroutine.
func (m *Model) Drain() tea.Msg {
	return batchMsg{b: m.buf.drain(), at: m.now()}
}

func (m *Model) nextTick() tea.Cmd {
	return tea.Tick(m.tick, func(time.Time) tea.Msg { return m.Drain() })
}

// Init drains at once so that the first frame already shows the plan.
func (m *Model) Init() tea.Cmd {
	return m.Drain
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case batchMsg:
		return m, m.onBatch(msg)
	case tea.WindowSizeMsg:
		m.w, m.h = max(msg.Width, 1), max(msg.Height, 1)
		m.list.ensureVisible(m.st, m.bodyRows())
		return m, nil
	case tea.KeyPressMsg:
		return m, m.onKey(msg)
	case decidedMsg:
		m.deciding = false
		m.flashAt = m.now()
		m.flash, m.flashErr = msg.text, msg.err != nil
		if msg.err != nil {
			m.flash = m.st.clean.str(msg.err.Error())
		} else {
			m.flash = m.st.clean.str(msg.text)
		}
		return m, nil
	}
	if m.filter.focused {
		return m, m.filter.update(msg)
	}
	return m, nil
}

func (m *Model) onBatch(msg batchMsg) tea.Cmd {
	m.st.apply(msg.b, msg.at)
	m.buf.recycle(msg.b.progress)
	m.syncList()
	if m.st.finished && !m.quitting {
		if !m.stayOpen || m.userQuit {
			// Unattended, or the person asked to cancel and leave: the
			// view has shown the end and goes.
			m.quitting = true
			return tea.Quit
		}
		m.onEnded()
	}
	return m.nextTick()
}

// onEnded turns the view into a finished one that stays until q: nothing
// is left to cancel, approve or abort, so q now leaves and the dialogs
// that asked close.
func (m *Model) onEnded() {
	if m.ended {
		return
	}
	m.ended = true
	m.confirm.open = false
	m.keys.Quit = key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "leave the view"))
	m.keys.quitShort = "leave"
	m.keys.Approve.SetEnabled(false)
	m.keys.Abort.SetEnabled(false)
}

func (m *Model) syncList() {
	m.list.sync(m.st, m.filter.value(), m.failOnly)
	m.list.ensureVisible(m.st, m.bodyRows())
}

// headerHeight mirrors headerModel.View's line count without rendering.
func (m *Model) headerHeight() int {
	n := 2
	if len(m.st.waves) > 0 {
		n++
	}
	return n + len(m.header.bannerLines(m.st, m.cancelling, m.w))
}

// bodyHeight is what is left for the list, detail or help pane.
func (m *Model) bodyHeight() int { return max(m.h-m.headerHeight()-1, 2) }

// bodyRows is the number of lines for rows (the list has a column header).
func (m *Model) bodyRows() int { return m.bodyHeight() - 1 }

// onKey routes a key press to whatever has the keyboard: the open dialog,
// the leave keys, the focused filter, then the help, detail or list pane.
func (m *Model) onKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if m.quitting {
		return nil
	}
	if m.confirm.open {
		return m.onConfirmKey(msg)
	}
	if cmd, left := m.onLeaveKey(msg); left {
		return cmd
	}
	if m.filter.focused {
		return m.onFilterKey(msg)
	}
	if key.Matches(msg, k.Quit) {
		m.askCancel()
		return nil
	}
	switch {
	case key.Matches(msg, k.Approve):
		m.askApprove()
		return nil
	case key.Matches(msg, k.Abort):
		m.askAbort()
		return nil
	}
	if m.help.open {
		if key.Matches(msg, k.Help, k.Back) {
			m.help.open = false
		}
		return nil
	}
	if m.inDetail {
		m.onDetailKey(msg)
		return nil
	}
	return m.onListKey(msg)
}

// onConfirmKey answers the open dialog: an approval or abort is confirmed
// with the confirm key, a cancellation with yes.
func (m *Model) onConfirmKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if m.confirm.kind != confirmCancel {
		switch {
		case msg.String() == "ctrl+c":
			// ctrl+c never approves or aborts: it asks to cancel.
			m.confirm.open = false
			m.askCancel()
		case key.Matches(msg, k.Confirm):
			return m.decide()
		case key.Matches(msg, k.No):
			m.confirm.open = false
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Yes):
		return m.confirmCancel()
	case key.Matches(msg, k.No):
		m.confirm.open = false
	}
	return nil
}

// onLeaveKey quits at once when leaving needs no confirmation: the run is
// over, the view only watches, or a cancellation is already under way. It
// reports whether the key was taken.
func (m *Model) onLeaveKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	k := m.keys
	isCtrlC := msg.String() == "ctrl+c"
	if m.ended && (isCtrlC || (!m.filter.focused && key.Matches(msg, k.Quit))) {
		// The run is over: leaving needs no confirmation.
		m.quitting = true
		return tea.Quit, true
	}
	if m.watch && (isCtrlC || (!m.filter.focused && key.Matches(msg, k.Quit))) {
		// A watcher only leaves: the run is another process's.
		m.detached = true
		m.quitting = true
		return tea.Quit, true
	}
	if isCtrlC && m.cancelling {
		// The second interrupt leaves at once; the engine keeps its own
		// cancellation going.
		m.forceQuit = true
		m.quitting = true
		return tea.Quit, true
	}
	return nil, false
}

// onFilterKey edits the focused filter; ctrl+c still asks to cancel.
func (m *Model) onFilterKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case msg.String() == "ctrl+c":
		m.askCancel()
	case msg.String() == "enter":
		m.filter.accept()
	case msg.String() == "esc":
		m.filter.clear()
		m.syncList()
	default:
		cmd := m.filter.update(msg)
		m.list.reset()
		m.syncList()
		return cmd
	}
	return nil
}

// onDetailKey scrolls the detail pane, or leaves it.
func (m *Model) onDetailKey(msg tea.KeyPressMsg) {
	k := m.keys
	h := m.bodyHeight() - 1
	total := len(m.detail.content(m.st, m.bare, m.w))
	switch {
	case key.Matches(msg, k.Back, k.Open):
		m.inDetail = false
	case key.Matches(msg, k.Up):
		m.detail.scroll(-1, total, h)
	case key.Matches(msg, k.Down):
		m.detail.scroll(1, total, h)
	case key.Matches(msg, k.PageUp):
		m.detail.scroll(-h, total, h)
	case key.Matches(msg, k.PageDown):
		m.detail.scroll(h, total, h)
	case key.Matches(msg, k.Home):
		m.detail.offset = 0
	case key.Matches(msg, k.End):
		m.detail.scroll(total, total, h)
	case key.Matches(msg, k.Help):
		m.help.open = true
	}
}

// onListKey moves in the list, opens a row, or changes what it shows.
func (m *Model) onListKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	body := m.bodyRows()
	switch {
	case key.Matches(msg, k.Up):
		m.list.move(m.st, body, -1)
	case key.Matches(msg, k.Down):
		m.list.move(m.st, body, 1)
	case key.Matches(msg, k.PageUp):
		m.list.move(m.st, body, -m.list.page(m.st, body))
	case key.Matches(msg, k.PageDown):
		m.list.move(m.st, body, m.list.page(m.st, body))
	case key.Matches(msg, k.Home):
		m.list.home()
	case key.Matches(msg, k.End):
		m.list.end(m.st, body)
	case key.Matches(msg, k.Open):
		if r, ok := m.list.selected(); ok {
			m.detail.open(r)
			m.inDetail = true
		}
	case key.Matches(msg, k.Filter):
		return m.filter.focus()
	case key.Matches(msg, k.Failures):
		m.failOnly = !m.failOnly
		m.list.reset()
		m.syncList()
	case key.Matches(msg, k.Back):
		if m.filter.value() != "" || m.failOnly {
			m.filter.clear()
			m.failOnly = false
			m.syncList()
		}
	case key.Matches(msg, k.Help):
		m.help.open = true
	}
	return nil
}

// askApprove opens the approval dialog for the wait the banner shows.
func (m *Model) askApprove() {
	switch w, ok := m.st.shownWait(); {
	case m.st.finished || m.cancelling:
	case m.deciding:
		m.say("an approval or abort is on its way to the run; wait for its answer", true)
	case !ok:
		m.say("nothing is waiting for an approval now", true)
	default:
		m.confirm = confirmModel{open: true, kind: confirmApprove, wait: w}
	}
}

// askAbort opens the abort dialog.
func (m *Model) askAbort() {
	switch {
	case m.st.finished || m.cancelling:
	case m.deciding:
		m.say("an approval or abort is on its way to the run; wait for its answer", true)
	case m.st.aborting:
		m.say("the rollout is already aborting", true)
	default:
		m.confirm = confirmModel{open: true, kind: confirmAbort}
	}
}

func (m *Model) say(text string, isErr bool) {
	m.flash, m.flashErr, m.flashAt = text, isErr, m.now()
}

// decide sends the confirmed approval or abort to the run off the
// program's goroutine; the answer comes back as a decidedMsg.
func (m *Model) decide() tea.Cmd {
	c := m.confirm
	m.confirm.open = false
	m.deciding = true
	if c.kind == confirmApprove {
		id := c.wait.ID
		if raw, ok := m.st.rawWait[id]; ok {
			id = raw
		}
		m.say("approving "+c.wait.ID+"…", false)
		approve := m.approve
		return func() tea.Msg {
			text, err := approve(id)
			return decidedMsg{text, err}
		}
	}
	m.say("aborting the rollout…", false)
	abort := m.abort
	return func() tea.Msg {
		text, err := abort("")
		return decidedMsg{text, err}
	}
}

func (m *Model) askCancel() {
	if m.cancelling {
		return
	}
	m.confirm = confirmModel{open: true, kind: confirmCancel}
}

// confirmCancel asks the engine to stop. The program keeps running until
// RunFinished arrives so that the user sees the rollout wind down.
func (m *Model) confirmCancel() tea.Cmd {
	m.confirm.open = false
	m.userQuit = true
	if m.cancel == nil {
		// Nobody to tell: leaving the view is all a cancel can do.
		m.quitting = true
		return tea.Quit
	}
	m.cancelling = true
	m.cancel()
	return nil
}

// View implements tea.Model. The live view uses the alternate screen so that
// it never scrolls the terminal; when the program ends the terminal comes
// back unchanged and the caller prints RenderSummary.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "rollout " + m.st.plan
	return v
}

// Render is the frame as a string: exactly the terminal's height in lines,
// none wider than the terminal.
func (m *Model) Render() string {
	w, h := m.w, m.h
	st := m.styles
	lines := make([]string, 0, h)
	lines = append(lines, m.header.View(m.st, st, w, m.cancelling, m.ended)...)
	bodyH := m.bodyHeight()
	var body []string
	switch {
	case m.help.open:
		body = m.help.View(st, m.keys, w, bodyH)
	case m.inDetail:
		body = m.detail.View(m.st, st, w, bodyH)
	default:
		body = m.list.View(m.st, st, m.bare, w, bodyH)
	}
	if m.confirm.open {
		body = overlay(body, m.confirm.View(st, m.help.model, m.keys, w), w)
	}
	lines = append(lines, body...)
	lines = append(lines, m.footer())
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

func (m *Model) footer() string {
	w := m.w
	if m.filter.focused {
		return m.filter.View(m.styles, w)
	}
	var status []string
	if n := len(m.list.vis); n > 0 {
		status = append(status, fmt.Sprintf("%d/%d", min(m.list.cursor+1, n), n))
	} else {
		status = append(status, "0/0")
	}
	if f := m.filter.View(m.styles, w); f != "" {
		status = append(status, f)
	}
	if m.failOnly {
		status = append(status, m.styles.Notice.Render("failures only"))
	}
	left := strings.Join(status, " ") + "  "
	if m.flash != "" && m.now().Sub(m.flashAt) < flashFor {
		style := m.styles.Notice
		if m.flashErr {
			style = m.styles.Failed
		}
		return clip(left+style.Render(m.flash), w)
	}
	keys := m.keys.ShortHelp()
	if w, ok := m.st.shownWait(); len(m.st.waits) > 0 && !m.st.finished && !m.st.aborting && !m.cancelling {
		keys = m.keys.controlHelp(ok && w.Kind == engine.WaitApproval && m.approve != nil, m.abort != nil)
	}
	return clip(left+m.help.footerOf(keys, max(w-lenCells(left), 0)), w)
}
