package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests talk to the simulator over real HTTP as a client written only
// from the API reference would: GET, parameters in the query, Basic auth,
// and plain maps for the answers (json.Number keeps int vs string visible).

const (
	testASID  = 1234
	imgA      = 5530
	imgB      = 5531
	buildbox  = 770001
	eu1       = 812345
	eu2       = 812346
	us1       = 812400
	accessKey = "AKSIM"
	secretKey = "sim-secret"
)

var epoch = time.Unix(1717400000, 0)

func testInventory() Inventory {
	return Inventory{
		ASID: testASID,
		Images: []Image{
			{Name: "game-a", ID: imgA},
			{Name: "game-b", ID: imgB, UpdateURL: "s3://bucket/game-b/"},
		},
		Machines: []Machine{
			{Name: "buildbox-1", ID: buildbox, Build: true, Images: []int64{imgA, imgB}},
			{Name: "eu-1", ID: eu1, Region: "eu", Images: []int64{imgA, imgB}},
			{Name: "eu-2", ID: eu2, Region: "eu", Images: []int64{imgA}},
			{Name: "us-1", ID: us1, Region: "us", Images: []int64{imgA, imgB}},
		},
	}
}

type harness struct {
	t     *testing.T
	srv   *Server
	clock *FakeClock
	base  string
	hc    *http.Client
}

func newHarness(t *testing.T, scn Scenario) *harness {
	t.Helper()
	return newHarnessCfg(t, Config{Inventory: testInventory(), Scenario: scn})
}

// newHarnessCfg serves cfg on a fake clock at epoch; the inventory defaults
// to fleetInventory and the credentials to the test keys.
func newHarnessCfg(t *testing.T, cfg Config) *harness {
	t.Helper()
	clock := NewFakeClock(epoch)
	cfg.Clock = clock
	if cfg.Inventory.ASID == 0 {
		cfg.Inventory = fleetInventory()
	}
	if cfg.AccessKey == "" && cfg.Token == "" {
		cfg.AccessKey, cfg.SecretKey = accessKey, secretKey
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	// No keep-alive: a dropped answer must not be silently replayed.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	return &harness{t: t, srv: srv, clock: clock, base: base, hc: hc}
}

// q builds a query; pairs are name, value, name, value...
func q(pairs ...any) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i].(string), toString(pairs[i+1]))
	}
	return v
}

func toString(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case json.Number:
		return v.String()
	}
	panic("unsupported value")
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	err    error
}

// raw sends GET path?query with the given Authorization header value.
func (h *harness) raw(path string, query url.Values, auth string) resp {
	h.t.Helper()
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return h.call(http.MethodGet, path, "", "application/x-www-form-urlencoded", auth)
}

// call sends one request with the given method, body, Content-Type and
// Authorization ("" leaves a header out). A dropped answer is resp.err.
func (h *harness) call(method, path, body, ctype, auth string) resp {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return resp{err: err}
	}
	defer res.Body.Close()
	var b map[string]any
	dec := json.NewDecoder(res.Body)
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		h.t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// get calls a v1 endpoint with good credentials and the ASID added.
func (h *harness) get(path string, query url.Values) resp {
	h.t.Helper()
	if query == nil {
		query = url.Values{}
	}
	if !query.Has("accountserviceid") {
		query.Set("accountserviceid", strconv.Itoa(testASID))
	}
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(accessKey, secretKey)
	return h.raw(path, query, req.Header.Get("Authorization"))
}

// ok calls an endpoint that must answer 200 without the error envelope.
func (h *harness) ok(path string, query url.Values) map[string]any {
	h.t.Helper()
	r := h.get(path, query)
	if r.err != nil {
		h.t.Fatalf("GET %s: %v", path, r.err)
	}
	if r.status != 200 || r.body["error"] == true {
		h.t.Fatalf("GET %s?%s: status %d body %v", path, query.Encode(), r.status, r.body)
	}
	return r.body
}

// fail calls an endpoint that must answer with the error envelope and
// returns its message.
func (h *harness) fail(path string, query url.Values, wantStatus int) string {
	h.t.Helper()
	r := h.get(path, query)
	if r.err != nil {
		h.t.Fatalf("GET %s: %v", path, r.err)
	}
	if r.status != wantStatus {
		h.t.Fatalf("GET %s?%s: status %d, want %d (body %v)", path, query.Encode(), r.status, wantStatus, r.body)
	}
	checkEnvelope(h.t, r.body)
	return r.body["error_message"].(string)
}

func checkEnvelope(t *testing.T, b map[string]any) {
	t.Helper()
	if b["success"] != false || b["error"] != true || num(t, b["error_code"]) != 1 {
		t.Fatalf("not an error envelope: %v", b)
	}
	if _, ok := b["error_message"].(string); !ok {
		t.Fatalf("error_message not a string: %v", b)
	}
	for _, k := range []string{"messages", "_debug"} {
		if a, ok := b[k].([]any); !ok || len(a) != 0 {
			t.Fatalf("%s = %#v, want []", k, b[k])
		}
	}
}

// num reads a JSON integer.
func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%#v (%T) is not a JSON number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", n)
	}
	return i
}

func state(t *testing.T, b map[string]any) (int64, string) {
	t.Helper()
	return num(t, b["jobstateid"]), b["jobstatename"].(string)
}

// waitState advances the fake clock one second at a time, reading the
// status path, until the job reaches a terminal state; it returns the last
// body. It fails after limit simulated seconds.
func (h *harness) waitTerminal(path string, query url.Values, limit int) map[string]any {
	h.t.Helper()
	for i := 0; i <= limit; i++ {
		b := h.ok(path, query)
		if st, _ := state(h.t, b); st >= 5 {
			return b
		}
		h.clock.Advance(time.Second)
	}
	h.t.Fatalf("%s did not end within %d s", path, limit)
	return nil
}

func (h *harness) installs() []map[string]any {
	h.t.Helper()
	b := h.ok("/cfp/v1/imageinstall/status", nil)
	arr, ok := b["installs"].([]any)
	if !ok {
		h.t.Fatalf("installs is %#v, want a list", b["installs"])
	}
	out := make([]map[string]any, len(arr))
	for i, x := range arr {
		out[i] = x.(map[string]any)
	}
	return out
}

// installsFor returns the listed installs targeting a version.
func (h *harness) installsFor(version int64) []map[string]any {
	var out []map[string]any
	for _, in := range h.installs() {
		if num(h.t, in["target_imageversionid"]) == version {
			out = append(out, in)
		}
	}
	return out
}

// cycle runs update and diff to completion on the build box and returns the
// diff id.
func (h *harness) updateAndDiff(image int64, build string) int64 {
	h.t.Helper()
	u := h.ok("/cfp/v1/imageupdate/create", q("imageid", image, "machineid", buildbox, "desc", build, "url", "s3://bucket/game/"+build+"/"))
	uid := num(h.t, u["updateid"])
	b := h.waitTerminal("/cfp/v1/imageupdate/"+toString(uid)+"/status", nil, 120)
	if st, _ := state(h.t, b); st != 5 {
		h.t.Fatalf("update ended %v", b)
	}
	d := h.ok("/cfp/v1/imagediff/create", q("imageid", image, "machineid", buildbox))
	did := num(h.t, d["diffid"])
	b = h.waitTerminal("/cfp/v1/imagediff/"+toString(did)+"/status", nil, 120)
	if st, _ := state(h.t, b); st != 5 {
		h.t.Fatalf("diff ended %v", b)
	}
	return did
}

// version creates a version from a diff and waits for it.
func (h *harness) version(diff int64, extra ...any) int64 {
	h.t.Helper()
	v := h.ok("/cfp/v1/imageversion/create", q(append([]any{"diffid", diff, "restart", 1}, extra...)...))
	vid := num(h.t, v["imageversionid"])
	b := h.waitTerminal("/cfp/v1/imageversion/"+toString(vid)+"/status", nil, 120)
	if st, _ := state(h.t, b); st != 5 {
		h.t.Fatalf("version ended %v", b)
	}
	return vid
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
