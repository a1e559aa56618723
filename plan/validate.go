package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollout/rollout/redact"
)

// stepInfo is a step template with what the loader learns while expanding it.
type stepInfo struct {
	s         *Step
	raw       *rawStep
	index     int // in plan order (steps, then on_failure)
	needs     []int
	perTarget bool
	insts     []*Instance
	byTarget  map[*Target]*Instance
	byImage   map[*Image][]*Instance
	closure   map[int]bool // steps needed, transitively
	// badNeeds: a need was unknown, so missing-diff or missing-version
	// errors downstream would only repeat that error.
	badNeeds bool
	// whereFailed: evaluating where failed (reported), so that it matched
	// nothing says nothing more.
	whereFailed bool
	// emptied: its where matched nothing (reported); steps that need it
	// would only repeat that as a missing diff or version.
	emptied bool
	// voidNeed: a need waits for nothing for some image (reported, see
	// voidNeeds); its expressions would only repeat that.
	voidNeed bool
}

const defaultTimeout = 30 * time.Minute

func (l *loader) load() *Plan {
	rp := l.parseRaw()
	if rp == nil {
		return nil
	}
	p := &Plan{File: l.file, Source: l.src, Concurrency: 4, Vars: map[string]any{}, VarDisplay: map[string]string{}}
	p.Hash = planHash(l.src, l.opt.Vars)
	l.topLevel(rp, p)
	vs := l.vars(rp, p)
	l.texts(rp, p, vs)
	l.images(rp, p)
	l.fleets(rp, p)
	l.machines(rp, p)
	l.notify(rp, p, vs)
	infos := l.steps(rp, p, vs)
	if infos == nil {
		return p
	}
	order, ok := l.graph(infos)
	if !ok {
		return p
	}
	l.expand(p, infos, order)
	p.warnings = l.warnings(p)
	return p
}

// topLevel checks version, name, concurrency and clanforge.asid.
func (l *loader) topLevel(rp *rawPlan, p *Plan) {
	if rp.Version.Set && rp.Version.V != 1 {
		l.errNode(rp.Version.node, "", "unsupported plan version %d: this rollout reads version 1", rp.Version.V)
	}
	if rp.Name.Set {
		if strings.TrimSpace(rp.Name.V) == "" {
			l.errNode(rp.Name.node, "", "name must not be empty")
		}
		if strings.ContainsAny(rp.Name.V, "/\\\x00") {
			l.errNode(rp.Name.node, "", "name names the state directory and must not contain / or \\")
		}
		p.Name = rp.Name.V
	}
	if rp.Concurrency.Set {
		if rp.Concurrency.V < 1 {
			l.errNode(rp.Concurrency.node, "", "concurrency must be at least 1")
		} else {
			p.Concurrency = int(min(rp.Concurrency.V, math.MaxInt32))
		}
	}
	if rp.ASID.Set {
		if rp.ASID.V < 1 {
			l.errNode(rp.ASID.node, "", "clanforge.asid must be a positive account service id")
		}
		p.ASID = rp.ASID.V
	}
}

// texts interpolates the description and clanforge.url.
func (l *loader) texts(rp *rawPlan, p *Plan, vs *varState) {
	if d, ok := l.interpolate(rp.Description, "description", vs); ok {
		p.Description = d.Resolved
		p.DescriptionDisplay = d.Display
	}
	if u, ok := l.interpolate(rp.ClanforgeURL, "clanforge.url", vs); ok && rp.ClanforgeURL.Set {
		if !strings.HasPrefix(u.Resolved, "http://") && !strings.HasPrefix(u.Resolved, "https://") {
			l.errNode(rp.ClanforgeURL.node, "", "clanforge.url must start with http:// or https://")
		}
		p.ClanforgeURL = strings.TrimRight(u.Resolved, "/")
	}
}

// Plan fields added beyond the contract live in plan_extra.go.

func planHash(src []byte, over map[string]string) string {
	h := sha256.New()
	h.Write(src)
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, over[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (l *loader) vars(rp *rawPlan, p *Plan) *varState {
	vs := &varState{raw: map[string]*rawVar{}, value: map[string]any{}, display: map[string]string{}, fromEnv: map[string]bool{}, visiting: map[string]bool{}, done: map[string]bool{}}
	for _, v := range rp.Vars {
		vs.raw[v.Name] = v
		vs.names = append(vs.names, v.Name)
	}
	l.overrides(vs)
	for _, n := range vs.names {
		v, d, _ := l.varValue(n, vs, vs.raw[n].Pos, len(n))
		p.Vars[n] = v
		p.VarDisplay[n] = MaskURLs(d)
	}
	l.xenv = &exprEnv{envs: map[string]*envInfo{}, progs: map[string]*compiled{}, stepType: map[string]StepType{}}
	l.xenv.buildVars(vs.names, p.Vars)
	return vs
}

// overrides applies --var values: each replaces a variable's value, typed
// like the plan's value, and is taken literally (not interpolated again).
func (l *loader) overrides(vs *varState) {
	keys := make([]string, 0, len(l.opt.Vars))
	for k := range l.opt.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pos := Pos{File: "--var " + k}
		rv := vs.raw[k]
		if rv == nil {
			l.errAt(pos, 0, DidYouMean(k, vs.names), "unknown plan variable %q (a --var can only override a variable the plan declares under vars)", k)
			continue
		}
		v, msg := overrideValue(rv.Value, l.opt.Vars[k])
		if msg != "" {
			l.errAt(pos, 0, "", "variable %q %s", k, msg)
			continue
		}
		vs.raw[k] = &rawVar{Name: k, Pos: rv.Pos, Value: v}
		vs.done[k] = true
		vs.value[k] = v
		vs.display[k], _ = scalarString(v)
	}
}

// overrideValue types an override like the plan's value, or says why it
// cannot be.
func overrideValue(planValue any, val string) (any, string) {
	switch planValue.(type) {
	case string, nil:
		return val, ""
	case int:
		if n, err := strconv.Atoi(val); err == nil {
			return n, ""
		}
		return nil, "is an integer in the plan; the override is not an integer"
	case float64:
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			return f, ""
		}
		return nil, "is a number in the plan; the override is not a number"
	case bool:
		if b, err := strconv.ParseBool(val); err == nil {
			return b, ""
		}
		return nil, "is true/false in the plan; the override is neither"
	}
	return nil, "is a list or mapping and cannot be overridden with --var"
}

func (l *loader) images(rp *rawPlan, p *Plan) {
	if rp.have["images"] && len(rp.Images) == 0 {
		l.errAt(rp.Pos, 1, "", "images must list at least one image")
	}
	byName := map[string]*Image{}
	byID := map[int64]*Image{}
	byProfile := map[int64]*Image{}
	for _, ri := range rp.Images {
		// An image whose id is missing or unreadable (reported) stays in
		// the plan, so that the rest of it is checked as written.
		if !ri.Name.Set {
			l.partialTargets = true
			continue
		}
		img := &Image{Name: ri.Name.V, ID: ri.ID.V, Pos: ri.Pos}
		if prev := byName[img.Name]; prev != nil {
			l.errNode(ri.Name.node, "", "duplicate image %q (first defined on line %d)", img.Name, prev.Pos.Line)
			l.partialTargets = true
			continue
		}
		if !validName(img.Name) {
			l.errNode(ri.Name.node, "", "image name %q must be non-empty and contain no spaces, / or @", img.Name)
		}
		if img.ID < 1 && ri.ID.Set {
			l.errNode(ri.ID.node, "", "image id must be a positive integer")
		}
		if prev := byID[img.ID]; prev != nil && img.ID > 0 {
			l.errNode(ri.ID.node, "", "image id %d is already used by image %q (line %d)", img.ID, prev.Name, prev.Pos.Line)
		}
		l.imageProfile(ri, img, byProfile)
		byName[img.Name] = img
		byID[img.ID] = img
		p.Images = append(p.Images, img)
	}
}

// validName keeps names usable in instance ids ("step@machine/image").
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n/@")
}

func (l *loader) machines(rp *rawPlan, p *Plan) {
	if rp.have["machines"] && len(rp.Machines) == 0 {
		l.errAt(rp.Pos, 1, "", "machines must list at least one machine")
	}
	imgs := imageIndex{byName: map[string]*Image{}}
	for _, im := range p.Images {
		imgs.names = append(imgs.names, im.Name)
		imgs.byName[im.Name] = im
	}
	byName := map[string]*Machine{}
	byID := map[int64]*Machine{}
	for _, rm := range rp.Machines {
		// A machine whose id is missing or unreadable (reported) stays in
		// the plan: without it, steps that target it would bring errors
		// about diffs and versions that are not there.
		if !rm.Name.Set {
			l.partialTargets = true
			continue
		}
		m := &Machine{Name: rm.Name.V, ID: rm.ID.V, Labels: rm.Labels, Pos: rm.Pos, Index: len(p.Machines)}
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		if prev := byName[m.Name]; prev != nil {
			l.errNode(rm.Name.node, "", "duplicate machine %q (first defined on line %d)", m.Name, prev.Pos.Line)
			l.partialTargets = true
			continue
		}
		if !validName(m.Name) {
			l.errNode(rm.Name.node, "", "machine name %q must be non-empty and contain no spaces, / or @", m.Name)
		}
		if !rm.ID.Set {
			// Reported while decoding.
		} else if m.ID < 1 {
			l.errNode(rm.ID.node, "", "machine id must be a positive integer")
		} else if prev := byID[m.ID]; prev != nil {
			l.errNode(rm.ID.node, "", "machine id %d is already used by machine %q (line %d)", m.ID, prev.Name, prev.Pos.Line)
		}
		byName[m.Name] = m
		byID[m.ID] = m
		l.machineFleet(rm, m, p)
		l.machineImages(rm, m, p, imgs)
		p.Machines = append(p.Machines, m)
	}
}

// imageIndex finds the plan's images by name.
type imageIndex struct {
	names  []string
	byName map[string]*Image
}

// machineImages gives m the images it carries (all of them unless it lists
// some) and adds its targets to the plan.
func (l *loader) machineImages(rm *rawMachine, m *Machine, p *Plan, imgs imageIndex) {
	carried := map[*Image]bool{}
	if rm.ImagesSet {
		for _, in := range rm.Images {
			if !in.Set {
				continue
			}
			im := imgs.byName[in.V]
			if im == nil {
				l.errNode(in.node, DidYouMean(in.V, imgs.names), "machine %q carries unknown image %q", m.Name, in.V)
				l.partialTargets = true
				continue
			}
			if carried[im] {
				l.errNode(in.node, "", "image %q is listed twice for machine %q", in.V, m.Name)
			}
			carried[im] = true
		}
	}
	// Images keep the plan's image order whatever order the machine lists.
	for _, im := range p.Images {
		if !rm.ImagesSet || carried[im] {
			m.Images = append(m.Images, im)
			p.Targets = append(p.Targets, &Target{Machine: m, Image: im})
		}
	}
}

func (l *loader) steps(rp *rawPlan, p *Plan, vs *varState) []*stepInfo {
	if rp.have["steps"] && len(rp.Steps) == 0 {
		l.errAt(rp.Pos, 1, "", "steps must list at least one step")
	}
	var infos []*stepInfo
	byName := map[string]*stepInfo{}
	all := append(append([]*rawStep{}, rp.Steps...), rp.OnFailure...)
	for _, rs := range all {
		name, ok := l.stepName(rs, all, byName)
		if !ok {
			continue
		}
		s := l.buildStep(rs, name, vs, p)
		info := &stepInfo{s: s, raw: rs, index: len(infos), byTarget: map[*Target]*Instance{}, byImage: map[*Image][]*Instance{}}
		byName[name] = info
		l.raw[s] = rs
		infos = append(infos, info)
		l.xenv.stepType[name] = s.Type
		l.xenv.stepNames = append(l.xenv.stepNames, name)
		if s.OnFailure {
			p.OnFailure = append(p.OnFailure, s)
		} else {
			p.Steps = append(p.Steps, s)
		}
	}
	l.needs(infos, byName)
	l.infos = infos
	return infos
}

// stepName names a step: its own name, or for an unnamed on_failure step
// one made from its type. It is false for a step to leave out (no type, no
// name, or a duplicate name).
func (l *loader) stepName(rs *rawStep, all []*rawStep, byName map[string]*stepInfo) (string, bool) {
	if !rs.Type.Set || !contains(stepTypes, rs.Type.V) {
		return "", false
	}
	name := rs.Name.V
	if !rs.Name.Set {
		if !rs.OnFailure {
			return "", false
		}
		// Unnamed on_failure steps are named after their type.
		name = rs.Type.V
		for i := 2; byName[name] != nil || l.namedLater(all, name); i++ {
			name = fmt.Sprintf("%s-%d", rs.Type.V, i)
		}
	} else if !validName(name) {
		l.errNode(rs.Name.node, "", "step name %q must be non-empty and contain no spaces, / or @", name)
	}
	if prev := byName[name]; prev != nil {
		l.errNode(rs.Name.node, "", "duplicate step name %q (first defined on line %d)", name, prev.s.Pos.Line)
		return "", false
	}
	return name, true
}

// needs resolves each step's needs to the steps they name.
func (l *loader) needs(infos []*stepInfo, byName map[string]*stepInfo) {
	names := make([]string, 0, len(infos))
	for _, in := range infos {
		if !in.s.OnFailure {
			names = append(names, in.s.Name)
		}
	}
	for _, in := range infos {
		seen := map[string]bool{}
		for _, nd := range in.raw.Needs {
			if !nd.Set {
				continue
			}
			if in.s.OnFailure {
				l.errNode(nd.node, "", "on_failure steps cannot have needs: they run for the target or image whose step failed")
				continue
			}
			if seen[nd.V] {
				l.errNode(nd.node, "", "step %q lists need %q twice", in.s.Name, nd.V)
				continue
			}
			seen[nd.V] = true
			dep := byName[nd.V]
			if dep == nil || dep.s.OnFailure {
				l.errNode(nd.node, DidYouMean(nd.V, names), "step %q needs unknown step %q", in.s.Name, nd.V)
				in.badNeeds = true
				continue
			}
			in.s.Needs = append(in.s.Needs, nd.V)
			in.needs = append(in.needs, dep.index)
		}
	}
}

func (l *loader) namedLater(all []*rawStep, name string) bool {
	for _, rs := range all {
		if rs.Name.Set && rs.Name.V == name {
			return true
		}
	}
	return false
}

// buildStep builds a Step from its raw form: defaults, ranges and interpolation.
func (l *loader) buildStep(rs *rawStep, name string, vs *varState, p *Plan) *Step {
	s := &Step{Name: name, Type: StepType(rs.Type.V), Pos: rs.Pos, Timeout: defaultTimeout, Full: FullFalse, OnFailure: rs.OnFailure}
	if rs.OnFailure && !contains(failureTypes, rs.Type.V) {
		l.errNode(rs.Type.node, "", "on_failure supports %s steps only, not %s", strings.Join(failureTypes, " and "), s.Type)
	}
	l.stepLimits(rs, s)
	l.stepTexts(rs, s, vs)
	l.versionKeys(rs, s)
	l.installKeys(rs, s)
	s.Reinstall = rs.Reinstall.V
	l.readyKeys(rs, s, p)
	l.approveKeys(rs, s, vs)
	l.switchKeys(rs, s, vs, p)
	l.stepExprs(rs, s)
	s.AllowEmpty = rs.AllowEmpty.V
	return s
}

// stepLimits checks timeout, retries and max_parallel.
func (l *loader) stepLimits(rs *rawStep, s *Step) {
	if rs.Timeout.Set {
		d, err := time.ParseDuration(rs.Timeout.V)
		switch {
		case err != nil:
			l.errNode(rs.Timeout.node, "", "timeout must be a Go duration like 30m or 1h30m")
		case d <= 0:
			l.errNode(rs.Timeout.node, "", "timeout must be positive")
		default:
			s.Timeout = d
		}
	}
	if rs.Retries.Set {
		if s.Type != TypeUpdate && s.Type != TypeDiff {
			l.errNode(rs.Retries.node, "", "retries applies only to update and diff steps, not to a %s step", s.Type)
		} else if rs.Retries.V < 0 || rs.Retries.V > 100 {
			l.errNode(rs.Retries.node, "", "retries must be between 0 and 100")
		} else {
			s.Retries = int(rs.Retries.V)
		}
	}
	if rs.MaxPar.Set {
		if rs.MaxPar.V < 1 {
			l.errNode(rs.MaxPar.node, "", "max_parallel must be at least 1")
		} else {
			s.MaxParallel = int(min(rs.MaxPar.V, math.MaxInt32))
		}
	}
}

// stepTexts interpolates desc, url and game_build.
func (l *loader) stepTexts(rs *rawStep, s *Step, vs *varState) {
	if v, ok := l.interpolate(rs.Desc, "desc", vs); ok {
		s.Desc = v
	}
	var urlSpans []span
	if v, ok := l.interpolateSpans(rs.URL, "url", vs, &urlSpans); ok {
		s.URL = v
		if s.Type == TypeUpdate {
			l.checkURLCredentials(rs.URL, v, urlSpans, s.Name)
		}
	}
	if v, ok := l.interpolate(rs.GameBuild, "game_build", vs); ok {
		s.GameBuild = v
	}
	if rs.Type.V == "update" && rs.Desc.Set && strings.TrimSpace(rs.Desc.V) == "" {
		l.errNode(rs.Desc.node, "", "desc must not be empty")
	}
}

// versionKeys checks the version step's keys.
func (l *loader) versionKeys(rs *rawStep, s *Step) {
	s.Restart = rs.Restart.V
	if rs.Full.Set {
		s.Full = FullMode(rs.Full.V)
	}
	s.Force = rs.Force.V
	if rs.InstallAt.Set {
		s.InstallAt = InstallAt(rs.InstallAt.V)
	}
	if rs.DisableTimeout.Set {
		if rs.DisableTimeout.V < 0 || rs.DisableTimeout.V > math.MaxInt32 {
			l.errNode(rs.DisableTimeout.node, "", "disable_timeout must be a non-negative number of minutes")
		} else {
			s.DisableTimeout = int(rs.DisableTimeout.V)
		}
	}
	if rs.DisablePercentage.Set {
		if rs.DisablePercentage.V < 0 || rs.DisablePercentage.V > 100 {
			l.errNode(rs.DisablePercentage.node, "", "disable_percentage must be between 0 and 100")
		} else {
			s.DisablePercentage = rs.DisablePercentage.V
		}
	}
	// The API uses the two together (disable slow machines once this share
	// installed, after this many minutes): one alone means nothing, and a
	// strict server refuses it.
	switch {
	case rs.DisableTimeout.Set && !rs.DisablePercentage.Given:
		l.errNode(rs.DisableTimeout.node, "add disable_percentage", "disable_timeout needs disable_percentage: Clanforge disables slow machines only once that share of machines has installed")
	case rs.DisablePercentage.Set && !rs.DisableTimeout.Given:
		l.errNode(rs.DisablePercentage.node, "add disable_timeout", "disable_percentage needs disable_timeout (minutes): Clanforge disables slow machines only after that long")
	}
}

// installKeys checks the install step's keys.
func (l *loader) installKeys(rs *rawStep, s *Step) {
	s.Mirroring = rs.Mirroring.V
	if rs.WavesSet.Set {
		if s.Mirroring {
			l.errNode(rs.WavesSet.node, "", "waves apply to machine installs (mirroring: false), not to a mirroring install")
		} else {
			l.waves(rs, s)
		}
	}
	if rs.MaxFailures.Set {
		mf := rs.MaxFailures.V
		if mf.IsPct && mf.Percent > 100 {
			l.errNode(rs.MaxFailures.node, "", "max_failures cannot exceed 100%%")
		} else {
			s.MaxFailures = &mf
		}
	}
	l.maxFailuresPer(rs, s)
	l.pauseAfter(rs, s)
}

// stepExprs records where, when and expr; they are compiled during
// expansion, once per scope shape.
func (l *loader) stepExprs(rs *rawStep, s *Step) {
	for _, e := range []struct {
		v   pv[string]
		dst **Expr
	}{{rs.Where, &s.Where}, {rs.When, &s.When}, {rs.Expr, &s.Expr}, {rs.Until, &s.Until}, {rs.FailIf, &s.FailIf}} {
		if e.v.Set {
			if strings.TrimSpace(e.v.V) == "" {
				l.errNode(e.v.node, "", "expression must not be empty")
				continue
			}
			*e.dst = &Expr{Source: e.v.V, Pos: l.scalarAt(e.v.node, e.v.V, 0)}
		}
	}
}

// waves checks a waves list on its own; checks that need instance counts
// happen during expansion.
func (l *loader) waves(rs *rawStep, s *Step) {
	if len(rs.Waves) == 0 {
		l.errNode(rs.WavesSet.node, "", "waves must list at least one wave, ending with \"100%%\"")
		return
	}
	ok := true
	lastCount, lastPct := -1, -1.0
	for i, w := range rs.Waves {
		if !w.Set {
			ok = false
			continue
		}
		v := w.V
		switch {
		case v.IsPct && v.Percent > 100:
			l.errNode(w.node, "", "wave %d is %s of the machines: a wave cannot exceed 100%%", i+1, fmtPct(v.Percent))
			ok = false
		case v.IsPct && v.Percent <= 0, !v.IsPct && v.Count < 1:
			l.errNode(w.node, "", "wave %d must hold at least one machine", i+1)
			ok = false
		case v.IsPct && v.Percent < lastPct, !v.IsPct && v.Count < lastCount:
			l.errNode(w.node, "", "waves are cumulative and must not decrease: wave %d is smaller than an earlier one", i+1)
			ok = false
		}
		if v.IsPct {
			lastPct = v.Percent
		} else {
			lastCount = v.Count
		}
	}
	last := rs.Waves[len(rs.Waves)-1]
	if last.Set && last.V.IsPct && last.V.Percent < 100 {
		l.errNode(last.node, "write \"100%\" as the last wave", "the last wave must reach 100%% of the machines, not %s", fmtPct(last.V.Percent))
		ok = false
	}
	if ok {
		for _, w := range rs.Waves {
			s.Waves = append(s.Waves, w.V)
		}
	}
}

func fmtPct(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) + "%" }

// checkURLCredentials refuses an update URL whose credentials hold a raw
// "/": the API needs credentials inside a build URL URL-encoded (clanforge
// API 4.1.1), and a raw "/" would be read as the end of the host, so the
// update would fail on the server with a confusing error, or worse, fetch
// from the wrong place. The user-info is everything between "://" and the
// last "@" before any "?" or "#". The message shows the masked URL and names
// the ${env:} or ${vars.} reference that brought the "/", never the secret.
func (l *loader) checkURLCredentials(raw pv[string], v Value, spans []span, step string) {
	start, end, ok := redact.UserinfoSpan(v.Resolved)
	if !ok {
		return
	}
	slash := strings.IndexByte(v.Resolved[start:end], '/')
	if slash < 0 {
		return
	}
	slash += start
	const hint = `write "/" in a credential as %2F (and an "@" in the path as %40)`
	for _, sp := range spans {
		if slash >= sp.start && slash < sp.end {
			l.errNode(raw.node, "set "+sp.label+` URL-encoded: write "/" in a credential as %2F`,
				"url of step %q (%s) gets a raw \"/\" in its credentials from %s: credentials in a build URL must be URL-encoded",
				step, v.Display, sp.label)
			return
		}
	}
	l.errNode(raw.node, hint, "url of step %q (%s) has a raw \"/\" in its credentials: credentials in a build URL must be URL-encoded", step, v.Display)
}
