package gossip

import (
	"math/bits"
	"slices"

	"github.com/actormesh/actormesh/session"
)

// A root that withholds messages: a node can make itself the root (ranks are claimed) and then forward nothing.
// Every message still reaches every node by IHAVE/IWANT, but the root's subtrees exchange messages only that way,
// 0.7-0.8 s late. What shows it is the repair itself: in a sound tree no message has to be pulled, while under a
// withholding root many nodes of every subtree pull the messages the others published. A message that came first
// from a tree whose root this node's root outranks counts too: those nodes left the node's root (crossLinks
// brought the message), and once some have, the others get their messages that way rather than pulled. A node
// whose place has not changed for distrustSettleBeats (a move excuses the repairs of what was missed meanwhile) and
// that got distrustRepaired of the last distrustWindow messages it accepted that way, from distrustPeers distinct
// peers at least, gives its root up, as it would a dead one, and does not take it again for distrustBeats heartbeats
// (doubling at each repeat, up to distrustMaxBeats). Only what the node saw itself counts, nothing a peer claims,
// and from several peers: one hostile peer delivering messages ahead of the tree cannot move it.
const (
	distrustWindow      = 16
	distrustRepaired    = 6
	distrustPeers       = 3
	distrustSettleBeats = 3
	distrustBeats       = 60
	distrustMaxBeats    = 960
	maxDistrusted       = 16
)

// distrust is a root given up for withholding messages: until is the heartbeat count it may be taken again,
// beats the length of the last distrust (doubled at the next).
type distrust struct {
	until, beats uint64
}

// repairWindow holds the last distrustWindow messages a node accepted on a topic: bit i of repaired tells whether
// the i-th newest came repaired, from[i] the peer it came from.
type repairWindow struct {
	repaired uint16
	next     int
	from     [distrustWindow]session.NodeID
}

// add records a message accepted from peer.
func (w *repairWindow) add(peer session.NodeID, repaired bool) {
	w.repaired = w.repaired<<1 | b2u(repaired)
	w.from[w.next] = peer
	w.next = (w.next + 1) % distrustWindow
}

// count returns the number of repaired messages in the window.
func (w *repairWindow) count() int { return bits.OnesCount16(w.repaired) }

// peers returns the number of distinct peers the repaired messages of the window came from.
func (w *repairWindow) peers() (peers int) {
	var seen [distrustWindow]session.NodeID
	for age := range distrustWindow {
		if w.repaired&(1<<age) == 0 {
			continue
		}
		if p := w.from[(w.next-1-age+2*distrustWindow)%distrustWindow]; !slices.Contains(seen[:peers], p) {
			seen[peers] = p
			peers++
		}
	}
	return peers
}

// noteRepaired records whether a message accepted from peer on a topic with a tree came repaired (pulled, or crossed
// over from a lesser tree), and gives the root up when distrustRepaired of the window did, from at least
// distrustPeers distinct peers: one peer alone (that announces every message at once and answers the IWANT ahead of
// the tree, or reports a lesser root and pushes every message ahead of it) cannot make its neighbours leave a sound
// root. It tells whether the root was given up.
func (r *Router) noteRepaired(t *topic, peer session.NodeID, repaired bool) bool {
	ts := t.tree
	settled := ts.root != r.cfg.Self && r.beats-ts.movedBeat >= distrustSettleBeats
	ts.recent.add(peer, repaired && settled) // a move clears it (updateTree)
	if !settled {
		return false
	}
	if ts.recent.count() < distrustRepaired || ts.recent.peers() < distrustPeers { // peers only past the count
		return false
	}
	root := ts.root
	if ts.distrusted == nil {
		ts.distrusted = make(map[session.NodeID]distrust)
	}
	d := ts.distrusted[root]
	d.beats = min(max(2*d.beats, distrustBeats), distrustMaxBeats)
	d.until = r.beats + d.beats
	if _, ok := ts.distrusted[root]; !ok && len(ts.distrusted) >= maxDistrusted {
		r.forgetOldestDistrust(ts)
	}
	ts.distrusted[root] = d
	ts.recent = repairWindow{}
	r.stats.TreeDistrusted++
	return true
}

// forgetOldestDistrust drops the distrusted root whose distrust ends first, to make room for another.
func (r *Router) forgetOldestDistrust(ts *treeState) {
	var oldest session.NodeID
	first := true
	for id, d := range ts.distrusted {
		if first || d.until < ts.distrusted[oldest].until {
			oldest, first = id, false
		}
	}
	delete(ts.distrusted, oldest)
}

// distrusted tells whether root is given up for withholding messages.
func (r *Router) distrusted(ts *treeState, root session.NodeID) bool {
	d, ok := ts.distrusted[root]
	return ok && r.beats < d.until
}

// b2u is 1 for true, 0 for false.
func b2u(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

// fromLesserTree tells whether peer's fresh report names a root that this node's root outranks: a message that
// came first from it crossed over (crossLinks) from a tree whose nodes would be in this node's tree, were they not
// giving this node's root up.
func (r *Router) fromLesserTree(t *topic, peer session.NodeID) bool {
	ts := t.tree
	v, ok := ts.views[peer]
	return ok && r.fresh(v) && v.info.Root != ts.root && outranks(ts.rootRank, ts.root, v.info.RootRank, v.info.Root)
}
