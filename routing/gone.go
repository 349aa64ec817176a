package routing

import (
	"time"

	"github.com/actormesh/actormesh/session"
)

// goneNodes remembers the nodes the liveness checks or the lookups' failures evicted from the table, and those this
// node banned (Banned, ErrPeerBanned), with the sequence number of the record
// they had, for a while: other nodes' answers and peer stores relay a dead node's record for as long as they hold
// it, and taking it as news put the node straight back, with a fresh LastSeen, to be dialed and evicted again
// (in a small network, a node that had left was re-learned within seconds and dialed about once a second for good).
// A newer record (a node that restarted signs one) or the node's own contact ends it. Bounded in count (the oldest
// goes) and time. It has no goroutines and no clock of its own.
type goneNodes struct {
	max int
	ttl time.Duration
	m   map[session.NodeID]goneNode
}

type goneNode struct {
	seq uint64
	at  time.Time
}

// Bounds of goneNodes: a node is remembered for goneTTL after its eviction, and at most maxGoneNodes at once.
const (
	goneTTL      = 30 * time.Minute
	maxGoneNodes = 1024
)

func newGoneNodes(max int, ttl time.Duration) *goneNodes {
	return &goneNodes{max: max, ttl: ttl, m: make(map[session.NodeID]goneNode)}
}

// add records that id, whose record had sequence number seq, was evicted at now.
func (g *goneNodes) add(id session.NodeID, seq uint64, now time.Time) {
	if _, ok := g.m[id]; !ok && len(g.m) >= g.max {
		var oldest session.NodeID
		first := true
		for other, n := range g.m {
			if first || n.at.Before(g.m[oldest].at) {
				oldest, first = other, false
			}
		}
		delete(g.m, oldest)
	}
	g.m[id] = goneNode{seq: seq, at: now}
}

// holds reports whether a record of id with sequence number seq, heard from another node, is of a node evicted
// within the TTL and no newer than the record it had then.
func (g *goneNodes) holds(id session.NodeID, seq uint64, now time.Time) bool {
	n, ok := g.m[id]
	switch {
	case !ok:
		return false
	case now.Sub(n.at) >= g.ttl:
		delete(g.m, id)
		return false
	}
	return seq <= n.seq
}

// forget ends what is remembered of id: it contacted this node itself, or showed a newer record.
func (g *goneNodes) forget(id session.NodeID) { delete(g.m, id) }

// len returns how many nodes are remembered.
func (g *goneNodes) len() int { return len(g.m) }
