package bootstrap

import (
	"bytes"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// refreshSchedule decides when the bootstrapper refreshes the routing table. A young table is refreshed often: the
// gap starts at the step interval and doubles up to the full refresh interval, so that the node learns its
// neighbours that joined after it. Once two self-lookups in a row, at least settleSteps step intervals apart, find
// the same neighbourhood, nobody new is joining near the node (and later joiners announce themselves to their
// neighbourhood by their own lookups, which the routing table learns from), so the gap jumps to the full interval:
// a settled network pays no more early refreshes, each of which costs handshakes with nodes not connected. Two
// lookups a few seconds apart are no proof: while a whole network joins at once, the few nodes a lookup asks
// (routing.DefaultBeta) may not know yet a neighbour that joined with everyone else, and two such lookups agreed
// without it; the node then missed that neighbour until its first full refresh, minutes later (`node sim discovery
// -n 500` unconverged after 2 minutes in about one run of ten). The waits of the full interval go through jitter,
// so that nodes that joined together do not refresh in step. It has no goroutines and no clock of its own.
type refreshSchedule struct {
	first, full time.Duration
	jitter      func(time.Duration) time.Duration // nil: no jitter
	last        time.Time
	gap         time.Duration    // doubles from first up to full
	wait        time.Duration    // the gap, through jitter once it is full
	neighbours  []session.NodeID // the last self-lookup's closest nodes, sorted; nil before the first
}

// newRefreshSchedule returns the schedule of a table that has not joined yet; jitter (nil: none) draws each wait
// of the full interval from it.
func newRefreshSchedule(first, full time.Duration, jitter func(time.Duration) time.Duration) *refreshSchedule {
	return &refreshSchedule{first: first, full: full, jitter: jitter}
}

// due reports whether a refresh should start at now.
func (r *refreshSchedule) due(now time.Time) bool { return now.Sub(r.last) >= r.wait }

// setGap makes g the gap to the next refresh.
func (r *refreshSchedule) setGap(g time.Duration) {
	r.gap, r.wait = g, g
	if g >= r.full && r.jitter != nil {
		r.wait = r.jitter(g)
	}
}

// start records a refresh starting at now. full reports whether it is a full refresh (a random lookup besides the
// self-lookup), which the early ones are not: they are about the neighbourhood; the distant buckets filled at the
// join.
func (r *refreshSchedule) start(now time.Time) (full bool) {
	full = r.gap >= r.full
	r.last = now
	if r.gap >= r.full/2 { // doubled, it reaches the full interval (and 2*gap could overflow)
		r.setGap(r.full)
	} else {
		r.setGap(min(max(2*r.gap, r.first), r.full))
	}
	return full
}

// restart makes r a young table's schedule again, started at now by a join: the gap starts at the first one and
// the neighbourhood is forgotten.
func (r *refreshSchedule) restart(now time.Time) {
	r.gap, r.neighbours = 0, nil
	r.start(now)
}

// settleSteps is how many step intervals apart two self-lookups that agree must be to end the early refreshes
// (16 s with the default Interval of 2 s: the refreshes at 2, 6, 14 and 30 s after the join, at least).
const settleSteps = 8

// neighbourhood records the closest nodes a self-lookup found; the same set as the last one's, at least settleSteps
// step intervals before, ends the early refreshes. Below the full interval each gap is twice the one before, so the
// gap just elapsed is half the one now set.
func (r *refreshSchedule) neighbourhood(closest []session.NodeID) {
	ids := slices.Clone(closest)
	slices.SortFunc(ids, func(a, b session.NodeID) int { return bytes.Compare(a[:], b[:]) })
	if r.neighbours != nil && slices.Equal(r.neighbours, ids) && r.gap < r.full && r.gap/2 >= settleSteps*r.first {
		r.setGap(r.full)
	}
	r.neighbours = ids
}
