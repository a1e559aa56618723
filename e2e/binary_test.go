// Package e2e holds the tests that drive the rollout binary as a user
// would: a separate process, run against the simulator served by the test
// process, killed and resumed. The simulator lives in the test process, so
// its jobs go on while the binary is dead.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the rollout command, built once from the module root.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rollout-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rollout")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/rollout/rollout").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building rollout: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exitCode is the process's exit status, -1 when a signal ended it.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -2
}
