package steps

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
	"github.com/rollout/rollout/plan"
)

// sent is one request as it reached the server.
type sent struct {
	Method string
	Path   string
	Query  url.Values
}

// recorder stands in front of the simulator and records every request.
type recorder struct {
	mu   sync.Mutex
	reqs []sent
}

func (r *recorder) front(s *sim.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, sent{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query()})
		r.mu.Unlock()
		s.ServeHTTP(w, req)
	})
}

func (r *recorder) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.reqs...)
}

const bucketURL = "s3://AKIAXX:TOPSECRETVALUE@builds/game/1.4.2/"

// TestDescribeIsWhatIsSent holds issue 13 item 5: the preview renders the
// very requests the client sends. The plan's instances run for real
// (steps, client, simulator, with a recorder in front), then every call
// Describe lists for an instance that ran must match a request the server
// saw: the same method, path and query, where placeholders stand for the
// ids the run made (<diffid from X> the diff X made, <diffid> any id) and
// display values stand for secrets (the url from ${env:BUCKET_URL} is
// shown as ${env:BUCKET_URL}, and sent resolved). The only parameter the
// preview cannot know is the game id image/options is sent with, which
// the client finds at run time.
func TestDescribeIsWhatIsSent(t *testing.T) {
	src := strings.Replace(simPlan, `url: "s3://AKIAXX:TOPSECRETVALUE@builds/game/${vars.build}/"`, `url: "${env:BUCKET_URL}"`, 1)
	tests := []struct {
		name string
		src  string
		sc   sim.Scenario
		// reject: run the on_failure reject of the failed instance too.
		reject bool
	}{
		// The diff fails once, so its retry is sent.
		{"full rollout", src, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "checksum"}}}, false},
		// The gate fails; the on_failure reject runs (image/options,
		// imagediff/<id>/reject with reinstall=1).
		{"gate false then reject", strings.Replace(src, "max_changed: 300", "max_changed: 0", 1),
			sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "checksum"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.Parse(t.Name()+".yaml", []byte(tt.src), plan.Options{LookupEnv: func(k string) (string, bool) {
				return bucketURL, k == "BUCKET_URL"
			}})
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			r := newRecordingRig(t, p, tt.sc, rec)
			ran := []*plan.Instance{}
			failed, err := r.run(t)
			for _, in := range p.Instances {
				if r.outs[in.ID] != nil {
					ran = append(ran, in)
				}
			}
			if tt.reject {
				if err == nil {
					t.Fatal("the gate did not fail")
				}
				for _, fi := range p.FailureInstances {
					for _, tr := range fi.Trigger {
						if tr == failed {
							if _, err := Run(t.Context(), r.env, fi, r.inputs(fi), nil); err != nil {
								t.Fatalf("reject: %v", err)
							}
							ran = append(ran, fi)
						}
					}
				}
			} else if err != nil {
				t.Fatalf("%s: %v", failed.ID, err)
			}
			reqs := rec.all()
			described := 0
			for _, in := range ran {
				for _, c := range Describe(in, p.ASID) {
					if c.Method == "" {
						continue
					}
					described++
					if why := r.findSent(c, in, reqs); why != "" {
						t.Errorf("%s: described %s %s %v was not sent: %s", in.ID, c.Method, c.Endpoint, c.Params, why)
					}
					for _, v := range c.Params {
						if strings.Contains(v, "TOPSECRET") {
							t.Errorf("%s: the preview shows a secret: %v", in.ID, c.Params)
						}
					}
				}
			}
			if described < 6 {
				t.Fatalf("only %d calls described", described)
			}
		})
	}
}

func newRecordingRig(t *testing.T, p *plan.Plan, sc sim.Scenario, rec *recorder) *simRig {
	t.Helper()
	sc.Speed = 400
	e := simtest.Start(t, p, sc, simtest.ReadAttempts(3), simtest.Front(rec.front))
	pol := PollPolicy{Min: 5 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5}
	j := &MemJournal{}
	return &simRig{p: p, srv: e.Server, client: e.Client, j: j, outs: map[string]*plan.Output{},
		env: &Env{Client: e.Client, Journal: j, Poll: pol, Installs: NewInstallWatcher(e.Client, pol)}}
}

var placeholderRE = regexp.MustCompile(`<[^>]*>`)

// resolve gives the values a placeholder of instance in stands for in this
// run: "<diffid from X>" the diff X made, "<versionid from X>" the version
// X made, and the generic ones the ids in's own output holds (<updateid>,
// <diffid>, <imageversionid>, and for <jobid> each install job it queued).
func (r *simRig) resolve(in *plan.Instance, ph string) []string {
	inner := strings.TrimSuffix(strings.TrimPrefix(ph, "<"), ">")
	field, from, found := strings.Cut(inner, " from ")
	if !found {
		from = in.ID
	}
	out := r.outs[from]
	if out == nil {
		return []string{"<no output of " + from + ">"}
	}
	id := func(v int64) []string { return []string{strconv.FormatInt(v, 10)} }
	switch field {
	case "diffid":
		return id(out.DiffID)
	case "versionid", "imageversionid":
		return id(out.VersionID)
	case "updateid":
		return id(out.Job.ID)
	case "jobid":
		var ids []string
		for _, j := range out.JobIDs {
			ids = append(ids, strconv.FormatInt(j, 10))
		}
		return ids
	}
	return []string{"<unknown placeholder " + ph + ">"}
}

// findSent looks for a request that c (a call of in) describes; "" when
// found, else why the closest one (same method and path) differs.
func (r *simRig) findSent(c Call, in *plan.Instance, reqs []sent) string {
	pattern := placeholderRE.ReplaceAllStringFunc(regexp.QuoteMeta(c.Endpoint), func(ph string) string {
		// QuoteMeta left < and > alone; the text inside may hold escapes.
		vals := r.resolve(in, strings.ReplaceAll(ph, `\`, ""))
		for i := range vals {
			vals[i] = regexp.QuoteMeta(vals[i])
		}
		return "(" + strings.Join(vals, "|") + ")"
	})
	pathRE := regexp.MustCompile("^" + pattern + "$")
	why := "no request to that path"
	for _, s := range reqs {
		if s.Method != c.Method || !pathRE.MatchString(s.Path) {
			continue
		}
		if d := r.queryDiff(c, in, s); d != "" {
			why = fmt.Sprintf("closest sent %s?%s: %s", s.Path, s.Query.Encode(), d)
			continue
		}
		return ""
	}
	return why
}

// queryDiff compares the described parameters with a sent query.
func (r *simRig) queryDiff(c Call, in *plan.Instance, s sent) string {
	seen := map[string]bool{}
	for k, v := range c.Params {
		seen[k] = true
		got, has := s.Query.Get(k), s.Query.Has(k)
		switch {
		case strings.HasPrefix(v, "<1 if "):
			// full: auto, decided from the diff's file lists.
			want := r.outs[in.Diff.ID] != nil && r.outs[in.Diff.ID].Changed == 0
			if has != want || (has && got != "1") {
				return fmt.Sprintf("full=%q sent (present %v) for a diff with %d changes", got, has, r.outs[in.Diff.ID].Changed)
			}
		case k == "url":
			// A secret: shown by its display value, sent resolved.
			if v != "${env:BUCKET_URL}" || got != bucketURL {
				return fmt.Sprintf("url shown %q, sent %q", v, got)
			}
		case placeholderRE.MatchString(v):
			if want := r.resolve(in, v); !has || len(want) != 1 || got != want[0] {
				return fmt.Sprintf("%s=%q, want %q", k, got, want)
			}
		default:
			if !has || got != v {
				return fmt.Sprintf("%s=%q sent, %q shown", k, got, v)
			}
		}
	}
	for k := range s.Query {
		if !seen[k] && !(k == "gameid" && strings.HasSuffix(s.Path, "/image/options")) {
			return fmt.Sprintf("%s=%q sent but not shown", k, s.Query.Get(k))
		}
	}
	return ""
}
