package plan

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// graph checks the step graph (every cycle is reported, each with its steps
// and lines) and returns the main steps in a topological order that keeps
// plan order among independent steps.
func (l *loader) graph(infos []*stepInfo) ([]int, bool) {
	var main []int
	for _, in := range infos {
		if !in.s.OnFailure {
			main = append(main, in.index)
		}
	}
	ok := true
	for _, comp := range components(infos, main) {
		self := len(comp) == 1 && contains1(infos[comp[0]].needs, comp[0])
		if len(comp) < 2 && !self {
			continue
		}
		ok = false
		l.reportCycle(infos, comp)
	}
	if !ok {
		return nil, false
	}
	return topoOrder(infos, main), true
}

// components returns the strongly connected components of the needs graph
// (Tarjan's algorithm): each with more than one step, or a step needing
// itself, is a cycle.
func components(infos []*stepInfo, main []int) [][]int {
	index := map[int]int{}
	low := map[int]int{}
	onStack := map[int]bool{}
	var stack []int
	next := 0
	var sccs [][]int
	var strong func(v int)
	strong = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range infos[v].needs {
			if _, seen := index[w]; !seen {
				strong(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			sccs = append(sccs, comp)
		}
	}
	for _, v := range main {
		if _, seen := index[v]; !seen {
			strong(v)
		}
	}
	return sccs
}

// topoOrder orders an acyclic needs graph by Kahn's algorithm, always
// taking the ready step that comes first in the plan.
func topoOrder(infos []*stepInfo, main []int) []int {
	indeg := map[int]int{}
	users := map[int][]int{}
	for _, v := range main {
		indeg[v] = len(infos[v].needs)
		for _, w := range infos[v].needs {
			users[w] = append(users[w], v)
		}
	}
	var ready, order []int
	for _, v := range main {
		if indeg[v] == 0 {
			ready = append(ready, v)
		}
	}
	for len(ready) > 0 {
		sort.Ints(ready)
		v := ready[0]
		ready = ready[1:]
		order = append(order, v)
		for _, u := range users[v] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return order
}

func contains1(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// reportCycle names one cycle through the component, starting at the step
// that comes first in the plan, and points at the need that closes it.
func (l *loader) reportCycle(infos []*stepInfo, comp []int) {
	in := map[int]bool{}
	start := comp[0]
	for _, c := range comp {
		in[c] = true
		start = min(start, c)
	}
	// Depth-first search for a path back to start inside the component.
	var path []int
	seen := map[int]bool{}
	var dfs func(v int) bool
	dfs = func(v int) bool {
		path = append(path, v)
		for _, w := range infos[v].needs {
			if w == start {
				return true
			}
			if in[w] && !seen[w] {
				seen[w] = true
				if dfs(w) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		return false
	}
	dfs(start)
	if len(path) == 0 {
		path = []int{start}
	}
	parts := make([]string, 0, len(path)+1)
	for _, v := range path {
		parts = append(parts, fmt.Sprintf("%s (line %d)", infos[v].s.Name, infos[v].s.Pos.Line))
	}
	parts = append(parts, infos[start].s.Name)
	first := infos[path[0]]
	nextName := infos[start].s.Name
	if len(path) > 1 {
		nextName = infos[path[1]].s.Name
	}
	pos, width := first.s.Pos, 1
	for _, nd := range first.raw.Needs {
		if nd.Set && nd.V == nextName {
			pos, width = nd.Pos, l.width(nd.node)
		}
	}
	l.errAt(pos, width, "", "needs form a cycle: %s", strings.Join(parts, " needs "))
}

// expand turns step templates into instances, resolves their dependencies,
// scopes, diffs, versions and waves, and compiles expressions per scope shape.
func (l *loader) expand(p *Plan, infos []*stepInfo, order []int) {
	// Step-level facts first: closures, per-target or per-image, install_at.
	for _, i := range order {
		in := infos[i]
		in.closure = map[int]bool{}
		for _, n := range in.needs {
			in.badNeeds = in.badNeeds || infos[n].badNeeds
			in.closure[n] = true
			for c := range infos[n].closure {
				in.closure[c] = true
			}
		}
		switch in.s.Type {
		case TypeUpdate, TypeDiff, TypeReject:
			in.perTarget = true
		case TypeInstall:
			in.perTarget = !in.s.Mirroring
		case TypeGate:
			for _, n := range in.needs {
				in.perTarget = in.perTarget || infos[n].perTarget
			}
		}
	}
	for _, i := range order {
		in := infos[i]
		if in.s.Type != TypeVersion || in.s.InstallAt != "" {
			continue
		}
		in.s.InstallAt = InstallNow
		for _, j := range order {
			if infos[j].s.Type == TypeInstall && infos[j].closure[i] {
				in.s.InstallAt = InstallManual
			}
		}
	}

	full := map[*Instance]map[string]*Instance{}
	topo := map[*Step]int{}
	for pos, i := range order {
		in := infos[i]
		topo[in.s] = pos
		l.expandStep(p, infos, in, full)
	}
	sort.SliceStable(p.Instances, func(a, b int) bool {
		x, y := p.Instances[a], p.Instances[b]
		if topo[x.Step] != topo[y.Step] {
			return topo[x.Step] < topo[y.Step]
		}
		return x.Wave < y.Wave
	})
	l.expandFailure(p, infos, full)
}

func (l *loader) where(in *stepInfo, perTarget bool) *compiled {
	if in.s.Where == nil {
		return nil
	}
	return l.compile(in.s.Where, perTarget, nil, exprCtx{key: "where", step: in.s.Name, perImage: !perTarget, node: in.raw.Where.node})
}

// matches evaluates a step's where for a target or image at load time.
func (l *loader) matches(in *stepInfo, c *compiled, m *Machine, img *Image) bool {
	if in.s.Where == nil || c == nil {
		return true
	}
	e := l.envs[c]
	if e == nil {
		e = c.newEnv()
		l.envs[c] = e
	}
	ok, err := e.run(c, &l.vm, EvalInput{Machine: m, Image: img})
	if err != nil {
		l.errAt(in.s.Where.Pos, 1, "", "where of step %q cannot be evaluated: %v", in.s.Name, err)
		in.whereFailed = true
		return false
	}
	return ok
}

func (l *loader) expandStep(p *Plan, infos []*stepInfo, in *stepInfo, full map[*Instance]map[string]*Instance) {
	s := in.s
	for c := range in.closure {
		in.badNeeds = in.badNeeds || infos[c].emptied
	}
	// A where that does not compile is reported; the step then expands as
	// if it had none, so the rest of the plan is still checked.
	wc := l.where(in, in.perTarget)
	var made []*Instance
	switch {
	case in.perTarget:
		var cands int
		made, cands = l.targetInstances(p, infos, in, wc)
		if len(made) == 0 && cands > 0 {
			l.emptyWhere(p, in, "target")
		}
	case s.Type == TypeSwitch:
		var matched bool
		if made, matched = l.switchInstances(p, in, wc); !matched {
			l.emptyWhere(p, in, "image")
		}
	default:
		made = l.imageInstances(p, in, wc)
		if len(made) == 0 && len(p.Images) > 0 {
			l.emptyWhere(p, in, "image")
		}
	}
	for _, inst := range made {
		in.byImage[inst.Image] = append(in.byImage[inst.Image], inst)
	}
	// A where that does not compile is reported, and the step expands as
	// if it had none: the needs of the instances it would have left out
	// are no news then.
	l.voidNeeds(infos, in, made, s.Where == nil || wc != nil)
	l.scopeInstances(infos, in, made, full)
	if len(made) == 0 {
		// Nothing matched, but the expressions are still checked, against
		// the scope the step would have with one instance of each need.
		sc := map[string]*Instance{}
		for c := range in.closure {
			sc[infos[c].s.Name] = &Instance{Step: infos[c].s}
		}
		l.compileInstance(in, &Instance{Machine: perTargetStandIn(in.perTarget)}, sc)
	}
	if s.Type == TypeInstall && len(s.Waves) > 0 {
		l.assignWaves(in, p)
	}
	if s.MaxFailures != nil {
		total := len(made)
		if s.MaxFailures.IsPct {
			s.MaxFailuresCount = int(math.Floor(s.MaxFailures.Percent*float64(total)/100 + 1e-9))
		} else {
			s.MaxFailuresCount = s.MaxFailures.Count
		}
	}
	p.Instances = append(p.Instances, made...)
}

// targetInstances makes a per-target step's instances: one for each target
// its where matches (for a gate, among the targets of the steps it needs).
// It also returns how many targets where was tried on.
func (l *loader) targetInstances(p *Plan, infos []*stepInfo, in *stepInfo, wc *compiled) ([]*Instance, int) {
	s := in.s
	cands := p.Targets
	if s.Type == TypeGate {
		// A gate runs per instance of the per-target steps it needs.
		want := map[*Target]bool{}
		for _, n := range in.needs {
			for t := range infos[n].byTarget {
				want[t] = true
			}
		}
		cands = nil
		for _, t := range p.Targets {
			if want[t] {
				cands = append(cands, t)
			}
		}
	}
	var made []*Instance
	for _, t := range cands {
		if !l.matches(in, wc, t.Machine, t.Image) {
			continue
		}
		inst := &Instance{ID: s.Name + "@" + t.Key(), Step: s, Image: t.Image, Machine: t.Machine, Target: t, Wave: -1}
		in.byTarget[t] = inst
		made = append(made, inst)
		if s.Type == TypeUpdate || s.Type == TypeDiff {
			t.Machine.Build = true
		}
	}
	return made, len(cands)
}

// imageInstances makes a per-image step's instances: one for each image its
// where matches.
func (l *loader) imageInstances(p *Plan, in *stepInfo, wc *compiled) []*Instance {
	var made []*Instance
	for _, img := range p.Images {
		if l.matches(in, wc, nil, img) {
			made = append(made, &Instance{ID: in.s.Name + "@" + img.Name, Step: in.s, Image: img, Wave: -1})
		}
	}
	return made
}

// switchInstances makes a switch step's instances: one for each of its
// fleets, all belonging to the image it switches to (switchImage). matched
// is false when the step's where, evaluated for that image, is false: the
// step then has no instances.
func (l *loader) switchInstances(p *Plan, in *stepInfo, wc *compiled) (made []*Instance, matched bool) {
	if in.s.To == nil && in.s.Profile == 0 {
		return nil, true // what it switches to is unknown (reported)
	}
	img := switchImage(p, in.s)
	if img == nil {
		return nil, true
	}
	if !l.matches(in, wc, nil, img) {
		return nil, false
	}
	for _, f := range in.s.Fleets {
		made = append(made, &Instance{ID: in.s.Name + "@" + f.Name + "/" + img.Name, Step: in.s, Image: img, Fleet: f, Wave: -1})
	}
	return made, true
}

// voidNeeds reports (when report) a need that waits for nothing: an instance of a
// ready, approve or switch step (or of a step that needs one) for an image
// that the needed step has no instance for. The needs rule would then give
// it no dependency on that step at all, so that a fleet could be switched,
// or an approval asked, before anything it was meant to follow. Steps of
// the other types keep the rule as it was.
func (l *loader) voidNeeds(infos []*stepInfo, in *stepInfo, made []*Instance, report bool) {
	if in.badNeeds || in.perTarget {
		return
	}
	control := func(t StepType) bool { return t == TypeReady || t == TypeApprove || t == TypeSwitch }
	seen := map[*Image]bool{}
	for _, inst := range made {
		if seen[inst.Image] {
			continue
		}
		seen[inst.Image] = true
		for _, n := range in.needs {
			dep := infos[n]
			if dep.emptied || len(dep.byImage[inst.Image]) > 0 || !(control(in.s.Type) || control(dep.s.Type)) {
				continue
			}
			if in.voidNeed = true; report {
				l.voidNeed(in, dep, inst.Image)
			}
		}
	}
}

// voidNeed reports that in, for image img, needs dep, which has no
// instance for img.
func (l *loader) voidNeed(in, dep *stepInfo, img *Image) {
	pos, width := in.s.Pos, 1
	for _, nd := range in.raw.Needs {
		if nd.Set && nd.V == dep.s.Name {
			pos, width = nd.Pos, l.width(nd.node)
		}
	}
	var runs []string
	for im, insts := range dep.byImage {
		if len(insts) > 0 {
			runs = append(runs, im.Name)
		}
	}
	sort.Strings(runs)
	hint := fmt.Sprintf("step %q has no instances: remove the need", dep.s.Name)
	if len(runs) > 0 {
		hint = fmt.Sprintf("step %q runs for image %s: ", dep.s.Name, strings.Join(runs, ", "))
		if in.s.Type == TypeSwitch {
			hint += "switch to that image, or let the steps before it run for " + img.Name
		} else {
			hint += fmt.Sprintf("give step %q a where that selects the same images", in.s.Name)
		}
	}
	l.errAt(pos, width, hint, "step %q runs for image %q, but step %q, which it needs, has no instance for that image: it would wait for nothing", in.s.Name, img.Name, dep.s.Name)
}

// scopeInstances resolves each instance's dependencies and scope, then its
// inputs and expressions. full[inst] is the scope with ambiguous names kept
// (as nil), which the scopes of dependents build on.
func (l *loader) scopeInstances(infos []*stepInfo, in *stepInfo, made []*Instance, full map[*Instance]map[string]*Instance) {
	// Instances with the same single dependency share one scope map: a
	// 10,000-machine fan-out from one mirror then builds it once.
	// Such instances also share what follows from the scope alone: the
	// visible scope, the diff and version in it, and the compiled
	// expressions.
	shared := map[*Instance]*Instance{}
	for _, inst := range made {
		l.resolveDeps(infos, in, inst)
		if len(inst.Deps) == 1 {
			if prev, ok := shared[inst.Deps[0]]; ok {
				full[inst] = full[prev]
				inst.Scope, inst.Diff, inst.Version = prev.Scope, prev.Diff, prev.Version
				continue
			}
			shared[inst.Deps[0]] = inst
		}
		sc := mergeScopes(inst.Deps, full)
		full[inst] = sc
		inst.Scope = visible(sc)
		l.resolveInputs(in, inst, sc)
		l.compileInstance(in, inst, sc)
	}
}

// mergeScopes is the scope an instance with these dependencies sees: each
// dependency and everything in its scope, by step name; a name that two of
// them see as different instances is ambiguous (nil).
func mergeScopes(deps []*Instance, full map[*Instance]map[string]*Instance) map[string]*Instance {
	sc := map[string]*Instance{}
	merge := func(name string, x *Instance) {
		if prev, ok := sc[name]; ok {
			if prev != x {
				sc[name] = nil
			}
			return
		}
		sc[name] = x
	}
	for _, d := range deps {
		merge(d.Step.Name, d)
		for k, v := range full[d] {
			merge(k, v)
		}
	}
	return sc
}

// sameMap reports whether a and b are the same map object.
func sameMap(a, b map[string]*Instance) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func perTargetStandIn(perTarget bool) *Machine {
	if perTarget {
		return &Machine{}
	}
	return nil
}

// visible drops ambiguous entries; it shares the map when there are none.
func visible(sc map[string]*Instance) map[string]*Instance {
	for _, v := range sc {
		if v == nil {
			out := make(map[string]*Instance, len(sc))
			for k, v := range sc {
				if v != nil {
					out[k] = v
				}
			}
			return out
		}
	}
	return sc
}

// resolveDeps applies the needs rule: the needed step's instance for the
// same target if there is one, else all of its instances for the image.
func (l *loader) resolveDeps(infos []*stepInfo, in *stepInfo, inst *Instance) {
	if len(in.needs) == 1 {
		dep := infos[in.needs[0]]
		if inst.Target != nil {
			if d := dep.byTarget[inst.Target]; d != nil {
				inst.Deps = []*Instance{d}
				return
			}
		}
		// Fan-in: every instance of the image shares one backing array.
		all := dep.byImage[inst.Image]
		inst.Deps = all[:len(all):len(all)]
		return
	}
	for _, n := range in.needs {
		dep := infos[n]
		if inst.Target != nil {
			if d := dep.byTarget[inst.Target]; d != nil {
				inst.Deps = append(inst.Deps, d)
				continue
			}
		}
		inst.Deps = append(inst.Deps, dep.byImage[inst.Image]...)
	}
}

func (l *loader) resolveInputs(in *stepInfo, inst *Instance, sc map[string]*Instance) {
	s := in.s
	if in.badNeeds {
		return
	}
	if s.Type != TypeDiff {
		d, n, names := l.single(sc, TypeDiff)
		inst.Diff = d
		if s.Type == TypeVersion && d == nil {
			if n == 0 {
				l.errAt(s.Pos, 1, l.imagesHint(in, inst), "version step %q finds no diff among its needs for image %q: it must need (directly or not) exactly one diff instance", s.Name, inst.Image.Name)
			} else {
				l.errAt(s.Pos, 1, "", "version step %q finds several diff instances among its needs for image %q (steps %s): it must find exactly one", s.Name, inst.Image.Name, strings.Join(names, ", "))
			}
		}
	}
	if s.Type == TypeInstall {
		l.installInputs(in, inst, sc)
	}
}

// imagesHint suggests a where for an instance whose needs have no
// instance for its image (a step meant for some images only, without the
// where that says so): "" when it has some.
func (l *loader) imagesHint(in *stepInfo, inst *Instance) string {
	if len(inst.Deps) > 0 || len(in.needs) == 0 || l.infos == nil {
		return ""
	}
	seen := map[string]bool{}
	var runs []string
	for _, n := range in.needs {
		for _, img := range l.infosImages(l.infos[n]) {
			if !seen[img] {
				seen[img] = true
				runs = append(runs, img)
			}
		}
	}
	if len(runs) == 0 {
		return ""
	}
	sort.Strings(runs)
	return fmt.Sprintf("the steps it needs run for image %s only: give step %q a where that selects the same images (e.g. image.name == %q)", strings.Join(runs, ", "), in.s.Name, runs[0])
}

// infosImages lists the images a step has instances for.
func (l *loader) infosImages(in *stepInfo) []string {
	var out []string
	for img, insts := range in.byImage {
		if len(insts) > 0 {
			out = append(out, img.Name)
		}
	}
	return out
}

// single returns the one instance of a step of type t in scope, how many
// there are (an ambiguous name counts two) and the names of those steps.
func (l *loader) single(sc map[string]*Instance, t StepType) (x *Instance, n int, names []string) {
	for name, v := range sc {
		if l.xenv.stepType[name] != t {
			continue
		}
		names = append(names, name)
		if v == nil {
			n += 2
		} else {
			x = v
			n++
		}
	}
	sort.Strings(names)
	if n != 1 {
		x = nil
	}
	return x, n, names
}

// installInputs finds an install instance's version and checks that what
// it queues can be queued.
func (l *loader) installInputs(in *stepInfo, inst *Instance, sc map[string]*Instance) {
	s := in.s
	v, n, names := l.single(sc, TypeVersion)
	inst.Version = v
	switch {
	case v == nil && n == 0:
		l.errAt(s.Pos, 1, l.imagesHint(in, inst), "install step %q finds no version among its needs for image %q: it must need (directly or not) exactly one version step", s.Name, inst.Image.Name)
	case v == nil:
		l.errAt(s.Pos, 1, "", "install step %q finds several version instances among its needs for image %q (steps %s): it must find exactly one", s.Name, inst.Image.Name, strings.Join(names, ", "))
	case !s.Mirroring && v.Step.InstallAt == InstallManual:
		if !l.raw[s].Mirroring.Set {
			return // its missing mirroring is reported: what it installs is unknown
		}
		for _, x := range sc {
			// An install step without mirroring (reported) may be the
			// mirroring install the plan meant.
			if x != nil && x.Step.Type == TypeInstall && (x.Step.Mirroring || !l.raw[x.Step].Mirroring.Set) && x.Version == v {
				return
			}
		}
		l.errAt(s.Pos, 1, "add the mirroring install step to needs", "install step %q queues machine installs of version step %q, which %s, so it must need (directly or not) a mirroring install of that version", s.Name, v.Step.Name, l.manualBecause(v.Step))
	case len(s.Waves) > 0 && v.Step.InstallAt == InstallNow:
		l.errAt(s.Pos, 1, "", "install step %q has waves, but version step %q uses install_at: now, which starts every install at once; waves need install_at: manual", s.Name, v.Step.Name)
	}
}

// manualBecause says why a version step installs manually: the plan says
// so, or it is the default because an install step needs the version.
func (l *loader) manualBecause(version *Step) string {
	if l.raw[version].InstallAt.Set {
		return "uses install_at: manual"
	}
	return "installs manually (install_at: manual is the default when an install step needs the version)"
}

// compileInstance compiles when and gate expressions for the instance's
// scope shape (cached, so identical shapes compile once).
func (l *loader) compileInstance(in *stepInfo, inst *Instance, sc map[string]*Instance) {
	if (in.s.When == nil && in.s.Expr == nil && in.s.Until == nil && in.s.FailIf == nil) || in.voidNeed {
		return
	}
	if l.lastScope.sc != nil && sameMap(l.lastScope.sc, sc) && l.lastScope.step == in && l.lastScope.machine == (inst.Machine != nil) {
		return // same shape as the previous instance: already compiled
	}
	l.lastScope.sc, l.lastScope.step, l.lastScope.machine = sc, in, inst.Machine != nil
	names := make([]string, 0, len(sc))
	var amb []string
	for k, v := range sc {
		if v == nil {
			amb = append(amb, k)
		} else {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	sort.Strings(amb)
	if in.s.When != nil {
		l.compile(in.s.When, inst.Machine != nil, names, exprCtx{key: "when", step: in.s.Name, perImage: inst.Machine == nil, ambiguous: amb, node: in.raw.When.node})
	}
	if in.s.Expr != nil {
		l.compile(in.s.Expr, inst.Machine != nil, names, exprCtx{key: "expr", step: in.s.Name, perImage: inst.Machine == nil, ambiguous: amb, node: in.raw.Expr.node})
	}
	// A ready step runs once per image: its until and fail_if see status,
	// never machine.
	if in.s.Until != nil {
		l.compileStatus(in.s.Until, names, exprCtx{key: "until", step: in.s.Name, perImage: true, ambiguous: amb, node: in.raw.Until.node})
	}
	if in.s.FailIf != nil {
		l.compileStatus(in.s.FailIf, names, exprCtx{key: "fail_if", step: in.s.Name, perImage: true, ambiguous: amb, node: in.raw.FailIf.node})
	}
}

// assignWaves gives each image's install instances their wave, in machine
// order, from the cumulative sizes.
func (l *loader) assignWaves(in *stepInfo, p *Plan) {
	s := in.s
	for _, img := range p.Images {
		insts := in.byImage[img]
		n := len(insts)
		if n == 0 {
			continue
		}
		cum := make([]int, len(s.Waves))
		prev := 0
		for k, w := range s.Waves {
			c := w.Count
			if w.IsPct {
				c = int(math.Ceil(w.Percent*float64(n)/100 - 1e-9))
			}
			c = min(c, n)
			if c < prev {
				l.errAt(in.raw.Waves[k].Pos, l.width(in.raw.Waves[k].node), "", "waves are cumulative and must not decrease: for image %q wave %d covers %d machines, fewer than the %d before it", img.Name, k+1, c, prev)
				return
			}
			cum[k], prev = c, c
		}
		if cum[len(cum)-1] < n {
			last := in.raw.Waves[len(in.raw.Waves)-1]
			l.errAt(last.Pos, l.width(last.node), "write \"100%\" as the last wave", "the last wave must reach 100%%: it covers %d of the %d install instances of image %q", cum[len(cum)-1], n, img.Name)
			return
		}
		k := 0
		for i, inst := range insts {
			for cum[k] <= i {
				k++
			}
			inst.Wave = k
		}
	}
}

// expandFailure makes one on_failure instance per (on_failure step, target)
// and per (on_failure step, image), each triggered by the main instances of
// that target or image.
func (l *loader) expandFailure(p *Plan, infos []*stepInfo, full map[*Instance]map[string]*Instance) {
	byTarget := map[*Target][]*Instance{}
	byImage := map[*Image][]*Instance{}
	for _, inst := range p.Instances {
		if inst.Target != nil {
			byTarget[inst.Target] = append(byTarget[inst.Target], inst)
		} else {
			byImage[inst.Image] = append(byImage[inst.Image], inst)
		}
	}
	for _, in := range infos {
		if !in.s.OnFailure {
			continue
		}
		if in.s.Type == TypeSwitch {
			l.failureSwitch(p, in, full)
			continue
		}
		wc := l.where(in, true)
		tried, matched := 0, 0
		for _, t := range p.Targets {
			trig := byTarget[t]
			if len(trig) == 0 {
				continue
			}
			tried++
			if !l.matches(in, wc, t.Machine, t.Image) {
				continue
			}
			matched++
			l.failureInstance(p, in, in.s.Name+"@"+t.Key(), t.Image, t, trig, full)
		}
		if tried > 0 && matched == 0 {
			l.emptyWhere(p, in, "target")
		}
		// Failures of per-image instances run the step for the image; where
		// talks about machines, so it does not filter these.
		for _, img := range p.Images {
			if trig := byImage[img]; len(trig) > 0 {
				l.failureInstance(p, in, in.s.Name+"@"+img.Name, img, nil, trig, full)
			}
		}
	}
}

// failureInstance makes one on_failure instance. Its scope is everything
// its triggers see, and the diff it rejects the single diff in it.
func (l *loader) failureInstance(p *Plan, in *stepInfo, id string, img *Image, t *Target, trig []*Instance, full map[*Instance]map[string]*Instance) {
	inst := &Instance{ID: id, Step: in.s, Image: img, Target: t, Wave: -1, Trigger: trig}
	if t != nil {
		inst.Machine = t.Machine
	}
	sc := map[string]*Instance{}
	for _, x := range trig {
		sc[x.Step.Name] = x
		for k, v := range full[x] {
			if prev, ok := sc[k]; ok && prev != v {
				sc[k] = nil
			} else if !ok {
				sc[k] = v
			}
		}
	}
	inst.Scope = visible(sc)
	var diffs []*Instance
	ambiguous := false
	for k, v := range sc {
		if (v != nil && v.Step.Type == TypeDiff) || (v == nil && l.xenv.stepType[k] == TypeDiff) {
			if v == nil {
				ambiguous = true
			}
			diffs = append(diffs, v)
		}
	}
	if len(diffs) == 1 && !ambiguous {
		inst.Diff = diffs[0]
	}
	if !l.sameFailureShape(in, inst, full) {
		l.compileInstance(in, inst, sc)
	}
	p.FailureInstances = append(p.FailureInstances, inst)
}

// sameFailureShape reports whether inst's scope has the shape of the
// previous failure instance's, so its expressions are compiled already: the
// same step, machine or not, and triggers of the same steps carrying the
// same scope maps. Without it a fleet of 10,000 machines would rebuild each
// shape to find it cached.
func (l *loader) sameFailureShape(in *stepInfo, inst *Instance, full map[*Instance]map[string]*Instance) bool {
	last := l.lastFailure
	l.lastFailure = inst
	if last == nil || last.Step != inst.Step || (last.Machine == nil) != (inst.Machine == nil) || len(last.Trigger) != len(inst.Trigger) {
		return false
	}
	for i, t := range inst.Trigger {
		u := last.Trigger[i]
		if t.Step != u.Step || !sameMap(full[t], full[u]) {
			return false
		}
	}
	return true
}

// failureSwitch makes an on_failure switch step's instances: one per fleet,
// as a switch's are, each triggered by every main instance of the run, so
// that it runs after any failure, whichever image failed (whether this run
// switched the fleet is the step's to find out when it runs). Its scope is
// everything the main instances see, names with several instances left
// out.
func (l *loader) failureSwitch(p *Plan, in *stepInfo, full map[*Instance]map[string]*Instance) {
	wc := l.where(in, false)
	made, matched := l.switchInstances(p, in, wc)
	if !matched {
		l.emptyWhere(p, in, "image")
	}
	if len(made) == 0 {
		return
	}
	trig := slices.Clip(slices.Clone(p.Instances))
	sc := mergeScopes(trig, full)
	scope := visible(sc)
	for _, inst := range made {
		inst.Trigger, inst.Scope = trig, scope
	}
	l.compileInstance(in, made[0], sc)
	p.FailureInstances = append(p.FailureInstances, made...)
}
