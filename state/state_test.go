package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollout/rollout/plan"
)

// holdLockEnv makes the test binary a helper process that opens the state
// directory named by the variable, says "locked" and holds it until its
// stdin closes or it is killed.
const holdLockEnv = "STATE_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		j, err := Open(dir, "p", "h1")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		fmt.Println("locked")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		j.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 11, 22, 15, 4, 5, 0, time.UTC)

func clock() func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return t0.Add(time.Duration(n) * time.Second)
	}
}

func mustOpen(t *testing.T, dir, hash string) *Journal {
	t.Helper()
	j, err := Open(dir, "demo", hash, WithClock(clock()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

func readLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, JournalName))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestHeaderAndVersionedRecords(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	if err := j.RunStart(false); err != nil {
		t.Fatal(err)
	}
	if err := j.FinishVerdict("succeeded"); err != nil {
		t.Fatal(err)
	}
	j.Close()
	lines := readLines(t, dir)
	wantTypes := []string{TypePlan, TypeRunStart, TypeFinish}
	if len(lines) != len(wantTypes) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(wantTypes), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		var rec Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if rec.V != 1 || rec.Type != wantTypes[i] || rec.Time.IsZero() {
			t.Errorf("line %d = %s, want v 1, type %s and a time", i+1, l, wantTypes[i])
		}
	}
	var hdr Record
	json.Unmarshal([]byte(lines[0]), &hdr)
	if hdr.Plan != "demo" || hdr.Hash != "h1" {
		t.Errorf("header = %+v", hdr)
	}
	s, err := Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Finished || s.Verdict != "succeeded" || len(s.Runs) != 1 || s.Runs[0].PID != os.Getpid() || s.Plan != "demo" {
		t.Errorf("summary = %+v", s)
	}
}

func TestTornLastLineTolerated(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	j.RunStart(false)
	j.Intent("a imagediff/create#1", "imagediff/create", map[string]string{"imageid": "1"})
	j.Close()

	// A run killed in the middle of a write leaves half a record.
	path := filepath.Join(dir, JournalName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"v":1,"type":"result","key":"a imagediff/cr`)
	f.Close()

	s, err := Replay(dir)
	if err != nil {
		t.Fatalf("Replay with a torn tail: %v", err)
	}
	if !s.TornTail {
		t.Error("TornTail = false, want true")
	}
	if in := s.Intents["a imagediff/create#1"]; in == nil || in.HasResult {
		t.Fatalf("intent = %+v, want it without result (the torn result is ignored)", in)
	}

	j = mustOpen(t, dir, "h1")
	if !j.Summary().TornTail {
		t.Error("Open: TornTail = false")
	}
	if err := j.Result("a imagediff/create#1", 77, nil); err != nil {
		t.Fatal(err)
	}
	j.Close()

	lines := readLines(t, dir)
	for i, l := range lines {
		var rec Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d %q after append: %v", i+1, l, err)
		}
	}
	s, err = Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.TornTail {
		t.Error("the torn line was not cut off before appending")
	}
	if in := s.Intents["a imagediff/create#1"]; in == nil || !in.HasResult || in.JobID != 77 {
		t.Errorf("intent after reopen = %+v, want result with job 77", in)
	}
}

func TestDamagedLineIsAnError(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	j.Close()
	path := filepath.Join(dir, JournalName)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("garbage\n" + `{"v":1,"type":"finish","time":"2026-01-01T00:00:00Z"}` + "\n")
	f.Close()
	_, err := Replay(dir)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "--fresh") {
		t.Errorf("Replay = %v, want an error naming line 2 and --fresh", err)
	}
	if _, err := Open(dir, "demo", "h1"); err == nil {
		t.Error("Open of a damaged journal succeeded")
	}
}

func TestNewerVersionRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, JournalName), []byte(`{"v":2,"type":"plan","plan":"demo","hash":"h1"}`+"\n"), 0o644)
	_, err := Replay(dir)
	if err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Replay = %v, want a version error", err)
	}
}

func TestLockHeldInProcess(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	defer j.Close()

	// flock belongs to the open file description: a second Open in this
	// process gets a new one and conflicts like another process would.
	_, err := Open(dir, "demo", "h1")
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second Open = %v, want *LockedError", err)
	}
	want := fmt.Sprintf("another rollout (pid %d, started %s) holds %s", os.Getpid(),
		t0.Add(time.Second).Format(time.RFC3339), filepath.Join(dir, "lock"))
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q\nwant it to contain %q", err, want)
	}
	if _, err := Fresh(dir); !errors.As(err, &le) {
		t.Errorf("Fresh while locked = %v, want *LockedError", err)
	}

	j.Close()
	j2, err := Open(dir, "demo", "h1")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if info, stale := j2.StaleLock(); stale {
		t.Errorf("a cleanly closed lock was reported stale: %+v", info)
	}
	j2.Close()
}

func TestLockHeldByOtherProcessThenTakenOver(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", line)
	}

	_, err := Open(dir, "demo", "h1")
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open = %v, want *LockedError", err)
	}
	if le.Holder.PID != cmd.Process.Pid || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("error %q does not name the holder's pid %d", err, cmd.Process.Pid)
	}
	if le.Holder.Started.IsZero() || !strings.Contains(err.Error(), "started "+le.Holder.Started.Format(time.RFC3339)) {
		t.Errorf("error %q does not name the holder's start time", err)
	}

	// The holder dies without cleaning up: its lock file stays, but the
	// kernel dropped its flock, so the next run takes over.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	j, err := Open(dir, "demo", "h1")
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	defer j.Close()
	info, stale := j.StaleLock()
	if !stale || info.PID != le.Holder.PID {
		t.Errorf("StaleLock = %+v, %v; want the dead holder's pid %d", info, stale, le.Holder.PID)
	}
}

func TestStaleLockFileTakenOver(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lock"), []byte(`{"pid":999999,"host":"gone","started":"2026-01-01T00:00:00Z"}`), 0o644)
	j := mustOpen(t, dir, "h1")
	info, stale := j.StaleLock()
	if !stale || info.PID != 999999 || info.Host != "gone" {
		t.Errorf("StaleLock = %+v, %v", info, stale)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "lock"))
	var now LockInfo
	if err := json.Unmarshal(b, &now); err != nil || now.PID != os.Getpid() {
		t.Errorf("lock file after takeover = %q, want our pid", b)
	}
	j.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "lock")); len(b) != 0 {
		t.Errorf("lock file after Close = %q, want it empty", b)
	}
}

func TestPriorAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	const (
		a = "diff@b1/g imagediff/create#1"
		b = "version@g imageversion/create#1"
		c = "reject@b1/g imagediff/reject#1"
	)
	j := mustOpen(t, dir, "h1")
	j.RunStart(false)
	j.Intent(a, "imagediff/create", map[string]string{"imageid": "1", "machineid": "2"})
	if in, res, _ := j.Prior(a); !in || res {
		t.Errorf("Prior(a) within the run = %v, %v; want intent without result", in, res)
	}
	j.Result(a, 100, nil)
	j.Intent(b, "imageversion/create", map[string]string{"diffid": "100"})
	j.Close() // killed before b's answer arrived

	j = mustOpen(t, dir, "h1")
	defer j.Close()
	j.RunStart(true)
	tests := []struct {
		key            string
		intent, result bool
		job            int64
	}{
		{a, true, true, 100},
		{b, true, false, 0},
		{c, false, false, 0},
	}
	for _, tt := range tests {
		in, res, job := j.Prior(tt.key)
		if in != tt.intent || res != tt.result || job != tt.job {
			t.Errorf("Prior(%q) = %v, %v, %d; want %v, %v, %d", tt.key, in, res, job, tt.intent, tt.result, tt.job)
		}
	}
	pending := j.Summary().PendingIntents()
	if len(pending) != 1 || pending[0].Key != b || pending[0].Instance() != "version@g" {
		t.Errorf("PendingIntents = %+v, want only %q", pending, b)
	}
	j.Intent(c, "imagediff/100/reject", map[string]string{"diffid": "100", "reinstall": "0"})
	j.Result(c, 0, errors.New("diff is not open"))
	if in, res, job := j.Prior(c); !in || !res || job != 0 {
		t.Errorf("Prior(c) after its result = %v, %v, %d", in, res, job)
	}
	if !j.Ours("diff", 100) || j.Ours("diff", 101) {
		t.Error("Ours does not tell the run's own diff from another")
	}
	if got, ok := j.PriorResult(c); !ok || got.Error != "diff is not open" || got.Params["diffid"] != "100" {
		t.Errorf("PriorResult(c) = %+v, %v", got, ok)
	}
	s, _ := Replay(dir)
	if got := s.Intents[c]; got.Error != "diff is not open" {
		t.Errorf("result error = %q", got.Error)
	}
	if len(s.Runs) != 2 || !s.Runs[1].Resumed || s.Finished {
		t.Errorf("runs = %+v, finished %v", s.Runs, s.Finished)
	}
}

func TestEachRecordIsOnDiskWhenTheCallReturns(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	defer j.Close()
	calls := []struct {
		typ string
		do  func() error
	}{
		{TypeRunStart, func() error { return j.RunStart(false) }},
		{TypePreflight, func() error { return j.Preflight([]Fact{{Kind: "lock", Image: "g", JobID: 5, Detail: "diffid"}}) }},
		{TypeIntent, func() error { return j.Intent("k", "imageupdate/create", nil) }},
		{TypeResult, func() error { return j.Result("k", 9, nil) }},
		{TypeOutcome, func() error { return j.Outcome("update@b/g", "succeeded", "", nil, nil) }},
		{TypeUnfinished, func() error { return j.Unfinished([]JobRecord{{Kind: "update", ID: 9, State: 4}}) }},
		{TypeFinish, func() error { return j.FinishVerdict("interrupted") }},
	}
	for i, c := range calls {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		// Read through a separate file description, as a second process
		// (or a run after a crash) would.
		lines := readLines(t, dir)
		if len(lines) != i+2 {
			t.Fatalf("after %s: %d lines, want %d", c.typ, len(lines), i+2)
		}
		var rec Record
		if err := json.Unmarshal([]byte(lines[i+1]), &rec); err != nil || rec.Type != c.typ {
			t.Errorf("after %s: last line %q", c.typ, lines[i+1])
		}
	}
}

func TestCredentialsNeverWritten(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		err    string
		secret string
	}{
		{"url userinfo", map[string]string{"url": "s3://AKIAXYZ:s3cr3tKey@bucket/build.zip"}, "", "s3cr3tKey"},
		{"raw slash in the secret", map[string]string{"url": "s3://AKIAXYZ:abc/def+ghi@bucket/build.zip"}, "", "def+ghi"},
		{"raw slash in error text", nil, `update: url s3://AKIAXYZ:abc/def+ghi@bucket/x refused`, "def+ghi"},
		{"url user", map[string]string{"url": "https://deploy:hunter2@ci.example/x"}, "", "deploy:hunter2"},
		{"bare userinfo", map[string]string{"desc": "from key:pw123@host"}, "", "pw123"},
		{"secret-named param", map[string]string{"secretkey": "plainvalue"}, "", "plainvalue"},
		{"token param", map[string]string{"api_token": "tok-123"}, "", "tok-123"},
		{"error text", nil, `Get "https://u:verysecret@api.example/cfp": EOF`, "verysecret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			j := mustOpen(t, dir, "h1")
			j.Intent("k", "imageupdate/create", tt.params)
			var err error
			if tt.err != "" {
				err = errors.New(tt.err)
			}
			j.Result("k", 0, err)
			jobErr := "failed: " + tt.err
			j.Outcome("update@b/g", "failed", tt.err, &JobRecord{Kind: "update", ID: 1, State: 6, Error: jobErr}, nil)
			j.Unfinished([]JobRecord{{Kind: "update", ID: 1, Error: jobErr}})
			j.Close()
			b, _ := os.ReadFile(filepath.Join(dir, JournalName))
			if strings.Contains(string(b), tt.secret) {
				t.Errorf("journal holds %q:\n%s", tt.secret, b)
			}
			if !strings.Contains(string(b), Masked) {
				t.Errorf("journal shows no mask:\n%s", b)
			}
		})
	}
}

func TestMaskCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://key:secret@bucket/x", "s3://***@bucket/x"},
		{"https://user:pa55@host:8080/p?q=1", "https://***@host:8080/p?q=1"},
		{"see key:secret@host now", "see ***@host now"},
		{"s3://AKIAX:abc/def+ghi@builds/x/", "s3://***@builds/x/"},
		{"see AKIAX:abc/def@host now", "see ***@host now"},
		{"gs://b/d?credentials=%7B%7D&handlers=4", "gs://b/d?credentials=***&handlers=4"},
		// A user-info without a password may still be a token, so it is
		// masked too.
		{"s3://bucket@region/x", "s3://***@region/x"},
		// Left alone: nothing that looks like credentials.
		{"https://host:8080/path", "https://host:8080/path"},
		{"error: mail me@example.com", "error: mail me@example.com"},
		{"image locked by diffid: 218595", "image locked by diffid: 218595"},
		{"${env:BUILD_URL}", "${env:BUILD_URL}"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := MaskCredentials(tt.in); got != tt.want {
			t.Errorf("MaskCredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOutcomesAndOutputsReplayed(t *testing.T) {
	dir := t.TempDir()
	diffOut := &plan.Output{
		State: "succeeded", DiffID: 100, Added: []string{"a.pak"}, Modified: []string{"b.pak", "c.pak"},
		Changed: 3, Job: plan.JobOutput{ID: 100, State: 5, StateName: "Completed", Progress: 100},
	}
	j := mustOpen(t, dir, "h1")
	j.RunStart(false)
	j.Outcome("diff@b1/g", "succeeded", "", &JobRecord{Kind: "diff", ID: 100, State: 5, StateName: "Completed"}, diffOut)
	j.Outcome("gate@b1/g", "failed", "gate false: steps.diff.changed < 3", nil, &plan.Output{State: "failed"})
	j.Outcome("install@f1/g", "failed", "timeout", nil, nil)
	j.Outcome("install@f1/g", "succeeded", "", nil, nil) // a later run's outcome wins
	j.FinishVerdict("failed")
	j.Close()

	j = mustOpen(t, dir, "h1")
	defer j.Close()
	tests := []struct {
		id   string
		ok   bool
		want *plan.Output
	}{
		{"diff@b1/g", true, diffOut},
		{"gate@b1/g", false, nil},
		{"install@f1/g", true, &plan.Output{State: "succeeded"}},
		{"never@b1/g", false, nil},
	}
	for _, tt := range tests {
		got, ok := j.Succeeded(tt.id)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Succeeded(%q) = %+v, %v; want %+v, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
	s := j.Summary()
	if !s.Finished || s.Verdict != "failed" {
		t.Errorf("finished %v verdict %q", s.Finished, s.Verdict)
	}
	targets := s.Targets()
	var got []string
	for _, ts := range targets {
		got = append(got, ts.Target+" "+ts.Outcome+" "+ts.Error)
	}
	want := []string{"b1/g failed gate false: steps.diff.changed < 3", "f1/g succeeded "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Targets = %q, want %q", got, want)
	}
}

func TestOpenJobs(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	defer j.Close()
	call := func(key, ep string, params map[string]string, job int64, err error) {
		t.Helper()
		if e := j.Intent(key, ep, params); e != nil {
			t.Fatal(e)
		}
		if e := j.Result(key, job, err); e != nil {
			t.Fatal(e)
		}
	}
	j.RunStart(false)
	// Image g1: diff 100 turned into version 200, which completed.
	call("diff@b1/g1 imagediff/create#1", "imagediff/create", nil, 100, nil)
	j.Outcome("diff@b1/g1", "succeeded", "", &JobRecord{Kind: "diff", ID: 100, State: 5}, nil)
	call("version@g1 imageversion/create#1", "imageversion/create", map[string]string{"diffid": "100"}, 200, nil)
	j.Outcome("version@g1", "succeeded", "", &JobRecord{Kind: "version", ID: 200, State: 5}, nil)
	// Image g2: diff 101 failed and was rejected.
	call("diff@b1/g2 imagediff/create#1", "imagediff/create", nil, 101, nil)
	j.Outcome("diff@b1/g2", "failed", "diff failed", &JobRecord{Kind: "diff", ID: 101, State: 6}, nil)
	call("reject@b1/g2 imagediff/reject#1", "imagediff/101/reject", map[string]string{"reinstall": "0"}, 0, nil)
	// Image g3: diff 102 failed; its reject call failed too: still open.
	call("diff@b1/g3 imagediff/create#1", "imagediff/create", nil, 102, nil)
	j.Outcome("diff@b1/g3", "failed", "diff failed", &JobRecord{Kind: "diff", ID: 102, State: 6}, nil)
	call("reject@b1/g3 imagediff/reject#1", "imagediff/102/reject", nil, 0, errors.New("503"))
	// Update 300 running at the interrupt; install 400 queued, cancelled.
	call("update@b1/g4 imageupdate/create#1", "imageupdate/create", nil, 300, nil)
	call("install@f1/g1 imageinstall/queue#1", "imageinstall/400/queue", map[string]string{"mirroring": "false"}, 400, nil)
	// Update 301 failed by timeout while its job still ran.
	call("update@b2/g4 imageupdate/create#1", "imageupdate/create", nil, 301, nil)
	j.Outcome("update@b2/g4", "failed", "timeout", &JobRecord{Kind: "update", ID: 301, State: 4}, nil)
	// Install 401 queued and completed.
	call("install@f2/g1 imageinstall/queue#1", "imageinstall/401/queue", map[string]string{"mirroring": "false"}, 401, nil)
	j.Outcome("install@f2/g1", "succeeded", "", nil, nil)
	j.Unfinished([]JobRecord{
		{Instance: "update@b1/g4", Kind: "update", ID: 300, State: 4, StateName: "Running", Progress: 40},
		{Instance: "install@f1/g1", Kind: "install", ID: 400, State: 3, StateName: "Queued"},
	})
	j.Outcome("update@b1/g4", "cancelled", "interrupted", &JobRecord{Kind: "update", ID: 300, State: 4}, nil)
	j.Outcome("install@f1/g1", "cancelled", "interrupted", &JobRecord{Kind: "install", ID: 400, State: 3}, nil)
	j.FinishVerdict("interrupted")

	s, err := Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, jr := range s.OpenJobs {
		got = append(got, fmt.Sprintf("%s %d %s", jr.Kind, jr.ID, jr.Instance))
	}
	want := []string{"diff 102 diff@b1/g3", "install 400 install@f1/g1", "update 300 update@b1/g4", "update 301 update@b2/g4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("OpenJobs =\n%q\nwant\n%q", got, want)
	}
	if d := s.OpenDiffs(); len(d) != 1 || d[0].ID != 102 {
		t.Errorf("OpenDiffs = %+v", d)
	}
	if len(s.Unfinished) != 2 || s.Unfinished[0].ID != 300 || s.Unfinished[0].StateName != "Running" {
		t.Errorf("Unfinished = %+v", s.Unfinished)
	}
	if !s.Finished || s.Verdict != "interrupted" {
		t.Errorf("finished %v verdict %q", s.Finished, s.Verdict)
	}
}

func TestPlanChanged(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "hash-one")
	j.Close()
	_, err := Open(dir, "demo", "hash-two")
	var pe *PlanChangedError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "--fresh") {
		t.Fatalf("Open with another hash = %v, want *PlanChangedError mentioning --fresh", err)
	}
	// The failed Open must not keep the lock.
	old, err := Fresh(dir)
	if err != nil || old == "" {
		t.Fatalf("Fresh = %q, %v", old, err)
	}
	if s, err := Replay(filepath.Dir(old)); err == nil && s.PlanHash == "hash-one" {
		t.Error("the old journal is still in place")
	}
	b, err := os.ReadFile(old)
	if err != nil || !strings.Contains(string(b), "hash-one") {
		t.Errorf("old journal moved to %s holds %q, %v", old, b, err)
	}
	j = mustOpen(t, dir, "hash-two")
	if j.Summary().PlanHash != "hash-two" || len(j.Summary().Runs) != 0 {
		t.Errorf("fresh summary = %+v", j.Summary())
	}
	j.Close()
}

func TestFreshWithoutJournal(t *testing.T) {
	if old, err := Fresh(filepath.Join(t.TempDir(), "none")); old != "" || err != nil {
		t.Errorf("Fresh of a missing dir = %q, %v", old, err)
	}
	if _, err := Replay(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Replay of an empty dir = %v, want fs.ErrNotExist", err)
	}
}

func TestFreshKeepsEveryOldJournal(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		j := mustOpen(t, dir, fmt.Sprint("h", i))
		j.Close()
		if _, err := fresh(dir, now); err != nil {
			t.Fatal(err)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "journal-*.jsonl"))
	if len(matches) != 3 {
		t.Errorf("old journals = %q, want 3", matches)
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct{ name, want string }{
		{"game-b-weekly", ".rollout/game-b-weekly"},
		{"Game B / hotfix", ".rollout/Game-B-hotfix"},
		{"../../etc", ".rollout/..-..-etc"},
		{"..", ".rollout/default"},
		{"", ".rollout/default"},
	}
	for _, tt := range tests {
		if got := DefaultDir(tt.name); got != tt.want {
			t.Errorf("DefaultDir(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, "h1")
	var wg sync.WaitGroup
	const n = 20
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("update@m%d/g imageupdate/create#1", i)
			j.Intent(key, "imageupdate/create", nil)
			j.Prior(key)
			j.Result(key, int64(1000+i), nil)
			j.Succeeded(key)
		}()
	}
	wg.Wait()
	j.Close()
	if err := j.Intent("late", "x", nil); err == nil {
		t.Error("Intent after Close succeeded")
	}
	s, err := Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Intents) != n || len(s.OpenJobs) != n {
		t.Errorf("%d intents, %d open jobs; want %d each", len(s.Intents), len(s.OpenJobs), n)
	}
	if got := len(readLines(t, dir)); got != 2*n+1 {
		t.Errorf("%d lines, want %d", got, 2*n+1)
	}
}
