package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// params merges the path id and the query (API §2.1): an id may be in its
// documented path position or in the same-named query parameter; the path
// wins when both are given.
type params struct {
	q  url.Values
	rt route
}

func (p params) raw(name string) (string, bool) {
	if name == p.rt.idName && p.rt.pathID != "" {
		return p.rt.pathID, true
	}
	if p.q.Has(name) {
		return p.q.Get(name), true
	}
	return "", false
}

func (p params) int(name string) (int64, *apiError) {
	v, ok := p.raw(name)
	if !ok || strings.TrimSpace(v) == "" {
		return 0, bizErr("missing required parameter: %s", name)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, bizErr("invalid %s %q: not an integer", name, v)
	}
	return n, nil
}

// boolean reads 1/0/true/false (any case); an absent or empty value is
// (false, false).
func (p params) boolean(name string) (val, present bool, ae *apiError) {
	v, ok := p.raw(name)
	v = strings.TrimSpace(unquote(v))
	if !ok || v == "" {
		return false, false, nil
	}
	switch strings.ToLower(v) {
	case "1", "true":
		return true, true, nil
	case "0", "false":
		return false, true, nil
	}
	return false, true, bizErr("invalid %s %q: use 1, 0, true or false", name, v)
}

// dispatch runs an endpoint. Callers hold s.mu and have advanced to now.
func (s *Server) dispatch(rt route, req *http.Request, rc *reqCtx, now time.Time) (any, *apiError) {
	p := params{q: req.URL.Query(), rt: rt}
	switch rt.endpoint {
	case EPSwitchProfile:
		// The fleet switch carries no ASID (API §4.15): the fleet id is
		// the whole address.
		return s.switchPatch(rt, rc, now)
	case EPSwitchStatus:
		return s.switchGet(rt, now)
	}
	if rt.endpoint == EPImageStatusV2 {
		// The ASID is a path segment here (API §4.12).
		if asid, err := strconv.ParseInt(rt.v2ASID, 10, 64); err != nil || asid != s.asid {
			return nil, errForbidden
		}
		return s.imageStatusV2(p, now)
	}
	asid, ae := p.int("accountserviceid")
	if ae != nil {
		return nil, ae
	}
	if asid != s.asid {
		// Unknown or inaccessible ASID is a permission problem (API §6.1).
		return nil, errForbidden
	}
	switch rt.endpoint {
	case EPUpdateCreate:
		return s.updateCreate(p, now)
	case EPUpdateStatus:
		return s.status(p, KindUpdate, "updateid", "update", now)
	case EPUpdateRetry:
		if !s.scn.UpdateRetry {
			// Only a legacy URL (API §7 #10); off unless the scenario asks.
			return nil, notFound("not found: %s", req.URL.Path)
		}
		return s.updateRetry(p, now)
	case EPDiffCreate:
		if _, ok := p.raw("diffid"); ok {
			// create with diffid re-runs that diff, like retry (API §4.4).
			return s.diffRetry(p, now, true)
		}
		return s.diffCreate(p, now)
	case EPDiffStatus:
		return s.diffStatus(p, now)
	case EPDiffRetry:
		return s.diffRetry(p, now, false)
	case EPDiffReject:
		return s.diffReject(p, now)
	case EPVersionCreate:
		return s.versionCreate(p, now)
	case EPVersionStatus:
		return s.status(p, KindVersion, "imageversionid", "image version", now)
	case EPInstallStatus:
		return s.installStatus(now), nil
	case EPInstallQueue:
		return s.installQueue(p, now)
	case EPImageOptions:
		return s.imageOptions(p)
	}
	return nil, notFound("not found: %s", req.URL.Path)
}

// jobBody renders a job with the fields of API §3.1: jobstart is a string of
// unix seconds, the other timestamps integers, null when unset (§7 #5).
func (s *Server) jobBody(j *job, now time.Time, idField string, withSuccess bool) map[string]any {
	st := j.stateAt(now)
	m := map[string]any{
		idField:        j.id,
		"jobcreated":   j.created.Unix(),
		"jobupdated":   j.updatedAt(now).Unix(),
		"jobstart":     nil,
		"jobeta":       nil,
		"jobprogress":  j.progressAt(now),
		"jobstateid":   st,
		"jobstatename": stateNames[st],
		"jobfailed":    j.failed,
		"joberror":     nil,
	}
	if !j.startAt.IsZero() && (st == stRunning || st == stCompleted || st == stFailed) {
		m["jobstart"] = strconv.FormatInt(j.startAt.Unix(), 10)
		m["jobeta"] = j.eta.Unix()
	}
	if st == stFailed {
		m["joberror"] = j.errMsg
	}
	if withSuccess {
		// success is about the request, even for a Failed job (API §7 #2),
		// unless the scenario asks for the other reading.
		m["success"] = !(s.scn.FailedJobSuccessFalse && st == stFailed)
	}
	return m
}

func (s *Server) lookupImage(p params) (*image, *apiError) {
	id, ae := p.int("imageid")
	if ae != nil {
		return nil, ae
	}
	img := s.imageByID[id]
	if img == nil {
		return nil, notFound("image not found: %d", id)
	}
	return img, nil
}

func (s *Server) lookupMachine(p params) (*machine, *apiError) {
	id, ae := p.int("machineid")
	if ae != nil {
		return nil, ae
	}
	m := s.machineByID[id]
	if m == nil {
		return nil, notFound("machine not found: %d", id)
	}
	return m, nil
}

func (s *Server) lookupJob(p params, kind Kind, idName, what string) (*job, *apiError) {
	id, ae := p.int(idName)
	if ae != nil {
		return nil, ae
	}
	j := s.jobs[kind][id]
	if j == nil {
		return nil, notFound("%s not found: %d", what, id)
	}
	return j, nil
}

// lockErr refuses work on a locked image. An outstanding diff locks it
// against new diffs and new updates (API §7 #9); an update in progress
// locks it too, with the message we assume for it (API §7 #8). Locks are
// per image, not per machine (§7 #18).
func lockErr(img *image) *apiError {
	if img.openDiff != nil {
		return bizErr("image locked by diffid: %d", img.openDiff.id)
	}
	if img.activeUpdate != nil {
		return bizErr("image locked by updateid: %d", img.activeUpdate.id)
	}
	return nil
}

func (s *Server) status(p params, kind Kind, idName, what string, now time.Time) (any, *apiError) {
	j, ae := s.lookupJob(p, kind, idName, what)
	if ae != nil {
		return nil, ae
	}
	return s.jobBody(j, now, idName, true), nil
}

// lookupTarget reads the image and the build machine a job is created for.
func (s *Server) lookupTarget(p params) (*image, *machine, *apiError) {
	img, ae := s.lookupImage(p)
	if ae != nil {
		return nil, nil, ae
	}
	m, ae := s.lookupMachine(p)
	if ae != nil {
		return nil, nil, ae
	}
	return img, m, nil
}

// begin records a job's creation or retry (event) and queues it as the
// scenario says; the handler answers with the job's status body.
func (s *Server) begin(j *job, now time.Time, event, idName string, withSuccess bool) map[string]any {
	s.record(now, j, event, "")
	s.autoQueue(j, time.Time{})
	return s.jobBody(j, now, idName, withSuccess)
}

func (s *Server) updateCreate(p params, now time.Time) (any, *apiError) {
	img, m, ae := s.lookupTarget(p)
	if ae != nil {
		return nil, ae
	}
	desc, _ := p.raw("desc")
	desc = unquote(strings.TrimSpace(desc))
	if desc == "" {
		return nil, bizErr("missing required parameter: desc")
	}
	u, _ := p.raw("url")
	u = strings.TrimSpace(u)
	if u == "" {
		u = img.UpdateURL
	}
	if u == "" {
		return nil, bizErr("url is required: image %d has no default update_url", img.ID)
	}
	if ae := lockErr(img); ae != nil {
		return nil, ae
	}
	s.nextUpdate++
	j := s.newJob(KindUpdate, s.nextUpdate, img, m, now)
	j.url, j.desc = u, desc
	img.activeUpdate = j
	return s.begin(j, now, "created", "updateid", true), nil
}

// updateRetry re-runs a Failed update under the same updateid (behind the
// update_retry scenario switch, API §7 #10).
func (s *Server) updateRetry(p params, now time.Time) (any, *apiError) {
	j, ae := s.lookupJob(p, KindUpdate, "updateid", "update")
	if ae != nil {
		return nil, ae
	}
	if st := j.stateAt(now); st != stFailed {
		return nil, bizErr("update %d cannot be retried while %s: only a failed update can be retried", j.id, stateNames[st])
	}
	if ae := lockErr(j.image); ae != nil {
		return nil, ae
	}
	s.resetJob(j, now)
	j.image.activeUpdate = j
	return s.begin(j, now, "retried", "updateid", true), nil
}

func (s *Server) diffCreate(p params, now time.Time) (any, *apiError) {
	img, m, ae := s.lookupTarget(p)
	if ae != nil {
		return nil, ae
	}
	if ae := lockErr(img); ae != nil {
		return nil, ae
	}
	s.nextDiff++
	j := s.newJob(KindDiff, s.nextDiff, img, m, now)
	img.openDiff = j
	return s.begin(j, now, "created", "diffid", true), nil
}

// diffUsable refuses a rejected or consumed diff.
func diffUsable(j *job) *apiError {
	if j.rejected {
		return bizErr("diff %d has been rejected", j.id)
	}
	if j.consumedBy != 0 {
		return bizErr("diff %d has already been used for image version %d", j.id, j.consumedBy)
	}
	return nil
}

// diffSettled refuses to retry or reject (what is "retried" or "rejected")
// a diff that is rejected or consumed, or that has not completed or failed.
func diffSettled(j *job, now time.Time, what string) *apiError {
	if ae := diffUsable(j); ae != nil {
		return ae
	}
	if st := j.stateAt(now); st != stCompleted && st != stFailed {
		return bizErr("diff %d cannot be %s while %s: only a completed or failed diff can be %s", j.id, what, stateNames[st], what)
	}
	return nil
}

// diffRetry resets a Completed or Failed diff to Created under the same
// diffid and recomputes it; the image stays locked by it. The /retry answer
// has no success field (API §4.6); create?diffid= has one (§4.4).
func (s *Server) diffRetry(p params, now time.Time, withSuccess bool) (any, *apiError) {
	j, ae := s.lookupJob(p, KindDiff, "diffid", "diff")
	if ae != nil {
		return nil, ae
	}
	if ae := diffSettled(j, now, "retried"); ae != nil {
		return nil, ae
	}
	s.resetJob(j, now)
	j.result, j.diffFiles = nil, nil
	return s.begin(j, now, "retried", "diffid", withSuccess), nil
}

func (s *Server) fileMap(fs fileSet) any {
	if len(fs) == 0 && s.scn.EmptyMapsAsArray {
		return []any{}
	}
	// File objects are {"size": bytes} (API §7 #6).
	out := make(map[string]any, len(fs))
	for p, f := range fs {
		out[p] = map[string]any{"size": f.Size}
	}
	return out
}

func (s *Server) diffStatus(p params, now time.Time) (any, *apiError) {
	j, ae := s.lookupJob(p, KindDiff, "diffid", "diff")
	if ae != nil {
		return nil, ae
	}
	info, _, ae := p.boolean("diff_info")
	if ae != nil {
		return nil, ae
	}
	body := s.jobBody(j, now, "diffid", true)
	// The three maps come back with or without diff_info (API §4.5).
	var r diffResult
	if j.result != nil && j.stateAt(now) == stCompleted {
		r = *j.result
	}
	body["added"] = s.fileMap(r.Added)
	body["modified"] = s.fileMap(r.Modified)
	body["removed"] = s.fileMap(r.Removed)
	if info {
		// Shapes reused from image/options (API §7 #7).
		body["game"] = map[string]any{"gameid": gameID, "name": s.gameName}
		body["image"] = s.imageObj(j.image)
		body["machine"] = map[string]any{"machineid": j.machine.ID, "name": j.machine.Name}
	}
	return body, nil
}

func (s *Server) imageObj(img *image) map[string]any {
	return map[string]any{"imageid": img.ID, "name": img.Name, "gameversionid": img.gameVersionID}
}

func (s *Server) diffReject(p params, now time.Time) (any, *apiError) {
	j, ae := s.lookupJob(p, KindDiff, "diffid", "diff")
	if ae != nil {
		return nil, ae
	}
	reinstall, present, ae := p.boolean("reinstall")
	if ae != nil {
		return nil, ae
	}
	if !present {
		// reinstall is not optional (API §4.7).
		return nil, bizErr("missing required parameter: reinstall")
	}
	if ae := diffSettled(j, now, "rejected"); ae != nil {
		return nil, ae
	}
	j.rejected = true
	if j.image.openDiff == j {
		j.image.openDiff = nil
	}
	detail := "reinstall=0"
	if reinstall {
		detail = "reinstall=1"
	}
	s.record(now, j, "rejected", detail)
	if !reinstall {
		return map[string]any{"diffid": j.id}, nil
	}
	s.nextUninstall++
	u := s.newJob(KindUninstall, s.nextUninstall, j.image, j.machine, now)
	// The reinstall answer has no success field (API §4.7).
	return s.begin(u, now, "created", "uninstalljobid", false), nil
}

// versionCreate accepts a diff. Validation order is API §6.5: the diff
// (exists, ASID, Completed, not rejected or consumed), active allocations
// without force, no changes without full, no changes with full on top of a
// full version.
func (s *Server) versionCreate(p params, now time.Time) (any, *apiError) {
	d, ae := s.lookupJob(p, KindDiff, "diffid", "diff")
	if ae != nil {
		return nil, ae
	}
	restart, _, ae := p.boolean("restart") // missing means 0 (API §7 #12)
	if ae != nil {
		return nil, ae
	}
	full, _, ae := p.boolean("full")
	if ae != nil {
		return nil, ae
	}
	force, _, ae := p.boolean("force")
	if ae != nil {
		return nil, ae
	}
	gameBuild, _ := p.raw("game_build")
	gameBuild = unquote(strings.TrimSpace(gameBuild))
	var installAt *time.Time
	if v, ok := p.raw("install_at"); ok && strings.TrimSpace(v) != "" {
		v = strings.TrimSpace(unquote(v))
		if strings.EqualFold(v, "NOW()") {
			t := now
			installAt = &t
		} else {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, bizErr("invalid install_at %q: use a unix timestamp or NOW()", v)
			}
			t := time.Unix(sec, 0)
			installAt = &t
		}
	}
	if v, ok := p.raw("disable_timeout"); ok && v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return nil, bizErr("invalid disable_timeout %q: minutes as a non-negative integer", v)
		}
	}
	if v, ok := p.raw("disable_percentage"); ok && v != "" {
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || f > 100 {
			return nil, bizErr("invalid disable_percentage %q: a number from 0.00 to 100.00", v)
		}
	}

	if ae := diffUsable(d); ae != nil {
		return nil, ae
	}
	if st := d.stateAt(now); st != stCompleted {
		return nil, bizErr("diff %d is not completed (state %s)", d.id, stateNames[st])
	}
	img := d.image
	if img.allocated && !force {
		// Invented text (API §7 #14).
		return nil, bizErr("image has active allocations")
	}
	if d.result.changed() == 0 {
		if !full {
			return nil, bizErr("diff %d has no changes: full=1 is required", d.id)
		}
		if img.latest.full {
			return nil, bizErr("diff %d has no changes and the previous image version %d is already full", d.id, img.latest.id)
		}
	}

	s.nextVersion++
	vj := s.newJob(KindVersion, s.nextVersion, img, nil, now)
	vj.ver = &version{id: vj.id, image: img, files: d.diffFiles, full: full}
	vj.restart = restart
	vj.installAt = installAt
	vj.gameBuild = gameBuild
	d.consumedBy = vj.id
	if img.openDiff == d {
		img.openDiff = nil
	}
	s.record(now, d, "consumed", "image version "+strconv.FormatInt(vj.id, 10))
	return s.begin(vj, now, "created", "imageversionid", true), nil
}

// listed reports whether imageinstall/status shows the job: states 1-4, and
// Failed until a newer version of its image supersedes it (API §7 #16).
func (s *Server) listed(j *job, now time.Time) bool {
	switch j.stateAt(now) {
	case stCreated, stPending, stQueued, stRunning:
		return true
	case stFailed:
		return j.target == j.image.latest
	}
	return false
}

// installStatus renders the list of imageinstall/status. It is the one
// answer that grows with the fleet (every unfinished install of the
// account), and a large rollout reads it hundreds of times, so it is written
// straight into bytes rather than built as maps for encoding/json: the
// bytes are exactly those encoding/json would make of the documented shape
// (keys in sorted order, strings escaped the same way; a test holds the
// two together).
func (s *Server) installStatus(now time.Time) preEncoded {
	b := s.getListBuf(64 + s.installBytes + s.installBytes/8)
	b = append(b, `{"installs":[`...)
	n := 0
	for _, j := range s.installs {
		if !s.listed(j, now) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = s.appendInstall(b, j, now)
	}
	b = append(b, "]}"...)
	// The next answer is sized from this one: the list shrinks and grows
	// slowly.
	s.installBytes = len(b)
	return b
}

// appendInstall appends one entry of the install list: the job fields of
// API §3.1 (as jobBody renders them) and the install's own, in the sorted
// key order encoding/json gives a map.
func (s *Server) appendInstall(b []byte, j *job, now time.Time) []byte {
	st := j.stateAt(now)
	running := !j.startAt.IsZero() && (st == stRunning || st == stCompleted || st == stFailed)
	b = append(b, `{"imagepath":"/home/cf/`...)
	b = strconv.AppendInt(b, j.image.ID, 10)
	b = append(b, `","install_at":`...)
	if j.installAt != nil {
		b = strconv.AppendInt(b, j.installAt.Unix(), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"jobcreated":`...)
	b = strconv.AppendInt(b, j.created.Unix(), 10)
	b = append(b, `,"joberror":`...)
	if st == stFailed {
		b = appendJSONString(b, j.errMsg)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"jobeta":`...)
	if running {
		b = strconv.AppendInt(b, j.eta.Unix(), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"jobfailed":`...)
	b = strconv.AppendInt(b, int64(j.failed), 10)
	b = append(b, `,"jobid":`...)
	b = strconv.AppendInt(b, j.id, 10)
	b = append(b, `,"jobprogress":`...)
	b = strconv.AppendInt(b, int64(j.progressAt(now)), 10)
	b = append(b, `,"jobstart":`...)
	if running {
		b = append(b, '"')
		b = strconv.AppendInt(b, j.startAt.Unix(), 10)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"jobstateid":`...)
	b = strconv.AppendInt(b, int64(st), 10)
	b = append(b, `,"jobstatename":`...)
	b = appendJSONString(b, stateNames[st])
	b = append(b, `,"jobupdated":`...)
	b = strconv.AppendInt(b, j.updatedAt(now).Unix(), 10)
	// machine and location are integers (API §7 #17).
	b = append(b, `,"location":`...)
	b = strconv.AppendInt(b, j.loc.id, 10)
	b = append(b, `,"machine":`...)
	if j.mirroring {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, j.machine.ID, 10)
	}
	b = append(b, `,"mirror":`...)
	if j.mirroring {
		b = appendJSONString(b, j.loc.mirror)
	} else {
		b = append(b, `""`...)
	}
	b = append(b, `,"mirroring":`...)
	b = strconv.AppendBool(b, j.mirroring)
	b = append(b, `,"restart":`...)
	if j.restart {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	b = append(b, `,"target_imageversionid":`...)
	b = strconv.AppendInt(b, j.target.id, 10)
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes a string: plain
// printable ASCII as is, anything else through encoding/json itself, so
// that escaping (HTML characters, control characters, invalid UTF-8) is
// never done two ways.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (s *Server) installQueue(p params, now time.Time) (any, *apiError) {
	id, ae := p.int("jobid")
	if ae != nil {
		return nil, ae
	}
	j := s.installByID[id]
	if j == nil {
		return nil, notFound("install job not found: %d", id)
	}
	mirroring, present, ae := p.boolean("mirroring")
	if ae != nil {
		return nil, ae
	}
	if !present {
		return nil, bizErr("missing required parameter: mirroring")
	}
	if mirroring != j.mirroring {
		what := "machine"
		if j.mirroring {
			what = "mirror"
		}
		return nil, bizErr("job %d is a %s job: mirroring=%t does not match", j.id, what, mirroring)
	}
	switch st := j.stateAt(now); st {
	case stQueued, stRunning:
		// Settled decision: the text for queueing a job that is already
		// queued or running is "job already queued".
		return nil, bizErr("job already queued")
	case stCompleted:
		return nil, bizErr("job %d has already completed", j.id)
	case stSquashed:
		return nil, bizErr("job %d has been squashed", j.id)
	case stFailed:
		// Queueing a Failed install runs it again (our assumption: the API
		// has no other way to retry an install); not once a newer version
		// superseded it.
		if j.target != j.image.latest {
			return nil, bizErr("job %d has been superseded by image version %d", j.id, j.image.latest.id)
		}
		j.startAt, j.eta, j.endAt = time.Time{}, time.Time{}, time.Time{}
		j.failing, j.failMsg, j.errMsg = false, "", ""
		s.record(now, j, "retried", "")
	}
	j.held = false
	n := s.enqueue(j, now)
	if j.mirroring {
		return s.jobBody(j, now, "versionmirrorid", true), nil
	}
	b := s.jobBody(j, now, "machinejobid", true)
	b["installs_squashed"] = n // an integer count (API §7 #15)
	return b, nil
}

// counters are the v2 rollout counters.
type counters struct{ pending, failed, completed int }

func (c *counters) add(o counters) {
	c.pending += o.pending
	c.failed += o.failed
	c.completed += o.completed
}

func (c counters) put(m map[string]any) map[string]any {
	m["pending_machines"] = c.pending
	m["failed_machines"] = c.failed
	m["completed_machines"] = c.completed
	return m
}

// machineCounter classifies a fleet machine for the v2 counters (API §6.7)
// from its install jobs: completed when its installed version is the
// image's latest, failed when its newest install targets the latest version
// and ended Failed (a failed install is a failed machine, until it is
// queued again or a newer version supersedes it), pending otherwise (an
// install toward the latest version that has not finished, held, queued,
// running, or hanging in a never-ready region).
func (s *Server) machineCounter(m *machine, img *image, now time.Time) counters {
	k := mkey{m.ID, img.ID}
	if s.installed[k] == img.latest {
		return counters{completed: 1}
	}
	if lj := s.lastInstall[k]; lj != nil && lj.target == img.latest && lj.stateAt(now) == stFailed {
		return counters{failed: 1}
	}
	return counters{pending: 1}
}

func (s *Server) imageStatusV2(p params, now time.Time) (any, *apiError) {
	id, err := strconv.ParseInt(p.rt.v2Image, 10, 64)
	if err != nil {
		return nil, notFound("image not found: %s", p.rt.v2Image)
	}
	img := s.imageByID[id]
	if img == nil {
		return nil, notFound("image not found: %d", id)
	}
	detail, _, ae := p.boolean("detail")
	if ae != nil {
		return nil, ae
	}
	// The totals are the sum of the fleets, and each fleet the sum of its
	// regions: every fleet machine is in exactly one fleet and one region.
	// Only fleets with machines carrying the image are listed.
	var total counters
	byFleet := map[*fleet]*counters{}
	byRegion := map[*fleet]map[*location]*counters{}
	for _, m := range img.fleet {
		c := s.machineCounter(m, img, now)
		total.add(c)
		if byFleet[m.fleet] == nil {
			byFleet[m.fleet] = &counters{}
			byRegion[m.fleet] = map[*location]*counters{}
		}
		byFleet[m.fleet].add(c)
		if byRegion[m.fleet][m.loc] == nil {
			byRegion[m.fleet][m.loc] = &counters{}
		}
		byRegion[m.fleet][m.loc].add(c)
	}
	body := total.put(map[string]any{})
	if detail {
		fleets := map[string]any{}
		for f, fc := range byFleet {
			regions := map[string]any{}
			for loc, c := range byRegion[f] {
				regions[loc.regionUUID] = c.put(map[string]any{"name": loc.name})
			}
			fleets[f.ID] = fc.put(map[string]any{"regions": regions})
		}
		body["fleets"] = fleets
	}
	return body, nil
}

func (s *Server) imageOptions(p params) (any, *apiError) {
	body := map[string]any{"diffid": nil, "updateid": nil, "update_url": nil}
	if _, ok := p.raw("gameid"); ok {
		gid, ae := p.int("gameid")
		if ae != nil {
			return nil, ae
		}
		if gid != gameID {
			return nil, notFound("game not found: %d", gid)
		}
	}
	// The docs want gameid and imageid together; the simulator has one game
	// and accepts imageid alone.
	if _, ok := p.raw("imageid"); ok {
		img, ae := s.lookupImage(p)
		if ae != nil {
			return nil, ae
		}
		if img.openDiff != nil {
			body["diffid"] = img.openDiff.id
		}
		if img.activeUpdate != nil {
			body["updateid"] = img.activeUpdate.id
		}
		if img.UpdateURL != "" {
			body["update_url"] = img.UpdateURL
		}
	}
	body["games"] = []any{map[string]any{"gameid": gameID, "name": s.gameName}}
	imgs := []any{}
	for _, img := range s.images {
		imgs = append(imgs, s.imageObj(img))
	}
	body["images"] = imgs
	ms := []any{}
	for _, m := range s.machines {
		if m.Build {
			ms = append(ms, map[string]any{"machineid": m.ID, "name": m.Name})
		}
	}
	body["machines"] = ms
	return body, nil
}
