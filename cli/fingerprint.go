package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rollout/rollout/plan"
)

// fingerprintName is the file beside the journal that holds a hash per part
// of the plan, so that a refused resume can say what changed. It holds only
// hashes: a plan may carry credentials in literal URLs, which must never be
// written to the state directory.
const fingerprintName = "plan-parts.json"

// fingerprint hashes each part of a plan a person would recognize.
func fingerprint(p *plan.Plan) map[string]string {
	h := func(v ...any) string {
		s := sha256.Sum256([]byte(fmt.Sprint(v...)))
		return hex.EncodeToString(s[:8])
	}
	m := map[string]string{
		"name":        h(p.Name),
		"concurrency": h(p.Concurrency),
		"clanforge":   h(p.ClanforgeURL, p.ASID),
	}
	for k, v := range p.Vars {
		m["vars."+k] = h(v)
	}
	// The keys of cut-over and control join a part's hash only when the
	// plan gives them, so that a plan without them keeps the hashes it
	// had before they existed.
	for _, img := range p.Images {
		if img.Profile != 0 {
			m["image "+img.Name] = h(img.ID, img.Profile)
		} else {
			m["image "+img.Name] = h(img.ID)
		}
	}
	for _, f := range p.Fleets {
		m["fleet "+f.Name] = h(f.ID)
	}
	for i, n := range p.Notify {
		m[fmt.Sprintf("notify %d", i+1)] = h(n.URL.Resolved, n.Format, n.Events)
	}
	for _, mc := range p.Machines {
		var imgs []string
		for _, i := range mc.Images {
			imgs = append(imgs, i.Name)
		}
		labels := make([]string, 0, len(mc.Labels))
		for k, v := range mc.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		if mc.Fleet != nil {
			m["machine "+mc.Name] = h(mc.ID, imgs, labels, mc.Fleet.Name)
		} else {
			m["machine "+mc.Name] = h(mc.ID, imgs, labels)
		}
	}
	step := func(prefix string, s *plan.Step) {
		src := func(e *plan.Expr) string {
			if e == nil {
				return ""
			}
			return e.Source
		}
		base := []any{s.Type, s.Needs, src(s.Where), src(s.When), s.Timeout, s.Retries, s.MaxParallel,
			s.Desc.Resolved, s.URL.Resolved, src(s.Expr), s.Restart, s.Full, s.GameBuild.Resolved, s.Force, s.InstallAt,
			s.DisableTimeout, s.DisablePercentage, s.Mirroring, fmt.Sprint(s.Waves), s.MaxFailuresCount, s.Reinstall}
		if extra := controlKeys(s); len(extra) > 0 {
			base = append(base, extra)
		}
		m[prefix+s.Name] = h(base...)
	}
	for _, s := range p.Steps {
		step("step ", s)
	}
	for _, s := range p.OnFailure {
		step("on_failure ", s)
	}
	return m
}

// controlKeys lists a step's keys of cut-over and control that the plan
// gives (and max_failures_per), each as "key=value".
func controlKeys(s *plan.Step) []string {
	var out []string
	add := func(key string, set bool, v any) {
		if set {
			out = append(out, fmt.Sprintf("%s=%v", key, v))
		}
	}
	if s.Until != nil {
		add("until", true, s.Until.Source)
	}
	if s.FailIf != nil {
		add("fail_if", true, s.FailIf.Source)
	}
	var fleets []string
	for _, f := range s.Fleets {
		fleets = append(fleets, f.Name)
	}
	add("fleets", len(fleets) > 0, fleets)
	add("message", s.Message.Resolved != "", s.Message.Resolved)
	add("on_timeout", s.OnTimeout != "", s.OnTimeout)
	if s.To != nil {
		add("to", true, s.To.Name)
	}
	add("profile", s.Profile != 0, s.Profile)
	add("max_machines", s.MaxMachines != 0, s.MaxMachines)
	add("force_after", s.ForceAfter != 0, s.ForceAfter)
	add("pause_after", len(s.PauseAfter) > 0, s.PauseAfter)
	add("max_failures_per", s.MaxFailuresPerImage, "image")
	return out
}

func saveFingerprint(dir string, p *plan.Plan) error {
	b, err := json.MarshalIndent(fingerprint(p), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fingerprintName), b, 0o644)
}

// changedParts names the parts of the plan that differ from the journal's.
func changedParts(dir string, p *plan.Plan) string {
	b, err := os.ReadFile(filepath.Join(dir, fingerprintName))
	if err != nil {
		return ""
	}
	var old map[string]string
	if json.Unmarshal(b, &old) != nil {
		return ""
	}
	now := fingerprint(p)
	var changed []string
	for _, k := range sortedKeys(now) {
		switch ov, ok := old[k]; {
		case !ok:
			changed = append(changed, k+" (added)")
		case ov != now[k]:
			changed = append(changed, k+" (changed)")
		}
	}
	for _, k := range sortedKeys(old) {
		if _, ok := now[k]; !ok {
			changed = append(changed, k+" (removed)")
		}
	}
	if len(changed) == 0 {
		return ""
	}
	return "\nwhat changed: " + strings.Join(changed, ", ")
}
