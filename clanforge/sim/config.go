package sim

import (
	"sort"
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

// Inventory is the simulated account: one ASID, its images and machines.
type Inventory struct {
	ASID int64
	// GameName names the account's single game (default "Simulated Game").
	GameName string
	Images   []Image
	Machines []Machine
}

// Image is a game image of the inventory.
type Image struct {
	Name string
	ID   int64
	// UpdateURL is the image's default update URL; "" means none, and then
	// imageupdate/create requires url.
	UpdateURL string
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
}

// DefaultRegion is the location of machines without a region.
const DefaultRegion = "default"

// Config configures a simulator.
type Config struct {
	Inventory Inventory
	// AccessKey and SecretKey are the only credentials accepted (HTTP Basic).
	AccessKey string
	SecretKey string
	Scenario  Scenario
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
}

func endpointList() string {
	var s []string
	for k := range endpointNames {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
