package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckFree reports whether another live rollout holds dir: it returns a
// *LockedError naming the holder (pid, host, start) when one does, and nil
// when the directory is free or does not exist. Unlike Open it changes
// nothing, so that a dead holder's lock file still tells Open whom it
// takes over from. A run asks this first, so that a rollout in progress is
// never mistaken for one that "did not finish".
func CheckFree(dir string) error {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			info, _ := readLockInfo(f)
			return &LockedError{Path: path, Holder: info}
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
