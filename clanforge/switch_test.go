package clanforge_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
)

const (
	testFleet = "c0a3e2a1-6955-415c-b1d4-af9199833e6a"
	testToken = "tOkEn-0123456789abcdef"
)

var switchPath = "/cfp/v2/fleet/" + testFleet + "/switchprofile"

// fleetSwitch is a tiny model of one fleet's profile switch: the PATCH
// starts a switch (recording each body it was sent), the GET reports it.
type fleetSwitch struct {
	mu      sync.Mutex
	profile int64
	state   string
	patches []map[string]any
	methods []string
	// lose: the server applies the PATCH, then drops the connection.
	lose bool
	// refuse: the PATCH is lost before the server applies it.
	refuse bool
}

func (s *fleetSwitch) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.methods = append(s.methods, r.Method)
		switch r.Method {
		case http.MethodGet:
			body := `{"ServersPending":3,"ServersProcessed":"7","ProfileID":` + jsonInt(s.profile) + `,"State":"` + s.state + `","Deadline":"2026-06-01T12:00:00Z"}`
			if s.state == "not requested" {
				body = `{"ServersPending":0,"ServersProcessed":0,"ProfileID":0,"State":"not requested"}`
			}
			s.mu.Unlock()
			writeJSON(w, 200, body)
			return
		case http.MethodPatch:
			var b map[string]any
			raw, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(raw, &b); err != nil {
				t.Errorf("PATCH body %q: %v", raw, err)
			}
			s.patches = append(s.patches, b)
			refuse, lose := s.refuse, s.lose
			if !refuse {
				s.profile = int64(b["ProfileID"].(float64))
				s.state = "pending"
			}
			s.mu.Unlock()
			if refuse || lose {
				dropConnection(t, w)
				return
			}
			writeJSON(w, 200, `{"ServersPending":10,"ServersProcessed":0,"ProfileID":`+jsonInt(s.profile)+`,"State":"pending"}`)
			return
		}
		s.mu.Unlock()
		writeJSON(w, 405, `{"error":true,"error_message":"method"}`)
	}
}

// seen returns the methods and PATCH bodies the server saw.
func (s *fleetSwitch) seen() (methods []string, patches []map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.methods...), append([]map[string]any(nil), s.patches...)
}

func (s *fleetSwitch) set(state string) {
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestSwitchProfileRequest: the PATCH carries the documented JSON body with
// the optional fields only when set, the JSON content type, and the
// credentials; the GET has no body.
func TestSwitchProfileRequest(t *testing.T) {
	tests := []struct {
		name string
		opt  clanforge.SwitchOptions
		want string
	}{
		{"profile only", clanforge.SwitchOptions{ProfileID: 102}, `{"ProfileID":102}`},
		{"all", clanforge.SwitchOptions{ProfileID: 102, Timeout: 2 * time.Hour, MaxMachines: 10}, `{"MaxMachines":10,"ProfileID":102,"Timeout":"2h"}`},
		{"odd timeout", clanforge.SwitchOptions{ProfileID: 7, Timeout: 90 * time.Second}, `{"ProfileID":7,"Timeout":"1m30s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var body []byte
			var hdr http.Header
			f := newFake(t, map[string]http.HandlerFunc{switchPath: func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				body, _ = io.ReadAll(r.Body)
				hdr = r.Header.Clone()
				writeJSON(w, 200, `{"ServersPending":10,"ServersProcessed":0,"ProfileID":102,"State":"pending"}`)
			}})
			st, err := f.client(t, nil).SwitchProfile(ctx(t), testFleet, tt.opt)
			if err != nil || st.State != clanforge.SwitchPending || st.ServersPending != 10 {
				t.Fatalf("%+v %v", st, err)
			}
			mu.Lock()
			defer mu.Unlock()
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			norm, _ := json.Marshal(got)
			if string(norm) != tt.want {
				t.Errorf("body %s, want %s", norm, tt.want)
			}
			h := f.all()[0]
			if h.Query.Has("accountserviceid") || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("query %v, content type %q", h.Query, hdr.Get("Content-Type"))
			}
			if u, p, ok := (&http.Request{Header: hdr}).BasicAuth(); !ok || u != testAccess || p != testSecret {
				t.Errorf("Basic auth missing")
			}
		})
	}
	t.Run("refused before sending", func(t *testing.T) {
		f := newFake(t, nil)
		c := f.client(t, nil)
		for _, bad := range []struct {
			fleet string
			opt   clanforge.SwitchOptions
		}{
			{"", clanforge.SwitchOptions{ProfileID: 1}},
			{"../image/options", clanforge.SwitchOptions{ProfileID: 1}},
			{"a?b=c", clanforge.SwitchOptions{ProfileID: 1}},
			{testFleet, clanforge.SwitchOptions{}},
			{testFleet, clanforge.SwitchOptions{ProfileID: 1, MaxMachines: -1}},
		} {
			if _, err := c.SwitchProfile(ctx(t), bad.fleet, bad.opt); err == nil {
				t.Errorf("%q %+v accepted", bad.fleet, bad.opt)
			}
		}
		if n := len(f.all()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

// TestSwitchStatusDecodes: the GET's fields, leniently (a count as a
// string, the RFC 3339 deadline), and "not requested" before any switch.
func TestSwitchStatusDecodes(t *testing.T) {
	s := &fleetSwitch{profile: 101, state: "Processing"}
	f := newFake(t, map[string]http.HandlerFunc{switchPath: s.handler(t)})
	c := f.client(t, nil)
	st, err := c.ProfileSwitchStatus(ctx(t), testFleet)
	want := &clanforge.ProfileSwitch{ServersPending: 3, ServersProcessed: 7, ProfileID: 101, State: clanforge.SwitchProcessing,
		Deadline: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	if err != nil || *st != *want {
		t.Fatalf("got %+v %v, want %+v", st, err, want)
	}
	s.set("not requested")
	if st, err = c.ProfileSwitchStatus(ctx(t), testFleet); err != nil || st.State != clanforge.SwitchNotRequested || st.State.Requested() || !st.Deadline.IsZero() {
		t.Fatalf("got %+v %v", st, err)
	}
}

// TestLostSwitchAnswer: the server applies the PATCH and drops the answer;
// the client settles it by the GET (that profile pending means it took):
// exactly one PATCH. A PATCH that did not take is reported as unknown with
// what the read showed, and is not sent again.
func TestLostSwitchAnswer(t *testing.T) {
	t.Run("applied", func(t *testing.T) {
		s := &fleetSwitch{profile: 101, state: "complete", lose: true}
		f := newFake(t, map[string]http.HandlerFunc{switchPath: s.handler(t)})
		st, err := f.client(t, nil).SwitchProfile(ctx(t), testFleet, clanforge.SwitchOptions{ProfileID: 102, MaxMachines: 5})
		if err != nil || st.ProfileID != 102 || st.State != clanforge.SwitchPending {
			t.Fatalf("%+v %v, want the switch settled by the GET", st, err)
		}
		if methods, patches := s.seen(); len(patches) != 1 || strings.Join(methods, " ") != "PATCH GET" {
			t.Fatalf("requests %v, want exactly one PATCH then the GET", methods)
		}
	})
	t.Run("not applied", func(t *testing.T) {
		s := &fleetSwitch{profile: 101, state: "complete", refuse: true}
		f := newFake(t, map[string]http.HandlerFunc{switchPath: s.handler(t)})
		_, err := f.client(t, nil).SwitchProfile(ctx(t), testFleet, clanforge.SwitchOptions{ProfileID: 102})
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "shows complete for profile 101, not a switch to profile 102") {
			t.Fatalf("err = %v", err)
		}
		if _, patches := s.seen(); len(patches) != 1 {
			t.Fatalf("%d PATCHes, want 1", len(patches))
		}
	})
	t.Run("429 then sent whole again", func(t *testing.T) {
		var n atomic.Int32
		var bodies []string
		var mu sync.Mutex
		f := newFake(t, map[string]http.HandlerFunc{switchPath: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "0")
				writeJSON(w, 429, ``)
				return
			}
			writeJSON(w, 200, `{"ProfileID":102,"State":"pending"}`)
		}})
		if _, err := f.client(t, nil).SwitchProfile(ctx(t), testFleet, clanforge.SwitchOptions{ProfileID: 102}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 2 || bodies[0] != bodies[1] || bodies[1] != `{"ProfileID":102}` {
			t.Fatalf("bodies %q", bodies)
		}
	})
	t.Run("never over a reused connection", func(t *testing.T) {
		s := &fleetSwitch{profile: 101, state: "complete"}
		f := newFake(t, map[string]http.HandlerFunc{switchPath: s.handler(t)})
		c := f.client(t, func(cfg *clanforge.Config) { cfg.HTTPClient = &http.Client{Transport: &http.Transport{}} })
		for i := 0; i < 2; i++ {
			if _, err := c.SwitchProfile(ctx(t), testFleet, clanforge.SwitchOptions{ProfileID: 102}); err != nil {
				t.Fatal(err)
			}
		}
		if h := f.all(); h[0].Remote == h[1].Remote {
			t.Errorf("two PATCHes shared connection %s", h[0].Remote)
		}
	})
}

// TestBearerToken: with a token, every request carries "Bearer <token>" and
// no Basic header at all, even when keys are set too; the keys are not
// needed; and a server that echoes the header gets it masked in the error.
func TestBearerToken(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageversion/1/status": respond(200, `{"imageversionid":1,"jobstateid":4}`),
		"/cfp/v1/imageversion/2/status": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, `{"error":true,"error_message":"bad header `+r.Header.Get("Authorization")+`"}`)
		},
		switchPath: respond(200, `{"ProfileID":102,"State":"pending"}`),
	})
	for _, withKeys := range []bool{false, true} {
		c := f.client(t, func(cfg *clanforge.Config) {
			cfg.Token = testToken
			if !withKeys {
				cfg.AccessKey, cfg.SecretKey = "", ""
			}
		})
		if _, err := c.VersionStatus(ctx(t), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SwitchProfile(ctx(t), testFleet, clanforge.SwitchOptions{ProfileID: 102}); err != nil {
			t.Fatal(err)
		}
		_, err := c.VersionStatus(ctx(t), 2)
		if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "Bearer ***") {
			t.Errorf("err = %v, want the echoed token masked", err)
		}
	}
	for _, h := range f.all() {
		if got := h.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+testToken {
			t.Errorf("%s: Authorization %q", h.Path, got)
		}
		if _, _, ok := (&http.Request{Header: h.Header}).BasicAuth(); ok {
			t.Errorf("%s: a Basic header was sent", h.Path)
		}
	}
	if _, err := clanforge.New(clanforge.Config{BaseURL: "https://api.example", ASID: 1, Token: "a b"}); err == nil || strings.Contains(err.Error(), "a b") {
		t.Errorf("a token with a space: %v", err)
	}
}

// TestEchoedBasicCredentialsAreMasked: a server that echoes the Basic
// header (base64 of key:secret) or the query-escaped secret gets neither
// into the client's errors.
func TestEchoedBasicCredentialsAreMasked(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageversion/2/status": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, `{"error":true,"error_message":"bad `+r.Header.Get("Authorization")+` for `+strings.ReplaceAll(testSecret, "/", "%2F")+`"}`)
		},
	})
	_, err := f.client(t, nil).VersionStatus(ctx(t), 2)
	b64 := base64.StdEncoding.EncodeToString([]byte(testAccess + ":" + testSecret))
	if err == nil || strings.Contains(err.Error(), b64) || strings.Contains(err.Error(), "tEsTsEcReTkEy") {
		t.Fatalf("err = %v", err)
	}
}

// TestImageStatusDetail: the v2 counters per fleet and region with the
// region's name, decoded leniently (numbers as strings, an empty region
// list as []).
func TestImageStatusDetail(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v2/project/4242/image/5531/status": respond(200, `{
		"fleets": {
			"`+testFleet+`": {
				"regions": {"f15a6c27": {"name": "Europe", "pending_machines": "2", "failed_machines": 0, "completed_machines": 14}},
				"pending_machines": 2, "failed_machines": 0, "completed_machines": 14},
			"empty-fleet": {"regions": [], "pending_machines": 0, "failed_machines": null, "completed_machines": 0}
		},
		"pending_machines": 2, "failed_machines": 0, "completed_machines": "14"}`)})
	st, err := f.client(t, nil).ImageStatus(ctx(t), 5531, true)
	if err != nil {
		t.Fatal(err)
	}
	want := clanforge.Counters{Pending: 2, Completed: 14}
	eu := st.Fleets[testFleet].Regions["f15a6c27"]
	if st.Counters != want || st.Fleets[testFleet].Counters != want || eu.Name != "Europe" || eu.Counters != want {
		t.Errorf("status %+v", st)
	}
	if e, ok := st.Fleets["empty-fleet"]; !ok || len(e.Regions) != 0 {
		t.Errorf("empty fleet %+v %v", e, ok)
	}
	if q := f.all()[0].Query; q.Get("detail") != "true" || q.Has("accountserviceid") {
		t.Errorf("query %v", q)
	}
}
