package clanforge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds the lenient decoding of the API's loosely typed answers.
// The documentation types the same kind of value differently from one table to
// the next (jobstart is a string, the other timestamps are integers, machine
// is "id or name", restart is "bool/int"), so every scalar the client reads
// goes through a type that accepts each spelling seen or plausible and
// rejects only values that cannot mean anything (an object where a number
// belongs). None of these decoders may panic: FuzzDecodeResponses checks it.

// flexInt accepts a JSON number (integer or float, truncated), a string
// holding one, a bool (true=1), "" or null (both 0).
type flexInt struct {
	V     int64
	Valid bool // false when the value was null, "" or absent
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	*f = flexInt{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	switch b[0] {
	case 't':
		if string(b) == "true" {
			*f = flexInt{V: 1, Valid: true}
			return nil
		}
	case 'f':
		if string(b) == "false" {
			*f = flexInt{V: 0, Valid: true}
			return nil
		}
	case '"':
		if len(b) >= 2 && b[len(b)-1] == '"' {
			if v, ok := parseDigits(b[1 : len(b)-1]); ok {
				// The common "1717404430" (jobstart), without a copy.
				*f = flexInt{V: v, Valid: true}
				return nil
			}
		}
		s, err := unquote(b)
		if err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" || strings.EqualFold(s, "null") {
			return nil
		}
		v, err := parseNumber(s)
		if err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		*f = flexInt{V: v, Valid: true}
		return nil
	default:
		if v, ok := parseDigits(b); ok {
			*f = flexInt{V: v, Valid: true}
			return nil
		}
		v, err := parseNumber(string(b))
		if err != nil {
			return fmt.Errorf("not a number: %.40s", b)
		}
		*f = flexInt{V: v, Valid: true}
		return nil
	}
	return fmt.Errorf("not a number: %.40s", b)
}

// parseDigits parses a plain decimal integer (an optional '-' and 1 to 18
// digits, which cannot overflow) without allocating: nearly every number
// the API sends. ok is false for anything else, which parseNumber handles.
func parseDigits(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// stateNames maps each documented jobstatename to itself (API §3.2).
var stateNames = func() map[string]string {
	m := map[string]string{"Complete": "Complete"}
	for st := StateCreated; st <= StateSquashed; st++ {
		m[st.String()] = st.String()
	}
	return m
}()

// unquote returns the value of the JSON string literal b. A literal without
// escapes, quotes or control bytes is valid UTF-8 text as it stands and is
// taken without a second parse (the decoder that handed b to an
// UnmarshalJSON method has parsed it once already); anything else goes
// through encoding/json.
func unquote(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		in := b[1 : len(b)-1]
		plain := true
		for _, c := range in {
			if c == '\\' || c == '"' || c < 0x20 {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(in) {
			if name, ok := stateNames[string(in)]; ok {
				// A documented state name, in every job of a long
				// install list: shared instead of allocated each time.
				return name, nil
			}
			return string(in), nil
		}
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// parseNumber parses an integer, falling back to a float that is truncated.
// Non-finite and out-of-range floats are refused rather than wrapped.
func parseNumber(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	fv, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(fv) || math.IsInf(fv, 0) || fv > math.MaxInt64 || fv < math.MinInt64 {
		return 0, errors.New("number out of range")
	}
	return int64(fv), nil
}

// flexTime is a Unix timestamp in seconds given as a number, a numeric string
// or null (API §7 #5). Zero and null both mean "unset".
type flexTime struct{ flexInt }

func (t flexTime) Time() time.Time {
	if !t.Valid || t.V <= 0 {
		return time.Time{}
	}
	return time.Unix(t.V, 0)
}

// flexBool accepts true/false, 0/1 (any non-zero number is true), the strings
// "true"/"false"/"1"/"0"/"yes"/"no", "" and null (false).
type flexBool struct {
	V     bool
	Valid bool
}

func (f *flexBool) UnmarshalJSON(b []byte) error {
	*f = flexBool{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	switch {
	case string(b) == "true":
		*f = flexBool{V: true, Valid: true}
		return nil
	case string(b) == "false":
		*f = flexBool{V: false, Valid: true}
		return nil
	case b[0] == '"':
		s, err := unquote(b)
		if err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "":
			return nil
		case "true", "yes", "1":
			*f = flexBool{V: true, Valid: true}
			return nil
		case "false", "no", "0":
			*f = flexBool{V: false, Valid: true}
			return nil
		}
		return fmt.Errorf("not a boolean: %q", s)
	}
	var n flexInt
	if err := n.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("not a boolean: %.40s", b)
	}
	*f = flexBool{V: n.V != 0, Valid: true}
	return nil
}

// flexString accepts a string, a number (kept as written) or null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	*f = ""
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		s, err := unquote(b)
		if err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "true" || string(b) == "false" {
		*f = flexString(b)
		return nil
	}
	if _, err := strconv.ParseFloat(string(b), 64); err == nil {
		*f = flexString(b)
		return nil
	}
	return fmt.Errorf("not a string: %.40s", b)
}

// idOrName is a field the docs call "(id or name)": machine and location in
// imageinstall/status (API §7 #17). A number or numeric string is an id; any
// other string is a name.
type idOrName struct {
	ID   int64
	Name string
}

func (f *idOrName) UnmarshalJSON(b []byte) error {
	*f = idOrName{}
	if v, ok := parseDigits(bytes.TrimSpace(b)); ok {
		// A plain number, the documented case (API §7 #17).
		f.ID = v
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	str := strings.TrimSpace(string(s))
	if str == "" {
		return nil
	}
	if v, err := parseNumber(str); err == nil {
		f.ID = v
		return nil
	}
	f.Name = str
	return nil
}

// fileList is one of a diff's added/modified/removed maps: an object keyed by
// path whose values are undocumented (kept raw and ignored), an empty array
// `[]` (PHP's spelling of an empty map, API §7 #6), an array of path strings,
// or null. It yields the sorted paths.
type fileList []string

func (f *fileList) UnmarshalJSON(b []byte) error {
	*f = nil
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	switch b[0] {
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		paths := make([]string, 0, len(m))
		for p := range m {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		*f = paths
		return nil
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return err
		}
		paths := make([]string, 0, len(arr))
		for _, el := range arr {
			var p string
			if err := json.Unmarshal(el, &p); err != nil {
				return fmt.Errorf("file list entry is not a path: %.40s", el)
			}
			paths = append(paths, p)
		}
		sort.Strings(paths)
		*f = paths
		return nil
	}
	return fmt.Errorf("file list is neither an object nor an array: %.40s", b)
}

// envelope is the error envelope every answer may carry (API §2.3).
type envelope struct {
	Success      flexBool   `json:"success"`
	Error        flexBool   `json:"error"`
	ErrorCode    flexInt    `json:"error_code"`
	ErrorMessage flexString `json:"error_message"`
}

// checkEnvelope inspects body for the API's error envelope and returns the
// typed error it describes, or nil. It is applied to every answer whatever
// the HTTP status because business errors arrive with 200 (API §7 #1).
// A body that is not a JSON object is not an envelope (nil, ok=false).
//
// success:false alone is not an error: API §7 #2 lets a status read of a
// Failed job say success:false; only success:false together with an
// error_message, or error:true, is the envelope.
func checkEnvelope(endpoint string, status int, body []byte) (err error, ok bool) {
	// Each field is decoded on its own: one field of an unexpected type (an
	// error_message that is an object, say) must not hide error:true.
	fields, ok := envelopeFields(body)
	if !ok {
		return nil, false
	}
	var env envelope
	_ = env.Success.UnmarshalJSON(fields["success"])
	if env.Error.UnmarshalJSON(fields["error"]) != nil {
		// An error field that is neither a boolean nor a number (an
		// object, a word) is truthy wherever it comes from, unless empty.
		t := strings.TrimSpace(string(fields["error"]))
		env.Error = flexBool{V: t != "{}" && t != "[]" && t != `""`, Valid: true}
	}
	_ = env.ErrorCode.UnmarshalJSON(fields["error_code"])
	if env.ErrorMessage.UnmarshalJSON(fields["error_message"]) != nil {
		env.ErrorMessage = flexString(bytes.TrimSpace(fields["error_message"]))
	}
	msg := strings.TrimSpace(string(env.ErrorMessage))
	if msg == "" && env.Error.V {
		// The envelope's messages array (API §2.3) is the only other
		// place a reason may be; an error field that is not a boolean
		// is a reason too.
		msg = joinMessages(fields["messages"])
		if msg == "" && !isBoolish(fields["error"]) {
			msg = strings.TrimSpace(string(fields["error"]))
		}
	}
	isErr := env.Error.V || (env.Success.Valid && !env.Success.V && msg != "")
	if !isErr {
		return nil, true
	}
	api := APIError{Endpoint: endpoint, HTTPStatus: status, Code: int(env.ErrorCode.V), Message: msg}
	if kind, id, locked := parseLock(msg); locked {
		return &LockedError{APIError: api, HolderKind: kind, HolderID: id}, true
	}
	return &api, true
}

// envelopeKeys are the top-level keys checkEnvelope reads.
var envelopeKeys = [...]string{"success", "error", "error_code", "error_message", "messages"}

// envelopeFields returns the raw values of the envelope's keys at the top
// level of body (exact key match, the last of duplicates wins, as
// encoding/json does with a map) and whether body is a JSON object.
//
// It walks the top level only and skips every other value without decoding
// or fully validating it: the answer is decoded once, by the endpoint's
// decoder, which validates it then. Decoding the whole body here (into a
// map) cost a full parse and a copy of every value per answer, the largest
// share of reading a 10,000-entry install list (issue 12). Structural
// damage (an unterminated string or bracket, a missing colon or comma,
// trailing bytes) is still caught here: the body is then not an object.
func envelopeFields(body []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	fields := map[string]json.RawMessage{}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return fields, skipSpace(body, i+1) == len(body)
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		end := skipString(body, i)
		if end < 0 {
			return nil, false
		}
		key := body[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(body[i:end], &k) != nil {
				return nil, false
			}
			key = []byte(k)
		}
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = skipSpace(body, i+1)
		vend := skipValue(body, i)
		if vend < 0 {
			return nil, false
		}
		for _, k := range envelopeKeys {
			if string(key) == k {
				fields[k] = body[i:vend]
			}
		}
		i = skipSpace(body, vend)
		if i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return fields, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"'),
// or -1 when it is not terminated.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		// The next quote, found a word at a time; it ends the string
		// unless an odd run of backslashes escapes it.
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		k := q
		for k > i+1 && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i],
// or -1 when it is cut off or does not start like a value. Nested values
// are skipped by counting brackets outside strings; literals run to the
// next delimiter.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', ':', '}', ']':
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// isBoolish reports whether raw is a JSON boolean or number.
func isBoolish(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	if t == "true" || t == "false" {
		return true
	}
	_, err := strconv.ParseFloat(t, 64)
	return err == nil
}

// joinMessages joins the strings of a messages array ("" when it is not
// one).
func joinMessages(raw json.RawMessage) string {
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) != nil {
		return ""
	}
	var parts []string
	for _, el := range arr {
		var m flexString
		if m.UnmarshalJSON(el) == nil && strings.TrimSpace(string(m)) != "" {
			parts = append(parts, strings.TrimSpace(string(m)))
		}
	}
	return strings.Join(parts, "; ")
}

// lockPrefix is matched case-insensitively (API §7 #8): the observed text is
// "image locked by diffid: N", the update-lock text is assumed to be "image
// locked by updateid: N".
const lockPrefix = "image locked by "

// parseLock reads "image locked by diffid: N" / "image locked by updateid: N".
// kind is "diff" or "update" (another holder word is passed through as is);
// id is 0 when the number is missing or unreadable.
func parseLock(msg string) (kind string, id int64, ok bool) {
	if len(msg) < len(lockPrefix) || !strings.EqualFold(msg[:len(lockPrefix)], lockPrefix) {
		return "", 0, false
	}
	rest := strings.TrimSpace(msg[len(lockPrefix):])
	word := rest
	if i := strings.IndexAny(rest, ": \t"); i >= 0 {
		word, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	switch strings.ToLower(word) {
	case "diffid", "diff":
		kind = "diff"
	case "updateid", "update":
		kind = "update"
	default:
		kind = strings.ToLower(word)
	}
	rest = strings.TrimLeft(rest, ": \t")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end > 0 {
		if v, err := strconv.ParseInt(rest[:end], 10, 64); err == nil {
			id = v
		}
	}
	return kind, id, true
}

// rawJob holds the job fields (API §3.1) plus every id field a job answer may
// carry; each endpoint picks its own id.
type rawJob struct {
	UpdateID        flexInt    `json:"updateid"`
	DiffID          flexInt    `json:"diffid"`
	ImageVersionID  flexInt    `json:"imageversionid"`
	UninstallJobID  flexInt    `json:"uninstalljobid"`
	JobID           flexInt    `json:"jobid"`
	VersionMirrorID flexInt    `json:"versionmirrorid"`
	MachineJobID    flexInt    `json:"machinejobid"`
	JobCreated      flexTime   `json:"jobcreated"`
	JobCreate       flexTime   `json:"jobcreate"` // one docs page's spelling
	JobStart        flexTime   `json:"jobstart"`
	JobUpdated      flexTime   `json:"jobupdated"`
	JobETA          flexTime   `json:"jobeta"`
	JobProgress     flexInt    `json:"jobprogress"`
	JobStateID      flexInt    `json:"jobstateid"`
	JobStateName    flexString `json:"jobstatename"`
	JobFailed       flexInt    `json:"jobfailed"`
	JobError        flexString `json:"joberror"`
}

func (r *rawJob) job(id int64) Job {
	created := r.JobCreated.Time()
	if created.IsZero() {
		created = r.JobCreate.Time()
	}
	state := JobState(r.JobStateID.V)
	name := string(r.JobStateName)
	if !r.JobStateID.Valid {
		// jobstateid is optional in the docs (API §3.1); fall back on the
		// documented names so that a job without it is still classified.
		state = stateFromName(name)
	}
	if state < StateUnknown || state > StateSquashed {
		state = StateUnknown
	}
	if name == "" {
		name = state.String()
	}
	progress := r.JobProgress.V
	if progress < 0 {
		progress = 0
	} else if progress > 100 {
		progress = 100
	}
	return Job{
		ID:        id,
		Created:   created,
		Start:     r.JobStart.Time(),
		Updated:   r.JobUpdated.Time(),
		ETA:       r.JobETA.Time(),
		Progress:  int(progress),
		State:     state,
		StateName: name,
		// API §7 #4: jobfailed is read as a count (a 0/1 flag reads the
		// same); the outcome comes from jobstateid, not from it.
		Failed: clampInt(r.JobFailed.V),
		Error:  string(r.JobError),
	}
}

func stateFromName(name string) JobState {
	for s := StateCreated; s <= StateSquashed; s++ {
		if strings.EqualFold(name, s.String()) {
			return s
		}
	}
	// API §7 #3: state 5 may be spelled "Complete".
	if strings.EqualFold(name, "Complete") {
		return StateCompleted
	}
	return StateUnknown
}

func clampInt(v int64) int {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	if v < math.MinInt32 {
		return math.MinInt32
	}
	return int(v)
}

// jobIDField names the id field of each job-returning endpoint kind.
type jobIDField int

const (
	idUpdate jobIDField = iota
	idDiff
	idVersion
	idUninstall
	idInstall
)

func (r *rawJob) id(f jobIDField) (int64, bool) {
	var v flexInt
	switch f {
	case idUpdate:
		v = r.UpdateID
	case idDiff:
		v = r.DiffID
	case idVersion:
		v = r.ImageVersionID
	case idUninstall:
		v = r.UninstallJobID
	case idInstall:
		v = r.JobID
	}
	return v.V, v.Valid
}

// decodeJob decodes a job answer and takes its id from field; when the
// answer lacks the id (the update status table omits updateid, for one),
// fallback is used.
func decodeJob(body []byte, field jobIDField, fallback int64) (*Job, error) {
	var r rawJob
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	id, ok := r.id(field)
	if !ok || id == 0 {
		id = fallback
	}
	j := r.job(id)
	return &j, nil
}

func decodeDiff(body []byte, fallback int64) (*Diff, error) {
	var r struct {
		rawJob
		Added    fileList `json:"added"`
		Modified fileList `json:"modified"`
		Removed  fileList `json:"removed"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	id, ok := r.id(idDiff)
	if !ok || id == 0 {
		id = fallback
	}
	return &Diff{Job: r.job(id), Added: r.Added, Modified: r.Modified, Removed: r.Removed}, nil
}

type rawInstall struct {
	rawJob
	Mirroring          flexBool   `json:"mirroring"`
	Mirror             flexString `json:"mirror"`
	Machine            idOrName   `json:"machine"`
	Location           idOrName   `json:"location"`
	ImagePath          flexString `json:"imagepath"`
	TargetImageVersion flexInt    `json:"target_imageversionid"`
	InstallAt          flexTime   `json:"install_at"`
	Restart            flexBool   `json:"restart"`
}

// decodeInstalls decodes imageinstall/status in one pass: the list goes
// straight into its items, and each item becomes an Install. (It used to
// keep the list raw first and decode it a second time, one of the costs
// issue 12 measured at 10,000 machines.) decodeInstallsFast reads every
// ordinary answer without encoding/json's reflection; what it leaves
// comes here. Only a list PHP wrote as an object keyed by index takes a
// second, slower pass. One odd entry fails the whole read rather than
// being silently dropped.
func decodeInstalls(body []byte) ([]Install, error) {
	if out, ok := decodeInstallsFast(body); ok {
		return out, nil
	}
	return decodeInstallsGeneral(body)
}

// decodeInstallsGeneral is decodeInstalls through encoding/json.
func decodeInstallsGeneral(body []byte) ([]Install, error) {
	var r struct {
		Installs []rawInstall `json:"installs"`
	}
	// encoding/json appends into the capacity it finds, so sizing the
	// slice from a count of "jobid" keys (every entry has one) spares the
	// repeated growth and copying of a large list. The bound keeps a body
	// made of nothing but "jobid" from reserving much: a real entry takes
	// some 300 bytes.
	if n := bytes.Count(body, []byte(`"jobid"`)); n > 0 {
		r.Installs = make([]rawInstall, 0, min(n, len(body)/128+1))
	}
	err := json.Unmarshal(body, &r)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field == "installs" && te.Value == "object" {
		// A PHP list with non-sequential keys serialises as an object.
		var o struct {
			Installs json.RawMessage `json:"installs"`
		}
		if err := json.Unmarshal(body, &o); err != nil {
			return nil, err
		}
		r.Installs = nil
		if err := decodeList(o.Installs, &r.Installs); err != nil {
			return nil, fmt.Errorf("installs: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("installs: %w", err)
	}
	out := make([]Install, len(r.Installs))
	for i := range r.Installs {
		out[i] = r.Installs[i].install()
	}
	return out, nil
}

func decodeQueue(body []byte, jobID int64) (*QueueResult, error) {
	var r struct {
		rawJob
		// API §7 #15: an integer count of the installs this queue call
		// squashed; read leniently in case it comes as a string.
		InstallsSquashed flexInt `json:"installs_squashed"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	id := jobID
	if r.MachineJobID.Valid && r.MachineJobID.V != 0 {
		id = r.MachineJobID.V
	} else if r.VersionMirrorID.Valid && r.VersionMirrorID.V != 0 {
		id = r.VersionMirrorID.V
	}
	return &QueueResult{
		Job:              r.job(id),
		VersionMirrorID:  r.VersionMirrorID.V,
		MachineJobID:     r.MachineJobID.V,
		InstallsSquashed: clampInt(r.InstallsSquashed.V),
	}, nil
}

func decodeReject(body []byte, diffID int64) (*RejectResult, error) {
	var r rawJob
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	res := &RejectResult{DiffID: diffID}
	if r.DiffID.Valid && r.DiffID.V != 0 {
		res.DiffID = r.DiffID.V
	}
	if id, ok := r.id(idUninstall); ok && id != 0 {
		j := r.job(id)
		res.Uninstall = &j
	}
	return res, nil
}

type rawCounters struct {
	Pending   flexInt `json:"pending_machines"`
	Failed    flexInt `json:"failed_machines"`
	Completed flexInt `json:"completed_machines"`
}

func (r rawCounters) counters() Counters {
	return Counters{Pending: clampInt(r.Pending.V), Failed: clampInt(r.Failed.V), Completed: clampInt(r.Completed.V)}
}

// rawMap decodes an object keyed by id, accepting `[]` and null as empty
// (PHP's empty array), like fileList.
type rawMap map[string]json.RawMessage

func (m *rawMap) UnmarshalJSON(b []byte) error {
	*m = nil
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return err
		}
		if len(arr) != 0 {
			return errors.New("expected an object keyed by id, got a non-empty array")
		}
		return nil
	}
	var mm map[string]json.RawMessage
	if err := json.Unmarshal(b, &mm); err != nil {
		return err
	}
	*m = mm
	return nil
}

func decodeImageStatus(body []byte) (*ImageStatus, error) {
	var r struct {
		rawCounters
		Fleets rawMap `json:"fleets"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	st := &ImageStatus{Counters: r.counters()}
	if len(r.Fleets) > 0 {
		st.Fleets = make(map[string]FleetStatus, len(r.Fleets))
	}
	for fid, raw := range r.Fleets {
		var f struct {
			rawCounters
			Regions rawMap `json:"regions"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("fleet %q: %w", fid, err)
		}
		fs := FleetStatus{Counters: f.counters()}
		if len(f.Regions) > 0 {
			fs.Regions = make(map[string]RegionStatus, len(f.Regions))
		}
		for rid, rraw := range f.Regions {
			var rg struct {
				rawCounters
				Name flexString `json:"name"`
			}
			if err := json.Unmarshal(rraw, &rg); err != nil {
				return nil, fmt.Errorf("fleet %q region %q: %w", fid, rid, err)
			}
			fs.Regions[rid] = RegionStatus{Name: string(rg.Name), Counters: rg.counters()}
		}
		st.Fleets[fid] = fs
	}
	return st, nil
}

func decodeImageOptions(body []byte) (*ImageOptions, error) {
	type named struct {
		GameID    flexInt    `json:"gameid"`
		ImageID   flexInt    `json:"imageid"`
		MachineID flexInt    `json:"machineid"`
		Name      flexString `json:"name"`
	}
	var r struct {
		DiffID    flexInt         `json:"diffid"`
		UpdateID  flexInt         `json:"updateid"`
		UpdateURL flexString      `json:"update_url"`
		Games     json.RawMessage `json:"games"`
		Images    json.RawMessage `json:"images"`
		Machines  json.RawMessage `json:"machines"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var games, images, machines []named
	for _, l := range []struct {
		name string
		raw  json.RawMessage
		out  *[]named
	}{{"games", r.Games, &games}, {"images", r.Images, &images}, {"machines", r.Machines, &machines}} {
		if err := decodeList(l.raw, l.out); err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	conv := func(in []named, pick func(named) int64) []NamedID {
		if len(in) == 0 {
			return nil
		}
		out := make([]NamedID, 0, len(in))
		for _, n := range in {
			out = append(out, NamedID{ID: pick(n), Name: string(n.Name)})
		}
		return out
	}
	return &ImageOptions{
		DiffID:    r.DiffID.V,
		UpdateID:  r.UpdateID.V,
		UpdateURL: string(r.UpdateURL),
		Games:     conv(games, func(n named) int64 { return n.GameID.V }),
		Images:    conv(images, func(n named) int64 { return n.ImageID.V }),
		Machines:  conv(machines, func(n named) int64 { return n.MachineID.V }),
	}, nil
}

// decodeList decodes a JSON list into out, also accepting null and an object
// keyed by index (PHP's spelling of a list whose keys are not sequential),
// taken in key order.
func decodeList[T any](raw json.RawMessage, out *[]T) error {
	raw = bytes.TrimSpace(raw)
	*out = nil
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return json.Unmarshal(raw, out)
	}
	var m map[string]T
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		ka, ea := strconv.ParseInt(keys[a], 10, 64)
		kb, eb := strconv.ParseInt(keys[b], 10, 64)
		if ea == nil && eb == nil {
			return ka < kb
		}
		return keys[a] < keys[b]
	})
	for _, k := range keys {
		*out = append(*out, m[k])
	}
	return nil
}

// flexDeadline is the switch's Deadline: RFC 3339 (the documented form), a
// Unix time as a number or numeric string, "" or null.
type flexDeadline struct{ t time.Time }

func (f *flexDeadline) UnmarshalJSON(b []byte) error {
	*f = flexDeadline{}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	str := strings.TrimSpace(string(s))
	if str == "" {
		return nil
	}
	if t, err := time.Parse(time.RFC3339, str); err == nil {
		f.t = t
		return nil
	}
	if v, err := parseNumber(str); err == nil {
		if v > 0 {
			f.t = time.Unix(v, 0)
		}
		return nil
	}
	return fmt.Errorf("not a time: %q", truncate(str, 40))
}

// decodeSwitch decodes the profile switch answer (API §4.15). Field names
// are matched case-insensitively by encoding/json; the state is
// lower-cased, and "not_requested" read as "not requested".
func decodeSwitch(body []byte) (*ProfileSwitch, error) {
	var r struct {
		ServersPending   flexInt      `json:"ServersPending"`
		ServersProcessed flexInt      `json:"ServersProcessed"`
		ProfileID        flexInt      `json:"ProfileID"`
		State            flexString   `json:"State"`
		Deadline         flexDeadline `json:"Deadline"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	state := strings.ToLower(strings.TrimSpace(string(r.State)))
	state = strings.ReplaceAll(state, "_", " ")
	return &ProfileSwitch{
		ServersPending:   clampInt(r.ServersPending.V),
		ServersProcessed: clampInt(r.ServersProcessed.V),
		ProfileID:        r.ProfileID.V,
		State:            SwitchState(state),
		Deadline:         r.Deadline.t,
	}, nil
}
