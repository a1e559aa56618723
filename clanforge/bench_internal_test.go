package clanforge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/time/rate"
)

// installList is an imageinstall/status answer with n entries in the
// documented shape (API §4.10): a mix of Pending, Queued and Running
// machine jobs and a few mirror jobs, jobstart as a string as documented.
func installList(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"installs":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		state, name := 2, "Pending"
		switch i % 3 {
		case 1:
			state, name = 3, "Queued"
		case 2:
			state, name = 4, "Running"
		}
		mirroring := i%100 == 0
		fmt.Fprintf(&b, `{"jobid":%d,"jobcreated":1717404421,"jobstart":"1717404430","jobupdated":1717404490,"jobeta":1717404600,`+
			`"jobprogress":%d,"jobstateid":%d,"jobstatename":%q,"jobfailed":0,"joberror":null,"mirroring":%t,"mirror":"",`+
			`"machine":%d,"location":31,"imagepath":"/home/cf/5531","install_at":1717404421,"target_imageversionid":48811,"restart":0}`,
			660000+i, i%100, state, name, mirroring, 812345+i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// memTransport answers every request with the same body, in memory, so
// that a benchmark measures the client and not the network.
type memTransport struct{ body []byte }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(m.body)), ContentLength: int64(len(m.body)), Request: r,
	}, nil
}

// BenchmarkInstallStatus10k is one InstallStatus read of a 10,000-entry
// list through the whole client (envelope check, decoding), over an
// in-memory transport. Issue 12 reads this list about once per slot round
// at 10,000 machines, so its cost is the client's share of the N² term.
func BenchmarkInstallStatus10k(b *testing.B) {
	body := installList(10000)
	c, err := New(Config{
		BaseURL: "http://api.invalid", ASID: 4242, AccessKey: "access-key", SecretKey: "secret-key",
		RateLimit: rate.Inf, HTTPClient: &http.Client{Transport: memTransport{body}},
	})
	if err != nil {
		b.Fatal(err)
	}
	cx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ins, err := c.InstallStatus(cx)
		if err != nil || len(ins) != 10000 || ins[9999].Machine != 812345+9999 || !strings.HasPrefix(ins[0].StateName, "Pend") {
			b.Fatalf("%d installs, %v", len(ins), err)
		}
	}
}

// BenchmarkDecodeInstalls10k is decodeInstalls alone on the same answer.
func BenchmarkDecodeInstalls10k(b *testing.B) {
	body := installList(10000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ins, err := decodeInstalls(body)
		if err != nil || len(ins) != 10000 {
			b.Fatalf("%d installs, %v", len(ins), err)
		}
	}
}
