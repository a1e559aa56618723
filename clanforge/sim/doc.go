// Package sim owns the built-in Clanforge simulator: an HTTP server that
// behaves like the image-update API as documented in the API reference
// (shared/clanforge-api.md), written from that reference alone and with its
// own wire format, so that it catches a client's wrong assumptions instead of
// sharing them. It does not import the clanforge client.
//
// # Serving
//
// New builds a *Server from a Config (inventory, the only accepted
// credentials: Basic keys, a Bearer token or both, a Scenario and an
// optional Clock). A *Server is an
// http.Handler; Start listens on an address ("127.0.0.1:0" for a free
// loopback port) and returns the base URL; Close stops it.
// InventoryFromPlan derives the inventory of a plan for --sim.
//
// Endpoints (all GET but the switch PATCH, parameters in the query,
// Content-Type ignored, no body; an id may be in its path position or in
// the same-named query parameter, the path wins):
//
//	/cfp/v1/imageupdate/create                 imageid, machineid, desc, url
//	/cfp/v1/imageupdate/<updateid>/status      (or imageupdate/status?updateid=)
//	/cfp/v1/imageupdate/<updateid>/retry       only with update_retry: true
//	/cfp/v1/imagediff/create                   imageid, machineid (diffid= retries)
//	/cfp/v1/imagediff/<diffid>/status          diff_info=1 adds game, image, machine
//	/cfp/v1/imagediff/<diffid>/retry
//	/cfp/v1/imagediff/<diffid>/reject          reinstall=0|1
//	/cfp/v1/imageversion/create                diffid, restart, full, game_build, force,
//	                                           install_at, disable_timeout, disable_percentage
//	/cfp/v1/imageversion/<imageversionid>/status
//	/cfp/v1/imageinstall/status
//	/cfp/v1/imageinstall/<jobid>/queue         mirroring=true|false
//	/cfp/v1/image/options                      gameid with imageid (imageid alone tolerated)
//	/cfp/v2/project/<asid>/image/<imageid>/status  detail=true|false
//	PATCH /cfp/v2/fleet/<fleetid>/switchprofile    JSON {"ProfileID", "Timeout", "MaxMachines"}
//	GET   /cfp/v2/fleet/<fleetid>/switchprofile    the switch status
//
// Every v1 call needs accountserviceid; an unknown one is 403 "Forbidden".
// The v2 image status takes the ASID in its path; the fleet switch takes
// none (the fleet id is the whole address). Auth is HTTP Basic with the
// configured keys and "Authorization: Bearer <token>" with the configured
// token (API §2.2), each scheme accepted only when configured: no
// Authorization header is 401, anything else wrong (a wrong credential, a
// scheme not configured) is 403, both with the error envelope
// {"success":false,"error":true,"error_code":1,"error_message":"Forbidden",
// "messages":[],"_debug":[]}. SigV4 is not verified and therefore refused.
// Unknown ids (fleets included) are 404; lock, state and validation errors
// are 200 with the envelope (400 with business_error_status: 400).
//
// # Strict mode
//
// By default the simulator tolerates what real clients are seen to send
// (API §6.1): booleans as 1/0 or true/false anywhere, a missing restart,
// imageid without gameid on image/options, any Content-Type. With the
// scenario key strict: true it refuses, before any work and before any
// injected fault, every request a strict reading of the reference refuses:
// a method other than GET (405), a path not in its documented form (404),
// a body, a Content-Type other than application/x-www-form-urlencoded, a
// query parameter the endpoint's table does not list, a repeated or empty
// parameter, a missing required one (accountserviceid, desc, restart,
// reinstall, mirroring, ...), an id whose path and query values differ, a
// boolean not spelled as its endpoint documents it (1/0, but true/false for
// mirroring and detail), an install_at other than NOW() or a unix
// timestamp, a url whose scheme is not s3, steam, gs or cos, gameid and
// imageid not given together on image/options, and disable_timeout and
// disable_percentage not given together on imageversion/create. The v2
// image status takes the ASID and the image in its path; given again in the
// query they must repeat the path's values. The switchprofile path takes
// PATCH and GET only, and no query parameter at all (not even
// accountserviceid); its GET has no body; its PATCH says application/json
// and carries exactly one JSON object with ProfileID (a positive JSON
// integer naming a profile of the account, required), Timeout (a Go
// duration string above zero) and MaxMachines (a JSON integer above zero),
// each at most once and no other key. Refusals are 400 with the error
// envelope and are logged with Request.Strict set; StrictRefusals lists
// them, so a test can assert that a client sent nothing a strict server
// would refuse.
//
// # Job engine
//
// Jobs go Created -> Pending -> Queued -> Running -> Completed or Failed;
// install jobs may end Squashed. Nothing runs in the background: each job
// keeps its timestamps, and an event queue is processed up to the clock's
// current time whenever a request or an inspection method needs the state.
// The result depends only on the clock, so status reads are pure, runs are
// deterministic, and thousands of jobs cost nothing while idle. Inject a
// FakeClock to drive time in tests.
//
// Default durations at speed 1 (see DefaultDurations): startup 1.5s (the
// Created, Pending and Queued thirds of a job that moves on by itself),
// update 8s, diff 5s, version 6s, mirror 4s, install 6s, uninstall 4s.
// A whole update, diff, version, mirror and install cycle is about 37 s at
// speed 1 and under 4 s at speed 10.
//
// Files: each image has an initial full version with a fixed file set; an
// update sets the build machine's files for the image to the build's files
// (the scenario's builds entry, else a few changes derived from the url and
// desc); a diff compares them with the image's latest version; a version
// makes them the latest. Fleet machines track the version they have.
//
// Assumptions taken from the reference's "known unknowns" (API §7) are noted
// where they are implemented. What the simulator does not model:
// disable_timeout and disable_percentage are validated but never disable
// machines; allocations beyond the force check, and the image activate
// endpoint are not served.
//
// # Fleets, rollout counters and the profile switch
//
// Every fleet machine belongs to one fleet (Inventory.Fleets and
// Machine.Fleet; the only fleet by default, else an invented fleet named
// DefaultFleetName with the id DefaultFleetID) and to one region (its
// mirror location), whose id is RegionID(name), a UUID derived from the
// name alone. Build machines are in no fleet. Each fleet machine hosts one
// game server, which runs a profile; a fleet starts on Fleet.Profile (by
// default the profile of the first image it carries that has one; the
// scenario's fleet_profiles overrides it). The profiles a switch may name
// are the images' and the fleets' starting ones.
//
// The v2 image status counts the fleet machines carrying the image from
// their install jobs at the moment of the read: completed when the machine
// has the image's latest version, failed when its newest install targets
// the latest version and ended Failed (a failed install is a failed
// machine), pending otherwise. With detail=true the same counts are broken
// down by fleet id and by region id (with the region's name); the totals
// are the sum of the fleets and each fleet the sum of its regions. Only
// fleets with machines carrying the image are listed.
//
// The profile switch (API §4.15, §6.8): GET before any PATCH answers State
// "not requested" with the fleet's profile. A PATCH restarts the servers
// not already on the profile: pending for durations.switch_start, then
// processing in batches of MaxMachines (all at once without it), one batch
// per durations.switch_batch (both divided by the speed like job
// durations), then complete. Timeout is not scaled: Deadline (RFC3339 UTC,
// only with a Timeout) is the PATCH time plus Timeout exactly, and at the
// Deadline every server still pending is restarted (complete). A PATCH to
// the profile every server already runs is complete at once. A PATCH while
// the fleet's switch is pending or processing is refused with the envelope
// "profile switch in progress ..." and changes nothing: switches are
// neither queued nor merged, so a resent PATCH shows. The lenient PATCH
// ignores Content-Type and unknown keys, matches keys in any case, and
// takes numbers as JSON strings and Timeout as seconds; a body without a
// ProfileID, or naming an unknown profile, is a validation error. The
// scenario's switches rules make a switch stall (processing for good, past
// its Deadline) or fail (GET answers the envelope "profile switch failed:
// ...", or State "failed", a state the reference does not name), and
// never_ready_regions keeps a region's installs running for good.
//
// # Observability
//
// Timeline returns the append-only job timeline (created, queued, started,
// completed, failed, squashed, retried, rejected, consumed) with exact times
// taken from the jobs' timestamps; Requests returns the request log (endpoint
// name, whether it changes state, HTTP status, injected fault, whether the
// answer was dropped). Switches returns every switchprofile PATCH with its
// body, what was read from it and whether it was applied. Jobs, Job, Locks,
// LatestVersion, InstalledVersion, MachineFiles, GameBuild, Fleets and
// MachineProfile inspect the state.
//
// The Scenario type documents every key of a scenario file; an example is
// in testdata/example-scenario.yaml.
package sim
