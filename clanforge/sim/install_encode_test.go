package sim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// installStatusMaps is the install list as the simulator rendered it before
// installStatus wrote bytes itself: maps encoded by encoding/json. It is
// the reference the fast rendering must match byte for byte.
func (s *Server) installStatusMaps(now time.Time) []byte {
	list := []any{}
	for _, j := range s.installs {
		if !s.listed(j, now) {
			continue
		}
		b := s.jobBody(j, now, "jobid", false)
		b["mirroring"] = j.mirroring
		b["mirror"] = ""
		b["machine"] = nil
		if j.mirroring {
			b["mirror"] = j.loc.mirror
		} else {
			b["machine"] = j.machine.ID
		}
		b["location"] = j.loc.id
		b["imagepath"] = "/home/cf/" + strconv.FormatInt(j.image.ID, 10)
		b["install_at"] = nil
		if j.installAt != nil {
			b["install_at"] = j.installAt.Unix()
		}
		b["target_imageversionid"] = j.target.id
		b["restart"] = 0
		if j.restart {
			b["restart"] = 1
		}
		list = append(list, b)
	}
	out, err := json.Marshal(map[string]any{"installs": list})
	if err != nil {
		panic(err)
	}
	return out
}

// TestInstallStatusBytes: the install list written straight into bytes is
// exactly what encoding/json makes of the documented maps, in every state an
// install passes through (held, queued by itself, running, failed with a
// message that needs escaping, completed and gone), for mirror and machine
// jobs, with and without install_at and restart.
func TestInstallStatusBytes(t *testing.T) {
	clock := NewFakeClock(epoch)
	msg := "<disk> & \"full\"\\ é\t\u2028 \x7f"
	s, err := New(Config{Inventory: testInventory(), AccessKey: accessKey, SecretKey: secretKey, Clock: clock,
		Scenario: Scenario{Jitter: 0.4, Seed: 7, Failures: []Failure{{Kind: KindInstall, Machine: "eu-1", Error: msg}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	now := s.tick()
	for i, img := range s.images {
		s.nextVersion++
		vj := s.newJob(KindVersion, s.nextVersion, img, nil, now)
		vj.ver = &version{id: vj.id, image: img, files: img.latest.files}
		vj.restart = i == 0
		if i == 0 {
			at := now
			vj.installAt = &at // moves on by itself
		}
		s.autoQueue(vj, time.Time{})
	}
	s.mu.Unlock()
	sawFailed, sawRunning := false, false
	for step := 0; step < 80; step++ {
		clock.Advance(250 * time.Millisecond)
		s.mu.Lock()
		now := s.tick()
		s.advance(now)
		got, want := []byte(s.installStatus(now)), s.installStatusMaps(now)
		for _, j := range s.installs {
			switch j.stateAt(now) {
			case stFailed:
				sawFailed = sawFailed || s.listed(j, now)
			case stRunning:
				sawRunning = true
			}
		}
		s.mu.Unlock()
		if !bytes.Equal(got, want) {
			t.Fatalf("at step %d the install list differs:\n got  %s\n want %s", step, got, want)
		}
	}
	if !sawFailed || !sawRunning {
		t.Fatalf("the walk never listed a failed (%v) or running (%v) install", sawFailed, sawRunning)
	}
}
