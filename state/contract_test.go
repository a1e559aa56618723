package state

import "github.com/rollout/rollout/steps"

// The engine hands a *Journal to the steps as their steps.Journal.
var _ steps.Journal = (*Journal)(nil)
