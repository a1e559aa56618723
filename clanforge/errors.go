package clanforge

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is against the typed errors below.
var (
	ErrAuth        = errors.New("clanforge: credentials refused")
	ErrNotFound    = errors.New("clanforge: not found")
	ErrLocked      = errors.New("clanforge: image locked")
	ErrRateLimited = errors.New("clanforge: rate limited")
	// ErrOutcomeUnknown: a state-changing call was sent, its answer was lost
	// and the API could not tell what happened. It must not be resent.
	ErrOutcomeUnknown = errors.New("clanforge: outcome of a state-changing call is unknown")
)

// APIError is the API's error envelope (success:false, error:true) or an
// HTTP error status, whatever the status code (API §2.3, §7 #1).
type APIError struct {
	Endpoint   string // path without host or query, e.g. /cfp/v1/imagediff/create
	HTTPStatus int
	Code       int    // error_code
	Message    string // error_message
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("clanforge: %s: HTTP %d", e.Endpoint, e.HTTPStatus)
	}
	return fmt.Sprintf("clanforge: %s: %s (HTTP %d, code %d)", e.Endpoint, e.Message, e.HTTPStatus, e.Code)
}

// Is maps HTTP statuses to the sentinels: 401/403 to ErrAuth, 404 to
// ErrNotFound, 429 to ErrRateLimited.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAuth:
		return e.HTTPStatus == 401 || e.HTTPStatus == 403
	case ErrNotFound:
		return e.HTTPStatus == 404
	case ErrRateLimited:
		return e.HTTPStatus == 429
	}
	return false
}

// LockedError is an "image locked by diffid: N" or "image locked by
// updateid: N" answer; HolderKind is "diff" or "update".
type LockedError struct {
	APIError
	HolderKind string
	HolderID   int64
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("clanforge: image locked by %s %d", e.HolderKind, e.HolderID)
}

// Is matches ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked || e.APIError.Is(target) }

// Unwrap exposes the envelope.
func (e *LockedError) Unwrap() error { return &e.APIError }

// OutcomeUnknownError reports a state-changing call whose answer was lost and
// could not be settled from the API.
type OutcomeUnknownError struct {
	Endpoint string
	Cause    error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("clanforge: %s: answer lost and the outcome could not be settled (not resent): %v", e.Endpoint, e.Cause)
}

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the transport error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Cause }

// DecodeError is a 2xx answer the client could not read: an empty body, a
// body that is not a JSON object, or fields of an impossible type.
type DecodeError struct {
	Endpoint   string
	HTTPStatus int
	Reason     string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("clanforge: %s: unreadable answer (HTTP %d): %s", e.Endpoint, e.HTTPStatus, e.Reason)
}
