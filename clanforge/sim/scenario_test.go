package sim

import (
	"strings"
	"testing"
	"time"
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
		{"bad duration", "durations:\n  update: soon\n", "line 2 column 11: durations.update"},
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
