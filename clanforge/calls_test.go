package clanforge_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/rollout/rollout/clanforge"
)

// TestCallsAreWhatIsSent: for every endpoint, the Call that Calls builds
// (what a preview renders) is exactly the request the client's method
// sends: method, path, query and body, as a recording server sees them.
func TestCallsAreWhatIsSent(t *testing.T) {
	ok := respond(200, `{"success":true,"updateid":1,"diffid":12,"imageversionid":1,"machinejobid":14,"jobstateid":1}`)
	routes := everyEndpoint(ok, respond(200, `{"games":[{"gameid":1201,"name":"g"}]}`))
	routes[switchPath] = respond(200, `{"ProfileID":102,"State":"pending"}`)
	f := newFake(t, routes)
	c := f.client(t, nil)
	k := c.Calls()
	cx := ctx(t)
	opt := clanforge.VersionOptions{Restart: true, Full: true, GameBuild: "2.3.0", Force: true, InstallNow: true, DisableTimeout: 30, DisablePercentage: 95.5}
	sw := clanforge.SwitchOptions{ProfileID: 102, Timeout: 2 * time.Hour, MaxMachines: 10}
	tests := []struct {
		name string
		do   func() error
		want clanforge.Call
	}{
		// The calls that change state are the ones named */create,
		// */retry, */reject, */queue and the switch's PATCH; the test
		// checks Call.Mutating against that below.
		{"UpdateCreate", func() error { _, err := c.CreateUpdate(cx, 5531, 770001, "build 7", "s3://b/7/"); return err },
			k.UpdateCreate("5531", "770001", "build 7", "s3://b/7/")},
		{"UpdateCreate default url", func() error { _, err := c.CreateUpdate(cx, 5531, 770001, "build 7", ""); return err },
			k.UpdateCreate("5531", "770001", "build 7", "")},
		{"UpdateStatus", func() error { _, err := c.UpdateStatus(cx, 11); return err }, k.UpdateStatus("11")},
		{"DiffCreate", func() error { _, err := c.CreateDiff(cx, 5531, 770001); return err }, k.DiffCreate("5531", "770001")},
		{"DiffStatus", func() error { _, err := c.DiffStatus(cx, 12); return err }, k.DiffStatus("12", false)},
		{"DiffRetry", func() error { _, err := c.RetryDiff(cx, 12); return err }, k.DiffRetry("12")},
		{"DiffReject", func() error { _, err := c.RejectDiff(cx, 12, true); return err }, k.DiffReject("12", true)},
		{"VersionCreate", func() error { _, err := c.CreateVersion(cx, 12, opt); return err }, k.VersionCreate("12", opt)},
		{"VersionCreate minimal", func() error { _, err := c.CreateVersion(cx, 12, clanforge.VersionOptions{}); return err },
			k.VersionCreate("12", clanforge.VersionOptions{})},
		{"VersionStatus", func() error { _, err := c.VersionStatus(cx, 13); return err }, k.VersionStatus("13")},
		{"InstallStatus", func() error { _, err := c.InstallStatus(cx); return err }, k.InstallStatus()},
		{"InstallQueue", func() error { _, err := c.QueueInstall(cx, 14, true); return err }, k.InstallQueue("14", true)},
		{"ImageStatus", func() error { _, err := c.ImageStatus(cx, 5531, true); return err }, k.ImageStatus("5531", true)},
		{"ImageOptions", func() error { _, err := c.ImageOptions(cx, 5531); return err }, k.ImageOptions("1201", "5531")},
		{"SwitchProfile", func() error { _, err := c.SwitchProfile(cx, testFleet, sw); return err }, k.SwitchProfile(testFleet, sw)},
		{"SwitchStatus", func() error { _, err := c.ProfileSwitchStatus(cx, testFleet); return err }, k.SwitchStatus(testFleet)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatal(err)
			}
			hits := f.all()
			last := hits[len(hits)-1]
			req, err := c.Request(context.Background(), tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if last.Method != req.Method || last.Path != req.URL.Path || !reflect.DeepEqual(last.Query, req.URL.Query()) {
				t.Errorf("sent %s %s %v\nbuilt %s %s %v", last.Method, last.Path, last.Query, req.Method, req.URL.Path, req.URL.Query())
			}
			if last.Path != tt.want.Path || !reflect.DeepEqual(last.Query, tt.want.Query) {
				t.Errorf("the Call itself says %s %v", tt.want.Path, tt.want.Query)
			}
			if last.Body != tt.want.BodyJSON() {
				t.Errorf("body sent %q, built %q", last.Body, tt.want.BodyJSON())
			}
			if want := last.Method == http.MethodPatch || (last.Method == http.MethodGet && isChange(last.Path)); tt.want.Mutating != want {
				t.Errorf("Mutating = %v, want %v", tt.want.Mutating, want)
			}
		})
	}
}

// isChange reports whether a path is one of the state-changing endpoints.
func isChange(path string) bool {
	for _, suffix := range []string{"/create", "/retry", "/reject", "/queue"} {
		if len(path) >= len(suffix) && path[len(path)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}
