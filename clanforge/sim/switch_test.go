package sim

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The cut-over tests: fleets, the v2 counters per fleet and region, the
// profile switch, Bearer auth and the scenario keys for cut-over trouble.
// Like the other tests they speak plain HTTP, as a client written from the
// API reference would.

const (
	fleetEU = "c0a3e2a1-6955-415c-b1d4-af9199833e6a"
	fleetUS = "5b0c8d7e-2f4a-4c1e-9d3b-7a6e5f4c3b2a"
	profA   = 101
	profB   = 102

	feu1, feu2, feu3, feu4, fuk1 = 813001, 813002, 813003, 813004, 813011
	fus1, fus2                   = 813101, 813102
)

// fleetInventory has two fleets: prod-eu (four machines in "eu", one in
// "uk") and prod-us (two in "us", one of them without game-b), and the
// build box of the other tests.
func fleetInventory() Inventory {
	both := []int64{imgA, imgB}
	return Inventory{
		ASID: testASID,
		Images: []Image{
			{Name: "game-a", ID: imgA, Profile: profA},
			{Name: "game-b", ID: imgB, Profile: profB, UpdateURL: "s3://bucket/game-b/"},
		},
		Fleets: []Fleet{{Name: "prod-eu", ID: fleetEU}, {Name: "prod-us", ID: fleetUS}},
		Machines: []Machine{
			{Name: "buildbox-1", ID: buildbox, Build: true, Images: both},
			{Name: "eu-1", ID: feu1, Region: "eu", Fleet: fleetEU, Images: both},
			{Name: "eu-2", ID: feu2, Region: "eu", Fleet: fleetEU, Images: both},
			{Name: "eu-3", ID: feu3, Region: "eu", Fleet: fleetEU, Images: both},
			{Name: "eu-4", ID: feu4, Region: "eu", Fleet: fleetEU, Images: both},
			{Name: "uk-1", ID: fuk1, Region: "uk", Fleet: fleetEU, Images: both},
			{Name: "us-1", ID: fus1, Region: "us", Fleet: fleetUS, Images: both},
			{Name: "us-2", ID: fus2, Region: "us", Fleet: fleetUS, Images: []int64{imgA}},
		},
	}
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func switchPath(fleetID string) string { return "/cfp/v2/fleet/" + fleetID + "/switchprofile" }

// patch sends the switch PATCH as documented (application/json, Basic).
func (h *harness) patch(fleetID, body string) resp {
	h.t.Helper()
	return h.call(http.MethodPatch, switchPath(fleetID), body, "application/json", basicAuth(accessKey, secretKey))
}

// switchStatus reads the switch status, which must be a status object.
func (h *harness) switchStatus(fleetID string) map[string]any {
	h.t.Helper()
	r := h.call(http.MethodGet, switchPath(fleetID), "", "", basicAuth(accessKey, secretKey))
	if r.err != nil || r.status != 200 || r.body["error"] == true {
		h.t.Fatalf("GET switchprofile: %v %d %v", r.err, r.status, r.body)
	}
	return r.body
}

// swState is a status answer in short: "state pending/processed".
func swState(t *testing.T, b map[string]any) string {
	t.Helper()
	return fmt.Sprintf("%s %d/%d", b["State"], num(t, b["ServersPending"]), num(t, b["ServersProcessed"]))
}

// TestSwitchLifeCycle follows switches through their states on the fake
// clock at speed 10 (switch_start and switch_batch 2s => 0.2s each), by
// polling every 50ms and keeping each distinct status.
func TestSwitchLifeCycle(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  []string      // distinct statuses, in order
		ends  time.Duration // when it reads complete, from the PATCH
		dline string        // Deadline, "" for none
	}{
		{"batches of 2", `{"ProfileID":102,"MaxMachines":2}`,
			[]string{"pending 5/0", "processing 5/0", "processing 3/2", "processing 1/4", "complete 0/5"}, 800 * time.Millisecond, ""},
		{"all at once", `{"ProfileID":102}`,
			[]string{"pending 5/0", "processing 5/0", "complete 0/5"}, 400 * time.Millisecond, ""},
		{"a batch larger than the fleet", `{"ProfileID":102,"MaxMachines":50}`,
			[]string{"pending 5/0", "processing 5/0", "complete 0/5"}, 400 * time.Millisecond, ""},
		{"timeout forces the rest", `{"ProfileID":102,"MaxMachines":1,"Timeout":"500ms"}`,
			[]string{"pending 5/0", "processing 5/0", "processing 4/1", "complete 0/5"}, 500 * time.Millisecond, epoch.Add(500 * time.Millisecond).UTC().Format(time.RFC3339)},
		{"timeout while pending", `{"ProfileID":102,"MaxMachines":1,"Timeout":"100ms"}`,
			[]string{"pending 5/0", "complete 0/5"}, 100 * time.Millisecond, epoch.UTC().Format(time.RFC3339)},
		{"timeout after the end", `{"ProfileID":102,"Timeout":"2h"}`,
			[]string{"pending 5/0", "processing 5/0", "complete 0/5"}, 400 * time.Millisecond, epoch.Add(2 * time.Hour).UTC().Format(time.RFC3339)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessCfg(t, Config{Scenario: Scenario{Speed: 10}})
			before := h.switchStatus(fleetEU)
			if swState(t, before) != "not requested 0/0" || num(t, before["ProfileID"]) != profA || before["Deadline"] != nil {
				t.Fatalf("before any switch: %v", before)
			}
			r := h.patch(fleetEU, tt.body)
			if r.err != nil || r.status != 200 || r.body["error"] == true {
				t.Fatalf("PATCH: %v %d %v", r.err, r.status, r.body)
			}
			seen := []string{swState(t, r.body)}
			var ended time.Duration = -1
			for i := 0; i < 40; i++ {
				h.clock.Advance(50 * time.Millisecond)
				b := h.switchStatus(fleetEU)
				if num(t, b["ProfileID"]) != profB {
					t.Fatalf("ProfileID %v", b)
				}
				if dl, _ := b["Deadline"].(string); dl != tt.dline {
					t.Fatalf("Deadline %q, want %q", dl, tt.dline)
				}
				if st := swState(t, b); st != seen[len(seen)-1] {
					seen = append(seen, st)
					if b["State"] == StateComplete {
						ended = h.clock.Now().Sub(epoch)
					}
				}
			}
			if !reflect.DeepEqual(seen, tt.want) {
				t.Fatalf("statuses %q, want %q", seen, tt.want)
			}
			if ended != tt.ends {
				t.Errorf("complete at %v, want %v", ended, tt.ends)
			}
			for _, m := range []int64{feu1, feu2, feu3, feu4, fuk1} {
				if p := h.srv.MachineProfile(m); p != profB {
					t.Errorf("machine %d on profile %d", m, p)
				}
			}
			// The other fleet was not touched.
			if p := h.srv.MachineProfile(fus1); p != profA {
				t.Errorf("prod-us machine on %d", p)
			}
			if st := swState(t, h.switchStatus(fleetUS)); st != "not requested 0/0" {
				t.Errorf("prod-us %s", st)
			}
		})
	}
}

// TestSwitchBatchesMoveServers: during a switch the servers of finished
// batches run the new profile, in the fleet's machine order, the others the
// old one; a switch back restarts all of them again.
func TestSwitchBatchesMoveServers(t *testing.T) {
	h := newHarnessCfg(t, Config{})
	h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
	h.clock.Advance(2*time.Second + 2*time.Second) // pending, then one batch (speed 1)
	if st := swState(t, h.switchStatus(fleetEU)); st != "processing 3/2" {
		t.Fatalf("status %s", st)
	}
	var got []int64
	for _, m := range []int64{feu1, feu2, feu3, feu4, fuk1} {
		got = append(got, h.srv.MachineProfile(m))
	}
	if !reflect.DeepEqual(got, []int64{profB, profB, profA, profA, profA}) {
		t.Fatalf("profiles %v", got)
	}
	fi := h.srv.Fleets()
	if len(fi) != 2 || fi[0].Name != "prod-eu" || fi[0].State != StateProcessing || fi[0].ServersProcessed != 2 ||
		!reflect.DeepEqual(fi[0].Machines, []int64{feu1, feu2, feu3, feu4, fuk1}) {
		t.Fatalf("Fleets %+v", fi)
	}
	h.clock.Advance(time.Minute)
	// Back to game-a's profile: every server restarts.
	r := h.patch(fleetEU, `{"ProfileID":101}`)
	if swState(t, r.body) != "pending 5/0" || num(t, r.body["ProfileID"]) != profA {
		t.Fatalf("switch back %v", r.body)
	}
	h.clock.Advance(time.Minute)
	if p := h.srv.MachineProfile(feu1); p != profA {
		t.Fatalf("eu-1 on %d after switching back", p)
	}
}

// TestSwitchRules: unknown fleets, the profile the fleet already runs, a
// PATCH during a switch, and the lenient reading of the body.
func TestSwitchRules(t *testing.T) {
	h := newHarnessCfg(t, Config{})
	auth := basicAuth(accessKey, secretKey)

	// Unknown fleet: 404 for both methods.
	for _, m := range []string{http.MethodGet, http.MethodPatch} {
		r := h.call(m, switchPath("00000000-0000-0000-0000-000000000000"), `{"ProfileID":102}`, "application/json", auth)
		if r.status != 404 {
			t.Fatalf("%s unknown fleet: %d %v", m, r.status, r.body)
		}
		checkEnvelope(t, r.body)
	}
	// Other methods: 405.
	if r := h.call(http.MethodPost, switchPath(fleetEU), `{"ProfileID":102}`, "application/json", auth); r.status != 405 {
		t.Fatalf("POST: %d", r.status)
	}

	// The profile the fleet already runs: complete at once, nothing to do.
	r := h.patch(fleetEU, `{"ProfileID":101,"Timeout":"60s"}`)
	if swState(t, r.body) != "complete 0/0" || num(t, r.body["ProfileID"]) != profA || r.body["Deadline"] != epoch.Add(time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("same profile %v", r.body)
	}

	// Validation errors (lenient): the business status and the envelope;
	// nothing changes.
	for _, tt := range []struct{ body, want string }{
		{`{"Timeout":"60s"}`, "ProfileID is required"},
		{`{"ProfileID":999}`, "profile not found: 999"},
		{`{"ProfileID":"abc"}`, "ProfileID"},
		{`{"ProfileID":102,"Timeout":"soon"}`, "Timeout"},
		{`{"ProfileID":102,"MaxMachines":-1}`, "MaxMachines"},
		{`[102]`, "not a JSON object"},
		{``, "empty"},
		{`{"ProfileID":102} x`, "after its JSON object"},
	} {
		r := h.call(http.MethodPatch, switchPath(fleetEU), tt.body, "application/json", auth)
		if r.status != 200 {
			t.Fatalf("%s: status %d", tt.body, r.status)
		}
		checkEnvelope(t, r.body)
		if msg := r.body["error_message"].(string); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %q, want %q", tt.body, msg, tt.want)
		}
	}
	if st := h.switchStatus(fleetEU); swState(t, st) != "complete 0/0" || num(t, st["ProfileID"]) != profA {
		t.Fatalf("a refused PATCH changed the switch: %v", st)
	}

	// Lenient: any Content-Type, keys in any case, numbers as strings,
	// Timeout in seconds, unknown keys ignored.
	r = h.call(http.MethodPatch, switchPath(fleetEU), `{"profileid":"102","maxMachines":"2","timeout":90,"Note":"x"}`, "text/plain", auth)
	if r.status != 200 || swState(t, r.body) != "pending 5/0" || r.body["Deadline"] != epoch.Add(90*time.Second).UTC().Format(time.RFC3339) {
		t.Fatalf("lenient PATCH: %d %v", r.status, r.body)
	}

	// A PATCH while it is pending or processing is refused and changes
	// nothing, even one that repeats it.
	for _, adv := range []time.Duration{0, 3 * time.Second} {
		h.clock.Advance(adv)
		r = h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
		checkEnvelope(t, r.body)
		if msg := r.body["error_message"].(string); !strings.Contains(msg, "profile switch in progress") {
			t.Fatalf("PATCH during a switch: %q", msg)
		}
	}
	if st := swState(t, h.switchStatus(fleetEU)); st != "processing 5/0" {
		t.Fatalf("status %s", st)
	}

	// Every PATCH is recorded, applied or not.
	sws := h.srv.Switches()
	applied := 0
	for _, s := range sws {
		if s.Applied {
			applied++
		}
		if s.Endpoint != EPSwitchProfile || !s.Mutating {
			t.Errorf("switch record %+v", s)
		}
	}
	if len(sws) != 13 || applied != 2 {
		t.Fatalf("%d PATCHes recorded, %d applied: %+v", len(sws), applied, sws)
	}
	if last := sws[len(sws)-1]; last.ProfileID != profB || last.MaxMachines != 2 || last.Applied || last.Fleet != "prod-eu" || last.ContentType != "application/json" {
		t.Errorf("last record %+v", last)
	}
	if lp := sws[len(sws)-3]; lp.ProfileID != profB || lp.MaxMachines != 2 || lp.Timeout != 90*time.Second || !lp.Applied {
		t.Errorf("lenient record %+v", lp)
	}
}

// TestSwitchStrict: strict mode refuses every PATCH a strict reading of
// API §4.15 refuses, before any work, and accepts the documented form.
func TestSwitchStrict(t *testing.T) {
	path := switchPath(fleetEU)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		ctype  string
		status int
		want   string
	}{
		{"unknown key", "PATCH", path, `{"ProfileID":102,"Batch":2}`, "application/json", 400, `unknown key "Batch"`},
		{"key in another case", "PATCH", path, `{"profileID":102}`, "application/json", 400, `unknown key "profileID"`},
		{"missing ProfileID", "PATCH", path, `{"Timeout":"60s"}`, "application/json", 400, "ProfileID is required"},
		{"ProfileID as a string", "PATCH", path, `{"ProfileID":"102"}`, "application/json", 400, "ProfileID"},
		{"ProfileID as a float", "PATCH", path, `{"ProfileID":102.0}`, "application/json", 400, "ProfileID"},
		{"ProfileID null", "PATCH", path, `{"ProfileID":null}`, "application/json", 400, "ProfileID"},
		{"ProfileID zero", "PATCH", path, `{"ProfileID":0}`, "application/json", 400, "ProfileID"},
		{"unknown profile", "PATCH", path, `{"ProfileID":999}`, "application/json", 400, "ProfileID 999 is not a profile"},
		{"Timeout as seconds", "PATCH", path, `{"ProfileID":102,"Timeout":60}`, "application/json", 400, "Timeout 60"},
		{"Timeout not a duration", "PATCH", path, `{"ProfileID":102,"Timeout":"1 hour"}`, "application/json", 400, "Timeout"},
		{"Timeout zero", "PATCH", path, `{"ProfileID":102,"Timeout":"0s"}`, "application/json", 400, "positive duration"},
		{"Timeout negative", "PATCH", path, `{"ProfileID":102,"Timeout":"-5s"}`, "application/json", 400, "positive duration"},
		{"MaxMachines zero", "PATCH", path, `{"ProfileID":102,"MaxMachines":0}`, "application/json", 400, "MaxMachines"},
		{"MaxMachines as a string", "PATCH", path, `{"ProfileID":102,"MaxMachines":"2"}`, "application/json", 400, "MaxMachines"},
		{"repeated key", "PATCH", path, `{"ProfileID":102,"ProfileID":101}`, "application/json", 400, "given twice"},
		{"trailing data", "PATCH", path, `{"ProfileID":102}{}`, "application/json", 400, "after its JSON object"},
		{"not an object", "PATCH", path, `102`, "application/json", 400, "not a JSON object"},
		{"no body", "PATCH", path, ``, "application/json", 400, "empty"},
		{"form content type", "PATCH", path, `{"ProfileID":102}`, "application/x-www-form-urlencoded", 400, "Content-Type"},
		{"no content type", "PATCH", path, `{"ProfileID":102}`, "", 400, "Content-Type missing"},
		{"asid in the query", "PATCH", path + "?accountserviceid=1234", `{"ProfileID":102}`, "application/json", 400, "undocumented parameter(s) for this endpoint: accountserviceid"},
		{"query on the GET", "GET", path + "?fleetid=" + fleetEU, ``, "", 400, "undocumented parameter"},
		{"GET with a body", "GET", path, `{"ProfileID":102}`, "application/json", 400, "body"},
		{"POST", "POST", path, `{"ProfileID":102}`, "application/json", 405, "switchprofile takes PATCH"},
		{"trailing slash", "PATCH", path + "/", `{"ProfileID":102}`, "application/json", 404, "documented form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessCfg(t, Config{Scenario: Scenario{Strict: true}})
			r := h.call(tt.method, tt.path, tt.body, tt.ctype, basicAuth(accessKey, secretKey))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %v", r.status, tt.status, r.body)
			}
			checkEnvelope(t, r.body)
			if msg := r.body["error_message"].(string); !strings.Contains(msg, tt.want) {
				t.Fatalf("error_message %q, want %q", msg, tt.want)
			}
			refused := h.srv.StrictRefusals()
			if len(refused) != 1 || !strings.Contains(refused[0].Strict, tt.want) {
				t.Fatalf("StrictRefusals %+v", refused)
			}
			for _, s := range h.srv.Switches() {
				if s.Applied || s.Strict == "" {
					t.Fatalf("switch record %+v", s)
				}
			}
			if fi := h.srv.Fleets()[0]; fi.State != StateNotRequested {
				t.Fatalf("a refused PATCH started a switch: %+v", fi)
			}
		})
	}

	t.Run("documented form", func(t *testing.T) {
		h := newHarnessCfg(t, Config{Scenario: Scenario{Strict: true}})
		h.switchStatus(fleetEU) // no Content-Type on the bodiless GET
		r := h.call(http.MethodPatch, path, `{"ProfileID": 102, "Timeout": "2h", "MaxMachines": 10}`, "application/json; charset=utf-8", basicAuth(accessKey, secretKey))
		if r.status != 200 || r.body["State"] != StatePending {
			t.Fatalf("PATCH: %d %v", r.status, r.body)
		}
		h.call(http.MethodGet, path, "", "application/json", basicAuth(accessKey, secretKey))
		h.call(http.MethodGet, fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, imgB), "", "application/x-www-form-urlencoded", basicAuth(accessKey, secretKey))
		if refused := h.srv.StrictRefusals(); len(refused) != 0 {
			t.Fatalf("StrictRefusals %+v", refused)
		}
		sws := h.srv.Switches()
		if len(sws) != 1 || !sws[0].Applied || sws[0].ProfileID != profB || sws[0].Timeout != 2*time.Hour || sws[0].MaxMachines != 10 {
			t.Fatalf("Switches %+v", sws)
		}
	})
}

// TestSwitchDroppedAnswer: the scenario drops the PATCH's answer; the switch
// was applied exactly once, the GET shows it, and a blind resend is refused
// rather than applied again.
func TestSwitchDroppedAnswer(t *testing.T) {
	h := newHarnessCfg(t, Config{Scenario: Scenario{Faults: Faults{Targeted: []TargetedFault{{Endpoint: EPSwitchProfile, Fault: FaultDrop}}}}})
	r := h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
	if r.err == nil {
		t.Fatalf("answer not dropped: %d %v", r.status, r.body)
	}
	if st := h.switchStatus(fleetEU); swState(t, st) != "pending 5/0" || num(t, st["ProfileID"]) != profB {
		t.Fatalf("status after the lost answer: %v", st)
	}
	r = h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
	if r.err != nil || !strings.Contains(fmt.Sprint(r.body["error_message"]), "in progress") {
		t.Fatalf("resend: %v %v", r.err, r.body)
	}
	h.clock.Advance(time.Minute)
	if st := swState(t, h.switchStatus(fleetEU)); st != "complete 0/5" {
		t.Fatalf("status %s", st)
	}
	sws := h.srv.Switches()
	if len(sws) != 2 || !sws[0].Applied || !sws[0].Dropped || sws[0].Fault != FaultDrop || sws[1].Applied {
		t.Fatalf("Switches %+v", sws)
	}
	var patches int
	for _, rq := range h.srv.Requests() {
		if rq.Endpoint == EPSwitchProfile {
			patches++
		}
	}
	if patches != 2 {
		t.Fatalf("%d PATCHes in the request log", patches)
	}
}

// expectedCounters derives the v2 counters of an image from what a client
// sees of the install jobs (imageinstall/status, API §7 #16): a machine
// whose install toward the latest version is listed Failed is failed, one
// listed in states 1-4 is pending, one not listed completed. It returns
// them by fleet id and region name.
func (h *harness) expectedCounters(inv Inventory, image int64) map[string]map[string]counters {
	h.t.Helper()
	latest := h.srv.LatestVersion(image)
	listed := map[int64]int64{} // machine -> state of its listed install toward latest
	for _, in := range h.installs() {
		if in["mirroring"] == true || num(h.t, in["target_imageversionid"]) != latest {
			continue
		}
		listed[num(h.t, in["machine"])] = num(h.t, in["jobstateid"])
	}
	out := map[string]map[string]counters{}
	for _, m := range inv.Machines {
		if m.Build || !hasImage(m, image) {
			continue
		}
		var c counters
		switch st, ok := listed[m.ID]; {
		case !ok:
			c.completed = 1
		case st == 6:
			c.failed = 1
		default:
			c.pending = 1
		}
		if out[m.Fleet] == nil {
			out[m.Fleet] = map[string]counters{}
		}
		r := out[m.Fleet][m.Region]
		r.add(c)
		out[m.Fleet][m.Region] = r
	}
	return out
}

func hasImage(m Machine, image int64) bool {
	for _, id := range m.Images {
		if id == image {
			return true
		}
	}
	return false
}

// readCounters reads the v2 detail answer by fleet id and region name,
// checking that region ids are RegionID(name) and that totals add up.
func (h *harness) readCounters(image int64) map[string]map[string]counters {
	h.t.Helper()
	t := h.t
	b := h.ok(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, image), q("detail", "true"))
	get := func(m map[string]any) counters {
		return counters{pending: int(num(t, m["pending_machines"])), failed: int(num(t, m["failed_machines"])), completed: int(num(t, m["completed_machines"]))}
	}
	out := map[string]map[string]counters{}
	var sum counters
	for fid, fv := range b["fleets"].(map[string]any) {
		fm := fv.(map[string]any)
		out[fid] = map[string]counters{}
		var fsum counters
		for rid, rv := range fm["regions"].(map[string]any) {
			rm := rv.(map[string]any)
			name := rm["name"].(string)
			if rid != RegionID(name) {
				t.Fatalf("region %q has id %s, want %s", name, rid, RegionID(name))
			}
			out[fid][name] = get(rm)
			fsum.add(get(rm))
		}
		if fsum != get(fm) {
			t.Fatalf("fleet %s counters %v, its regions add up to %v", fid, get(fm), fsum)
		}
		sum.add(fsum)
	}
	if sum != get(b) {
		t.Fatalf("totals %v, the fleets add up to %v", get(b), sum)
	}
	// Without detail: the same totals and no fleets.
	plain := h.ok(fmt.Sprintf("/cfp/v2/project/%d/image/%d/status", testASID, image), nil)
	if _, ok := plain["fleets"]; ok || get(plain) != sum {
		t.Fatalf("without detail %v", plain)
	}
	return out
}

// TestCountersFollowInstalls runs two version rollouts of game-b on the fleet
// inventory, one install failing once (then queued again) and one failing
// for good until the next version supersedes it, and checks at every step
// of simulated time that the v2 counters, per fleet and region, are what the
// install jobs say.
func TestCountersFollowInstalls(t *testing.T) {
	inv := fleetInventory()
	h := newHarnessCfg(t, Config{Inventory: inv, Scenario: Scenario{Failures: []Failure{
		{Kind: KindInstall, Machine: "eu-2", Image: "game-b", Times: 1, Error: "disk full"},
		{Kind: KindInstall, Machine: "uk-1", Image: "game-b", Times: 1, Error: "no space"},
	}}})
	seen := map[string]bool{}
	check := func() {
		t.Helper()
		got, want := h.readCounters(imgB), h.expectedCounters(inv, imgB)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("at %v: counters %v, the installs say %v", h.clock.Now().Sub(epoch), got, want)
		}
		for _, regions := range got {
			for _, c := range regions {
				seen[fmt.Sprintf("p%d f%d c%d", min(c.pending, 1), min(c.failed, 1), min(c.completed, 1))] = true
			}
		}
	}
	check()
	// No fleet lists a machine without the image: us-2 carries only game-a.
	if c := h.readCounters(imgB)[fleetUS]["us"]; c != (counters{completed: 1}) {
		t.Fatalf("prod-us %v", c)
	}

	did := h.updateAndDiff(imgB, "1.0")
	v1 := num(t, h.ok("/cfp/v1/imageversion/create", q("diffid", did, "restart", 1, "install_at", "NOW()"))["imageversionid"])
	for i := 0; i < 120; i++ {
		check()
		h.clock.Advance(250 * time.Millisecond)
	}
	// eu-2 and uk-1 failed; queue eu-2 again and watch it through.
	var failed []map[string]any
	for _, in := range h.installsFor(v1) {
		if num(t, in["jobstateid"]) == 6 {
			failed = append(failed, in)
		}
	}
	if len(failed) != 2 {
		t.Fatalf("failed installs %v", failed)
	}
	for _, in := range failed {
		if num(t, in["machine"]) == feu2 {
			h.ok("/cfp/v1/imageinstall/"+toString(in["jobid"])+"/queue", q("mirroring", "false"))
		}
	}
	for i := 0; i < 60; i++ {
		check()
		h.clock.Advance(250 * time.Millisecond)
	}
	if c := h.readCounters(imgB)[fleetEU]; c["eu"] != (counters{completed: 4}) || c["uk"] != (counters{failed: 1}) {
		t.Fatalf("after the retry %v", c)
	}

	// The next version supersedes uk-1's failure: it is pending again, then
	// completed like everyone.
	did = h.updateAndDiff(imgB, "1.1")
	h.ok("/cfp/v1/imageversion/create", q("diffid", did, "restart", 1, "install_at", "NOW()"))
	for i := 0; i < 120; i++ {
		check()
		h.clock.Advance(250 * time.Millisecond)
	}
	if c := h.readCounters(imgB); c[fleetEU]["uk"] != (counters{completed: 1}) || c[fleetEU]["eu"] != (counters{completed: 4}) {
		t.Fatalf("after v2 %v", c)
	}
	// The walk saw pending, failed and completed machines, alone and mixed.
	for _, k := range []string{"p0 f0 c1", "p1 f0 c0", "p0 f1 c0", "p1 f0 c1"} {
		if !seen[k] {
			t.Errorf("never saw a region with %s (saw %v)", k, seen)
		}
	}
}

// TestAuthSchemes: each configured scheme is accepted, an unconfigured one
// refused like a wrong credential, on v1, v2 and the switch alike.
func TestAuthSchemes(t *testing.T) {
	const token = "tok-3f9a"
	basic, badBasic := basicAuth(accessKey, secretKey), basicAuth(accessKey, "nope")
	bearer, badBearer := "Bearer "+token, "Bearer tok-nope"
	tests := []struct {
		name string
		cfg  Config
		want map[string]int // Authorization -> status
	}{
		// Basic with an empty pair must not match the unset keys.
		{"token only", Config{Token: token}, map[string]int{bearer: 200, badBearer: 403, basic: 403, basicAuth("", ""): 403, "": 401, "bearer " + token: 200, "Bearer": 403}},
		{"keys only", Config{AccessKey: accessKey, SecretKey: secretKey}, map[string]int{basic: 200, badBasic: 403, bearer: 403, "Bearer ": 403, "": 401}},
		{"both", Config{AccessKey: accessKey, SecretKey: secretKey, Token: token}, map[string]int{basic: 200, bearer: 200, badBasic: 403, badBearer: 403, "Token " + token: 403}},
	}
	paths := []struct{ method, path, body string }{
		{http.MethodGet, "/cfp/v1/imageinstall/status?accountserviceid=1234", ""},
		{http.MethodGet, fmt.Sprintf("/cfp/v2/project/%d/image/%d/status?detail=true", testASID, imgB), ""},
		{http.MethodGet, switchPath(fleetEU), ""},
		{http.MethodPatch, switchPath(fleetUS), `{"ProfileID":101}`}, // already on it: no state change
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessCfg(t, tt.cfg)
			for auth, want := range tt.want {
				for _, p := range paths {
					r := h.call(p.method, p.path, p.body, "application/json", auth)
					if r.status != want {
						t.Errorf("%s %s with %q: %d, want %d (%v)", p.method, p.path, auth, r.status, want, r.body)
					}
					if want != 200 && r.body["error_message"] != "Forbidden" {
						t.Errorf("refusal body %v", r.body)
					}
				}
			}
		})
	}
	// An empty credential never matches an unset one. (Over HTTP the
	// server trims "Bearer " to "Bearer"; a header set in-process is not.)
	for _, cfg := range []Config{{Token: token}, {AccessKey: accessKey, SecretKey: secretKey}} {
		cfg.Inventory = fleetInventory()
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, auth := range []string{"Bearer ", basicAuth("", "")} {
			req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
			req.Header.Set("Authorization", auth)
			if ae := s.authenticate(req); ae == nil || ae.status != 403 {
				t.Errorf("%q accepted by %+v", auth, cfg)
			}
		}
	}
	for _, cfg := range []Config{{}, {AccessKey: "a"}, {SecretKey: "b", Token: "t"}} {
		cfg.Inventory = fleetInventory()
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted credentials %+v", cfg)
		}
	}
}

// TestSwitchTrouble: the scenario's switches rules.
func TestSwitchTrouble(t *testing.T) {
	t.Run("stall", func(t *testing.T) {
		h := newHarnessCfg(t, Config{Scenario: Scenario{Switches: []SwitchTrouble{{Trouble: TroubleStall, Fleet: "prod-eu", After: 1}}}})
		h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2,"Timeout":"10s"}`)
		h.clock.Advance(time.Hour) // far past the Deadline
		st := h.switchStatus(fleetEU)
		if swState(t, st) != "processing 3/2" || st["Deadline"] != epoch.Add(10*time.Second).UTC().Format(time.RFC3339) {
			t.Fatalf("stalled switch %v", st)
		}
		if r := h.patch(fleetEU, `{"ProfileID":101}`); !strings.Contains(fmt.Sprint(r.body["error_message"]), "in progress") {
			t.Fatalf("PATCH on a stalled switch: %v", r.body)
		}
		// The other fleet is not matched (the profile is fleet-wide: us-2
		// switches too, though it does not carry game-b).
		h.patch(fleetUS, `{"ProfileID":102}`)
		h.clock.Advance(time.Minute)
		if st := swState(t, h.switchStatus(fleetUS)); st != "complete 0/2" {
			t.Fatalf("prod-us %s", st)
		}
	})
	t.Run("deadline before the stall", func(t *testing.T) {
		h := newHarnessCfg(t, Config{Scenario: Scenario{Switches: []SwitchTrouble{{Trouble: TroubleStall, After: 2}}}})
		// pending 2s, batches of 2s: the stall would strike at 6s.
		h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2,"Timeout":"5s"}`)
		h.clock.Advance(time.Minute)
		if st := swState(t, h.switchStatus(fleetEU)); st != "complete 0/5" {
			t.Fatalf("status %s", st)
		}
	})
	t.Run("error", func(t *testing.T) {
		for _, bizStatus := range []int{0, 400} {
			h := newHarnessCfg(t, Config{Scenario: Scenario{BusinessErrorStatus: bizStatus,
				Switches: []SwitchTrouble{{Trouble: TroubleError, Profile: profB, After: 1, Times: 1, Error: "3 servers did not restart"}}}})
			h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
			h.clock.Advance(3 * time.Second) // still pending, then processing
			if st := swState(t, h.switchStatus(fleetEU)); st != "processing 5/0" {
				t.Fatalf("before the trouble %s", st)
			}
			h.clock.Advance(time.Minute)
			r := h.call(http.MethodGet, switchPath(fleetEU), "", "", basicAuth(accessKey, secretKey))
			want := 200
			if bizStatus == 400 {
				want = 400
			}
			if r.status != want {
				t.Fatalf("status %d, want %d", r.status, want)
			}
			checkEnvelope(t, r.body)
			if r.body["error_message"] != "profile switch failed: 3 servers did not restart" {
				t.Fatalf("GET %v", r.body)
			}
			if fi := h.srv.Fleets()[0]; fi.State != TroubleError || fi.ServersProcessed != 2 || fi.ServersPending != 3 {
				t.Fatalf("Fleets %+v", fi)
			}
			// A switch back is accepted: it restarts the two servers the
			// failed switch moved, and (times: 1) runs clean.
			r = h.patch(fleetEU, `{"ProfileID":101}`)
			if r.status != 200 || swState(t, r.body) != "pending 2/0" {
				t.Fatalf("switch back: %d %v", r.status, r.body)
			}
			h.clock.Advance(time.Minute)
			if st := swState(t, h.switchStatus(fleetEU)); st != "complete 0/2" {
				t.Fatalf("after the switch back %s", st)
			}
			for _, m := range []int64{feu1, feu2, feu3, feu4, fuk1} {
				if p := h.srv.MachineProfile(m); p != profA {
					t.Fatalf("machine %d on %d", m, p)
				}
			}
		}
	})
	t.Run("failed state", func(t *testing.T) {
		h := newHarnessCfg(t, Config{Scenario: Scenario{Switches: []SwitchTrouble{{Trouble: TroubleFailed, After: 9}}}})
		h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":2}`)
		h.clock.Advance(time.Minute)
		// after: 9 is held to all batches but one: it still shows.
		if st := swState(t, h.switchStatus(fleetEU)); st != "failed 1/4" {
			t.Fatalf("status %s", st)
		}
	})
}

// TestNeverReadyRegion: the region's installs start and never end; its
// machines stay pending, the other regions complete.
func TestNeverReadyRegion(t *testing.T) {
	h := newHarnessCfg(t, Config{Scenario: Scenario{NeverReadyRegions: []string{"uk"}}})
	vid := h.version(h.updateAndDiff(imgB, "2.0"), "install_at", "NOW()")
	h.clock.Advance(time.Hour)
	c := h.readCounters(imgB)
	if c[fleetEU]["uk"] != (counters{pending: 1}) || c[fleetEU]["eu"] != (counters{completed: 4}) || c[fleetUS]["us"] != (counters{completed: 1}) {
		t.Fatalf("counters %v", c)
	}
	left := h.installsFor(vid)
	if len(left) != 1 || num(t, left[0]["machine"]) != fuk1 || left[0]["jobstatename"] != "Running" ||
		num(t, left[0]["jobprogress"]) != 99 || num(t, left[0]["jobeta"]) >= h.clock.Now().Unix() {
		t.Fatalf("hung install %v", left)
	}
}

// TestFleetProfiles: a fleet starts on the scenario's profile; a switch to
// it is complete at once.
func TestFleetProfiles(t *testing.T) {
	h := newHarnessCfg(t, Config{Scenario: Scenario{FleetProfiles: map[string]int64{"prod-eu": profB}}})
	if st := h.switchStatus(fleetEU); num(t, st["ProfileID"]) != profB || st["State"] != StateNotRequested {
		t.Fatalf("status %v", st)
	}
	if r := h.patch(fleetEU, `{"ProfileID":102,"MaxMachines":1}`); swState(t, r.body) != "complete 0/0" {
		t.Fatalf("PATCH %v", r.body)
	}
	if p := h.srv.MachineProfile(fus1); p != profA {
		t.Fatalf("prod-us on %d", p)
	}
}

// TestFleetsOfTheInventory: defaults and checks of New for fleets.
func TestFleetsOfTheInventory(t *testing.T) {
	build := func(mod func(*Inventory)) (*Server, error) {
		inv := fleetInventory()
		mod(&inv)
		return New(Config{Inventory: inv, AccessKey: "a", SecretKey: "b", Clock: NewFakeClock(epoch)})
	}
	names := func(s *Server) map[string][]int64 {
		out := map[string][]int64{}
		for _, f := range s.Fleets() {
			out[f.Name+" "+f.ID+fmt.Sprintf(" %d", f.Profile)] = f.Machines
		}
		return out
	}

	// One fleet: machines without a fleet are in it; build machines never.
	s, err := build(func(inv *Inventory) {
		inv.Fleets = inv.Fleets[:1]
		for i := range inv.Machines {
			inv.Machines[i].Fleet = ""
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(s); !reflect.DeepEqual(got, map[string][]int64{"prod-eu " + fleetEU + " 101": {feu1, feu2, feu3, feu4, fuk1, fus1, fus2}}) {
		t.Fatalf("one fleet: %v", got)
	}

	// No fleets: the invented one holds every fleet machine; its profile
	// comes from the first image with one.
	s, err = build(func(inv *Inventory) {
		inv.Fleets = nil
		for i := range inv.Machines {
			inv.Machines[i].Fleet = ""
		}
		inv.Images[0].Profile = 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(s); !reflect.DeepEqual(got, map[string][]int64{DefaultFleetName + " " + DefaultFleetID(testASID) + " 102": {feu1, feu2, feu3, feu4, fuk1, fus1, fus2}}) {
		t.Fatalf("no fleets: %v", got)
	}

	// Two fleets and a machine that names none: the invented fleet, last.
	s, err = build(func(inv *Inventory) { inv.Machines[7].Fleet = "" })
	if err != nil {
		t.Fatal(err)
	}
	fl := s.Fleets()
	if len(fl) != 3 || fl[2].Name != DefaultFleetName || !reflect.DeepEqual(fl[2].Machines, []int64{fus2}) || !reflect.DeepEqual(fl[1].Machines, []int64{fus1}) {
		t.Fatalf("fleets %+v", fl)
	}
	if fl[0].Profile != profA || fl[2].Profile != profA {
		t.Fatalf("start profiles %+v", fl)
	}

	for _, tt := range []struct {
		name string
		mod  func(*Inventory)
		want string
	}{
		{"unknown fleet", func(inv *Inventory) { inv.Machines[1].Fleet = "nope" }, `unknown fleet "nope"`},
		{"unknown fleet on a build machine", func(inv *Inventory) { inv.Machines[0].Fleet = "nope" }, `unknown fleet "nope"`},
		{"duplicate fleet name", func(inv *Inventory) { inv.Fleets[1].Name = "prod-eu" }, "listed twice"},
		{"duplicate fleet id", func(inv *Inventory) { inv.Fleets[1].ID = fleetEU }, "listed twice"},
		{"fleet id not a path segment", func(inv *Inventory) { inv.Fleets[1].ID = "a/b" }, "path segment"},
		{"shared profile", func(inv *Inventory) { inv.Images[1].Profile = profA }, "both have profile 101"},
		{"invented fleet clashes", func(inv *Inventory) { inv.Fleets[1].Name = DefaultFleetName; inv.Machines[7].Fleet = "" }, "clashes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := build(tt.mod); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestNewChecksCutoverScenario: scenario names that the inventory lacks.
func TestNewChecksCutoverScenario(t *testing.T) {
	for _, tt := range []struct {
		name string
		sc   Scenario
		want string
	}{
		{"switches fleet", Scenario{Switches: []SwitchTrouble{{Trouble: TroubleStall, Fleet: "prod-mars"}}}, "prod-mars"},
		{"switches profile", Scenario{Switches: []SwitchTrouble{{Trouble: TroubleStall, Profile: 555}}}, "555"},
		{"fleet_profiles fleet", Scenario{FleetProfiles: map[string]int64{"prod-moon": 101}}, "prod-moon"},
		{"never ready region", Scenario{NeverReadyRegions: []string{"atlantis"}}, "atlantis"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Inventory: fleetInventory(), AccessKey: "a", SecretKey: "b", Scenario: tt.sc})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// TestParseCutoverScenario: the cut-over keys decode and validate.
func TestParseCutoverScenario(t *testing.T) {
	doc := `
durations: {switch_start: 1s, switch_batch: 3s}
fleet_profiles: {prod-eu: 102}
switches:
  - {trouble: stall, fleet: prod-eu, after: 1}
  - {trouble: error, profile: 101, times: 2, error: "boom"}
  - {trouble: failed}
never_ready_regions: [uk]
`
	sc, err := ParseScenario([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []SwitchTrouble{{Trouble: TroubleStall, Fleet: "prod-eu", After: 1}, {Trouble: TroubleError, Profile: 101, Times: 2, Error: "boom"}, {Trouble: TroubleFailed}}
	if !reflect.DeepEqual(sc.Switches, want) || sc.FleetProfiles["prod-eu"] != 102 || !reflect.DeepEqual(sc.NeverReadyRegions, []string{"uk"}) ||
		sc.Durations.SwitchStart != time.Second || sc.Durations.SwitchBatch != 3*time.Second {
		t.Fatalf("decoded %+v", sc)
	}
	if _, err := New(Config{Inventory: fleetInventory(), AccessKey: "a", SecretKey: "b", Scenario: sc}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, doc, want string }{
		{"no trouble", "switches:\n  - {fleet: prod-eu}\n", "switches[0].trouble is required"},
		{"unknown trouble", "switches:\n  - {trouble: explode}\n", `"explode"`},
		{"negative after", "switches:\n  - {trouble: stall, after: -1}\n", "after and times"},
		{"error text on a stall", "switches:\n  - {trouble: stall, error: x}\n", "only shown by trouble: error"},
		{"unknown switches key", "switches:\n  - {trouble: stall, fleets: [a]}\n", "fleets"},
		{"zero fleet profile", "fleet_profiles: {prod-eu: 0}\n", "fleet_profiles.prod-eu"},
		{"empty region", "never_ready_regions: ['']\n", "never_ready_regions[0]"},
		{"bad batch duration", "durations:\n  switch_batch: later\n", "durations.switch_batch"},
		{"negative start", "durations:\n  switch_start: -1s\n", "durations.switch_start"},
		{"switch endpoints are fault targets", "faults:\n  targeted:\n    - {endpoint: v2/fleet/switchprofile/statu}\n", "v2/fleet/switchprofile/status"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
