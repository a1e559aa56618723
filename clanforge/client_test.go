package clanforge_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"golang.org/x/time/rate"
)

func TestNewValidates(t *testing.T) {
	ok := clanforge.Config{BaseURL: "https://api.example", ASID: 1, AccessKey: "a", SecretKey: "s"}
	tests := []struct {
		name string
		mod  func(*clanforge.Config)
		want string
	}{
		{"relative base", func(c *clanforge.Config) { c.BaseURL = "api.example" }, "base URL"},
		{"ftp base", func(c *clanforge.Config) { c.BaseURL = "ftp://api.example" }, "base URL"},
		{"creds in base", func(c *clanforge.Config) { c.BaseURL = "https://u:p@api.example" }, "must not carry credentials"},
		{"no asid", func(c *clanforge.Config) { c.ASID = 0 }, "ASID"},
		{"no access key", func(c *clanforge.Config) { c.AccessKey = "" }, "access key"},
		{"no secret key", func(c *clanforge.Config) { c.SecretKey = "" }, "secret key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := clanforge.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), ":p@") {
				t.Fatalf("error leaks credentials: %v", err)
			}
		})
	}
	if _, err := clanforge.New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

// TestRequestShape checks path, query, auth and headers of every endpoint.
func TestRequestShape(t *testing.T) {
	ok := respond(200, `{"success":true,"updateid":1,"diffid":1,"imageversionid":1,"machinejobid":1,"jobstateid":1}`)
	f := newFake(t, everyEndpoint(ok, respond(200, `{"games":[]}`)))
	c := f.client(t, func(c *clanforge.Config) { c.GameID = 1201 })
	cx := ctx(t)

	type call struct {
		name  string
		do    func() error
		path  string // the call's own request (the last one sent)
		query map[string]string
		// absent lists parameters that must not be sent.
		absent []string
	}
	calls := []call{
		{"CreateUpdate", func() error {
			_, err := c.CreateUpdate(cx, 5531, 770001, `"build 7"`, "s3://k:s@bucket/b7/")
			return err
		}, "/cfp/v1/imageupdate/create", map[string]string{"imageid": "5531", "machineid": "770001", "desc": `"build 7"`, "url": "s3://k:s@bucket/b7/"}, nil},
		{"CreateUpdate default url", func() error {
			_, err := c.CreateUpdate(cx, 5531, 770001, "build 8", "")
			return err
		}, "/cfp/v1/imageupdate/create", map[string]string{"imageid": "5531", "desc": "build 8"}, []string{"url"}},
		{"UpdateStatus", func() error { _, err := c.UpdateStatus(cx, 11); return err }, "/cfp/v1/imageupdate/11/status", nil, nil},
		{"CreateDiff", func() error { _, err := c.CreateDiff(cx, 5531, 770001); return err },
			"/cfp/v1/imagediff/create", map[string]string{"imageid": "5531", "machineid": "770001"}, []string{"diffid"}},
		{"DiffStatus", func() error { _, err := c.DiffStatus(cx, 12); return err }, "/cfp/v1/imagediff/12/status", nil, []string{"diff_info"}},
		{"RetryDiff", func() error { _, err := c.RetryDiff(cx, 12); return err }, "/cfp/v1/imagediff/12/retry", nil, nil},
		{"RejectDiff", func() error { _, err := c.RejectDiff(cx, 12, false); return err }, "/cfp/v1/imagediff/12/reject", map[string]string{"reinstall": "0"}, nil},
		{"RejectDiff reinstall", func() error { _, err := c.RejectDiff(cx, 12, true); return err }, "/cfp/v1/imagediff/12/reject", map[string]string{"reinstall": "1"}, nil},
		{"CreateVersion minimal", func() error {
			_, err := c.CreateVersion(cx, 12, clanforge.VersionOptions{})
			return err
		}, "/cfp/v1/imageversion/create", map[string]string{"diffid": "12", "restart": "0"},
			// full and force are documented as 1 or absent.
			[]string{"full", "force", "install_at", "game_build", "disable_timeout", "disable_percentage"}},
		{"CreateVersion full", func() error {
			_, err := c.CreateVersion(cx, 12, clanforge.VersionOptions{Restart: true, Full: true, GameBuild: "1.2.3", Force: true, InstallNow: true, DisableTimeout: 30, DisablePercentage: 95.5})
			return err
		}, "/cfp/v1/imageversion/create", map[string]string{"diffid": "12", "restart": "1", "full": "1", "force": "1", "game_build": "1.2.3",
			"install_at": "NOW()", "disable_timeout": "30", "disable_percentage": "95.50"}, nil},
		{"VersionStatus", func() error { _, err := c.VersionStatus(cx, 13); return err }, "/cfp/v1/imageversion/13/status", nil, nil},
		{"InstallStatus", func() error { _, err := c.InstallStatus(cx); return err }, "/cfp/v1/imageinstall/status", nil, nil},
		{"QueueInstall machine", func() error { _, err := c.QueueInstall(cx, 14, false); return err }, "/cfp/v1/imageinstall/14/queue", map[string]string{"mirroring": "false"}, nil},
		{"QueueInstall mirror", func() error { _, err := c.QueueInstall(cx, 14, true); return err }, "/cfp/v1/imageinstall/14/queue", map[string]string{"mirroring": "true"}, nil},
		{"ImageStatus", func() error { _, err := c.ImageStatus(cx, 5531, true); return err }, "/cfp/v2/project/4242/image/5531/status", map[string]string{"detail": "true"}, nil},
		{"ImageStatus totals", func() error { _, err := c.ImageStatus(cx, 5531, false); return err }, "/cfp/v2/project/4242/image/5531/status", map[string]string{"detail": "false"}, nil},
		{"ImageOptions", func() error { _, err := c.ImageOptions(cx, 5531); return err }, "/cfp/v1/image/options", map[string]string{"imageid": "5531", "gameid": "1201"}, nil},
	}
	for _, cl := range calls {
		t.Run(cl.name, func(t *testing.T) {
			if err := cl.do(); err != nil {
				t.Fatalf("call failed: %v", err)
			}
			hits := f.all()
			last := hits[len(hits)-1]
			if last.Path != cl.path {
				t.Fatalf("last request went to %s, want %s", last.Path, cl.path)
			}
			for _, h := range hits {
				// The v2 status carries the ASID in its path only.
				wantASID := "4242"
				if strings.HasPrefix(h.Path, "/cfp/v2/") {
					wantASID = ""
				}
				if got, has := h.Query.Get("accountserviceid"), h.Query.Has("accountserviceid"); got != wantASID || (wantASID == "") == has {
					t.Errorf("%s: accountserviceid = %q (present %v), want %q", h.Path, got, has, wantASID)
				}
				user, pass, ok := (&http.Request{Header: h.Header}).BasicAuth()
				if !ok || user != testAccess || pass != testSecret {
					t.Errorf("%s: Basic auth missing or wrong", h.Path)
				}
				if ct := h.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("%s: Content-Type = %q", h.Path, ct)
				}
			}
			for k, v := range cl.query {
				if got := last.Query.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range cl.absent {
				if last.Query.Has(k) {
					t.Errorf("%s sent but must not be", k)
				}
			}
		})
	}
}

// TestDocSamples decodes the API document's sample answers over HTTP.
func TestDocSamples(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageupdate/90412/status":       respond(200, sample(t, "update_status.json")),
		"/cfp/v1/imagediff/218596/status":        respond(200, sample(t, "diff_status.json")),
		"/cfp/v1/imageversion/48811/status":      respond(200, sample(t, "version_status.json")),
		"/cfp/v1/imageinstall/status":            respond(200, sample(t, "install_status.json")),
		"/cfp/v1/imageinstall/661203/queue":      respond(200, sample(t, "install_queue.json")),
		"/cfp/v2/project/4242/image/5531/status": respond(200, sample(t, "image_status.json")),
		"/cfp/v1/image/options":                  respond(200, sample(t, "image_options.json")),
		"/cfp/v1/imageversion/create":            respond(200, sample(t, "version_create.json")),
	})
	c := f.client(t, nil)
	cx := ctx(t)

	up, err := c.UpdateStatus(cx, 90412)
	if err != nil {
		t.Fatal(err)
	}
	wantUp := clanforge.Job{ID: 90412, Created: time.Unix(1717403100, 0), Start: time.Unix(1717403112, 0), Updated: time.Unix(1717403290, 0),
		ETA: time.Unix(1717403400, 0), Progress: 64, State: clanforge.StateRunning, StateName: "Running"}
	if !reflect.DeepEqual(*up, wantUp) {
		t.Errorf("update status:\n got %+v\nwant %+v", *up, wantUp)
	}

	d, err := c.DiffStatus(cx, 218596)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != 218596 || d.State != clanforge.StateCompleted || d.Changed() != 3 ||
		!reflect.DeepEqual(d.Added, []string{"Data/level9.pak"}) || !reflect.DeepEqual(d.Modified, []string{"GameServer.x86_64"}) ||
		!reflect.DeepEqual(d.Removed, []string{"Data/old_intro.bik"}) {
		t.Errorf("diff status: %+v", d)
	}

	v, err := c.VersionStatus(cx, 48811)
	if err != nil || v.ID != 48811 || v.State != clanforge.StateCompleted || v.Progress != 100 {
		t.Errorf("version status: %+v, %v", v, err)
	}

	vc, err := c.CreateVersion(cx, 218596, clanforge.VersionOptions{})
	if err != nil || vc.ID != 48811 || vc.State != clanforge.StateCreated || !vc.Start.IsZero() {
		t.Errorf("version create: %+v, %v", vc, err)
	}

	ins, err := c.InstallStatus(cx)
	if err != nil {
		t.Fatal(err)
	}
	wantIns := []clanforge.Install{{
		Job: clanforge.Job{ID: 661203, Created: time.Unix(1717404421, 0), Start: time.Unix(1717404430, 0), Updated: time.Unix(1717404490, 0),
			ETA: time.Unix(1717404600, 0), Progress: 40, State: clanforge.StateRunning, StateName: "Running"},
		Machine: 812345, Location: 31, ImagePath: "/home/cf/5531", TargetVersionID: 48811, InstallAt: time.Unix(1717404421, 0),
	}}
	if !reflect.DeepEqual(ins, wantIns) {
		t.Errorf("install status:\n got %+v\nwant %+v", ins, wantIns)
	}

	q, err := c.QueueInstall(cx, 661203, false)
	if err != nil || q.MachineJobID != 661203 || q.InstallsSquashed != 1 || q.State != clanforge.StateQueued || q.AlreadyQueued {
		t.Errorf("queue: %+v, %v", q, err)
	}

	st, err := c.ImageStatus(cx, 5531, true)
	if err != nil {
		t.Fatal(err)
	}
	wantSt := clanforge.ImageStatus{
		Counters: clanforge.Counters{Pending: 2, Completed: 14},
		Fleets: map[string]clanforge.FleetStatus{"c0a3e2a1-6955-415c-b1d4-af9199833e6a": {
			Counters: clanforge.Counters{Pending: 2, Completed: 14},
			Regions: map[string]clanforge.RegionStatus{"f15a6c27-de2a-4848-abc3-9579fbfd2259": {
				Name: "Europe", Counters: clanforge.Counters{Pending: 2, Completed: 14}}},
		}},
	}
	if !reflect.DeepEqual(*st, wantSt) {
		t.Errorf("image status:\n got %+v\nwant %+v", *st, wantSt)
	}

	o, err := c.ImageOptions(cx, 5531)
	if err != nil {
		t.Fatal(err)
	}
	if o.DiffID != 218596 || o.UpdateID != 0 || len(o.Images) != 2 || o.Images[1] != (clanforge.NamedID{ID: 5531, Name: "Image B"}) ||
		len(o.Machines) != 1 || o.Machines[0].ID != 770001 || o.Games[0].ID != 1201 {
		t.Errorf("image options: %+v", o)
	}
	kind, id, err := c.LockHolder(cx, 5531)
	if err != nil || kind != "diff" || id != 218596 {
		t.Errorf("LockHolder = %q %d %v", kind, id, err)
	}
}

// TestLenientDecoding serves the spellings the docs leave open.
func TestLenientDecoding(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imagediff/1/status": respond(200, `{"diffid":"1","jobcreated":"1717403500","jobstart":1717403503,"jobupdated":null,
			"jobeta":"","jobprogress":"55","jobstateid":"4","jobstatename":"Running","jobfailed":"2","joberror":null,
			"added":[],"modified":{"b":{},"a":[]},"removed":null}`),
		"/cfp/v1/imageinstall/status": respond(200, `{"installs":[{"jobid":"7","jobstateid":2,"jobstatename":"Pending",
			"mirroring":"1","machine":"buildbox-eu","location":"31","restart":true,"install_at":null,"target_imageversionid":"9"}]}`),
		"/cfp/v1/imageinstall/7/queue": respond(200, `{"machinejobid":"7","installs_squashed":"2","jobstatename":"Queued"}`),
		"/cfp/v1/image/options":        respond(200, `{"diffid":null,"updateid":"90412"}`),
	})
	c := f.client(t, nil)
	cx := ctx(t)
	d, err := c.DiffStatus(cx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Created != time.Unix(1717403500, 0) || d.Start != time.Unix(1717403503, 0) || !d.Updated.IsZero() || !d.ETA.IsZero() ||
		d.Progress != 55 || d.State != clanforge.StateRunning || d.Failed != 2 || len(d.Added) != 0 ||
		!reflect.DeepEqual(d.Modified, []string{"a", "b"}) || d.Removed != nil {
		t.Errorf("diff: %+v", d)
	}
	ins, err := c.InstallStatus(cx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].ID != 7 || !ins[0].Mirroring || ins[0].Machine != 0 || ins[0].MachineName != "buildbox-eu" ||
		ins[0].Location != 31 || !ins[0].Restart || !ins[0].InstallAt.IsZero() || ins[0].TargetVersionID != 9 || ins[0].State != clanforge.StatePending {
		t.Errorf("installs: %+v", ins)
	}
	q, err := c.QueueInstall(cx, 7, true)
	// No jobstateid: the state comes from the documented name.
	if err != nil || q.InstallsSquashed != 2 || q.ID != 7 || q.State != clanforge.StateQueued {
		t.Errorf("queue: %+v %v", q, err)
	}
	kind, id, err := c.LockHolder(cx, 1)
	if err != nil || kind != "update" || id != 90412 {
		t.Errorf("LockHolder = %q %d %v", kind, id, err)
	}
}

// TestErrorPaths runs every error answer through a read and a state-changing
// call. Business errors come with 200 (API §7 #1), so the envelope is
// checked whatever the status.
func TestErrorPaths(t *testing.T) {
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			if !ok {
				writeJSON(w, 401, `{"success":false,"error":true,"error_code":1,"error_message":"Forbidden"}`)
				return
			}
			if user != testAccess || pass != testSecret {
				writeJSON(w, 403, `{"success":false,"error":true,"error_code":1,"error_message":"Forbidden"}`)
				return
			}
			h(w, r)
		}
	}
	type want struct {
		status  int    // APIError.HTTPStatus; 0: not an APIError
		message string // APIError.Message
		is      []error
		notIs   []error
		kind    string // LockedError holder
		holder  int64
		decode  bool // *DecodeError for a read
		unknown bool // *OutcomeUnknownError for a mutating call
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		secret  string // client's secret; "" = the right one
		read    want
		mutate  want
	}{
		{name: "envelope with 200",
			handler: respond(200, `{"success":false,"error":true,"error_code":1,"error_message":"diff is not completed","messages":[],"_debug":[]}`),
			read:    want{status: 200, message: "diff is not completed", notIs: []error{clanforge.ErrLocked, clanforge.ErrAuth}},
			mutate:  want{status: 200, message: "diff is not completed"}},
		{name: "success false with message and 200",
			handler: respond(200, `{"success":false,"error_message":"validation failed: url"}`),
			read:    want{status: 200, message: "validation failed: url"},
			mutate:  want{status: 200, message: "validation failed: url"}},
		{name: "400 envelope",
			handler: respond(400, `{"success":false,"error":true,"error_code":1,"error_message":"imageid missing"}`),
			read:    want{status: 400, message: "imageid missing"},
			mutate:  want{status: 400, message: "imageid missing"}},
		{name: "400 without body",
			handler: respond(400, ``),
			read:    want{status: 400},
			mutate:  want{status: 400}},
		{name: "403 invalid credentials", handler: authed(respond(200, `{}`)), secret: "wrong-secret",
			read:   want{status: 403, message: "Forbidden", is: []error{clanforge.ErrAuth}},
			mutate: want{status: 403, message: "Forbidden", is: []error{clanforge.ErrAuth}}},
		{name: "401 without envelope",
			handler: respond(401, `Unauthorized`),
			read:    want{status: 401, is: []error{clanforge.ErrAuth}},
			mutate:  want{status: 401, is: []error{clanforge.ErrAuth}}},
		{name: "403 no credentials accepted",
			handler: respond(403, `{"error":true,"error_message":"Forbidden"}`),
			read:    want{status: 403, message: "Forbidden", is: []error{clanforge.ErrAuth}},
			mutate:  want{status: 403, message: "Forbidden", is: []error{clanforge.ErrAuth}}},
		{name: "404",
			handler: respond(404, `{"success":false,"error":true,"error_code":1,"error_message":"no such diff"}`),
			read:    want{status: 404, message: "no such diff", is: []error{clanforge.ErrNotFound}, notIs: []error{clanforge.ErrAuth}},
			mutate:  want{status: 404, message: "no such diff", is: []error{clanforge.ErrNotFound}}},
		{name: "locked by diff",
			handler: respond(200, sample(t, "error_locked.json")),
			read:    want{status: 200, message: "image locked by diffid: 218595", is: []error{clanforge.ErrLocked}, kind: "diff", holder: 218595},
			mutate:  want{status: 200, message: "image locked by diffid: 218595", is: []error{clanforge.ErrLocked}, kind: "diff", holder: 218595}},
		{name: "locked by update, other case, 400",
			handler: respond(400, `{"error":true,"error_code":1,"error_message":"Image Locked By UpdateID: 90412"}`),
			read:    want{status: 400, message: "Image Locked By UpdateID: 90412", is: []error{clanforge.ErrLocked}, kind: "update", holder: 90412},
			mutate:  want{status: 400, message: "Image Locked By UpdateID: 90412", is: []error{clanforge.ErrLocked}, kind: "update", holder: 90412}},
		{name: "locked with 500 is still a refusal",
			handler: respond(500, `{"error":true,"error_message":"image locked by diffid: 5"}`),
			read:    want{status: 500, is: []error{clanforge.ErrLocked}, kind: "diff", holder: 5, message: "image locked by diffid: 5"},
			mutate:  want{status: 500, is: []error{clanforge.ErrLocked}, kind: "diff", holder: 5, message: "image locked by diffid: 5"}},
		{name: "malformed JSON",
			handler: respond(200, `{"imageversionid": 48811, "jobstateid": `),
			read:    want{decode: true},
			mutate:  want{decode: true, unknown: true}},
		{name: "impossible field type",
			handler: respond(200, `{"imageversionid": {"x":1}, "jobstateid": 1}`),
			read:    want{decode: true},
			mutate:  want{decode: true, unknown: true}},
		{name: "empty body",
			handler: respond(200, ``),
			read:    want{decode: true},
			mutate:  want{decode: true, unknown: true}},
		{name: "HTML from a proxy",
			handler: respond(200, `<html>maintenance</html>`),
			read:    want{decode: true},
			mutate:  want{decode: true, unknown: true}},
		{name: "500 without body",
			handler: respond(500, ``),
			read:    want{status: 500},
			mutate:  want{unknown: true}},
	}
	for _, tt := range tests {
		for _, mutating := range []bool{false, true} {
			name := tt.name + "/read"
			w := tt.read
			if mutating {
				name = tt.name + "/mutate"
				w = tt.mutate
			}
			t.Run(name, func(t *testing.T) {
				f := newFake(t, map[string]http.HandlerFunc{
					"/cfp/v1/imageversion/1/status": tt.handler,
					"/cfp/v1/imageversion/create":   tt.handler,
				})
				c := f.client(t, func(c *clanforge.Config) {
					c.MaxReadAttempts = 2
					if tt.secret != "" {
						c.SecretKey = tt.secret
					}
				})
				var err error
				var path string
				if mutating {
					_, err = c.CreateVersion(ctx(t), 1, clanforge.VersionOptions{})
					path = "/cfp/v1/imageversion/create"
				} else {
					_, err = c.VersionStatus(ctx(t), 1)
					path = "/cfp/v1/imageversion/1/status"
				}
				if err == nil {
					t.Fatal("no error")
				}
				if mutating && f.count(path) != 1 {
					t.Errorf("state-changing call sent %d times", f.count(path))
				}
				var ae *clanforge.APIError
				if w.status != 0 {
					if !errors.As(err, &ae) {
						t.Fatalf("err = %T %v, want *APIError", err, err)
					}
					if ae.HTTPStatus != w.status || ae.Message != w.message || ae.Endpoint != path {
						t.Errorf("APIError = %+v, want status %d message %q endpoint %s", *ae, w.status, w.message, path)
					}
				}
				for _, target := range w.is {
					if !errors.Is(err, target) {
						t.Errorf("errors.Is(%v, %v) = false", err, target)
					}
				}
				for _, target := range w.notIs {
					if errors.Is(err, target) {
						t.Errorf("errors.Is(%v, %v) = true", err, target)
					}
				}
				var le *clanforge.LockedError
				if w.kind != "" {
					if !errors.As(err, &le) || le.HolderKind != w.kind || le.HolderID != w.holder {
						t.Errorf("err = %v, want locked by %s %d", err, w.kind, w.holder)
					}
				} else if errors.As(err, &le) {
					t.Errorf("unexpected LockedError %v", err)
				}
				var de *clanforge.DecodeError
				if w.decode != errors.As(err, &de) {
					t.Errorf("DecodeError: got %v, want %v (%v)", !w.decode, w.decode, err)
				}
				if w.unknown != errors.Is(err, clanforge.ErrOutcomeUnknown) {
					t.Errorf("outcome unknown: want %v, err %v", w.unknown, err)
				}
				if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "accountserviceid=") {
					t.Errorf("error leaks request details: %v", err)
				}
			})
		}
	}
}

// TestFailedJobIsNotAnError: success:false on a status read of a Failed job
// is a job outcome, not a request error (API §7 #2).
func TestFailedJobIsNotAnError(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageupdate/5/status": respond(200, `{"updateid":5,"jobstateid":6,"jobstatename":"Failed","jobfailed":1,"joberror":"bucket not found","success":false}`),
	})
	j, err := f.client(t, nil).UpdateStatus(ctx(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != clanforge.StateFailed || j.Error != "bucket not found" || j.Failed != 1 || !j.State.Terminal() {
		t.Errorf("job = %+v", j)
	}
}

// TestRetryAfterHoldsBackEveryRequest: a 429 with Retry-After on one request
// delays a second, concurrent request of the same client too. The check uses
// the server's own arrival timestamps: no request may arrive before the 429
// was answered plus its Retry-After.
func TestRetryAfterHoldsBackEveryRequest(t *testing.T) {
	var (
		mu     sync.Mutex
		sent   time.Time // when the 429 was answered
		n429   atomic.Int32
		seen   = make(chan struct{})
		closed sync.Once
	)
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageupdate/1/status": func(w http.ResponseWriter, r *http.Request) {
			if n429.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				writeJSON(w, http.StatusTooManyRequests, `{"error":true,"error_message":"slow down"}`)
				mu.Lock()
				sent = time.Now()
				mu.Unlock()
				return
			}
			writeJSON(w, 200, `{"updateid":1,"jobstateid":4}`)
		},
		"/cfp/v1/imageversion/2/status": respond(200, `{"imageversionid":2,"jobstateid":5}`),
	})
	c := f.client(t, func(c *clanforge.Config) {
		c.OnRequest = func(method, path string, status int) {
			if status == http.StatusTooManyRequests {
				closed.Do(func() { close(seen) })
			}
		}
	})
	cx := ctx(t)
	errA := make(chan error, 1)
	go func() { _, err := c.UpdateStatus(cx, 1); errA <- err }()
	<-seen
	// The first request has been refused; the second must wait as well.
	if _, err := c.VersionStatus(cx, 2); err != nil {
		t.Fatal(err)
	}
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	holdEnd := sent.Add(time.Second)
	mu.Unlock()
	hits := f.all()
	if len(hits) != 3 {
		t.Fatalf("server saw %d requests, want 3: %v", len(hits), f.paths())
	}
	for _, h := range hits[1:] {
		if h.At.Before(holdEnd) {
			t.Errorf("%s arrived %v before the Retry-After window ended", h.Path, holdEnd.Sub(h.At))
		}
	}
	if got := c.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}
}

// TestReadRetriesServerErrors: a burst of 5xx and a dropped connection, then
// success; every attempt is counted.
func TestReadRetriesServerErrors(t *testing.T) {
	var n atomic.Int32
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imagediff/3/status": func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) {
			case 1:
				writeJSON(w, 503, `upstream unavailable`)
			case 2:
				dropConnection(t, w)
			case 3:
				writeJSON(w, 500, `{"error":true,"error_message":"internal"}`)
			default:
				writeJSON(w, 200, `{"diffid":3,"jobstateid":5,"added":{"x":{}}}`)
			}
		},
	})
	var statuses []int
	var mu sync.Mutex
	c := f.client(t, func(c *clanforge.Config) {
		c.MaxReadAttempts = 6
		c.OnRequest = func(_, _ string, status int) { mu.Lock(); statuses = append(statuses, status); mu.Unlock() }
	})
	d, err := c.DiffStatus(ctx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != 3 || d.Changed() != 1 {
		t.Errorf("diff = %+v", d)
	}
	if got := f.count("/cfp/v1/imagediff/3/status"); got < 4 {
		t.Errorf("server saw %d attempts, want at least 4", got)
	}
	// The dropped connection may be replayed inside net/http (the read
	// client reuses connections), which neither the hook nor Requests()
	// can see; so the server's count is checked with "at least".
	if c.Requests() != int64(len(statuses)) || len(statuses) < 3 || statuses[0] != 503 || statuses[len(statuses)-1] != 200 {
		t.Errorf("Requests() = %d, hook saw %v", c.Requests(), statuses)
	}
}

func TestReadGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imagediff/3/status": respond(502, ``)})
	c := f.client(t, func(c *clanforge.Config) { c.MaxReadAttempts = 3 })
	_, err := c.DiffStatus(ctx(t), 3)
	var ae *clanforge.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 502 {
		t.Fatalf("err = %v", err)
	}
	if got := f.count("/cfp/v1/imagediff/3/status"); got != 3 {
		t.Errorf("attempts = %d, want 3", got)
	}
}

func TestReadStopsWithContext(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imagediff/3/status": respond(503, ``)})
	cx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := f.client(t, func(c *clanforge.Config) {
		c.MaxReadAttempts = 0 // retry until ctx ends
		c.OnRequest = func(_, _ string, _ int) {
			if f.count("/cfp/v1/imagediff/3/status") >= 3 {
				cancel()
			}
		}
	})
	_, err := c.DiffStatus(cx, 3)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestMutating429IsResent: a 429 proves the server did nothing, so a
// state-changing call is sent again after Retry-After.
func TestMutating429IsResent(t *testing.T) {
	var n atomic.Int32
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageversion/create": func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "0")
				writeJSON(w, 429, ``)
				return
			}
			writeJSON(w, 200, sample(t, "version_create.json"))
		},
	})
	j, err := f.client(t, nil).CreateVersion(ctx(t), 1, clanforge.VersionOptions{})
	if err != nil || j.ID != 48811 {
		t.Fatalf("job %+v, err %v", j, err)
	}
	if got := f.count("/cfp/v1/imageversion/create"); got != 2 {
		t.Errorf("sent %d times, want 2", got)
	}
}

func TestRateLimited429Error(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imageversion/1/status": respond(429, `{"error":true,"error_message":"too many"}`)})
	c := f.client(t, func(c *clanforge.Config) { c.MaxReadAttempts = 1 })
	_, err := c.VersionStatus(ctx(t), 1)
	if !errors.Is(err, clanforge.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
}

// TestErrorsNeverCarryCredentials: net/http's *url.Error names the full URL,
// and imageupdate/create's url parameter carries bucket credentials.
func TestErrorsNeverCarryCredentials(t *testing.T) {
	const bucketURL = "s3://AKIABUCKETKEY:bUcKeTsEcReT%2Fx@my-bucket/builds/7/"
	secrets := []string{"AKIABUCKETKEY", "bUcKeTsEcReT", testSecret, testAccess, "accountserviceid=", "?url"}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error contains %q: %v", s, err)
			}
		}
	}
	t.Run("dropped create", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options":      respond(200, `{}`),
			"/cfp/v1/imageupdate/create": func(w http.ResponseWriter, r *http.Request) { dropConnection(t, w) },
		})
		_, err := f.client(t, nil).CreateUpdate(ctx(t), 1, 2, "d", bucketURL)
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
			t.Errorf("err = %v, want outcome unknown", err)
		}
		check(t, err)
	})
	t.Run("server echoes the url", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options": respond(200, `{}`),
			"/cfp/v1/imageupdate/create": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `{"error":true,"error_message":"cannot read `+r.URL.Query().Get("url")+` with key `+testSecret+`"}`)
			},
		})
		_, err := f.client(t, nil).CreateUpdate(ctx(t), 1, 2, "d", bucketURL)
		check(t, err)
	})
	t.Run("server gone", func(t *testing.T) {
		f := newFake(t, nil)
		c := f.client(t, func(c *clanforge.Config) { c.MaxReadAttempts = 2 })
		f.srv.Close()
		_, err := c.CreateUpdate(ctx(t), 1, 2, "d", bucketURL)
		check(t, err)
		_, err = c.CreateVersion(ctx(t), 1, clanforge.VersionOptions{GameBuild: "x"})
		check(t, err)
		if errors.Is(err, clanforge.ErrOutcomeUnknown) {
			t.Errorf("a refused dial cannot have sent anything, yet: %v", err)
		}
	})
	t.Run("interrupted and never answered", func(t *testing.T) {
		release := make(chan struct{})
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options":      respond(200, `{}`),
			"/cfp/v1/imageupdate/create": func(w http.ResponseWriter, r *http.Request) { <-release },
		})
		defer close(release)
		c := f.client(t, func(c *clanforge.Config) { c.MutatingTimeout = 50 * time.Millisecond })
		cx, cancel := context.WithCancel(ctx(t))
		go func() {
			for f.count("/cfp/v1/imageupdate/create") == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		_, err := c.CreateUpdate(cx, 1, 2, "d", bucketURL)
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
			t.Errorf("err = %v, want outcome unknown", err)
		}
		check(t, err)
	})
}

// TestRateLimitIsClientWide: with a budget of one request and a refill far
// beyond the deadline, the second call of any kind is not sent at all.
func TestRateLimitIsClientWide(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageversion/1/status": respond(200, `{"imageversionid":1,"jobstateid":4}`),
		"/cfp/v1/imageversion/create":   respond(200, `{"imageversionid":1,"jobstateid":1}`),
	})
	c := f.client(t, func(c *clanforge.Config) { c.RateLimit = 0.0001; c.Burst = 1 })
	cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.VersionStatus(cx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVersion(cx, 1, clanforge.VersionOptions{}); err == nil {
		t.Fatal("second call went through the rate limit")
	} else if errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Fatalf("a call held back by the limiter was never sent, yet: %v", err)
	}
	if got := len(f.all()); got != 1 || c.Requests() != 1 {
		t.Fatalf("server saw %d requests, Requests() = %d; want 1", got, c.Requests())
	}
}

// TestCreateNeedsTheLockReadFirst: without the "before" read a lost answer
// could not be settled, so the create is not sent.
func TestCreateNeedsTheLockReadFirst(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options":    respond(403, `{"error":true,"error_message":"Forbidden"}`),
		"/cfp/v1/imagediff/create": respond(200, sample(t, "diff_create.json")),
	})
	_, err := f.client(t, nil).CreateDiff(ctx(t), 1, 2)
	if !errors.Is(err, clanforge.ErrAuth) || !strings.Contains(err.Error(), "before imagediff/create") {
		t.Fatalf("err = %v", err)
	}
	if f.count("/cfp/v1/imagediff/create") != 0 {
		t.Fatal("create sent without the lock read")
	}
}

// TestCreateUpdateNeedsDesc: desc is a required parameter of
// imageupdate/create (API §4.1); a blank one is refused before anything is
// sent, the lock read included.
func TestCreateUpdateNeedsDesc(t *testing.T) {
	for _, desc := range []string{"", "  ", `""`, `" "`} {
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options":      respond(200, `{"games":[{"gameid":1,"name":"g"}]}`),
			"/cfp/v1/imageupdate/create": respond(200, `{"updateid":1,"jobstateid":1,"success":true}`),
		})
		_, err := f.client(t, nil).CreateUpdate(ctx(t), 5531, 770001, desc, "s3://b/x/")
		if err == nil || !strings.Contains(err.Error(), "desc") {
			t.Errorf("desc %q: err = %v, want a refusal naming desc", desc, err)
		}
		if n := len(f.all()); n != 0 {
			t.Errorf("desc %q: %d requests sent: %v", desc, n, f.paths())
		}
	}
}

// TestInterruptWaitsForAnAnswerAlreadyOnItsWay: once a state-changing
// request has left, an interrupt does not cut it off: its answer is still
// read, so the caller learns the job it made instead of a lost answer.
func TestInterruptWaitsForAnAnswerAlreadyOnItsWay(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options": respond(200, `{}`),
		"/cfp/v1/imageupdate/create": func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-release
			writeJSON(w, 200, sample(t, "update_create.json"))
		},
	})
	c := f.client(t, nil)
	cx, cancel := context.WithCancel(ctx(t))
	go func() {
		<-arrived
		cancel()
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	j, err := c.CreateUpdate(cx, 1, 2, "d", "s3://b/x/")
	if err != nil || j.ID != 90412 {
		t.Fatalf("job %+v, err %v: want the job the call made", j, err)
	}
	// Nothing new is sent after the interrupt.
	if _, err := c.CreateDiff(cx, 1, 2); err == nil || f.count("/cfp/v1/imagediff/create") != 0 {
		t.Fatalf("a create was sent after the interrupt: %v", err)
	}
}

// TestRateLimitCanBeLifted: rate.Inf lifts the client's cap. With a cap of
// one request per 10,000 s and a burst of one, the second call could not
// go before the deadline (see TestRateLimitIsClientWide); lifted, twenty
// go, the burst setting notwithstanding.
func TestRateLimitCanBeLifted(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imageversion/1/status": respond(200, `{"imageversionid":1,"jobstateid":4}`)})
	c := f.client(t, func(c *clanforge.Config) { c.RateLimit = rate.Inf; c.Burst = 1 })
	cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := c.VersionStatus(cx, 1); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
}

// TestWithSentAtIsTheLastAttempt: WithSentAt records when the call's last
// attempt left the client, after the retries before it: the first attempt
// of a read refused with a 500 had arrived, and been answered, before it;
// the second arrived after it.
func TestWithSentAtIsTheLastAttempt(t *testing.T) {
	var n atomic.Int32
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/imageupdate/1/status": func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				writeJSON(w, http.StatusInternalServerError, `{}`)
				return
			}
			writeJSON(w, 200, `{"updateid":1,"jobstateid":4}`)
		},
	})
	c := f.client(t, nil)
	var sent time.Time
	if _, err := c.UpdateStatus(clanforge.WithSentAt(ctx(t), &sent), 1); err != nil {
		t.Fatal(err)
	}
	hits := f.all()
	if len(hits) != 2 {
		t.Fatalf("%d attempts, want 2", len(hits))
	}
	if !sent.After(hits[0].At) || sent.After(hits[1].At) {
		t.Errorf("sent at %v: the attempts arrived at %v and %v", sent, hits[0].At, hits[1].At)
	}
}
