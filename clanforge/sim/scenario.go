package sim

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/rollout/rollout/plan"
)

// Scenario controls the simulator's timing, injected failures and API faults.
// The zero value is a calm, fault-free world at speed 1 with the default
// durations. Given the same seed, the same inventory and the same sequence of
// requests at the same clock times, a scenario produces exactly the same jobs,
// ids, timeline and faults.
//
// A scenario file is YAML, decoded strictly (an unknown key is an error).
// Every key is optional:
//
//	seed: 42              # int; seeds duration jitter and the shared fault draws (default 0)
//	speed: 10             # float > 0; divides every duration (10 => ten times faster; default 1)
//	jitter: 0.2           # float in [0, 0.9]; each job's run time is scaled by a
//	                      #   deterministic factor in [1-jitter, 1+jitter] (default 0)
//	durations:            # Go duration strings, at speed 1
//	  startup: 3s         #   time from creation to Running for a job that runs on its own:
//	                      #   Created for the first third, Pending the second, Queued the last
//	                      #   (a queued install also stays Queued for a third of it)
//	  update: 20s         #   image update (imageupdate/create)
//	  diff: 10s           #   difference analysis (imagediff/create, retry)
//	  version: 15s        #   image version packaging (imageversion/create)
//	  mirror: 10s         #   mirror install job (mirroring=true)
//	  install: 15s        #   machine install job (mirroring=false)
//	  uninstall: 10s      #   uninstall/reinstall job started by reject?reinstall=1
//	  switch_start: 2s    #   a profile switch stays pending this long before processing
//	  switch_batch: 5s    #   each batch of a profile switch takes this long
//	failures:             # injected job failures, matched in order when a job starts
//	  - kind: install     #   update | diff | version | mirror | install | uninstall (required)
//	    machine: eu-2     #   machine name (update, diff, install, uninstall); empty = any
//	    image: game-b     #   image name or id; empty = any
//	    region: eu        #   region of the machine or mirror location; empty = any
//	    times: 1          #   fail the first N matching runs, then succeed; 0 = always fail
//	    error: disk full  #   joberror of the failed job (default "injected failure")
//	faults:               # API faults (HTTP level)
//	  rate_limit: 0.05    #   share of requests answered 429 before any work is done
//	  retry_after: 2      #   Retry-After seconds sent with a 429 (default 1)
//	  server_error: 0.02  #   share of requests answered 5xx before any work is done
//	  server_error_status: 503 # the 5xx status to use (default 500)
//	  latency: 50ms       #   wall-clock delay added to every request (not scaled by speed)
//	  drop: 0.01          #   share of requests whose work is done but whose answer is
//	                      #   dropped (the connection is closed without a response)
//	  targeted:           #   faults for the first requests of one endpoint
//	    - endpoint: imagediff/create  # an endpoint name as in Request.Endpoint (required)
//	      fault: drop                 # drop (default) | rate_limit | server_error
//	      count: 1                    # how many matching requests get the fault (default 1)
//	      skip: 0                     # let this many matching requests through first
//	held_installs: true   # install jobs of a version created without install_at wait in
//	                      #   Pending until queued (default true); false: they run on their own
//	business_error_status: 200 # HTTP status of lock/state/validation errors: 200 (default) or 400
//	failed_job_success_false: false # true: status reads of a Failed job say success:false
//	empty_maps_as_array: false      # true: empty added/modified/removed maps are [] instead of {}
//	update_retry: false   # true: serve the legacy imageupdate/<id>/retry (Failed updates only)
//	strict: false         # true: refuse, before any work, every request a strict reading of the
//	                      #   API reference refuses: a method other than GET, a path not in its
//	                      #   documented form, a body, a Content-Type other than
//	                      #   application/x-www-form-urlencoded, an undocumented, repeated, empty or
//	                      #   missing required parameter (restart included), an id whose path and
//	                      #   query values differ, a boolean not spelled as documented for its
//	                      #   endpoint (1/0; mirroring and detail true/false), an install_at other
//	                      #   than NOW() or a unix timestamp, a url that is not s3/steam/gs/cos,
//	                      #   gameid without imageid (or the reverse) on image/options, and
//	                      #   disable_timeout without disable_percentage (or the reverse). The
//	                      #   refusal is a 400 (404 for an unknown path, 405 for a method) with the
//	                      #   error envelope, logged with Request.Strict set (see StrictRefusals)
//	allocations: [game-a] # images (name or id) with active allocations: imageversion/create
//	                      #   on them fails unless force=1
//	fleet_profiles:       # the profile a fleet's servers run at the start, by fleet name
//	  prod-eu: 102        #   (default: the inventory's, see Fleet.Profile)
//	switches:             # trouble for profile switches, matched in order when a PATCH
//	                      #   starts a switch that has servers to restart
//	  - trouble: stall    #   stall | error | failed (required):
//	                      #   stall:  after `after` batches the switch stays processing for
//	                      #           good; neither more batches nor its Timeout move it, so
//	                      #           the Deadline passes with servers still pending, and a
//	                      #           new PATCH is refused ("switch in progress")
//	                      #   error:  after `after` batches the switch stops; from then on
//	                      #           GET answers the error envelope "profile switch failed:
//	                      #           <error>" (the business error status) until a new PATCH
//	                      #   failed: after `after` batches the switch stops; GET answers the
//	                      #           status with State "failed", a state the reference does
//	                      #           not name (a client must not wait for complete forever)
//	                      #   Servers restarted before the trouble run the new profile, the
//	                      #   others the old one; a new PATCH is accepted after error/failed.
//	    fleet: prod-eu    #   fleet name; empty = any
//	    profile: 102      #   the switch's ProfileID; 0 = any
//	    after: 1          #   batches that complete first (default 0; at most all but one)
//	    times: 1          #   trouble for the first N matching switches; 0 = every one
//	    error: "..."      #   the message of error (default "injected switch failure")
//	never_ready_regions: [eu] # regions whose machine installs start and then never end:
//	                      #   they stay Running (jobeta passes, progress stops at 99), so the
//	                      #   region's pending_machines never reaches 0
//	builds:               # what a build changes, instead of the derived default
//	  - url: s3://bucket/game/1.2.3/  # match on the update's url (exact) ...
//	    desc: "1.2.3"                 # ... and/or its desc (exact, outer quotes stripped)
//	    image: game-a                 # optional: only for this image (name or id)
//	    added: [Data/new.pak]         # paths the build adds
//	    modified: [GameServer.x86_64] # paths the build changes
//	    removed: [Data/old.pak]       # paths the build removes
//
// A build with no matching entry changes a few files of the image's latest
// version, picked from a hash of the image, url and desc (always at least one
// modified file), so even a repeated build has changes. An entry with empty
// lists is a build that changes nothing.
type Scenario struct {
	Seed                  int64     `yaml:"seed"`
	Speed                 float64   `yaml:"speed"`
	Jitter                float64   `yaml:"jitter"`
	Durations             Durations `yaml:"durations"`
	Failures              []Failure `yaml:"failures"`
	Faults                Faults    `yaml:"faults"`
	HeldInstalls          *bool     `yaml:"held_installs"`
	BusinessErrorStatus   int       `yaml:"business_error_status"`
	FailedJobSuccessFalse bool      `yaml:"failed_job_success_false"`
	EmptyMapsAsArray      bool      `yaml:"empty_maps_as_array"`
	UpdateRetry           bool      `yaml:"update_retry"`
	Strict                bool      `yaml:"strict"`
	Allocations           []string  `yaml:"allocations"`
	Builds                []Build   `yaml:"builds"`
	// FleetProfiles, Switches and NeverReadyRegions inject cut-over
	// trouble (see above).
	FleetProfiles     map[string]int64 `yaml:"fleet_profiles"`
	Switches          []SwitchTrouble  `yaml:"switches"`
	NeverReadyRegions []string         `yaml:"never_ready_regions"`
}

// Troubles of a SwitchTrouble.
const (
	TroubleStall  = "stall"
	TroubleError  = "error"
	TroubleFailed = "failed"
)

// SwitchTrouble makes matching profile switches stall or fail (see
// Scenario).
type SwitchTrouble struct {
	Trouble string `yaml:"trouble"`
	Fleet   string `yaml:"fleet"`
	Profile int64  `yaml:"profile"`
	After   int    `yaml:"after"`
	Times   int    `yaml:"times"`
	Error   string `yaml:"error"`
}

// Durations are per-kind run times at speed 1; zero means the default.
type Durations struct {
	Startup   time.Duration `yaml:"startup"`
	Update    time.Duration `yaml:"update"`
	Diff      time.Duration `yaml:"diff"`
	Version   time.Duration `yaml:"version"`
	Mirror    time.Duration `yaml:"mirror"`
	Install   time.Duration `yaml:"install"`
	Uninstall time.Duration `yaml:"uninstall"`
	// SwitchStart is how long a profile switch stays pending; SwitchBatch
	// how long each of its batches takes.
	SwitchStart time.Duration `yaml:"switch_start"`
	SwitchBatch time.Duration `yaml:"switch_batch"`
}

// DefaultDurations are the run times at speed 1: far shorter than the real
// platform's, so that a newcomer's first `rollout run --sim` of the
// quickstart ends within a minute while every state is still visible. A
// full update, diff, version, mirror and install cycle takes about 37 s at
// speed 1, under 4 s at speed 10.
var DefaultDurations = Durations{
	Startup:   1500 * time.Millisecond,
	Update:    8 * time.Second,
	Diff:      5 * time.Second,
	Version:   6 * time.Second,
	Mirror:    4 * time.Second,
	Install:   6 * time.Second,
	Uninstall: 4 * time.Second,
	// A switch of four batches ends in 10 s at speed 1.
	SwitchStart: 2 * time.Second,
	SwitchBatch: 2 * time.Second,
}

// Failure injects job failures (see Scenario).
type Failure struct {
	Kind    Kind   `yaml:"kind"`
	Machine string `yaml:"machine"`
	Image   string `yaml:"image"`
	Region  string `yaml:"region"`
	Times   int    `yaml:"times"`
	Error   string `yaml:"error"`
}

// Faults are HTTP-level faults (see Scenario).
type Faults struct {
	RateLimit         float64         `yaml:"rate_limit"`
	RetryAfter        int             `yaml:"retry_after"`
	ServerError       float64         `yaml:"server_error"`
	ServerErrorStatus int             `yaml:"server_error_status"`
	Latency           time.Duration   `yaml:"latency"`
	Drop              float64         `yaml:"drop"`
	Targeted          []TargetedFault `yaml:"targeted"`
}

// Fault kinds of a TargetedFault.
const (
	FaultDrop        = "drop"
	FaultRateLimit   = "rate_limit"
	FaultServerError = "server_error"
)

// TargetedFault gives the first Count requests of an endpoint (after Skip
// of them went through) a fault.
type TargetedFault struct {
	Endpoint string `yaml:"endpoint"`
	Fault    string `yaml:"fault"`
	Count    int    `yaml:"count"`
	Skip     int    `yaml:"skip"`
}

// Build says what a build changes in an image (see Scenario).
type Build struct {
	URL      string   `yaml:"url"`
	Desc     string   `yaml:"desc"`
	Image    string   `yaml:"image"`
	Added    []string `yaml:"added"`
	Modified []string `yaml:"modified"`
	Removed  []string `yaml:"removed"`
}

// LoadScenario reads and validates a scenario file. Its errors are
// *plan.Errors, positioned and worded as plan errors are.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	return parseScenario(path, data)
}

// ParseScenario decodes and validates a scenario document. Unknown keys,
// wrong types and out-of-range values are errors, all reported at once as
// *plan.Errors whose positions name the file "scenario".
func ParseScenario(data []byte) (Scenario, error) {
	return parseScenario("scenario", data)
}

func parseScenario(file string, data []byte) (sc Scenario, err error) {
	src := plan.NewSource(file, data)
	// The YAML library has been seen to panic on fuzzed input; a scenario
	// file is user input, so a panic is an error.
	defer func() {
		if r := recover(); r != nil {
			sc, err = Scenario{}, &plan.Errors{src.Errorf(1, 1, 1, "", "cannot read the scenario (please report): %v", r)}
		}
	}()
	if strings.TrimSpace(string(data)) == "" {
		return Scenario{}, nil
	}
	f, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		return Scenario{}, &plan.Errors{src.SyntaxError(perr)}
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			if _, comment := d.Body.(*ast.CommentGroupNode); !comment {
				body = d.Body
				break
			}
		}
	}
	if body == nil {
		return Scenario{}, nil
	}
	c := &scenarioChecker{src: src}
	c.check(body, reflect.TypeFor[Scenario](), "the scenario")
	if len(c.errs) == 0 {
		if derr := yaml.NodeToValue(body, &sc); derr != nil {
			c.errs = append(c.errs, src.Errorf(1, 1, 1, "", "cannot decode the scenario: %v", derr))
		}
	}
	if len(c.errs) == 0 {
		for _, p := range sc.problems() {
			c.at(nodeAt(body, p.path), p.hint, "%s", p.msg)
		}
	}
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool {
			a, b := c.errs[i].Pos, c.errs[j].Pos
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		return Scenario{}, &c.errs
	}
	return sc, nil
}

// scenarioChecker walks a scenario's YAML against the Scenario type,
// reporting every unknown key (with a suggestion) and every value of the
// wrong kind, at its position, before anything is decoded.
type scenarioChecker struct {
	src  *plan.Source
	errs plan.Errors
}

var durationType = reflect.TypeFor[time.Duration]()

func (c *scenarioChecker) at(n ast.Node, hint, format string, args ...any) {
	line, col, width := 1, 1, 1
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			line, col, width = tk.Position.Line, tk.Position.Column, max(len([]rune(tk.Value)), 1)
		}
	}
	c.errs = append(c.errs, c.src.Errorf(line, col, width, hint, format, args...))
}

// check reports what in n does not fit t; what names n in messages.
func (c *scenarioChecker) check(n ast.Node, t reflect.Type, what string) {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
			continue
		case *ast.TagNode:
			n = x.Value
			continue
		}
		break
	}
	if _, ok := n.(*ast.AliasNode); ok || n == nil {
		return // an alias decodes as what it names; nothing is zero
	}
	if _, ok := n.(*ast.NullNode); ok {
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		c.duration(n, what)
	case t.Kind() == reflect.Struct:
		c.mapping(n, t, what)
	case t.Kind() == reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			c.at(n, "", "%s must be a list, not %s", what, plan.NodeKind(n))
			return
		}
		for i, v := range seq.Values {
			c.check(v, t.Elem(), fmt.Sprintf("%s[%d]", what, i))
		}
	default:
		c.scalar(n, t, what)
	}
}

// mapping checks a mapping's keys against the struct's yaml tags.
func (c *scenarioChecker) mapping(n ast.Node, t reflect.Type, what string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		c.at(n, "", "%s must be a mapping, not %s", what, plan.NodeKind(n))
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" {
			fields[tag] = t.Field(i).Type
			names = append(names, tag)
		}
	}
	for _, mv := range m.Values {
		key := mv.Key.GetToken().Value
		ft, ok := fields[key]
		if !ok {
			c.at(mv.Key, plan.DidYouMean(key, names), "unknown key %q in %s (one of %s)", key, what, strings.Join(names, ", "))
			continue
		}
		path := key
		if what != "the scenario" {
			path = what + "." + key
		}
		c.check(mv.Value, ft, path)
	}
}

// duration checks a Go duration string (an integer counts nanoseconds).
func (c *scenarioChecker) duration(n ast.Node, what string) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return
	case *ast.StringNode:
		if _, err := time.ParseDuration(x.Value); err == nil {
			return
		}
		c.at(n, "", "%s: invalid duration %q (use Go durations such as 20s or 1m30s)", what, x.Value)
	default:
		c.at(n, "", "%s must be a duration such as 20s or 1m30s, not %s", what, plan.NodeKind(n))
	}
}

// scalar checks a number, a boolean or a string.
func (c *scenarioChecker) scalar(n ast.Node, t reflect.Type, what string) {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		if _, ok := n.(*ast.IntegerNode); !ok {
			c.at(n, "", "%s must be an integer, not %s", what, plan.NodeKind(n))
		}
	case reflect.Float64:
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		default:
			c.at(n, "", "%s must be a number, not %s", what, plan.NodeKind(n))
		}
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); !ok {
			c.at(n, "", "%s must be true or false, not %s", what, plan.NodeKind(n))
		}
	case reflect.String:
		switch n.(type) {
		case *ast.MappingNode, *ast.SequenceNode:
			c.at(n, "quote it if it is text", "%s must be a string, not %s", what, plan.NodeKind(n))
		}
	}
}

// nodeAt finds the node of a path such as "faults.targeted[0].endpoint"
// ("" is the whole document); it stops at the deepest node it finds.
func nodeAt(n ast.Node, path string) ast.Node {
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' }) {
		if i, err := strconv.Atoi(strings.TrimSuffix(part, "]")); err == nil && strings.HasSuffix(part, "]") {
			seq, ok := n.(*ast.SequenceNode)
			if !ok || i >= len(seq.Values) {
				return n
			}
			n = seq.Values[i]
			continue
		}
		m, ok := n.(*ast.MappingNode)
		if !ok {
			return n
		}
		found := false
		for _, mv := range m.Values {
			if mv.Key.GetToken().Value == part {
				n, found = mv.Value, true
				break
			}
		}
		if !found {
			return n
		}
	}
	return n
}

// problem is a value out of range: where it is (a path such as
// "failures[0].kind"), what is wrong, and a suggestion.
type problem struct {
	path, msg, hint string
}

// Validate checks value ranges; it does not need the inventory (image names
// in allocations, builds and failures are checked by New).
func (sc *Scenario) Validate() error {
	var errs []error
	for _, p := range sc.problems() {
		errs = append(errs, errors.New("scenario: "+p.msg))
	}
	return errors.Join(errs...)
}

// problems lists every value out of range.
func (sc *Scenario) problems() []problem {
	var out []problem
	bad := func(path, hint, format string, args ...any) {
		out = append(out, problem{path: path, msg: fmt.Sprintf(format, args...), hint: hint})
	}
	if sc.Speed < 0 {
		bad("speed", "", "speed must be positive, got %v", sc.Speed)
	}
	if sc.Jitter < 0 || sc.Jitter > 0.9 {
		bad("jitter", "", "jitter must be between 0 and 0.9, got %v", sc.Jitter)
	}
	d := sc.Durations
	for _, kd := range []struct {
		name string
		v    time.Duration
	}{{"startup", d.Startup}, {"update", d.Update}, {"diff", d.Diff}, {"version", d.Version}, {"mirror", d.Mirror}, {"install", d.Install}, {"uninstall", d.Uninstall}} {
		if kd.v < 0 {
			bad("durations."+kd.name, "", "durations.%s must not be negative, got %v", kd.name, kd.v)
		}
	}
	for i, f := range sc.Failures {
		at := fmt.Sprintf("failures[%d]", i)
		if !validKind(f.Kind) {
			bad(at+".kind", plan.DidYouMean(string(f.Kind), strings.Split(kindList(), ", ")), "failures[%d].kind %q is not one of %s", i, f.Kind, kindList())
		}
		if f.Times < 0 {
			bad(at+".times", "", "failures[%d].times must not be negative, got %d", i, f.Times)
		}
		if f.Machine != "" && (f.Kind == KindVersion || f.Kind == KindMirror) {
			bad(at+".machine", "", "failures[%d].machine cannot be used with kind %s (it has no machine; use image or region)", i, f.Kind)
		}
	}
	out = append(out, sc.Faults.problems()...)
	switch sc.BusinessErrorStatus {
	case 0, 200, 400:
	default:
		bad("business_error_status", "", "business_error_status must be 200 or 400, got %d", sc.BusinessErrorStatus)
	}
	for i, b := range sc.Builds {
		if b.URL == "" && b.Desc == "" {
			bad(fmt.Sprintf("builds[%d]", i), "", "builds[%d] needs url or desc to match an update", i)
		}
	}
	if sc.Durations.SwitchStart < 0 {
		bad("durations.switch_start", "", "durations.switch_start must not be negative, got %v", sc.Durations.SwitchStart)
	}
	if sc.Durations.SwitchBatch < 0 {
		bad("durations.switch_batch", "", "durations.switch_batch must not be negative, got %v", sc.Durations.SwitchBatch)
	}
	for _, name := range sortedKeys(sc.FleetProfiles) {
		if p := sc.FleetProfiles[name]; p <= 0 {
			bad("fleet_profiles."+name, "", "fleet_profiles.%s must be a positive profile id, got %d", name, p)
		}
	}
	troubles := []string{TroubleStall, TroubleError, TroubleFailed}
	for i, t := range sc.Switches {
		at := fmt.Sprintf("switches[%d]", i)
		switch t.Trouble {
		case TroubleStall, TroubleError, TroubleFailed:
		case "":
			bad(at, "", "switches[%d].trouble is required (stall, error or failed)", i)
		default:
			bad(at+".trouble", plan.DidYouMean(t.Trouble, troubles), "switches[%d].trouble %q is not one of stall, error, failed", i, t.Trouble)
		}
		if t.Profile < 0 {
			bad(at+".profile", "", "switches[%d].profile must not be negative, got %d", i, t.Profile)
		}
		if t.After < 0 || t.Times < 0 {
			bad(at, "", "switches[%d]: after and times must not be negative", i)
		}
		if t.Error != "" && t.Trouble != TroubleError {
			bad(at+".error", "", "switches[%d].error is only shown by trouble: error", i)
		}
	}
	for i, r := range sc.NeverReadyRegions {
		if r == "" {
			bad(fmt.Sprintf("never_ready_regions[%d]", i), "", "never_ready_regions[%d] is empty", i)
		}
	}
	return out
}

// problems lists every fault setting out of range.
func (f Faults) problems() []problem {
	var out []problem
	bad := func(path, hint, format string, args ...any) {
		out = append(out, problem{path: "faults." + path, msg: fmt.Sprintf(format, args...), hint: hint})
	}
	share := func(name string, v float64) {
		if v < 0 || v > 1 {
			bad(name, "", "faults.%s is a share and must be between 0 and 1, got %v", name, v)
		}
	}
	share("rate_limit", f.RateLimit)
	share("server_error", f.ServerError)
	share("drop", f.Drop)
	if f.RateLimit+f.ServerError > 1 {
		bad("server_error", "", "faults.rate_limit + faults.server_error must not exceed 1")
	}
	if f.RetryAfter < 0 {
		bad("retry_after", "", "faults.retry_after must not be negative, got %d", f.RetryAfter)
	}
	if f.ServerErrorStatus != 0 && (f.ServerErrorStatus < 500 || f.ServerErrorStatus > 599) {
		bad("server_error_status", "", "faults.server_error_status must be a 5xx status, got %d", f.ServerErrorStatus)
	}
	if f.Latency < 0 {
		bad("latency", "", "faults.latency must not be negative, got %v", f.Latency)
	}
	faults := []string{FaultDrop, FaultRateLimit, FaultServerError}
	for i, t := range f.Targeted {
		at := fmt.Sprintf("targeted[%d]", i)
		if _, ok := endpointNames[t.Endpoint]; !ok {
			bad(at+".endpoint", plan.DidYouMean(t.Endpoint, strings.Split(endpointList(), ", ")), "faults.targeted[%d].endpoint %q is not an endpoint name (one of %s)", i, t.Endpoint, endpointList())
		}
		if t.Fault != "" && !slices.Contains(faults, t.Fault) {
			bad(at+".fault", plan.DidYouMean(t.Fault, faults), "faults.targeted[%d].fault %q is not one of drop, rate_limit, server_error", i, t.Fault)
		}
		if t.Count < 0 || t.Skip < 0 {
			bad(at, "", "faults.targeted[%d]: count and skip must not be negative", i)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// durations returns the scenario's durations with defaults filled in.
func (sc *Scenario) durations() Durations {
	d := sc.Durations
	def := DefaultDurations
	fill := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	fill(&d.Startup, def.Startup)
	fill(&d.Update, def.Update)
	fill(&d.Diff, def.Diff)
	fill(&d.Version, def.Version)
	fill(&d.Mirror, def.Mirror)
	fill(&d.Install, def.Install)
	fill(&d.Uninstall, def.Uninstall)
	fill(&d.SwitchStart, def.SwitchStart)
	fill(&d.SwitchBatch, def.SwitchBatch)
	return d
}

func (d Durations) of(k Kind) time.Duration {
	switch k {
	case KindUpdate:
		return d.Update
	case KindDiff:
		return d.Diff
	case KindVersion:
		return d.Version
	case KindMirror:
		return d.Mirror
	case KindInstall:
		return d.Install
	case KindUninstall:
		return d.Uninstall
	}
	return 0
}
