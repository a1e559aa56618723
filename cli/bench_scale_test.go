package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/simtest"
)

// BenchmarkRunSimFleet is `rollout run PLAN --sim --speed 1000 --no-tui`
// in-process, on the fleet plans of issue 12's scale goal (one image, waves
// 1/10%/100%, concurrency 64): the whole command, from loading the plan to
// the summary, with the real journal, event log and plain reporter. Its
// profiles (-cpuprofile, -memprofile) are the 10k run's. The ratio between
// the sizes shows whether the cost grows linearly with the fleet.
func BenchmarkRunSimFleet(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "fleet.yaml")
			src := simtest.FleetPlan(fmt.Sprintf("fleet%d", n), []string{"game"}, n, 64, "    waves: [1, \"10%\", \"100%\"]\n", "", "")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
			env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
				Getenv: func(string) string { return "" }, IsTerminal: func() bool { return false }}
			for i := 0; b.Loop(); i++ {
				o := RunOptions{Path: path, Sim: true, Speed: 1000, NoTUI: true, Yes: true,
					StateDir: filepath.Join(dir, fmt.Sprint("state", i))}
				o.set = map[string]bool{"speed": true}
				if err := Run(context.Background(), env, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
