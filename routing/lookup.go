package routing

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// Defaults of NewLookup.
const (
	// DefaultAlpha is the number of parallel requests of a lookup.
	DefaultAlpha = 3
	// DefaultK is the number of closest nodes a lookup looks for.
	DefaultK = 20
	// DefaultBeta is how many of the closest candidates must have answered for a lookup to end (go-libp2p
	// kad-dht's resiliency parameter): the k closest are then known from their answers without asking each one.
	DefaultBeta = 3
	// CandidateFactor bounds a lookup's candidate set to CandidateFactor*k entries, so that a responder returning
	// many entries cannot make it grow.
	CandidateFactor = 3
)

// candState is where a lookup candidate stands.
type candState uint8

const (
	fresh    candState = iota // known, not asked yet
	waiting                   // asked, no answer yet
	answered                  // answered
	failed                    // asked, did not answer
)

// candidate is a node a lookup knows of.
type candidate struct {
	e     Entry
	depth int // 1 for a seed, 1 + the depth of the node that told us about it otherwise
	state candState
}

// Lookup is an iterative Kademlia lookup for the k nodes closest to a target, as a state machine with no I/O: the
// caller sends a FindNode to each entry Next returns and reports each outcome with Succeeded or Failed, calling Next
// again after each, until Done. It keeps at most CandidateFactor*k candidates (the closest known), never asks a node
// twice and ignores itself and unsolicited answers. A Lookup is not safe for concurrent use.
type Lookup struct {
	target         Key
	self           session.NodeID
	alpha, beta, k int
	limit          int // most candidates kept

	cands    []*candidate                  // closest first; no failed ones
	known    map[session.NodeID]*candidate // cands, plus every node asked
	inFlight int
	queried  int
	answered int
	rounds   int
	// unreached are the nodes reported Unreachable, in the order reported: at most one entry per node asked.
	unreached []session.NodeID
}

// NewLookup starts a lookup for target on behalf of the node self, from seeds (typically the local table's
// Closest(target, k)), with alpha parallel requests, looking for the k closest nodes; it ends once the beta closest
// candidates have answered. alpha and k values below 1 mean DefaultAlpha and DefaultK; a beta below 1 or above k
// means k: the classic lookup, which asks each of the k closest.
func NewLookup(target Key, self session.NodeID, seeds []Entry, alpha, beta, k int) *Lookup {
	if alpha < 1 {
		alpha = DefaultAlpha
	}
	if k < 1 {
		k = DefaultK
	}
	if beta < 1 || beta > k {
		beta = k
	}
	l := &Lookup{
		target: target, self: self, alpha: alpha, beta: beta, k: k, limit: CandidateFactor * k,
		known: make(map[session.NodeID]*candidate),
	}
	l.merge(seeds, 1)
	return l
}

// Target returns the key looked up.
func (l *Lookup) Target() Key { return l.target }

// merge adds entries learned at the given depth to the candidates.
func (l *Lookup) merge(found []Entry, depth int) {
	for _, e := range found {
		if e.ID == l.self || e.ID.IsZero() {
			continue
		}
		if c, ok := l.known[e.ID]; ok {
			if c.state == fresh && depth < c.depth {
				c.depth = depth
			}
			if e.Record.GetSeq() > c.e.Record.GetSeq() {
				// A newer record of the node (it moved): its address, not the first one heard, is the one to ask
				// and to report; an old record replayed first must not win.
				c.e.Addr, c.e.Record = e.Addr, e.Record
			}
			continue
		}
		e.Key = KeyOf(e.ID)
		if len(l.cands) >= l.limit && DistCmp(l.target, e.Key, l.cands[len(l.cands)-1].e.Key) > 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(l.cands, e.Key, func(c *candidate, k Key) int {
			return DistCmp(l.target, c.e.Key, k)
		})
		c := &candidate{e: e, depth: depth}
		l.cands = slices.Insert(l.cands, i, c)
		l.known[e.ID] = c
		if len(l.cands) > l.limit {
			last := l.cands[len(l.cands)-1]
			l.cands[len(l.cands)-1] = nil
			l.cands = l.cands[:len(l.cands)-1]
			if last.state == fresh { // asked nodes stay known, so they are never asked again
				delete(l.known, last.e.ID)
			}
		}
	}
}

// Next returns up to alpha minus the requests in flight of the closest candidates not asked yet, and marks them in
// flight. Only candidates among the k closest that have not failed are asked.
func (l *Lookup) Next() []Entry {
	var out []Entry
	for i := 0; i < len(l.cands) && i < l.k && l.inFlight < l.alpha; i++ {
		c := l.cands[i]
		if c.state != fresh {
			continue
		}
		c.state = waiting
		l.inFlight++
		l.queried++
		l.rounds = max(l.rounds, c.depth)
		out = append(out, c.e)
	}
	return out
}

// Succeeded reports the answer of from, the nodes it returned; they join the candidates (deduplicated, without the
// lookup's own node, within the bound). An answer from a node not in flight is ignored.
func (l *Lookup) Succeeded(from session.NodeID, found []Entry) {
	c, ok := l.known[from]
	if !ok || c.state != waiting {
		return
	}
	c.state = answered
	l.inFlight--
	l.answered++
	l.merge(found, c.depth+1)
}

// Failed reports that from did not answer (error or timeout); it is dropped from the candidates and never asked
// again. A report for a node not in flight is ignored.
func (l *Lookup) Failed(from session.NodeID) { l.fail(from, false) }

// Unreachable is Failed for a failure that says from is not there (its request timed out, or its dial failed),
// which the caller holds against its table: Unreached lists from.
func (l *Lookup) Unreachable(from session.NodeID) { l.fail(from, true) }

// Unreached returns the nodes reported Unreachable, in the order reported, when at least one node answered the
// lookup; nil when none did: a lookup that reached nobody says more about this node's own network (down, or
// cut off) than about the nodes it asked, which its caller must not hold against them all.
func (l *Lookup) Unreached() []session.NodeID {
	if l.answered == 0 {
		return nil
	}
	return slices.Clone(l.unreached)
}

func (l *Lookup) fail(from session.NodeID, unreachable bool) {
	c, ok := l.known[from]
	if !ok || c.state != waiting {
		return
	}
	if unreachable {
		l.unreached = append(l.unreached, from)
	}
	c.state = failed
	l.inFlight--
	if i := slices.Index(l.cands, c); i >= 0 {
		l.cands = slices.Delete(l.cands, i, i+1)
	}
}

// Done reports whether the lookup is over: the beta closest candidates still standing have answered (requests
// still in flight to farther ones are no longer needed), or no request is in flight and each of the k closest
// candidates still standing has answered (which includes the case where no candidate is left to ask).
func (l *Lookup) Done() bool {
	if l.beta < l.k && len(l.cands) >= l.beta {
		done := true
		for _, c := range l.cands[:l.beta] {
			done = done && c.state == answered
		}
		if done {
			return true
		}
	}
	if l.inFlight > 0 {
		return false
	}
	for i := 0; i < len(l.cands) && i < l.k; i++ {
		if l.cands[i].state == fresh {
			return false
		}
	}
	return true
}

// Result returns the (up to) k closest nodes that answered, closest first; when the lookup ended on its beta
// closest, the k closest candidates still standing (the farther ones known from answers, not asked).
func (l *Lookup) Result() []Entry {
	var out []Entry
	for _, c := range l.cands {
		if len(out) == l.k {
			break
		}
		if c.state == answered || l.beta < l.k {
			out = append(out, c.e)
		}
	}
	return out
}

// Rounds returns the hop count of the lookup so far: the greatest depth of a node asked, where seeds have depth 1
// and a node learned from the answer of a node of depth d has depth d+1 (the lowest such depth, if learned more
// than once before being asked).
func (l *Lookup) Rounds() int { return l.rounds }

// Queried returns how many requests the lookup has issued.
func (l *Lookup) Queried() int { return l.queried }

// Answered returns how many of the nodes asked have answered (Succeeded): 0 after Queried requests means the
// lookup learned nothing from anybody, which its caller should not take for an empty neighbourhood (ErrNoAnswer).
func (l *Lookup) Answered() int { return l.answered }

// InFlight returns how many requests are awaiting an answer.
func (l *Lookup) InFlight() int { return l.inFlight }

// Get returns the entry of id if the lookup learned of it (from a seed or an answer), whether or not it was asked
// and answered.
func (l *Lookup) Get(id session.NodeID) (Entry, bool) {
	c, ok := l.known[id]
	if !ok {
		return Entry{}, false
	}
	return c.e, true
}

// Found reports whether the lookup has learned of id, from a seed or an answer, and still keeps it as a candidate
// or has asked it.
func (l *Lookup) Found(id session.NodeID) bool {
	_, ok := l.known[id]
	return ok
}
