// Package redact is the program's output boundary. It owns the one set of
// rules that hides credentials in text before it is shown, logged,
// journaled or returned in an error, and the one way of making text from
// outside the program (API answers, plan names, errors) safe to print.
// Every printer goes through it, so a fix to a rule reaches every output at
// once:
//
//   - Terminal (one line) and TerminalLines (text with meant line breaks)
//     for anything shown on a terminal: String, then Escape;
//   - String for files and logs: the known secrets, then the URL rules;
//   - JSONEncoder for JSON output: String on every string value, and the
//     characters encoding/json leaves raw (DEL, C1, bidi) as \u escapes;
//   - Copy to apply one of them to every string of a value at once.
//
// Known secrets live in a process-wide registry that the command fills at
// startup (Register, AddSecret, AddBasicAuth, AddBearer): each is masked in
// every encoding a printer could meet (see Set).
//
// The URL rules, applied in this order by Text:
//
//  1. User-info of a URL. For every "scheme://" (written plainly or
//     percent-encoded any number of times, e.g. "s3%3A%2F%2F" or
//     "s3%253A%252F%252F"), everything from after the "://" to the LAST "@"
//     (or encoded "@") before the next whitespace or quote is replaced by
//     "***". The last "@", not the first, and "/", "?" and "#" do not end
//     the user-info, because a secret may contain them unencoded (AWS secret
//     keys often contain "/"): "s3://AKIAX:abc/def+ghi@builds/x/" becomes
//     "s3://***@builds/x/". The price is that an "@" later in a path or query
//     hides the host and path in front of it too ("https://u:p@host/x@y"
//     becomes "https://***@y"): masking too much is harmless, too little
//     leaks. In an encoded URL a raw "&" also ends it, since it can only be
//     the next parameter of the enclosing query.
//  2. Secret query parameters. After "?" or "&" (plain or encoded), the
//     value of a parameter whose name SecretName accepts (credentials,
//     betapassword, token, X-Amz-Signature, ...) is replaced by "***", up to
//     the next "&" or "#" of the same encoding level, whitespace or quote. A
//     value written as raw JSON ("credentials={...") is masked to the end of
//     the text, since its quotes and spaces cannot end it safely.
//  3. Bare credentials without a scheme: in a whitespace- or quote-delimited
//     word, "user:password@" before the word's last "@" becomes "***@"
//     ("see key:secret@host" becomes "see ***@host"). A word whose last "@"
//     follows a "://" was handled by rule 1; a word without ":" before its
//     "@" (a mail address) is left alone.
//
// Text is safe on any input: it never panics and never grows a secret.
package redact

import "strings"

// Mask is what replaces a secret.
const Mask = "***"

// Text returns s with every credential the rules above find replaced by
// Mask.
func Text(s string) string {
	if !strings.ContainsAny(s, "@%?&") {
		return s
	}
	s = userinfo(s)
	s = queryParams(s)
	return bare(s)
}

// SecretName reports whether a parameter called name carries a secret
// whatever its value looks like. It matches case-insensitively, on whole
// names for short, ambiguous words ("key") and on parts of names otherwise
// ("betapassword", "X-Amz-Credential").
func SecretName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "key", "pass", "pwd", "sig", "guardcode":
		return true
	}
	for _, part := range secretParts {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

var secretParts = []string{
	"secret", "passw", "token", "apikey", "api_key", "api-key",
	"accesskey", "access_key", "access-key", "authorization",
	"signature", "credential", "private", "guardcode",
}

// UserinfoSpan finds the user-info of the URL u by the strict reading the
// plan loader checks: it starts after the first "://" and ends at the last
// "@" before any "?" or "#". It returns the byte range [start, end) in u, or
// ok false when u has no "://" or no "@" before its query.
func UserinfoSpan(u string) (start, end int, ok bool) {
	i := strings.Index(u, "://")
	if i < 0 {
		return 0, 0, false
	}
	start = i + 3
	rest := u[start:]
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return 0, 0, false
	}
	return start, start + at, true
}

// userinfo applies rule 1.
func userinfo(s string) string {
	var b strings.Builder
	prev := 0
	for i := 0; i < len(s); {
		n, encoded := separatorAt(s, i)
		if n == 0 {
			i++
			continue
		}
		q := i + n
		lastAt, atLen := -1, 0
		for j := q; j < len(s) && !endsWord(s[j]) && !(encoded && s[j] == '&'); {
			if s[j] == '@' {
				lastAt, atLen = j, 1
				j++
				continue
			}
			if encoded {
				if m, _ := encAt(s, j, '@'); m > 0 {
					lastAt, atLen = j, m
					j += m
					continue
				}
			}
			j++
		}
		if lastAt > q {
			b.WriteString(s[prev:q])
			b.WriteString(Mask)
			prev = lastAt
			i = lastAt + atLen
			continue
		}
		i = q
	}
	if prev == 0 {
		return s
	}
	b.WriteString(s[prev:])
	return b.String()
}

// separatorAt returns the length of a "://" at s[i:], plain or with any of
// its characters percent-encoded, and whether any of them was encoded.
func separatorAt(s string, i int) (n int, encoded bool) {
	c, l1 := encAt(s, i, ':')
	if c == 0 {
		return 0, false
	}
	d, l2 := encAt(s, i+c, '/')
	if d == 0 {
		return 0, false
	}
	e, l3 := encAt(s, i+c+d, '/')
	if e == 0 {
		return 0, false
	}
	return c + d + e, l1+l2+l3 > 0
}

// queryParams applies rule 2.
func queryParams(s string) string {
	var b strings.Builder
	prev := 0
	for i := 0; i < len(s); i++ {
		n, _ := encAt(s, i, '?')
		if n == 0 {
			if n, _ = encAt(s, i, '&'); n == 0 {
				continue
			}
		}
		j := i + n
		k := j
		for k < len(s) && isNameByte(s[k]) {
			k++
		}
		if k == j {
			continue
		}
		eq, level := encAt(s, k, '=')
		if eq == 0 || !SecretName(s[j:k]) {
			continue
		}
		v := k + eq
		end := valueEnd(s, v, level)
		if end == v {
			continue
		}
		b.WriteString(s[prev:v])
		b.WriteString(Mask)
		prev = end
		i = end - 1
	}
	if prev == 0 {
		return s
	}
	b.WriteString(s[prev:])
	return b.String()
}

// valueEnd returns where a query value starting at v ends: at whitespace, a
// quote, a raw "&" or "#", or an "&" or "#" encoded at the value's own
// level (a deeper one belongs to the value itself).
func valueEnd(s string, v, level int) int {
	if level == 0 && v < len(s) && s[v] == '{' {
		return len(s)
	}
	j := v
	for j < len(s) && !endsWord(s[j]) && s[j] != '&' && s[j] != '#' {
		if level > 0 && (encAtLevel(s, j, '&', level) || encAtLevel(s, j, '#', level)) {
			break
		}
		j++
	}
	return j
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// bare applies rule 3 word by word.
func bare(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, ":") {
		return s
	}
	var b strings.Builder
	prev := 0
	for i := 0; i < len(s); {
		if endsWord(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && !endsWord(s[j]) {
			j++
		}
		if from, to, ok := bareCredential(s[i:j]); ok {
			b.WriteString(s[prev : i+from])
			b.WriteString(Mask)
			prev = i + to
		}
		i = j
	}
	if prev == 0 {
		return s
	}
	b.WriteString(s[prev:])
	return b.String()
}

// bareCredential finds "user:password" ending at the last "@" of word.
func bareCredential(word string) (from, to int, ok bool) {
	at := strings.LastIndexByte(word, '@')
	if at <= 0 || strings.Contains(word[:at], "://") {
		return 0, 0, false
	}
	head := word[:at]
	for c := strings.IndexByte(head, ':'); c >= 0; {
		u := strings.LastIndexAny(head[:c], "/([{<,;=:") + 1
		if u < c && c+1 < at {
			return u, at, true
		}
		next := strings.IndexByte(head[c+1:], ':')
		if next < 0 {
			break
		}
		c += 1 + next
	}
	return 0, 0, false
}

// endsWord reports whether c ends a URL or word in free text: whitespace or
// a quote.
func endsWord(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`':
		return true
	}
	return false
}

// encAt reports whether s[i:] holds the character c, either raw or
// percent-encoded any number of times ("%3A", "%253A", ...). It returns the
// length matched (0 for no match) and the encoding level (0 for raw).
func encAt(s string, i int, c byte) (n, level int) {
	if i >= len(s) {
		return 0, 0
	}
	if s[i] == c {
		return 1, 0
	}
	if s[i] != '%' {
		return 0, 0
	}
	hi, lo := hexDigits(c)
	for j, lvl := i+1, 1; j+1 < len(s); j, lvl = j+2, lvl+1 {
		if upper(s[j]) == hi && upper(s[j+1]) == lo {
			return j + 2 - i, lvl
		}
		if s[j] != '2' || s[j+1] != '5' {
			return 0, 0
		}
	}
	return 0, 0
}

// encAtLevel reports whether s[i:] holds c percent-encoded exactly level
// times.
func encAtLevel(s string, i int, c byte, level int) bool {
	n, l := encAt(s, i, c)
	return n > 0 && l == level
}

func hexDigits(c byte) (hi, lo byte) {
	const digits = "0123456789ABCDEF"
	return digits[c>>4], digits[c&15]
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
