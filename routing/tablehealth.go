package routing

import (
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// MarkAlive records that id answered this node at time now (a liveness check, or any request of either side): its
// failure counts (Failures, LookupFailures) are reset, its AnsweredAt set and it becomes its bucket's most recently
// seen. A node waiting in a replacement cache has its failure counts reset and its LastSeen and AnsweredAt set, and
// keeps its place there. It reports whether id is in the table (not counting the replacement caches).
func (t *Table) MarkAlive(id session.NodeID, now time.Time) bool {
	b, i := t.find(id)
	if b == nil {
		return false
	}
	if i < 0 {
		if j := indexOf(b.replacements, id); j >= 0 {
			e := &b.replacements[j].e
			e.Failures, e.LookupFailures, e.LastSeen, e.AnsweredAt = 0, 0, now, now
		}
		return false
	}
	e := &b.entries[i].e
	e.Failures, e.LookupFailures, e.LastSeen, e.AnsweredAt = 0, 0, now, now
	moveToBack(b.entries, i)
	return true
}

// MarkUp records that id was found up without answering this node: it refused a liveness check over its own
// authenticated connection (ErrPeerRefused: slots full, a ban, an error reply). Its failure counts (Failures,
// LookupFailures) are reset, as MarkAlive resets them, so that a run of failures "in a row" ends there; its
// AnsweredAt, LastSeen and place in its bucket stay (it learned nothing of this node, which still introduces itself
// to it). It reports whether id is held, in the table or a replacement cache.
func (t *Table) MarkUp(id session.NodeID) bool {
	e := t.entry(id)
	if e == nil {
		return false
	}
	e.Failures, e.LookupFailures = 0, 0
	return true
}

// AnsweredSince reports whether id, in the table or a replacement cache, has answered this node at since or later
// (Entry.AnsweredAt), whether or not it failed a check since: an address it was reached at lately, which an
// unauthenticated refusal (ErrRefusedBeforeHandshake) is not held against for Config.RefusalGrace.
func (t *Table) AnsweredSince(id session.NodeID, since time.Time) bool {
	e := t.entry(id)
	return e != nil && !e.AnsweredAt.IsZero() && !e.AnsweredAt.Before(since)
}

// MarkFailed records that a liveness check of id, sent at time sent, failed at time now. A check sent less than
// FailureSpacing after the failure counted last (Entry.FailedAt) is not counted: it failed in the same stall, a
// loaded host's or the peer's, as a check a few seconds after a failed one often did (until the review of stop 60
// the revalidation checked a failed neighbour again at its next tick, and a newcomer for its bucket at once). After
// MaxFailures consecutive failures so counted the entry is removed and the most recent replacement that passes the
// IP limits takes its place (with AddedAt = now): a node that stopped answering goes at the first failed check
// sent FailureSpacing or more after its first failed one, as (MaxFailures-1)·FailureSpacing at least. A node
// waiting in a replacement cache (an entry that a nearer newcomer displaced while its check was under way, see
// KeepNearest) follows the same rule: it is dropped from the cache at its MaxFailures-th consecutive failure, not
// at its first. MarkAlive ends the run. It reports whether id was removed, from the table or from a replacement
// cache.
func (t *Table) MarkFailed(id session.NodeID, sent, now time.Time) (removed bool) {
	e := t.entry(id)
	if e == nil || !t.counts(e, sent) {
		return false
	}
	e.FailedAt = now
	return t.fail(id, now, func(e *Entry) *int { return &e.Failures }, t.cfg.MaxFailures)
}

// CheckDue reports whether a liveness check of id sent at now would count should it fail (MarkFailed): id has
// failed no check, or its last counted failure is FailureSpacing old. It reports false for a node the table holds
// neither in its entries nor in a replacement cache. The revalidation passes over the entries not due, whose check
// would be a dial that tells nothing new.
func (t *Table) CheckDue(id session.NodeID, now time.Time) bool {
	e := t.entry(id)
	return e != nil && t.counts(e, now)
}

// counts tells whether a failed liveness check of e sent at time sent counts towards MaxFailures (MarkFailed).
func (t *Table) counts(e *Entry, sent time.Time) bool {
	return e.Failures == 0 || !sent.Before(e.FailedAt.Add(t.cfg.FailureSpacing))
}

// MarkLookupFailed records that a request of one of this node's lookups to id, sent at time sent, went unanswered
// at time now: it timed out, or its dial failed. The caller holds against the table only the failures that say the
// node is not there: not a request the lookup cancelled itself (it had ended), nor one that a local limit or the
// node's own shutdown failed, nor one the peer answered with an error (ErrPeerBusy), nor those of a lookup nobody
// answered (this node's own network may be down: Lookup.Unreached). After MaxLookupFailures of them in a row, with
// no answer of id's in between (MarkAlive resets the count), the entry is removed and the most recent replacement
// that passes the IP limits takes its place, as MarkFailed does; a node waiting in a replacement cache is dropped
// from it by the same rule. A request sent less than LookupFailureSpacing after the last failure counted
// (Entry.LookupFailedAt) is not counted: it failed in the same stall. Lookups that run at once, each asking a node
// that paused once past their request timeout, counted one failure each, a run of MaxLookupFailures out of one stall
// (a review's finding), and lookups seconds apart did the same on a loaded host. The count is apart from the liveness checks' (Failures): a lookup's failure neither adds to nor resets
// it, so that a lost request and a lost check do not evict together what two checks must. With
// MaxLookupFailures = 0 nothing is counted. It reports whether id was removed, from the table or from a replacement
// cache.
func (t *Table) MarkLookupFailed(id session.NodeID, sent, now time.Time) (removed bool) {
	if t.cfg.MaxLookupFailures == 0 {
		return false
	}
	e := t.entry(id)
	if e == nil || e.LookupFailures > 0 && sent.Before(e.LookupFailedAt.Add(t.cfg.LookupFailureSpacing)) {
		return false
	}
	e.LookupFailedAt = now
	return t.fail(id, now, func(e *Entry) *int { return &e.LookupFailures }, t.cfg.MaxLookupFailures)
}

// entry returns id's entry, in the table or in a replacement cache, for an update in place; nil if there is none.
func (t *Table) entry(id session.NodeID) *Entry {
	b, i := t.find(id)
	switch {
	case b == nil:
		return nil
	case i >= 0:
		return &b.entries[i].e
	}
	if j := indexOf(b.replacements, id); j >= 0 {
		return &b.replacements[j].e
	}
	return nil
}

// fail adds one to the failure count of id that count names (in the table or a replacement cache) and removes id at
// limit, promoting a replacement in its place; it reports whether id was removed.
func (t *Table) fail(id session.NodeID, now time.Time, count func(*Entry) *int, limit int) (removed bool) {
	b, i := t.find(id)
	if b == nil {
		return false
	}
	if i < 0 {
		j := indexOf(b.replacements, id)
		if j < 0 {
			return false
		}
		n := count(&b.replacements[j].e)
		if *n++; *n < limit {
			return false
		}
		b.replacements = slices.Delete(b.replacements, j, j+1)
		return true
	}
	n := count(&b.entries[i].e)
	if *n++; *n < limit {
		return false
	}
	t.removeAt(b, i)
	t.promote(b, now)
	return true
}
