package clanforge

import (
	"sync"
	"time"
)

// DefaultLockReuse is how old a lock reading may be for CreateUpdate and
// CreateDiff to use it as the holder "before the call" instead of reading
// image/options again (Config.LockReuse).
//
// Why a recent reading is as good as a new one: the holder read before a
// create only matters when the create's answer is lost, and then only if
// another client took the image's lock between that reading and the call,
// in which case its job would be taken for ours. A read made just before
// the call leaves that window open too, for as long as the read's own way
// to the server and the rate limiter's wait before the call (a tenth of a
// second at the default rate). A reading from the pre-flight, or the last
// read that showed this client's own update still holding the lock, widens
// the window by well under a second; at the default rate it spares one
// request of every update and every diff, a tenth of a small rollout's
// requests (issue 12).
const DefaultLockReuse = time.Second

// lockReading is what the client last learned of an image's lock holder:
// kind "diff", "update" or "" (free) and the holder's id, as the API showed
// it at some moment no earlier than at. For a free image, at is when the
// holder could last be known: another client may have taken the lock at
// any moment since.
type lockReading struct {
	kind string
	id   int64
	at   time.Time
}

// lockMemo remembers the lock holder of each image as image/options, the
// lock errors and this client's own update calls showed it. It is only
// ever a stand-in for a read made just before a create (see
// DefaultLockReuse); every call that may release or take a lock in a way
// the memo cannot follow (a diff's reject, retry or acceptance) forgets
// what it knew.
type lockMemo struct {
	mu      sync.Mutex
	byImage map[int64]lockReading
	// updates maps each update seen holding a lock to its image, so that
	// a read of the update that shows it ended frees the image: whether
	// this client made it or a reading named it (on resume the
	// pre-flight finds the rollout's own update holding the lock).
	updates map[int64]int64
}

// set records that image img's lock was held by kind/id at at (API §6.3:
// an update in progress locks its image, as a diff does).
func (m *lockMemo) set(img int64, kind string, id int64, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byImage == nil {
		m.byImage = map[int64]lockReading{}
		m.updates = map[int64]int64{}
	}
	m.byImage[img] = lockReading{kind: kind, id: id, at: at}
	if kind == "update" {
		m.updates[id] = img
	}
}

// updateRead takes in a read of update id asked at at: still going, it
// holds its image's lock as of at; ended, it released the lock, at a
// moment after the last read that showed it going (the reading's at),
// and since then anyone may have taken it.
func (m *lockMemo) updateRead(id int64, j *Job, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	img, ok := m.updates[id]
	if !ok {
		return
	}
	r := m.byImage[img]
	if r.kind != "update" || r.id != id {
		delete(m.updates, id)
		return
	}
	switch {
	case j.State.Terminal():
		m.byImage[img] = lockReading{at: r.at}
		delete(m.updates, id)
	case j.State >= StateCreated && j.State <= StateRunning:
		if at.After(r.at) {
			r.at = at
			m.byImage[img] = r
		}
	default:
		// A state the client cannot place says nothing of the lock.
		delete(m.byImage, img)
		delete(m.updates, id)
	}
}

// forget drops what is known of image img.
func (m *lockMemo) forget(img int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byImage, img)
}

// forgetAll drops everything: a call changed some image's lock in a way
// the memo does not follow.
func (m *lockMemo) forgetAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.byImage)
	clear(m.updates)
}

// recent returns image img's holder when it was known no longer than
// maxAge before now.
func (m *lockMemo) recent(img int64, maxAge time.Duration, now time.Time) (lockReading, bool) {
	if maxAge <= 0 {
		return lockReading{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byImage[img]
	if !ok || now.Sub(r.at) > maxAge {
		return lockReading{}, false
	}
	return r, true
}
