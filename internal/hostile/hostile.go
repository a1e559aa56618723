// Package hostile is test support, imported only from _test.go files: it
// owns the one hostile fixture every printer is tested with (API text
// carrying terminal escape sequences and the credentials in every encoding
// a server could echo, plan names with escapes) and the check that a
// printer's output holds none of it raw.
//
// The encodings are computed here independently of package redact, so a
// form redact forgets to derive makes these tests fail.
package hostile

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rollout/rollout/engine"
	"github.com/rollout/rollout/redact"
)

// The fixture's credentials: the Clanforge access and secret keys, a bearer
// token and a value the plan read with ${env:BUILD_TOKEN}.
const (
	AccessKey = "AKIAHOSTILEKEY01"
	SecretKey = "hostile/Secret+Key=9"
	Token     = "bearer-tok-7f3e9a1c"
	EnvValue  = "env-secret-5d2b"
	EnvLabel  = "${env:BUILD_TOKEN}"
)

// BasicHeader is the Authorization header value of the fixture's
// credentials.
func BasicHeader() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(AccessKey+":"+SecretKey))
}

// Escapes is a string of terminal escape sequences an attacker could hide
// in an API answer or a plan: clear screen, an OSC 52 clipboard write, a C1
// CSI colour, a bell, a carriage return overwriting the line, a backspace,
// DEL, a bidi override and a raw (non-UTF-8) C1 byte.
const Escapes = "\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4=\x07\u009b31mRED\a\rFAKE OK\bX\x7f\u202eevil\x9b"

// Text is an API error (error_message, joberror) a hostile or echoing
// server could send: every escape of Escapes and the credentials as the
// Authorization header, base64-encoded, URL-encoded, raw, and the ${env:}
// value.
func Text() string {
	return "upstream refused" + Escapes + " auth=" + BasicHeader() +
		" url=https://h/x?key=" + url.QueryEscape(SecretKey) + "&sig=" + url.PathEscape(SecretKey) +
		" raw " + SecretKey + " " + AccessKey + ":" + SecretKey +
		" Authorization: Bearer " + Token + " b64=" + base64.StdEncoding.EncodeToString([]byte(AccessKey+":"+SecretKey)) +
		" env " + EnvValue + " quoted=" + url.QueryEscape(EnvValue) + "\n" + ForgedLine
}

// ForgedLine follows a newline in Text: a printer that lets the newline
// through shows it as a line of its own.
const ForgedLine = "rollout succeeded (forged)"

// StateName is a jobstatename carrying escapes and a secret.
func StateName() string { return "Running\x1b[2K\rCompleted " + Token }

// Name returns base with escapes added, as a hostile plan could name a
// machine, an image or a step.
func Name(base string) string { return base + "\x1b[31m\u009b1m\r" }

// Register empties the process-wide registry of package redact and
// registers the fixture's secrets, as the command does at startup; the
// registry is emptied again when t ends.
func Register(t testing.TB) {
	t.Helper()
	redact.ResetSecrets()
	t.Cleanup(redact.ResetSecrets)
	redact.AddBasicAuth(AccessKey, SecretKey)
	redact.AddBearer(Token)
	redact.Register(redact.Secret{Value: EnvValue, Label: EnvLabel})
}

// Forms are the fixture's secrets in every form Text and StateName carry
// them, and more a server could echo.
func Forms() map[string]string {
	pair := AccessKey + ":" + SecretKey
	b64 := base64.StdEncoding.EncodeToString([]byte(pair))
	return map[string]string{
		"secret key":               SecretKey,
		"query-escaped secret key": url.QueryEscape(SecretKey),
		"path-escaped secret key":  url.PathEscape(SecretKey),
		"access key":               AccessKey,
		"base64 of key:secret":     b64,
		"URL base64 of key:secret": base64.URLEncoding.EncodeToString([]byte(pair)),
		"bearer token":             Token,
		"env value":                EnvValue,
		"query-escaped env value":  url.QueryEscape(EnvValue),
	}
}

// Check fails t when out, the output of printer, holds a raw control
// character (other than the newlines and, when tabs is true, tabs of its
// layout), a bidi control, bytes that are not UTF-8, a line that starts
// with ForgedLine, or any fixture secret in any form.
func Check(t testing.TB, printer, out string, tabs bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s: output is not UTF-8: %q", printer, out)
	}
	for i, r := range out {
		bad := r < 0x20 && r != '\n' && !(tabs && r == '\t') ||
			r == 0x7f || r >= 0x80 && r <= 0x9f ||
			r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
		if bad {
			from := max(i-40, 0)
			t.Errorf("%s: raw control character %U at byte %d: …%q…", printer, r, i, out[from:min(i+40, len(out))])
			break
		}
	}
	if strings.Contains(out, "\n"+ForgedLine) {
		t.Errorf("%s: a newline of the API text reached the output raw", printer)
	}
	for name, f := range Forms() {
		if strings.Contains(out, f) {
			i := strings.Index(out, f)
			t.Errorf("%s: output shows the %s: …%q…", printer, name, out[max(i-40, 0):min(i+len(f)+40, len(out))])
		}
	}
}

// Run drives o through a whole run in which every string the engine hands
// an observer is hostile: the plan, step, machine and image names carry
// escapes (Name), job state names carry escapes and a token (StateName),
// and every error, detail and reason is Text. It returns the summary it
// ended with, for printers that render one on their own.
func Run(o engine.Observer, start time.Time) engine.Summary {
	planName := Name("plan")
	step, img := Name("install"), Name("img")
	machines := []string{Name("m1"), Name("m2"), Name("m3")}
	var insts []engine.InstanceInfo
	var ids []string
	for i, m := range machines {
		id := step + "@" + m + "/" + img
		ids = append(ids, id)
		insts = append(insts, engine.InstanceInfo{ID: id, Step: step, Type: Name("install"), Machine: m, Image: img, Wave: i % 2})
	}
	onFail := Name("reject") + "@" + img
	insts = append(insts, engine.InstanceInfo{ID: onFail, Step: Name("reject"), Type: "reject", Image: img, Wave: -1, OnFailure: true})
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	job := func(id int64, state, progress int) engine.JobInfo {
		return engine.JobInfo{Kind: Name("install"), ID: id, State: state, StateName: StateName(), Progress: progress,
			ETA: at(600), Error: Text()}
	}

	o.RunStarted(engine.RunInfo{Plan: planName, Concurrency: 2, Instances: insts, Targets: len(machines), Started: start})
	o.WaveStarted(step, img, 0, 2, ids[:2])
	for i, id := range ids[:2] {
		o.InstanceStarted(id, at(1))
		o.JobProgress(id, job(int64(100+i), 4, 10))
		o.JobProgress(id, job(int64(100+i), 4, 60))
	}
	failed := job(100, 6, 60)
	o.InstanceFinished(ids[0], engine.Result{Outcome: engine.Failed, Err: errors.New(Text()), Started: at(1), Finished: at(30), Job: &failed, Detail: Text()})
	o.Aborting(Text())
	cancelled := job(101, 4, 70)
	o.InstanceFinished(ids[1], engine.Result{Outcome: engine.Cancelled, Err: errors.New(Text()), Started: at(1), Finished: at(31), Job: &cancelled})
	o.InstanceFinished(ids[2], engine.Result{Outcome: engine.Skipped, Err: errors.New(Text())})
	o.InstanceStarted(onFail, at(32))
	o.InstanceFinished(onFail, engine.Result{Outcome: engine.Succeeded, Started: at(32), Finished: at(33), Detail: Text()})
	o.RequestCount(42)
	// A wait of the API client quoting a hostile server's answer.
	o.Notice(engine.Notice{At: at(34), Kind: "retry", Endpoint: "imageinstall/status" + Escapes, Attempt: 3,
		Delay: 4 * time.Second, Reason: Text(), Text: "retrying imageinstall/status in 4s: " + Text(), Unreachable: true})
	sum := engine.Summary{
		Plan: planName, Started: start, Finished: at(40),
		Counts:   map[engine.Outcome]int{engine.Failed: 1, engine.Cancelled: 1, engine.Skipped: 1, engine.Succeeded: 1},
		Failures: []engine.Failure{{Instance: ids[0], Machine: machines[0], Image: img, Err: errors.New(Text())}},
		Verdict:  engine.VerdictAborted, AbortReason: Text(),
		Unfinished: []engine.UnfinishedJob{{Instance: ids[1], Job: cancelled}},
		Requests:   42,
		Targets: []engine.TargetSummary{
			{Machine: machines[0], Image: img, Outcome: engine.Failed, Err: errors.New(Text()), Elapsed: 29 * time.Second},
			{Machine: machines[1], Image: img, Outcome: engine.Cancelled, Err: errors.New(Text()), Elapsed: 30 * time.Second},
			{Machine: machines[2], Image: img, Outcome: engine.Skipped, Err: errors.New(Text())},
		},
		OnFailure: []engine.OnFailureRun{
			{Instance: onFail, Image: img, Outcome: engine.Succeeded, Detail: Text()},
			{Instance: onFail, Image: img, Outcome: engine.Failed, Err: errors.New(Text())},
		},
	}
	o.RunFinished(sum)
	return sum
}
