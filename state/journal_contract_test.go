package state

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/rollout/rollout/steps"
)

// The contract between the state journal and steps.MemJournal, the same
// semantics kept in memory that the step tests run against: driven through
// the same sequence of calls, both answer Prior and InstallJobs alike, and
// as this table says. For the state journal "an earlier run" is the
// journal closed and opened again (replayed from the file); a MemJournal
// holds every run's records already, so the same step does nothing to it.
// A MemJournal that drifts from the state journal fails here.

// contractOp is one call of a sequence, or one answer to check.
type contractOp struct {
	do string // intent, result, seen, reopen; prior, jobs: check an answer

	key      string
	endpoint string
	params   map[string]string
	jobID    int64
	err      error // result: the call's error
	seen     []steps.SeenInstall
	inst     string                // jobs
	interest steps.InstallInterest // jobs

	// prior: the expected answer
	intent, result bool
	// jobs: the expected ids
	ids []int64
	// intent, result: whether the call fails
	fails bool
}

func cIntent(key, endpoint string) contractOp {
	return contractOp{do: "intent", key: key, endpoint: endpoint}
}

func cResult(key string, id int64, err error) contractOp {
	return contractOp{do: "result", key: key, jobID: id, err: err}
}

func cPrior(key string, intent, result bool, id int64) contractOp {
	return contractOp{do: "prior", key: key, intent: intent, result: result, jobID: id}
}

func cJobs(inst string, in steps.InstallInterest, ids ...int64) contractOp {
	return contractOp{do: "jobs", inst: inst, interest: in, ids: ids}
}

func cSeen(in steps.InstallInterest, ids ...int64) contractOp {
	op := contractOp{do: "seen"}
	for _, id := range ids {
		op.seen = append(op.seen, steps.SeenInstall{InstallInterest: in, ID: id})
	}
	return op
}

var cReopen = contractOp{do: "reopen"}

func TestJournalContract(t *testing.T) {
	const (
		upd    = "update@b/game imageupdate/create#1"
		updEP  = "/cfp/v1/imageupdate/create"
		inst   = "install@eu-1/game"
		other  = "install@eu-2/game"
		mirror = "mirror@game"
		v      = int64(48811)
	)
	refused := errors.New("image locked by diffid: 9")
	eu1 := steps.InstallInterest{VersionID: v, Machine: 812345}
	eu2 := steps.InstallInterest{VersionID: v, Machine: 812346}
	mir := steps.InstallInterest{VersionID: v, Mirroring: true}
	queue := func(instID string, id int64) contractOp {
		return cIntent(steps.QueueKey(instID, id), fmt.Sprintf("/cfp/v1/imageinstall/%d/queue", id))
	}
	tests := []struct {
		name string
		ops  []contractOp
	}{
		{"nothing recorded", []contractOp{
			cPrior(upd, false, false, 0), cJobs(inst, eu1),
		}},
		{"an intent awaits its answer", []contractOp{
			cIntent(upd, updEP), cPrior(upd, true, false, 0), cPrior("update@b/game imageupdate/create#2", false, false, 0),
		}},
		{"an answer names its job", []contractOp{
			cIntent(upd, updEP), cResult(upd, 4401, nil), cPrior(upd, true, true, 4401),
		}},
		{"an answer that made no job", []contractOp{
			cIntent(upd, updEP), cResult(upd, 0, nil), cPrior(upd, true, true, 0),
		}},
		{"an error answer is an answer", []contractOp{
			cIntent(upd, updEP), cResult(upd, 0, refused), cPrior(upd, true, true, 0),
		}},
		{"an error answer keeps the id it was given", []contractOp{
			cIntent(upd, updEP), cResult(upd, 7, refused), cPrior(upd, true, true, 7),
		}},
		{"an error without words is still an answer", []contractOp{
			cIntent(upd, updEP), cResult(upd, 0, errors.New("")), cPrior(upd, true, true, 0),
		}},
		{"a new intent under a key awaits its own answer", []contractOp{
			cIntent(upd, updEP), cResult(upd, 4401, nil), cIntent(upd, updEP), cPrior(upd, true, false, 0),
			cResult(upd, 4402, nil), cPrior(upd, true, true, 4402),
		}},
		{"an answer without an intent counts as both", []contractOp{
			cResult(upd, 4401, nil), cPrior(upd, true, true, 4401),
		}},
		{"the last answer wins", []contractOp{
			cIntent(upd, updEP), cResult(upd, 4401, nil), cResult(upd, 0, refused), cPrior(upd, true, true, 0),
		}},
		{"an earlier run's intent without its answer", []contractOp{
			cIntent(upd, updEP), cReopen, cPrior(upd, true, false, 0),
			cResult(upd, 4401, nil), cReopen, cPrior(upd, true, true, 4401),
		}},
		{"an earlier run's answer, then this run's new intent", []contractOp{
			cIntent(upd, updEP), cResult(upd, 4401, nil), cReopen, cPrior(upd, true, true, 4401),
			cIntent(upd, updEP), cPrior(upd, true, false, 0), cReopen, cPrior(upd, true, false, 0),
		}},
		{"an earlier run's error answer", []contractOp{
			cIntent(upd, updEP), cResult(upd, 0, refused), cReopen, cPrior(upd, true, true, 0),
		}},
		{"a key is refused empty", []contractOp{
			{do: "intent", endpoint: updEP, fails: true}, {do: "result", jobID: 1, fails: true}, cPrior("", false, false, 0),
		}},
		{"a queue intent ties its job to the instance, answered or not", []contractOp{
			queue(inst, 300), cJobs(inst, eu1, 300), cJobs(inst, eu2, 300), cJobs(other, eu1),
			cResult(steps.QueueKey(inst, 300), 300, nil), queue(inst, 301), cResult(steps.QueueKey(inst, 301), 0, refused),
			cJobs(inst, eu1, 300, 301),
		}},
		{"a queue intent from an earlier run", []contractOp{
			queue(mirror, 102), cReopen, cJobs(mirror, mir, 102), cPrior(steps.QueueKey(mirror, 102), true, false, 0),
		}},
		{"a queue intent names its job by parameter", []contractOp{
			{do: "intent", key: inst + " imageinstall/queue", endpoint: "/cfp/v1/imageinstall/queue", params: map[string]string{"jobid": "310"}},
			cJobs(inst, eu1, 310),
		}},
		{"an intent that is no queue ties nothing", []contractOp{
			cIntent(inst+" imagediff/create#1", "/cfp/v1/imagediff/create"), cResult(inst+" imagediff/create#1", 55, nil),
			{do: "intent", key: inst + " imagediff/55/reject", endpoint: "/cfp/v1/imagediff/55/reject", params: map[string]string{"diffid": "55"}},
			cJobs(inst, eu1),
		}},
		{"a queue intent again keeps its job tied", []contractOp{
			queue(inst, 300), cResult(steps.QueueKey(inst, 300), 300, nil), queue(inst, 300), cReopen, cJobs(inst, eu1, 300),
		}},
		{"listed jobs count for what they install", []contractOp{
			cSeen(eu1, 200, 0), cSeen(eu2, 201), cSeen(steps.InstallInterest{VersionID: v - 1, Machine: 812345}, 50),
			cJobs(inst, eu1, 200), cJobs(other, eu2, 201), cJobs(inst, steps.InstallInterest{VersionID: v - 1, Machine: 812345}, 50),
		}},
		{"a mirror job's machine plays no part", []contractOp{
			cSeen(steps.InstallInterest{VersionID: v, Mirroring: true, Machine: 812345}, 100), cSeen(mir, 101),
			cJobs(mirror, mir, 100, 101), cJobs(mirror, steps.InstallInterest{VersionID: v, Mirroring: true, Machine: 9}, 100, 101),
			cJobs(inst, eu1),
		}},
		{"listed and queued jobs together, each once, sorted", []contractOp{
			cSeen(eu1, 205, 200), cSeen(eu1, 200), queue(inst, 200), queue(inst, 150), cReopen,
			cSeen(eu1, 210), cJobs(inst, eu1, 150, 200, 205, 210), cJobs(other, eu1, 200, 205, 210),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *Journal {
				j, err := Open(dir, "contract", "h1")
				if err != nil {
					t.Fatal(err)
				}
				return j
			}
			disk := open()
			defer func() { disk.Close() }()
			mem := &steps.MemJournal{}
			for i, op := range tt.ops {
				at := fmt.Sprintf("op %d (%s %s)", i, op.do, op.key)
				switch op.do {
				case "intent", "result":
					call := func(j steps.Journal) error {
						if op.do == "intent" {
							return j.Intent(op.key, op.endpoint, op.params)
						}
						return j.Result(op.key, op.jobID, op.err)
					}
					derr, merr := call(disk), call(mem)
					if (derr != nil) != op.fails || (merr != nil) != op.fails {
						t.Fatalf("%s: state journal %v, MemJournal %v; want failure %v", at, derr, merr, op.fails)
					}
				case "seen":
					if err := disk.SeenInstalls(op.seen); err != nil {
						t.Fatal(err)
					}
					if err := mem.SeenInstalls(op.seen); err != nil {
						t.Fatal(err)
					}
				case "reopen":
					if err := disk.Close(); err != nil {
						t.Fatal(err)
					}
					disk = open()
				case "prior":
					di, dr, did := disk.Prior(op.key)
					mi, mr, mid := mem.Prior(op.key)
					if di != mi || dr != mr || did != mid {
						t.Errorf("%s: state journal Prior = %v %v %d, MemJournal %v %v %d", at, di, dr, did, mi, mr, mid)
					}
					if di != op.intent || dr != op.result || did != op.jobID {
						t.Errorf("%s: Prior = %v %v %d, want %v %v %d", at, di, dr, did, op.intent, op.result, op.jobID)
					}
				case "jobs":
					d, m := disk.InstallJobs(op.inst, op.interest), mem.InstallJobs(op.inst, op.interest)
					if !slices.Equal(d, m) {
						t.Errorf("%s: InstallJobs(%s, %+v): state journal %v, MemJournal %v", at, op.inst, op.interest, d, m)
					}
					if !slices.Equal(d, op.ids) {
						t.Errorf("%s: InstallJobs(%s, %+v) = %v, want %v", at, op.inst, op.interest, d, op.ids)
					}
				default:
					t.Fatalf("unknown op %q", op.do)
				}
			}
		})
	}
}
