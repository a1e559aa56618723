package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"testing"
	"time"
)

func TestFullCycle(t *testing.T) {
	h := newHarness(t, Scenario{})

	// Update: the create answer is the job in Created, with null timestamps.
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", `"1.2.3"`, "url", "s3://bucket/game/1.2.3/"))
	uid := num(t, u["updateid"])
	if id, name := state(t, u); id != 1 || name != "Created" {
		t.Fatalf("create state %d %q", id, name)
	}
	for _, k := range []string{"jobstart", "jobeta", "joberror"} {
		if v, ok := u[k]; !ok || v != nil {
			t.Errorf("%s = %#v, want null", k, v)
		}
	}
	if num(t, u["jobcreated"]) != epoch.Unix() || num(t, u["jobprogress"]) != 0 || num(t, u["jobfailed"]) != 0 || u["success"] != true {
		t.Errorf("create body %v", u)
	}

	// The documented Created -> Pending -> Queued -> Running -> Completed.
	status := "/cfp/v1/imageupdate/" + toString(uid) + "/status"
	seen := []string{}
	var running map[string]any
	for i := 0; i < 60; i++ {
		b := h.ok(status, nil)
		if num(t, b["updateid"]) != uid {
			t.Fatalf("updateid %v", b["updateid"])
		}
		_, name := state(t, b)
		if len(seen) == 0 || seen[len(seen)-1] != name {
			seen = append(seen, name)
		}
		if name == "Running" && running == nil && num(t, b["jobprogress"]) > 0 {
			running = b
		}
		if name == "Completed" {
			if num(t, b["jobprogress"]) != 100 || b["joberror"] != nil {
				t.Errorf("completed body %v", b)
			}
			break
		}
		h.clock.Advance(250 * time.Millisecond) // finer than the 0.5 s Pending phase
	}
	if want := []string{"Created", "Pending", "Queued", "Running", "Completed"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("states %v, want %v", seen, want)
	}
	// jobstart is a string of unix seconds; jobeta an integer.
	js, ok := running["jobstart"].(string)
	if !ok {
		t.Fatalf("jobstart is %T (%#v), want a string", running["jobstart"], running["jobstart"])
	}
	if js != fmt.Sprint(epoch.Add(DefaultDurations.Startup).Unix()) {
		t.Errorf("jobstart %q", js)
	}
	if eta := num(t, running["jobeta"]); eta != epoch.Add(DefaultDurations.Startup+DefaultDurations.Update).Unix() {
		t.Errorf("jobeta %d", eta)
	}

	// Diff: the maps list what the build changed; diff_info adds the objects.
	d := h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
	did := num(t, d["diffid"])
	opt := h.ok("/cfp/v1/image/options", q("imageid", imgA))
	if num(t, opt["diffid"]) != did || opt["updateid"] != nil {
		t.Fatalf("options lock %v", opt)
	}
	db := h.waitTerminal("/cfp/v1/imagediff/status", q("diffid", did, "diff_info", 1), 60)
	changed := 0
	for _, k := range []string{"added", "modified", "removed"} {
		m, ok := db[k].(map[string]any)
		if !ok {
			t.Fatalf("%s is %#v", k, db[k])
		}
		for _, f := range m {
			num(t, f.(map[string]any)["size"])
		}
		changed += len(m)
	}
	if changed == 0 {
		t.Fatal("a derived build changed nothing")
	}
	if num(t, db["game"].(map[string]any)["gameid"]) != gameID || num(t, db["image"].(map[string]any)["imageid"]) != imgA ||
		num(t, db["machine"].(map[string]any)["machineid"]) != buildbox {
		t.Errorf("diff_info objects %v %v %v", db["game"], db["image"], db["machine"])
	}
	if plain := h.ok("/cfp/v1/imagediff/"+toString(did)+"/status", nil); plain["game"] != nil || plain["added"] == nil {
		t.Errorf("without diff_info: %v", plain)
	}

	// Version: consumes the diff (lock released), installs held in Pending.
	before := h.srv.LatestVersion(imgA)
	vid := h.version(did, "game_build", `"1.2.3"`)
	if got := h.srv.LatestVersion(imgA); got != vid || vid <= before {
		t.Fatalf("latest %d, version %d, before %d", got, vid, before)
	}
	if h.srv.GameBuild(imgA) != "1.2.3" {
		t.Errorf("game build %q", h.srv.GameBuild(imgA))
	}
	if opt := h.ok("/cfp/v1/image/options", q("imageid", imgA)); opt["diffid"] != nil {
		t.Errorf("lock not released: %v", opt)
	}
	h.clock.Advance(time.Minute)
	ins := h.installsFor(vid)
	var mirrors, machines = map[int64]map[string]any{}, map[int64]map[string]any{}
	for _, in := range ins {
		if id, name := state(t, in); id != 2 || name != "Pending" {
			t.Fatalf("install not held in Pending: %v", in)
		}
		if in["mirroring"] == true {
			mirrors[num(t, in["location"])] = in
		} else {
			machines[num(t, in["machine"])] = in
		}
		if num(t, in["restart"]) != 1 || in["install_at"] != nil {
			t.Errorf("install fields %v", in)
		}
	}
	if len(mirrors) != 2 || len(machines) != 3 || machines[eu1] == nil || machines[eu2] == nil || machines[us1] == nil {
		t.Fatalf("want 2 mirror jobs and 3 machine jobs, got %v / %v", mirrors, machines)
	}
	if v2 := h.ok(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, imgA), nil); num(t, v2["pending_machines"]) != 3 || num(t, v2["completed_machines"]) != 0 {
		t.Fatalf("v2 before installs %v", v2)
	}

	// Queue eu-1 before its mirror: it waits in Queued.
	eu1Job := num(t, machines[eu1]["jobid"])
	qb := h.ok("/cfp/v1/imageinstall/"+toString(eu1Job)+"/queue", q("mirroring", "false"))
	if num(t, qb["machinejobid"]) != eu1Job || num(t, qb["installs_squashed"]) != 0 || qb["success"] != true {
		t.Fatalf("queue answer %v", qb)
	}
	h.clock.Advance(5 * time.Minute)
	if info, _ := h.srv.Job(KindInstall, eu1Job); info.StateName != "Queued" {
		t.Fatalf("eu-1 install ran before its mirror: %+v", info)
	}
	euLoc := num(t, machines[eu1]["location"])
	euMirror := num(t, mirrors[euLoc]["jobid"])
	mb := h.ok("/cfp/v1/imageinstall/status", nil)
	_ = mb
	mq := h.ok("/cfp/v1/imageinstall/"+toString(euMirror)+"/queue", q("mirroring", "true"))
	if num(t, mq["versionmirrorid"]) != euMirror {
		t.Fatalf("mirror queue answer %v", mq)
	}
	h.clock.Advance(time.Minute)
	if info, _ := h.srv.Job(KindInstall, eu1Job); info.StateName != "Completed" {
		t.Fatalf("eu-1 install: %+v", info)
	}
	mInfo, _ := h.srv.Job(KindMirror, euMirror)
	eInfo, _ := h.srv.Job(KindInstall, eu1Job)
	if eInfo.Started.Before(mInfo.Ended) {
		t.Errorf("install started %v before mirror ended %v", eInfo.Started, mInfo.Ended)
	}
	if h.srv.InstalledVersion(eu1, imgA) != vid {
		t.Errorf("eu-1 not on the new version")
	}
	v2 := h.ok(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, imgA), q("detail", "true"))
	if num(t, v2["completed_machines"]) != 1 || num(t, v2["pending_machines"]) != 2 || num(t, v2["failed_machines"]) != 0 {
		t.Fatalf("v2 after eu-1 %v", v2)
	}
	fleets := v2["fleets"].(map[string]any)
	if len(fleets) != 1 {
		t.Fatalf("fleets %v", fleets)
	}
	for _, f := range fleets {
		regions := f.(map[string]any)["regions"].(map[string]any)
		names := map[string]int64{}
		for id, r := range regions {
			if len(id) != 36 {
				t.Errorf("region id %q is not a UUID", id)
			}
			rm := r.(map[string]any)
			names[rm["name"].(string)] = num(t, rm["completed_machines"])
		}
		if !reflect.DeepEqual(names, map[string]int64{"eu": 1, "us": 0}) {
			t.Errorf("regions %v", names)
		}
	}

	// Queue the rest; everything completes and leaves the list.
	for _, in := range h.installsFor(vid) {
		h.ok("/cfp/v1/imageinstall/"+toString(in["jobid"])+"/queue", q("mirroring", fmt.Sprint(in["mirroring"])))
	}
	h.clock.Advance(5 * time.Minute)
	if left := h.installsFor(vid); len(left) != 0 {
		t.Fatalf("installs left: %v", left)
	}
	if v2 := h.ok(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, imgA), nil); num(t, v2["pending_machines"]) != 0 || num(t, v2["completed_machines"]) != 3 {
		t.Fatalf("v2 at the end %v", v2)
	}

	// The timeline is ordered in time and names every kind.
	tl := h.srv.Timeline()
	kinds := map[Kind]bool{}
	for i, e := range tl {
		kinds[e.Kind] = true
		if i > 0 && e.Time.Before(tl[i-1].Time) {
			t.Fatalf("timeline out of order at %d: %+v after %+v", i, e, tl[i-1])
		}
	}
	for _, k := range []Kind{KindUpdate, KindDiff, KindVersion, KindMirror, KindInstall} {
		if !kinds[k] {
			t.Errorf("no %s in the timeline", k)
		}
	}
}

func TestSpeedTenCycleIsShort(t *testing.T) {
	h := newHarness(t, Scenario{Speed: 10})
	did := h.updateAndDiff(imgA, "9.9.9")
	vid := h.version(did, "install_at", "NOW()")
	for i := 0; i < 30 && len(h.installsFor(vid)) > 0; i++ {
		h.clock.Advance(time.Second)
	}
	if n := len(h.installsFor(vid)); n != 0 {
		t.Fatalf("%d installs left", n)
	}
	if took := h.clock.Now().Sub(epoch); took > 15*time.Second {
		t.Fatalf("a full cycle at speed 10 took %v of simulated time", took)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t, Scenario{})
	path := "/cfp/v1/imageinstall/status"
	query := q("accountserviceid", testASID)
	wrong, _ := http.NewRequest("GET", "http://x", nil)
	wrong.SetBasicAuth(accessKey, "nope")
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"missing", "", 401},
		{"wrong secret", wrong.Header.Get("Authorization"), 403},
		{"garbage", "Basic !!!", 403},
		{"sigv4 is not verified", "AWS4-HMAC-SHA256 Credential=" + accessKey + "/20240603/eu-west-1/cf/aws4_request, SignedHeaders=host, Signature=00", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.raw(path, query, tt.auth)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			want := map[string]any{"success": false, "error": true, "error_code": json.Number("1"), "error_message": "Forbidden", "messages": []any{}, "_debug": []any{}}
			if !reflect.DeepEqual(r.body, want) {
				t.Fatalf("body %v", r.body)
			}
		})
	}
	if msg := h.fail(path, q("accountserviceid", 999), 403); msg != "Forbidden" {
		t.Errorf("unknown ASID: %q", msg)
	}
	if msg := h.fail(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", 999, imgA), nil, 403); msg != "Forbidden" {
		t.Errorf("unknown v2 ASID: %q", msg)
	}
	h.fail(path, q("accountserviceid", ""), 200)
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, Scenario{})
	for _, p := range []string{
		"/cfp/v1/imageupdate/1/status",
		"/cfp/v1/imagediff/1/status",
		"/cfp/v1/imageversion/1/status",
		"/cfp/v1/imageinstall/1/queue",
		"/cfp/v1/nothing/here",
		"/cfp/v1/imageupdate/1/retry", // legacy endpoint off by default
	} {
		h.fail(p, nil, 404)
	}
	h.fail("/cfp/v1/imageupdate/create", q("imageid", 1, "machineid", buildbox, "desc", "x", "url", "s3://b/"), 404)
	h.fail(fmt.Sprintf("/cfp/v2/project/%d/image/1/status", testASID), nil, 404)
}

func TestLocks(t *testing.T) {
	for _, bizStatus := range []int{0, 400} {
		t.Run(fmt.Sprint(bizStatus), func(t *testing.T) {
			want := 200
			if bizStatus == 400 {
				want = 400
			}
			h := newHarness(t, Scenario{BusinessErrorStatus: bizStatus})
			u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "1", "url", "s3://b/1/"))
			uid := num(t, u["updateid"])
			byUpdate := fmt.Sprintf("image locked by updateid: %d", uid)
			if msg := h.fail("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "2", "url", "s3://b/2/"), want); msg != byUpdate {
				t.Errorf("second update: %q", msg)
			}
			if msg := h.fail("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox), want); msg != byUpdate {
				t.Errorf("diff during update: %q", msg)
			}
			if opt := h.ok("/cfp/v1/image/options", q("imageid", imgA)); num(t, opt["updateid"]) != uid {
				t.Errorf("options %v", opt)
			}
			// Locks are per image: the other image on the same machine is free.
			h.ok("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "1"))
			h.waitTerminal("/cfp/v1/imageupdate/status", q("updateid", uid), 60)

			d := h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
			did := num(t, d["diffid"])
			byDiff := fmt.Sprintf("image locked by diffid: %d", did)
			if msg := h.fail("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "3", "url", "s3://b/3/"), want); msg != byDiff {
				t.Errorf("update during diff: %q", msg)
			}
			if msg := h.fail("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", eu1), want); msg != byDiff {
				t.Errorf("second diff: %q", msg)
			}
			h.clock.Advance(time.Minute)
			// Still locked once Completed: only reject or a version releases it.
			if msg := h.fail("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox), want); msg != byDiff {
				t.Errorf("diff after completion: %q", msg)
			}
			if l := h.srv.Locks()[imgA]; l.DiffID != did {
				t.Errorf("Locks %v", l)
			}
			// reject with diffid both in the path and the query.
			h.ok("/cfp/v1/imagediff/"+toString(did)+"/reject", q("diffid", did, "reinstall", 0))
			h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
		})
	}
}

func TestUpdateValidation(t *testing.T) {
	h := newHarness(t, Scenario{})
	// game-a has no default update_url.
	if msg := h.fail("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "x"), 200); !contains(msg, "url") {
		t.Errorf("missing url: %q", msg)
	}
	h.fail("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "url", "s3://b/"), 200)
	h.fail("/cfp/v1/imageupdate/create", q("imageid", "abc", "machineid", buildbox, "desc", "x", "url", "s3://b/"), 200)
	// game-b has one.
	h.ok("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "x"))
}

func TestDiffRetryAndReject(t *testing.T) {
	h := newHarness(t, Scenario{Failures: []Failure{{Kind: KindDiff, Times: 1, Error: "checksum mismatch"}}})
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "x", "url", "s3://b/x/"))
	h.waitTerminal("/cfp/v1/imageupdate/"+toString(u["updateid"])+"/status", nil, 60)
	d := h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
	did := num(t, d["diffid"])
	h.clock.Advance(2 * time.Second) // Running (startup 1.5s, diff 5s)
	for _, p := range []string{"/retry", "/reject"} {
		if msg := h.fail("/cfp/v1/imagediff/"+toString(did)+p, q("reinstall", 0), 200); !contains(msg, "only a completed or failed diff") {
			t.Errorf("%s while running: %q", p, msg)
		}
	}
	b := h.waitTerminal("/cfp/v1/imagediff/"+toString(did)+"/status", nil, 60)
	if id, _ := state(t, b); id != 6 || b["joberror"] != "checksum mismatch" || num(t, b["jobfailed"]) != 1 || b["success"] != true {
		t.Fatalf("failed diff %v", b)
	}
	// Retry reuses the diffid, starts from Created, keeps the failure count;
	// its answer has no success field.
	r := h.ok("/cfp/v1/imagediff/"+toString(did)+"/retry", nil)
	if num(t, r["diffid"]) != did || r["jobstatename"] != "Created" || num(t, r["jobfailed"]) != 1 || r["joberror"] != nil {
		t.Fatalf("retry answer %v", r)
	}
	if _, ok := r["success"]; ok {
		t.Errorf("retry answer has success: %v", r)
	}
	b = h.waitTerminal("/cfp/v1/imagediff/"+toString(did)+"/status", nil, 60)
	if id, _ := state(t, b); id != 5 {
		t.Fatalf("retried diff %v", b)
	}
	// create?diffid= is a retry too.
	r = h.ok("/cfp/v1/imagediff/create", q("diffid", did))
	if num(t, r["diffid"]) != did || r["success"] != true {
		t.Fatalf("create?diffid answer %v", r)
	}
	h.waitTerminal("/cfp/v1/imagediff/"+toString(did)+"/status", nil, 60)

	// Reject with reinstall: the build box goes back to the latest version.
	if reflect.DeepEqual(h.srv.MachineFiles(buildbox, imgA), h.srv.MachineFiles(eu1, imgA)) {
		t.Fatal("build box files equal the latest version before reject")
	}
	h.fail("/cfp/v1/imagediff/"+toString(did)+"/reject", nil, 200) // reinstall is required
	rj := h.ok("/cfp/v1/imagediff/"+toString(did)+"/reject", q("reinstall", "true"))
	if _, ok := rj["uninstalljobid"]; !ok || rj["jobstatename"] != "Created" {
		t.Fatalf("reinstall answer %v", rj)
	}
	h.clock.Advance(time.Minute)
	if got, want := h.srv.MachineFiles(buildbox, imgA), h.srv.MachineFiles(eu1, imgA); !reflect.DeepEqual(got, want) {
		t.Errorf("after reinstall: %v, want %v", got, want)
	}
	if msg := h.fail("/cfp/v1/imagediff/"+toString(did)+"/reject", q("reinstall", 0), 200); !contains(msg, "rejected") {
		t.Errorf("second reject: %q", msg)
	}
	if msg := h.fail("/cfp/v1/imagediff/"+toString(did)+"/retry", nil, 200); !contains(msg, "rejected") {
		t.Errorf("retry after reject: %q", msg)
	}
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0), 200); !contains(msg, "rejected") {
		t.Errorf("version from rejected diff: %q", msg)
	}

	// reinstall=0 answers only the diffid.
	did2 := h.updateAndDiff(imgA, "y")
	rj = h.ok("/cfp/v1/imagediff/"+toString(did2)+"/reject", q("reinstall", 0))
	if !reflect.DeepEqual(rj, map[string]any{"diffid": json.Number(toString(did2))}) {
		t.Errorf("reject answer %v", rj)
	}
}

func TestVersionRules(t *testing.T) {
	noChange := Build{Desc: "same", Added: nil, Modified: nil, Removed: nil}
	h := newHarness(t, Scenario{Allocations: []string{"game-a"}, Builds: []Build{noChange}})

	// Rule 1: the diff must be Completed.
	d := h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
	did := num(t, d["diffid"])
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0), 200); !contains(msg, "not completed") {
		t.Errorf("running diff: %q", msg)
	}
	h.fail("/cfp/v1/imageversion/create", q("diffid", 1, "restart", 0), 404)
	h.clock.Advance(time.Minute)

	// Rule 3 comes after rule 2: allocations first. The diff of an untouched
	// machine has no changes.
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0), 200); msg != "image has active allocations" {
		t.Errorf("allocations: %q", msg)
	}
	h.srv.SetAllocations(imgA, false)
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0, "full", 0), 200); !contains(msg, "full=1 is required") {
		t.Errorf("no changes without full: %q", msg)
	}
	// Rule 4: the initial version is full.
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0, "full", 1), 200); !contains(msg, "already full") {
		t.Errorf("no changes on a full version: %q", msg)
	}
	h.ok("/cfp/v1/imagediff/"+toString(did)+"/reject", q("reinstall", 0))

	// A differential version, then a no-change full one is accepted; force
	// overrides allocations.
	h.srv.SetAllocations(imgA, true)
	did = h.updateAndDiff(imgA, "1.0")
	v1 := h.version(did, "full", 0, "force", 1)
	if msg := h.fail("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0, "force", 1), 200); !contains(msg, "already been used") {
		t.Errorf("consumed diff: %q", msg)
	}
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "same", "url", "s3://b/same/"))
	h.waitTerminal("/cfp/v1/imageupdate/"+toString(u["updateid"])+"/status", nil, 60)
	d = h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
	db := h.waitTerminal("/cfp/v1/imagediff/"+toString(d["diffid"])+"/status", nil, 60)
	for _, k := range []string{"added", "modified", "removed"} {
		if m := db[k].(map[string]any); len(m) != 0 {
			t.Fatalf("%s = %v, want {}", k, m)
		}
	}
	v2 := h.version(num(t, d["diffid"]), "full", "true", "force", "1")
	if v2 <= v1 || h.srv.LatestVersion(imgA) != v2 {
		t.Errorf("versions %d %d latest %d", v1, v2, h.srv.LatestVersion(imgA))
	}
	h.fail("/cfp/v1/imageversion/create", q("diffid", did, "install_at", "tomorrow"), 200)
}

func TestSquashAndQueueErrors(t *testing.T) {
	h := newHarness(t, Scenario{})
	v1 := h.version(h.updateAndDiff(imgA, "1"))
	v2 := h.version(h.updateAndDiff(imgA, "2"))
	job := func(v, machine int64) map[string]any {
		for _, in := range h.installsFor(v) {
			if in["mirroring"] == false && num(t, in["machine"]) == machine {
				return in
			}
		}
		t.Fatalf("no install of %d on %d", v, machine)
		return nil
	}
	old, cur := num(t, job(v1, eu1)["jobid"]), num(t, job(v2, eu1)["jobid"])
	if msg := h.fail("/cfp/v1/imageinstall/"+toString(cur)+"/queue", q("mirroring", "true"), 200); !contains(msg, "does not match") {
		t.Errorf("wrong mirroring flag: %q", msg)
	}
	h.fail("/cfp/v1/imageinstall/"+toString(cur)+"/queue", nil, 200) // mirroring is required
	qb := h.ok("/cfp/v1/imageinstall/"+toString(cur)+"/queue", q("mirroring", 0))
	if num(t, qb["installs_squashed"]) != 1 || qb["jobstatename"] != "Queued" {
		t.Fatalf("queue answer %v", qb)
	}
	if info, _ := h.srv.Job(KindInstall, old); info.StateName != "Squashed" {
		t.Errorf("older install %+v", info)
	}
	for _, in := range h.installs() {
		if num(t, in["jobid"]) == old {
			t.Errorf("squashed job still listed")
		}
	}
	if msg := h.fail("/cfp/v1/imageinstall/"+toString(cur)+"/queue", q("mirroring", "false"), 200); msg != "job already queued" {
		t.Errorf("queue twice: %q", msg)
	}
	if msg := h.fail("/cfp/v1/imageinstall/"+toString(old)+"/queue", q("mirroring", "false"), 200); !contains(msg, "squashed") {
		t.Errorf("queue squashed: %q", msg)
	}
	// The query form of the id works too.
	h.ok("/cfp/v1/imageinstall/queue", q("jobid", job(v2, eu2)["jobid"], "mirroring", "false"))
}

func TestFailedInstallStaysListed(t *testing.T) {
	h := newHarness(t, Scenario{Failures: []Failure{{Kind: KindInstall, Machine: "eu-2", Times: 1, Error: "disk full"}}})
	vid := h.version(h.updateAndDiff(imgA, "1"), "install_at", "now()")
	h.clock.Advance(2 * time.Minute)
	left := h.installsFor(vid)
	if len(left) != 1 {
		t.Fatalf("listed %v", left)
	}
	f := left[0]
	if id, _ := state(t, f); id != 6 || f["joberror"] != "disk full" || num(t, f["jobfailed"]) != 1 || num(t, f["machine"]) != eu2 {
		t.Fatalf("failed install %v", f)
	}
	if _, ok := f["jobstart"].(string); !ok {
		t.Errorf("jobstart %#v", f["jobstart"])
	}
	path := fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, imgA)
	if v2 := h.ok(path, nil); num(t, v2["failed_machines"]) != 1 || num(t, v2["completed_machines"]) != 2 {
		t.Fatalf("v2 %v", v2)
	}
	// Still listed later; queueing it again runs it (fails once only).
	h.clock.Advance(time.Hour)
	if len(h.installsFor(vid)) != 1 {
		t.Fatal("failed install left the list by itself")
	}
	h.ok("/cfp/v1/imageinstall/"+toString(f["jobid"])+"/queue", q("mirroring", "false"))
	h.clock.Advance(time.Minute)
	if len(h.installsFor(vid)) != 0 {
		t.Fatal("retried install still listed")
	}
	if v2 := h.ok(path, nil); num(t, v2["failed_machines"]) != 0 || num(t, v2["completed_machines"]) != 3 {
		t.Fatalf("v2 after retry %v", v2)
	}
}

func TestFailedInstallSupersededByNewerVersion(t *testing.T) {
	h := newHarness(t, Scenario{Failures: []Failure{{Kind: KindInstall, Machine: "us-1", Error: "disk full"}}})
	v1 := h.version(h.updateAndDiff(imgA, "1"), "install_at", "NOW()")
	h.clock.Advance(2 * time.Minute)
	if len(h.installsFor(v1)) != 1 {
		t.Fatal("failed install not listed")
	}
	h.version(h.updateAndDiff(imgA, "2"), "install_at", "NOW()")
	if n := len(h.installsFor(v1)); n != 0 {
		t.Fatalf("superseded failed install still listed (%d)", n)
	}
}

func TestOutstandingDiffFailsInstalls(t *testing.T) {
	h := newHarness(t, Scenario{})
	did := h.updateAndDiff(imgA, "1")
	v := h.ok("/cfp/v1/imageversion/create", q("diffid", did, "restart", 0, "install_at", "NOW()"))
	// A new update + diff on the image while the version packages.
	h.clock.Advance(2 * time.Second)
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "2", "url", "s3://b/2/"))
	h.waitTerminal("/cfp/v1/imageupdate/"+toString(u["updateid"])+"/status", nil, 60)
	d2 := num(t, h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))["diffid"])
	h.clock.Advance(2 * time.Minute)
	left := h.installsFor(num(t, v["imageversionid"]))
	if len(left) != 3 {
		t.Fatalf("want 3 failed machine installs, got %v", left)
	}
	for _, in := range left {
		if in["joberror"] != fmt.Sprintf("image locked by diffid: %d", d2) {
			t.Errorf("install %v", in)
		}
	}
}

func TestStatusReadsArePure(t *testing.T) {
	script := func(poll bool) []Event {
		h := newHarness(t, Scenario{Jitter: 0.3, Seed: 7})
		u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", "1", "url", "s3://b/1/"))
		for i := 0; i < 40; i++ {
			if poll {
				h.ok("/cfp/v1/imageupdate/"+toString(u["updateid"])+"/status", nil)
				h.ok("/cfp/v1/imageinstall/status", nil)
				h.ok("/cfp/v1/image/options", q("imageid", imgA))
			}
			h.clock.Advance(time.Second)
		}
		return h.srv.Timeline()
	}
	quiet, busy := script(false), script(true)
	if !reflect.DeepEqual(quiet, busy) {
		t.Fatalf("polling changed the timeline:\n%v\n%v", quiet, busy)
	}
}

func TestFaults(t *testing.T) {
	t.Run("rate limit", func(t *testing.T) {
		h := newHarness(t, Scenario{Faults: Faults{RateLimit: 1, RetryAfter: 7}})
		r := h.get("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "x"))
		if r.status != 429 || r.header.Get("Retry-After") != "7" {
			t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		checkEnvelope(t, r.body)
		if len(h.srv.Jobs()) != 0 {
			t.Fatal("a 429 did work")
		}
	})
	t.Run("server error", func(t *testing.T) {
		h := newHarness(t, Scenario{Faults: Faults{ServerError: 1, ServerErrorStatus: 503}})
		if r := h.get("/cfp/v1/imageinstall/status", nil); r.status != 503 {
			t.Fatalf("status %d", r.status)
		}
		reqs := h.srv.Requests()
		if len(reqs) != 1 || reqs[0].Fault != FaultServerError || reqs[0].Status != 503 {
			t.Fatalf("log %+v", reqs)
		}
	})
	t.Run("targeted drop", func(t *testing.T) {
		h := newHarness(t, Scenario{Faults: Faults{Targeted: []TargetedFault{{Endpoint: EPDiffCreate, Count: 1}}}})
		r := h.get("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
		if r.err == nil {
			t.Fatalf("answer not dropped: %v", r.body)
		}
		// The work was done: the image is locked by the diff nobody heard of.
		l := h.srv.Locks()[imgA]
		if l.DiffID == 0 {
			t.Fatal("dropped create did no work")
		}
		if msg := h.fail("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox), 200); msg != fmt.Sprintf("image locked by diffid: %d", l.DiffID) {
			t.Errorf("second create: %q", msg)
		}
		reqs := h.srv.Requests()
		if len(reqs) != 2 || !reqs[0].Dropped || !reqs[0].Mutating || reqs[1].Dropped || reqs[0].Endpoint != EPDiffCreate {
			t.Fatalf("log %+v", reqs)
		}
		if n := len(h.srv.Jobs()); n != 1 {
			t.Fatalf("%d jobs, want exactly one", n)
		}
	})
	t.Run("targeted skip and count", func(t *testing.T) {
		h := newHarness(t, Scenario{Faults: Faults{Targeted: []TargetedFault{{Endpoint: EPInstallStatus, Fault: FaultRateLimit, Skip: 1, Count: 2}}}})
		var got []int
		for i := 0; i < 4; i++ {
			got = append(got, h.get("/cfp/v1/imageinstall/status", nil).status)
		}
		if !reflect.DeepEqual(got, []int{200, 429, 429, 200}) {
			t.Fatalf("statuses %v", got)
		}
	})
}

func TestDeterministicForSeed(t *testing.T) {
	run := func(seed int64) ([]Event, []string) {
		h := newHarness(t, Scenario{Seed: seed, Jitter: 0.5, Faults: Faults{RateLimit: 0.3, Drop: 0.2}})
		var outcomes []string
		for i := 0; i < 30; i++ {
			r := h.get("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", fmt.Sprint(i)))
			outcomes = append(outcomes, fmt.Sprint(r.status, r.err != nil))
			h.clock.Advance(7 * time.Second)
		}
		tl := h.srv.Timeline()
		return tl, outcomes
	}
	tl1, o1 := run(42)
	tl2, o2 := run(42)
	if !reflect.DeepEqual(tl1, tl2) || !reflect.DeepEqual(o1, o2) {
		t.Fatal("same seed, different runs")
	}
	_, o3 := run(43)
	if reflect.DeepEqual(o1, o3) {
		t.Fatal("the seed does not change the faults")
	}
}

func TestTimelineExact(t *testing.T) {
	h := newHarness(t, Scenario{})
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "1"))
	// Jump far ahead in one step: the times still come from the job's own
	// timestamps, not from when the simulator looked.
	h.clock.Advance(time.Hour)
	var got []string
	for _, e := range h.srv.Timeline() {
		if e.JobID == num(t, u["updateid"]) {
			got = append(got, fmt.Sprintf("%s@%v", e.Event, e.Time.Sub(epoch)))
		}
	}
	// DefaultDurations: startup 1.5s (Queued for its last third), update 8s.
	want := []string{"created@0s", "queued@1s", "started@1.5s", "completed@9.5s"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("timeline %v, want %v", got, want)
	}
}

func TestOddValues(t *testing.T) {
	h := newHarness(t, Scenario{EmptyMapsAsArray: true, Builds: []Build{{Desc: "none"}}})
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgA, "machineid", buildbox, "desc", `"none"`, "url", "s3://b/"))
	// updateid in the query instead of the path.
	h.waitTerminal("/cfp/v1/imageupdate/status", q("updateid", u["updateid"]), 60)
	d := h.ok("/cfp/v1/imagediff/create", q("imageid", imgA, "machineid", buildbox))
	// The path id wins over a bogus query id.
	b := h.waitTerminal("/cfp/v1/imagediff/"+toString(d["diffid"])+"/status", q("diffid", 1), 60)
	if a, ok := b["added"].([]any); !ok || len(a) != 0 {
		t.Errorf("added %#v, want []", b["added"])
	}
	h.fail("/cfp/v1/imagediff/"+toString(d["diffid"])+"/reject", q("reinstall", "maybe"), 200)
	if r := h.get("/cfp/v1/imageinstall/status", nil); r.status != 200 {
		t.Fatal(r.status)
	}
	// Other methods are refused.
	req, _ := http.NewRequest(http.MethodPost, h.base+"/cfp/v1/imageinstall/status?accountserviceid=1234", nil)
	req.SetBasicAuth(accessKey, secretKey)
	res, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

func TestSuccessFalseForFailedJobs(t *testing.T) {
	h := newHarness(t, Scenario{FailedJobSuccessFalse: true, Failures: []Failure{{Kind: KindUpdate}}})
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "1"))
	h.clock.Advance(time.Minute)
	r := h.get("/cfp/v1/imageupdate/"+toString(u["updateid"])+"/status", nil)
	if r.status != 200 || r.body["success"] != false || r.body["jobstatename"] != "Failed" || r.body["error"] != nil {
		t.Fatalf("%d %v", r.status, r.body)
	}
}

func TestUpdateRetryFlag(t *testing.T) {
	h := newHarness(t, Scenario{UpdateRetry: true, Failures: []Failure{{Kind: KindUpdate, Times: 1}}})
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", imgB, "machineid", buildbox, "desc", "1"))
	id := toString(u["updateid"])
	if msg := h.fail("/cfp/v1/imageupdate/"+id+"/retry", nil, 200); !contains(msg, "only a failed update") {
		t.Errorf("retry while running: %q", msg)
	}
	h.clock.Advance(time.Minute)
	r := h.ok("/cfp/v1/imageupdate/"+id+"/retry", nil)
	if toString(r["updateid"]) != id || r["jobstatename"] != "Created" {
		t.Fatalf("retry %v", r)
	}
	b := h.waitTerminal("/cfp/v1/imageupdate/"+id+"/status", nil, 60)
	if b["jobstatename"] != "Completed" || num(t, b["jobfailed"]) != 1 {
		t.Fatalf("after retry %v", b)
	}
}

func TestJobsSnapshotSorted(t *testing.T) {
	h := newHarness(t, Scenario{})
	h.version(h.updateAndDiff(imgA, "1"))
	jobs := h.srv.Jobs()
	if !sort.SliceIsSorted(jobs, func(a, b int) bool {
		if jobs[a].Kind != jobs[b].Kind {
			return jobs[a].Kind < jobs[b].Kind
		}
		return jobs[a].ID < jobs[b].ID
	}) {
		t.Fatal("not sorted")
	}
	held := 0
	for _, j := range jobs {
		if j.Held {
			held++
		}
	}
	if held != 5 {
		t.Fatalf("%d held installs, want 5", held)
	}
}
