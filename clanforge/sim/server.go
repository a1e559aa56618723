package sim

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Id bases. Each id space starts somewhere else so that a client that sends
// one kind of id where another is expected gets a 404 rather than a lucky hit.
const (
	baseUpdateID    = 90400
	baseDiffID      = 218590
	baseVersionID   = 48800
	baseInstallID   = 661200
	baseUninstallID = 33100
	baseLocationID  = 30
	gameID          = 1201
	baseGameVersion = 9000
)

// Server is a simulated Clanforge API. It is an http.Handler; Start serves it
// on a listener of its own.
type Server struct {
	mu    sync.Mutex
	clock Clock
	last  time.Time // the latest time seen: the simulated world never runs backwards

	access, secret string
	token          string
	scn            Scenario
	dur            Durations
	speed          float64
	heldInstalls   bool
	bizStatus      int
	rng            *rand.Rand

	asid        int64
	gameName    string
	images      []*image
	imageByID   map[int64]*image
	machines    []*machine
	machineByID map[int64]*machine
	locations   []*location
	fleets      []*fleet
	fleetByID   map[string]*fleet
	profiles    map[int64]bool // profiles a switch may name
	neverReady  map[*location]bool

	jobs         map[Kind]map[int64]*job
	installs     []*job // mirror and machine jobs, by id
	installByID  map[int64]*job
	installGroup map[installKey][]*job
	lastInstall  map[mkey]*job
	mirrorOf     map[waitKey]*job
	waiters      map[waitKey][]waiter
	machineFiles map[mkey]fileSet
	installed    map[mkey]*version

	nextUpdate, nextDiff, nextVersion, nextInstall, nextUninstall int64

	events eventHeap
	evSeq  uint64

	failuresUsed      []int
	targetedSeen      []int
	switchTroubleUsed []int

	timeline []Event
	requests []Request
	switches []Switch

	// installBytes is the size of the last install list answer, to size
	// the next one.
	installBytes int

	srvMu sync.Mutex
	srv   *http.Server
}

// New builds a simulator from its configuration. It checks the inventory and
// resolves the scenario's image names; it does not listen (see Start).
func New(cfg Config) (*Server, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	inv := cfg.Inventory
	s := newServer(cfg)
	if err := s.addImages(inv); err != nil {
		return nil, err
	}
	locByName, mnames, err := s.addMachines(inv)
	if err != nil {
		return nil, err
	}
	if err := s.resolveScenario(locByName, mnames); err != nil {
		return nil, err
	}
	if err := s.buildFleets(inv); err != nil {
		return nil, err
	}
	s.last = s.clock.Now()
	return s, nil
}

// checkConfig refuses a configuration without usable credentials, with an
// invalid scenario, or with an inventory that has no ASID or no images.
func checkConfig(cfg Config) error {
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return errors.New("sim: AccessKey and SecretKey go together (HTTP Basic)")
	}
	if cfg.AccessKey == "" && cfg.Token == "" {
		return errors.New("sim: credentials are required: AccessKey and SecretKey (Basic), Token (Bearer), or both")
	}
	if err := cfg.Scenario.Validate(); err != nil {
		return err
	}
	inv := cfg.Inventory
	if inv.ASID <= 0 {
		return fmt.Errorf("sim: inventory ASID must be positive, got %d", inv.ASID)
	}
	if len(inv.Images) == 0 {
		return errors.New("sim: inventory has no images")
	}
	return nil
}

// newServer makes an empty simulator from a checked configuration, with the
// defaults filled in: no image or machine is added yet.
func newServer(cfg Config) *Server {
	inv := cfg.Inventory
	s := &Server{
		clock:         cfg.Clock,
		access:        cfg.AccessKey,
		secret:        cfg.SecretKey,
		token:         cfg.Token,
		scn:           cfg.Scenario,
		dur:           cfg.Scenario.durations(),
		speed:         cfg.Scenario.Speed,
		heldInstalls:  cfg.Scenario.HeldInstalls == nil || *cfg.Scenario.HeldInstalls,
		bizStatus:     cfg.Scenario.BusinessErrorStatus,
		rng:           rand.New(rand.NewPCG(uint64(cfg.Scenario.Seed), 0x5157)),
		asid:          inv.ASID,
		gameName:      inv.GameName,
		imageByID:     map[int64]*image{},
		machineByID:   map[int64]*machine{},
		jobs:          map[Kind]map[int64]*job{},
		installByID:   map[int64]*job{},
		installGroup:  map[installKey][]*job{},
		lastInstall:   map[mkey]*job{},
		mirrorOf:      map[waitKey]*job{},
		waiters:       map[waitKey][]waiter{},
		machineFiles:  map[mkey]fileSet{},
		installed:     map[mkey]*version{},
		nextUpdate:    baseUpdateID,
		nextDiff:      baseDiffID,
		nextVersion:   baseVersionID,
		nextInstall:   baseInstallID,
		nextUninstall: baseUninstallID,
		failuresUsed:  make([]int, len(cfg.Scenario.Failures)),
		targetedSeen:  make([]int, len(cfg.Scenario.Faults.Targeted)),
	}
	if cfg.Speed > 0 {
		s.speed = cfg.Speed
	}
	if s.speed <= 0 {
		s.speed = 1
	}
	if s.clock == nil {
		s.clock = RealClock{}
	}
	if s.bizStatus == 0 {
		s.bizStatus = http.StatusOK
	}
	if s.gameName == "" {
		s.gameName = "Simulated Game"
	}
	for _, k := range allKinds {
		s.jobs[k] = map[int64]*job{}
	}
	return s
}

// addImages adds the inventory's images, each with its initial version.
func (s *Server) addImages(inv Inventory) error {
	names := map[string]bool{}
	for i, im := range inv.Images {
		if im.ID <= 0 || im.Name == "" {
			return fmt.Errorf("sim: image %d needs a name and a positive id", i)
		}
		if s.imageByID[im.ID] != nil || names[im.Name] {
			return fmt.Errorf("sim: image %q (id %d) is listed twice", im.Name, im.ID)
		}
		names[im.Name] = true
		img := &image{Image: im, idx: i, gameVersionID: strconv.Itoa(baseGameVersion + i + 1)}
		// The initial version is full, so a no-change diff with full=1
		// right away is refused (API §6.5 rule 4).
		s.nextVersion++
		img.latest = &version{id: s.nextVersion, image: img, files: baseFiles(im.ID), full: true}
		s.images = append(s.images, img)
		s.imageByID[im.ID] = img
	}
	return nil
}

// addMachines adds the inventory's machines and the locations of their
// regions. It returns the locations by region name and the machine names,
// for checking the scenario's references.
func (s *Server) addMachines(inv Inventory) (map[string]*location, map[string]bool, error) {
	locByName := map[string]*location{}
	mnames := map[string]bool{}
	for i, m := range inv.Machines {
		if m.ID <= 0 || m.Name == "" {
			return nil, nil, fmt.Errorf("sim: machine %d needs a name and a positive id", i)
		}
		if s.machineByID[m.ID] != nil || mnames[m.Name] {
			return nil, nil, fmt.Errorf("sim: machine %q (id %d) is listed twice", m.Name, m.ID)
		}
		mnames[m.Name] = true
		region := m.Region
		if region == "" {
			region = DefaultRegion
		}
		loc := locByName[region]
		if loc == nil {
			loc = &location{
				id:         int64(baseLocationID + len(s.locations) + 1),
				name:       region,
				regionUUID: RegionID(region),
				mirror:     "mirror-" + region,
			}
			locByName[region] = loc
			s.locations = append(s.locations, loc)
		}
		mc := &machine{Machine: m, loc: loc, images: map[int64]bool{}}
		for _, id := range m.Images {
			img := s.imageByID[id]
			if img == nil {
				return nil, nil, fmt.Errorf("sim: machine %q carries unknown image id %d", m.Name, id)
			}
			mc.images[id] = true
			if !m.Build {
				img.fleet = append(img.fleet, mc)
				s.installed[mkey{m.ID, id}] = img.latest
			}
		}
		s.machines = append(s.machines, mc)
		s.machineByID[m.ID] = mc
	}
	return locByName, mnames, nil
}

// scenarioImage finds the image a scenario names by name or id; what says
// where in the scenario, for the error.
func (s *Server) scenarioImage(ref, what string) (*image, error) {
	for _, img := range s.images {
		if img.Name == ref || strconv.FormatInt(img.ID, 10) == ref {
			return img, nil
		}
	}
	return nil, fmt.Errorf("sim: scenario %s names unknown image %q", what, ref)
}

// resolveScenario checks the images, machines and regions the scenario
// names, marks the allocated images and the regions never ready.
func (s *Server) resolveScenario(locByName map[string]*location, mnames map[string]bool) error {
	for _, a := range s.scn.Allocations {
		img, err := s.scenarioImage(a, "allocations")
		if err != nil {
			return err
		}
		img.allocated = true
	}
	for i, f := range s.scn.Failures {
		if f.Image != "" {
			if _, err := s.scenarioImage(f.Image, fmt.Sprintf("failures[%d]", i)); err != nil {
				return err
			}
		}
		if f.Machine != "" && !mnames[f.Machine] {
			return fmt.Errorf("sim: scenario failures[%d] names unknown machine %q", i, f.Machine)
		}
		if f.Region != "" && locByName[f.Region] == nil {
			return fmt.Errorf("sim: scenario failures[%d] names unknown region %q", i, f.Region)
		}
	}
	for i, b := range s.scn.Builds {
		if b.Image != "" {
			if _, err := s.scenarioImage(b.Image, fmt.Sprintf("builds[%d]", i)); err != nil {
				return err
			}
		}
	}
	s.neverReady = map[*location]bool{}
	for i, r := range s.scn.NeverReadyRegions {
		loc := locByName[r]
		if loc == nil {
			return fmt.Errorf("sim: scenario never_ready_regions[%d] names unknown region %q", i, r)
		}
		s.neverReady[loc] = true
	}
	return nil
}

// detUUID derives a stable version-5-shaped UUID from its parts.
func detUUID(parts ...string) string {
	h := sha1.Sum([]byte("rollout-sim\x00" + strings.Join(parts, "\x00")))
	b := h[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// tick reads the clock, never going backwards. Callers hold s.mu.
func (s *Server) tick() time.Time {
	if now := s.clock.Now(); now.After(s.last) {
		s.last = now
	}
	return s.last
}

// Speed is the effective speed factor.
func (s *Server) Speed() float64 { return s.speed }

// ASID is the simulated account service id.
func (s *Server) ASID() int64 { return s.asid }

// Start serves the simulator on addr ("127.0.0.1:0" picks a free loopback
// port) and returns its base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return "", errors.New("sim: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sim: listen on %s: %w", addr, err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed after Close.
	return "http://" + ln.Addr().String(), nil
}

// Close stops a server started with Start; it is a no-op otherwise.
func (s *Server) Close() error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	return err
}

// preEncoded is an answer body already encoded as JSON (the install list,
// see installStatus): it is sent as is.
type preEncoded []byte

// apiError is an error answer: an HTTP status (0 = the configured business
// error status) and the envelope's message.
type apiError struct {
	status int
	msg    string
}

// bizErr is a lock, state or validation conflict. Its status is 200 by
// default (the one captured lock error came with a 2xx), 400 when the
// scenario says business_error_status: 400 (API §7 #1).
func bizErr(format string, args ...any) *apiError {
	return &apiError{msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

var errForbidden = &apiError{status: http.StatusForbidden, msg: "Forbidden"}

// envelope is the error body of API §2.3.
func envelope(msg string) map[string]any {
	return map[string]any{
		"success": false, "error": true, "error_code": 1,
		"error_message": msg, "messages": []any{}, "_debug": []any{},
	}
}

// route is a parsed request path.
type route struct {
	endpoint string
	method   string // the method the endpoint takes
	pathID   string // id from the path, "" if none
	idName   string // the query parameter that may also carry the id
	v2ASID   string
	v2Image  string
	fleetID  string
}

// parseRoute maps a method and path to an endpoint. IDs may sit in the
// documented path position or be given as same-named query parameters (API
// §2.1). Every endpoint is a GET but the profile switch, whose path answers
// PATCH (start a switch) and GET (its status); any other method on it is
// taken as a status read, which the method check then refuses.
func parseRoute(method, path string) (route, bool) {
	p := strings.Trim(path, "/")
	seg := strings.Split(p, "/")
	if len(seg) == 7 && seg[0] == "cfp" && seg[1] == "v2" && seg[2] == "project" && seg[4] == "image" && seg[6] == "status" {
		// /cfp/v2/project/<asid>/image/<imageid>/status
		return route{endpoint: EPImageStatusV2, method: http.MethodGet, v2ASID: seg[3], v2Image: seg[5]}, true
	}
	if len(seg) == 5 && seg[0] == "cfp" && seg[1] == "v2" && seg[2] == "fleet" && seg[4] == "switchprofile" && seg[3] != "" {
		// /cfp/v2/fleet/<fleetid>/switchprofile (no ASID, API §4.15)
		if method == http.MethodPatch {
			return route{endpoint: EPSwitchProfile, method: http.MethodPatch, fleetID: seg[3]}, true
		}
		return route{endpoint: EPSwitchStatus, method: http.MethodGet, fleetID: seg[3]}, true
	}
	if len(seg) < 4 || seg[0] != "cfp" || seg[1] != "v1" {
		return route{}, false
	}
	seg = seg[2:]
	idNames := map[string]string{
		"imageupdate": "updateid", "imagediff": "diffid",
		"imageversion": "imageversionid", "imageinstall": "jobid",
	}
	r := route{method: http.MethodGet}
	var res, action string
	switch len(seg) {
	case 2:
		res, action = seg[0], seg[1]
	case 3:
		res, r.pathID, action = seg[0], seg[1], seg[2]
		if _, err := strconv.ParseInt(r.pathID, 10, 64); err != nil {
			return route{}, false
		}
	default:
		return route{}, false
	}
	r.idName = idNames[res]
	name := res + "/" + action
	withID := map[string]bool{
		EPUpdateStatus: true, EPUpdateRetry: true, EPDiffStatus: true, EPDiffRetry: true,
		EPDiffReject: true, EPVersionStatus: true, EPInstallQueue: true,
	}
	withoutID := map[string]bool{
		EPUpdateCreate: true, EPDiffCreate: true, EPVersionCreate: true,
		EPInstallStatus: true, EPImageOptions: true,
	}
	switch {
	case withID[name]:
	case withoutID[name] && r.pathID == "":
	default:
		return route{}, false
	}
	r.endpoint = name
	return r, true
}

// ServeHTTP answers one API request: route, injected faults, auth, the
// endpoint's work, then (maybe) a dropped answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rt, ok := parseRoute(req.Method, req.URL.Path)
	if !ok {
		rt.endpoint = EPUnknown
	}
	mutating := endpointNames[rt.endpoint]
	logReq := Request{Endpoint: rt.endpoint, Path: req.URL.Path, Mutating: mutating}

	// Only the PATCH of the profile switch has a body to read.
	rc := &reqCtx{}
	if rt.endpoint == EPSwitchProfile {
		rc.body, rc.bodyErr = readBody(req)
	}

	pw := s.beforeWork(rt, req, rc)
	s.delay(req)
	body, ae := s.answer(w, rt, req, rc, pw, &logReq)
	status, buf, body := s.encode(body, ae, &logReq)
	logReq.Status = status
	if pw.drop && pw.fault == "" {
		logReq.Fault = FaultDrop
		logReq.Dropped = true
	}
	s.logRequest(logReq, rt, req, rc)

	if logReq.Dropped {
		dropConn(w)
		return
	}
	buf = append(buf, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	w.Write(buf) //nolint:errcheck // the client may have gone
	if pre, ok := body.(preEncoded); ok {
		s.putListBuf(pre)
	}
}

// preWork is what is decided about a request before any work.
type preWork struct {
	strictWhy    string // why strict mode refuses the request; "" if it does not
	strictStatus int    // the status of that refusal
	fault        string // the fault answered instead of the work, if any
	drop         bool   // drop the answer once the work is done
}

// beforeWork judges the request in strict mode and draws its faults.
func (s *Server) beforeWork(rt route, req *http.Request, rc *reqCtx) preWork {
	var pw preWork
	// Strict mode judges the request before anything else, so that a
	// refusal is recorded even when a fault would have hidden it, and a
	// refused request draws no fault.
	if s.scn.Strict {
		pw.strictWhy, pw.strictStatus = s.strictCheck(rt, req, rc)
	}

	// Faults decided before any work: 429 and 5xx never change state.
	if pw.strictWhy == "" {
		s.mu.Lock()
		pw.fault, pw.drop = s.drawFaults(rt.endpoint)
		s.mu.Unlock()
	}
	return pw
}

// delay waits out the scenario's latency, or until the request is gone.
func (s *Server) delay(req *http.Request) {
	if lat := s.scn.Faults.Latency; lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
		}
	}
}

// answer is the request's answer before encoding: a strict refusal, a
// fault, a routing or method error, or the endpoint's work once the
// request is authenticated.
func (s *Server) answer(w http.ResponseWriter, rt route, req *http.Request, rc *reqCtx, pw preWork, logReq *Request) (any, *apiError) {
	switch {
	case pw.strictWhy != "":
		logReq.Strict = pw.strictWhy
		return nil, &apiError{status: pw.strictStatus, msg: pw.strictWhy}
	case pw.fault == FaultRateLimit:
		ra := s.scn.Faults.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		logReq.Fault = FaultRateLimit
		return nil, &apiError{status: http.StatusTooManyRequests, msg: "Too Many Requests"}
	case pw.fault == FaultServerError:
		st := s.scn.Faults.ServerErrorStatus
		if st == 0 {
			st = http.StatusInternalServerError
		}
		logReq.Fault = FaultServerError
		return nil, &apiError{status: st, msg: http.StatusText(st)}
	case rt.endpoint == EPUnknown:
		return nil, notFound("not found: %s", req.URL.Path)
	case req.Method != rt.method:
		// Every image endpoint is a GET (API §2.1); the switch GET or PATCH.
		return nil, &apiError{status: http.StatusMethodNotAllowed, msg: "method not allowed: " + req.Method}
	}
	if ae := s.authenticate(req); ae != nil {
		return nil, ae
	}
	return s.work(rt, req, rc, logReq)
}

// encode makes the answer's status and JSON body; an error becomes the
// envelope of API §2.3, which is also the body returned.
func (s *Server) encode(body any, ae *apiError, logReq *Request) (int, []byte, any) {
	var status int
	if ae != nil {
		status = ae.status
		if status == 0 {
			status = s.bizStatus
		}
		body = envelope(ae.msg)
		logReq.ErrorMessage = ae.msg
	} else {
		status = http.StatusOK
	}
	var buf []byte
	var err error
	if pre, ok := body.(preEncoded); ok {
		buf = pre
	} else {
		buf, err = json.Marshal(body)
	}
	if err != nil {
		status = http.StatusInternalServerError
		buf, _ = json.Marshal(envelope("internal error: " + err.Error()))
	}
	return status, buf, body
}

// logRequest adds the request to the log, and a profile switch to the
// switches.
func (s *Server) logRequest(logReq Request, rt route, req *http.Request, rc *reqCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if logReq.Time.IsZero() {
		logReq.Time = s.tick()
	}
	logReq.Seq = len(s.requests) + 1
	s.requests = append(s.requests, logReq)
	if rt.endpoint == EPSwitchProfile {
		s.recordSwitch(logReq, rt, req, rc)
	}
}

// listBufs holds the buffers of install list answers once written, for the
// next one: a large rollout reads that list hundreds of times, megabytes
// each.
var listBufs sync.Pool

func (s *Server) getListBuf(size int) []byte {
	if b, ok := listBufs.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

func (s *Server) putListBuf(b []byte) {
	b = b[:0]
	listBufs.Put(&b)
}

// work advances the world to now and runs the endpoint under the lock. A
// bug that panics becomes a 500 answer instead of a lock held forever.
func (s *Server) work(rt route, req *http.Request, rc *reqCtx, logReq *Request) (body any, ae *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			body, ae = nil, &apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	now := s.tick()
	logReq.Time = now
	s.advance(now)
	return s.dispatch(rt, req, rc, now)
}

// reqCtx carries what one request brings beyond its route and what its
// endpoint did with it.
type reqCtx struct {
	body    []byte // the PATCH body
	bodyErr error  // the body could not be read (too large, cut short)
	applied bool   // the PATCH started a switch
}

// readBody reads a PATCH body, at most maxSwitchBody bytes.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxSwitchBody+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the body: %v", err)
	}
	if len(b) > maxSwitchBody {
		return nil, fmt.Errorf("the body is larger than %d bytes", maxSwitchBody)
	}
	return b, nil
}

// recordSwitch appends a PATCH to the switch record. Callers hold s.mu.
func (s *Server) recordSwitch(r Request, rt route, req *http.Request, rc *reqCtx) {
	sw := Switch{Request: r, FleetID: rt.fleetID, ContentType: req.Header.Get("Content-Type"), Body: string(rc.body), Applied: rc.applied}
	if f := s.fleetByID[rt.fleetID]; f != nil {
		sw.Fleet = f.Name
	}
	b, _ := parseSwitchBody(rc.body, false) // what it could read
	sw.ProfileID, sw.Timeout, sw.MaxMachines = b.ProfileID, b.Timeout, b.MaxMachines
	s.switches = append(s.switches, sw)
}

// dropConn closes the connection without an answer, after the work was done.
func dropConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2, a recorder): abort the handler, which makes
	// net/http reset the stream without a response.
	panic(http.ErrAbortHandler)
}

// drawFaults decides the request's injected faults. No rate limit is
// documented, so there is none unless the scenario injects 429s (API §7 #19).
// Targeted rules come first, then the shared draws from the seeded
// generator (one draw for 429/5xx and one for drop per request, so the
// sequence is reproducible).
func (s *Server) drawFaults(endpoint string) (pre string, drop bool) {
	f := s.scn.Faults
	for i, t := range f.Targeted {
		if t.Endpoint != endpoint {
			continue
		}
		s.targetedSeen[i]++
		n := s.targetedSeen[i]
		count := t.Count
		if count == 0 {
			count = 1
		}
		if n > t.Skip && n <= t.Skip+count {
			switch t.Fault {
			case FaultRateLimit, FaultServerError:
				if pre == "" {
					pre = t.Fault
				}
			default:
				drop = true
			}
		}
	}
	if f.RateLimit > 0 || f.ServerError > 0 {
		u := s.rng.Float64()
		switch {
		case pre != "":
		case u < f.RateLimit:
			pre = FaultRateLimit
		case u < f.RateLimit+f.ServerError:
			pre = FaultServerError
		}
	}
	if f.Drop > 0 && s.rng.Float64() < f.Drop {
		drop = true
	}
	return pre, drop
}

// authenticate accepts HTTP Basic with the configured keys and Bearer with
// the configured token, each only when configured. A missing Authorization
// header is 401, anything else that is not a right credential of a
// configured scheme is 403 (API §7 #1). SigV4 (AWS4-HMAC-SHA256) is not
// verified by the simulator, so it is refused rather than accepted
// unchecked.
func (s *Server) authenticate(req *http.Request) *apiError {
	h := req.Header.Get("Authorization")
	if h == "" {
		return &apiError{status: http.StatusUnauthorized, msg: "Forbidden"}
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return errForbidden
	}
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Basic") && s.access != "":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return errForbidden
		}
		if subtle.ConstantTimeCompare(raw, []byte(s.access+":"+s.secret)) == 1 {
			return nil
		}
	case strings.EqualFold(scheme, "Bearer") && s.token != "":
		if subtle.ConstantTimeCompare([]byte(cred), []byte(s.token)) == 1 {
			return nil
		}
	}
	return errForbidden
}

// unquote strips one pair of surrounding double quotes, which one real
// client puts around desc and game_build (API §6.1).
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}
