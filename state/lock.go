package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockInfo is what a running rollout writes into its state directory's lock
// file, so that a second run can say who holds it.
type LockInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// LockedError says that another rollout holds the state directory. The
// holder's pid and start time come from the lock file; they are zero when the
// holder had not written them yet.
type LockedError struct {
	Path   string
	Holder LockInfo
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h.PID == 0 {
		return fmt.Sprintf("another rollout holds %s; wait for it to end or stop it", e.Path)
	}
	who := fmt.Sprintf("pid %d", h.PID)
	if me, _ := os.Hostname(); h.Host != "" && h.Host != me {
		who += " on host " + h.Host
	}
	if !h.Started.IsZero() {
		who += ", started " + h.Started.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("another rollout (%s) holds %s; wait for it to end or stop it", who, e.Path)
}

// dirLock is an exclusive flock on <dir>/lock. flock is tied to the open file
// description, so the kernel releases it when the process dies however it
// dies: a lock file left behind by a dead process is not held and is simply
// taken over.
type dirLock struct {
	f    *os.File
	path string
	// stale is what a dead holder left in the file, if anything.
	stale *LockInfo
}

const lockName = "lock"

func acquireLock(dir string, now time.Time) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			info, _ := readLockInfo(f)
			return nil, &LockedError{Path: path, Holder: info}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &dirLock{f: f, path: path}
	if prev, err := readLockInfo(f); err == nil && prev.PID != 0 {
		l.stale = &prev
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(LockInfo{PID: os.Getpid(), Host: host, Started: now.UTC()})
	b = append(b, '\n')
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(b, 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			l.release()
			return nil, fmt.Errorf("write lock file %s: %w", path, err)
		}
	} else {
		l.release()
		return nil, fmt.Errorf("write lock file %s: %w", path, err)
	}
	return l, nil
}

func readLockInfo(f *os.File) (LockInfo, error) {
	var info LockInfo
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err != nil {
		return info, err
	}
	if len(b) == 0 {
		return info, errors.New("empty lock file")
	}
	err = json.Unmarshal(b, &info)
	return info, err
}

// release empties the lock file before unlocking it, so that the next run
// sees a clean hand-over rather than a stale holder. The file itself stays:
// removing it would let two runs lock two different inodes of the same name.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
