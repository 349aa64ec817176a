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
// (doubling at each repeat, up to distrustMaxBeats). An interior node can withhold as well, so a node whose parent
// is not the root leaves its parent first, for distrustBeats (shunParent), and gives the root up only if that does
// not help. Only what the node saw itself counts, nothing a peer claims, and from several peers: one hostile peer
// delivering messages ahead of the tree cannot move it.
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
	crossed  uint16 // of those, the ones that crossed over from a lesser tree
	next     int
	from     [distrustWindow]session.NodeID
}

// add records a message accepted from peer.
func (w *repairWindow) add(peer session.NodeID, repaired, crossed bool) {
	w.repaired = w.repaired<<1 | b2u(repaired)
	w.crossed = w.crossed<<1 | b2u(repaired && crossed)
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
// root. A node whose parent is not the root suspects the parent first (shunParent). It tells whether the node must
// find its place again (the root given up, or the parent left).
func (r *Router) noteRepaired(t *topic, peer session.NodeID, pulled, crossed bool) bool {
	ts := t.tree
	mine := ts.root != r.cfg.Self
	settled := mine && r.beats-ts.movedBeat >= distrustSettleBeats
	ts.recent.add(peer, (pulled || crossed) && settled, crossed) // a move clears it (updateTree)
	ts.fromParent.add(peer, pulled && mine && r.beats-ts.parentBeat >= distrustSettleBeats, false)
	canShun := ts.parent != ts.root && (ts.shunBeat == 0 || r.beats-ts.shunBeat >= distrustBeats)
	if canShun && ts.recent.crossed == 0 && ts.fromParent.count() >= distrustRepaired && ts.fromParent.peers() >= distrustPeers {
		r.shunParent(ts) // pulled since the parent was taken, however the node's distance moved meanwhile
		return true
	}
	if !settled {
		return false
	}
	if ts.recent.count() < distrustRepaired || ts.recent.peers() < distrustPeers { // peers only past the count
		return false
	}
	if canShun && ts.recent.crossed == 0 {
		r.shunParent(ts)
		return true
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

// shunParent leaves the node's parent for distrustBeats heartbeats: the first suspect of withheld messages is the
// nearest link. An interior node may withhold what it should forward (its children then pull everything from their
// other peers), and giving the root up for it made every node of the network leave a sound root
// (TestSimulationAWithholdingParentIsLeftNotTheRoot). The root is given up only when repairs go on under another
// parent within distrustBeats, when the parent is the root, or when repaired messages crossed over from a lesser
// tree (nodes have left the root already).
func (r *Router) shunParent(ts *treeState) {
	if ts.shunned == nil {
		ts.shunned = make(map[session.NodeID]uint64)
	}
	for id, until := range ts.shunned {
		if r.beats >= until {
			delete(ts.shunned, id)
		}
	}
	if len(ts.shunned) < maxDistrusted {
		ts.shunned[ts.parent] = r.beats + distrustBeats
	}
	ts.shunBeat = max(r.beats, 1)
	ts.recent, ts.fromParent = repairWindow{}, repairWindow{}
	r.stats.TreeShunned++
}

// shunned tells whether peer is a parent left for withholding messages.
func (r *Router) shunned(ts *treeState, peer session.NodeID) bool {
	until, ok := ts.shunned[peer]
	return ok && r.beats < until
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
	// The cross links are the peers whose fresh report names another root (cached with the tree links, which the
	// message takes next anyway); in a settled tree there are none, and the check costs no map lookup.
	if !slices.Contains(r.crossLinks(t), peer) {
		return false
	}
	ts := t.tree
	v := ts.views[peer]
	return outranks(ts.rootRank, ts.root, v.info.RootRank, v.info.Root)
}
