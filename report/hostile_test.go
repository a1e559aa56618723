package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rollout/rollout/internal/hostile"
)

// TestPlainHostile: names with escape sequences and API text carrying
// escapes and the credentials in every encoding reach the plain output
// escaped and masked, and a newline in an error cannot forge a line.
func TestPlainHostile(t *testing.T) {
	hostile.Register(t)
	c := &fakeClock{t: t0}
	var buf bytes.Buffer
	p := NewPlain(&buf, WithClock(c.Now))
	hostile.Run(p, t0)
	out := buf.String()
	hostile.Check(t, "plain", out, false)
	// The escapes are shown, not dropped: a person can see what came.
	for _, want := range []string{`plan\x1b[31m\u009b1m\r`, `\x1b]52;c;`, `\u009b31mRED\x07\rFAKE OK`, hostile.EnvLabel, "auth=***"} {
		if !strings.Contains(out, want) {
			t.Errorf("plain output lacks %q:\n%s", want, out)
		}
	}
}

// TestJSONHostile: the same run as JSON is valid JSON per line, holds no
// raw control character and no secret, and decodes to the masked text with
// its escape sequences intact (JSON carries data, not a display).
func TestJSONHostile(t *testing.T) {
	hostile.Register(t)
	c := &fakeClock{t: t0}
	var buf bytes.Buffer
	j := NewJSON(&buf, WithClock(c.Now))
	hostile.Run(j, t0)
	out := buf.String()
	hostile.Check(t, "json", out, false)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", lines, err, sc.Text())
		}
		if ev["type"] == EventAborting {
			reason := ev["reason"].(string)
			if !strings.Contains(reason, "\x1b[2J") || !strings.Contains(reason, "auth=***") || !strings.Contains(reason, hostile.EnvLabel) {
				t.Errorf("aborting reason decodes to %q", reason)
			}
		}
	}
	if lines < 10 {
		t.Errorf("only %d lines", lines)
	}
}
