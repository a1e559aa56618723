package clanforge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/rollout/rollout/redact"
)

// WaitKind says why the client waits before (or while) sending a request.
type WaitKind int

const (
	// WaitRetry: an attempt failed (no connection, no answer in time, a
	// 5xx, a broken answer) and the same read is sent again after Delay.
	WaitRetry WaitKind = iota + 1
	// WaitResend: a state-changing call's answer was lost, a read proved
	// that the call took no effect, and it is sent again after Delay.
	WaitResend
	// WaitHold: the server answered 429; every request of the client waits
	// Delay (its Retry-After, capped at Config.MaxRetryAfter).
	WaitHold
	// WaitRateLimit: the client's own rate limit (Config.RateLimit) holds
	// the request for Delay. Only waits of a second or more are reported.
	WaitRateLimit
	// WaitAnswer: the request has left and no complete answer has come for
	// Delay; the attempt gives up at Config.RequestTimeout.
	WaitAnswer
)

func (k WaitKind) String() string {
	switch k {
	case WaitRetry:
		return "retry"
	case WaitResend:
		return "resend"
	case WaitHold:
		return "hold"
	case WaitRateLimit:
		return "rate-limit"
	case WaitAnswer:
		return "answer"
	}
	return "unknown"
}

// Wait is one wait of the client, reported through Config.OnWait so that a
// person sees within seconds what the client is doing when the API is slow,
// unreachable or refusing. Nothing in it comes from a query string, and
// Reason has credentials masked; it may still hold text the server sent (an
// error_message), so a printer escapes it like any other API text.
type Wait struct {
	Kind WaitKind
	// Endpoint is the request path without host or query, e.g.
	// /cfp/v1/imageinstall/status. Name gives the short form.
	Endpoint string
	// Attempt is the attempt the wait comes before (2 for the first
	// retry), or, for WaitAnswer, the attempt under way.
	Attempt int
	// Delay is how long the client will wait; for WaitAnswer, how long it
	// has waited so far.
	Delay time.Duration
	// Reason says why: the failed attempt's error in short ("connection
	// refused", "HTTP 503"), "Retry-After 999999999s capped to 5m0s", the
	// proof behind a resend.
	Reason string
	// FirstContact is set while no answer at all has come from the server
	// since the client was made: the API may be unreachable.
	FirstContact bool
}

// Name is the endpoint without its /cfp/vN/ prefix, e.g.
// imageinstall/status, as a person would name it.
func (w Wait) Name() string { return shortEndpoint(w.Endpoint) }

// String renders the wait as one line, e.g. "retrying imageinstall/status
// in 4s: connection refused".
func (w Wait) String() string {
	var s string
	switch w.Kind {
	case WaitRetry:
		s = fmt.Sprintf("retrying %s in %s (attempt %d): %s", w.Name(), roundDuration(w.Delay), w.Attempt, w.Reason)
	case WaitResend:
		s = fmt.Sprintf("sending %s again in %s (send %d): %s", w.Name(), roundDuration(w.Delay), w.Attempt, w.Reason)
	case WaitHold:
		s = fmt.Sprintf("rate limited on %s: every request waits %s: %s", w.Name(), roundDuration(w.Delay), w.Reason)
	case WaitRateLimit:
		s = fmt.Sprintf("waiting %s for the client's rate limit before %s: %s", roundDuration(w.Delay), w.Name(), w.Reason)
	case WaitAnswer:
		s = fmt.Sprintf("still waiting for an answer from %s after %s (attempt %d): %s", w.Name(), roundDuration(w.Delay), w.Attempt, w.Reason)
	default:
		s = fmt.Sprintf("waiting %s before %s: %s", roundDuration(w.Delay), w.Name(), w.Reason)
	}
	if w.FirstContact {
		s = "no answer from the API yet; " + s
	}
	return s
}

// shortEndpoint drops the base path and the /cfp/vN/ prefix of a request
// path: /cfp/v1/image/options -> image/options.
func shortEndpoint(p string) string {
	for _, v := range []string{"/cfp/v1/", "/cfp/v2/"} {
		if i := strings.Index(p, v); i >= 0 {
			return p[i+len(v):]
		}
	}
	return strings.TrimLeft(p, "/")
}

// roundDuration keeps a duration readable: milliseconds below a second,
// tenths below a minute, whole seconds above.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func (c *Client) emit(w Wait) {
	if c.cfg.OnWait != nil {
		w.FirstContact = !c.answered.Load()
		c.cfg.OnWait(w)
	}
}

// ErrTimeout matches an attempt that got no complete answer (headers and
// body) within Config.RequestTimeout.
var ErrTimeout = errors.New("clanforge: no complete answer in time")

// timeoutError is an attempt cut off by Config.RequestTimeout. It does not
// match context.DeadlineExceeded: the caller's deadline has not passed.
type timeoutError struct {
	d    time.Duration
	dial bool // cut off while connecting: nothing was sent
}

func (e *timeoutError) Error() string {
	if e.dial {
		return fmt.Sprintf("no connection within %s", roundDuration(e.d))
	}
	return fmt.Sprintf("no complete answer within %s", roundDuration(e.d))
}
func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }
func (e *timeoutError) Timeout() bool        { return true }

// errNoAnswerYet stands for the last failure of a call whose only attempt
// was cut off by the caller's context before any answer came.
var errNoAnswerYet = errors.New("no answer yet")

// GaveUpError is a call the client stopped retrying: its context ended
// (deadline or interrupt) or Config.MaxReadAttempts was reached. It wraps
// both the last failure (errors.As finds an *APIError there) and, when the
// context ended, the context's error, so errors.Is(err,
// context.DeadlineExceeded) tells a deadline apart.
type GaveUpError struct {
	Endpoint string        // request path without host or query
	Attempts int           // attempts sent
	Elapsed  time.Duration // since the call began
	Last     error         // the last attempt's failure
	Cause    error         // the context's error; nil: attempts exhausted
}

func (e *GaveUpError) Error() string {
	n := "attempts"
	if e.Attempts == 1 {
		n = "attempt"
	}
	verb := "gave up on"
	if errors.Is(e.Cause, context.Canceled) {
		verb = "stopped (interrupted) retrying"
	}
	msg := fmt.Sprintf("clanforge: %s %s after %s (%d %s): last error: %s",
		verb, shortEndpoint(e.Endpoint), roundDuration(e.Elapsed), e.Attempts, n, shortReason(e.Last))
	if e.Cause != nil && e.Cause != context.DeadlineExceeded && e.Cause != context.Canceled {
		// Given up before the deadline passed: say why.
		msg += " (" + e.Cause.Error() + ")"
	}
	return msg
}

// Unwrap exposes the last failure and the context's error.
func (e *GaveUpError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Last}
	}
	return []error{e.Last, e.Cause}
}

// shortReason is an error in the few words a wait line or a give-up message
// needs: "connection refused", "HTTP 503", "image locked ... (HTTP 200)".
// Credentials are masked by the caller (reason) or were never in it.
func shortReason(err error) string {
	if err == nil {
		return "none"
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Message != "" {
			return fmt.Sprintf("%s (HTTP %d)", ae.Message, ae.HTTPStatus)
		}
		return fmt.Sprintf("HTTP %d", ae.HTTPStatus)
	}
	var te *timeoutError
	if errors.As(err, &te) {
		return te.Error()
	}
	var de *DecodeError
	if errors.As(err, &de) {
		return fmt.Sprintf("unreadable answer (HTTP %d): %s", de.HTTPStatus, de.Reason)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return redact.Text(ue.Err.Error())
	}
	s := err.Error()
	// Drop the "clanforge: <path>: " prefix the client's own errors carry.
	if strings.HasPrefix(s, "clanforge: ") {
		rest := strings.TrimPrefix(s, "clanforge: ")
		if i := strings.Index(rest, ": "); i > 0 && strings.HasPrefix(rest, "/") {
			rest = rest[i+2:]
		}
		s = rest
	}
	return s
}

// reason is shortReason with credentials masked and the length bounded, for
// a Wait.
func (c *Client) reason(err error) string {
	return truncate(c.redactor.Replace(redact.Text(shortReason(err))), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}
