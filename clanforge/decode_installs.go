package clanforge

import (
	"bytes"
	"encoding/json"
	"strings"
)

// The install list is the one answer that grows with the fleet, and a large
// rollout reads it hundreds of times (issue 12: at 10,000 machines,
// encoding/json's reflection and its separate validation pass were most of
// the client's time). decodeInstallsFast reads the list in one walk that
// hands each value to the very UnmarshalJSON method encoding/json would
// call for it, so every value means exactly what it means on the general
// path. Whatever the walk is not sure to read exactly as encoding/json
// would (a key that differs from a field's only in case, an object or list
// where a scalar belongs, malformed JSON, a list PHP wrote as an object) it
// leaves to the general path, which then decides, errors included.

// installField returns the field of r that an exact key fills, or nil.
func installField(r *rawInstall, key []byte) json.Unmarshaler {
	switch string(key) {
	case "jobid":
		return &r.JobID
	case "jobcreated":
		return &r.JobCreated
	case "jobupdated":
		return &r.JobUpdated
	case "jobstart":
		return &r.JobStart
	case "jobeta":
		return &r.JobETA
	case "jobprogress":
		return &r.JobProgress
	case "jobstateid":
		return &r.JobStateID
	case "jobstatename":
		return &r.JobStateName
	case "jobfailed":
		return &r.JobFailed
	case "joberror":
		return &r.JobError
	case "mirroring":
		return &r.Mirroring
	case "mirror":
		return &r.Mirror
	case "machine":
		return &r.Machine
	case "location":
		return &r.Location
	case "imagepath":
		return &r.ImagePath
	case "install_at":
		return &r.InstallAt
	case "target_imageversionid":
		return &r.TargetImageVersion
	case "restart":
		return &r.Restart
	case "updateid":
		return &r.UpdateID
	case "diffid":
		return &r.DiffID
	case "imageversionid":
		return &r.ImageVersionID
	case "uninstalljobid":
		return &r.UninstallJobID
	case "versionmirrorid":
		return &r.VersionMirrorID
	case "machinejobid":
		return &r.MachineJobID
	case "jobcreate":
		return &r.JobCreate
	}
	return nil
}

// installKeys are the keys installField knows, for the case-insensitive
// match encoding/json also makes.
var installKeys = []string{"jobid", "jobcreated", "jobupdated", "jobstart", "jobeta", "jobprogress", "jobstateid",
	"jobstatename", "jobfailed", "joberror", "mirroring", "mirror", "machine", "location", "imagepath", "install_at",
	"target_imageversionid", "restart", "updateid", "diffid", "imageversionid", "uninstalljobid", "versionmirrorid",
	"machinejobid", "jobcreate"}

// foldsToAny reports whether key matches one of keys case-insensitively:
// encoding/json would fill that field from it.
func foldsToAny(key []byte, keys []string) bool {
	for _, k := range keys {
		if len(k) == len(key) && strings.EqualFold(k, string(key)) {
			return true
		}
	}
	return false
}

// decodeInstallsFast reads body as decodeInstalls would; ok is false when it
// leaves the body to the general path.
func decodeInstallsFast(body []byte) (out []Install, ok bool) {
	w := walker{b: body}
	if !w.open('{') {
		return nil, false
	}
	found := false
	for first := true; ; first = false {
		if w.close('}') {
			break
		}
		if !first && !w.comma() {
			return nil, false
		}
		key, ok := w.key()
		if !ok {
			return nil, false
		}
		if string(key) != "installs" {
			if foldsToAny(key, []string{"installs"}) || !w.skip() {
				return nil, false
			}
			continue
		}
		// A second "installs" would replace the first: leave that to
		// the general path.
		if found {
			return nil, false
		}
		found = true
		if out, ok = w.installs(out); !ok {
			return nil, false
		}
	}
	if w.rest() {
		return nil, false
	}
	if out == nil {
		out = []Install{}
	}
	return out, true
}

// walker is a strict reader of one JSON document: it accepts only what
// encoding/json accepts, and says so by returning false otherwise. A
// trailing comma is refused where the next key or value is expected.
type walker struct {
	b []byte
	i int
}

func (w *walker) space() { w.i = skipSpace(w.b, w.i) }

func (w *walker) open(c byte) bool {
	w.space()
	if w.i < len(w.b) && w.b[w.i] == c {
		w.i++
		return true
	}
	return false
}

func (w *walker) close(c byte) bool {
	w.space()
	if w.i < len(w.b) && w.b[w.i] == c {
		w.i++
		return true
	}
	return false
}

func (w *walker) comma() bool {
	w.space()
	if w.i < len(w.b) && w.b[w.i] == ',' {
		w.i++
		return true
	}
	return false
}

// rest reports whether anything but white space follows the document.
func (w *walker) rest() bool {
	w.space()
	return w.i != len(w.b)
}

// key reads an object key and its colon. A key with escapes is left to the
// general path.
func (w *walker) key() ([]byte, bool) {
	w.space()
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return nil, false
	}
	end := skipString(w.b, w.i)
	if end < 0 {
		return nil, false
	}
	key := w.b[w.i+1 : end-1]
	for _, c := range key {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	w.i = end
	w.space()
	if w.i >= len(w.b) || w.b[w.i] != ':' {
		return nil, false
	}
	w.i++
	w.space()
	return key, true
}

// scalar returns the next value when it is a string, number, true, false
// or null that encoding/json accepts; ok is false for anything else.
func (w *walker) scalar() ([]byte, bool) {
	w.space()
	if w.i >= len(w.b) {
		return nil, false
	}
	start := w.i
	switch c := w.b[w.i]; {
	case c == '"':
		end := skipString(w.b, w.i)
		if end < 0 || !validString(w.b[w.i:end]) {
			return nil, false
		}
		w.i = end
	case c == '-' || (c >= '0' && c <= '9'):
		end := numberEnd(w.b, w.i)
		if end < 0 {
			return nil, false
		}
		w.i = end
	default:
		for _, lit := range [...]string{"null", "true", "false"} {
			if bytes.HasPrefix(w.b[w.i:], []byte(lit)) {
				w.i += len(lit)
				if w.i < len(w.b) && !isDelim(w.b[w.i]) {
					return nil, false
				}
				return w.b[start:w.i], true
			}
		}
		return nil, false
	}
	return w.b[start:w.i], true
}

// skip passes over any valid value; nested ones are checked by
// encoding/json (they are rare here).
func (w *walker) skip() bool {
	w.space()
	if w.i < len(w.b) && (w.b[w.i] == '{' || w.b[w.i] == '[') {
		end := skipValue(w.b, w.i)
		if end < 0 || !json.Valid(w.b[w.i:end]) {
			return false
		}
		w.i = end
		return true
	}
	_, ok := w.scalar()
	return ok
}

// installs reads the list into out.
func (w *walker) installs(out []Install) ([]Install, bool) {
	w.space()
	if !w.open('[') {
		// null, or a PHP list written as an object: the general path.
		return nil, false
	}
	// Sized for entries of the documented shape (some 350 bytes each);
	// append grows it if they are smaller.
	out = make([]Install, 0, len(w.b)/350+1)
	// One entry is decoded at a time, into the same place.
	r := new(rawInstall)
	for first := true; ; first = false {
		if w.close(']') {
			return out, true
		}
		if !first && !w.comma() {
			return nil, false
		}
		*r = rawInstall{}
		if !w.install(r) {
			return nil, false
		}
		out = append(out, r.install())
	}
}

// install reads one entry into r.
func (w *walker) install(r *rawInstall) bool {
	if !w.open('{') {
		return false
	}
	for first := true; ; first = false {
		if w.close('}') {
			return true
		}
		if !first && !w.comma() {
			return false
		}
		key, ok := w.key()
		if !ok {
			return false
		}
		f := installField(r, key)
		if f == nil {
			if foldsToAny(key, installKeys) || !w.skip() {
				return false
			}
			continue
		}
		v, ok := w.scalar()
		if !ok || f.UnmarshalJSON(v) != nil {
			return false
		}
	}
}

// install converts a decoded entry.
func (r *rawInstall) install() Install {
	id, _ := r.id(idInstall)
	return Install{
		Job:             r.job(id),
		Mirroring:       r.Mirroring.V,
		Mirror:          string(r.Mirror),
		Machine:         r.Machine.ID,
		MachineName:     r.Machine.Name,
		Location:        r.Location.ID,
		LocationName:    r.Location.Name,
		ImagePath:       string(r.ImagePath),
		TargetVersionID: r.TargetImageVersion.V,
		InstallAt:       r.InstallAt.Time(),
		Restart:         r.Restart.V,
	}
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// numberEnd returns the end of the JSON number at b[i] (-?(0|[1-9]d*)
// (.d+)?([eE][+-]?d+)?) when it is followed by a delimiter or the end, or
// -1.
func numberEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && !isDelim(b[i]) {
		return -1
	}
	return i
}

// validString reports whether the string literal s (quotes included) is
// one encoding/json accepts: no control bytes, only valid escapes. Invalid
// UTF-8 is accepted, as encoding/json accepts it.
func validString(s []byte) bool {
	for j := 1; j < len(s)-1; j++ {
		switch c := s[j]; {
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s)-1 {
				return false
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 > len(s)-2 {
					return false
				}
				for _, h := range s[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return true
}
