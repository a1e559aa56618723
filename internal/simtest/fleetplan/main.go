// Command fleetplan prints a fleet plan (simtest.FleetPlan) for measuring
// `rollout run --sim` at scale, e.g. issue 12's 10,000-machine run:
//
//	go run ./internal/simtest/fleetplan -n 10000 > /tmp/fleet10k.yaml
//	rollout run /tmp/fleet10k.yaml --sim --speed 1000 --no-tui --yes
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rollout/rollout/internal/simtest"
)

func main() {
	n := flag.Int("n", 1000, "fleet machines")
	conc := flag.Int("concurrency", 64, "the plan's concurrency")
	waves := flag.String("waves", `1, "10%", "100%"`, "the install step's waves (YAML flow list items)")
	images := flag.String("images", "game", "comma-separated image names")
	name := flag.String("name", "", "plan name (default fleet<n>)")
	flag.Parse()
	if *name == "" {
		*name = fmt.Sprintf("fleet%d", *n)
	}
	install := ""
	if *waves != "" {
		install = "    waves: [" + *waves + "]\n"
	}
	if _, err := os.Stdout.WriteString(simtest.FleetPlan(*name, strings.Split(*images, ","), *n, *conc, install, "", "")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
