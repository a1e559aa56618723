package clanforge_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rollout/rollout/clanforge"
)

// lockState is a tiny image model for the settle tests: the lock holder that
// image/options reports, changed by the handlers that "do the work".
type lockState struct {
	mu       sync.Mutex
	diffID   int64
	updateID int64
	jobs     int // jobs the server created
}

func (s *lockState) options(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := `{"games":[]`
	if s.diffID != 0 {
		body += fmt.Sprintf(`,"diffid":%d`, s.diffID)
	}
	if s.updateID != 0 {
		body += fmt.Sprintf(`,"updateid":%d`, s.updateID)
	}
	writeJSON(w, 200, body+`}`)
}

// TestLostCreateAnswers: the answer of a create is lost (500 or a dropped
// connection). When the server did the work, the call is sent exactly once
// and the new lock holder is returned as the job the call made. When the lock
// holder is unchanged, a diff create provably made nothing (a diff locks its
// image at once) and is sent again, MaxResends (here 2) times at most, then
// reported as not applied; an update create is never resent, because a
// finished update leaves no lock to prove anything, and its error says so.
func TestLostCreateAnswers(t *testing.T) {
	type lose int
	const (
		lose500 lose = iota
		loseDrop
	)
	tests := []struct {
		name       string
		kind       string // update or diff
		lose       lose
		before     [2]int64 // diffID, updateID holding before the call
		wantID     int64    // 0: outcome unknown, or not applied
		settleWork bool     // false: the server does not do the work
		sends      int      // how many times the create may be sent
		// notApplied: the reads proved every send harmless and the
		// resends ran out (ErrNotApplied, not ErrOutcomeUnknown).
		notApplied bool
	}{
		{"update 500", "update", lose500, [2]int64{0, 0}, 77, true, 1, false},
		{"update dropped", "update", loseDrop, [2]int64{0, 0}, 77, true, 1, false},
		{"update dropped, no work done", "update", loseDrop, [2]int64{0, 0}, 0, false, 1, false},
		{"diff 500", "diff", lose500, [2]int64{0, 0}, 42, true, 1, false},
		{"diff dropped", "diff", loseDrop, [2]int64{0, 0}, 42, true, 1, false},
		// Unchanged holders prove no diff was made: resent twice, and
		// those answers are lost too here.
		{"diff dropped, no work done", "diff", loseDrop, [2]int64{0, 0}, 0, false, 3, true},
		// A holder that was there before the call is someone else's.
		{"diff dropped, old holder stays", "diff", loseDrop, [2]int64{42, 0}, 0, false, 3, true},
		// An update holder does not prove a diff create.
		{"diff dropped, update holds", "diff", loseDrop, [2]int64{0, 9}, 0, false, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &lockState{diffID: tt.before[0], updateID: tt.before[1]}
			createPath := "/cfp/v1/image" + tt.kind + "/create"
			f := newFake(t, map[string]http.HandlerFunc{
				"/cfp/v1/image/options": st.options,
				createPath: func(w http.ResponseWriter, r *http.Request) {
					if tt.settleWork {
						st.mu.Lock()
						st.jobs++
						if tt.kind == "diff" {
							st.diffID = 42
						} else {
							st.updateID = 77
						}
						st.mu.Unlock()
					}
					if tt.lose == lose500 {
						writeJSON(w, 500, `{"error":true,"error_message":"gateway timeout"}`)
						return
					}
					dropConnection(t, w)
				},
				"/cfp/v1/imagediff/42/status":   respond(200, `{"diffid":42,"jobstateid":2,"jobstatename":"Pending"}`),
				"/cfp/v1/imageupdate/77/status": respond(200, `{"jobstateid":4,"jobstatename":"Running"}`),
			})
			c := f.client(t, func(cfg *clanforge.Config) { cfg.MaxResends = 2 })
			var j *clanforge.Job
			var err error
			if tt.kind == "diff" {
				j, err = c.CreateDiff(ctx(t), 5531, 770001)
			} else {
				j, err = c.CreateUpdate(ctx(t), 5531, 770001, "d", "s3://k:s@b/")
			}
			if got := f.count(createPath); got != tt.sends {
				t.Fatalf("create sent %d times, want exactly %d (requests: %v)", got, tt.sends, f.paths())
			}
			if tt.notApplied {
				var na *clanforge.NotAppliedError
				if !errors.As(err, &na) || errors.Is(err, clanforge.ErrOutcomeUnknown) || na.Sends != tt.sends {
					t.Fatalf("err = %v, want not applied after %d sends", err, tt.sends)
				}
				if strings.Contains(err.Error(), "could not be settled") {
					t.Errorf("a settled outcome is called unsettled: %v", err)
				}
				return
			}
			if tt.wantID == 0 {
				if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
					t.Fatalf("err = %v, want outcome unknown", err)
				}
				if tt.kind == "update" && !strings.Contains(err.Error(), "either the call made no update, or it made one that has already finished") {
					t.Errorf("the update's error does not say what is known: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want the settled job", err)
			}
			if j.ID != tt.wantID || j.State == clanforge.StateUnknown {
				t.Errorf("job = %+v, want id %d with its state", j, tt.wantID)
			}
			if st.jobs != 1 {
				t.Errorf("server made %d jobs", st.jobs)
			}
		})
	}
}

// TestLostDiffCreateWhenTheLockMoves: the answer of a diff create is lost
// and, by the settle read, the image's lock has moved to a holder that is
// neither the one from before the call nor a new diff (another client's
// update took the image, or the old diff was released and an update came).
// That read proves nothing either way, so the create is not resent: the
// error is outcome unknown and names both holders. Resending on such a
// read would trust a lock that no longer says what the call did.
func TestLostDiffCreateWhenTheLockMoves(t *testing.T) {
	tests := []struct {
		name          string
		before, after [2]int64 // diffID, updateID: before the call, and once it arrived
		wantWords     string
	}{
		{"free, then a foreign update", [2]int64{0, 0}, [2]int64{0, 9}, "from no lock to update 9"},
		{"old diff, then a foreign update", [2]int64{42, 0}, [2]int64{0, 9}, "from diff 42 to update 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &lockState{diffID: tt.before[0], updateID: tt.before[1]}
			f := newFake(t, map[string]http.HandlerFunc{
				"/cfp/v1/image/options": st.options,
				"/cfp/v1/imagediff/create": func(w http.ResponseWriter, r *http.Request) {
					// The server makes no diff; the lock moves meanwhile.
					st.mu.Lock()
					st.diffID, st.updateID = tt.after[0], tt.after[1]
					st.mu.Unlock()
					dropConnection(t, w)
				},
			})
			c := f.client(t, func(cfg *clanforge.Config) { cfg.MaxResends = 2 })
			_, err := c.CreateDiff(ctx(t), 5531, 770001)
			if got := f.count("/cfp/v1/imagediff/create"); got != 1 {
				t.Fatalf("create sent %d times, want exactly once (requests: %v)", got, f.paths())
			}
			if !errors.Is(err, clanforge.ErrOutcomeUnknown) || errors.Is(err, clanforge.ErrNotApplied) {
				t.Fatalf("err = %v, want outcome unknown", err)
			}
			if !strings.Contains(err.Error(), tt.wantWords) {
				t.Errorf("err = %v, want it to say the lock moved %s", err, tt.wantWords)
			}
		})
	}
}

// TestLockedCreateIsRefusal: a lock answer is a definite refusal, returned
// as *LockedError without settling.
func TestLockedCreateIsRefusal(t *testing.T) {
	st := &lockState{diffID: 218595}
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options":      st.options,
		"/cfp/v1/imageupdate/create": respond(200, sample(t, "error_locked.json")),
	})
	_, err := f.client(t, nil).CreateUpdate(ctx(t), 1, 2, "d", "")
	var le *clanforge.LockedError
	if !errors.As(err, &le) || le.HolderKind != "diff" || le.HolderID != 218595 {
		t.Fatalf("err = %v", err)
	}
	// image/options twice: once to find the image's game (then cached),
	// once for the lock holder before the create.
	if f.count("/cfp/v1/imageupdate/create") != 1 || f.count("/cfp/v1/image/options") != 2 {
		t.Errorf("requests: %v", f.paths())
	}
}

// TestImageOptionsFindsTheGame: the options page wants gameid with imageid,
// so the client learns the image's game once and sends both from then on.
func TestImageOptionsFindsTheGame(t *testing.T) {
	tests := []struct {
		name     string
		games    string
		wantGame string
		lists    int // unfiltered and per-game discovery reads
	}{
		{"one game", `[{"gameid":1201,"name":"A"}]`, "1201", 1},
		{"image in the second game", `[{"gameid":1201,"name":"A"},{"gameid":1300,"name":"B"}]`, "1300", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{
				"/cfp/v1/image/options": func(w http.ResponseWriter, r *http.Request) {
					q := r.URL.Query()
					switch {
					case q.Get("gameid") == "" && q.Get("imageid") == "":
						writeJSON(w, 200, `{"games":`+tt.games+`,"images":[]}`)
					case q.Get("gameid") == "" || q.Get("imageid") == "":
						writeJSON(w, 200, `{"success":false,"error":true,"error_code":1,"error_message":"gameid and imageid must be given together"}`)
					case q.Get("gameid") == tt.wantGame:
						writeJSON(w, 200, `{"games":[],"diffid":77,"images":[{"imageid":5531,"name":"B","gameversionid":"1"}]}`)
					default:
						writeJSON(w, 200, `{"games":[],"images":[{"imageid":1,"name":"other","gameversionid":"1"}]}`)
					}
				},
			})
			c := f.client(t, nil)
			for i := 0; i < 2; i++ {
				kind, id, err := c.LockHolder(ctx(t), 5531)
				if err != nil || kind != "diff" || id != 77 {
					t.Fatalf("call %d: %q %d %v", i, kind, id, err)
				}
			}
			if got := f.count("/cfp/v1/image/options"); got != tt.lists+2 {
				t.Errorf("image/options read %d times, want %d discovery reads and 2 lock reads: %v", got, tt.lists, f.all())
			}
			last := f.all()[len(f.all())-1]
			if last.Query.Get("gameid") != tt.wantGame || last.Query.Get("imageid") != "5531" {
				t.Errorf("last query %v", last.Query)
			}
		})
	}
}

// TestNoSilentReplayOfMutatingCalls proves API §8: net/http replays a
// bodiless GET when a reused keep-alive connection fails before the answer.
// The control shows the hazard with a stock client; the client under test
// must send the call exactly once, over a new connection every time.
func TestNoSilentReplayOfMutatingCalls(t *testing.T) {
	work := func(drops *atomic.Int32) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("diffid") == "2" {
				// The second call: do the work, then lose the answer.
				drops.Add(1)
				dropConnection(t, w)
				return
			}
			writeJSON(w, 200, sample(t, "version_create.json"))
		}
	}

	t.Run("control: stock net/http replays", func(t *testing.T) {
		var drops atomic.Int32
		f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imageversion/create": work(&drops)})
		hc := &http.Client{Transport: &http.Transport{}}
		defer hc.CloseIdleConnections()
		for _, id := range []string{"1", "2"} {
			resp, err := hc.Get(f.srv.URL + "/cfp/v1/imageversion/create?diffid=" + id)
			if err == nil {
				// Read to the end: only then is the connection reused.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		if got := f.count("/cfp/v1/imageversion/create"); got != 3 || drops.Load() != 2 {
			t.Fatalf("control: server saw %d requests, want 3 (1 + the call + its silent replay); "+
				"if net/http stopped replaying, this test needs a new control", got)
		}
	})

	t.Run("client sends once", func(t *testing.T) {
		var drops atomic.Int32
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imageversion/create":   work(&drops),
			"/cfp/v1/imageversion/1/status": respond(200, sample(t, "version_status.json")),
		})
		// A stock keep-alive transport for reads: the state-changing calls
		// must still not reuse connections.
		c := f.client(t, func(cfg *clanforge.Config) { cfg.HTTPClient = &http.Client{Transport: &http.Transport{}} })
		cx := ctx(t)
		if _, err := c.CreateVersion(cx, 1, clanforge.VersionOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.VersionStatus(cx, 1); err != nil {
			t.Fatal(err)
		}
		_, err := c.CreateVersion(cx, 2, clanforge.VersionOptions{})
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want outcome unknown", err)
		}
		var creates []hit
		for _, h := range f.all() {
			if h.Path == "/cfp/v1/imageversion/create" {
				creates = append(creates, h)
			}
		}
		if len(creates) != 2 || drops.Load() != 1 {
			t.Fatalf("creates = %d (drops %d), want 2: the lost one was resent", len(creates), drops.Load())
		}
		if creates[0].Remote == creates[1].Remote {
			t.Errorf("state-changing calls shared connection %s", creates[0].Remote)
		}
	})
}

// TestLostRetryRejectQueue settles the other state-changing calls.
func TestLostRetryRejectQueue(t *testing.T) {
	t.Run("retry 500, diff back to Created", func(t *testing.T) {
		var state atomic.Int32
		state.Store(6)
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imagediff/9/status": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, fmt.Sprintf(`{"diffid":9,"jobstateid":%d,"jobcreated":100,"jobupdated":200}`, state.Load()))
			},
			"/cfp/v1/imagediff/9/retry": func(w http.ResponseWriter, r *http.Request) {
				state.Store(1)
				writeJSON(w, 502, ``)
			},
		})
		j, err := f.client(t, nil).RetryDiff(ctx(t), 9)
		if err != nil || j.ID != 9 || j.State != clanforge.StateCreated {
			t.Fatalf("job %+v, err %v", j, err)
		}
		if f.count("/cfp/v1/imagediff/9/retry") != 1 {
			t.Errorf("retry sent %d times", f.count("/cfp/v1/imagediff/9/retry"))
		}
	})
	t.Run("retry dropped, nothing changed", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imagediff/9/status": respond(200, `{"diffid":9,"jobstateid":6,"jobcreated":100,"jobupdated":200}`),
			"/cfp/v1/imagediff/9/retry":  func(w http.ResponseWriter, r *http.Request) { dropConnection(t, w) },
		})
		_, err := f.client(t, nil).RetryDiff(ctx(t), 9)
		if !errors.Is(err, clanforge.ErrOutcomeUnknown) || f.count("/cfp/v1/imagediff/9/retry") != 1 {
			t.Fatalf("err %v, sent %d", err, f.count("/cfp/v1/imagediff/9/retry"))
		}
	})
	t.Run("retry dropped, re-ran to completion already", func(t *testing.T) {
		var updated atomic.Int64
		updated.Store(200)
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imagediff/9/status": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, fmt.Sprintf(`{"diffid":9,"jobstateid":5,"jobcreated":100,"jobupdated":%d}`, updated.Load()))
			},
			"/cfp/v1/imagediff/9/retry": func(w http.ResponseWriter, r *http.Request) { updated.Store(300); dropConnection(t, w) },
		})
		j, err := f.client(t, nil).RetryDiff(ctx(t), 9)
		if err != nil || j.State != clanforge.StateCompleted {
			t.Fatalf("job %+v, err %v", j, err)
		}
	})

	rejectFake := func(t *testing.T, releases bool) (*fakeAPI, *lockState) {
		st := &lockState{diffID: 9}
		return newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imagediff/9/status": respond(200, `{"diffid":9,"jobstateid":5,"image":{"imageid":5531}}`),
			"/cfp/v1/image/options":      st.options,
			"/cfp/v1/imagediff/9/reject": func(w http.ResponseWriter, r *http.Request) {
				if releases {
					st.mu.Lock()
					st.diffID = 0
					st.mu.Unlock()
				}
				dropConnection(t, w)
			},
		}), st
	}
	t.Run("reject dropped, lock released", func(t *testing.T) {
		f, _ := rejectFake(t, true)
		res, err := f.client(t, nil).RejectDiff(ctx(t), 9, true)
		if err != nil || res.DiffID != 9 || res.Uninstall != nil {
			t.Fatalf("res %+v, err %v", res, err)
		}
		if f.count("/cfp/v1/imagediff/9/reject") != 1 {
			t.Errorf("reject sent %d times", f.count("/cfp/v1/imagediff/9/reject"))
		}
	})
	t.Run("reject dropped, lock still held", func(t *testing.T) {
		// The lock still held proves each reject took no effect: sent
		// again until the resends (here 1) run out.
		f, _ := rejectFake(t, false)
		_, err := f.client(t, func(cfg *clanforge.Config) { cfg.MaxResends = 1 }).RejectDiff(ctx(t), 9, false)
		if !errors.Is(err, clanforge.ErrNotApplied) || f.count("/cfp/v1/imagediff/9/reject") != 2 {
			t.Fatalf("err %v, sent %d", err, f.count("/cfp/v1/imagediff/9/reject"))
		}
	})
	t.Run("reject answered with reinstall job", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imagediff/9/status": respond(200, `{"diffid":9,"jobstateid":5,"image":{"imageid":5531}}`),
			"/cfp/v1/image/options":      respond(200, `{"diffid":9}`),
			"/cfp/v1/imagediff/9/reject": respond(200, sample(t, "diff_reject_reinstall.json")),
		})
		res, err := f.client(t, nil).RejectDiff(ctx(t), 9, true)
		if err != nil || res.DiffID != 9 || res.Uninstall == nil || res.Uninstall.ID != 33120 || res.Uninstall.State != clanforge.StateCreated {
			t.Fatalf("res %+v, err %v", res, err)
		}
	})

	queueFake := func(t *testing.T, after string, answer http.HandlerFunc) *fakeAPI {
		var queued atomic.Bool
		return newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/imageinstall/status": func(w http.ResponseWriter, r *http.Request) {
				if queued.Load() {
					writeJSON(w, 200, after)
					return
				}
				writeJSON(w, 200, `{"installs":[{"jobid":5,"jobstateid":2,"jobstatename":"Pending"}]}`)
			},
			"/cfp/v1/imageinstall/5/queue": func(w http.ResponseWriter, r *http.Request) {
				queued.Store(true)
				answer(w, r)
			},
		})
	}
	drop := func(w http.ResponseWriter, r *http.Request) { dropConnection(t, w) }
	queueTests := []struct {
		name    string
		after   string
		answer  http.HandlerFunc
		want    clanforge.JobState // StateUnknown + ok: left the list
		unknown bool
	}{
		{"dropped, now queued", `{"installs":[{"jobid":5,"jobstateid":3,"jobstatename":"Queued"}]}`, drop, clanforge.StateQueued, false},
		{"dropped, already gone", `{"installs":[]}`, drop, clanforge.StateUnknown, false},
		// Still Pending proves it was not queued: sent once more (the
		// test allows one resend), and that answer is lost too.
		{"500, still pending", `{"installs":[{"jobid":5,"jobstateid":2,"jobstatename":"Pending"}]}`, respond(500, ``), 0, true},
		// ... or the second answer arrives.
		{"500, resent once", `{"installs":[{"jobid":5,"jobstateid":2,"jobstatename":"Pending"}]}`, failFirst(500,
			`{"machinejobid":5,"installs_squashed":0,"jobstateid":3,"jobstatename":"Queued","success":true}`), clanforge.StateQueued, false},
		{"answered already queued", `{"installs":[]}`,
			respond(200, `{"success":false,"error":true,"error_code":1,"error_message":"Install job is Already Queued"}`), clanforge.StateUnknown, false},
	}
	for _, tt := range queueTests {
		t.Run("queue "+tt.name, func(t *testing.T) {
			f := queueFake(t, tt.after, tt.answer)
			res, err := f.client(t, func(cfg *clanforge.Config) { cfg.MaxResends = 1 }).QueueInstall(ctx(t), 5, false)
			sends := 1
			if strings.HasPrefix(tt.name, "500") {
				sends = 2 // still Pending after the first: proven not queued
			}
			if got := f.count("/cfp/v1/imageinstall/5/queue"); got != sends {
				t.Fatalf("queue sent %d times, want %d", got, sends)
			}
			if tt.unknown {
				if !errors.Is(err, clanforge.ErrNotApplied) || !strings.Contains(err.Error(), "install job 5 is still Pending") {
					t.Fatalf("err = %v, want not applied", err)
				}
				return
			}
			resent := tt.name == "500, resent once" // answered normally the second time
			if err != nil || res.AlreadyQueued == resent || res.ID != 5 || res.State != tt.want {
				t.Fatalf("res %+v, err %v", res, err)
			}
		})
	}

	t.Run("version 500 is never settled nor resent", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imageversion/create": respond(500, ``)})
		_, err := f.client(t, nil).CreateVersion(ctx(t), 1, clanforge.VersionOptions{})
		var ou *clanforge.OutcomeUnknownError
		if !errors.As(err, &ou) || ou.Endpoint != "/cfp/v1/imageversion/create" {
			t.Fatalf("err = %v", err)
		}
		if p := f.paths(); len(p) != 1 {
			t.Errorf("requests: %v, want only the create", p)
		}
	})
}

func TestFindInstall(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"/cfp/v1/imageinstall/status": respond(200, sample(t, "install_status.json"))})
	c := f.client(t, nil)
	inst, listed, err := c.FindInstall(ctx(t), 661203)
	if err != nil || !listed || inst.ID != 661203 || inst.State != clanforge.StateRunning {
		t.Fatalf("inst %+v listed %v err %v", inst, listed, err)
	}
	inst, listed, err = c.FindInstall(ctx(t), 1)
	if err != nil || listed || inst != nil {
		t.Fatalf("inst %+v listed %v err %v", inst, listed, err)
	}
}

// failFirst answers the first request with status and an empty body, and
// every later one with 200 and body.
func failFirst(status int, body string) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			writeJSON(w, status, ``)
			return
		}
		writeJSON(w, 200, body)
	}
}

// TestDiffResendRefusedByItsOwnFirstSend: the first create's answer is lost
// and the lock read right after still shows nothing (the server is slow), so
// the create is sent once more; that one is refused as locked by the diff
// the first send made, which is then ours.
func TestDiffResendRefusedByItsOwnFirstSend(t *testing.T) {
	var mu sync.Mutex
	creates, lockReads := 0, 0
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			lockReads++
			if creates >= 2 {
				writeJSON(w, 200, `{"games":[],"diffid":42}`)
				return
			}
			writeJSON(w, 200, `{"games":[]}`)
		},
		"/cfp/v1/imagediff/create": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			creates++
			n := creates
			mu.Unlock()
			if n == 1 {
				dropConnection(t, w)
				return
			}
			writeJSON(w, 200, `{"success":false,"error":true,"error_code":1,"error_message":"image locked by diffid: 42"}`)
		},
		"/cfp/v1/imagediff/42/status": respond(200, `{"diffid":42,"jobstateid":2,"jobstatename":"Pending","added":{},"modified":{},"removed":{}}`),
	})
	j, err := f.client(t, nil).CreateDiff(ctx(t), 5531, 770001)
	if err != nil || j.ID != 42 {
		t.Fatalf("job %+v, err %v: want diff 42 adopted", j, err)
	}
	if creates != 2 {
		t.Errorf("creates = %d, want 2 (one resend after a proof that nothing was made)", creates)
	}
}

// TestImageOptionsWithoutAGameList: a server that refuses the unfiltered
// listing still answers the lock read with imageid alone.
func TestImageOptionsWithoutAGameList(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("imageid") == "" {
				writeJSON(w, 400, `{"success":false,"error":true,"error_code":1,"error_message":"imageid is required"}`)
				return
			}
			writeJSON(w, 200, `{"games":[],"updateid":12}`)
		},
	})
	kind, id, err := f.client(t, nil).LockHolder(ctx(t), 5531)
	if err != nil || kind != "update" || id != 12 {
		t.Fatalf("%q %d %v", kind, id, err)
	}
	last := f.all()[len(f.all())-1]
	if last.Query.Get("imageid") != "5531" || last.Query.Get("gameid") != "" {
		t.Errorf("last query %v", last.Query)
	}
}
