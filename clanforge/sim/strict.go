package sim

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file holds strict mode (Scenario.Strict). The lenient simulator
// tolerates what real clients are seen to send (API §6.1); strict mode
// refuses every request that a strict reading of the API reference would
// refuse, so that a client tested against it is safe against any faithful
// implementation of the documented API, however unforgiving. Each refusal is
// logged with Request.Strict set, and StrictRefusals lists them, so a test
// can assert that a whole rollout sent nothing a strict server would refuse.

// pkind is how a parameter's value must be spelled.
type pkind int

const (
	pID        pkind = iota // a positive decimal integer, no sign, no leading zero
	pBit                    // 1 or 0 (the v1 boolean spelling, API §4)
	pTrueFalse              // true or false (mirroring and detail, API §4.11, §4.12)
	pText                   // free text (literal outer quotes allowed, API §5.2)
	pURL                    // a build source URL (API §4.1.1)
	pInstallAt              // NOW() or a unix timestamp (API §4.8)
	pMinutes                // a non-negative integer (disable_timeout)
	pPercent                // a decimal 0.00-100.00 (disable_percentage)
)

// epSpec is the documented parameter table of one endpoint.
type epSpec struct {
	params   map[string]pkind
	required []string
	// together lists groups whose members must all be given or none.
	together [][]string
}

const asidParam = "accountserviceid"

// specs are the parameter tables of API §4. The id an endpoint takes in its
// path is listed too: it may also come as the same-named query parameter
// (API §2.1). The legacy update retry is only served with update_retry, and
// then takes what the status call takes.
var specs = map[string]epSpec{
	EPUpdateCreate: {
		params:   map[string]pkind{asidParam: pID, "imageid": pID, "machineid": pID, "desc": pText, "url": pURL},
		required: []string{asidParam, "imageid", "machineid", "desc"},
	},
	EPUpdateStatus: {params: map[string]pkind{asidParam: pID, "updateid": pID}, required: []string{asidParam, "updateid"}},
	EPUpdateRetry:  {params: map[string]pkind{asidParam: pID, "updateid": pID}, required: []string{asidParam, "updateid"}},
	EPDiffCreate: {
		params:   map[string]pkind{asidParam: pID, "imageid": pID, "machineid": pID, "diffid": pID},
		required: []string{asidParam, "imageid", "machineid"},
	},
	EPDiffStatus: {params: map[string]pkind{asidParam: pID, "diffid": pID, "diff_info": pBit}, required: []string{asidParam, "diffid"}},
	EPDiffRetry:  {params: map[string]pkind{asidParam: pID, "diffid": pID}, required: []string{asidParam, "diffid"}},
	EPDiffReject: {
		params:   map[string]pkind{asidParam: pID, "diffid": pID, "reinstall": pBit},
		required: []string{asidParam, "diffid", "reinstall"},
	},
	EPVersionCreate: {
		params: map[string]pkind{
			asidParam: pID, "diffid": pID, "restart": pBit, "full": pBit, "game_build": pText, "force": pBit,
			"install_at": pInstallAt, "disable_timeout": pMinutes, "disable_percentage": pPercent,
		},
		// restart is marked required; only the lenient mode reads a
		// missing one as 0 (API §7 #12).
		required: []string{asidParam, "diffid", "restart"},
		// Each is documented as used with the other (API §4.8).
		together: [][]string{{"disable_timeout", "disable_percentage"}},
	},
	EPVersionStatus: {params: map[string]pkind{asidParam: pID, "imageversionid": pID}, required: []string{asidParam, "imageversionid"}},
	EPInstallStatus: {params: map[string]pkind{asidParam: pID}, required: []string{asidParam}},
	EPInstallQueue: {
		params:   map[string]pkind{asidParam: pID, "jobid": pID, "mirroring": pTrueFalse},
		required: []string{asidParam, "jobid", "mirroring"},
	},
	EPImageOptions: {
		params:   map[string]pkind{asidParam: pID, "gameid": pID, "imageid": pID, "gameversion_identifier": pText},
		required: []string{asidParam},
		// "gameid and imageid must be given together" (API §4.13).
		together: [][]string{{"gameid", "imageid"}},
	},
	// The ASID and the image are path segments here (API §4.12); as
	// same-named query parameters they must repeat the path's values.
	EPImageStatusV2: {
		params:   map[string]pkind{asidParam: pID, "imageid": pID, "detail": pTrueFalse},
		required: []string{asidParam, "imageid"},
	},
}

var (
	reID      = regexp.MustCompile(`^[1-9][0-9]*$`)
	reUint    = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	rePercent = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,2})?$`)
)

// pathParams are the parameters a route carries in its path.
func (rt route) pathParams() map[string]string {
	out := map[string]string{}
	if rt.endpoint == EPImageStatusV2 {
		out[asidParam] = rt.v2ASID
		out["imageid"] = rt.v2Image
	} else if rt.pathID != "" && rt.idName != "" {
		out[rt.idName] = rt.pathID
	}
	return out
}

// strictCheck returns why a strict server would refuse req ("" when it
// would not) and the HTTP status of the refusal.
func (s *Server) strictCheck(rt route, req *http.Request, rc *reqCtx) (why string, status int) {
	if rt.endpoint == EPUnknown {
		return "unknown endpoint " + req.URL.Path, http.StatusNotFound
	}
	if req.Method != rt.method {
		if rt.fleetID != "" {
			return "method " + req.Method + " not allowed: switchprofile takes PATCH (start a switch) or GET (its status)", http.StatusMethodNotAllowed
		}
		return "method " + req.Method + " not allowed: every image endpoint is a GET", http.StatusMethodNotAllowed
	}
	if want := canonicalPath(req.URL.Path); want != req.URL.Path {
		return fmt.Sprintf("path %q is not in its documented form %q", req.URL.Path, want), http.StatusNotFound
	}
	if rt.fleetID != "" {
		return s.strictSwitch(rt, req, rc)
	}
	if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
		return "the request carries a body: every input goes in the query string", http.StatusBadRequest
	}
	if ct := req.Header.Get("Content-Type"); ct == "" {
		return "Content-Type missing: the docs ask for application/x-www-form-urlencoded", http.StatusBadRequest
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return fmt.Sprintf("Content-Type %q: the docs ask for application/x-www-form-urlencoded", ct), http.StatusBadRequest
	}
	q, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return "malformed query string: " + err.Error(), http.StatusBadRequest
	}
	if why := checkParams(specs[rt.endpoint], rt.pathParams(), q); why != "" {
		return why, http.StatusBadRequest
	}
	return "", 0
}

// strictSwitch judges the profile switch calls (API §4.15). They document
// no query parameter (the fleet id is in the path and there is no ASID), so
// any is refused. The GET has no body and no documented Content-Type, so
// its Content-Type is not judged. The PATCH must say application/json and
// carry exactly the documented object: ProfileID (required, a positive JSON
// integer naming a profile the account has), Timeout (a Go duration string
// greater than zero) and MaxMachines (a JSON integer greater than zero),
// each at most once, nothing else.
func (s *Server) strictSwitch(rt route, req *http.Request, rc *reqCtx) (string, int) {
	if req.URL.RawQuery != "" {
		q, _ := url.ParseQuery(req.URL.RawQuery)
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		sort.Strings(names)
		return "undocumented parameter(s) for this endpoint: " + strings.Join(names, ", ") + " (switchprofile takes none)", http.StatusBadRequest
	}
	if rt.endpoint == EPSwitchStatus {
		if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
			return "the request carries a body: the switch status is a bodiless GET", http.StatusBadRequest
		}
		return "", 0
	}
	if ct := req.Header.Get("Content-Type"); ct == "" {
		return "Content-Type missing: switchprofile takes application/json", http.StatusBadRequest
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return fmt.Sprintf("Content-Type %q: switchprofile takes application/json", ct), http.StatusBadRequest
	}
	if rc.bodyErr != nil {
		return "invalid switchprofile body: " + rc.bodyErr.Error(), http.StatusBadRequest
	}
	b, err := parseSwitchBody(rc.body, true)
	if err != nil {
		return "invalid switchprofile body: " + err.Error(), http.StatusBadRequest
	}
	// The profiles are fixed at New: reading them needs no lock.
	if !s.profiles[b.ProfileID] {
		return fmt.Sprintf("invalid switchprofile body: ProfileID %d is not a profile of this account", b.ProfileID), http.StatusBadRequest
	}
	return "", 0
}

// canonicalPath is p without empty segments or a trailing slash.
func canonicalPath(p string) string {
	var seg []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			seg = append(seg, s)
		}
	}
	return "/" + strings.Join(seg, "/")
}

// checkParams applies an endpoint's table to the merged path and query
// parameters.
func checkParams(sp epSpec, path map[string]string, q url.Values) string {
	var unknown []string
	for name := range q {
		if _, ok := sp.params[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "undocumented parameter(s) for this endpoint: " + strings.Join(unknown, ", ")
	}
	names := make([]string, 0, len(sp.params))
	for name := range sp.params {
		names = append(names, name)
	}
	sort.Strings(names)
	val := map[string]string{}
	for _, name := range names {
		vs, inQuery := q[name]
		if inQuery && len(vs) > 1 {
			return fmt.Sprintf("parameter %s given %d times", name, len(vs))
		}
		pv, inPath := path[name]
		switch {
		case inPath && inQuery && vs[0] != pv:
			return fmt.Sprintf("parameter %s is %q in the path but %q in the query", name, pv, vs[0])
		case inPath:
			val[name] = pv
		case inQuery:
			val[name] = vs[0]
		default:
			continue
		}
		if why := checkValue(name, sp.params[name], val[name]); why != "" {
			return why
		}
	}
	for _, name := range sp.required {
		if _, ok := val[name]; !ok {
			return "missing required parameter: " + name
		}
	}
	for _, group := range sp.together {
		var given, missing []string
		for _, name := range group {
			if _, ok := val[name]; ok {
				given = append(given, name)
			} else {
				missing = append(missing, name)
			}
		}
		if len(given) > 0 && len(missing) > 0 {
			return fmt.Sprintf("%s must be given together (%s given without %s)",
				strings.Join(group, " and "), strings.Join(given, ", "), strings.Join(missing, ", "))
		}
	}
	if _, ok := val["gameversion_identifier"]; ok {
		if _, g := val["gameid"]; !g {
			return "gameversion_identifier needs gameid and imageid"
		}
	}
	return ""
}

// checkValue checks one value against its documented spelling.
func checkValue(name string, k pkind, v string) string {
	if v == "" {
		return "parameter " + name + " is given empty"
	}
	switch k {
	case pID:
		if !reID.MatchString(v) {
			return fmt.Sprintf("invalid %s %q: a positive integer id", name, v)
		}
	case pBit:
		if v != "1" && v != "0" {
			return fmt.Sprintf("invalid %s %q: this endpoint spells booleans 1 or 0", name, v)
		}
	case pTrueFalse:
		if v != "true" && v != "false" {
			return fmt.Sprintf("invalid %s %q: this endpoint spells booleans true or false", name, v)
		}
	case pText:
		if strings.TrimSpace(unquote(v)) == "" {
			return "parameter " + name + " is blank"
		}
	case pURL:
		scheme, _, ok := strings.Cut(v, "://")
		switch {
		case !ok:
			return fmt.Sprintf("invalid %s: not a URL (want s3://, steam://, gs:// or cos://)", name)
		case scheme != "s3" && scheme != "steam" && scheme != "gs" && scheme != "cos":
			return fmt.Sprintf("invalid %s: scheme %q is not one of s3, steam, gs, cos", name, scheme)
		}
	case pInstallAt:
		if v != "NOW()" && !reID.MatchString(v) {
			return fmt.Sprintf("invalid %s %q: the literal NOW() or a unix timestamp", name, v)
		}
	case pMinutes:
		if !reUint.MatchString(v) {
			return fmt.Sprintf("invalid %s %q: whole minutes", name, v)
		}
	case pPercent:
		f, err := strconv.ParseFloat(v, 64)
		if !rePercent.MatchString(v) || err != nil || f > 100 {
			return fmt.Sprintf("invalid %s %q: a decimal from 0.00 to 100.00", name, v)
		}
	}
	return ""
}
