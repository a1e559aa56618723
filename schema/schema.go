// Package schema holds the JSON Schema of the plan format, for editors (the
// yaml-language-server comment in a plan) and for `rollout schema`.
package schema

import _ "embed"

// JSON is plan.schema.json (JSON Schema 2020-12).
//
//go:embed plan.schema.json
var JSON []byte
