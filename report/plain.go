package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// Plain writes one line per meaningful event, prefixed with the time elapsed
// since the run started ("[01:02]"), and a summary when the run finishes.
// Job progress is reported when a job's state changes and, within a state,
// at each 25% step, never on every poll. Every string from the engine is
// shown through redact.Terminal, one field at a time, so that a newline or
// an escape sequence in an API answer or a plan name cannot forge or
// rewrite a line.
type Plain struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	start    time.Time
	started  bool
	jobs     map[string]seenJob
	requests int64
	notices  map[string]noticeSeen
	commands func(engine.WaitInfo) (approve, abort string)
	err      error
}

type seenJob struct {
	kind   string
	id     int64
	state  int
	bucket int    // progress / 25 last reported
	detail string // the progress in words last reported
}

// NewPlain returns a reporter writing to w.
func NewPlain(w io.Writer, opts ...Option) *Plain {
	c := newConfig(opts)
	return &Plain{w: w, now: c.now, commands: c.commands, jobs: map[string]seenJob{}}
}

// Err is the first error writing to w, if any: an observer cannot return
// one, so the caller may ask at the end.
func (p *Plain) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// linef writes one stamped line. p.mu must be held.
func (p *Plain) linef(format string, args ...any) {
	now := p.now()
	if !p.started {
		p.start, p.started = now, true
	}
	p.write(stamp(now.Sub(p.start)) + " " + fmt.Sprintf(format, args...) + "\n")
}

// write writes s, whose fields have been through term. Escaping s as a
// whole as well costs one scan, and keeps a field a future change forgets
// from reaching the terminal raw.
func (p *Plain) write(s string) {
	if p.err != nil {
		return
	}
	if _, err := io.WriteString(p.w, redact.EscapeLines(s)); err != nil {
		p.err = err
	}
}

// RunStarted implements engine.Observer.
func (p *Plain) RunStarted(info engine.RunInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start, p.started = p.now(), true
	resumed := ""
	if info.Resumed {
		resumed = ", resuming an earlier run"
	}
	standby := 0
	for _, in := range info.Instances {
		if in.OnFailure {
			standby++
		}
	}
	onFail := ""
	if standby > 0 {
		onFail = fmt.Sprintf(" (and %d on_failure on standby)", standby)
	}
	p.linef("rollout \"%s\" started: %s%s on %s, concurrency %d%s", term(info.Plan),
		plural(len(info.Instances)-standby, "instance"), onFail, plural(info.Targets, "target"), info.Concurrency, resumed)
}

// WaveStarted implements engine.Observer.
func (p *Plain) WaveStarted(step, image string, wave, waves int, instances []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linef("%s %s: wave %d/%d started, %s: %s", term(step), term(image), wave+1, waves,
		plural(len(instances), "instance"), list(instances, 5))
}

// InstanceStarted implements engine.Observer.
func (p *Plain) InstanceStarted(id string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linef("%s started", term(id))
}

// JobProgress implements engine.Observer.
func (p *Plain) JobProgress(id string, job engine.JobInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Keyed by instance and job: a mirror instance drives one job per
	// location and reports them in turn, which must not read as a change
	// on every poll.
	key := fmt.Sprintf("%s\x00%s/%d", id, job.Kind, job.ID)
	prev, seen := p.jobs[key]
	bucket := job.Progress / 25
	changed := !seen || prev.state != job.State
	// A ready step's counters and a switch's servers are said in words:
	// a new count is news even when the share done did not cross 25%.
	if !changed && bucket <= prev.bucket && job.Detail == prev.detail {
		return
	}
	p.jobs[key] = seenJob{kind: job.Kind, id: job.ID, state: job.State, bucket: bucket, detail: job.Detail}
	job = redact.Copy(job, redact.Terminal)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", term(id), jobLabel(job))
	if job.Detail != "" {
		// "fleet_ready@game-b: ready waiting: 3 pending, ..." and
		// "cutover@prod-eu/game-b: switch processing: prod-eu: processing
		// 30 of 120 servers to profile 102".
		fmt.Fprintf(&b, ": %s", job.Detail)
		if job.Error != "" {
			fmt.Fprintf(&b, ": %s", job.Error)
		}
		p.linef("%s", b.String())
		return
	}
	if job.Progress > 0 && job.State < 5 {
		fmt.Fprintf(&b, " %d%%", job.Progress)
	}
	if changed && !job.ETA.IsZero() && job.State < 5 {
		if left := job.ETA.Sub(p.now()); left > 0 {
			fmt.Fprintf(&b, ", eta %s", formatDuration(left))
		}
	}
	if job.Error != "" {
		fmt.Fprintf(&b, ": %s", job.Error)
	}
	p.linef("%s", b.String())
}

func stateName(job engine.JobInfo) string {
	if job.StateName != "" {
		return job.StateName
	}
	return fmt.Sprintf("state %d", job.State)
}

// jobLabel is "diff 218596 Running".
func jobLabel(job engine.JobInfo) string {
	name := stateName(job)
	if job.ID == 0 {
		return job.Kind + " " + name
	}
	return fmt.Sprintf("%s %d %s", job.Kind, job.ID, name)
}

// InstanceFinished implements engine.Observer.
func (p *Plain) InstanceFinished(id string, r engine.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.jobs, id)
	id, r = term(id), redact.Copy(r, redact.Terminal)
	took := ""
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		took = formatDuration(r.Finished.Sub(r.Started))
	}
	errText := engine.ErrText(r.Err)
	switch r.Outcome {
	case engine.Succeeded:
		line := id + " succeeded"
		if took != "" {
			line += " in " + took
		}
		if r.Detail != "" {
			line += " (" + r.Detail + ")"
		}
		p.linef("%s", line)
	case engine.Failed:
		line := id + " failed"
		if took != "" {
			line += " after " + took
		}
		line += ": " + orUnknown(errText)
		if r.Job != nil {
			line += " [" + jobLabel(*r.Job) + "]"
		}
		p.linef("%s", line)
	case engine.Cancelled:
		line := id + " cancelled"
		if errText != "" {
			line += ": " + errText
		}
		if r.Job != nil {
			line += fmt.Sprintf("; its %s job %d (last %s) may still run", r.Job.Kind, r.Job.ID, stateName(*r.Job))
		}
		p.linef("%s", line)
	case engine.SkippedWhen:
		why := errText
		if why == "" {
			why = "its when expression is false"
		}
		p.linef("%s skipped: %s", id, why)
	default:
		why := errText
		if why == "" {
			why = "not run"
		}
		p.linef("%s %s: %s", id, r.Outcome, why)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown cause"
	}
	return s
}

// Aborting implements engine.Observer.
func (p *Plain) Aborting(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linef("aborting: %s; starting nothing new, letting running instances end", term(reason))
}

// Notice implements engine.Observer: a wait of the API client, shown at
// once so that nobody mistakes it for a hang. The same kind of wait on the
// same endpoint is shown at most once every noticeEvery, with how many
// were left out.
func (p *Plain) Notice(n engine.Notice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := n.Kind + " " + n.Endpoint
	if p.notices == nil {
		p.notices = map[string]noticeSeen{}
	}
	seen := p.notices[key]
	if !seen.at.IsZero() && n.At.Sub(seen.at) < noticeEvery {
		seen.skipped++
		p.notices[key] = seen
		return
	}
	text := term(n.Text)
	if seen.skipped > 0 {
		text += fmt.Sprintf(" (%d more like it since the last)", seen.skipped)
	}
	p.notices[key] = noticeSeen{at: n.At}
	p.linef("API: %s", text)
}

// noticeEvery spaces repeated notices of one kind and endpoint.
const noticeEvery = 5 * time.Second

type noticeSeen struct {
	at      time.Time
	skipped int
}

// WaitStarted implements engine.Observer: a wait is said as such, with the
// commands that end it, never left to look like a hang.
func (p *Plain) WaitStarted(w engine.WaitInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w = redact.Copy(w, redact.Terminal)
	p.linef("%s", waitLine(w))
	if w.Kind == engine.WaitApproval && p.commands != nil {
		approve, abort := p.commands(w)
		p.linef("  approve: %s", term(approve))
		p.linef("  abort:   %s", term(abort))
	}
}

// WaitEnded implements engine.Observer.
func (p *Plain) WaitEnded(w engine.WaitInfo, d engine.Decision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.Kind == engine.Stopped {
		return
	}
	p.linef("%s", decisionLine(redact.Copy(w, redact.Terminal), redact.Copy(d, redact.Terminal)))
}

// RequestCount implements engine.Observer.
func (p *Plain) RequestCount(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = n
}

// RunFinished implements engine.Observer: a closing line, then the summary.
func (p *Plain) RunFinished(s engine.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s = redact.Copy(s, redact.Terminal)
	requests := s.Requests
	if requests == 0 {
		requests = p.requests
	}
	var took time.Duration
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		took = s.Finished.Sub(s.Started)
	} else if p.started {
		took = p.now().Sub(p.start)
	}
	status := runStatus(s)
	p.linef("rollout \"%s\" %s after %s (%s)", s.Plan, status, formatDuration(took), plural(int(requests), "API request"))

	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary of rollout \"%s\": %s\n", s.Plan, status)
	fmt.Fprintf(&b, "  outcomes: %s\n", counts(s.Counts))
	fmt.Fprintf(&b, "  time: %s, API requests: %d\n", formatDuration(took), requests)
	if s.Verdict == engine.VerdictAborted {
		fmt.Fprintf(&b, "  aborted: %s\n", orUnknown(s.AbortReason))
	}
	if s.Verdict == engine.VerdictInterrupted {
		b.WriteString("  interrupted: nothing more was sent that changes state\n")
	}
	if len(s.Targets) > 0 {
		b.WriteString("\nTargets:\n")
		rows := [][]string{{"TARGET", "OUTCOME", "TIME", "CAUSE"}}
		for _, t := range s.Targets {
			took := "-"
			if t.Elapsed > 0 {
				took = formatDuration(t.Elapsed)
			}
			rows = append(rows, []string{targetName(t.Machine, t.Image), string(t.Outcome), took, engine.ErrText(t.Err)})
		}
		table(&b, rows)
	}
	if len(s.Failures) > 0 {
		b.WriteString("\nFailures:\n")
		for _, f := range s.Failures {
			fmt.Fprintf(&b, "  %s: %s\n", f.Instance, orUnknown(engine.ErrText(f.Err)))
		}
	}
	if len(s.Switches) > 0 {
		b.WriteString("\nProfile switches:\n")
		for _, o := range s.Switches {
			what := o.Detail
			if o.Outcome != engine.Succeeded {
				what = string(o.Outcome) + ": " + orUnknown(engine.ErrText(o.Err))
			}
			fmt.Fprintf(&b, "  %s: %s\n", o.Instance, what)
		}
	}
	if len(s.OnFailure) > 0 {
		b.WriteString("\nOn failure:\n")
		ran, noops := engine.SplitNoops(s.OnFailure)
		for _, o := range ran {
			what := o.Detail
			if o.Outcome != engine.Succeeded {
				what = string(o.Outcome) + ": " + orUnknown(engine.ErrText(o.Err))
			}
			fmt.Fprintf(&b, "  %s: %s\n", o.Instance, what)
		}
		for _, g := range noops {
			fmt.Fprintf(&b, "  %s: %s\n", g.Label(), g.Detail)
		}
	}
	if len(s.Decisions) > 0 {
		b.WriteString("\nApprovals and pauses:\n")
		for _, d := range s.Decisions {
			if d.Decision.Kind == engine.Stopped {
				continue
			}
			fmt.Fprintf(&b, "  %s at %s\n", decisionLine(d.Wait, d.Decision), d.Decision.At.Local().Format(time.TimeOnly))
		}
	}
	if len(s.Unfinished) > 0 {
		b.WriteString("\nUnfinished jobs (they may still run on Clanforge):\n")
		rows := [][]string{{"INSTANCE", "KIND", "JOB", "LAST STATE"}}
		for _, u := range s.Unfinished {
			last := stateName(u.Job)
			if u.Job.Progress > 0 {
				last += fmt.Sprintf(" %d%%", u.Job.Progress)
			}
			rows = append(rows, []string{u.Instance, u.Job.Kind, fmt.Sprint(u.Job.ID), last})
		}
		table(&b, rows)
	}
	p.write(b.String())
}

// table writes rows as indented, aligned columns without trailing blanks.
func table(b *strings.Builder, rows [][]string) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
}

// runStatus is one word for how the run ended: the engine's verdict.
func runStatus(s engine.Summary) string { return s.Verdict.String() }

// counts renders outcome counts in a fixed order, leaving out zeros.
func counts(c map[engine.Outcome]int) string {
	var parts []string
	for _, o := range outcomeOrder {
		if c[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[o], o))
		}
	}
	// Outcomes this package does not know yet still show, after the rest.
	var other []string
	for o, n := range c {
		if !slices.Contains(outcomeOrder, o) && n > 0 {
			other = append(other, fmt.Sprintf("%d %s", n, o))
		}
	}
	sort.Strings(other)
	parts = append(parts, other...)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// list shows up to max items, through term, and how many more there are.
func list(items []string, max int) string {
	n := min(len(items), max)
	shown := make([]string, n)
	for i, it := range items[:n] {
		shown[i] = term(it)
	}
	s := strings.Join(shown, ", ")
	if len(items) > max {
		s += fmt.Sprintf(" and %d more", len(items)-max)
	}
	return s
}
