package steps

import "fmt"

// Test helpers on MemJournal: what the steps recorded, and what an earlier
// run left. They read the journal's records; the journal's answers to the
// steps (Prior, InstallJobs) are the state journal's, which package state's
// contract test checks.

// sent lists the key of every intent recorded, in order; a key announced
// again is listed again.
func (j *MemJournal) sent() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, r := range j.log {
		if r.key != "" && !r.answered {
			out = append(out, r.key)
		}
	}
	return out
}

// params returns the params of the last intent under key (nil when none).
func (j *MemJournal) params(key string) map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if in := j.byKey[key]; in != nil {
		return in.params
	}
	return nil
}

// allParams returns the params of every intent recorded, by key.
func (j *MemJournal) allParams() map[string]map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]map[string]string{}
	for _, r := range j.log {
		if r.key != "" && !r.answered {
			out[r.key] = r.params
		}
	}
	return out
}

// answer returns the job id of the answer recorded under key, and whether
// one is.
func (j *MemJournal) answer(key string) (int64, bool) {
	_, res, id := j.Prior(key)
	return id, res
}

// seenJobs returns the jobs SeenInstalls recorded, by what they install,
// and how many records that took.
func (j *MemJournal) seenJobs() (map[InstallInterest]map[int64]bool, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[InstallInterest]map[int64]bool{}
	records := 0
	for _, r := range j.log {
		if len(r.seen) == 0 {
			continue
		}
		records++
		for _, s := range r.seen {
			if out[s.InstallInterest] == nil {
				out[s.InstallInterest] = map[int64]bool{}
			}
			out[s.InstallInterest][s.ID] = true
		}
	}
	return out, records
}

// earlier records what an earlier run left under key: the intent of its
// call to endpoint, and when answered, the answer naming job id. It makes
// the calls that run made, so the journal answers as it would on a resume.
func (j *MemJournal) earlier(key, endpoint string, answered bool, id int64) {
	if err := j.Intent(key, endpoint, nil); err != nil {
		panic(err)
	}
	if answered {
		if err := j.Result(key, id, nil); err != nil {
			panic(err)
		}
	}
}

// queuePath is the endpoint of queueing install job id, as the steps send
// it to the journal.
func queuePath(id int64) string { return fmt.Sprintf("%simageinstall/%d/queue", apiPrefix, id) }
