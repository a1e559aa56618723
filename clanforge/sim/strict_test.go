package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// strictReq is one hand-built request for the strict-mode tests.
type strictReq struct {
	method string // default GET
	path   string
	query  string // raw query; accountserviceid is not added
	ctype  *string
	body   string
}

func (h *harness) send(r strictReq) (int, map[string]any) {
	h.t.Helper()
	m := r.method
	if m == "" {
		m = http.MethodGet
	}
	u := h.base + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	var body *strings.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequest(m, u, body)
	} else {
		req, err = http.NewRequest(m, u, nil)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(accessKey, secretKey)
	ct := "application/x-www-form-urlencoded"
	if r.ctype != nil {
		ct = *r.ctype
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", m, r.path, err)
	}
	defer res.Body.Close()
	var b map[string]any
	dec := json.NewDecoder(res.Body)
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		h.t.Fatalf("%s %s: decode: %v", m, r.path, err)
	}
	return res.StatusCode, b
}

func str(s string) *string { return &s }

// TestStrictRefuses: every rule of strict mode refuses a request that the
// lenient mode lets through to the endpoint, with the envelope, the status
// and a logged reason; the refused request does no work.
func TestStrictRefuses(t *testing.T) {
	asid := "accountserviceid=" + strconv.Itoa(testASID)
	tests := []struct {
		name   string
		req    strictReq
		status int
		want   string // in error_message and Request.Strict
	}{
		{"POST", strictReq{method: http.MethodPost, path: "/cfp/v1/imageinstall/status", query: asid}, 405, "method POST"},
		{"trailing slash", strictReq{path: "/cfp/v1/imageinstall/status/", query: asid}, 404, "documented form"},
		{"double slash", strictReq{path: "/cfp/v1//imageinstall/status", query: asid}, 404, "/cfp/v1//imageinstall/status"},
		{"unknown endpoint", strictReq{path: "/cfp/v1/imageinstall/create", query: asid}, 404, "unknown endpoint"},
		{"body", strictReq{path: "/cfp/v1/imageinstall/status", query: asid, body: "a=1"}, 400, "body"},
		{"no content type", strictReq{path: "/cfp/v1/imageinstall/status", query: asid, ctype: str("")}, 400, "Content-Type missing"},
		{"json content type", strictReq{path: "/cfp/v1/imageinstall/status", query: asid, ctype: str("application/json")}, 400, "Content-Type"},
		{"malformed query", strictReq{path: "/cfp/v1/imageinstall/status", query: asid + "&x=%zz"}, 400, "malformed query"},
		{"unknown parameter", strictReq{path: "/cfp/v1/imageinstall/status", query: asid + "&imageid=5531"}, 400, "undocumented parameter(s) for this endpoint: imageid"},
		{"repeated parameter", strictReq{path: "/cfp/v1/imageinstall/status", query: asid + "&" + asid}, 400, "given 2 times"},
		{"no asid", strictReq{path: "/cfp/v1/imageinstall/status"}, 400, "missing required parameter: accountserviceid"},
		{"asid not a number", strictReq{path: "/cfp/v1/imageinstall/status", query: "accountserviceid=%2B1234"}, 400, "invalid accountserviceid"},
		{"update without desc", strictReq{path: "/cfp/v1/imageupdate/create", query: asid + "&imageid=5531&machineid=770001&url=s3%3A%2F%2Fb%2Fx%2F"}, 400, "missing required parameter: desc"},
		{"update with empty desc", strictReq{path: "/cfp/v1/imageupdate/create", query: asid + "&imageid=5531&machineid=770001&desc="}, 400, "desc is given empty"},
		{"update with an http url", strictReq{path: "/cfp/v1/imageupdate/create", query: asid + "&imageid=5531&machineid=770001&desc=x&url=https%3A%2F%2Fb%2Fx"}, 400, "scheme \"https\""},
		{"diff create without machine", strictReq{path: "/cfp/v1/imagediff/create", query: asid + "&imageid=5531"}, 400, "missing required parameter: machineid"},
		{"diff_info true", strictReq{path: "/cfp/v1/imagediff/218591/status", query: asid + "&diff_info=true"}, 400, "1 or 0"},
		{"path and query ids differ", strictReq{path: "/cfp/v1/imagediff/218591/reject", query: asid + "&diffid=218592&reinstall=0"}, 400, "in the path but"},
		{"reject without reinstall", strictReq{path: "/cfp/v1/imagediff/218591/reject", query: asid}, 400, "missing required parameter: reinstall"},
		{"reinstall false", strictReq{path: "/cfp/v1/imagediff/218591/reject", query: asid + "&reinstall=false"}, 400, "1 or 0"},
		{"version without restart", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591"}, 400, "missing required parameter: restart"},
		{"restart true", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=true"}, 400, "1 or 0"},
		{"full yes", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&full=yes"}, 400, "1 or 0"},
		{"install_at lower-case now", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&install_at=now()"}, 400, "invalid install_at"},
		{"install_at a date", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&install_at=2024-06-03"}, 400, "invalid install_at"},
		{"install_at quoted", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&install_at=%22NOW()%22"}, 400, "invalid install_at"},
		{"disable_timeout alone", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&disable_timeout=30"}, 400, "given together"},
		{"disable_timeout in seconds notation", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&disable_timeout=30m&disable_percentage=90"}, 400, "whole minutes"},
		{"disable_percentage over 100", strictReq{path: "/cfp/v1/imageversion/create", query: asid + "&diffid=218591&restart=1&disable_timeout=30&disable_percentage=100.5"}, 400, "0.00 to 100.00"},
		{"mirroring 1", strictReq{path: "/cfp/v1/imageinstall/661201/queue", query: asid + "&mirroring=1"}, 400, "true or false"},
		{"queue without mirroring", strictReq{path: "/cfp/v1/imageinstall/661201/queue", query: asid}, 400, "missing required parameter: mirroring"},
		{"options imageid alone", strictReq{path: "/cfp/v1/image/options", query: asid + "&imageid=5531"}, 400, "gameid and imageid must be given together"},
		{"options gameid alone", strictReq{path: "/cfp/v1/image/options", query: asid + "&gameid=1201"}, 400, "gameid and imageid must be given together"},
		{"options gameversion_identifier alone", strictReq{path: "/cfp/v1/image/options", query: asid + "&gameversion_identifier=9001"}, 400, "needs gameid and imageid"},
		{"v2 detail 1", strictReq{path: "/cfp/v2/project/1234/image/5531/status", query: "detail=1"}, 400, "true or false"},
		{"v2 asid differs in the query", strictReq{path: "/cfp/v2/project/1234/image/5531/status", query: "accountserviceid=99"}, 400, "in the path but"},
		{"v2 unknown parameter", strictReq{path: "/cfp/v2/project/1234/image/5531/status", query: "fleetid=x"}, 400, "undocumented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Scenario{Strict: true})
			status, b := h.send(tt.req)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, b)
			}
			checkEnvelope(t, b)
			if msg := b["error_message"].(string); !strings.Contains(msg, tt.want) {
				t.Fatalf("error_message %q, want it to contain %q", msg, tt.want)
			}
			refused := h.srv.StrictRefusals()
			if len(refused) != 1 || !strings.Contains(refused[0].Strict, tt.want) || refused[0].Status != tt.status {
				t.Fatalf("StrictRefusals = %+v", refused)
			}
			if n := len(h.srv.Jobs()); n != 0 {
				t.Fatalf("a refused request made %d jobs", n)
			}

			// The lenient simulator does not refuse it on these grounds.
			lh := newHarness(t, Scenario{})
			lh.send(tt.req)
			if r := lh.srv.StrictRefusals(); len(r) != 0 {
				t.Fatalf("lenient mode logged strict refusals: %+v", r)
			}
		})
	}
}

// TestStrictAccepts: the documented forms, and the alternatives the
// reference documents (id in the query, id in path and query alike), pass.
func TestStrictAccepts(t *testing.T) {
	h := newHarness(t, Scenario{Strict: true})
	asid := "accountserviceid=" + strconv.Itoa(testASID)
	send := func(path, query string) map[string]any {
		t.Helper()
		status, b := h.send(strictReq{path: path, query: query})
		if status != 200 || b["error"] == true {
			t.Fatalf("%s?%s: %d %v", path, query, status, b)
		}
		return b
	}
	send("/cfp/v1/image/options", asid)
	send("/cfp/v1/image/options", asid+"&gameid=1201&imageid=5531")
	send("/cfp/v1/image/options", asid+"&gameid=1201&imageid=5531&gameversion_identifier=9002")
	u := send("/cfp/v1/imageupdate/create", asid+"&imageid=5531&machineid=770001&desc=%221.2.3%22&url=s3%3A%2F%2Fk%3As%2540%40bucket%2Fb%2F")
	uid := toString(u["updateid"].(json.Number))
	send("/cfp/v1/imageupdate/"+uid+"/status", asid)
	send("/cfp/v1/imageupdate/status", asid+"&updateid="+uid)
	h.waitTerminal("/cfp/v1/imageupdate/"+uid+"/status", nil, 120)
	d := send("/cfp/v1/imagediff/create", asid+"&imageid=5531&machineid=770001")
	did := toString(d["diffid"].(json.Number))
	send("/cfp/v1/imagediff/status", asid+"&diffid="+did+"&diff_info=1")
	h.waitTerminal("/cfp/v1/imagediff/"+did+"/status", nil, 120)
	send("/cfp/v1/imagediff/"+did+"/status", asid+"&diff_info=0")
	v := send("/cfp/v1/imageversion/create", asid+"&diffid="+did+"&restart=0&full=0&force=1&game_build=%221.2.3%22&install_at=NOW()&disable_timeout=30&disable_percentage=95.50")
	vid := toString(v["imageversionid"].(json.Number))
	send("/cfp/v1/imageversion/"+vid+"/status", asid)
	send("/cfp/v1/imageinstall/status", asid)
	send("/cfp/v2/project/1234/image/5531/status", "")
	send("/cfp/v2/project/1234/image/5531/status", "detail=true")
	send("/cfp/v2/project/1234/image/5531/status", asid+"&detail=false")

	// The second diff of the cycle: rejected with diffid in path and query.
	h.waitTerminal("/cfp/v1/imageversion/"+vid+"/status", nil, 120)
	u = send("/cfp/v1/imageupdate/create", asid+"&imageid=5531&machineid=770001&desc=1.2.4")
	h.waitTerminal("/cfp/v1/imageupdate/"+toString(u["updateid"].(json.Number))+"/status", nil, 120)
	d = send("/cfp/v1/imagediff/create", asid+"&imageid=5531&machineid=770001")
	did = toString(d["diffid"].(json.Number))
	h.waitTerminal("/cfp/v1/imagediff/"+did+"/status", nil, 120)
	send("/cfp/v1/imagediff/"+did+"/retry", asid)
	h.waitTerminal("/cfp/v1/imagediff/"+did+"/status", nil, 120)
	send("/cfp/v1/imagediff/"+did+"/reject", asid+"&diffid="+did+"&reinstall=1")

	if r := h.srv.StrictRefusals(); len(r) != 0 {
		t.Fatalf("strict refusals: %+v", r)
	}
}
