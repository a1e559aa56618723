package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want, wantLines string
	}{
		{"plain", "install 1.4.2 ✓ ünïcode 日本", "install 1.4.2 ✓ ünïcode 日本", ""},
		{"clear screen", "a\x1b[2Jb", `a\x1b[2Jb`, ""},
		{"OSC 52 clipboard", "\x1b]52;c;aGk=\x07", `\x1b]52;c;aGk=\x07`, ""},
		{"C1 CSI", "x\u009b31mred", `x\u009b31mred`, ""},
		{"C1 OSC and ST", "\u009d0;title\u009c", `\u009d0;title\u009c`, ""},
		{"CR overwrite", "ok\rFAILED", `ok\rFAILED`, ""},
		{"backspace and DEL", "a\bb\x7f", `a\x08b\x7f`, ""},
		{"newline and tab", "a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"bidi override", "file\u202eexe.txt", `file\u202eexe.txt`, ""},
		{"bidi isolate", "\u2066x\u2069", `\u2066x\u2069`, ""},
		{"line separator", "a\u2028b", `a\u2028b`, ""},
		{"raw C1 byte, not UTF-8", "a\x9bb", `a\x9bb`, ""},
		{"NUL", "a\x00b", `a\x00b`, ""},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			wl := tt.wantLines
			if wl == "" {
				wl = tt.want
			}
			if got := EscapeLines(tt.in); got != wl {
				t.Errorf("EscapeLines(%q) = %q, want %q", tt.in, got, wl)
			}
			if Unsafe(Escape(tt.in), false) {
				t.Errorf("Escape(%q) is still unsafe", tt.in)
			}
		})
	}
}

// testCreds are the fixture credentials of these tests.
const (
	testUser   = "AKIAEXAMPLEKEY"
	testSecret = "s3cr3t/+=Value&x"
	testToken  = "tok_9f8e7d6c5b4a"
)

func registerTestCreds(t *testing.T) {
	t.Helper()
	ResetSecrets()
	t.Cleanup(ResetSecrets)
	AddBasicAuth(testUser, testSecret)
	AddBearer(testToken)
}

// encodings lists, independently of Forms, the ways a server or a library
// could echo the credentials.
func encodings() map[string]string {
	pair := testUser + ":" + testSecret
	b64 := base64.StdEncoding.EncodeToString([]byte(pair))
	return map[string]string{
		"raw secret":              testSecret,
		"query-escaped secret":    url.QueryEscape(testSecret),
		"path-escaped secret":     url.PathEscape(testSecret),
		"lower-case hex escapes":  lowerEscapes(url.QueryEscape(testSecret)),
		"double-escaped secret":   url.QueryEscape(url.QueryEscape(testSecret)),
		"key:secret":              pair,
		"base64 of key:secret":    b64,
		"URL base64 of pair":      base64.RawURLEncoding.EncodeToString([]byte(pair)),
		"Basic header":            "Basic " + b64,
		"query-escaped Basic":     url.QueryEscape("Basic " + b64),
		"Bearer header":           "Bearer " + testToken,
		"bare token":              testToken,
		"base64 token":            base64.StdEncoding.EncodeToString([]byte(testToken)),
		"access key alone":        testUser,
		"JSON-escaped in a value": `s3cr3t/+=Value\u0026x`,
	}
}

// lowerEscapes writes percent escapes with lower-case hex digits.
func lowerEscapes(s string) string {
	return regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(s, strings.ToLower)
}

func TestRegistryMasksEveryForm(t *testing.T) {
	registerTestCreds(t)
	for name, enc := range encodings() {
		t.Run(name, func(t *testing.T) {
			in := "server said: \"" + enc + "\" (echo)"
			got := Terminal(in)
			if strings.Contains(got, enc) {
				t.Errorf("Terminal(%q) = %q still shows it", in, got)
			}
			if !strings.Contains(got, Mask) || !strings.HasPrefix(got, "server said: ") {
				t.Errorf("Terminal(%q) = %q", in, got)
			}
		})
	}
	// The whole header value goes, not just its base64.
	b64 := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testSecret))
	if got := String("Authorization: Basic " + b64); got != "Authorization: ***" {
		t.Errorf("Basic header masked as %q", got)
	}
	if got := String("Authorization: Bearer " + testToken); got != "Authorization: ***" {
		t.Errorf("Bearer header masked as %q", got)
	}
}

func TestShortValuesMaskNothing(t *testing.T) {
	ResetSecrets()
	t.Cleanup(ResetSecrets)
	AddSecret("a", "on", "123")
	AddBearer("abc")
	if got := String("a job on 123 abc"); got != "a job on 123 abc" {
		t.Errorf("short values masked innocent text: %q", got)
	}
	if n := Known().Len(); n != 0 {
		t.Errorf("%d short values registered", n)
	}
}

func TestLabels(t *testing.T) {
	s := NewSet(Secret{Value: "hunter2-SECRET", Label: "${env:TOKEN}"}, Secret{Value: "plain-secret"})
	got := s.Mask("token hunter2-SECRET, query token=" + url.QueryEscape("hunter2-SECRET") + ", other plain-secret")
	want := "token ${env:TOKEN}, query token=${env:TOKEN}, other ***"
	if got != want {
		t.Errorf("Mask = %q, want %q", got, want)
	}
	v := s.Version()
	s.AddValues("another-one")
	if s.Version() == v {
		t.Error("Version did not change on Add")
	}
}

func TestStringKeepsURLRules(t *testing.T) {
	ResetSecrets()
	if got := String("s3://key:secret@bucket/x"); got != "s3://***@bucket/x" {
		t.Errorf("String = %q", got)
	}
	if got := Terminal("s3://key:secret@bucket/x\x1b[2J"); got != `s3://***@bucket/x\x1b[2J` {
		t.Errorf("Terminal = %q", got)
	}
}

// TestMaskBeforeEscape: a secret holding a control character is masked in
// its raw form, before escaping could turn it into a text that no longer
// matches.
func TestMaskBeforeEscape(t *testing.T) {
	ResetSecrets()
	t.Cleanup(ResetSecrets)
	AddSecret("ab\x1bcd")
	if got := Terminal("x ab\x1bcd y"); got != "x *** y" {
		t.Errorf("Terminal = %q", got)
	}
}

func TestCopy(t *testing.T) {
	type inner struct {
		Name string
		N    int
	}
	type outcome string
	type doc struct {
		Title   string
		Kind    outcome
		When    time.Time
		Tags    []string
		IDs     []int64
		Params  map[string]string
		Inner   *inner
		List    []inner
		Any     any
		private string
	}
	orig := doc{Title: "a\x1b", Kind: "k\x1b", When: time.Unix(5, 0), Tags: []string{"t\x1b"}, IDs: []int64{1, 2},
		Params: map[string]string{"k\x1b": "v\x1b"}, Inner: &inner{Name: "n\x1b", N: 3}, List: []inner{{Name: "l\x1b"}},
		Any: inner{Name: "any\x1b"}, private: "p\x1b"}
	got := Copy(orig, Escape)
	if got.Title != `a\x1b` || got.Kind != `k\x1b` || got.Tags[0] != `t\x1b` || got.Params[`k\x1b`] != `v\x1b` ||
		got.Inner.Name != `n\x1b` || got.Inner.N != 3 || got.List[0].Name != `l\x1b` || got.Any.(inner).Name != `any\x1b` {
		t.Errorf("Copy = %+v", got)
	}
	if !got.When.Equal(orig.When) || got.IDs[1] != 2 || got.private != "p\x1b" {
		t.Errorf("Copy lost values: %+v", got)
	}
	if orig.Title != "a\x1b" || orig.Tags[0] != "t\x1b" || orig.Inner.Name != "n\x1b" || orig.Params["k\x1b"] != "v\x1b" {
		t.Errorf("Copy changed its input: %+v", orig)
	}
	got.IDs[0] = 9
	if orig.IDs[0] != 1 {
		t.Error("Copy shares a slice with its input")
	}
}

func TestJSONEncoder(t *testing.T) {
	registerTestCreds(t)
	type ev struct {
		Error  string            `json:"error"`
		Params map[string]string `json:"params"`
		List   []string          `json:"list"`
	}
	hostile := "boom \x1b[2J \u009b31m \x7f \u202e " + testSecret + " <b>"
	v := ev{Error: hostile, Params: map[string]string{"auth": "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testSecret))}, List: []string{testToken}}
	var buf bytes.Buffer
	enc := NewJSONEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if Unsafe(strings.TrimSuffix(out, "\n"), false) {
		t.Errorf("JSON output holds a raw control character: %q", out)
	}
	for name, enc := range encodings() {
		if strings.Contains(out, enc) {
			t.Errorf("JSON output shows the %s: %s", name, out)
		}
	}
	var back ev
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if want := "boom \x1b[2J \u009b31m \x7f \u202e *** <b>"; back.Error != want {
		t.Errorf("decoded error = %q, want %q (only masking may change a value)", back.Error, want)
	}
	if back.Params["auth"] != Mask || back.List[0] != Mask {
		t.Errorf("decoded = %+v", back)
	}
	if !strings.Contains(out, `\u007f`) || !strings.Contains(out, `\u009b`) || !strings.Contains(out, `\u202e`) || !strings.Contains(out, "<b>") {
		t.Errorf("output = %s", out)
	}
}

func TestJSONSafeLeavesCleanJSONAlone(t *testing.T) {
	in := []byte(`{"a":"ünïcode ✓","b":[1,2]}`)
	if got := JSONSafe(in); &got[0] != &in[0] {
		t.Error("clean JSON was copied")
	}
}

// FuzzTerminalHidesSecrets registers fuzzed Basic credentials and a bearer
// token, plants each in every encoding a server could echo, and checks that
// none survives Terminal, raw or escaped.
func FuzzTerminalHidesSecrets(f *testing.F) {
	for _, s := range []string{"hunter2", "abc/def+ghi", "p@ss w?rd#1", "ünï\x1bcode", "a%2Fb", "x:y:z", "=+/="} {
		f.Add(s, "AKIAFUZZ")
	}
	f.Fuzz(func(t *testing.T, secret, user string) {
		if len(secret) < MinSecretLen || len(user) < MinSecretLen || !utf8.ValidString(secret) ||
			strings.ContainsAny(secret+user, `*\`) {
			return
		}
		const pre, sep, post = "<<", " ~ ", ">>"
		for _, fixed := range []string{pre, sep, post, Mask} {
			if strings.Contains(fixed, secret) || strings.Contains(fixed, user) {
				return
			}
		}
		ResetSecrets()
		defer ResetSecrets()
		AddBasicAuth(user, secret)
		AddBearer(secret)
		pair := user + ":" + secret
		b64 := base64.StdEncoding.EncodeToString([]byte(pair))
		forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), lowerEscapes(url.QueryEscape(secret)),
			url.QueryEscape(url.QueryEscape(secret)), pair, b64, base64.URLEncoding.EncodeToString([]byte(pair)),
			base64.RawStdEncoding.EncodeToString([]byte(pair)), "Basic " + b64, "Bearer " + secret,
			base64.StdEncoding.EncodeToString([]byte(secret))}
		text := pre + strings.Join(forms, sep) + post
		got := Terminal(text)
		for _, form := range forms {
			if len(form) < MinSecretLen {
				continue
			}
			if strings.Contains(got, form) || strings.Contains(got, Escape(form)) {
				t.Fatalf("Terminal(%q)\n= %q\nshows %q", text, got, form)
			}
		}
		if Unsafe(got, false) {
			t.Fatalf("Terminal output %q holds a control character", got)
		}
	})
}

// BenchmarkTerminal is the cost of the boundary on a typical short string
// and on a long error, with Basic credentials and a token registered.
func BenchmarkTerminal(b *testing.B) {
	ResetSecrets()
	b.Cleanup(ResetSecrets)
	AddBasicAuth(testUser, testSecret)
	AddBearer(testToken)
	for name, s := range map[string]string{
		"state name": "Running",
		"error":      "install job 661206 on machine 812345 failed: disk full on /home/cf (code 28); " + strings.Repeat("x", 200),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Terminal(s)
			}
		})
	}
}
