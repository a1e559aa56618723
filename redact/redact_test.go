package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// Rule 1: user-info of a URL, to the last "@".
		{"s3", "s3://key:secret@bucket/dir/?region=eu-west-1", "s3://***@bucket/dir/?region=eu-west-1"},
		{"raw slash in the secret", "s3://AKIAX:abc/def+ghi@builds/x/", "s3://***@builds/x/"},
		{"raw slash in prose", `bad url "s3://AKIAX:abc/def+ghi@builds/x/" here`, `bad url "s3://***@builds/x/" here`},
		{"raw slash and @ in the secret", "s3://AKIAX:a@b/c@builds/x/", "s3://***@builds/x/"},
		{"raw ? and # in the secret", "steam://user:pa?ss#wd@install/740/", "steam://***@install/740/"},
		{"percent-encoded secret", "s3://AKIAX:abc%2Fdef%40x@builds/x/", "s3://***@builds/x/"},
		{"steam", "steam://user:hunter2@install/740/?platformtype=linux", "steam://***@install/740/?platformtype=linux"},
		{"user without password", "steam://anonymous@install/740/", "steam://***@install/740/"},
		{"cos", "cos://id:key@bucket/x", "cos://***@bucket/x"},
		{"http with port", "https://user:pa55@host:8080/p?q=1", "https://***@host:8080/p?q=1"},
		{"an @ in the path hides the host too", "https://u:p@host/x@y", "https://***@y"},
		{"two URLs", "from s3://a:b/c@x/ to steam://u:p@install/1/", "from s3://***@x/ to steam://***@install/1/"},
		{"encoded URL", "bad url s3%3A%2F%2FAKIAX%3AsEcReT%40bucket", "bad url s3%3A%2F%2F***%40bucket"},
		{"encoded URL with encoded slash", "url=s3%3A%2F%2FAKIAX%3Aabc%252Fdef%40bucket&x=1", "url=s3%3A%2F%2F***%40bucket&x=1"},
		{"encoded URL with raw slash", "url=s3%3A%2F%2FAKIAX%3Aabc/def%40bucket&x=1", "url=s3%3A%2F%2F***%40bucket&x=1"},
		{"double-encoded URL", "url=s3%253A%252F%252Fk%253As%2540b", "url=s3%253A%252F%252F***%2540b"},
		{"lower-case escapes", "s3%3a%2f%2fk%3as%40b", "s3%3a%2f%2f***%40b"},
		{"JSON", `{"url":"s3://k:s/x@b/","n":1}`, `{"url":"s3://***@b/","n":1}`},
		{"idempotent", "s3://***@bucket/x", "s3://***@bucket/x"},
		// Rule 2: secret query parameters.
		{"gs credentials", "gs://bucket/dir?credentials=%7B%22k%22%3A1%7D", "gs://bucket/dir?credentials=***"},
		{"steam betapassword", "steam://user:pw@install/123/?beta=x&betapassword=hunter2", "steam://***@install/123/?beta=x&betapassword=***"},
		{"guardcode then more", "steam://u:p@install/1/?guardcode=AB12C&beta=x", "steam://***@install/1/?guardcode=***&beta=x"},
		{"signed URL", "https://h/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&x=1", "https://h/o?X-Amz-Credential=***&X-Amz-Signature=***&x=1"},
		{"raw JSON credentials", `gs://b/d?credentials={"type": "service_account"}`, "gs://b/d?credentials=***"},
		{"encoded query inside a query", "url=gs%3A%2F%2Fb%2Fd%3Fcredentials%3D%257B%2522k%2522%257D%26handlers%3D5&id=1", "url=gs%3A%2F%2Fb%2Fd%3Fcredentials%3D***%26handlers%3D5&id=1"},
		{"token without URL", "retry with ?token=abc", "retry with ?token=***"},
		// Rule 3: bare user:password@host.
		{"bare", "see key:secret@host now", "see ***@host now"},
		{"bare with raw slash", "see AKIAX:abc/def@host now", "see ***@host now"},
		{"bare after =", "url=user:pass@host", "url=***@host"},
		{"bare with @ in the password", "user:p@ss@host", "***@host"},
		// Left alone.
		{"no credentials", "s3://bucket/dir/", "s3://bucket/dir/"},
		{"port", "https://host:8080/path", "https://host:8080/path"},
		{"mail", "error: mail me@example.com", "error: mail me@example.com"},
		{"colon in prose", "image locked by diffid: 218595", "image locked by diffid: 218595"},
		{"env reference", "${env:BUILD_URL}", "${env:BUILD_URL}"},
		{"plain text", "build 1.4.2", "build 1.4.2"},
		{"harmless param", "s3://b/d/?region=eu-west-1&handlers=4", "s3://b/d/?region=eu-west-1&handlers=4"},
		{"monkey is not key", "x?monkey=1", "x?monkey=1"},
		{"empty", "", ""},
		{"empty user-info", "s3://@bucket", "s3://@bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSecretName(t *testing.T) {
	for _, n := range []string{"credentials", "password", "betapassword", "BetaPassword", "secret", "secretkey", "secret_key", "token", "guardcode", "accesskey", "access_key", "key", "X-Amz-Signature", "X-Amz-Security-Token", "api_key", "Authorization"} {
		if !SecretName(n) {
			t.Errorf("SecretName(%q) = false", n)
		}
	}
	for _, n := range []string{"region", "handlers", "beta", "platformtype", "url", "desc", "accountserviceid", "monkey", "keys", ""} {
		if SecretName(n) {
			t.Errorf("SecretName(%q) = true", n)
		}
	}
}

func TestUserinfoSpan(t *testing.T) {
	tests := []struct {
		in   string
		want string // the user-info, or "-" for none
	}{
		{"s3://AKIAX:abc/def+ghi@builds/x/", "AKIAX:abc/def+ghi"},
		{"s3://AKIAX:abc%2Fdef@builds/x/", "AKIAX:abc%2Fdef"},
		{"s3://AKIAX:abc@def/ghi@builds/x/", "AKIAX:abc@def/ghi"},
		{"steam://u:p@install/1/?betapassword=a@b", "u:p"},
		{"https://host/x@y", "host/x"},
		{"gs://bucket/dir?credentials=a@b", "-"},
		{"s3://bucket/dir/", "-"},
		{"no url at all", "-"},
	}
	for _, tt := range tests {
		got := "-"
		if s, e, ok := UserinfoSpan(tt.in); ok {
			got = tt.in[s:e]
		}
		if got != tt.want {
			t.Errorf("UserinfoSpan(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSecretNeverLeaks plants a secret in the user-info of a URL, raw or
// URL-encoded, inside prose, and checks that masking removes it.
func FuzzSecretNeverLeaks(f *testing.F) {
	for _, s := range []string{"abc/def+ghi", "p@ss/w?rd#1", "hunter2", "a%2Fb", "x:y:z", "{}[]()<>,;=&"} {
		f.Add(s, "s3")
		f.Add(s, "steam")
	}
	f.Fuzz(func(t *testing.T, secret, scheme string) {
		if len(secret) < 4 || strings.ContainsAny(secret, " \t\n\r\v\f\"'`") || strings.Contains(secret, Mask) {
			return
		}
		if scheme == "" || strings.ContainsAny(scheme, " \t\n\r\v\f\"'`@:/%?&") {
			scheme = "s3"
		}
		for _, u := range []string{
			scheme + "://AKIAX:" + secret + "@bucket/dir/",
			scheme + "://AKIAX:" + url.PathEscape(secret) + "@bucket/dir/",
			url.QueryEscape(scheme + "://AKIAX:" + url.QueryEscape(secret) + "@bucket/dir/"),
		} {
			text := `error: "` + u + `" refused`
			got := Text(text)
			for _, leak := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret), url.QueryEscape(url.QueryEscape(secret))} {
				if strings.Contains(got, leak) && !strings.Contains(text[:strings.Index(text, "AKIAX")], leak) && !strings.Contains("bucket/dir/\" refused", leak) {
					t.Fatalf("Text(%q) = %q leaks %q", text, got, leak)
				}
			}
		}
	})
}
