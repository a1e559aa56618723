package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
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
	userQuit   bool
	forceQuit  bool
	quitting   bool
}

func newModel(buf *buffer, opt Options, color bool) *Model {
	st := NewStyles(color)
	m := &Model{
		buf:    buf,
		now:    opt.Now,
		tick:   opt.Tick,
		cancel: opt.Cancel,
		st:     newState(opt.PlanName),
		styles: st,
		bare:   bareStyles(),
		keys:   defaultKeys(),
		w:      opt.Width,
		h:      opt.Height,
		filter: newFilter(st),
		help:   newHelp(st),
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
	if m.st.finished {
		m.quitting = true
		return tea.Quit
	}
	return m.nextTick()
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
	if m.header.bannerText(m.st, m.cancelling) != "" {
		n++
	}
	return n
}

// bodyHeight is what is left for the list, detail or help pane.
func (m *Model) bodyHeight() int { return max(m.h-m.headerHeight()-1, 2) }

// bodyRows is the number of lines for rows (the list has a column header).
func (m *Model) bodyRows() int { return m.bodyHeight() - 1 }

func (m *Model) onKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if m.quitting {
		return nil
	}
	if m.confirm.open {
		switch {
		case key.Matches(msg, k.Yes):
			return m.confirmCancel()
		case key.Matches(msg, k.No):
			m.confirm.open = false
		}
		return nil
	}
	isCtrlC := msg.String() == "ctrl+c"
	if isCtrlC && m.cancelling {
		// The second interrupt leaves at once; the engine keeps its own
		// cancellation going.
		m.forceQuit = true
		m.quitting = true
		return tea.Quit
	}
	if m.filter.focused {
		switch {
		case isCtrlC:
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
	if key.Matches(msg, k.Quit) {
		m.askCancel()
		return nil
	}
	if m.help.open {
		if key.Matches(msg, k.Help, k.Back) {
			m.help.open = false
		}
		return nil
	}
	if m.inDetail {
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
		return nil
	}
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

func (m *Model) askCancel() {
	if m.cancelling {
		return
	}
	m.confirm.open = true
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
	lines = append(lines, m.header.View(m.st, st, w, m.cancelling)...)
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
	return clip(left+m.help.footer(m.keys, max(w-lenCells(left), 0)), w)
}
