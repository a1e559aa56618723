package clanforge_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
)

// TestLockReadingReused: imageupdate/create and imagediff/create use a lock
// holder the client learned within Config.LockReuse instead of reading
// image/options again (issue 12), and read it again whenever that knowledge
// is old, spent or unknown. Each case counts the image/options reads that
// precede the create it ends with; the client is given the image's game,
// so no read goes to finding it.
func TestLockReadingReused(t *testing.T) {
	const options = "/cfp/v1/image/options"
	tests := []struct {
		name  string
		reuse time.Duration
		// run drives the client; it returns the error of the last call.
		run func(t *testing.T, c *clanforge.Client, upd *atomic.Int32) error
		// reads is how many image/options reads the whole run makes.
		reads int
	}{
		{"a pre-flight reading stands in for the update's", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			_, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
			return err
		}, 1},
		{"nothing known: read", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			_, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
			return err
		}, 1},
		{"reuse off: read", -1, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			_, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
			return err
		}, 2},
		{"an old reading: read", 20 * time.Millisecond, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			time.Sleep(40 * time.Millisecond)
			_, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
			return err
		}, 2},
		{"another image's reading: read", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			_, err := c.CreateUpdate(ctx(t), 5532, 770001, "d", "")
			return err
		}, 2},
		{"our update ended: the diff needs no read", 0, func(t *testing.T, c *clanforge.Client, upd *atomic.Int32) error {
			ownUpdateEnds(t, c, upd, 0)
			_, err := c.CreateDiff(ctx(t), 5531, 770001)
			return err
		}, 1},
		// The image is known free only as of the last read that showed
		// the update going: anyone may have taken the lock since it
		// ended, however recent the read that saw it ended.
		{"our update seen going long ago: read", 150 * time.Millisecond, func(t *testing.T, c *clanforge.Client, upd *atomic.Int32) error {
			ownUpdateEnds(t, c, upd, 200*time.Millisecond)
			_, err := c.CreateDiff(ctx(t), 5531, 770001)
			return err
		}, 2},
		{"a diff's reject forgets: read", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			if _, err := c.RejectDiff(ctx(t), 12, false); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateDiff(ctx(t), 5531, 770001)
			return err
		}, 3}, // the reject reads the lock itself
		{"a version create forgets: read", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			if _, err := c.CreateVersion(ctx(t), 12, clanforge.VersionOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateDiff(ctx(t), 5531, 770001)
			return err
		}, 2},
		{"a made diff spends the reading: read", 0, func(t *testing.T, c *clanforge.Client, _ *atomic.Int32) error {
			mustOptions(t, c)
			if _, err := c.CreateDiff(ctx(t), 5531, 770001); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
			return err
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upd atomic.Int32 // the update's state id
			upd.Store(4)
			job := respond(200, `{"updateid":11,"diffid":12,"imageversionid":13,"jobstateid":2,"jobstatename":"Pending"}`)
			routes := everyEndpoint(job, respond(200, `{"games":[]}`))
			routes["/cfp/v1/imageupdate/11/status"] = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `{"updateid":11,"jobstateid":`+itoa(int(upd.Load()))+`}`)
			}
			f := newFake(t, routes)
			c := f.client(t, func(cfg *clanforge.Config) { cfg.LockReuse, cfg.GameID = tt.reuse, 1 })
			if err := tt.run(t, c, &upd); err != nil {
				t.Fatal(err)
			}
			if got := f.count(options); got != tt.reads {
				t.Errorf("image/options read %d times, want %d (requests: %v)", got, tt.reads, f.paths())
			}
		})
	}
}

// TestReusedReadingStillSettles: the holder a create compares against
// after a lost answer may come from the memo; the settle then proves the
// same things as after a fresh read. A refusal that names another
// client's lock stays a refusal: only a lost answer is ever settled.
func TestReusedReadingStillSettles(t *testing.T) {
	t.Run("lost diff answer: the new holder is ours", func(t *testing.T) {
		st := &lockState{}
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options": st.options,
			"/cfp/v1/imagediff/create": func(w http.ResponseWriter, r *http.Request) {
				st.mu.Lock()
				st.diffID = 42
				st.mu.Unlock()
				dropConnection(t, w)
			},
			"/cfp/v1/imagediff/42/status": respond(200, `{"diffid":42,"jobstateid":2,"jobstatename":"Pending"}`),
		})
		c := f.client(t, func(cfg *clanforge.Config) { cfg.GameID = 1 })
		mustOptions(t, c)
		j, err := c.CreateDiff(ctx(t), 5531, 770001)
		if err != nil || j.ID != 42 {
			t.Fatalf("job %+v, err %v: want diff 42 adopted", j, err)
		}
		if f.count("/cfp/v1/imagediff/create") != 1 || f.count("/cfp/v1/image/options") != 2 {
			t.Errorf("requests: %v", f.paths())
		}
	})
	t.Run("lock taken since the reading: refused, not adopted", func(t *testing.T) {
		st := &lockState{}
		f := newFake(t, map[string]http.HandlerFunc{
			"/cfp/v1/image/options":      st.options,
			"/cfp/v1/imagediff/create":   respond(200, `{"success":false,"error":true,"error_code":1,"error_message":"image locked by diffid: 99"}`),
			"/cfp/v1/imageupdate/create": respond(200, `{"success":false,"error":true,"error_code":1,"error_message":"image locked by diffid: 99"}`),
		})
		c := f.client(t, func(cfg *clanforge.Config) { cfg.GameID = 1 })
		mustOptions(t, c)
		st.mu.Lock()
		st.diffID = 99 // another client's diff, after the reading
		st.mu.Unlock()
		_, err := c.CreateDiff(ctx(t), 5531, 770001)
		var le *clanforge.LockedError
		if !errors.As(err, &le) || le.HolderID != 99 {
			t.Fatalf("err = %v, want the lock refusal naming diff 99", err)
		}
		// The refusal taught the client the holder: the next create
		// knows it without a read.
		_, err = c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
		if !errors.As(err, &le) {
			t.Fatalf("err = %v", err)
		}
		if f.count("/cfp/v1/image/options") != 1 {
			t.Errorf("requests: %v", f.paths())
		}
	})
}

// TestReadingOfAnUpdateEnds: a reading that names an update as the lock
// holder (on resume, the pre-flight finds the rollout's own update) is
// freed by a read of that update showing it ended, as one this client
// made is. Kept as "update 11 holds", it made a later diff create whose
// answer was lost compare against a holder that was gone: the lock "moved"
// from the update to nothing, which proves nothing, and the run stopped
// on an unknown outcome instead of resending.
func TestReadingOfAnUpdateEnds(t *testing.T) {
	st := &lockState{updateID: 11}
	var sends atomic.Int32
	f := newFake(t, map[string]http.HandlerFunc{
		"/cfp/v1/image/options": st.options,
		"/cfp/v1/imageupdate/11/status": func(w http.ResponseWriter, r *http.Request) {
			st.mu.Lock()
			st.updateID = 0 // ended: the lock is released
			st.mu.Unlock()
			writeJSON(w, 200, `{"updateid":11,"jobstateid":5}`)
		},
		"/cfp/v1/imagediff/create": func(w http.ResponseWriter, r *http.Request) {
			if sends.Add(1) == 1 {
				dropConnection(t, w) // lost, and nothing made
				return
			}
			st.mu.Lock()
			st.diffID = 42
			st.mu.Unlock()
			writeJSON(w, 200, `{"diffid":42,"jobstateid":1}`)
		},
	})
	c := f.client(t, func(cfg *clanforge.Config) { cfg.GameID = 1 })
	mustOptions(t, c) // the pre-flight: update 11 holds the lock
	if j, err := c.UpdateStatus(ctx(t), 11); err != nil || j.State != clanforge.StateCompleted {
		t.Fatalf("update %+v, err %v", j, err)
	}
	j, err := c.CreateDiff(ctx(t), 5531, 770001)
	if err != nil || j.ID != 42 {
		t.Fatalf("job %+v, err %v: want the diff made by the resend", j, err)
	}
	if sends.Load() != 2 {
		t.Errorf("diff create sent %d times, want 2 (requests: %v)", sends.Load(), f.paths())
	}
}

// mustOptions reads image 5531's options, as the pre-flight does.
func mustOptions(t *testing.T, c *clanforge.Client) {
	t.Helper()
	if _, err := c.ImageOptions(ctx(t), 5531); err != nil {
		t.Fatal(err)
	}
}

// ownUpdateEnds makes update 11 on image 5531 (reading its lock first),
// reads it going, waits gap, and reads it completed.
func ownUpdateEnds(t *testing.T, c *clanforge.Client, upd *atomic.Int32, gap time.Duration) {
	t.Helper()
	j, err := c.CreateUpdate(ctx(t), 5531, 770001, "d", "")
	if err != nil || j.ID != 11 {
		t.Fatalf("update %+v, err %v", j, err)
	}
	upd.Store(4)
	if j, err := c.UpdateStatus(ctx(t), 11); err != nil || j.State != clanforge.StateRunning {
		t.Fatalf("update %+v, err %v", j, err)
	}
	time.Sleep(gap)
	upd.Store(5)
	if j, err := c.UpdateStatus(ctx(t), 11); err != nil || j.State != clanforge.StateCompleted {
		t.Fatalf("update %+v, err %v", j, err)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
