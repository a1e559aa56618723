package state

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout/rollout/steps"
)

// watchedFile records what the journal does with its file: each write's
// record type and each sync, in order. A sync may be held until released,
// to line up callers behind it.
type watchedFile struct {
	journalFile
	mu     sync.Mutex
	ops    []string
	hold   chan struct{} // when set, Sync waits for it
	inSync chan struct{} // told when a held Sync starts
	writes chan struct{} // told after each write
}

func (w *watchedFile) Write(b []byte) (int, error) {
	n, err := w.journalFile.Write(b)
	typ := "?"
	if i := bytes.Index(b, []byte(`"type":"`)); i >= 0 {
		typ = string(b[i+8:])
		typ = typ[:strings.IndexByte(typ, '"')]
	}
	w.mu.Lock()
	w.ops = append(w.ops, "write "+typ)
	w.mu.Unlock()
	if w.writes != nil {
		w.writes <- struct{}{}
	}
	return n, err
}

func (w *watchedFile) Sync() error {
	w.mu.Lock()
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		w.inSync <- struct{}{}
		<-hold
	}
	err := w.journalFile.Sync()
	w.mu.Lock()
	w.ops = append(w.ops, "sync")
	w.mu.Unlock()
	return err
}

func (w *watchedFile) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.ops...)
}

func openWatched(t *testing.T) (*Journal, *watchedFile) {
	t.Helper()
	w := &watchedFile{}
	j, err := Open(t.TempDir(), "p", "h", func(o *options) {
		o.wrap = func(f journalFile) journalFile { w.journalFile = f; return w }
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, w
}

// syncedAfterLast reports whether ops holds a sync after the last write of
// a record of type typ.
func syncedAfterLast(ops []string, typ string) bool {
	last := -1
	for i, op := range ops {
		if op == "write "+typ {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	for _, op := range ops[last+1:] {
		if op == "sync" {
			return true
		}
	}
	return false
}

// TestIntentIsSyncedBeforeItReturns: an intent is on disk, synced, when
// Intent returns, since the call goes out right after; so are the answers,
// outcomes and listed installs written before it, which are written
// without a sync of their own; and Close syncs whatever is left.
func TestIntentIsSyncedBeforeItReturns(t *testing.T) {
	j, w := openWatched(t)
	if err := j.Result("k0", 7, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.SeenInstalls([]steps.SeenInstall{{InstallInterest: steps.InstallInterest{VersionID: 3, Machine: 4}, ID: 9}}); err != nil {
		t.Fatal(err)
	}
	if err := j.Intent("k1", "/cfp/v1/imagediff/create", map[string]string{"imageid": "1"}); err != nil {
		t.Fatal(err)
	}
	ops := w.log()
	for _, typ := range []string{TypeResult, TypeInstalls, TypeIntent} {
		if !syncedAfterLast(ops, typ) {
			t.Errorf("no sync after the %s record when Intent returned: %v", typ, ops)
		}
	}
	if err := j.Outcome("diff@b/g", "succeeded", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if ops := w.log(); !syncedAfterLast(ops, TypeOutcome) {
		t.Errorf("Close left the outcome unsynced: %v", ops)
	}
}

// TestRareRecordsAreSynced: a run's start and end, and waits and their
// decisions, are synced when their call returns.
func TestRareRecordsAreSynced(t *testing.T) {
	j, w := openWatched(t)
	if !syncedAfterLast(w.log(), TypePlan) {
		t.Errorf("the plan record of a new journal is not synced: %v", w.log())
	}
	if err := j.Start(RunStartInfo{}); err != nil {
		t.Fatal(err)
	}
	if !syncedAfterLast(w.log(), TypeRunStart) {
		t.Errorf("run_start not synced: %v", w.log())
	}
	if err := j.FinishVerdict("succeeded"); err != nil {
		t.Fatal(err)
	}
	if !syncedAfterLast(w.log(), TypeFinish) {
		t.Errorf("finish not synced: %v", w.log())
	}
}

// TestIntentsShareASync: intents that come while a sync is under way wait
// for one more sync, which covers them all (group commit), rather than one
// each; and none returns before a sync that covers it.
func TestIntentsShareASync(t *testing.T) {
	j, w := openWatched(t)
	const n = 20
	w.mu.Lock()
	w.hold, w.inSync, w.writes = make(chan struct{}), make(chan struct{}, 2*n), make(chan struct{}, 2*n)
	w.mu.Unlock()
	var once sync.Once
	release := func() { once.Do(func() { close(w.hold) }) }
	t.Cleanup(release) // before the journal's Close, which syncs
	before := strings.Count(strings.Join(w.log(), ","), "sync")
	var wg sync.WaitGroup
	var returned sync.Map
	intent := func(i int) {
		defer wg.Done()
		if err := j.Intent("k"+string(rune('a'+i)), "/cfp/v1/imagediff/create", nil); err != nil {
			t.Error(err)
		}
		returned.Store(i, true)
	}
	// A journal that never syncs would leave this test waiting: give up
	// rather than hang.
	wait := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("%s never happened: %v", what, w.log())
		}
	}
	wg.Add(1)
	go intent(0)
	wait(w.writes, "the first intent's write")
	wait(w.inSync, "the first intent's sync") // under way, and held
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go intent(i)
	}
	for i := 1; i < n; i++ {
		wait(w.writes, "another intent's write") // written, and waiting
	}
	returned.Range(func(k, _ any) bool {
		t.Errorf("intent %v returned before any sync covered it", k)
		return true
	})
	release() // the first sync, and every later one
	wg.Wait()
	syncs := strings.Count(strings.Join(w.log(), ","), "sync") - before
	if syncs != 2 {
		t.Errorf("%d intents took %d syncs, want 2 (the first one's, then one for the rest): %v", n, syncs, w.log())
	}
	for i := 0; i < n; i++ {
		if _, ok := returned.Load(i); !ok {
			t.Errorf("intent %d never returned", i)
		}
	}
}
