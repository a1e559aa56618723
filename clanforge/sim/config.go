package sim

import (
	"sort"
	"strconv"
	"strings"
)

// Kind is a job kind.
type Kind string

// Job kinds.
const (
	KindUpdate    Kind = "update"
	KindDiff      Kind = "diff"
	KindVersion   Kind = "version"
	KindMirror    Kind = "mirror"
	KindInstall   Kind = "install"
	KindUninstall Kind = "uninstall"
)

var allKinds = []Kind{KindUpdate, KindDiff, KindVersion, KindMirror, KindInstall, KindUninstall}

func validKind(k Kind) bool {
	for _, a := range allKinds {
		if a == k {
			return true
		}
	}
	return false
}

func kindList() string {
	s := make([]string, len(allKinds))
	for i, k := range allKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Inventory is the simulated account: one ASID, its images, machines and
// fleets.
type Inventory struct {
	ASID int64
	// GameName names the account's single game (default "Simulated Game").
	GameName string
	Images   []Image
	Machines []Machine
	// Fleets are the account's fleets (API §4.15). Every fleet machine
	// belongs to one: the machine's own Fleet, else the only fleet when
	// there is exactly one, else a fleet New invents (DefaultFleetName).
	Fleets []Fleet
}

// Image is a game image of the inventory.
type Image struct {
	Name string
	ID   int64
	// UpdateURL is the image's default update URL; "" means none, and then
	// imageupdate/create requires url.
	UpdateURL string
	// Profile is the fleet profile that runs this image (API §1.3: profile
	// A runs image A); 0 when none does. Two images never share a profile.
	Profile int64
}

// Fleet is a fleet of the inventory: a set of fleet machines whose servers
// run one profile at a time and switch together (API §4.15).
type Fleet struct {
	Name string
	// ID is the fleet's UUID, the path segment of the switchprofile calls.
	ID string
	// Profile is the profile its servers run at the start; 0 means the
	// profile of the first image (inventory order) that has one and that
	// a machine of the fleet carries (0 when there is none).
	Profile int64
}

// Machine is a machine of the inventory.
type Machine struct {
	Name string
	ID   int64
	// Region names the machine's mirror location; "" is the default
	// location ("default").
	Region string
	// Images are the ids of the images the machine carries.
	Images []int64
	// Build marks a build machine: it takes updates and diffs and never gets
	// install jobs. Every other machine is a fleet machine.
	Build bool
	// Fleet is the ID of the machine's fleet; "" means the only fleet of
	// the inventory when it has exactly one, else the invented fleet
	// (DefaultFleetName). A build machine serves no players: it is in no
	// fleet, whatever this says.
	Fleet string
}

// DefaultRegion is the location of machines without a region.
const DefaultRegion = "default"

// DefaultFleetName names the fleet New invents for fleet machines that have
// none (an inventory without fleets, or one with several and a machine that
// names none), so that the v2 counters and the profile switch still have a
// fleet to show. Its ID is DefaultFleetID(asid).
const DefaultFleetName = "default"

// DefaultFleetID is the UUID of the invented fleet of an account.
func DefaultFleetID(asid int64) string {
	return detUUID("fleet", strconv.FormatInt(asid, 10))
}

// RegionID is the stable UUID of a region (mirror location), derived from
// its name alone, so that a test or a plan can know it in advance. The v2
// image status keys its regions by it and names them.
func RegionID(name string) string { return detUUID("region", name) }

// Config configures a simulator.
type Config struct {
	Inventory Inventory
	// AccessKey and SecretKey, when set, are accepted as HTTP Basic
	// credentials (both or neither).
	AccessKey string
	SecretKey string
	// Token, when set, is accepted as "Authorization: Bearer <token>", as
	// the API's current operator documents (API §2.2). At least one of the
	// two schemes must be configured; a scheme that is not configured is
	// refused like a wrong credential (403).
	Token    string
	Scenario Scenario
	// Speed, when > 0, overrides Scenario.Speed (the --speed flag).
	Speed float64
	// Clock defaults to the wall clock.
	Clock Clock
}

// Endpoint names, as used in Request.Endpoint and in targeted faults.
const (
	EPUpdateCreate  = "imageupdate/create"
	EPUpdateStatus  = "imageupdate/status"
	EPUpdateRetry   = "imageupdate/retry"
	EPDiffCreate    = "imagediff/create"
	EPDiffStatus    = "imagediff/status"
	EPDiffRetry     = "imagediff/retry"
	EPDiffReject    = "imagediff/reject"
	EPVersionCreate = "imageversion/create"
	EPVersionStatus = "imageversion/status"
	EPInstallStatus = "imageinstall/status"
	EPInstallQueue  = "imageinstall/queue"
	EPImageOptions  = "image/options"
	EPImageStatusV2 = "v2/image/status"
	// The profile switch (API §4.15) shares one path: PATCH starts a
	// switch, GET reads its status.
	EPSwitchProfile = "v2/fleet/switchprofile"
	EPSwitchStatus  = "v2/fleet/switchprofile/status"
	EPUnknown       = "unknown"
)

// endpointNames maps each endpoint name to whether it changes state.
var endpointNames = map[string]bool{
	EPUpdateCreate:  true,
	EPUpdateStatus:  false,
	EPUpdateRetry:   true,
	EPDiffCreate:    true,
	EPDiffStatus:    false,
	EPDiffRetry:     true,
	EPDiffReject:    true,
	EPVersionCreate: true,
	EPVersionStatus: false,
	EPInstallStatus: false,
	EPInstallQueue:  true,
	EPImageOptions:  false,
	EPImageStatusV2: false,
	EPSwitchProfile: true,
	EPSwitchStatus:  false,
}

func endpointList() string {
	var s []string
	for k := range endpointNames {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
