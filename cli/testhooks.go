//go:build rollout_testhooks

package cli

import "github.com/rollout/rollout/internal/simtest"

// The rollout_testhooks build of the command, which the end-to-end tests
// run, turns the stand-ins of simtest.Control into approve steps and
// pause_after, which the plan loader does not parse yet. The command users
// get is built without this file.
func init() { planHook = simtest.Control }
