package clanforge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Call is one API request as the client sends it: method, path, query and
// JSON body, without the headers every request carries (credentials,
// content type, user agent). Calls builds them; the client's methods send
// exactly what Calls builds, so a preview that renders a Call shows the very
// request that would be sent (issue 13).
type Call struct {
	Method string
	// Path is relative to the base URL, without query: /cfp/v1/imagediff/create.
	Path string
	// Query holds every query parameter, accountserviceid included where
	// the client sends it.
	Query url.Values
	// Body is the JSON body (the profile switch); nil for the GETs.
	Body any
	// Mutating is set for the calls that change state: they are sent over
	// a connection that is never reused and never resent blindly.
	Mutating bool
}

// BodyJSON is the body as sent, "" when there is none.
func (c Call) BodyJSON() string {
	if c.Body == nil {
		return ""
	}
	b, err := json.Marshal(c.Body)
	if err != nil {
		return ""
	}
	return string(b)
}

// Calls builds the request of every endpoint for one account service: the
// one place that decides each call's method, path, query and body. Ids are
// text so that a preview can put a placeholder such as "<diffid>" where an
// id does not exist yet; the client passes the decimal ids. Values are used
// as given: a preview passes display values (secrets masked), the client
// the real ones.
type Calls struct{ ASID int64 }

// Calls returns the builder for the client's account service.
func (c *Client) Calls() Calls { return Calls{ASID: c.cfg.ASID} }

// Request builds the *http.Request the client would send for call, with
// its headers and credentials, without sending it.
func (c *Client) Request(ctx context.Context, call Call) (*http.Request, error) {
	return c.NewRequest(ctx, call.Method, call.Path, call.Query, call.Body)
}

func (k Calls) call(method, path string, q url.Values, body any, mutating bool) Call {
	if q == nil {
		q = url.Values{}
	}
	withASID(q, path, k.ASID)
	return Call{Method: method, Path: path, Query: q, Body: body, Mutating: mutating}
}

func (k Calls) read(path string, q url.Values) Call {
	return k.call(http.MethodGet, path, q, nil, false)
}

func (k Calls) change(path string, q url.Values) Call {
	return k.call(http.MethodGet, path, q, nil, true)
}

// UpdateCreate is imageupdate/create (API §4.1). url is left out when empty
// (the image's default update URL is used).
func (k Calls) UpdateCreate(imageID, machineID, desc, url string) Call {
	q := urlValues("imageid", imageID, "machineid", machineID, "desc", desc)
	if url != "" {
		q.Set("url", url)
	}
	return k.change(pathUpdateCreate, q)
}

// UpdateStatus is imageupdate/<id>/status (API §4.2).
func (k Calls) UpdateStatus(updateID string) Call { return k.read(pathUpdateStatus(updateID), nil) }

// DiffCreate is imagediff/create (API §4.4).
func (k Calls) DiffCreate(imageID, machineID string) Call {
	return k.change(pathDiffCreate, urlValues("imageid", imageID, "machineid", machineID))
}

// DiffStatus is imagediff/<id>/status (API §4.5); info sends diff_info=1
// for the game, image and machine objects.
func (k Calls) DiffStatus(diffID string, info bool) Call {
	var q url.Values
	if info {
		q = urlValues("diff_info", "1")
	}
	return k.read(pathDiffStatus(diffID), q)
}

// DiffRetry is imagediff/<id>/retry (API §4.6).
func (k Calls) DiffRetry(diffID string) Call { return k.change(pathDiffRetry(diffID), nil) }

// DiffReject is imagediff/<id>/reject (API §4.7); reinstall is always sent,
// as 1 or 0.
func (k Calls) DiffReject(diffID string, reinstall bool) Call {
	return k.change(pathDiffReject(diffID), urlValues("reinstall", bit(reinstall)))
}

// VersionCreate is imageversion/create (API §4.8). restart is always sent,
// as 1 or 0 (API §7 #12: the docs mark it required). full and force are
// sent only as 1: their page documents the value 1 and absence, so a strict
// server has nothing to object to. install_at=NOW() is sent only with
// InstallNow; omitted, the install jobs wait in Pending for
// imageinstall/<id>/queue (API §7 #13).
func (k Calls) VersionCreate(diffID string, opt VersionOptions) Call {
	q := urlValues("diffid", diffID, "restart", bit(opt.Restart))
	if opt.Full {
		q.Set("full", "1")
	}
	if opt.Force {
		q.Set("force", "1")
	}
	if opt.GameBuild != "" {
		q.Set("game_build", opt.GameBuild)
	}
	if opt.InstallNow {
		q.Set("install_at", "NOW()")
	}
	if opt.DisableTimeout > 0 {
		q.Set("disable_timeout", strconv.Itoa(opt.DisableTimeout))
	}
	if opt.DisablePercentage > 0 {
		q.Set("disable_percentage", strconv.FormatFloat(opt.DisablePercentage, 'f', 2, 64))
	}
	return k.change(pathVersionCreate, q)
}

// VersionStatus is imageversion/<id>/status (API §4.9).
func (k Calls) VersionStatus(versionID string) Call {
	return k.read(pathVersionStatus(versionID), nil)
}

// InstallStatus is imageinstall/status (API §4.10).
func (k Calls) InstallStatus() Call { return k.read(pathInstallStatus, nil) }

// InstallQueue is imageinstall/<jobid>/queue (API §4.11); mirroring is
// spelled true/false on this endpoint.
func (k Calls) InstallQueue(jobID string, mirroring bool) Call {
	return k.change(pathInstallQueue(jobID), urlValues("mirroring", strconv.FormatBool(mirroring)))
}

// ImageStatus is the v2 rollout counters (API §4.12). The ASID is a path
// segment and not repeated in the query; detail is spelled true/false.
func (k Calls) ImageStatus(imageID string, detail bool) Call {
	return k.read(pathImageStatus(strconv.FormatInt(k.ASID, 10), imageID), urlValues("detail", strconv.FormatBool(detail)))
}

// ImageOptions is image/options (API §4.13); an empty gameID or imageID is
// left out (the page wants both or neither; the client sends imageid alone
// only to a server that lists no games).
func (k Calls) ImageOptions(gameID, imageID string) Call {
	q := url.Values{}
	if gameID != "" {
		q.Set("gameid", gameID)
	}
	if imageID != "" {
		q.Set("imageid", imageID)
	}
	return k.read(pathImageOptions, q)
}

// SwitchProfile is the PATCH of a fleet's profile switch (API §4.15), with
// the JSON body {"ProfileID", "Timeout", "MaxMachines"}, the last two only
// when set.
func (k Calls) SwitchProfile(fleetID string, opt SwitchOptions) Call {
	return k.call(http.MethodPatch, pathSwitchProfile(fleetID), nil, switchBody(opt), true)
}

// SwitchStatus is the GET of a fleet's profile switch (API §4.15).
func (k Calls) SwitchStatus(fleetID string) Call { return k.read(pathSwitchProfile(fleetID), nil) }
