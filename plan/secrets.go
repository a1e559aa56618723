package plan

import (
	"regexp"
	"sort"
	"strings"

	"github.com/rollout/rollout/redact"
)

// Secrets returns every value of the plan that must never be shown: each
// value read from the environment with ${env:NAME} (labelled "${env:NAME}")
// and each credential the plan's display hides ("***"), found in step
// values (desc, url, game_build, message; on_failure steps included), the
// description, string variables and the webhook URLs of notify (masked
// even when written literally, see webhookDisplay). Each whole interpolated value is
// included too, labelled with its Display. The command registers them
// (redact.Register) before anything is printed, so that an API answer
// quoting one is masked in every output and every encoding.
func (p *Plan) Secrets() []redact.Secret {
	var out []redact.Secret
	add := func(v Value) { out = append(out, v.Secrets()...) }
	add(Value{Resolved: p.Description, Display: p.DescriptionDisplay})
	names := make([]string, 0, len(p.Vars))
	for n := range p.Vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if s, ok := p.Vars[n].(string); ok {
			add(Value{Resolved: s, Display: p.VarDisplay[n]})
		}
	}
	for _, list := range [][]*Step{p.Steps, p.OnFailure} {
		for _, st := range list {
			out = append(out, st.Secrets()...)
		}
	}
	for _, n := range p.Notify {
		add(n.URL)
		out = append(out, n.envParts...)
	}
	return dedupe(out)
}

// Secrets returns the secrets of the step's interpolated values (see
// Value.Secrets).
func (s *Step) Secrets() []redact.Secret {
	var out []redact.Secret
	for _, v := range []Value{s.Desc, s.URL, s.GameBuild, s.Message} {
		out = append(out, v.Secrets()...)
	}
	return dedupe(out)
}

// Secrets returns what v's Display hides of its Resolved value: the text
// each ${env:NAME} stands for (labelled "${env:NAME}"), the text each
// "***" stands for (a credential in a URL, labelled with the mask), and,
// for a masked "user:password", the user and the password each. The whole Resolved
// value comes first, labelled with the whole Display, so that a message
// quoting it reads as the plan does. A value shown as it is has none.
//
// The parts are found by aligning Display with Resolved: the text between
// hidden parts is the same in both. When two hidden parts touch, or the
// text between them repeats, the alignment is ambiguous; both the
// shortest and the longest reading are returned, so that nothing is missed
// (masking a little more is harmless).
func (v Value) Secrets() []redact.Secret {
	if v.Resolved == v.Display || v.Resolved == "" {
		return nil
	}
	parts := displayParts(v.Display)
	var labels []string
	for _, pt := range parts {
		if pt.hidden {
			labels = append(labels, pt.text)
		}
	}
	if len(labels) == 0 {
		// Only $${ escapes differ: nothing is hidden.
		return nil
	}
	out := []redact.Secret{{Value: v.Resolved, Label: v.Display}}
	for _, hole := range []string{"(.*?)", "(.*)"} {
		var pat strings.Builder
		pat.WriteString("(?s)^")
		for _, pt := range parts {
			if pt.hidden {
				pat.WriteString(hole)
			} else {
				pat.WriteString(regexp.QuoteMeta(pt.text))
			}
		}
		pat.WriteString("$")
		re, err := regexp.Compile(pat.String())
		if err != nil {
			continue
		}
		m := re.FindStringSubmatch(v.Resolved)
		if m == nil {
			continue
		}
		for i, text := range m[1:] {
			label := labels[i]
			if text == "" || text == label {
				continue
			}
			out = append(out, redact.Secret{Value: text, Label: label})
			if label == redact.Mask && !strings.ContainsAny(text, "/?#@") {
				// A masked URL user-info: the user and the password are
				// secrets each (either may have come from ${env:NAME},
				// which the mask no longer tells). Text with a slash,
				// ? # or @ is no user-info (a webhook URL masked whole,
				// say), and splitting it would make "https" a secret.
				if user, pw, ok := strings.Cut(text, ":"); ok {
					out = append(out, redact.Secret{Value: user}, redact.Secret{Value: pw})
				}
			}
		}
	}
	return dedupe(out)
}

// displayPart is literal text of a Display (as it reads in Resolved), or a
// hidden part and its label ("${env:NAME}" or the mask).
type displayPart struct {
	text   string
	hidden bool
}

// displayParts splits a Display into literal text and hidden parts;
// touching hidden parts become one, labelled with both labels.
func displayParts(d string) []displayPart {
	var parts []displayPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, displayPart{text: lit.String()})
			lit.Reset()
		}
	}
	hide := func(label string) {
		flush()
		if n := len(parts); n > 0 && parts[n-1].hidden {
			parts[n-1].text += label
			return
		}
		parts = append(parts, displayPart{text: label, hidden: true})
	}
	for i := 0; i < len(d); {
		switch {
		case strings.HasPrefix(d[i:], "$${"):
			// The plan wrote $${ for a literal ${.
			lit.WriteString("${")
			i += 3
		case strings.HasPrefix(d[i:], "${env:") && strings.IndexByte(d[i:], '}') > 0:
			end := i + strings.IndexByte(d[i:], '}') + 1
			hide(d[i:end])
			i = end
		case strings.HasPrefix(d[i:], redact.Mask):
			hide(redact.Mask)
			i += len(redact.Mask)
		default:
			lit.WriteByte(d[i])
			i++
		}
	}
	flush()
	return parts
}

func dedupe(in []redact.Secret) []redact.Secret {
	seen := map[redact.Secret]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
