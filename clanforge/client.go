// Package clanforge is the client of the Multiplay Clanforge image API. It owns
// the HTTP transport policy (rate limit, Retry-After, backoff for reads, no
// blind resend for state-changing calls), the decoding of the API's loosely
// typed responses, and the typed errors callers act on.
//
// Transport policy in short:
//
//   - Every image call is a GET with its inputs in the query string and the
//     form-urlencoded content type real clients send (API §2.1); the
//     profile switch is a PATCH with a JSON body (API §4.15). Credentials
//     are HTTP Basic (access and secret key) or, when Config.Token is set,
//     a Bearer token and no Basic header at all (API §2.2).
//   - A client-wide token bucket (golang.org/x/time/rate) caps the request
//     rate: Config.RateLimit, default 10 requests/s, burst Config.Burst,
//     default 5. Every attempt, retries included, takes a token.
//   - A 429 sets a client-wide "not before" time from Retry-After: every
//     request of the client waits for it, not only the refused one.
//   - Reads are retried on 429, 5xx and transport errors with exponential
//     backoff and full jitter, bounded by ctx and Config.MaxReadAttempts. A
//     read that stops retrying returns a *GaveUpError naming the endpoint,
//     the attempts, the time spent and the last failure.
//   - Every attempt has an overall deadline (Config.RequestTimeout) covering
//     the connection, the headers and the whole body, so that a server that
//     never answers or drips its answer cannot hold a call forever.
//   - Every wait is reported through Config.OnWait (see Wait): a retry's
//     backoff, a 429 hold, a long rate-limit wait, an answer slow to come.
//   - State-changing calls (create, retry, reject, queue, the profile switch)
//     go over their own *http.Client whose transport never reuses
//     connections, so that net/http cannot silently replay them (API §8). Do resends them only after a 429
//     or a failed dial, both of which prove the server did nothing. Any other
//     lost answer is settled by reading the API (see endpoints.go): a read
//     that shows the call's effect adopts it, a read that proves the call
//     took no effect lets it be sent again (Config.MaxResends times, with
//     backoff), and anything else is an *OutcomeUnknownError.
//   - The error envelope is checked on every answer whatever its status,
//     because business errors arrive with 200 (API §7 #1).
//   - No error the client returns contains a query string: imageupdate/create
//     carries bucket credentials in its url parameter (API §4.1.1). The
//     client's own credentials are masked in anything a server echoes.
//   - Calls (calls.go) is the one place that builds each endpoint's method,
//     path, query and body; the client sends exactly what it builds, and a
//     preview renders the same Calls.
package clanforge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/rollout/rollout/redact"
)

// DefaultBaseURL is the documented API host.
const DefaultBaseURL = "https://api.multiplay.co.uk"

// Defaults applied by New.
const (
	DefaultRateLimit  rate.Limit = 10
	DefaultBurst                 = 5
	DefaultBackoff               = 500 * time.Millisecond
	DefaultMaxBackoff            = 30 * time.Second
	defaultUserAgent             = "rollout-clanforge/1"
	// maxBody bounds how much of an answer is read; the largest answer,
	// imageinstall/status for a big fleet, stays far below it.
	maxBody = 32 << 20
	// DefaultRequestTimeout bounds one attempt: connecting, sending, and
	// reading the headers and the whole body. The largest answer
	// (imageinstall/status of a big fleet, a few MB) takes a fraction of
	// it on any working link.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultSlowAnswer is how long an attempt waits for its answer before
	// the wait is reported (WaitAnswer): a person sees within seconds that
	// the API is slow, long before the attempt gives up.
	DefaultSlowAnswer = 5 * time.Second
	// DefaultMaxRetryAfter caps a 429's Retry-After. The hold stops every
	// request of the client, job polls included, and a server that still
	// wants quiet after it simply answers 429 again, which costs one
	// request per hold. Uncapped, a garbled or hostile value (999999999 s
	// is 31 years) would park a rollout without a word. The cap is reported
	// in the Wait's Reason when it applies.
	DefaultMaxRetryAfter = 5 * time.Minute
	// DefaultMaxResends bounds how often a state-changing call whose lost
	// answer a read proved harmless is sent again (see Config.MaxResends):
	// with the default backoff, a burst of 5xx lasting up to about 15 s.
	DefaultMaxResends = 5
	// reportRateWait is the shortest rate-limit wait worth reporting: the
	// limiter's normal pacing is a fraction of a second per request.
	reportRateWait = 2 * time.Second
)

// Config configures a Client. Credentials are never printed by the client.
type Config struct {
	BaseURL   string // default DefaultBaseURL
	ASID      int64
	AccessKey string
	SecretKey string
	// Token, when set, is sent as "Authorization: Bearer <token>" (the
	// licensee's host, API §2.2) and the access and secret keys are not
	// used (no Basic header is sent). It is masked in every error like
	// the secret key.
	Token string
	// RateLimit caps requests per second across the whole client; 0 means
	// the default of 10/s, which suits the hosted API (it documents no
	// limit, API §2.4). rate.Inf lifts the cap (Burst is then ignored):
	// for a server that can take more, such as the built-in simulator,
	// where the default made a 1,000-machine run take 104 s instead of
	// 1.2 s (issue 12). Burst defaults to 5. A 429's Retry-After holds
	// every request whatever the limit.
	RateLimit rate.Limit
	Burst     int
	// HTTPClient is used for reads; nil: a default client with keep-alives.
	// State-changing calls always go over a transport without connection
	// reuse so that net/http cannot silently replay them (API §8): when
	// HTTPClient's transport is an *http.Transport it is cloned with
	// DisableKeepAlives; any other RoundTripper is used as is for reads and
	// replaced by a fresh no-keep-alive transport for state-changing calls.
	HTTPClient *http.Client
	// MaxReadAttempts bounds retries of a safe read; 0: retry until ctx ends.
	// It also bounds how often a state-changing call refused with 429 is
	// sent again.
	MaxReadAttempts int
	// RequestTimeout bounds every attempt from connecting to the last byte
	// of the answer; 0: DefaultRequestTimeout. A read cut off by it is
	// retried like any lost answer; a state-changing call cut off by it
	// may have been acted on and is settled like one.
	RequestTimeout time.Duration
	// SlowAnswer is how long an attempt waits for its answer before a
	// WaitAnswer is reported; 0: DefaultSlowAnswer, negative: never.
	SlowAnswer time.Duration
	// MaxResends bounds how often a state-changing call is sent again after
	// its answer was lost and a read proved it took no effect (an image
	// lock unchanged, an install job still Pending); 0: DefaultMaxResends,
	// negative: never. Each resend waits a backoff and is reported as a
	// WaitResend.
	MaxResends int
	// MaxRetryAfter caps the hold a 429's Retry-After imposes; 0:
	// DefaultMaxRetryAfter. See there for why.
	MaxRetryAfter time.Duration
	// Backoff is the base delay of exponential backoff; 0: 500ms.
	Backoff time.Duration
	// MaxBackoff caps a single backoff delay; 0: 30s.
	MaxBackoff time.Duration
	// MutatingTimeout bounds how long the answer of a state-changing
	// request that has left is awaited after the caller's context ended;
	// 0: 30s. See Do.
	MutatingTimeout time.Duration
	UserAgent       string
	// GameID, when set, is sent with imageid on image/options, whose page
	// says gameid and imageid go together (API §4.13). Left 0 only imageid
	// is sent, which is what the lock lookup needs.
	GameID int64
	// OnRequest, when set, is called after every HTTP attempt with the
	// method, the path (never the query) and the status (0 when no answer
	// arrived). It must be cheap and safe for concurrent use; the UI uses it
	// for its request-rate display.
	OnRequest func(method, path string, status int)
	// OnWait, when set, is called for every wait of the client (see Wait)
	// before the wait begins, so that a person sees what the client is
	// trying. It must be cheap and safe for concurrent use.
	OnWait func(Wait)
	// LockReuse is how old the client's last knowledge of an image's lock
	// holder may be for imageupdate/create and imagediff/create to use it
	// instead of reading image/options first; 0: DefaultLockReuse,
	// negative: always read. See DefaultLockReuse.
	LockReuse time.Duration
}

// Client talks to one Clanforge account service (ASID). It is safe for
// concurrent use.
type Client struct {
	cfg     Config
	base    *url.URL
	read    *http.Client
	mut     *http.Client
	limiter *rate.Limiter

	requests atomic.Int64
	// answered is set once any HTTP answer has come from the server
	// (Wait.FirstContact).
	answered atomic.Bool

	mu        sync.Mutex
	notBefore time.Time // no request leaves before this (Retry-After)
	// gameOf caches the game each image belongs to, found once by
	// gameFor, because image/options wants gameid with imageid.
	gameOf map[int64]int64

	// redactor masks credentials in server-supplied error messages.
	redactor *strings.Replacer
	// sizes remembers the length of large answers by path (see
	// sizeHint).
	sizes sync.Map
	// locks remembers each image's lock holder (lockmemo.go).
	locks lockMemo
}

// New returns a client. It fails when the base URL is not absolute or the
// ASID or a credential is missing.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || !base.IsAbs() || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("clanforge: base URL %q is not an absolute http(s) URL", redactURL(cfg.BaseURL))
	}
	if base.User != nil {
		return nil, errors.New("clanforge: the base URL must not carry credentials; set the access and secret keys instead")
	}
	base.RawQuery, base.Fragment = "", ""
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	if cfg.ASID <= 0 {
		return nil, errors.New("clanforge: the account service id (ASID) is missing")
	}
	if cfg.Token != "" {
		// Never echo the token: the message names only what is wrong.
		if strings.ContainsFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, errors.New("clanforge: the token contains a space or a control character")
		}
	} else if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("clanforge: credentials missing: set a token, or both the access key and the secret key")
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = cfg.Backoff
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.SlowAnswer == 0 {
		cfg.SlowAnswer = DefaultSlowAnswer
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.MaxResends == 0 {
		cfg.MaxResends = DefaultMaxResends
	}
	if cfg.LockReuse == 0 {
		cfg.LockReuse = DefaultLockReuse
	}
	read := cfg.HTTPClient
	if read == nil {
		// No http.Client.Timeout: every attempt is bounded by
		// RequestTimeout instead, which also applies to a caller's client.
		read = &http.Client{}
	}
	c := &Client{
		cfg:     cfg,
		base:    base,
		read:    read,
		mut:     noReuseClient(read),
		limiter: rate.NewLimiter(cfg.RateLimit, cfg.Burst),
	}
	c.redactor = newRedactor(cfg)
	return c, nil
}

// newRedactor masks the client's own credentials in server-supplied text,
// in the forms a server echoing them might use: raw, query-escaped, and
// the Basic header's base64 of "key:secret". Longer strings go first so
// that a secret inside another is masked whole.
func newRedactor(cfg Config) *strings.Replacer {
	var secrets []string
	add := func(s string) {
		// Very short keys would mask innocent text; real keys are long.
		if len(s) >= 4 {
			secrets = append(secrets, s)
		}
	}
	for _, s := range []string{cfg.Token, cfg.SecretKey, cfg.AccessKey} {
		add(s)
		if esc := url.QueryEscape(s); esc != s {
			add(esc)
		}
	}
	if cfg.AccessKey != "" && cfg.SecretKey != "" {
		add(base64.StdEncoding.EncodeToString([]byte(cfg.AccessKey + ":" + cfg.SecretKey)))
	}
	sort.SliceStable(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, "***")
	}
	return strings.NewReplacer(pairs...)
}

// noReuseClient derives the client for state-changing calls: same timeout,
// redirect policy and jar, but a transport that opens a new connection for
// every request. net/http only replays a request after a failure on a
// *reused* connection, so without reuse there is no silent replay (API §8).
func noReuseClient(read *http.Client) *http.Client {
	var tr *http.Transport
	if t, ok := read.Transport.(*http.Transport); ok && t != nil {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.DisableKeepAlives = true
	return &http.Client{
		Transport:     tr,
		Timeout:       read.Timeout,
		CheckRedirect: read.CheckRedirect,
		Jar:           read.Jar,
	}
}

type sentAtKey struct{}

// WithSentAt returns a context under which a call records in *t when its
// last attempt left the client: after the rate limiter, any Retry-After
// hold and any retries, so the time the server saw it is known to within
// the exchange itself. A poller that places a job's end from the job's
// progress at the time of each read needs that time, not the time it asked.
// *t must not be read while the call runs.
func WithSentAt(ctx context.Context, t *time.Time) context.Context {
	return context.WithValue(ctx, sentAtKey{}, t)
}

// CloseIdleConnections closes the read transport's idle keep-alive
// connections (state-changing calls never keep one), for a clean shutdown.
func (c *Client) CloseIdleConnections() { c.read.CloseIdleConnections() }

// BaseURL is the API's base URL as a person may see it (no credentials,
// no query), for a "connecting to …" line before the first call.
func (c *Client) BaseURL() string { return redactURL(c.base.String()) }

// ASID returns the account service id the client is scoped to.
func (c *Client) ASID() int64 { return c.cfg.ASID }

// Requests returns the number of HTTP requests sent so far (every attempt
// counts), for the run summary. A read that net/http itself replays on a
// fresh connection after a reused one broke counts once: the transport does
// that below the client's sight (state-changing calls are never replayed).
func (c *Client) Requests() int64 { return c.requests.Load() }

// NewRequest builds a request for path (relative to the base URL) with the
// query parameters q plus accountserviceid and the auth header, in the shape
// of go-github's NewRequest. method "" is GET. A non-nil body is sent as
// JSON (Content-Type application/json); a request without one carries the
// form-urlencoded content type the docs ask for (API §2.1).
//
// A path under /cfp/v2/project/<asid>/ carries the ASID as a path segment,
// the only place its page documents it (API §4.12), so it is not repeated in
// the query there: a strict server may refuse a parameter its table does not
// list.
func (c *Client) NewRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	if ctx == nil {
		return nil, errors.New("clanforge: nil context")
	}
	if method == "" {
		method = http.MethodGet
	}
	rel, err := url.Parse(path)
	if err != nil || rel.IsAbs() || rel.Host != "" {
		return nil, fmt.Errorf("clanforge: %q is not a path relative to the base URL", redactURL(path))
	}
	u := *c.base
	u.Path = c.base.Path + "/" + strings.TrimLeft(rel.Path, "/")
	vals := url.Values{}
	for k, vs := range rel.Query() {
		vals[k] = append([]string(nil), vs...)
	}
	for k, vs := range q {
		vals[k] = append([]string(nil), vs...)
	}
	withASID(vals, rel.Path, c.cfg.ASID)
	u.RawQuery = vals.Encode()
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("clanforge: encoding the body for %s: %w", u.Path, err)
		}
		// A bytes.Reader gives the request a GetBody, so each attempt
		// sends the whole body again.
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("clanforge: building request for %s: %w", u.Path, redactErr(err))
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	} else {
		req.SetBasicAuth(c.cfg.AccessKey, c.cfg.SecretKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		// The docs ask for this header and both real clients send it on
		// their bodiless GETs (API §2.1).
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	return req, nil
}

// withASID adds accountserviceid to the query of a request for path, except
// where the ASID is a path segment (/cfp/v2/project/<asid>/..., see
// NewRequest) and on the fleet endpoints (/cfp/v2/fleet/...): a fleet is
// named by its UUID, the profile switch's page (API §4.15) lists no query
// parameter at all, and the plan format's rule that every call carries
// accountserviceid is about the image calls. A strict server refuses a
// parameter its page does not list. It is the one place that decides where
// the ASID goes.
func withASID(q url.Values, path string, asid int64) {
	a := strconv.FormatInt(asid, 10)
	if strings.HasPrefix(path, "/cfp/v2/project/"+a+"/") || strings.HasPrefix(path, "/cfp/v2/fleet/") {
		q.Del("accountserviceid")
		return
	}
	q.Set("accountserviceid", a)
}

// Do sends req and decodes the JSON answer into v (nil: not decoded). Reads
// (mutating=false) are retried per the transport policy; mutating requests
// are sent exactly once, except after a 429 or a failed dial, which prove the
// server did nothing. When a mutating request's answer is lost (transport
// error after the request may have left, no complete answer within
// RequestTimeout, a 5xx, or a 2xx that is not a JSON object) Do returns an
// *OutcomeUnknownError; settling it is the caller's job.
//
// A call that stops retrying because ctx ended or the attempts ran out
// returns a *GaveUpError. Every wait on the way is reported to
// Config.OnWait.
//
// The returned response's body has been read and closed; resp.Body replays
// it. Errors never contain the request's query string.
func (c *Client) Do(ctx context.Context, req *http.Request, v any, mutating bool) (*http.Response, error) {
	resp, body, err := c.do(ctx, req, v != nil, mutating)
	if err != nil || v == nil {
		return resp, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp, c.unreadable(req.URL.Path, resp.StatusCode, c.redactor.Replace(redactUserinfo(err.Error())), mutating)
	}
	return resp, nil
}

// unreadable is the error of a 2xx answer the client cannot read: a
// *DecodeError, or for a state-changing call an *OutcomeUnknownError (the
// server answered 2xx, so it probably acted, but the answer cannot tell
// what it made).
func (c *Client) unreadable(endpoint string, status int, reason string, mutating bool) error {
	derr := &DecodeError{Endpoint: endpoint, HTTPStatus: status, Reason: reason}
	if mutating {
		return &OutcomeUnknownError{Endpoint: endpoint, Cause: derr}
	}
	return derr
}

// do is Do without the final decoding: it returns the answer's body, which
// is a JSON object whenever wantObject is set (it is not decoded here, so
// that a caller decodes it once, in one pass).
func (c *Client) do(ctx context.Context, req *http.Request, wantObject, mutating bool) (*http.Response, []byte, error) {
	if ctx == nil {
		return nil, nil, errors.New("clanforge: nil context")
	}
	endpoint := req.URL.Path
	hc := c.read
	if mutating {
		hc = c.mut
	}
	st := &tries{endpoint: endpoint, start: time.Now()}
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx, endpoint, attempt); err != nil {
			// Nothing was sent in this attempt.
			return nil, nil, c.notSent(st, err)
		}
		st.sent = attempt
		resp, body, err := c.exchange(ctx, hc, req, mutating, attempt)
		if resp == nil {
			c.hook(req.Method, endpoint, 0)
			sent := !isDialError(err)
			if mutating && sent {
				return nil, nil, &OutcomeUnknownError{Endpoint: endpoint, Cause: err}
			}
			if ferr := c.retry(ctx, st, fmt.Errorf("clanforge: %s: %w", endpoint, err), true); ferr != nil {
				return nil, nil, ferr
			}
			continue
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			// Hold back every request of this client, not only this one:
			// the limit is the account's, and the others would be refused
			// too. The hold starts before anyone (the hook included)
			// learns of the 429.
			d, why := c.retryAfter(resp.Header.Get("Retry-After"), attempt)
			c.holdUntil(time.Now().Add(d))
			c.emit(Wait{Kind: WaitHold, Endpoint: endpoint, Attempt: attempt + 1, Delay: d, Reason: why})
		}
		c.hook(req.Method, endpoint, resp.StatusCode)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			// The answer broke off: for a state-changing call the server may
			// well have acted.
			if mutating {
				return resp, nil, &OutcomeUnknownError{Endpoint: endpoint, Cause: fmt.Errorf("reading the answer: %w", err)}
			}
			if ferr := c.retry(ctx, st, fmt.Errorf("clanforge: %s: reading the answer: %w", endpoint, err), true); ferr != nil {
				return resp, nil, ferr
			}
			continue
		}
		if len(body) > maxBody {
			err := fmt.Errorf("clanforge: %s: answer larger than %d bytes", endpoint, maxBody)
			if mutating {
				return resp, nil, &OutcomeUnknownError{Endpoint: endpoint, Cause: err}
			}
			return resp, nil, err
		}

		if resp.StatusCode == http.StatusTooManyRequests {
			// The client-wide hold was set above, before the hook ran.
			apiErr := c.apiError(endpoint, resp.StatusCode, body)
			// A state-changing call refused with 429 is sent again too: the
			// server rejected it before doing any work (that is what 429
			// means, and rate limiting sits in front of the handlers), so a
			// second send cannot make a second job. The hold is the wait.
			if ferr := c.retry(ctx, st, apiErr, false); ferr != nil {
				return resp, nil, ferr
			}
			continue
		}

		envErr, isObject := checkEnvelope(endpoint, resp.StatusCode, body)
		if envErr != nil {
			envErr = c.redactAPIError(envErr)
		}
		if resp.StatusCode >= 500 {
			var cause error = &APIError{Endpoint: endpoint, HTTPStatus: resp.StatusCode}
			if envErr != nil {
				cause = envErr
			}
			var locked *LockedError
			if errors.As(envErr, &locked) {
				// A lock answer is a refusal whatever its status.
				return resp, nil, envErr
			}
			if mutating {
				return resp, nil, &OutcomeUnknownError{Endpoint: endpoint, Cause: cause}
			}
			if ferr := c.retry(ctx, st, cause, true); ferr != nil {
				return resp, nil, ferr
			}
			continue
		}
		if envErr != nil {
			return resp, nil, envErr
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return resp, nil, &APIError{Endpoint: endpoint, HTTPStatus: resp.StatusCode}
		}
		if wantObject && !isObject {
			return resp, nil, c.unreadable(endpoint, resp.StatusCode, describeBody(body), mutating)
		}
		return resp, body, nil
	}
}

// exchange sends one attempt and reads its whole answer, both within
// RequestTimeout. resp is nil when no answer came (err says why); a
// non-nil resp with an error is an answer whose body broke off. A
// state-changing request that has left is carried to its answer even if
// the caller is interrupted meanwhile (bounded by MutatingTimeout): an
// interrupt must stop new changes, and cutting off one already sent would
// only turn a known answer into a lost one.
func (c *Client) exchange(ctx context.Context, hc *http.Client, req *http.Request, mutating bool, attempt int) (*http.Response, []byte, error) {
	sendCtx, cancelSend := ctx, context.CancelFunc(func() {})
	if mutating {
		sendCtx, cancelSend = c.detach(ctx)
	}
	defer cancelSend()
	actx, cancel := context.WithTimeout(sendCtx, c.cfg.RequestTimeout)
	defer cancel()
	var connected atomic.Bool
	if c.cfg.SlowAnswer > 0 && c.cfg.OnWait != nil {
		// Whether the connection was made tells a firewall or a dead
		// host (no connection) from a slow server (no answer).
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
		})
	}
	r := req.Clone(actx)
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, nil, fmt.Errorf("clanforge: %s: body: %w", req.URL.Path, err)
		}
		r.Body = b
	}
	if c.cfg.SlowAnswer > 0 && c.cfg.OnWait != nil {
		slow := time.AfterFunc(c.cfg.SlowAnswer, func() {
			what := "no connection yet"
			if connected.Load() {
				what = "connected, no complete answer yet"
			}
			c.emit(Wait{Kind: WaitAnswer, Endpoint: req.URL.Path, Attempt: attempt, Delay: c.cfg.SlowAnswer,
				Reason: fmt.Sprintf("%s; this attempt gives up after %s", what, roundDuration(c.cfg.RequestTimeout))})
		})
		defer slow.Stop()
	}
	c.requests.Add(1)
	if t, ok := ctx.Value(sentAtKey{}).(*time.Time); ok {
		*t = time.Now()
	}
	resp, err := hc.Do(r)
	if err != nil {
		return nil, nil, c.attemptError(actx, sendCtx, redactErr(err))
	}
	c.answered.Store(true)
	size := resp.ContentLength
	if size <= 0 {
		// No declared length (a chunked answer): size the buffer from
		// the last large answer of the same path, if any.
		size = c.sizeHint(req.URL.Path)
	}
	body, err := readBody(resp.Body, size)
	c.noteSize(req.URL.Path, len(body))
	resp.Body.Close()
	if err != nil {
		err = c.attemptError(actx, sendCtx, redactErr(err))
	}
	return resp, body, err
}

// largeAnswer is the size from which an answer's length is remembered to
// size the next answer of its path (in practice only imageinstall/status
// of a big fleet gets there, read hundreds of times).
const largeAnswer = 64 << 10

func (c *Client) sizeHint(path string) int64 {
	if v, ok := c.sizes.Load(path); ok {
		return int64(v.(int))
	}
	return 0
}

func (c *Client) noteSize(path string, n int) {
	if n >= largeAnswer {
		c.sizes.Store(path, n+n/8)
	} else if _, ok := c.sizes.Load(path); ok {
		c.sizes.Delete(path)
	}
}

// readBody reads at most maxBody+1 bytes of an answer. A declared length
// sizes the buffer at once, sparing the repeated growth of a multi-MB
// install list; without one the buffer grows as it must.
func readBody(r io.Reader, declared int64) ([]byte, error) {
	n := int64(bytes.MinRead)
	if declared > 0 && declared <= maxBody {
		n += declared
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	_, err := buf.ReadFrom(io.LimitReader(r, maxBody+1))
	return buf.Bytes(), err
}

// attemptError turns an attempt cut off by RequestTimeout (while the
// caller's context still runs) into a *timeoutError a person can read.
func (c *Client) attemptError(actx, sendCtx context.Context, err error) error {
	if sendCtx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return &timeoutError{d: c.cfg.RequestTimeout, dial: isDialError(err)}
	}
	return err
}

// tries is the retry bookkeeping of one Do call.
type tries struct {
	endpoint string
	start    time.Time
	sent     int   // attempts sent
	last     error // the last attempt's failure
}

// retry decides whether a failed attempt is tried again. It returns nil
// after sleeping the backoff (when sleep is set, reporting the wait) if
// another attempt may go, and otherwise a *GaveUpError.
func (c *Client) retry(ctx context.Context, st *tries, failure error, sleep bool) error {
	if ctx.Err() != nil && errors.Is(failure, ctx.Err()) {
		// The caller's context cut this attempt off: the server's last
		// word is the previous failure, if any.
		if st.last == nil {
			st.last = errNoAnswerYet
		}
	} else {
		st.last = failure
	}
	if ctx.Err() != nil {
		return c.gaveUp(st, ctx.Err())
	}
	if !c.canRetry(st.sent) {
		return c.gaveUp(st, nil)
	}
	if sleep {
		d := c.backoff(st.sent)
		c.emit(Wait{Kind: WaitRetry, Endpoint: st.endpoint, Attempt: st.sent + 1, Delay: d, Reason: c.reason(failure)})
		if err := c.sleep(ctx, d); err != nil {
			return c.gaveUp(st, ctx.Err())
		}
	}
	return nil
}

func (c *Client) gaveUp(st *tries, cause error) error {
	return &GaveUpError{Endpoint: st.endpoint, Attempts: st.sent, Elapsed: time.Since(st.start), Last: st.last, Cause: cause}
}

// notSent is the error of a call stopped while waiting to send (hold,
// rate limit, ctx): nothing left in this attempt.
func (c *Client) notSent(st *tries, err error) error {
	if st.sent == 0 {
		return fmt.Errorf("clanforge: %s: not sent: %w", st.endpoint, err)
	}
	return c.gaveUp(st, err)
}

// retryAfter is the hold a 429 imposes and the reason shown for it: the
// Retry-After value capped at MaxRetryAfter (the cap is said), or the
// backoff when the header is missing or unreadable.
func (c *Client) retryAfter(header string, attempt int) (time.Duration, string) {
	d, ok := parseRetryAfter(header, time.Now())
	if !ok {
		d = c.backoff(attempt)
		return d, "HTTP 429 without a usable Retry-After"
	}
	shown := fmt.Sprintf("Retry-After %s", roundDuration(d))
	if secs, err := strconv.ParseInt(strings.TrimSpace(header), 10, 64); err == nil {
		shown = fmt.Sprintf("Retry-After %ds", secs)
	}
	if d > c.cfg.MaxRetryAfter {
		return c.cfg.MaxRetryAfter, fmt.Sprintf("%s capped to %s", shown, c.cfg.MaxRetryAfter)
	}
	return d, shown
}

// apiError builds the error of a non-2xx answer, using the envelope when the
// body has one.
func (c *Client) apiError(endpoint string, status int, body []byte) error {
	if err, _ := checkEnvelope(endpoint, status, body); err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			ae.HTTPStatus = status
		}
		return c.redactAPIError(err)
	}
	return &APIError{Endpoint: endpoint, HTTPStatus: status}
}

// redactAPIError masks credentials the server might echo in error_message
// (a validation error on imageupdate/create could quote the url parameter).
func (c *Client) redactAPIError(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		ae.Message = c.redactor.Replace(redactUserinfo(ae.Message))
	}
	return err
}

func describeBody(body []byte) string {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return "empty answer"
	}
	return "answer is not a JSON object"
}

func (c *Client) hook(method, path string, status int) {
	if c.cfg.OnRequest != nil {
		c.cfg.OnRequest(method, path, status)
	}
}

func (c *Client) canRetry(attempt int) bool {
	return c.cfg.MaxReadAttempts <= 0 || attempt < c.cfg.MaxReadAttempts
}

// backoff is exponential backoff with full jitter: a uniform delay in
// [0, min(MaxBackoff, Backoff·2^(attempt-1))].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MaxBackoff
	if attempt < 31 {
		if e := c.cfg.Backoff << (attempt - 1); e > 0 && e < d {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// holdUntil moves the client-wide "not before" time forward (never back).
func (c *Client) holdUntil(t time.Time) {
	c.mu.Lock()
	if t.After(c.notBefore) {
		c.notBefore = t
	}
	c.mu.Unlock()
}

// errPastDeadline wraps context.DeadlineExceeded for a wait that would end
// after the caller's deadline: waiting it out could only end in the same
// error, later.
func errPastDeadline(what string, d time.Duration) error {
	return fmt.Errorf("%s would wait %s, past this call's deadline: %w", what, roundDuration(d), context.DeadlineExceeded)
}

// wait blocks until the client-wide "not before" time has passed and the
// rate limiter grants a token. The hold is re-read after each sleep because
// another request may have extended it meanwhile. A wait that would outlast
// ctx's deadline returns at once. A rate-limit wait of reportRateWait or
// more is reported (the 429 hold was reported when it was set).
func (c *Client) wait(ctx context.Context, endpoint string, attempt int) error {
	for {
		c.mu.Lock()
		d := time.Until(c.notBefore)
		c.mu.Unlock()
		if d <= 0 {
			break
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(d).After(dl) {
			return errPastDeadline("the server's Retry-After hold", d)
		}
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
	r := c.limiter.Reserve()
	if !r.OK() {
		return errors.New("the rate limiter refuses every request (burst 0)")
	}
	d := r.Delay()
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Now().Add(d).After(dl) {
		r.Cancel()
		return errPastDeadline("the client's rate limit", d)
	}
	if d >= reportRateWait {
		c.emit(Wait{Kind: WaitRateLimit, Endpoint: endpoint, Attempt: attempt, Delay: d,
			Reason: fmt.Sprintf("at most %g requests/s", float64(c.cfg.RateLimit))})
	}
	if err := c.sleep(ctx, d); err != nil {
		r.Cancel()
		return err
	}
	return nil
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// The result is not capped here (Client.retryAfter caps and says so); a
// value beyond what a Duration holds saturates.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(math.MaxInt64/time.Second) {
			return math.MaxInt64, true
		}
		return time.Duration(secs) * time.Second, true
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(v, "-") {
		return math.MaxInt64, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// isDialError reports whether err happened while connecting, i.e. before
// any byte of the request left. Such a request is safe to send again.
func isDialError(err error) bool {
	var te *timeoutError
	if errors.As(err, &te) {
		return te.dial
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// redactErr strips the query string and user info from the URL a *url.Error
// carries: net/http puts the full request URL in its errors, and the query of
// imageupdate/create may hold s3://key:secret@bucket credentials.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		cp := *ue
		cp.URL = redactURL(ue.URL)
		if ue == err {
			return &cp
		}
		// A url.Error wrapped in something else: rebuild the message
		// around the redacted one, keeping the chain for errors.Is.
		return &redactedError{msg: strings.ReplaceAll(err.Error(), ue.Error(), cp.Error()), err: &cp}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL drops the query, fragment and user info of a URL string. The
// result goes through redact.Text as well: a secret with a raw "/" makes
// url.Parse read part of it as host and path, where u.User = nil cannot
// reach it.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		return redact.Text(s)
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = ""
		u.ForceQuery = false
		u.Fragment, u.RawFragment = "", ""
		return redact.Text(u.String()) + "?…"
	}
	u.Fragment, u.RawFragment = "", ""
	return redact.Text(u.String())
}

// redactUserinfo masks credentials in free text, plain or percent-encoded,
// by the rules of package redact.
func redactUserinfo(s string) string { return redact.Text(s) }

// detach returns a context for a state-changing request that has left: it
// outlives the caller's cancellation by at most MutatingTimeout, and ends
// with the caller's deadline otherwise never.
func (c *Client) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.cfg.MutatingTimeout
	if d <= 0 {
		d = 30 * time.Second
	}
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(d, cancel)
		context.AfterFunc(sendCtx, func() { t.Stop() })
	})
	return sendCtx, func() { stop(); cancel() }
}
