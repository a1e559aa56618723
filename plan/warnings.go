package plan

import (
	"fmt"
	"slices"
)

// Warning is something a plan does that works but may not be what its
// author meant. Every command that shows a plan (validate, the preview)
// shows every warning.
type Warning struct {
	Pos Pos // of what the warning is about; Line 0 when there is none
	Msg string
}

// String renders the warning as "file:line:col: warning: message".
func (w Warning) String() string {
	if w.Pos.Line == 0 {
		return fmt.Sprintf("%s: warning: %s", w.Pos.File, w.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: warning: %s", w.Pos.File, w.Pos.Line, w.Pos.Col, w.Msg)
}

// Warnings returns the plan's warnings, in the order of its steps, then
// images, then waves.
func (p *Plan) Warnings() []Warning {
	return slices.Clone(p.warnings)
}

// warnings finds what a valid plan does that may surprise: for now, a
// wave larger than concurrency, which installs in batches.
func (l *loader) warnings(p *Plan) []Warning {
	var out []Warning
	for _, s := range p.Steps {
		if len(s.Waves) == 0 {
			continue
		}
		// Images in the order their instances first appear, waves in
		// order: the order the preview lists them in.
		var images []*Image
		sizes := map[*Image][]int{}
		for _, in := range p.Instances {
			if in.Step != s || in.Wave < 0 {
				continue
			}
			ws, seen := sizes[in.Image]
			if !seen {
				images = append(images, in.Image)
			}
			for len(ws) <= in.Wave {
				ws = append(ws, 0)
			}
			ws[in.Wave]++
			sizes[in.Image] = ws
		}
		raw := l.raw[s]
		for _, img := range images {
			for k, n := range sizes[img] {
				if n <= p.Concurrency {
					continue
				}
				pos := s.Pos
				if raw != nil && k < len(raw.Waves) {
					pos = raw.Waves[k].Pos
				}
				out = append(out, Warning{Pos: pos, Msg: fmt.Sprintf("step %s: wave %d of image %s has %d machines, more than concurrency %d: it will install in batches of %d", s.Name, k+1, img.Name, n, p.Concurrency, p.Concurrency)})
			}
		}
	}
	return out
}
