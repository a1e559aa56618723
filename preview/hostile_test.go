package preview

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/hostile"
	"github.com/rollout/rollout/redact"
	"github.com/rollout/rollout/steps"
)

// TestPreviewHostile: every string of a preview (names, values,
// expressions, call parameters, notes, the pre-flight's error, problems
// and facts) made hostile, and neither the text nor the JSON form shows a
// raw control character or a secret.
func TestPreviewHostile(t *testing.T) {
	hostile.Register(t)
	p := load(t, "../examples/two-images.yaml")
	facts := steps.ImageFacts{Name: hostile.Name("img"), LockKind: hostile.StateName()}
	for name, opt := range map[string]Options{
		"pre-flight failed": {ASID: p.ASID, BaseURL: "https://api.example/?token=" + hostile.Token, PreflightErr: hostile.Text()},
		"pre-flight made": {ASID: p.ASID, Preflight: &steps.PreflightReport{Images: []steps.ImageFacts{facts},
			Problems: []string{hostile.Text()}}},
	} {
		t.Run(name, func(t *testing.T) {
			// Poison every string of the document, map keys included.
			d := redact.Copy(Build(p, opt), func(s string) string {
				if s == "" {
					return s
				}
				return s + hostile.Name("") + " " + hostile.Text()
			})
			for _, all := range []bool{false, true} {
				var b bytes.Buffer
				if err := d.Text(&b, all); err != nil {
					t.Fatal(err)
				}
				hostile.Check(t, "preview text", b.String(), false)
				if !strings.Contains(b.String(), `\x1b]52;c;`) {
					t.Errorf("preview text does not show the escapes it received:\n%s", b.String())
				}
			}
			var b bytes.Buffer
			if err := d.JSON(&b); err != nil {
				t.Fatal(err)
			}
			hostile.Check(t, "preview JSON", b.String(), false)
			var back map[string]any
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatalf("preview JSON does not decode: %v", err)
			}
			if !strings.Contains(back["plan"].(string), "\x1b[2J") {
				t.Errorf("plan decodes to %q: JSON must carry the text, escaped only on the wire", back["plan"])
			}
		})
	}
}
