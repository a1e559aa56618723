package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLargeFleetRollout runs a version's installs over 2000 fleet
// machines in 20 regions, with an install status read after each step of
// simulated time, all in-process (no HTTP).
func BenchmarkLargeFleetRollout(b *testing.B) {
	inv := Inventory{ASID: 1, Images: []Image{{Name: "game", ID: 1}}}
	inv.Machines = append(inv.Machines, Machine{Name: "build", ID: 1, Build: true, Images: []int64{1}})
	for i := 0; i < 2000; i++ {
		inv.Machines = append(inv.Machines, Machine{Name: fmt.Sprint("m", i), ID: int64(100 + i), Region: fmt.Sprint("r", i%20), Images: []int64{1}})
	}
	for b.Loop() {
		clock := NewFakeClock(epoch)
		s, err := New(Config{Inventory: inv, AccessKey: "a", SecretKey: "b", Clock: clock, Scenario: Scenario{Jitter: 0.3}})
		if err != nil {
			b.Fatal(err)
		}
		s.mu.Lock()
		now := s.tick()
		img := s.imageByID[1]
		s.nextVersion++
		vj := s.newJob(KindVersion, s.nextVersion, img, nil, now)
		vj.ver = &version{id: vj.id, image: img, files: img.latest.files}
		t := now
		vj.installAt = &t
		s.autoQueue(vj, time.Time{})
		s.mu.Unlock()
		for i := 0; i < 120; i++ {
			clock.Advance(time.Second)
			s.mu.Lock()
			now := s.tick()
			s.advance(now)
			s.installStatus(now)
			s.mu.Unlock()
		}
		if s.InstalledVersion(100, 1) != vj.id {
			b.Fatal("rollout did not finish")
		}
	}
}
