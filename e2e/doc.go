// Package e2e drives the rollout binary as a user would: a separate
// process, against the simulator over real HTTP, killed, interrupted and
// resumed. It holds tests only.
package e2e
