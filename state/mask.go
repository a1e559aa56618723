package state

import (
	"regexp"
	"strings"
)

// userinfo matches credentials embedded before an '@', as in
// s3://key:secret@bucket or key:secret@host. The part before the colon must
// not contain spaces so that prose like "error: x@y" is left alone.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)?[^\s/@:'"=]+:[^\s/@'"]+@`)

// Masked is what replaces credentials.
const Masked = "***"

// MaskCredentials replaces every user:password@ in s with ***@ (keeping a
// URL scheme in front of it). The engine and the plan already mask what they
// hand over; this is the last line of defence before anything is written.
func MaskCredentials(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, ":") {
		return s
	}
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		scheme := ""
		if i := strings.Index(m, "://"); i >= 0 {
			scheme = m[:i+3]
			// "s3://bucket@x" has no credentials after the scheme.
			if !strings.Contains(m[i+3:], ":") {
				return m
			}
		}
		return scheme + Masked + "@"
	})
}

// secretParam names query parameters whose value is a secret whatever it
// looks like. Clanforge takes credentials in a header, so none of these
// should ever reach the journal; if one does, its value is masked.
var secretParam = regexp.MustCompile(`(?i)(secret|passw|token|apikey|api_key|accesskey|access_key|authorization|signature|credential)`)

// maskParams returns a copy of params safe to write.
func maskParams(params map[string]string) map[string]string {
	if params == nil {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, v := range params {
		if secretParam.MatchString(k) && v != "" {
			out[k] = Masked
			continue
		}
		out[k] = MaskCredentials(v)
	}
	return out
}
