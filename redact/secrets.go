package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// MinSecretLen is the shortest value a Set hides. Shorter values ("a",
// "on", "123") occur in innocent text too often to be masked wherever they
// appear; such a value is still hidden where a rule of Text finds it.
const MinSecretLen = 4

// Secret is a value that must never be shown, and what to show instead.
type Secret struct {
	Value string
	// Label replaces every form of Value; "" means Mask. A plan value read
	// from ${env:NAME} is labelled "${env:NAME}", so that a message still
	// says which value it quoted.
	Label string
}

// Set is a concurrency-safe collection of known secrets. Registering a
// secret derives every form in which a printer could meet it: the raw
// value; its URL query and path encodings (also encoded twice, and with
// lower-case hex digits); its JSON and Go-quoted escapes; its standard and
// URL-safe base64, padded or not, and each of those encoded again. The zero
// Set is empty and ready to use.
type Set struct {
	mu      sync.Mutex
	secrets []Secret
	// compiled is what Mask reads without locking: the forms sorted longest
	// first, rebuilt on every change (changes are rare: at startup).
	compiled atomic.Pointer[formList]
	version  atomic.Uint64
}

type form struct{ text, label string }

type formList struct {
	forms  []form
	minLen int
}

// NewSet returns a Set holding secrets.
func NewSet(secrets ...Secret) *Set {
	s := &Set{}
	s.Add(secrets...)
	return s
}

// Add registers secrets. Values shorter than MinSecretLen are ignored.
func (s *Set) Add(secrets ...Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	added := false
	for _, sec := range secrets {
		if len(sec.Value) < MinSecretLen || slices.Contains(s.secrets, sec) {
			continue
		}
		s.secrets = append(s.secrets, sec)
		added = true
	}
	if added {
		s.compile()
	}
}

// AddValues registers values, each masked as Mask.
func (s *Set) AddValues(values ...string) {
	secs := make([]Secret, len(values))
	for i, v := range values {
		secs[i] = Secret{Value: v}
	}
	s.Add(secs...)
}

// AddBasicAuth registers the credentials of HTTP Basic authentication: the
// user and the password each, "user:password" (whose base64 is what the
// header carries) and the whole header value "Basic <base64>", each in
// every form.
func (s *Set) AddBasicAuth(user, pass string) {
	pair := user + ":" + pass
	s.AddValues(user, pass, pair,
		"Basic "+base64.StdEncoding.EncodeToString([]byte(pair)),
		"basic "+base64.StdEncoding.EncodeToString([]byte(pair)))
}

// AddBearer registers a bearer token and the whole header value "Bearer
// <token>", each in every form.
func (s *Set) AddBearer(token string) {
	if len(token) < MinSecretLen {
		return
	}
	s.AddValues(token, "Bearer "+token, "bearer "+token)
}

// Reset forgets every secret.
func (s *Set) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = nil
	s.compile()
}

// Version changes whenever the set changes, so that a cache of masked
// strings knows when to forget them.
func (s *Set) Version() uint64 { return s.version.Load() }

// Len is the number of secrets registered.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.secrets)
}

// Mask replaces every form of every secret in text by its label (Mask when
// it has none). Longer forms go first, so a whole "Basic <base64>" header
// becomes one mask rather than "Basic " and a mask. It does not apply the
// URL rules of Text; String does both.
func (s *Set) Mask(text string) string {
	fl := s.compiled.Load()
	if fl == nil || len(text) < fl.minLen {
		return text
	}
	for _, f := range fl.forms {
		if len(text) < len(f.text) {
			continue
		}
		if strings.Contains(text, f.text) {
			text = strings.ReplaceAll(text, f.text, f.label)
		}
	}
	return text
}

// compile rebuilds the form list. s.mu must be held.
func (s *Set) compile() {
	defer s.version.Add(1)
	if len(s.secrets) == 0 {
		s.compiled.Store(nil)
		return
	}
	seen := map[string]bool{}
	var forms []form
	for _, sec := range s.secrets {
		label := sec.Label
		if label == "" {
			label = Mask
		}
		for _, f := range Forms(sec.Value) {
			// The first registration of a form keeps its label.
			if seen[f] || f == label {
				continue
			}
			seen[f] = true
			forms = append(forms, form{f, label})
		}
	}
	slices.SortStableFunc(forms, func(a, b form) int { return len(b.text) - len(a.text) })
	fl := &formList{forms: forms, minLen: len(forms[len(forms)-1].text)}
	s.compiled.Store(fl)
}

// Forms returns every form of v that Set masks: v itself, its base64
// encodings, and each of those URL-, JSON- or Go-escaped. Forms shorter
// than MinSecretLen are left out.
func Forms(v string) []string {
	if len(v) < MinSecretLen {
		return nil
	}
	b := []byte(v)
	bases := []string{v,
		base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
	var out []string
	add := func(f string) {
		if len(f) >= MinSecretLen && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, x := range bases {
		add(x)
		q, p := url.QueryEscape(x), url.PathEscape(x)
		qq := url.QueryEscape(q)
		for _, e := range []string{q, p, qq} {
			add(e)
			add(lowerHex(e))
		}
		add(jsonInner(x, true))
		add(jsonInner(x, false))
		if quoted := strconv.Quote(x); len(quoted) >= 2 {
			add(quoted[1 : len(quoted)-1])
		}
		if quoted := strconv.QuoteToASCII(x); len(quoted) >= 2 {
			add(quoted[1 : len(quoted)-1])
		}
	}
	return out
}

// jsonInner is v as it appears inside a JSON string.
func jsonInner(v string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(v); err != nil {
		return v
	}
	s := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`)
}

// lowerHex rewrites the hex digits of every percent escape in lower case
// ("%2F" to "%2f"), as some servers echo them.
func lowerHex(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 2
		}
	}
	return string(b)
}

// known is the process's registry, filled by the command at startup.
var known Set

// Register adds secrets to the process-wide registry that String, Terminal,
// TerminalLines and the JSON encoder mask in every output.
func Register(secrets ...Secret) { known.Add(secrets...) }

// AddSecret adds values to the process-wide registry, each masked as Mask.
func AddSecret(values ...string) { known.AddValues(values...) }

// AddBasicAuth adds HTTP Basic credentials to the process-wide registry
// (see Set.AddBasicAuth).
func AddBasicAuth(user, pass string) { known.AddBasicAuth(user, pass) }

// AddBearer adds a bearer token to the process-wide registry (see
// Set.AddBearer).
func AddBearer(token string) { known.AddBearer(token) }

// ResetSecrets empties the process-wide registry. It is for tests, which
// must not leave their secrets to the next test.
func ResetSecrets() { known.Reset() }

// Known is the process-wide registry.
func Known() *Set { return &known }
