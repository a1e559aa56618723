// Package clanforge is the client of the Multiplay Clanforge image API. It owns
// the HTTP transport policy (rate limit, Retry-After, backoff for reads, no
// blind resend for state-changing calls), the decoding of the API's loosely
// typed responses, and the typed errors callers act on.
package clanforge

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/time/rate"
)

// DefaultBaseURL is the documented API host.
const DefaultBaseURL = "https://api.multiplay.co.uk"

// Config configures a Client. Credentials are never printed by the client.
type Config struct {
	BaseURL   string // default DefaultBaseURL
	ASID      int64
	AccessKey string
	SecretKey string
	// RateLimit caps requests per second across the whole client; 0 means
	// the default of 10/s. Burst defaults to 1.
	RateLimit rate.Limit
	Burst     int
	// HTTPClient is used for reads; nil: a default client with keep-alives.
	// State-changing calls always go over a transport without connection
	// reuse so that net/http cannot silently replay them (API §8).
	HTTPClient *http.Client
	// MaxReadAttempts bounds retries of a safe read; 0: retry until ctx ends.
	MaxReadAttempts int
	// Backoff is the base delay of exponential backoff; 0: 500ms.
	Backoff time.Duration
	// MaxBackoff caps a single backoff delay; 0: 30s.
	MaxBackoff time.Duration
	UserAgent  string
}

// Client talks to one Clanforge account service (ASID).
type Client struct {
	cfg Config
}

// New returns a client. It fails when the base URL is not absolute or the
// ASID or a credential is missing.
func New(cfg Config) (*Client, error) {
	return nil, errors.New("clanforge: not implemented")
}

// ASID returns the account service id the client is scoped to.
func (c *Client) ASID() int64 { return c.cfg.ASID }

// Requests returns the number of HTTP requests sent so far (every attempt
// counts), for the run summary.
func (c *Client) Requests() int64 { return 0 }

// NewRequest builds a GET request for path (relative to the base URL) with the
// query parameters q plus accountserviceid and the auth header.
func (c *Client) NewRequest(ctx context.Context, path string, q url.Values) (*http.Request, error) {
	return nil, errors.New("not implemented")
}

// Do sends req and decodes the JSON answer into v. Reads (mutating=false) are
// retried per the transport policy; mutating requests are sent exactly once.
func (c *Client) Do(ctx context.Context, req *http.Request, v any, mutating bool) (*http.Response, error) {
	return nil, errors.New("not implemented")
}
