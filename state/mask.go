package state

import "github.com/rollout/rollout/redact"

// Masked is what replaces credentials.
const Masked = redact.Mask

// MaskCredentials hides every credential in s by the rules of package
// redact (redact.String): every secret registered with the process (the
// Clanforge keys, values read with ${env:NAME}) in every encoding, the
// user-info of URLs ("s3://key:sec/ret@bucket" becomes "s3://***@bucket"),
// bare key:secret@host and secret query parameters. The engine and the plan
// already mask what they hand over; this is the last line of defence before
// anything is written. The journal is a file, not a terminal: control
// characters are kept as data, and escaped by whoever shows them.
func MaskCredentials(s string) string { return redact.String(s) }

// maskParams returns a copy of params safe to write. Clanforge takes
// credentials in a header, so no parameter named like a secret should ever
// reach the journal; if one does, its value is masked whatever it looks like.
func maskParams(params map[string]string) map[string]string {
	if params == nil {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, v := range params {
		if redact.SecretName(k) && v != "" {
			out[k] = Masked
			continue
		}
		out[k] = MaskCredentials(v)
	}
	return out
}
