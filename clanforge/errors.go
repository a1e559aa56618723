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
	// ErrNotApplied: a state-changing call's answers were all lost, and a
	// read after each proved that it took no effect; the resends ran out
	// (or the caller stopped). Nothing was made: it is safe to send later.
	ErrNotApplied = errors.New("clanforge: state-changing call took no effect")
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
	// Known, when set, is what the settling read did show, for a read that
	// worked but cannot decide (a finished update leaves no lock, say).
	Known string
}

func (e *OutcomeUnknownError) Error() string {
	if e.Known != "" {
		return fmt.Sprintf("clanforge: %s: the answer was lost (%s) and %s; not sent again", e.Endpoint, shortReason(e.Cause), e.Known)
	}
	return fmt.Sprintf("clanforge: %s: answer lost and the outcome could not be settled (not resent): %v", e.Endpoint, e.Cause)
}

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the transport error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Cause }

// NotAppliedError is a state-changing call sent Sends times whose answers
// were all lost, each followed by a read that proved the call took no
// effect. The resends ran out (Config.MaxResends) or the caller stopped
// (Stopped). Nothing was made; sending the call later is safe.
type NotAppliedError struct {
	Endpoint string
	Sends    int
	Proof    string // what the last read showed, e.g. "install job 5 is still Pending"
	Last     error  // the last lost answer
	Stopped  error  // the caller's context error, when it ended the resends
}

func (e *NotAppliedError) Error() string {
	n := "times"
	if e.Sends == 1 {
		n = "time"
	}
	msg := fmt.Sprintf("clanforge: %s: sent %d %s and every answer was lost (last: %s), but each time the API showed that the call took no effect (%s)",
		e.Endpoint, e.Sends, n, shortReason(e.Last), e.Proof)
	if e.Stopped != nil {
		return msg + "; stopped before sending it again: " + e.Stopped.Error()
	}
	return msg + "; not sent again"
}

// Is matches ErrNotApplied.
func (e *NotAppliedError) Is(target error) bool { return target == ErrNotApplied }

// Unwrap returns the last lost answer and, when the caller stopped, its
// context's error.
func (e *NotAppliedError) Unwrap() []error {
	if e.Stopped == nil {
		return []error{e.Last}
	}
	return []error{e.Last, e.Stopped}
}

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
