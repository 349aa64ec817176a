package gossip

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// Root-cause notices: after a failure, the nodes below it are told which tree link broke, so that they do not try,
// one after the other, the stale routes their peers still report (docs/ARCHITECTURE.md, "Keeping the tree sound").

// TreeCut is a link of a topic's tree found broken: the node Child lost its parent Parent (both named as in a
// path, see pathID). A route reported before the break may still run through it: a node that knows of the cut
// takes no such route (a root-cause notice, as BGP-RCN's), so that after a failure the nodes below it do not try,
// one after the other, the stale routes of their peers (path exploration). TTL is the number of heartbeats the
// receiver keeps it, at most as long as a cut of its own (cutBeats: a peer's TTL is its word); it reports it on
// with one less.
type TreeCut struct {
	Parent, Child uint32
	TTL           int
}

// maxTreeCuts bounds the cuts a node keeps and reports (a report with more is ignored). A node that keeps as many
// takes no more until some expire: were the oldest dropped for them, a cut dropped and heard of again would count
// as news, go round again and move nodes again. A failure of 20% of 200 nodes cuts 40-60 links.
const maxTreeCuts = 128

// maxLostPeers bounds the topic peers a node remembers it lost lately (treeState.lost); the oldest go first.
const maxLostPeers = 16

type treeCut struct {
	parent, child uint32
	expires       uint64 // heartbeat count
	at            uint64 // heartbeat count when it came
	seq           uint64 // treeState.cutSeq when it came
}

// parentGraceBeats is how many heartbeat counts a node keeps a parent whose route runs through a cut (or a lost
// peer) it heard of since: below a cut, the parent still reports its route from before the cut until the news
// comes down to it (a longer route reaches the children on the next heartbeat) while the part of the tree it
// hangs from reattaches, and the nodes that moved away from it meanwhile would only churn the tree.
const parentGraceBeats = 2

// brokenRoute tells whether a route's path runs through a link known broken (TreeCut) or through a topic peer this
// node lost lately, except as the path's first node (a route to a root this node lost its own connection to is
// sound), counting only the cuts and losses that came before heartbeat count before.
func (ts *treeState) brokenRoute(path []uint32, before uint64) bool {
	if len(ts.cuts) == 0 && len(ts.lost) == 0 {
		return false
	}
	for i := 1; i < len(path); i++ {
		for _, c := range ts.lost {
			if c.child == path[i] && c.at < before {
				return true
			}
		}
		for _, c := range ts.cuts {
			if c.child == path[i] && c.parent == path[i-1] && c.at < before {
				return true
			}
		}
	}
	return false
}

// cutBeats is how many heartbeats a node that lost its parent has the cut reported: viewBeats + TreeStaleBeats,
// as a report from before the cut stays fresh for viewBeats and the cut takes heartbeats to reach every node.
func (r *Router) cutBeats() int { return int(r.viewBeats()) + r.cfg.TreeStaleBeats }

// addCut records a broken link until heartbeat count expires. It tells whether the link was new.
func (r *Router) addCut(ts *treeState, parent, child uint32, expires uint64) bool {
	if len(ts.cuts) >= maxTreeCuts { // first: a full table takes nothing, and costs no pass over itself
		return false
	}
	for _, c := range ts.cuts {
		if c.parent == parent && c.child == child {
			return false
		}
	}
	ts.cutSeq++
	ts.cuts = append(ts.cuts, treeCut{parent: parent, child: child, expires: expires, at: r.beats, seq: ts.cutSeq})
	r.stats.TreeCuts++
	return true
}

// lostPeer records that a topic peer was lost (its connection closed or it left the topic), and if it was the
// parent, the cut, which the new place is reported with to every topic peer.
func (r *Router) lostPeer(ts *treeState, id session.NodeID) {
	pid := pathID(id)
	ts.lost = slices.DeleteFunc(ts.lost, func(c treeCut) bool { return c.child == pid })
	if len(ts.lost) >= maxLostPeers {
		ts.lost = slices.Delete(ts.lost, 0, 1)
	}
	// Kept as long as a report naming a route through it can stay fresh.
	ts.lost = append(ts.lost, treeCut{child: pid, expires: r.beats + r.viewBeats(), at: r.beats})
	if id == ts.parent {
		r.addCut(ts, pid, pathID(r.cfg.Self), r.beats+uint64(r.cutBeats()))
		ts.orphaned = true
	}
}

// expireCuts forgets the cuts and lost peers whose time is over.
func (r *Router) expireCuts(ts *treeState) {
	over := func(c treeCut) bool { return c.expires <= r.beats }
	ts.cuts = slices.DeleteFunc(ts.cuts, over)
	ts.lost = slices.DeleteFunc(ts.lost, over)
}

// cutsFor returns the cuts a report to peer id carries: those not reported to it yet, each with one heartbeat less
// than this node keeps it (none that would arrive with none left).
func (r *Router) cutsFor(ts *treeState, id session.NodeID) []TreeCut {
	sent := ts.cutSent[id]
	if sent == ts.cutSeq {
		return nil
	}
	if ts.cutSent == nil {
		ts.cutSent = make(map[session.NodeID]uint64)
	}
	ts.cutSent[id] = ts.cutSeq
	var out []TreeCut
	for _, c := range ts.cuts {
		if c.seq > sent && c.expires > r.beats+1 {
			out = append(out, TreeCut{Parent: c.parent, Child: c.child, TTL: int(c.expires-r.beats) - 1})
		}
	}
	return out
}

// owesCuts tells whether peer id is owed a cut (cutsFor) that would still reach it with time left.
func (r *Router) owesCuts(ts *treeState, id session.NodeID) bool {
	sent := ts.cutSent[id]
	if sent == ts.cutSeq {
		return false
	}
	for _, c := range ts.cuts {
		if c.seq > sent && c.expires > r.beats+1 {
			return true
		}
	}
	return false
}
