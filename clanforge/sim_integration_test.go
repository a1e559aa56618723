package clanforge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
	"github.com/rollout/rollout/clanforge/sim"
	"github.com/rollout/rollout/internal/simtest"
)

// These tests run the client against the simulator over HTTP. The simulator
// runs on a fake clock that the test advances between polls, so job progress
// depends on the order of calls, not on wall time.

const (
	simASID     = 1234
	simImgA     = 5530
	simImgB     = 5531
	simBuildbox = 770001
	simEU1      = 812345
	simEU2      = 812346
	simUS1      = 812400
)

func simInventory() sim.Inventory {
	return sim.Inventory{
		ASID: simASID,
		Images: []sim.Image{
			{Name: "game-a", ID: simImgA},
			{Name: "game-b", ID: simImgB, UpdateURL: "s3://bucket/game-b/"},
		},
		Machines: []sim.Machine{
			{Name: "buildbox-1", ID: simBuildbox, Build: true, Images: []int64{simImgA, simImgB}},
			{Name: "eu-1", ID: simEU1, Region: "eu", Images: []int64{simImgA, simImgB}},
			{Name: "eu-2", ID: simEU2, Region: "eu", Images: []int64{simImgA}},
			{Name: "us-1", ID: simUS1, Region: "us", Images: []int64{simImgA, simImgB}},
		},
	}
}

type simEnv struct {
	srv   *sim.Server
	clock *sim.FakeClock
	c     *clanforge.Client
	url   string // the simulator's base URL
}

// newSim serves simInventory on a fake clock with scenario scn as it is
// (strict mode only if scn says so); opts go to simtest.Start.
func newSim(t *testing.T, scn sim.Scenario, opts ...simtest.Option) *simEnv {
	t.Helper()
	clock := sim.NewFakeClock(time.Unix(1717400000, 0))
	opts = append([]simtest.Option{simtest.Lenient(), simtest.Inventory(simInventory()), simtest.Clock(clock),
		simtest.Credentials(testAccess, testSecret), simtest.ReadAttempts(5)}, opts...)
	e := simtest.Start(t, nil, scn, opts...)
	return &simEnv{srv: e.Server, clock: clock, c: e.Client, url: e.URL}
}

// poll reads a job until it is terminal, advancing the simulated clock by
// step between reads.
func (e *simEnv) poll(t *testing.T, what string, read func() (*clanforge.Job, error)) *clanforge.Job {
	t.Helper()
	for i := 0; i < 200; i++ {
		j, err := read()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if j.State.Terminal() {
			return j
		}
		e.clock.Advance(2 * time.Second)
	}
	t.Fatalf("%s never ended", what)
	return nil
}

func (e *simEnv) countJobs(kind sim.Kind) int {
	n := 0
	for _, j := range e.srv.Jobs() {
		if j.Kind == kind {
			n++
		}
	}
	return n
}

func (e *simEnv) update(t *testing.T, cx context.Context) *clanforge.Job {
	t.Helper()
	up, err := e.c.CreateUpdate(cx, simImgB, simBuildbox, `"1.2.3"`, "s3://AKIAK:s%2Fecret@bucket/game-b/1.2.3/")
	if err != nil {
		t.Fatalf("CreateUpdate: %v", err)
	}
	up = e.poll(t, "update", func() (*clanforge.Job, error) { return e.c.UpdateStatus(cx, up.ID) })
	if up.State != clanforge.StateCompleted {
		t.Fatalf("update ended %s: %s", up.StateName, up.Error)
	}
	return up
}

func (e *simEnv) diff(t *testing.T, cx context.Context) *clanforge.Diff {
	t.Helper()
	dj, err := e.c.CreateDiff(cx, simImgB, simBuildbox)
	if err != nil {
		t.Fatalf("CreateDiff: %v", err)
	}
	var d *clanforge.Diff
	e.poll(t, "diff", func() (*clanforge.Job, error) {
		var err error
		d, err = e.c.DiffStatus(cx, dj.ID)
		if err != nil {
			return nil, err
		}
		return &d.Job, nil
	})
	return d
}

// TestSimFullCycle: update -> diff -> version -> queue installs -> fleet on
// the new version.
func TestSimFullCycle(t *testing.T) {
	e := newSim(t, sim.Scenario{})
	cx := ctx(t)

	e.update(t, cx)
	if kind, _, err := e.c.LockHolder(cx, simImgB); err != nil || kind != "" {
		t.Fatalf("after the update the image is held by %q (%v)", kind, err)
	}
	d := e.diff(t, cx)
	if d.State != clanforge.StateCompleted || d.Changed() == 0 {
		t.Fatalf("diff = %+v", d)
	}
	if kind, id, err := e.c.LockHolder(cx, simImgB); err != nil || kind != "diff" || id != d.ID {
		t.Fatalf("LockHolder = %q %d %v, want the diff", kind, id, err)
	}
	// A second diff on the locked image is refused, naming the holder.
	_, err := e.c.CreateDiff(cx, simImgB, simBuildbox)
	var le *clanforge.LockedError
	if !errors.As(err, &le) || le.HolderKind != "diff" || le.HolderID != d.ID {
		t.Fatalf("second diff: %v", err)
	}

	vj, err := e.c.CreateVersion(cx, d.ID, clanforge.VersionOptions{Restart: true, GameBuild: "1.2.3"})
	if err != nil {
		t.Fatalf("CreateVersion: %v", err)
	}
	v := e.poll(t, "version", func() (*clanforge.Job, error) { return e.c.VersionStatus(cx, vj.ID) })
	if v.State != clanforge.StateCompleted {
		t.Fatalf("version ended %s: %s", v.StateName, v.Error)
	}
	if got := e.srv.LatestVersion(simImgB); got != vj.ID {
		t.Fatalf("latest version %d, want %d", got, vj.ID)
	}

	// Installs were created held (no install_at): queue mirrors, then
	// machines, and wait until none of this version's jobs is listed.
	ins, err := e.c.InstallStatus(cx)
	if err != nil {
		t.Fatal(err)
	}
	var mirrors, machines int
	for _, in := range ins {
		if in.TargetVersionID != vj.ID {
			continue
		}
		if in.State != clanforge.StatePending && in.State != clanforge.StateCreated {
			t.Errorf("install %d is %s, want Created or Pending (held)", in.ID, in.StateName)
		}
		if in.Mirroring {
			mirrors++
		} else {
			machines++
		}
	}
	if mirrors == 0 || machines != 2 {
		t.Fatalf("installs for version %d: %d mirror, %d machine jobs; want >0 and 2: %+v", vj.ID, mirrors, machines, ins)
	}
	for _, pass := range []bool{true, false} {
		for _, in := range ins {
			if in.TargetVersionID != vj.ID || in.Mirroring != pass {
				continue
			}
			q, err := e.c.QueueInstall(cx, in.ID, in.Mirroring)
			if err != nil {
				t.Fatalf("queue %d: %v", in.ID, err)
			}
			if q.State != clanforge.StateQueued || q.AlreadyQueued {
				t.Errorf("queue %d = %+v", in.ID, q)
			}
		}
	}
	// Queueing a queued job again is answered "job already queued": success,
	// and no new job.
	for _, in := range ins {
		if in.TargetVersionID == vj.ID && !in.Mirroring {
			before := len(e.srv.Jobs())
			q, err := e.c.QueueInstall(cx, in.ID, false)
			if err != nil || !q.AlreadyQueued {
				t.Fatalf("second queue of %d: %+v %v", in.ID, q, err)
			}
			if after := len(e.srv.Jobs()); after != before {
				t.Fatalf("second queue made jobs: %d -> %d", before, after)
			}
			break
		}
	}
	for i := 0; i < 300; i++ {
		ins, err = e.c.InstallStatus(cx)
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, in := range ins {
			if in.TargetVersionID == vj.ID {
				left++
				if in.State == clanforge.StateFailed {
					t.Fatalf("install %d failed: %s", in.ID, in.Error)
				}
			}
		}
		if left == 0 {
			break
		}
		e.clock.Advance(2 * time.Second)
	}
	st, err := e.c.ImageStatus(cx, simImgB, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 0 || st.Failed != 0 || st.Completed != 2 || len(st.Fleets) != 1 {
		t.Errorf("image status = %+v", st)
	}
	for _, m := range []int64{simEU1, simUS1} {
		if got := e.srv.InstalledVersion(m, simImgB); got != vj.ID {
			t.Errorf("machine %d has version %d, want %d", m, got, vj.ID)
		}
	}
	if got := e.srv.GameBuild(simImgB); got != "1.2.3" {
		t.Errorf("game build %q", got)
	}
	if kind, _, err := e.c.LockHolder(cx, simImgB); err != nil || kind != "" {
		t.Errorf("after the version the image is held by %q (%v)", kind, err)
	}
	// Every request was answered; none was a silent duplicate.
	for _, r := range e.srv.Requests() {
		if r.Status >= 400 && r.Endpoint != sim.EPDiffCreate {
			t.Errorf("request %s answered %d: %s", r.Path, r.Status, r.ErrorMessage)
		}
	}
	if e.countJobs(sim.KindUpdate) != 1 || e.countJobs(sim.KindDiff) != 1 || e.countJobs(sim.KindVersion) != 1 {
		t.Errorf("jobs: %+v", e.srv.Jobs())
	}
}

// TestSimLostAnswers: the simulator does the work and drops the answer of
// each state-changing call once; the client settles every one of them
// without sending it twice.
func TestSimLostAnswers(t *testing.T) {
	e := newSim(t, sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{
		{Endpoint: sim.EPUpdateCreate, Fault: sim.FaultDrop},
		{Endpoint: sim.EPDiffCreate, Fault: sim.FaultDrop},
		{Endpoint: sim.EPDiffReject, Fault: sim.FaultDrop},
		{Endpoint: sim.EPInstallQueue, Fault: sim.FaultDrop},
		{Endpoint: sim.EPVersionCreate, Fault: sim.FaultDrop, Skip: 0},
	}}})
	cx := ctx(t)

	e.update(t, cx) // settled from image/options
	if n := e.countJobs(sim.KindUpdate); n != 1 {
		t.Fatalf("%d update jobs, want 1", n)
	}
	d := e.diff(t, cx)
	if n := e.countJobs(sim.KindDiff); n != 1 || d.State != clanforge.StateCompleted {
		t.Fatalf("%d diff jobs (want 1), diff %+v", n, d)
	}

	// The lost reject is settled from the lock.
	res, err := e.c.RejectDiff(cx, d.ID, false)
	if err != nil || res.DiffID != d.ID {
		t.Fatalf("RejectDiff: %+v %v", res, err)
	}
	if kind, _, _ := e.c.LockHolder(cx, simImgB); kind != "" {
		t.Fatalf("image still held by %s", kind)
	}

	d = e.diff(t, cx)
	// A lost version answer cannot be settled: outcome unknown, sent once.
	_, err = e.c.CreateVersion(cx, d.ID, clanforge.VersionOptions{Restart: true})
	if !errors.Is(err, clanforge.ErrOutcomeUnknown) {
		t.Fatalf("CreateVersion: %v, want outcome unknown", err)
	}
	versionCreates := 0
	for _, r := range e.srv.Requests() {
		if r.Endpoint == sim.EPVersionCreate {
			versionCreates++
		}
	}
	if versionCreates != 1 || e.countJobs(sim.KindVersion) != 1 {
		t.Fatalf("version create sent %d times, %d version jobs", versionCreates, e.countJobs(sim.KindVersion))
	}
	var vid int64
	for _, j := range e.srv.Jobs() {
		if j.Kind == sim.KindVersion {
			vid = j.ID
		}
	}
	e.poll(t, "version", func() (*clanforge.Job, error) { return e.c.VersionStatus(cx, vid) })

	ins, err := e.c.InstallStatus(cx)
	if err != nil {
		t.Fatal(err)
	}
	var first *clanforge.Install
	for i := range ins {
		if ins[i].Mirroring && ins[i].TargetVersionID == vid {
			first = &ins[i]
			break
		}
	}
	if first == nil {
		t.Fatalf("no mirror install for version %d: %+v", vid, ins)
	}
	q, err := e.c.QueueInstall(cx, first.ID, true)
	if err != nil || !q.AlreadyQueued || q.ID != first.ID {
		t.Fatalf("QueueInstall after a dropped answer: %+v %v", q, err)
	}
	if j, ok := e.srv.Job(sim.KindMirror, first.ID); !ok || j.Held {
		t.Fatalf("mirror job %d: %+v (found %v), want queued", first.ID, j, ok)
	}

	for _, r := range e.srv.Requests() {
		if r.Dropped && !r.Mutating {
			t.Errorf("a read was dropped: %+v", r)
		}
	}
}

// TestSimFaultsOnReadsAndRateLimit: 5xx and 429 on reads are retried; a 429
// on a create is sent again (the server did nothing), making one job.
func TestSimFaultsOnReadsAndRateLimit(t *testing.T) {
	e := newSim(t, sim.Scenario{Faults: sim.Faults{Targeted: []sim.TargetedFault{
		{Endpoint: sim.EPImageOptions, Fault: sim.FaultServerError, Count: 2},
		{Endpoint: sim.EPUpdateCreate, Fault: sim.FaultRateLimit},
		{Endpoint: sim.EPUpdateStatus, Fault: sim.FaultServerError, Count: 2},
	}}})
	cx := ctx(t)
	e.update(t, cx)
	if n := e.countJobs(sim.KindUpdate); n != 1 {
		t.Fatalf("%d update jobs, want 1", n)
	}
	creates := 0
	for _, r := range e.srv.Requests() {
		if r.Endpoint == sim.EPUpdateCreate {
			creates++
		}
	}
	if creates != 2 {
		t.Errorf("update create sent %d times, want 2 (429 then the real one)", creates)
	}
}

// TestSimRetryFailedDiff: a diff that fails once is retried on the same id.
func TestSimRetryFailedDiff(t *testing.T) {
	e := newSim(t, sim.Scenario{Failures: []sim.Failure{{Kind: sim.KindDiff, Times: 1, Error: "disk full"}}})
	cx := ctx(t)
	e.update(t, cx)
	d := e.diff(t, cx)
	if d.State != clanforge.StateFailed || d.Error != "disk full" {
		t.Fatalf("diff = %+v, want Failed", d)
	}
	rj, err := e.c.RetryDiff(cx, d.ID)
	if err != nil || rj.ID != d.ID || rj.State.Terminal() {
		t.Fatalf("RetryDiff: %+v %v", rj, err)
	}
	var d2 *clanforge.Diff
	e.poll(t, "retried diff", func() (*clanforge.Job, error) {
		var err error
		d2, err = e.c.DiffStatus(cx, d.ID)
		if err != nil {
			return nil, err
		}
		return &d2.Job, nil
	})
	if d2.State != clanforge.StateCompleted || d2.Failed < 1 {
		t.Fatalf("retried diff = %+v", d2)
	}
}

// cutoverInventory is simInventory with one fleet and a profile per image.
func cutoverInventory() sim.Inventory {
	inv := simInventory()
	inv.Images[0].Profile, inv.Images[1].Profile = 101, 102
	inv.Fleets = []sim.Fleet{{Name: "prod-eu", ID: "c0a3e2a1-6955-415c-b1d4-af9199833e6a", Profile: 101}}
	for i := range inv.Machines {
		if !inv.Machines[i].Build {
			inv.Machines[i].Fleet = inv.Fleets[0].ID
		}
	}
	return inv
}

// TestSimProfileSwitch: the client's PATCH and GET of the profile switch
// against the strict simulator: one PATCH, polled to complete, with the
// body the plan asks for and no refusal; a switch to the profile the fleet
// already runs completes at once.
func TestSimProfileSwitch(t *testing.T) {
	e := simtest.Start(t, nil, simtest.Scenario(t, "speed: 50\n"), simtest.Inventory(cutoverInventory()))
	ctx := context.Background()
	fleet := "c0a3e2a1-6955-415c-b1d4-af9199833e6a"
	st, err := e.Client.ProfileSwitchStatus(ctx, fleet)
	if err != nil || st.State != clanforge.SwitchNotRequested {
		t.Fatalf("before any switch: %+v %v", st, err)
	}
	st, err = e.Client.SwitchProfile(ctx, fleet, clanforge.SwitchOptions{ProfileID: 102, MaxMachines: 1, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for st.State != clanforge.SwitchComplete && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if st, err = e.Client.ProfileSwitchStatus(ctx, fleet); err != nil {
			t.Fatal(err)
		}
	}
	if st.State != clanforge.SwitchComplete || st.ProfileID != 102 || st.Deadline.IsZero() {
		t.Fatalf("switch did not complete: %+v", st)
	}
	sw := e.Server.Switches()
	if len(sw) != 1 || sw[0].ProfileID != 102 || sw[0].MaxMachines != 1 {
		t.Fatalf("switches %+v", sw)
	}
}

// TestSimBearer: with only a token, every request carries the Bearer
// header, and the strict simulator accepts it.
func TestSimBearer(t *testing.T) {
	e := simtest.Start(t, nil, sim.Scenario{}, simtest.Inventory(cutoverInventory()), simtest.Token("sim-bearer-token-1"))
	ctx := context.Background()
	if _, err := e.Client.ImageOptions(ctx, simImgA); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.ImageStatus(ctx, simImgA, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.ProfileSwitchStatus(ctx, "c0a3e2a1-6955-415c-b1d4-af9199833e6a"); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Server.Requests() {
		if r.Status != 200 {
			t.Errorf("%s answered %d", r.Path, r.Status)
		}
	}
}
