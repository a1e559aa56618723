package simtest

import (
	"strings"
	"time"

	"github.com/rollout/rollout/plan"
)

// Control turns stand-ins in a loaded plan into the control steps that the
// plan loader does not parse yet (an `approve` step, `pause_after`), the
// way the engine's own tests build them, so that the commands around them
// (approve, abort, watch, history) can be tested end to end now. It is
// imported by tests and by the rollout_testhooks build of the command that
// the end-to-end tests run; never by the command users get.
//
//   - A gate whose name begins with "approve" becomes an approve step. It
//     asks vars.approve_message (default "Ship it?"), keeps the gate's
//     timeout, and takes vars.on_timeout (default abort).
//   - vars.pause_after, a comma-separated list of entries ("approve", a
//     duration such as "2s", or "null"), becomes the pause_after of every
//     install step with waves.
func Control(p *plan.Plan) {
	msg := "Ship it?"
	if v, ok := p.Vars["approve_message"].(string); ok && v != "" {
		msg = v
	}
	onTimeout := plan.OnTimeoutAbort
	if v, ok := p.Vars["on_timeout"].(string); ok && v != "" {
		onTimeout = plan.OnTimeout(v)
	}
	var pauses []plan.Pause
	if v, ok := p.Vars["pause_after"].(string); ok && v != "" {
		for _, e := range strings.Split(v, ",") {
			switch e = strings.TrimSpace(e); e {
			case "approve":
				pauses = append(pauses, plan.Pause{Approve: true})
			case "null", "":
				pauses = append(pauses, plan.Pause{})
			default:
				d, err := time.ParseDuration(e)
				if err != nil {
					panic("simtest.Control: vars.pause_after entry " + e + ": " + err.Error())
				}
				pauses = append(pauses, plan.Pause{Bake: d})
			}
		}
	}
	for _, s := range p.Steps {
		switch {
		case s.Type == plan.TypeGate && strings.HasPrefix(s.Name, "approve"):
			s.Type, s.Expr = plan.TypeApprove, nil
			s.Message = plan.Value{Resolved: msg, Display: msg}
			s.OnTimeout = onTimeout
		case s.Type == plan.TypeInstall && len(s.Waves) > 1 && pauses != nil:
			s.PauseAfter = pauses
		}
	}
}
