package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The raw types hold a plan as written, each value with its position; the
// decoders below read them from the YAML AST, one small decoder for each
// part of the format, and validation (validate.go) turns them into the
// types of plan.go.

// pv is a raw value with the position it came from.
type pv[T any] struct {
	V   T
	Pos Pos
	Set bool // V holds a valid value
	// Given: the plan has the key, with a valid value or not (an invalid
	// one is reported where it is read, and checks that pair keys must
	// not report it again as missing).
	Given bool
	node  ast.Node
}

type rawPlan struct {
	Pos          Pos
	Version      pv[int64]
	Name         pv[string]
	Description  pv[string]
	ClanforgeURL pv[string]
	ASID         pv[int64]
	Concurrency  pv[int64]
	Vars         []*rawVar
	Images       []*rawImage
	Machines     []*rawMachine
	Steps        []*rawStep
	OnFailure    []*rawStep
	Fleets       []*rawFleet
	FleetsNode   ast.Node // the fleets key's value
	Notify       []*rawNotify
	have         map[string]bool
}

// rawFleet is one entry of fleets.
type rawFleet struct {
	Pos  Pos
	Name pv[string]
	ID   pv[string]
}

// rawNotify is one webhook of notify.
type rawNotify struct {
	Pos    Pos
	URL    pv[string]
	Format pv[string]
	Events []pv[string]
	// EventsSet: the entry has events (a list, maybe empty).
	EventsSet pv[bool]
}

type rawVar struct {
	Name  string
	Pos   Pos // of the key
	Value any
	node  ast.Node
}

type rawImage struct {
	Pos     Pos
	Name    pv[string]
	ID      pv[int64]
	Profile pv[int64]
}

type rawMachine struct {
	Pos       Pos
	Name      pv[string]
	ID        pv[int64]
	Labels    map[string]string
	Images    []pv[string]
	ImagesSet bool
	Fleet     pv[string]
}

type rawStep struct {
	Pos       Pos
	OnFailure bool
	Name      pv[string]
	Type      pv[string]
	Needs     []pv[string]
	Where     pv[string]
	When      pv[string]
	Timeout   pv[string]
	Retries   pv[int64]
	MaxPar    pv[int64]
	// AllowEmpty lets where match nothing.
	AllowEmpty pv[bool]
	// update
	Desc pv[string]
	URL  pv[string]
	// gate
	Expr pv[string]
	// version
	Restart           pv[bool]
	Full              pv[string]
	GameBuild         pv[string]
	Force             pv[bool]
	InstallAt         pv[string]
	DisableTimeout    pv[int64]
	DisablePercentage pv[float64]
	// install
	Mirroring   pv[bool]
	Waves       []pv[Size]
	WavesSet    pv[bool]
	MaxFailures pv[Size]
	// MaxFailuresPer is "image" or "step".
	MaxFailuresPer pv[string]
	PauseAfter     []pv[Pause]
	PauseAfterSet  pv[bool]
	// reject
	Reinstall pv[bool]
	// ready
	Until  pv[string]
	FailIf pv[string]
	// ready and switch
	Fleets    []pv[string]
	FleetsSet pv[bool]
	// approve
	Message   pv[string]
	OnTimeout pv[string]
	// switch
	To          pv[string]
	Profile     pv[int64]
	MaxMachines pv[int64]
	ForceAfter  pv[string]
}

var topKeys = []string{"version", "name", "description", "clanforge", "concurrency", "vars", "images", "fleets", "machines", "steps", "on_failure", "notify"}

var commonStepKeys = []string{"name", "type", "needs", "where", "allow_empty", "when", "timeout", "retries", "max_parallel"}

// stepKeys lists each step type's own keys, as in the format's table.
var stepKeys = map[string][]string{
	"update":  {"desc", "url"},
	"diff":    {},
	"gate":    {"expr"},
	"version": {"restart", "full", "game_build", "force", "install_at", "disable_timeout", "disable_percentage"},
	"install": {"mirroring", "waves", "max_failures", "max_failures_per", "pause_after"},
	"reject":  {"reinstall"},
	"ready":   {"until", "fail_if", "fleets"},
	"approve": {"message", "on_timeout"},
	"switch":  {"to", "profile", "fleets", "max_machines", "force_after"},
}

var stepTypes = []string{"update", "diff", "gate", "version", "install", "reject", "ready", "approve", "switch"}

// failureTypes are the step types on_failure may hold.
var failureTypes = []string{"reject", "switch"}

// notifyEvents are the events a webhook may ask for, in the order a run
// meets them.
var notifyEvents = []string{EventStarted, EventWave, EventApproval, EventApproved, EventFailed, EventAborted, EventFinished}

// parseRaw parses the source once into an AST and decodes it into rawPlan.
func (l *loader) parseRaw() *rawPlan {
	body := l.parseDoc()
	if body == nil {
		return nil
	}
	l.collectAnchors(body, 0)
	if len(l.anchors) > 0 {
		if n, msg := checkAliases(body, l.anchors); n != nil {
			l.errNode(n, "", "%s", msg)
			return nil
		}
	}
	return l.decodePlan(body)
}

// parseDoc parses the source and returns the body of its one document, or
// nil after reporting why there is none. A plan in the plain subset of YAML
// that fastParse reads skips the YAML library's lexer and parser; every
// other plan, and every plan with a syntax error, goes through them.
func (l *loader) parseDoc() ast.Node {
	if !l.countTokens() {
		return nil
	}
	if body := fastParse(l.text); body != nil {
		return body
	}
	tokens, ok := l.lex()
	if !ok {
		return nil
	}
	f, err := parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		l.syntaxError(err)
		return nil
	}
	var body ast.Node
	docs := 0
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		docs++
		if docs == 1 {
			body = d.Body
		} else {
			l.errNode(d.Body, "", "a plan file holds one YAML document; remove the extra documents")
		}
	}
	if body == nil {
		l.errAt(Pos{File: l.file, Line: 1, Col: 1}, 1, "", "the plan is empty: it needs at least version, name, images, machines and steps")
	}
	return body
}

// syntaxError reports the parser's error where the fault is.
func (l *loader) syntaxError(err error) {
	e := l.source.SyntaxError(err)
	l.errAt(e.Pos, e.Width, e.Hint, "%s", e.Msg)
}

// planFields decodes each top-level key of the plan.
var planFields = []struct {
	key    string
	decode func(l *loader, rp *rawPlan, e *kv)
}{
	{"version", func(l *loader, rp *rawPlan, e *kv) { rp.Version = l.int(e, "version") }},
	{"name", func(l *loader, rp *rawPlan, e *kv) { rp.Name = l.str(e, "name") }},
	{"description", func(l *loader, rp *rawPlan, e *kv) { rp.Description = l.str(e, "description") }},
	{"concurrency", func(l *loader, rp *rawPlan, e *kv) { rp.Concurrency = l.int(e, "concurrency") }},
	{"clanforge", (*loader).decodeClanforge},
	{"vars", (*loader).decodeVars},
	{"images", (*loader).decodeImages},
	{"fleets", (*loader).decodeFleets},
	{"machines", (*loader).decodeMachines},
	{"steps", func(l *loader, rp *rawPlan, e *kv) { rp.Steps = l.decodeSteps(e, "steps", false) }},
	{"on_failure", func(l *loader, rp *rawPlan, e *kv) { rp.OnFailure = l.decodeSteps(e, "on_failure", true) }},
	{"notify", (*loader).decodeNotify},
}

// decodePlan reads the top-level mapping.
func (l *loader) decodePlan(body ast.Node) *rawPlan {
	rp := &rawPlan{Pos: l.pos(body), have: map[string]bool{}}
	top, ok := l.mapping(body, "the plan", topKeys, nil)
	if !ok {
		return nil
	}
	for _, e := range top {
		rp.have[e.key] = true
	}
	l.requireKeys(top, body, "the plan", "version", "name", "images", "machines", "steps")
	for _, f := range planFields {
		if e := top.get(f.key); e != nil {
			f.decode(l, rp, e)
		}
	}
	return rp
}

// clanforgeCredential explains why a credential key is not allowed in the
// clanforge mapping ("" for other keys).
func clanforgeCredential(k string) string {
	switch strings.ToLower(k) {
	case "access_key", "secret_key", "accesskey", "secretkey", "key", "secret", "token", "password":
		return fmt.Sprintf("key %q is not allowed in clanforge: credentials come only from the environment (CLANFORGE_TOKEN, or CLANFORGE_ACCESS_KEY and CLANFORGE_SECRET_KEY)", k)
	}
	return ""
}

func (l *loader) decodeClanforge(rp *rawPlan, e *kv) {
	if isNull(e.val) {
		return
	}
	cf, _ := l.mapping(e.val, "clanforge", []string{"url", "asid"}, clanforgeCredential)
	rp.ClanforgeURL = l.str(cf.get("url"), "clanforge.url")
	rp.ASID = l.int(cf.get("asid"), "clanforge.asid")
}

// decodeVars reads the variables in source order.
func (l *loader) decodeVars(rp *rawPlan, e *kv) {
	if isNull(e.val) {
		return
	}
	vm, _ := l.mapping(e.val, "vars", nil, nil)
	for _, v := range vm {
		rp.Vars = append(rp.Vars, &rawVar{Name: v.key, Pos: v.keyPos, Value: l.value(v.val, 0), node: v.val})
	}
}

func (l *loader) decodeImages(rp *rawPlan, e *kv) {
	items, _ := l.list(e, "images")
	for _, it := range items {
		m, ok := l.mapping(it, "an image", []string{"name", "id", "profile"}, nil)
		if !ok {
			l.partialTargets = true
			continue
		}
		l.requireKeys(m, it, "an image", "name", "id")
		rp.Images = append(rp.Images, &rawImage{Pos: l.pos(it), Name: l.str(m.get("name"), "image name"), ID: l.int(m.get("id"), "image id"),
			Profile: l.int(m.get("profile"), "image profile")})
	}
}

// decodeFleets reads the fleets a cut-over switches: each {name, id}.
func (l *loader) decodeFleets(rp *rawPlan, e *kv) {
	rp.FleetsNode = orNode(e.val, e)
	items, _ := l.list(e, "fleets")
	for _, it := range items {
		m, ok := l.mapping(it, "a fleet", []string{"name", "id"}, nil)
		if !ok {
			continue
		}
		l.requireKeys(m, it, "a fleet", "name", "id")
		rp.Fleets = append(rp.Fleets, &rawFleet{Pos: l.pos(it), Name: l.str(m.get("name"), "fleet name"), ID: l.str(m.get("id"), "fleet id")})
	}
}

// decodeNotify reads the webhooks: each {url, format, events}.
func (l *loader) decodeNotify(rp *rawPlan, e *kv) {
	items, _ := l.list(e, "notify")
	for _, it := range items {
		m, ok := l.mapping(it, "a notify entry", []string{"url", "format", "events"}, nil)
		if !ok {
			continue
		}
		l.requireKeys(m, it, "a notify entry", "url", "events")
		rn := &rawNotify{Pos: l.pos(it), URL: l.str(m.get("url"), "notify url"), Format: l.str(m.get("format"), "notify format")}
		if ev := m.get("events"); ev != nil {
			rn.EventsSet = pv[bool]{V: true, Set: true, Pos: l.pos(orNode(ev.val, ev)), node: orNode(ev.val, ev)}
			items, _ := l.list(ev, "events")
			for _, x := range items {
				rn.Events = append(rn.Events, l.str(&kv{val: x}, "an event"))
			}
		}
		rp.Notify = append(rp.Notify, rn)
	}
}

func (l *loader) decodeMachines(rp *rawPlan, e *kv) {
	items, _ := l.list(e, "machines")
	for _, it := range items {
		if rm := l.decodeMachine(it); rm != nil {
			rp.Machines = append(rp.Machines, rm)
		} else {
			l.partialTargets = true
		}
	}
}

func (l *loader) decodeMachine(n ast.Node) *rawMachine {
	m, ok := l.mapping(n, "a machine", []string{"name", "id", "labels", "images", "fleet"}, nil)
	if !ok {
		return nil
	}
	l.requireKeys(m, n, "a machine", "name", "id")
	rm := &rawMachine{Pos: l.pos(n), Name: l.str(m.get("name"), "machine name"), ID: l.int(m.get("id"), "machine id"), Fleet: l.str(m.get("fleet"), "machine fleet")}
	if e := m.get("labels"); e != nil && !isNull(e.val) {
		rm.Labels = l.labels(e)
	}
	if imgs, ok := l.list(m.get("images"), "machine images"); ok {
		rm.ImagesSet = true
		for _, in := range imgs {
			rm.Images = append(rm.Images, l.str(&kv{val: in}, "an image name"))
		}
	}
	return rm
}

// labels reads a machine's labels, each a string.
func (l *loader) labels(e *kv) map[string]string {
	lm, _ := l.mapping(e.val, "labels", nil, nil)
	labels := make(map[string]string, len(lm))
	for i := range lm {
		v := &lm[i]
		if s, ok := v.val.(*ast.StringNode); ok {
			labels[v.key] = s.Value // the common case, without naming it
			continue
		}
		if s := l.str(v, fmt.Sprintf("label %q", v.key)); s.Set {
			labels[v.key] = s.V
		}
	}
	return labels
}

func (l *loader) decodeSteps(e *kv, what string, onFailure bool) []*rawStep {
	items, _ := l.list(e, what)
	var out []*rawStep
	for _, it := range items {
		if s := l.decodeStep(it, onFailure); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// stepFields decodes each step key into its raw field. Which keys a step
// may have depends on its type (stepKeys); only those reach a decoder.
var stepFields = []struct {
	key    string
	decode func(l *loader, s *rawStep, e *kv)
}{
	{"name", func(l *loader, s *rawStep, e *kv) { s.Name = l.str(e, "step name") }},
	{"type", func(l *loader, s *rawStep, e *kv) { s.Type = l.str(e, "step type") }},
	{"needs", (*loader).decodeNeeds},
	{"where", func(l *loader, s *rawStep, e *kv) { s.Where = l.str(e, "where") }},
	{"allow_empty", func(l *loader, s *rawStep, e *kv) { s.AllowEmpty = l.bool(e, "allow_empty") }},
	{"when", func(l *loader, s *rawStep, e *kv) { s.When = l.str(e, "when") }},
	{"timeout", func(l *loader, s *rawStep, e *kv) { s.Timeout = l.str(e, "timeout") }},
	{"retries", func(l *loader, s *rawStep, e *kv) { s.Retries = l.int(e, "retries") }},
	{"max_parallel", func(l *loader, s *rawStep, e *kv) { s.MaxPar = l.int(e, "max_parallel") }},
	{"desc", func(l *loader, s *rawStep, e *kv) { s.Desc = l.str(e, "desc") }},
	{"url", func(l *loader, s *rawStep, e *kv) { s.URL = l.str(e, "url") }},
	{"expr", func(l *loader, s *rawStep, e *kv) { s.Expr = l.str(e, "expr") }},
	{"restart", func(l *loader, s *rawStep, e *kv) { s.Restart = l.bool(e, "restart") }},
	{"full", (*loader).decodeFull},
	{"game_build", func(l *loader, s *rawStep, e *kv) { s.GameBuild = l.str(e, "game_build") }},
	{"force", func(l *loader, s *rawStep, e *kv) { s.Force = l.bool(e, "force") }},
	{"install_at", (*loader).decodeInstallAt},
	{"disable_timeout", func(l *loader, s *rawStep, e *kv) { s.DisableTimeout = l.int(e, "disable_timeout") }},
	{"disable_percentage", func(l *loader, s *rawStep, e *kv) { s.DisablePercentage = l.num(e, "disable_percentage") }},
	{"mirroring", func(l *loader, s *rawStep, e *kv) { s.Mirroring = l.bool(e, "mirroring") }},
	{"waves", (*loader).decodeWaves},
	{"max_failures", func(l *loader, s *rawStep, e *kv) { s.MaxFailures = l.size(orNode(e.val, e), "max_failures") }},
	{"reinstall", func(l *loader, s *rawStep, e *kv) { s.Reinstall = l.bool(e, "reinstall") }},
	{"max_failures_per", (*loader).decodeMaxFailuresPer},
	{"pause_after", (*loader).decodePauseAfter},
	{"until", func(l *loader, s *rawStep, e *kv) { s.Until = l.str(e, "until") }},
	{"fail_if", func(l *loader, s *rawStep, e *kv) { s.FailIf = l.str(e, "fail_if") }},
	{"fleets", (*loader).decodeStepFleets},
	{"message", func(l *loader, s *rawStep, e *kv) { s.Message = l.str(e, "message") }},
	{"on_timeout", (*loader).decodeOnTimeout},
	{"to", func(l *loader, s *rawStep, e *kv) { s.To = l.str(e, "to") }},
	{"profile", func(l *loader, s *rawStep, e *kv) { s.Profile = l.int(e, "profile") }},
	{"max_machines", func(l *loader, s *rawStep, e *kv) { s.MaxMachines = l.int(e, "max_machines") }},
	{"force_after", func(l *loader, s *rawStep, e *kv) { s.ForceAfter = l.str(e, "force_after") }},
}

// requiredStepKeys lists the keys each step type must have, with how the
// message names such a step.
var requiredStepKeys = map[string]struct {
	what string
	keys []string
}{
	"install": {"an install step", []string{"mirroring"}},
	"update":  {"an update step", []string{"desc"}},
	"gate":    {"a gate step", []string{"expr"}},
}

// decodeStep reads one step of steps or on_failure.
func (l *loader) decodeStep(n ast.Node, onFailure bool) *rawStep {
	typ, what := l.stepHeader(n, onFailure)
	m, ok := l.mapping(n, what, allowedStepKeys(typ), func(k string) string { return misplacedStepKey(k, typ) })
	if !ok {
		return nil
	}
	s := &rawStep{Pos: l.pos(n), OnFailure: onFailure}
	if onFailure {
		l.requireKeys(m, n, what, "type")
	} else {
		l.requireKeys(m, n, what, "name", "type")
	}
	for _, f := range stepFields {
		if e := m.get(f.key); e != nil {
			f.decode(l, s, e)
		}
	}
	if s.Type.Set && !contains(stepTypes, s.Type.V) {
		l.errNode(s.Type.node, DidYouMean(s.Type.V, stepTypes), "unknown step type %q (one of %s)", s.Type.V, strings.Join(stepTypes, ", "))
	}
	if r, ok := requiredStepKeys[typ]; ok {
		l.requireKeys(m, n, r.what, r.keys...)
	}
	return s
}

// stepHeader reads a step's type and name before its other keys, because
// the type decides which keys are allowed and the name is how messages
// call the step.
func (l *loader) stepHeader(n ast.Node, onFailure bool) (typ, what string) {
	what = "a step"
	if onFailure {
		what = "an on_failure step"
	}
	m, ok := l.resolve(n).(*ast.MappingNode)
	if !ok {
		return "", what
	}
	for _, mv := range m.Values {
		k, ok := l.resolve(mv.Key).(*ast.StringNode)
		if !ok || (k.Value != "type" && k.Value != "name") {
			continue
		}
		if v, ok := l.resolve(mv.Value).(*ast.StringNode); ok {
			if k.Value == "type" {
				typ = v.Value
			} else {
				what = fmt.Sprintf("step %q", v.Value)
			}
		}
	}
	return typ, what
}

// allowedStepKeys lists the keys a step of type typ may have. For an
// unknown type every step key is accepted, so that only the type is
// reported.
func allowedStepKeys(typ string) []string {
	allowed := append([]string{}, commonStepKeys...)
	if own, ok := stepKeys[typ]; ok {
		return append(allowed, own...)
	}
	for _, t := range stepTypes {
		allowed = append(allowed, stepKeys[t]...)
	}
	return allowed
}

// misplacedStepKey explains a key of another step type ("" when k is no
// step key at all).
func misplacedStepKey(k, typ string) string {
	var owners []string
	for _, t := range stepTypes {
		if contains(stepKeys[t], k) {
			owners = append(owners, t)
		}
	}
	if len(owners) == 0 {
		return ""
	}
	return fmt.Sprintf("key %q belongs to %s steps, not to %s %s step", k, strings.Join(owners, " and "), article(typ), typ)
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func (l *loader) decodeNeeds(s *rawStep, e *kv) {
	items, _ := l.list(e, "needs")
	for _, it := range items {
		s.Needs = append(s.Needs, l.str(&kv{val: it}, "a need"))
	}
}

// decodeFull reads true, false or auto.
func (l *loader) decodeFull(s *rawStep, e *kv) {
	switch x := e.val.(type) {
	case *ast.BoolNode:
		s.Full = pv[string]{V: strconv.FormatBool(x.Value), Set: true, Pos: l.pos(x), node: x}
	case *ast.StringNode:
		if x.Value == "auto" {
			s.Full = pv[string]{V: "auto", Set: true, Pos: l.pos(x), node: x}
		} else {
			l.errNode(x, DidYouMean(x.Value, []string{"auto"}), "full must be true, false or auto, not %q", x.Value)
		}
	default:
		l.errNode(orNode(e.val, e), "", "full must be true, false or auto, not %s", NodeKind(e.val))
	}
}

func (l *loader) decodeInstallAt(s *rawStep, e *kv) {
	s.InstallAt = l.str(e, "install_at")
	if s.InstallAt.Set && s.InstallAt.V != "manual" && s.InstallAt.V != "now" {
		l.errNode(s.InstallAt.node, DidYouMean(s.InstallAt.V, []string{"manual", "now"}), "install_at must be manual or now, not %q", s.InstallAt.V)
		s.InstallAt.Set = false
	}
}

func (l *loader) decodeWaves(s *rawStep, e *kv) {
	s.WavesSet = pv[bool]{V: true, Set: true, Pos: l.pos(orNode(e.val, e)), node: orNode(e.val, e)}
	items, _ := l.list(e, "waves")
	for _, it := range items {
		s.Waves = append(s.Waves, l.size(it, "a wave"))
	}
}

// decodeMaxFailuresPer reads image or step.
func (l *loader) decodeMaxFailuresPer(s *rawStep, e *kv) {
	s.MaxFailuresPer = l.oneOf(e, "max_failures_per", []string{"step", "image"})
}

// decodeOnTimeout reads abort or continue.
func (l *loader) decodeOnTimeout(s *rawStep, e *kv) {
	s.OnTimeout = l.oneOf(e, "on_timeout", []string{string(OnTimeoutAbort), string(OnTimeoutContinue)})
}

// oneOf reads a string that must be one of values; an other one is
// reported (with a did-you-mean) and left unset.
func (l *loader) oneOf(e *kv, what string, values []string) pv[string] {
	v := l.str(e, what)
	if v.Set && !contains(values, v.V) {
		l.errNode(v.node, DidYouMean(v.V, values), "%s must be %s, not %q", what, orList(values), v.V)
		v.Set = false
	}
	return v
}

// orList joins values as "a, b or c".
func orList(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// decodeStepFleets reads the fleet names of a ready or switch step.
func (l *loader) decodeStepFleets(s *rawStep, e *kv) {
	s.FleetsSet = pv[bool]{V: true, Set: true, Pos: l.pos(orNode(e.val, e)), node: orNode(e.val, e)}
	items, _ := l.list(e, "fleets")
	for _, it := range items {
		s.Fleets = append(s.Fleets, l.str(&kv{val: it}, "a fleet name"))
	}
}

// decodePauseAfter reads an install step's pause_after: each entry
// approve, a Go duration (a bake time) or null (go on at once).
func (l *loader) decodePauseAfter(s *rawStep, e *kv) {
	node := orNode(e.val, e)
	s.PauseAfterSet = pv[bool]{V: true, Set: true, Pos: l.pos(node), node: node}
	if x, ok := e.val.(*ast.StringNode); ok {
		l.errNode(x, fmt.Sprintf("write pause_after: [%s]", x.Value), "pause_after must be a list (one entry per wave boundary), not a string")
		return
	}
	items, _ := l.list(e, "pause_after")
	for i, it := range items {
		s.PauseAfter = append(s.PauseAfter, l.pause(it, i))
	}
}

// pause reads entry i of pause_after.
func (l *loader) pause(n ast.Node, i int) pv[Pause] {
	p := pv[Pause]{Pos: l.pos(n), node: n, Given: true}
	bad := func(hint, got string) pv[Pause] {
		l.errNode(n, hint, "pause_after entry %d must be approve, a duration like 10m (a bake time) or null (go on at once), not %s", i+1, got)
		return p
	}
	switch x := n.(type) {
	case nil, *ast.NullNode:
		p.Set = true
	case *ast.StringNode:
		if x.Value == "approve" {
			p.V, p.Set = Pause{Approve: true}, true
			break
		}
		d, err := time.ParseDuration(x.Value)
		if err != nil {
			return bad(DidYouMean(x.Value, []string{"approve", "null"}), fmt.Sprintf("%q", x.Value))
		}
		if d < 0 {
			l.errNode(n, "", "pause_after entry %d is a negative duration", i+1)
			return p
		}
		p.V, p.Set = Pause{Bake: d}, true
	case *ast.IntegerNode:
		return bad("write a unit, like 10m or 30s", NodeKind(n))
	default:
		return bad("", NodeKind(n))
	}
	return p
}
