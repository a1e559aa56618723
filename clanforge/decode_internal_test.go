package clanforge

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFlexInt(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		valid   bool
		wantErr bool
	}{
		{`12`, 12, true, false},
		{`"12"`, 12, true, false},
		{`" 12 "`, 12, true, false},
		{`12.9`, 12, true, false},
		{`"1717403112"`, 1717403112, true, false},
		{`null`, 0, false, false},
		{`""`, 0, false, false},
		{`true`, 1, true, false},
		{`false`, 0, true, false},
		{`-3`, -3, true, false},
		{`1e3`, 1000, true, false},
		{`1e300`, 0, false, true},
		{`"abc"`, 0, false, true},
		{`{}`, 0, false, true},
		{`[]`, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f flexInt
			err := json.Unmarshal([]byte(tt.in), &f)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (f.V != tt.want || f.Valid != tt.valid) {
				t.Fatalf("got %+v, want %d valid=%v", f, tt.want, tt.valid)
			}
		})
	}
}

func TestFlexBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{`true`, true, false}, {`false`, false, false}, {`1`, true, false}, {`0`, false, false},
		{`"1"`, true, false}, {`"0"`, false, false}, {`"true"`, true, false}, {`"False"`, false, false},
		{`null`, false, false}, {`""`, false, false}, {`2`, true, false},
		{`"maybe"`, false, true}, {`{}`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f flexBool
			err := json.Unmarshal([]byte(tt.in), &f)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if f.V != tt.want {
				t.Fatalf("got %v, want %v", f.V, tt.want)
			}
		})
	}
}

func TestFileList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`{"b": {"size": 1}, "a": {}, "c": null}`, []string{"a", "b", "c"}, false},
		{`{}`, []string{}, false},
		{`[]`, []string{}, false},
		{`null`, nil, false},
		{`["z", "y"]`, []string{"y", "z"}, false},
		{`[1]`, nil, true},
		{`"x"`, nil, true},
		{`3`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f fileList
			err := json.Unmarshal([]byte(tt.in), &f)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual([]string(f), tt.want) {
				t.Fatalf("got %#v, want %#v", []string(f), tt.want)
			}
		})
	}
}

func TestIDOrName(t *testing.T) {
	tests := []struct {
		in   string
		id   int64
		name string
	}{
		{`812345`, 812345, ""}, {`"812345"`, 812345, ""}, {`"buildbox-eu"`, 0, "buildbox-eu"}, {`null`, 0, ""},
	}
	for _, tt := range tests {
		var f idOrName
		if err := json.Unmarshal([]byte(tt.in), &f); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if f.ID != tt.id || f.Name != tt.name {
			t.Fatalf("%s: got %+v", tt.in, f)
		}
	}
}

func TestParseLock(t *testing.T) {
	tests := []struct {
		msg  string
		kind string
		id   int64
		ok   bool
	}{
		{"image locked by diffid: 218595", "diff", 218595, true},
		{"Image Locked By DiffID: 7", "diff", 7, true},
		{"IMAGE LOCKED BY UPDATEID: 90412", "update", 90412, true},
		{"image locked by updateid:12 (in progress)", "update", 12, true},
		{"image locked by diffid", "diff", 0, true},
		{"image locked by diffid: x", "diff", 0, true},
		{"image locked by diffid: 99999999999999999999999", "diff", 0, true},
		{"image locked by somethingid: 3", "somethingid", 3, true},
		{"image locked", "", 0, false},
		{"the image locked by diffid: 3", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		kind, id, ok := parseLock(tt.msg)
		if kind != tt.kind || id != tt.id || ok != tt.ok {
			t.Errorf("parseLock(%q) = %q, %d, %v; want %q, %d, %v", tt.msg, kind, id, ok, tt.kind, tt.id, tt.ok)
		}
	}
}

func TestCheckEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr bool
		locked  bool
		isObj   bool
	}{
		{"success", `{"success":true,"diffid":1}`, false, false, true},
		{"error true", `{"error":true,"error_message":"bad"}`, true, false, true},
		{"error 1", `{"error":1,"error_message":"bad"}`, true, false, true},
		{"success false with message", `{"success":false,"error_message":"bad"}`, true, false, true},
		// API §7 #2: a status read of a Failed job may say success:false.
		{"success false alone is a job outcome", `{"success":false,"jobstateid":6,"joberror":"boom"}`, false, false, true},
		{"locked", `{"success":false,"error":true,"error_code":1,"error_message":"image locked by diffid: 5"}`, true, true, true},
		{"array", `[]`, false, false, false},
		{"garbage", `<html>`, false, false, false},
		{"empty", ``, false, false, false},
		// One field of an odd type must not hide the others.
		{"error object", `{"error":{"x":1}}`, true, false, true},
		{"error empty object", `{"error":{},"diffid":1}`, false, false, true},
		{"odd message type", `{"error":true,"error_message":{"text":"image locked by diffid: 9"}}`, true, false, true},
		{"odd success type", `{"success":{"a":1},"error":true,"error_message":"image locked by diffid: 9"}`, true, true, true},
		{"message in messages", `{"success":false,"error":true,"error_code":1,"error_message":"","messages":["image locked by updateid: 4"]}`, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, isObj := checkEnvelope("/x", 200, []byte(tt.body))
			if (err != nil) != tt.wantErr || isObj != tt.isObj {
				t.Fatalf("err=%v isObj=%v; want err=%v isObj=%v", err, isObj, tt.wantErr, tt.isObj)
			}
			_, isLocked := err.(*LockedError)
			if isLocked != tt.locked {
				t.Fatalf("locked = %v, want %v (%v)", isLocked, tt.locked, err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		// Not capped here: Client.retryAfter caps and says so.
		{"999999999", 999999999 * time.Second, true},
		{"99999999999999999999", math.MaxInt64, true},
		{"-99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRedaction(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
	}{
		{"bad url s3://AKIAX:sEcReT@bucket/folder/", []string{"AKIAX", "sEcReT"}},
		{"bad url s3%3A%2F%2FAKIAX%3AsEcReT%40bucket", []string{"AKIAX", "sEcReT"}},
		{"steam://user:hunter2@install/123/", []string{"hunter2"}},
		{"bad url s3://AKIAX:abc/def+ghi@builds/x/", []string{"AKIAX", "abc", "def+ghi"}},
		{`bad url "s3%3A%2F%2FAKIAX%3Aabc%252Fdef%40builds"`, []string{"AKIAX", "abc", "def"}},
		{"gs://b/d?credentials=%7B%22private_key%22%7D", []string{"private_key"}},
	}
	for _, tt := range tests {
		got := redactUserinfo(tt.in)
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactUserinfo(%q) = %q still contains %q", tt.in, got, s)
			}
		}
	}
	u := redactURL("https://user:pw@api.example/cfp/v1/imageupdate/create?url=s3%3A%2F%2Fk%3As%40b&accountserviceid=1")
	if strings.Contains(u, "pw") || strings.Contains(u, "url=") || strings.Contains(u, "accountserviceid") {
		t.Errorf("redactURL kept secrets: %q", u)
	}
	// A raw "/" in the password makes url.Parse read "u:12" as host and
	// port and the rest of the secret as path.
	for _, in := range []string{"https://u:12/xyz@api.example/cfp/v1/x?y=1", "https://u:ab/xyz@api.example/cfp/v1/x"} {
		if u := redactURL(in); strings.Contains(u, "xyz") || !strings.Contains(u, "api.example/cfp/v1/x") {
			t.Errorf("redactURL(%q) = %q", in, u)
		}
	}
}

// sampleBodies returns the doc's sample answers from testdata/samples.
func sampleBodies(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "samples", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no samples: %v", err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// decodeAll runs every response decoder over body; it is what the fuzz test
// exercises and must never panic.
func decodeAll(body []byte) {
	_, _ = checkEnvelope("/x", 200, body)
	for _, f := range []jobIDField{idUpdate, idDiff, idVersion, idUninstall, idInstall} {
		_, _ = decodeJob(body, f, 1)
	}
	_, _ = decodeDiff(body, 1)
	_, _ = decodeInstalls(body)
	_, _ = decodeQueue(body, 1)
	_, _ = decodeReject(body, 1)
	_, _ = decodeImageStatus(body)
	_, _ = decodeImageOptions(body)
	_, _ = decodeDiffImage(body)
	_, _, _ = parseLock(string(body))
	_ = redactUserinfo(string(body))
}

func FuzzDecodeResponses(f *testing.F) {
	for _, b := range sampleBodies(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"jobstart":1717403112,"jobcreated":"1717403100","jobeta":null,"jobstateid":"4"}`,
		`{"added":[],"modified":{},"removed":null}`,
		`{"installs":[{"machine":"box","location":"31","restart":true,"mirroring":"1"}]}`,
		`{"installs":{"0":{"jobid":1}}}`,
		`{"installs_squashed":"2","machinejobid":"7"}`,
		`{"fleets":[]}`,
		`{"fleets":{"f":{"regions":[]}}}`,
		`{"jobprogress":1e400}`,
		`{"error":true,"error_message":"image locked by updateid: 1"}`,
		``, `null`, `[]`, `"x"`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeAll(body)
	})
}

func TestSamplesDecode(t *testing.T) {
	// Every sample decodes without error through the decoder of its kind;
	// the field-by-field checks live in the HTTP tests.
	b := sampleBodies(t)
	checks := map[string]func([]byte) error{
		"update_create.json":         func(b []byte) error { _, err := decodeJob(b, idUpdate, 0); return err },
		"update_status.json":         func(b []byte) error { _, err := decodeJob(b, idUpdate, 0); return err },
		"diff_create.json":           func(b []byte) error { _, err := decodeJob(b, idDiff, 0); return err },
		"diff_status.json":           func(b []byte) error { _, err := decodeDiff(b, 0); return err },
		"diff_retry.json":            func(b []byte) error { _, err := decodeJob(b, idDiff, 0); return err },
		"diff_reject.json":           func(b []byte) error { _, err := decodeReject(b, 0); return err },
		"diff_reject_reinstall.json": func(b []byte) error { _, err := decodeReject(b, 0); return err },
		"version_create.json":        func(b []byte) error { _, err := decodeJob(b, idVersion, 0); return err },
		"version_status.json":        func(b []byte) error { _, err := decodeJob(b, idVersion, 0); return err },
		"install_status.json":        func(b []byte) error { _, err := decodeInstalls(b); return err },
		"install_queue.json":         func(b []byte) error { _, err := decodeQueue(b, 0); return err },
		"image_status.json":          func(b []byte) error { _, err := decodeImageStatus(b); return err },
		"image_options.json":         func(b []byte) error { _, err := decodeImageOptions(b); return err },
		"error_locked.json": func(b []byte) error {
			if err, _ := checkEnvelope("/x", 200, b); err == nil {
				return os.ErrInvalid
			}
			return nil
		},
	}
	for name, body := range b {
		check, ok := checks[name]
		if !ok {
			t.Errorf("sample %s has no check", name)
			continue
		}
		if err := check(body); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDecodeListShapes: the lists of image/options and imageinstall/status
// come as JSON arrays, but PHP writes a list whose keys are not sequential
// as an object keyed by index; both, and null, must decode, in index order.
func TestDecodeListShapes(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantIDs  []int64
		wantFail bool
	}{
		{"array", `{"games":[{"gameid":1,"name":"a"},{"gameid":2,"name":"b"}]}`, []int64{1, 2}, false},
		{"object by index", `{"games":{"10":{"gameid":3,"name":"c"},"2":{"gameid":1,"name":"a"},"3":{"gameid":2,"name":"b"}}}`, []int64{1, 2, 3}, false},
		{"null", `{"games":null}`, nil, false},
		{"absent", `{}`, nil, false},
		{"empty object", `{"games":{}}`, nil, false},
		{"a number", `{"games":7}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := decodeImageOptions([]byte(tt.body))
			if (err != nil) != tt.wantFail {
				t.Fatalf("err = %v, want failure %v", err, tt.wantFail)
			}
			if err != nil {
				return
			}
			var ids []int64
			for _, g := range o.Games {
				ids = append(ids, g.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Fatalf("games = %v, want %v", ids, tt.wantIDs)
			}
		})
	}
	ins, err := decodeInstalls([]byte(`{"installs":{"10":{"jobid":3},"9":{"jobid":2}}}`))
	if err != nil || len(ins) != 2 || ins[0].ID != 2 || ins[1].ID != 3 {
		t.Fatalf("installs by index: %+v %v", ins, err)
	}
}

// envelopeByMap is the envelope lookup as it was before issue 12: the whole
// body decoded into a map. envelopeFields must agree with it on every valid
// JSON object.
func envelopeByMap(body []byte) (map[string]json.RawMessage, bool) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil || all == nil {
		return nil, false
	}
	out := map[string]json.RawMessage{}
	for _, k := range envelopeKeys {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out, true
}

// checkEnvelopeScan compares envelopeFields with the map decoding: equal
// on valid JSON; on anything else it may say "object" (the endpoint's
// decoder then refuses the body) but must not panic.
func checkEnvelopeScan(t *testing.T, body []byte) {
	t.Helper()
	got, ok := envelopeFields(body)
	if !json.Valid(body) {
		return
	}
	want, wok := envelopeByMap(body)
	if ok != wok {
		t.Fatalf("%q: object %v, want %v", body, ok, wok)
	}
	if !ok {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: fields %q, want %q", body, got, want)
	}
	for k, v := range want {
		if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
			t.Fatalf("%q: %s = %q, want %q", body, k, got[k], v)
		}
	}
}

func TestEnvelopeFields(t *testing.T) {
	for _, s := range []string{
		`{}`, ` { } `, `{"error":true,"error_message":"x"}`,
		`{"installs":[{"error":"inner","joberror":"e}]"}],"error":false}`,
		`{"a":"\"error\":true","success" : false , "error_code":"1","messages":["a","b"]}`,
		`{"err\u006fr":true}`, `{"error":1,"error":0}`, `{"n":-1.5e3,"b":[1,[2,{"c":null}]],"success":true}`,
		`[]`, `null`, `"x"`, `{"a":1}x`, `{"a" 1}`, `{"a":1,}`, `{"a":"unterminated}`, `{"a":[1,2}`, ``,
	} {
		checkEnvelopeScan(t, []byte(s))
	}
	// Structural damage at the top level is not an object.
	for _, s := range []string{`{"a":1}x`, `{"a" 1}`, `{"a":"x`, `{"a":[1,2`, `{`, `{"a":1 "b":2}`} {
		if _, ok := envelopeFields([]byte(s)); ok {
			t.Errorf("%q read as an object", s)
		}
	}
}

func FuzzEnvelopeFields(f *testing.F) {
	for _, b := range sampleBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"error":true,"error_message":"image locked by diffid: 1","x":{"y":["\"",{}]}}`))
	f.Fuzz(checkEnvelopeScan)
}

// FuzzScalarFastPaths: the allocation-free paths of the scalar decoders
// agree with encoding/json wherever it accepts the input.
func FuzzScalarFastPaths(f *testing.F) {
	for _, s := range []string{`"Pending"`, `"a\"b"`, `"\u00e9"`, "\"\xff\"", "\"a\x01\"", `"`, `""`, `"12"`, `-7`, `123456789012345678901`, `"-"`, `1e3`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want string
		if json.Unmarshal(b, &want) == nil {
			got, err := unquote(b)
			if err != nil || got != want {
				t.Fatalf("unquote(%q) = %q, %v; encoding/json says %q", b, got, err, want)
			}
		} else if bytes.HasPrefix(b, []byte(`"`)) {
			if got, err := unquote(b); err == nil {
				t.Fatalf("unquote(%q) = %q, but it is not a JSON string", b, got)
			}
		}
		if v, ok := parseDigits(b); ok {
			if w, err := strconv.ParseInt(string(b), 10, 64); err != nil || w != v {
				t.Fatalf("parseDigits(%q) = %d; ParseInt says %d, %v", b, v, w, err)
			}
		}
	})
}

// TestDecodeInstallsShapes: the one-pass install decoding keeps every shape
// the two-pass one took.
func TestDecodeInstallsShapes(t *testing.T) {
	tests := []struct {
		body     string
		ids      []int64
		wantFail bool
	}{
		{`{"installs":[{"jobid":1},{"jobid":"2","jobstatename":"Queued","jobstateid":"3"}]}`, []int64{1, 2}, false},
		{`{"installs":{"10":{"jobid":3},"9":{"jobid":2}}}`, []int64{2, 3}, false},
		{`{"installs":[]}`, []int64{}, false},
		{`{"installs":null}`, []int64{}, false},
		{`{}`, []int64{}, false},
		{`{"installs":[{"jobid":{}}]}`, nil, true},
		{`{"installs":7}`, nil, true},
		{`{"installs":[{"jobid":1}`, nil, true},
	}
	for _, tt := range tests {
		ins, err := decodeInstalls([]byte(tt.body))
		if (err != nil) != tt.wantFail {
			t.Errorf("%s: err = %v", tt.body, err)
			continue
		}
		if err != nil {
			continue
		}
		ids := []int64{}
		for _, in := range ins {
			ids = append(ids, in.ID)
		}
		if ins == nil || !reflect.DeepEqual(ids, tt.ids) {
			t.Errorf("%s: ids %v (nil %v), want %v", tt.body, ids, ins == nil, tt.ids)
		}
	}
	// The benchmark's list decodes field by field like the doc sample.
	ins, err := decodeInstalls(installList(3))
	if err != nil || len(ins) != 3 {
		t.Fatal(err)
	}
	want := Install{Job: Job{ID: 660002, Created: time.Unix(1717404421, 0), Start: time.Unix(1717404430, 0), Updated: time.Unix(1717404490, 0),
		ETA: time.Unix(1717404600, 0), Progress: 2, State: StateRunning, StateName: "Running"},
		Machine: 812347, Location: 31, ImagePath: "/home/cf/5531", TargetVersionID: 48811, InstallAt: time.Unix(1717404421, 0)}
	if !reflect.DeepEqual(ins[2], want) {
		t.Errorf("got  %+v\nwant %+v", ins[2], want)
	}
}
