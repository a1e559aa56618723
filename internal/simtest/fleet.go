package simtest

import (
	"fmt"
	"strings"
)

// FleetPlan returns the YAML of a plan named name (ASID 1234, vars.build
// "9.9.9") with one build machine, buildbox-1, and n fleet machines m000,
// m001, ... alternately in regions eu and us, all carrying images (ids from
// 5530 on). Its steps are update and diff on the build machine, a gate
// with expression gate when gate is not "", version (restart, full: auto),
// mirror, and install on the fleet; install holds the extra lines of the
// install step (indented four spaces, e.g. "    waves: [1, \"100%\"]\n") and
// onFailure is appended as is (e.g. an on_failure section).
func FleetPlan(name string, images []string, n, concurrency int, install, gate, onFailure string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nname: %s\nclanforge: {asid: 1234}\nconcurrency: %d\nvars: {build: \"9.9.9\"}\nimages:\n", name, concurrency)
	for i, img := range images {
		fmt.Fprintf(&b, "  - {name: %s, id: %d}\n", img, 5530+i)
	}
	b.WriteString("machines:\n  - {name: buildbox-1, id: 770001, labels: {role: build}}\n")
	for i := 0; i < n; i++ {
		region := "eu"
		if i%2 == 1 {
			region = "us"
		}
		fmt.Fprintf(&b, "  - {name: m%03d, id: %d, labels: {role: fleet, region: %s}}\n", i, 800000+i, region)
	}
	b.WriteString(`steps:
  - name: update
    type: update
    where: machine.labels.role == "build"
    desc: "build ${vars.build}"
    url: "s3://builds/game/${vars.build}/"
  - name: diff
    type: diff
    needs: [update]
    where: machine.labels.role == "build"
`)
	versionNeeds := "diff"
	if gate != "" {
		fmt.Fprintf(&b, "  - name: gate\n    type: gate\n    needs: [diff]\n    expr: %s\n", gate)
		versionNeeds = "gate"
	}
	fmt.Fprintf(&b, `  - name: version
    type: version
    needs: [%s]
    restart: true
    full: auto
  - name: mirror
    type: install
    needs: [version]
    mirroring: true
  - name: install
    type: install
    needs: [mirror]
    where: machine.labels.role == "fleet"
    mirroring: false
%s`, versionNeeds, install)
	b.WriteString(onFailure)
	return b.String()
}

// The fleets of CutoverPlan.
const (
	FleetEU = "c0a3e2a1-6955-415c-b1d4-af9199833e6a" // prod-eu
	FleetUS = "5d1b0c7e-2f6a-4c61-9d8e-0b7f3c2a9e14" // prod-us
)

// CutoverPlan is FleetPlan (without a gate) made ready for a cut-over:
// the images get profiles 101, 102, ... in order, the plan the fleets
// prod-eu (FleetEU) and prod-us (FleetUS), and each fleet machine the fleet
// of its region (the build machine none). steps is added after the
// install step (e.g. ready and switch steps), then onFailure.
func CutoverPlan(name string, images []string, n, concurrency int, install, steps, onFailure string) string {
	src := FleetPlan(name, images, n, concurrency, install+steps, "", onFailure)
	for i, img := range images {
		line := fmt.Sprintf("  - {name: %s, id: %d}\n", img, 5530+i)
		src = strings.Replace(src, line, fmt.Sprintf("  - {name: %s, id: %d, profile: %d}\n", img, 5530+i, 101+i), 1)
	}
	src = strings.Replace(src, "machines:\n", "fleets:\n  - {name: prod-eu, id: "+FleetEU+"}\n  - {name: prod-us, id: "+FleetUS+"}\nmachines:\n", 1)
	for _, r := range []string{"eu", "us"} {
		src = strings.ReplaceAll(src, "labels: {role: fleet, region: "+r+"}}", "fleet: prod-"+r+", labels: {role: fleet, region: "+r+"}}")
	}
	return src
}
