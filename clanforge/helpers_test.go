package clanforge_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"golang.org/x/time/rate"
)

const (
	testASID   = 4242
	testAccess = "AKIATESTACCESSKEY"
	testSecret = "tEsTsEcReTkEy/123"
)

// hit is one request as the fake server saw it.
type hit struct {
	Seq    int
	Method string
	Body   string
	Path   string
	Query  url.Values
	Header http.Header
	Remote string
	At     time.Time
}

// fakeAPI is a real HTTP server with one handler per path. It records every
// request in arrival order.
type fakeAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	routes map[string]http.HandlerFunc
}

func newFake(t *testing.T, routes map[string]http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{routes: routes}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.hits = append(f.hits, hit{Seq: len(f.hits), Method: r.Method, Body: string(body), Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Remote: r.RemoteAddr, At: time.Now()})
		h := f.routes[r.URL.Path]
		f.mu.Unlock()
		if h == nil {
			writeJSON(w, http.StatusNotFound, `{"success":false,"error":true,"error_code":1,"error_message":"not found"}`)
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.hits {
		if h.Path == path {
			n++
		}
	}
	return n
}

func (f *fakeAPI) all() []hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hit(nil), f.hits...)
}

func (f *fakeAPI) paths() []string {
	var out []string
	for _, h := range f.all() {
		out = append(out, h.Path)
	}
	return out
}

// client returns a client for the fake with fast backoff and no rate limit;
// mod adjusts the config.
func (f *fakeAPI) client(t *testing.T, mod func(*clanforge.Config)) *clanforge.Client {
	t.Helper()
	cfg := clanforge.Config{
		BaseURL:         f.srv.URL,
		ASID:            testASID,
		AccessKey:       testAccess,
		SecretKey:       testSecret,
		RateLimit:       rate.Inf,
		MaxReadAttempts: 4,
		Backoff:         time.Millisecond,
		MaxBackoff:      5 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := clanforge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// respond returns a handler that always answers status and body.
// everyEndpoint routes each v1 endpoint and the v2 image status of the
// tests' ids (image 5531, update 11, diff 12, version 13, install 14) to a
// fake answer: ok for those that answer with a job, options for
// image/options; the diff's status, reject and the lists with answers of
// their own shape.
func everyEndpoint(ok, options http.HandlerFunc) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"/cfp/v1/imageupdate/create":             ok,
		"/cfp/v1/imageupdate/11/status":          ok,
		"/cfp/v1/imagediff/create":               ok,
		"/cfp/v1/imagediff/12/status":            respond(200, `{"diffid":12,"jobstateid":5,"image":{"imageid":5531}}`),
		"/cfp/v1/imagediff/12/retry":             ok,
		"/cfp/v1/imagediff/12/reject":            respond(200, `{"diffid":12}`),
		"/cfp/v1/imageversion/create":            ok,
		"/cfp/v1/imageversion/13/status":         ok,
		"/cfp/v1/imageinstall/status":            respond(200, `{"installs":[]}`),
		"/cfp/v1/imageinstall/14/queue":          ok,
		"/cfp/v2/project/4242/image/5531/status": respond(200, `{"pending_machines":0}`),
		"/cfp/v1/image/options":                  options,
	}
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status, body) }
}

// dropConnection closes the connection without an answer: the server did the
// work, the client never hears about it.
func dropConnection(t *testing.T, w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("response writer cannot hijack")
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	_ = conn.Close()
}

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
