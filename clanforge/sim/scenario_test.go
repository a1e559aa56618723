package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout/rollout/plan"
)

func TestExampleScenarioLoads(t *testing.T) {
	sc, err := LoadScenario("testdata/example-scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Seed != 42 || sc.Speed != 10 || sc.Durations.Install != 15*time.Second || len(sc.Failures) != 2 ||
		sc.Failures[0].Machine != "eu-1" || sc.Failures[0].Times != 1 || sc.Faults.Targeted[0].Endpoint != EPDiffCreate ||
		sc.HeldInstalls == nil || !*sc.HeldInstalls || sc.Faults.Latency != 20*time.Millisecond {
		t.Fatalf("decoded %+v", sc)
	}
	// It must also be usable with an inventory that has these names.
	inv := testInventory()
	if _, err := New(Config{Inventory: inv, AccessKey: "a", SecretKey: "b", Scenario: sc}); err != nil {
		t.Fatal(err)
	}
}

func TestParseScenario(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // "" means valid
	}{
		{"empty", "", ""},
		{"comment only", "# nothing\n", ""},
		{"minimal", "seed: 1\nspeed: 2.5\n", ""},
		{"unknown key", "seed: 1\nsped: 2\n", "sped"},
		{"unknown nested key", "faults:\n  ratelimit: 0.1\n", "ratelimit"},
		{"unknown failure key", "failures:\n  - {kind: install, machin: eu-1}\n", "machin"},
		{"bad duration", "durations:\n  update: soon\n", "scenario:2:11: durations.update: invalid duration"},
		{"bad latency", "faults:\n  latency: 5 s\n", "faults.latency"},
		{"negative duration", "durations:\n  diff: -1s\n", "durations.diff"},
		{"bad kind", "failures:\n  - {kind: deploy}\n", `kind "deploy"`},
		{"machine on version", "failures:\n  - {kind: version, machine: eu-1}\n", "no machine"},
		{"negative times", "failures:\n  - {kind: diff, times: -1}\n", "times"},
		{"share over 1", "faults:\n  drop: 1.5\n", "faults.drop"},
		{"shares add up over 1", "faults:\n  rate_limit: 0.6\n  server_error: 0.6\n", "must not exceed 1"},
		{"not 5xx", "faults:\n  server_error_status: 404\n", "5xx"},
		{"bad endpoint", "faults:\n  targeted:\n    - {endpoint: imagediff/make}\n", "imagediff/make"},
		{"bad fault", "faults:\n  targeted:\n    - {endpoint: imagediff/create, fault: explode}\n", "explode"},
		{"bad business status", "business_error_status: 418\n", "418"},
		{"negative speed", "speed: -1\n", "speed"},
		{"jitter too big", "jitter: 2\n", "jitter"},
		{"build without match", "builds:\n  - {added: [a]}\n", "url or desc"},
		{"wrong type", "seed: [1]\n", "seed"},
		{"not yaml", "seed: : :\n", "scenario"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestScenarioErrorsReadLikePlanErrors: a scenario's errors are plan
// errors (issue 14, item 8): every one at once, each at file:line:col with
// the source line, and a suggestion for a misspelt name.
func TestScenarioErrorsReadLikePlanErrors(t *testing.T) {
	type want struct{ pos, msg, hint string }
	tests := []struct {
		name  string
		doc   string
		wants []want
	}{
		{"misspelt key", "seed: 1\nsped: 2\n", []want{{"2:1", `unknown key "sped" in the scenario`, `did you mean "speed"?`}}},
		{"misspelt nested key", "faults:\n  ratelimit: 0.1\n", []want{{"2:3", `unknown key "ratelimit" in faults`, `did you mean "rate_limit"?`}}},
		{"misspelt kind", "failures:\n  - {kind: instal, machine: eu-1}\n", []want{{"2:12", `failures[0].kind "instal" is not one of`, `did you mean "install"?`}}},
		{"misspelt endpoint", "faults:\n  targeted:\n    - {endpoint: imagediff/creat}\n", []want{{"3:18", `"imagediff/creat" is not an endpoint name`, `did you mean "imagediff/create"?`}}},
		{"wrong kind of value", "seed: [1]\n", []want{{"1:7", "seed must be an integer, not a list", ""}}},
		{"out of range", "faults:\n  drop: 1.5\n", []want{{"2:9", "faults.drop is a share and must be between 0 and 1, got 1.5", ""}}},
		{"every error at once", "sped: 2\ndurations:\n  update: soon\nfailures:\n  - {kind: install, machin: eu-1}\n", []want{
			{"1:1", `unknown key "sped"`, `did you mean "speed"?`},
			{"3:11", `durations.update: invalid duration "soon"`, ""},
			{"5:21", `unknown key "machin" in failures[0]`, `did you mean "machine"?`},
		}},
		{"syntax error", "seed: 1\nfaults: [1\n", []want{{"2:9", "YAML syntax error: sequence end token ']' not found", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tt.doc))
			var errs plan.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T), want plan.Errors", err, err)
			}
			if len(errs) != len(tt.wants) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.wants), err)
			}
			for i, w := range tt.wants {
				e := errs[i]
				if pos := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col); pos != w.pos || !strings.Contains(e.Msg, w.msg) || e.Hint != w.hint || e.Pos.File != "scenario" {
					t.Errorf("error %d: %s:%d:%d %s [%s]\nwant %s %s [%s]", i, e.Pos.File, e.Pos.Line, e.Pos.Col, e.Msg, e.Hint, w.pos, w.msg, w.hint)
				}
			}
			// Rendered as plan errors are: position, message, the line and a caret.
			lines := strings.Split(errs[0].Error(), "\n")
			if len(lines) < 3 || !strings.HasPrefix(lines[0], "scenario:"+tt.wants[0].pos+": ") || !strings.Contains(lines[2], "^") {
				t.Errorf("rendered:\n%s", errs[0].Error())
			}
		})
	}
	// A file names itself in every position.
	path := filepath.Join(t.TempDir(), "chaos.yaml")
	if err := os.WriteFile(path, []byte("speed: 2\njiter: 0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadScenario(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2:1: unknown key \"jiter\"") || !strings.Contains(err.Error(), `did you mean "jitter"?`) {
		t.Fatalf("LoadScenario: %v", err)
	}
}

func TestNewChecksScenarioNames(t *testing.T) {
	tests := []struct {
		name string
		sc   Scenario
		want string
	}{
		{"allocation", Scenario{Allocations: []string{"game-z"}}, "game-z"},
		{"failure machine", Scenario{Failures: []Failure{{Kind: KindInstall, Machine: "mars-1"}}}, "mars-1"},
		{"failure region", Scenario{Failures: []Failure{{Kind: KindMirror, Region: "moon"}}}, "moon"},
		{"build image", Scenario{Builds: []Build{{Desc: "x", Image: "9"}}}, `"9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Inventory: testInventory(), AccessKey: "a", SecretKey: "b", Scenario: tt.sc})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestNewChecksInventory(t *testing.T) {
	dup := testInventory()
	dup.Machines = append(dup.Machines, Machine{Name: "eu-1", ID: 1})
	unknown := testInventory()
	unknown.Machines[0].Images = []int64{42}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no credentials", Config{Inventory: testInventory()}, "AccessKey"},
		{"no asid", Config{Inventory: Inventory{Images: []Image{{Name: "a", ID: 1}}}, AccessKey: "a", SecretKey: "b"}, "ASID"},
		{"duplicate machine", Config{Inventory: dup, AccessKey: "a", SecretKey: "b"}, "listed twice"},
		{"unknown image", Config{Inventory: unknown, AccessKey: "a", SecretKey: "b"}, "unknown image id 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte("seed: 1\nfailures:\n  - {kind: install}\n"))
	f.Add([]byte("faults:\n  targeted:\n    - {endpoint: imagediff/create}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseScenario(data) // must not panic
	})
}
