package gossip

import (
	"bytes"
	"time"

	"github.com/actormesh/actormesh/session"
)

// maxTreeDist bounds the distance a tree report may claim; longer ones are ignored, which ends any count to
// infinity after a loss of the root.
const maxTreeDist = 64

// TreeInfo is a node's place in the broadcast tree of a topic, as it reports it to its topic peers (Config.Tree).
type TreeInfo struct {
	Topic string
	// Root is the node the tree is rooted at, Seq the latest beacon of the root the reporter heard of.
	Root session.NodeID
	Seq  uint64
	// Dist is the reporter's distance to the root in hops; Parent its next hop there (zero at the root).
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
	seq      uint64
	dist     int
	parent   session.NodeID
	advanced uint64 // the heartbeat count when seq last advanced
	beacon   uint64 // this node's own beacon counter, advanced each heartbeat while it is the root
	views    map[session.NodeID]treeView
	dead     map[session.NodeID]deadRoot // roots given up; they count again with a newer beacon
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
	if t == nil || t.tree == nil || p == nil || info.Dist < 0 || info.Dist >= maxTreeDist {
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

// updateTree chooses the root (the smallest usable id among this node and the peers' fresh reports), the parent
// (the peer nearest that root, the current parent on a tie) and the distance. A change of place is reported at
// once to the topic's peers, so that the tree settles within round trips rather than heartbeats.
func (r *Router) updateTree(b *builder, name string, t *topic) {
	ts := t.tree
	self := r.cfg.Self
	root := self
	for _, v := range ts.views {
		if r.fresh(v) && ts.usable(v.info.Root, v.info.Seq) && bytes.Compare(v.info.Root[:], root[:]) < 0 {
			root = v.info.Root
		}
	}
	var parent session.NodeID
	dist, seq := 0, ts.beacon
	if root != self {
		seq = 0
		best := maxTreeDist
		for id, v := range ts.views {
			if !r.fresh(v) || v.info.Root != root || v.info.Parent == self || !ts.usable(root, v.info.Seq) {
				continue
			}
			seq = max(seq, v.info.Seq)
			d := v.info.Dist + 1
			if d < best || d == best && (id == ts.parent || parent != ts.parent && bytes.Compare(id[:], parent[:]) < 0) {
				best, parent = d, id
			}
		}
		dist = best
		if parent.IsZero() { // only reports that route through this node: be a root until something better comes
			root, dist, seq = self, 0, ts.beacon
		}
	}
	if root != ts.root || seq > ts.seq {
		ts.advanced = r.beats
	}
	changed := root != ts.root || parent != ts.parent || dist != ts.dist
	ts.root, ts.parent, ts.dist, ts.seq = root, parent, dist, seq
	if changed {
		r.reportTree(b, name, t, t.peers)
	}
}

// reportTree sends the node's tree report to the given peers.
func (r *Router) reportTree(b *builder, name string, t *topic, to []session.NodeID) {
	ts := t.tree
	info := TreeInfo{Topic: name, Root: ts.root, Seq: ts.seq, Dist: ts.dist, Parent: ts.parent}
	for _, id := range to {
		c := b.control(id)
		c.Tree = append(c.Tree, info)
	}
	r.stats.TreeReports += uint64(len(to))
}

// treeHeartbeat advances the node's beacon when it is the root, gives up a root whose beacon stopped, forgets
// stale reports and sends the node's report to every topic peer.
func (r *Router) treeHeartbeat(b *builder, name string, t *topic) {
	ts := t.tree
	ts.beacon++
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
	if ts.root == before.root && ts.parent == before.parent && ts.dist == before.dist {
		r.reportTree(b, name, t, t.peers) // unchanged: the periodic report (a change was reported already)
	}
}
