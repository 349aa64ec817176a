package gossip

import (
	"bytes"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// maxTreeDist bounds the distance a tree report may claim; longer ones are ignored, which ends any count to
// infinity after a loss of the root.
const maxTreeDist = 64

// rankStep is the number of topic peers per rank step (see treeRank); maxTreeRank bounds the rank a report may
// claim.
const (
	rankStep    = 4
	maxTreeRank = 1 << 16
)

// treeRank is the rank a node with peers topic peers announces, given the one it announced so far: one step per
// rankStep peers, moved only once the count leaves the current step by more than one peer, so that a peer coming
// and going at a step's edge does not move the root.
func treeRank(prev, peers int) int {
	if r := peers / rankStep; r != prev && (peers > (prev+1)*rankStep || peers < prev*rankStep-1) {
		return min(r, maxTreeRank)
	}
	return prev
}

// outranks tells whether a root of rank ra and id a is preferred to one of rank rb and id b: the higher rank, then
// the smaller id.
func outranks(ra int, a session.NodeID, rb int, b session.NodeID) bool {
	return ra > rb || ra == rb && bytes.Compare(a[:], b[:]) < 0
}

// TreeInfo is a node's place in the broadcast tree of a topic, as it reports it to its topic peers (Config.Tree).
type TreeInfo struct {
	Topic string
	// Root is the node the tree is rooted at, RootRank the rank the root announced (its topic peers, see
	// Config.Tree), Seq the latest beacon of the root the reporter heard of.
	Root     session.NodeID
	RootRank int
	Seq      uint64
	// Dist is the reporter's distance to the root in hops. Parent is its next hop there when that is the receiver
	// of the report, zero otherwise (and at the root): a report only needs to tell its receiver whether it is the
	// reporter's parent.
	Dist   int
	Parent session.NodeID
}

type treeView struct {
	info TreeInfo
	beat uint64 // the heartbeat count when it was received
}

// treeState is a joined topic's spanning-tree state.
type treeState struct {
	root     session.NodeID
	rootRank int // the rank the root announced
	rank     int // this node's own rank, announced while it is the root
	seq      uint64
	dist     int
	parent   session.NodeID
	advanced uint64 // the heartbeat count when seq last advanced
	beacon   uint64 // this node's own beacon counter, advanced each heartbeat while it is the root
	views    map[session.NodeID]treeView
	dead     map[session.NodeID]deadRoot // roots given up; they count again with a newer beacon
	cands    []rootCandidate             // scratch space of updateTree
}

// rootCandidate is a root heard of in fresh reports: its latest beacon and the rank announced with it.
type rootCandidate struct {
	id   session.NodeID
	seq  uint64
	rank int
}

type deadRoot struct {
	seq  uint64 // the last beacon heard
	beat uint64 // when it was given up
}

func (r *Router) newTree() *treeState {
	return &treeState{root: r.cfg.Self, advanced: r.beats, views: make(map[session.NodeID]treeView),
		dead: make(map[session.NodeID]deadRoot)}
}

// treeLinks returns the tree links of a joined topic: the parent and the peers that report this node as their
// parent. Nil without Config.Tree.
func (r *Router) treeLinks(t *topic) []session.NodeID {
	ts := t.tree
	if ts == nil {
		return nil
	}
	var out []session.NodeID
	if !ts.parent.IsZero() {
		out = append(out, ts.parent)
	}
	for _, id := range t.peers {
		if v, ok := ts.views[id]; ok && v.info.Parent == r.cfg.Self && v.info.Root == ts.root && r.fresh(v) && id != ts.parent {
			out = append(out, id)
		}
	}
	return out
}

// TreeLinks returns the tree links of a topic (Config.Tree): its parent, zero at the root, and its children.
func (r *Router) TreeLinks(name string) (root, parent session.NodeID, dist int, links []session.NodeID) {
	t := r.topics[name]
	if t == nil || t.tree == nil {
		return root, parent, 0, nil
	}
	return t.tree.root, t.tree.parent, t.tree.dist, r.treeLinks(t)
}

// TreeRank returns the rank this node announces on a topic (Config.Tree): one step per four topic peers.
func (r *Router) TreeRank(name string) int {
	if t := r.topics[name]; t != nil && t.tree != nil {
		return t.tree.rank
	}
	return 0
}

func (r *Router) fresh(v treeView) bool { return r.beats-v.beat <= uint64(r.cfg.TreeStaleBeats) }

// HandleTree takes a peer's tree report for a topic.
func (r *Router) HandleTree(now time.Time, from session.NodeID, info TreeInfo) Output {
	now = r.clock(now)
	var b builder
	r.handleTree(&b, from, info)
	return b.result()
}

func (r *Router) handleTree(b *builder, from session.NodeID, info TreeInfo) {
	t := r.topics[info.Topic]
	p := r.peers[from]
	if t == nil || t.tree == nil || p == nil || info.Dist < 0 || info.Dist >= maxTreeDist || info.RootRank < 0 ||
		info.RootRank > maxTreeRank {
		return
	}
	if _, ok := p.topics[info.Topic]; !ok {
		return
	}
	t.tree.views[from] = treeView{info: info, beat: r.beats}
	r.updateTree(b, info.Topic, t)
}

// usable tells whether a root's beacon seq is not one given up on.
func (ts *treeState) usable(root session.NodeID, seq uint64) bool {
	d, dead := ts.dead[root]
	return !dead || seq > d.seq
}

// updateTree chooses the root, the parent and the distance. The root is the best usable candidate among this node
// and the roots of the peers' fresh reports: the highest rank (as announced with the candidate's latest beacon),
// then the smallest id, so that the tree hangs from a well-connected node and is shallow. The parent is the peer
// nearest that root (the current parent on a tie). A change of place is reported at once to the topic's peers, so
// that the tree settles within round trips rather than heartbeats.
func (r *Router) updateTree(b *builder, name string, t *topic) {
	ts := t.tree
	self := r.cfg.Self
	cands := ts.cands[:0]
	for _, v := range ts.views {
		if !r.fresh(v) || !ts.usable(v.info.Root, v.info.Seq) || v.info.Root == self {
			continue
		}
		i := slices.IndexFunc(cands, func(c rootCandidate) bool { return c.id == v.info.Root })
		switch {
		case i < 0:
			cands = append(cands, rootCandidate{id: v.info.Root, seq: v.info.Seq, rank: v.info.RootRank})
		case v.info.Seq > cands[i].seq || v.info.Seq == cands[i].seq && v.info.RootRank > cands[i].rank:
			cands[i].seq, cands[i].rank = v.info.Seq, v.info.RootRank
		}
	}
	ts.cands = cands
	root, rank, seq := self, ts.rank, ts.beacon
	for _, c := range cands {
		if outranks(c.rank, c.id, rank, root) {
			root, rank, seq = c.id, c.rank, c.seq
		}
	}
	var parent session.NodeID
	dist := 0
	if root != self {
		best := maxTreeDist
		for id, v := range ts.views {
			if !r.fresh(v) || v.info.Root != root || v.info.Parent == self || !ts.usable(root, v.info.Seq) {
				continue
			}
			d := v.info.Dist + 1
			if d < best || d == best && (id == ts.parent || parent != ts.parent && bytes.Compare(id[:], parent[:]) < 0) {
				best, parent = d, id
			}
		}
		dist = best
		if parent.IsZero() { // only reports that route through this node: be a root until something better comes
			root, rank, dist, seq = self, ts.rank, 0, ts.beacon
		}
	}
	if root != ts.root || seq > ts.seq {
		ts.advanced = r.beats
	}
	changed := root != ts.root || parent != ts.parent || dist != ts.dist || rank != ts.rootRank
	ts.root, ts.rootRank, ts.parent, ts.dist, ts.seq = root, rank, parent, dist, seq
	if changed {
		r.reportTree(b, name, t, t.peers)
	}
}

// reportTree sends the node's tree report to the given peers.
func (r *Router) reportTree(b *builder, name string, t *topic, to []session.NodeID) {
	ts := t.tree
	for _, id := range to {
		info := TreeInfo{Topic: name, Root: ts.root, RootRank: ts.rootRank, Seq: ts.seq, Dist: ts.dist}
		if id == ts.parent {
			info.Parent = ts.parent
		}
		c := b.control(id)
		c.Tree = append(c.Tree, info)
	}
	r.stats.TreeReports += uint64(len(to))
}

// treeHeartbeat advances the node's beacon when it is the root, gives up a root whose beacon stopped, forgets
// stale reports and sends the node's report: to every topic peer if its place changed, and otherwise on every
// other heartbeat, or on this one to the peers that control goes to anyway (it then costs no message of its own).
// Reports thus reach every peer at least every second heartbeat, well within TreeStaleBeats.
func (r *Router) treeHeartbeat(b *builder, name string, t *topic) {
	ts := t.tree
	ts.beacon++
	if r.cfg.TreeRanked {
		ts.rank = treeRank(ts.rank, len(t.peers))
	}
	for id, v := range ts.views {
		if !r.fresh(v) {
			delete(ts.views, id)
		}
	}
	for root, d := range ts.dead {
		if r.beats-d.beat > uint64(16*r.cfg.TreeStaleBeats) {
			delete(ts.dead, root) // by then no report of its old beacons is fresh any more
		}
	}
	if ts.root == r.cfg.Self {
		ts.seq = ts.beacon
		ts.advanced = r.beats
	} else if r.beats-ts.advanced > uint64(r.cfg.TreeStaleBeats) {
		ts.dead[ts.root] = deadRoot{seq: ts.seq, beat: r.beats} // its beacon stopped: it left or the path broke
	}
	before := *ts
	r.updateTree(b, name, t)
	if ts.root != before.root || ts.parent != before.parent || ts.dist != before.dist || ts.rootRank != before.rootRank {
		return // reported already
	}
	if r.beats%2 == 0 {
		r.reportTree(b, name, t, t.peers)
		return
	}
	for _, id := range t.peers {
		if b.ctl[id] != nil {
			r.reportTree(b, name, t, []session.NodeID{id})
		}
	}
}
