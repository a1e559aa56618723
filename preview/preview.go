// Package preview renders the dry run of a plan: what `rollout run` would do,
// in DAG and wave order, with the exact API calls it would make, without
// sending any of them. It owns both the readable text form and the JSON form
// for tooling.
//
// Both go through the output boundary of package redact: the text form shows
// every string of the preview (names, values, expressions, parameters, the
// pre-flight's findings) through redact.Terminal, the JSON form encodes it
// with redact.JSONEncoder, so neither a plan nor an API answer can put an
// escape sequence or a known secret on the terminal.
package preview

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/rollout/rollout/plan"
	"github.com/rollout/rollout/redact"
	"github.com/rollout/rollout/steps"
)

// Options tune the preview.
type Options struct {
	// All lists every instance; by default large steps are summarized.
	All bool
	// BaseURL is the API base the run would use ("" means the default).
	BaseURL string
	ASID    int64
	// Preflight is the read-only check's report when the API was reachable.
	Preflight *steps.PreflightReport
	// PreflightErr says why no pre-flight could be made, when it could not.
	PreflightErr string
}

// Doc is the preview, as serialized by --json (schema version 1).
type Doc struct {
	Version     int    `json:"v"`
	Plan        string `json:"plan"`
	File        string `json:"file"`
	Description string `json:"description,omitempty"`
	// Vars are the plan's variables as they may be shown: a value read
	// with ${env:NAME} stays ${env:NAME}, URL credentials are masked.
	Vars        map[string]string `json:"vars,omitempty"`
	API         string            `json:"api"`
	ASID        int64             `json:"asid"`
	Concurrency int               `json:"concurrency"`
	Images      []ImageDoc        `json:"images"`
	Targets     int               `json:"targets"`
	Steps       []StepDoc         `json:"steps"`
	OnFailure   []StepDoc         `json:"on_failure,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	Preflight   *PreflightDoc     `json:"preflight,omitempty"`
	Counts      map[string]int    `json:"instances_by_type"`
}

// ImageDoc lists an image's machines.
type ImageDoc struct {
	Name  string   `json:"name"`
	ID    int64    `json:"id"`
	Build []string `json:"build_machines"`
	Fleet []string `json:"fleet_machines"`
}

// StepDoc is one step template and its instances.
type StepDoc struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Needs       []string `json:"needs,omitempty"`
	Where       string   `json:"where,omitempty"`
	When        string   `json:"when,omitempty"`
	Expr        string   `json:"expr,omitempty"`
	Timeout     string   `json:"timeout"`
	Retries     int      `json:"retries,omitempty"`
	MaxParallel int      `json:"max_parallel,omitempty"`
	MaxFailures *int     `json:"max_failures,omitempty"`
	// Budgets says what max_failures means for this plan: how many of how
	// many instances may fail, over all images or per image
	// (max_failures_per: image).
	Budgets   []BudgetDoc   `json:"budgets,omitempty"`
	Waves     []WaveDoc     `json:"waves,omitempty"`
	Instances []InstanceDoc `json:"instances"`
}

// WaveDoc is one wave of an install step for one image.
type WaveDoc struct {
	Image    string   `json:"image"`
	Wave     int      `json:"wave"` // 1-based
	Machines []string `json:"machines"`
}

// InstanceDoc is one step instance with the calls it would make.
type InstanceDoc struct {
	ID      string   `json:"id"`
	Machine string   `json:"machine,omitempty"`
	Image   string   `json:"image"`
	Wave    int      `json:"wave,omitempty"` // 1-based; 0: none
	Needs   []string `json:"needs,omitempty"`
	// Switch is what a switch instance would do to its fleet, e.g.
	// "prod-eu: profile 101 (game-a) → 102 (game-b), 10 machines at a
	// time, forced after 2h", with the current profile when the
	// pre-flight read it.
	Switch string    `json:"switch,omitempty"`
	Calls  []CallDoc `json:"calls"`
}

// CallDoc is one API call.
type CallDoc struct {
	Method   string            `json:"method"`
	Endpoint string            `json:"endpoint"`
	Params   map[string]string `json:"params,omitempty"`
	Body     string            `json:"body,omitempty"` // the JSON body as sent (the profile switch)
	Mutating bool              `json:"changes_state"`
	Note     string            `json:"note,omitempty"`
}

// PreflightDoc is the pre-flight result.
type PreflightDoc struct {
	OK       bool               `json:"ok"`
	Error    string             `json:"error,omitempty"`
	Problems []string           `json:"problems,omitempty"`
	Images   []steps.ImageFacts `json:"images,omitempty"`
	Fleets   []steps.FleetFacts `json:"fleets,omitempty"`
	Installs int                `json:"installs_listed"`
}

// Build assembles the preview of p.
func Build(p *plan.Plan, opt Options) *Doc {
	d := &Doc{Version: 1, Plan: p.Name, File: p.File, Description: p.DescriptionDisplay, Vars: p.VarDisplay, API: opt.BaseURL, ASID: opt.ASID, Concurrency: p.Concurrency, Targets: len(p.Targets), Counts: map[string]int{}}
	if d.API == "" {
		d.API = "https://api.multiplay.co.uk"
	}
	for _, img := range p.Images {
		id := ImageDoc{Name: img.Name, ID: img.ID}
		for _, t := range p.Targets {
			if t.Image != img {
				continue
			}
			if t.Machine.Build {
				id.Build = append(id.Build, t.Machine.Name)
			} else {
				id.Fleet = append(id.Fleet, t.Machine.Name)
			}
		}
		d.Images = append(d.Images, id)
	}
	byStep := map[*plan.Step][]*plan.Instance{}
	for _, in := range p.Instances {
		byStep[in.Step] = append(byStep[in.Step], in)
		d.Counts[string(in.Step.Type)]++
	}
	// The fleets' current profiles, when the pre-flight read them.
	fleets := map[string]steps.FleetFacts{}
	if opt.Preflight != nil {
		for _, f := range opt.Preflight.Fleets {
			if f.Known {
				fleets[f.ID] = f
			}
		}
	}
	for _, st := range p.Steps {
		d.Steps = append(d.Steps, stepDoc(p, st, byStep[st], opt.ASID, fleets))
	}
	fb := map[*plan.Step][]*plan.Instance{}
	for _, in := range p.FailureInstances {
		fb[in.Step] = append(fb[in.Step], in)
	}
	for _, st := range p.OnFailure {
		d.OnFailure = append(d.OnFailure, stepDoc(p, st, fb[st], opt.ASID, fleets))
	}
	// The plan owns its warnings, so that validate and the preview say
	// the same.
	for _, w := range p.Warnings() {
		d.Warnings = append(d.Warnings, w.Msg)
	}
	if opt.Preflight != nil || opt.PreflightErr != "" {
		pd := &PreflightDoc{Error: opt.PreflightErr}
		if r := opt.Preflight; r != nil {
			pd.OK = r.OK() && opt.PreflightErr == ""
			pd.Problems = r.Problems
			pd.Images = r.Images
			pd.Fleets = r.Fleets
			pd.Installs = r.Installs
		}
		d.Preflight = pd
	}
	return d
}

// BudgetDoc is one failure budget of a step: more than Limit failed of Of
// instances aborts the rollout. Image is set when the budget counts one
// image's instances (max_failures_per: image).
type BudgetDoc struct {
	Image string `json:"image,omitempty"`
	Limit int    `json:"limit"`
	Of    int    `json:"of"`
}

// budgets is each failure budget of st, as plan.FailureBudget computes it.
func budgets(p *plan.Plan, st *plan.Step, insts []*plan.Instance) []BudgetDoc {
	var out []BudgetDoc
	seen := map[*plan.Image]bool{}
	for _, in := range insts {
		if seen[in.Image] || (!st.MaxFailuresPerImage && len(out) > 0) {
			continue
		}
		seen[in.Image] = true
		limit, of, ok := p.FailureBudget(st, in.Image)
		if !ok {
			return nil
		}
		b := BudgetDoc{Limit: limit, Of: of}
		if st.MaxFailuresPerImage {
			b.Image = in.Image.Name
		}
		out = append(out, b)
	}
	return out
}

// budgetText says a step's failure budgets for people: "aborts when more
// than 1 of its 19 instances fail", "…of game-b's 19 machines fail", one
// clause per image when they count per image.
func budgetText(sd StepDoc, images int) string {
	var parts []string
	for _, b := range sd.Budgets {
		switch {
		case b.Image != "":
			parts = append(parts, fmt.Sprintf("more than %d of %s's %d", b.Limit, b.Image, b.Of))
		case images > 1:
			parts = append(parts, fmt.Sprintf("more than %d of its %d instances, all images together,", b.Limit, b.Of))
		default:
			parts = append(parts, fmt.Sprintf("more than %d of its %d instances", b.Limit, b.Of))
		}
	}
	return "aborts the rollout when " + strings.Join(parts, ", or ") + " fail"
}

func stepDoc(p *plan.Plan, st *plan.Step, insts []*plan.Instance, asid int64, fleets map[string]steps.FleetFacts) StepDoc {
	sd := StepDoc{Name: st.Name, Type: string(st.Type), Needs: st.Needs, Timeout: st.Timeout.String(), Retries: st.Retries, MaxParallel: st.MaxParallel}
	if st.Where != nil {
		sd.Where = st.Where.Source
	}
	if st.When != nil {
		sd.When = st.When.Source
	}
	if st.Expr != nil {
		sd.Expr = st.Expr.Source
	}
	if st.MaxFailures != nil {
		n := st.MaxFailuresCount
		sd.MaxFailures = &n
		sd.Budgets = budgets(p, st, insts)
	}
	waves := map[string][]WaveDoc{}
	var imgOrder []string
	for _, in := range insts {
		id := InstanceDoc{ID: in.ID, Image: in.Image.Name}
		if in.Machine != nil {
			id.Machine = in.Machine.Name
		}
		if in.Wave >= 0 {
			id.Wave = in.Wave + 1
			ws := waves[in.Image.Name]
			if ws == nil {
				imgOrder = append(imgOrder, in.Image.Name)
			}
			for len(ws) <= in.Wave {
				ws = append(ws, WaveDoc{Image: in.Image.Name, Wave: len(ws) + 1})
			}
			ws[in.Wave].Machines = append(ws[in.Wave].Machines, id.Machine)
			waves[in.Image.Name] = ws
		}
		for _, dep := range in.Deps {
			id.Needs = append(id.Needs, dep.ID)
		}
		if st.Type == plan.TypeSwitch && in.Fleet != nil {
			id.Switch = switchLine(st, in.Fleet, fleets)
		}
		for _, c := range steps.Describe(in, asid) {
			id.Calls = append(id.Calls, CallDoc{Method: c.Method, Endpoint: c.Endpoint, Params: c.Params, Body: c.Body, Mutating: c.Mutating, Note: c.Note})
		}
		sd.Instances = append(sd.Instances, id)
	}
	for _, img := range imgOrder {
		sd.Waves = append(sd.Waves, waves[img]...)
	}
	return sd
}

// switchLine is what a switch instance would do to fleet f, from the
// profile the pre-flight read when it did.
func switchLine(st *plan.Step, f *plan.Fleet, fleets map[string]steps.FleetFacts) string {
	profile, image := steps.SwitchTarget(st)
	if profile <= 0 {
		return f.Name + ": no profile to switch to"
	}
	cur, known := fleets[f.ID]
	if st.OnFailure {
		line := fmt.Sprintf("%s: back to profile %d", f.Name, profile)
		if image != "" {
			line += " (" + image + ")"
		}
		return line + ", only if this run switched it"
	}
	if known && cur.Profile == profile && (cur.State == "complete" || cur.State == "not requested") {
		line := fmt.Sprintf("%s: already on profile %d", f.Name, profile)
		if image != "" {
			line += " (" + image + ")"
		}
		return line + ": nothing to send"
	}
	return steps.SwitchLine(f.Name, cur.Profile, cur.ProfileImage, profile, image, st.MaxMachines, st.ForceAfter)
}

// JSON writes the preview as one JSON document, every string masked.
func (d *Doc) JSON(w io.Writer) error {
	enc := redact.NewJSONEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// summarizeAfter is how many instances of a step are shown in full before
// the rest are summarized (without --all).
const summarizeAfter = 3

// Text writes the readable preview, every string of d masked and escaped.
func (d *Doc) Text(w io.Writer, all bool) error {
	d = redact.Copy(d, redact.Terminal)
	b := &strings.Builder{}
	d.writeHeader(b)
	d.writeTargets(b, all)
	if pf := d.Preflight; pf != nil {
		writePreflight(b, pf)
	}
	b.WriteString("Steps, in order:\n")
	for i, sd := range d.Steps {
		writeStep(b, i+1, len(d.Steps), sd, all)
	}
	d.writeOnFailure(b)
	d.writeLimits(b)
	d.writeCounts(b)
	// The strings of d are escaped; escaping the whole once more keeps a
	// string a future change adds outside d from reaching the terminal raw.
	_, err := io.WriteString(w, redact.EscapeLines(b.String()))
	return err
}

// writeHeader writes the plan's name, description, API, account and vars.
func (d *Doc) writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "Plan %s (%s)\n", d.Plan, d.File)
	if d.Description != "" {
		fmt.Fprintf(b, "  %s\n", d.Description)
	}
	fmt.Fprintf(b, "  API %s, account service %d, concurrency %d\n", d.API, d.ASID, d.Concurrency)
	if len(d.Vars) > 0 {
		keys := make([]string, 0, len(d.Vars))
		for k := range d.Vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		vs := make([]string, 0, len(keys))
		for _, k := range keys {
			vs = append(vs, k+"="+d.Vars[k])
		}
		fmt.Fprintf(b, "  vars: %s\n", strings.Join(vs, ", "))
	}
	fmt.Fprintf(b, "  Nothing below is sent by `rollout plan`: it shows what `rollout run` would do.\n\n")
}

// writeTargets writes each image's build and fleet machines.
func (d *Doc) writeTargets(b *strings.Builder, all bool) {
	fmt.Fprintf(b, "Targets: %d\n", d.Targets)
	for _, img := range d.Images {
		fmt.Fprintf(b, "  image %s (id %d)\n", img.Name, img.ID)
		fmt.Fprintf(b, "    build machines (%d): %s\n", len(img.Build), names(img.Build, all))
		fmt.Fprintf(b, "    fleet machines (%d): %s\n", len(img.Fleet), names(img.Fleet, all))
	}
	b.WriteString("\n")
}

// writePreflight writes what the read-only pre-flight found: each image's
// lock and counters, each fleet's state, and the problems.
func writePreflight(b *strings.Builder, pf *PreflightDoc) {
	b.WriteString("Pre-flight (read-only):\n")
	switch {
	case pf.Error != "":
		fmt.Fprintf(b, "  not made: %s\n", pf.Error)
	default:
		for _, f := range pf.Images {
			lock := "not locked"
			if f.LockKind != "" {
				lock = fmt.Sprintf("locked by %s %d", f.LockKind, f.LockID)
				if f.Own {
					lock += " (created by this rollout)"
				}
			}
			cnt := ""
			if f.Counters != nil {
				cnt = fmt.Sprintf(", machines: %d completed, %d pending, %d failed", f.Counters.Completed, f.Counters.Pending, f.Counters.Failed)
			}
			fmt.Fprintf(b, "  image %s (id %d): %s%s\n", f.Name, f.ID, lock, cnt)
		}
		for _, f := range pf.Fleets {
			fmt.Fprintf(b, "  fleet %s (id %s): %s\n", f.Name, f.ID, fleetState(f))
		}
		fmt.Fprintf(b, "  install jobs listed for the account: %d\n", pf.Installs)
		for _, p := range pf.Problems {
			fmt.Fprintf(b, "  PROBLEM: %s\n", p)
		}
		if pf.OK {
			b.WriteString("  ok\n")
		}
	}
	b.WriteString("\n")
}

// writeOnFailure writes what the on_failure steps would do.
func (d *Doc) writeOnFailure(b *strings.Builder) {
	b.WriteString("On failure:\n")
	if len(d.OnFailure) == 0 {
		b.WriteString("  nothing: a failed instance skips its dependents; open diffs stay open.\n")
	}
	for _, sd := range d.OnFailure {
		if sd.Type == string(plan.TypeSwitch) {
			fmt.Fprintf(b, "  %s (%s) runs after any failure of the run, once per fleet (%d), and switches back only what this run switched\n", sd.Name, sd.Type, len(sd.Instances))
			for _, in := range sd.Instances {
				fmt.Fprintf(b, "    %s\n", in.Switch)
			}
		} else {
			fmt.Fprintf(b, "  %s (%s) runs for the target or image whose step failed (%d possible instances)\n", sd.Name, sd.Type, len(sd.Instances))
		}
		if len(sd.Instances) > 0 {
			for _, c := range sd.Instances[0].Calls {
				writeCall(b, "    ", c)
			}
		}
	}
}

// writeLimits writes the concurrency, each step's limits, and the plan's
// warnings.
func (d *Doc) writeLimits(b *strings.Builder) {
	b.WriteString("\nLimits:\n")
	fmt.Fprintf(b, "  at most %d step instances at once; updates and diffs of one image run one at a time\n", d.Concurrency)
	for _, sd := range d.Steps {
		var l []string
		if sd.MaxParallel > 0 {
			l = append(l, fmt.Sprintf("max_parallel %d", sd.MaxParallel))
		}
		if len(sd.Budgets) > 0 {
			l = append(l, budgetText(sd, len(d.Images)))
		}
		if sd.Retries > 0 {
			l = append(l, fmt.Sprintf("retries %d", sd.Retries))
		}
		l = append(l, "timeout "+sd.Timeout)
		fmt.Fprintf(b, "  %s: %s\n", sd.Name, strings.Join(l, ", "))
	}
	for _, wn := range d.Warnings {
		fmt.Fprintf(b, "  warning: %s\n", wn)
	}
}

// writeCounts writes the closing line: how many step instances, by kind.
func (d *Doc) writeCounts(b *strings.Builder) {
	keys := make([]string, 0, len(d.Counts))
	total := 0
	for k, n := range d.Counts {
		keys = append(keys, fmt.Sprintf("%d %s", n, k))
		total += n
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "\n%d step instances (%s).\n", total, strings.Join(keys, ", "))
}

func writeStep(b *strings.Builder, i, n int, sd StepDoc, all bool) {
	fmt.Fprintf(b, "%d/%d  %s (%s)", i, n, sd.Name, sd.Type)
	if len(sd.Needs) > 0 {
		fmt.Fprintf(b, "  needs %s", strings.Join(sd.Needs, ", "))
	}
	b.WriteString("\n")
	if sd.Where != "" {
		fmt.Fprintf(b, "  where: %s\n", sd.Where)
	}
	if sd.When != "" {
		fmt.Fprintf(b, "  when:  %s (checked just before each instance runs)\n", sd.When)
	}
	if sd.Expr != "" {
		fmt.Fprintf(b, "  gate:  %s (false fails the instance)\n", sd.Expr)
	}
	if len(sd.Instances) == 0 {
		b.WriteString("  no instances: no target matches\n\n")
		return
	}
	for _, w := range sd.Waves {
		fmt.Fprintf(b, "  wave %d of %s: %d machines: %s\n", w.Wave, w.Image, len(w.Machines), names(w.Machines, all))
	}
	shown := len(sd.Instances)
	if !all && shown > summarizeAfter+1 {
		shown = summarizeAfter
	}
	for _, in := range sd.Instances[:shown] {
		fmt.Fprintf(b, "  %s", in.ID)
		if in.Wave > 0 {
			fmt.Fprintf(b, "  (wave %d)", in.Wave)
		}
		b.WriteString("\n")
		if in.Switch != "" {
			fmt.Fprintf(b, "    %s\n", in.Switch)
		}
		for _, c := range in.Calls {
			writeCall(b, "    ", c)
		}
	}
	if rest := sd.Instances[shown:]; len(rest) > 0 {
		var ms []string
		for _, in := range rest {
			if in.Machine != "" {
				ms = append(ms, in.Machine+"/"+in.Image)
			} else {
				ms = append(ms, in.Image)
			}
		}
		fmt.Fprintf(b, "  … and %d more instances with the same calls for: %s\n", len(rest), names(ms, false))
		b.WriteString("    (rollout plan --all lists every one)\n")
	}
	b.WriteString("\n")
}

func writeCall(b *strings.Builder, indent string, c CallDoc) {
	if c.Endpoint == "" {
		fmt.Fprintf(b, "%s%s\n", indent, c.Note)
		return
	}
	q := make([]string, 0, len(c.Params))
	for k, v := range c.Params {
		q = append(q, k+"="+v)
	}
	sort.Strings(q)
	line := c.Method + " " + c.Endpoint
	if len(q) > 0 {
		line += "?" + strings.Join(q, "&")
	}
	if c.Body != "" {
		line += " " + c.Body
	}
	mark := "read"
	if c.Mutating {
		mark = "changes state"
	}
	fmt.Fprintf(b, "%s%s  [%s]", indent, line, mark)
	if c.Note != "" {
		fmt.Fprintf(b, "  %s", c.Note)
	}
	b.WriteString("\n")
}

// fleetState says what the pre-flight read about a fleet.
func fleetState(f steps.FleetFacts) string {
	if !f.Known {
		return "unknown to the API"
	}
	prof := fmt.Sprintf("profile %d", f.Profile)
	if f.ProfileImage != "" {
		prof += " (" + f.ProfileImage + ")"
	}
	switch f.State {
	case "not requested":
		return prof + ", no switch requested"
	case "pending", "processing":
		return fmt.Sprintf("switching to %s: %s, %d of %d servers", prof, f.State, f.ServersProcessed, f.ServersProcessed+f.ServersPending)
	}
	return prof + ", last switch " + f.State
}

// names joins a list, shortened to its first and last few entries unless all.
func names(list []string, all bool) string {
	if len(list) == 0 {
		return "none"
	}
	if all || len(list) <= 8 {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s, … (%d more) …, %s", strings.Join(list[:4], ", "), len(list)-6, strings.Join(list[len(list)-2:], ", "))
}
