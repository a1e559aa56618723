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
	for _, img := range p.Images {
		m["image "+img.Name] = h(img.ID)
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
		m["machine "+mc.Name] = h(mc.ID, imgs, labels)
	}
	step := func(prefix string, s *plan.Step) {
		src := func(e *plan.Expr) string {
			if e == nil {
				return ""
			}
			return e.Source
		}
		m[prefix+s.Name] = h(s.Type, s.Needs, src(s.Where), src(s.When), s.Timeout, s.Retries, s.MaxParallel,
			s.Desc.Resolved, s.URL.Resolved, src(s.Expr), s.Restart, s.Full, s.GameBuild.Resolved, s.Force, s.InstallAt,
			s.DisableTimeout, s.DisablePercentage, s.Mirroring, fmt.Sprint(s.Waves), s.MaxFailuresCount, s.Reinstall)
	}
	for _, s := range p.Steps {
		step("step ", s)
	}
	for _, s := range p.OnFailure {
		step("on_failure ", s)
	}
	return m
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
