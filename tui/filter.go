package tui

import (
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// filterModel is the `/` input. While focused it receives the keys; its
// value filters the list live (machine, image or current step, ignoring
// case). enter keeps the filter and returns to the list, esc clears it.
type filterModel struct {
	input   textinput.Model
	focused bool
}

func newFilter(st Styles) filterModel {
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "machine, image or step"
	in.CharLimit = 64
	s := in.Styles()
	s.Focused.Prompt = st.Prompt
	s.Blurred.Prompt = st.Prompt
	s.Focused.Placeholder = st.Faint
	s.Blurred.Placeholder = st.Faint
	s.Focused.Text = st.Label.UnsetForeground()
	s.Blurred.Text = st.Label.UnsetForeground()
	if !st.Color {
		s.Cursor.Color = nil
	}
	// A steady cursor: blinking would make golden frames depend on timing.
	s.Cursor.Blink = false
	in.SetStyles(s)
	return filterModel{input: in}
}

func (f *filterModel) value() string { return f.input.Value() }

func (f *filterModel) focus() tea.Cmd {
	f.focused = true
	return f.input.Focus()
}

// accept leaves the input and keeps the filter.
func (f *filterModel) accept() {
	f.focused = false
	f.input.Blur()
}

// clear leaves the input and drops the filter.
func (f *filterModel) clear() {
	f.focused = false
	f.input.Blur()
	f.input.SetValue("")
}

func (f *filterModel) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(msg)
	return cmd
}

// View renders the input line (focused) or the active filter (blurred).
func (f *filterModel) View(st Styles, w int) string {
	f.input.SetWidth(max(w-4, 8))
	if f.focused {
		return clip(f.input.View(), w)
	}
	if f.value() == "" {
		return ""
	}
	return clip(st.Prompt.Render("/")+f.value(), w)
}
