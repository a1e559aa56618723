package clanforge

import (
	"context"
	"errors"
)

var errTODO = errors.New("clanforge: not implemented")

// CreateUpdate calls imageupdate/create. url may be empty when the image has a
// default update URL. A lost answer is settled from image/options: a new
// updateid lock holder that was not there before the call is the job the
// call made.
func (c *Client) CreateUpdate(ctx context.Context, imageID, machineID int64, desc, url string) (*Job, error) {
	return nil, errTODO
}

// UpdateStatus reads imageupdate/<id>/status.
func (c *Client) UpdateStatus(ctx context.Context, updateID int64) (*Job, error) { return nil, errTODO }

// CreateDiff calls imagediff/create. A lost answer is settled from
// image/options (or from the "image locked by diffid: N" answer of a check).
func (c *Client) CreateDiff(ctx context.Context, imageID, machineID int64) (*Job, error) {
	return nil, errTODO
}

// DiffStatus reads imagediff/<id>/status with its file lists.
func (c *Client) DiffStatus(ctx context.Context, diffID int64) (*Diff, error) { return nil, errTODO }

// RetryDiff calls imagediff/<id>/retry (allowed on Completed or Failed diffs).
func (c *Client) RetryDiff(ctx context.Context, diffID int64) (*Job, error) { return nil, errTODO }

// RejectDiff calls imagediff/<id>/reject.
func (c *Client) RejectDiff(ctx context.Context, diffID int64, reinstall bool) (*RejectResult, error) {
	return nil, errTODO
}

// CreateVersion calls imageversion/create. Its lost answer cannot be settled
// (the diff is consumed and the lock released), so it returns an
// *OutcomeUnknownError and the caller must not resend.
func (c *Client) CreateVersion(ctx context.Context, diffID int64, opt VersionOptions) (*Job, error) {
	return nil, errTODO
}

// VersionStatus reads imageversion/<id>/status.
func (c *Client) VersionStatus(ctx context.Context, versionID int64) (*Job, error) {
	return nil, errTODO
}

// InstallStatus reads imageinstall/status: every install job of the ASID that
// has not completed (Failed ones included, API §7 #16).
func (c *Client) InstallStatus(ctx context.Context) ([]Install, error) { return nil, errTODO }

// QueueInstall calls imageinstall/<jobid>/queue. An "already queued" answer
// and a lost answer settled from imageinstall/status both count as success.
func (c *Client) QueueInstall(ctx context.Context, jobID int64, mirroring bool) (*QueueResult, error) {
	return nil, errTODO
}

// ImageStatus reads the v2 rollout counters of an image.
func (c *Client) ImageStatus(ctx context.Context, imageID int64, detail bool) (*ImageStatus, error) {
	return nil, errTODO
}

// ImageOptions reads image/options for one image (lock holders, update URL).
func (c *Client) ImageOptions(ctx context.Context, imageID int64) (*ImageOptions, error) {
	return nil, errTODO
}
