package state

import (
	"slices"
	"testing"

	"github.com/rollout/rollout/steps"
)

// TestInstallJobsAcrossRuns: what a resumed install instance learns about
// its jobs survives the process: the jobs a read listed (recorded once, by
// what they install), the jobs the instance queued (with or without an
// answer), and the jobs an interrupt named as its unfinished ones. Other
// interests' jobs stay out.
func TestInstallJobsAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	const (
		inst   = "install@eu-1/game"
		mirror = "mirror@game"
		v      = int64(48811)
	)
	eu1 := steps.InstallInterest{VersionID: v, Machine: 812345}
	eu2 := steps.InstallInterest{VersionID: v, Machine: 812346}
	mir := steps.InstallInterest{VersionID: v, Mirroring: true, Machine: 0}
	older := steps.InstallInterest{VersionID: v - 1, Machine: 812345}

	j := mustOpen(t, dir, "h1")
	j.RunStart(false)
	seen := []steps.SeenInstall{
		{InstallInterest: mir, ID: 100}, {InstallInterest: mir, ID: 101},
		{InstallInterest: eu1, ID: 200}, {InstallInterest: eu2, ID: 201},
		{InstallInterest: older, ID: 50},
	}
	before := len(readLines(t, dir))
	if err := j.SeenInstalls(seen); err != nil {
		t.Fatal(err)
	}
	if err := j.SeenInstalls(seen[1:3]); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, dir)) - before; n != 1 {
		t.Errorf("%d installs records, want 1 (jobs already recorded are not written again)", n)
	}
	// The mirror instance queued 100 (answered) and 102 (killed before the
	// answer; no read had recorded 102).
	j.Intent(steps.QueueKey(mirror, 100), "/cfp/v1/imageinstall/100/queue", map[string]string{"mirroring": "true"})
	j.Result(steps.QueueKey(mirror, 100), 100, nil)
	j.Intent(steps.QueueKey(mirror, 102), "/cfp/v1/imageinstall/102/queue", map[string]string{"mirroring": "true"})
	j.Close()

	j = mustOpen(t, dir, "h1")
	j.RunStart(true)
	// This run is interrupted with eu-1's job 202 running (a job no
	// installs record names, e.g. one whose record failed).
	j.Unfinished([]JobRecord{{Instance: inst, Kind: "install", ID: 202, State: 4}, {Instance: "update@b/game", Kind: "update", ID: 9}})
	j.Close()

	j = mustOpen(t, dir, "h1")
	defer j.Close()
	j.RunStart(true)
	tests := []struct {
		inst string
		in   steps.InstallInterest
		want []int64
	}{
		{mirror, mir, []int64{100, 101, 102}},
		{inst, eu1, []int64{200, 202}},
		{"install@eu-2/game", eu2, []int64{201}},
		{"install@us-1/game", steps.InstallInterest{VersionID: v, Machine: 812400}, []int64{}},
	}
	for _, tt := range tests {
		if got := j.InstallJobs(tt.inst, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("InstallJobs(%s, %+v) = %v, want %v", tt.inst, tt.in, got, tt.want)
		}
	}
	// The record keeps what status shows unchanged: listed jobs were not
	// made by the rollout, so they are not open jobs of it.
	for _, oj := range j.Summary().OpenJobs {
		if oj.ID == 101 || oj.ID == 200 || oj.ID == 201 {
			t.Errorf("a job only seen listed is reported open: %+v", oj)
		}
	}
}
