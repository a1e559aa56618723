package state

// TypeNotify records a notification of the plan's webhooks: its key (the
// event and the webhook) and how it went ("sending", "sent", "failed: ...").
const TypeNotify = "notify"

// Notified implements notify.Journal: whether a notification with key was
// recorded, by this run or an earlier one. One recorded as "sending" counts
// too: a run that died between the record and the POST may have sent it,
// and a notification is never sent twice.
func (j *Journal) Notified(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.live.s.Notified[key]
	return ok
}

// RecordNotify implements notify.Journal.
func (j *Journal) RecordNotify(key, event, status string) error {
	return j.write(&Record{Type: TypeNotify, Key: key, Endpoint: event, Error: MaskCredentials(status)})
}
