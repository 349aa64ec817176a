package routing

// The routing actor's upkeep: the periodic liveness checks of its table's entries, and the saves of the peer store.

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// armRevalidation arms the timer of the next revalidation tick, a jittered RevalidateInterval away.
func (a *routingActor) armRevalidation() {
	self, root, tick := a.self, a.root, &revalidateTick{from: a}
	a.timer = time.AfterFunc(jittered(a.rng, a.cfg.RevalidateInterval), func() { root.Send(self, tick) })
}

// jittered returns a wait drawn uniformly from [d/2, 3d/2): nodes started together (after an outage, or in a
// simulation) do not check their tables in step, which would make bursts of dials network-wide.
func jittered(rng *rand.Rand, d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	d = min(d, math.MaxInt64/2) // 146 years, never: 3d/2 would overflow into a negative wait
	return d/2 + time.Duration(rng.Int64N(int64(d)))
}

// storeRecords returns the table's records, to be saved to the peer store.
func (a *routingActor) storeRecords() []*messages.NodeRecord {
	var recs []*messages.NodeRecord
	for _, e := range a.table.Entries() {
		if e.Record != nil {
			recs = append(recs, e.Record)
		}
	}
	return recs
}

// startSave saves the table's records to the peer store in a goroutine the actor owns, as marshalling, writing and
// syncing the file would hold up the actor; saveDone reports its end. One runs at a time.
func (a *routingActor) startSave(now time.Time) {
	if a.cfg.StorePath == "" {
		return
	}
	a.lastSave = now
	recs := a.storeRecords()
	if len(recs) == 0 {
		return
	}
	a.saving = true
	save, path, log, self, root, from := a.save, a.cfg.StorePath, a.log, a.self, a.root, a
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		writeStore(save, path, recs, now, log)
		root.Send(self, &saveDone{from: from})
	}()
}

// saveStore saves the table's records to the peer store on the actor: the final save, at Stopping, once the
// actor's goroutines (a periodic save among them) have ended.
func (a *routingActor) saveStore(now time.Time) {
	if a.cfg.StorePath == "" {
		return
	}
	a.lastSave = now
	if recs := a.storeRecords(); len(recs) > 0 {
		writeStore(a.save, a.cfg.StorePath, recs, now, a.log)
	}
}

// saveFunc writes a peer store file, as SaveStore.
type saveFunc func(path string, records []*messages.NodeRecord, now time.Time) error

// writeStore writes records to the peer store at path with save (a small file, written atomically); errors are
// logged.
func writeStore(save saveFunc, path string, records []*messages.NodeRecord, now time.Time, log zerolog.Logger) {
	if err := save(path, records, now); err != nil {
		log.Warn().Err(err).Msg("saving the peer store")
		return
	}
	log.Debug().Int("records", len(records)).Str("path", path).Msg("peer store saved")
}

// revalidate checks the least recently seen entry that has answered the node when such a check is due
// (RevalidateAnsweredInterval), otherwise the nearest neighbour that has not answered, otherwise the least recently
// seen of the others; never one being checked already, nor one found busy until the others have been checked.
func (a *routingActor) revalidate(now time.Time) {
	if !a.check(now) && len(a.busy) > 0 {
		clear(a.busy) // every entry left to check was busy: a new round
		a.check(now)
	}
}

// check starts the liveness check revalidate chooses, passing over the entries being checked, those found busy and
// the failed ones whose next check would not count yet (Table.CheckDue: TableConfig.FailureSpacing after the
// failure counted last); it reports false if there was no entry to check. A check that could not start
// (MaxInFlight exchanges in progress: Stats.ExchangesDropped) leaves the answered entries' check due, for the next
// tick.
func (a *routingActor) check(now time.Time) bool {
	skip := func(id session.NodeID) bool { return a.passedOver(id) || !a.table.CheckDue(id, now) }
	if !now.Before(a.answeredDue) {
		if e, ok := a.table.StalestOf(true, skip); ok {
			if a.checkEntry(e) {
				a.answeredDue = now.Add(jittered(a.rng, a.cfg.RevalidateAnsweredInterval))
			}
			return true
		}
	}
	// The neighbours first: a check is an exchange that introduces this node to the checked one (docs/ARCHITECTURE.md,
	// Discovery).
	if e, ok := a.table.NearestUnanswered(a.cfg.Table.K, skip); ok {
		a.checkEntry(e)
		return true
	}
	if e, ok := a.table.StalestOf(false, skip); ok {
		a.checkEntry(e)
		return true
	}
	return false
}

// passedOver tells whether a check of id is to wait: one is in progress, or id was found busy (deferCheck).
func (a *routingActor) passedOver(id session.NodeID) bool {
	_, busy := a.busy[id]
	return a.checking[id] || busy
}

// checkEntry starts the liveness check of a table entry at the address the table holds for it: the node's address
// book is bounded and may have forgotten it (a dial without an address would first look the node up in the DHT).
// It reports whether the check started (exchange).
func (a *routingActor) checkEntry(e Entry) bool {
	a.net.AddAddress(e.ID, e.Addr)
	return a.exchange(e.ID, a.table.SelfKey(), true)
}

// maxDeferred bounds routingActor.busy, in table buckets' worth (K each): past it a new round starts.
const maxDeferred = 4

// deferCheck makes revalidate pass over peer, found busy (up, or this node out of connection slots), until it has
// checked the others.
func (a *routingActor) deferCheck(peer session.NodeID) {
	if len(a.busy) >= maxDeferred*a.cfg.Table.K {
		clear(a.busy)
	}
	a.busy[peer] = struct{}{}
}

// checkStalled tells whether a failed request (a liveness check) with the given deadline, sent and ended at the given
// times, failed because this node ran late rather than the peer: the goroutine that sends it started a quarter of
// timeout or more after the actor fixed its deadline, or noticed its outcome a quarter of timeout or more past the
// deadline. Either says the node's own goroutines waited that long to run (a CPU-starved host): the peer had less
// than its due to answer, or its answer sat unread. Such a failure counts neither for nor against the peer (as
// ErrPeerBusy); a review's 500-node run on a loaded 2-core host saw checks end up to 4 s past their 2 s timeout, and
// one send its request with its deadline already gone.
func checkStalled(deadline, sent, ended time.Time, timeout time.Duration) bool {
	slack := timeout / 4
	return deadline.Sub(sent) <= timeout-slack || ended.Sub(deadline) >= slack
}
