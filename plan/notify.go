package plan

import (
	"strings"

	"github.com/rollout/rollout/redact"
)

// Notify formats.
const (
	FormatSlack = "slack"
	FormatJSON  = "json"
)

// notify checks the plan's webhooks: a url (http or https) that is shown
// masked, a format, and the events it is told about.
func (l *loader) notify(rp *rawPlan, p *Plan, vs *varState) {
	for _, rn := range rp.Notify {
		n := &Notify{Format: FormatSlack, Pos: rn.Pos}
		ok := rn.URL.Set && rn.EventsSet.Set
		if u, good := l.interpolate(rn.URL, "notify url", vs); good && rn.URL.Set {
			n.URL = Value{Resolved: u.Resolved, Display: webhookDisplay(u.Display)}
			n.envParts = u.Secrets()
			l.hideWebhook(rn.URL.V, n.URL)
			if !strings.HasPrefix(u.Resolved, "http://") && !strings.HasPrefix(u.Resolved, "https://") {
				l.errNode(rn.URL.node, "", "notify url must start with http:// or https:// (it is %s)", n.URL.Display)
				ok = false
			}
		} else {
			ok = false
		}
		if rn.Format.Set {
			if rn.Format.V != FormatSlack && rn.Format.V != FormatJSON {
				l.errNode(rn.Format.node, DidYouMean(rn.Format.V, []string{FormatSlack, FormatJSON}), "notify format must be slack (incoming-webhook text) or json (the run's JSON event), not %q", rn.Format.V)
				ok = false
			}
			n.Format = rn.Format.V
		}
		n.Events, ok = l.notifyEvents(rn), ok && rn.EventsSet.Set
		if ok && len(n.Events) > 0 {
			p.Notify = append(p.Notify, n)
		}
	}
}

// notifyEvents checks a webhook's events: known, each once, at least one.
func (l *loader) notifyEvents(rn *rawNotify) []string {
	if !rn.EventsSet.Set {
		return nil
	}
	if len(rn.Events) == 0 {
		l.errNode(rn.EventsSet.node, "events: ["+strings.Join(notifyEvents, ", ")+"]", "events must list at least one event of %s", strings.Join(notifyEvents, ", "))
		return nil
	}
	var out []string
	bad := false
	for _, ev := range rn.Events {
		switch {
		case !ev.Set:
			bad = true
		case !contains(notifyEvents, ev.V):
			l.errNode(ev.node, DidYouMean(ev.V, notifyEvents), "unknown notify event %q (one of %s)", ev.V, strings.Join(notifyEvents, ", "))
			bad = true
		case contains(out, ev.V):
			l.errNode(ev.node, "", "event %q is listed twice", ev.V)
		default:
			out = append(out, ev.V)
		}
	}
	if bad {
		return nil
	}
	return out
}

// webhookDisplay is how a webhook URL may be shown. A webhook URL is a
// secret wherever it came from: Slack's carry their credential in the
// path. One read whole from the environment shows as ${env:NAME}; any
// other shows its scheme and host, the rest masked
// ("https://hooks.slack.com/***"). d is the interpolated Display, whose
// ${env:NAME} parts and URL credentials are masked already.
func webhookDisplay(d string) string {
	if strings.HasPrefix(d, "${env:") && strings.IndexByte(d, '}') == len(d)-1 {
		return d
	}
	i := strings.Index(d, "://")
	if i < 0 {
		return redact.Mask
	}
	rest := d[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		return d // a host alone holds no secret
	}
	if rest[end] == '/' {
		end++
	}
	return d[:i+3+end] + redact.Mask
}

// hideWebhook keeps the secret part of a webhook URL written literally in
// the plan out of the source lines that plan errors quote: the command
// registers the plan's secrets only once the plan has loaded.
func (l *loader) hideWebhook(written string, v Value) {
	for _, s := range v.Secrets() {
		if len(s.Value) >= redact.MinSecretLen && strings.Contains(written, s.Value) {
			label := s.Label
			if label == "" {
				label = redact.Mask
			}
			l.hidden = append(l.hidden, redact.Secret{Value: s.Value, Label: label})
		}
	}
}
