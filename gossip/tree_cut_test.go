package gossip

import (
	"slices"
	"testing"
	"time"
)

// pid is how a route's path names peer i.
func pid(i int) uint32 { return pathID(nid(i)) }

// via returns report(root, dist, -1, seq) with the given route's path.
func via(root, dist int, seq uint64, path ...int) TreeInfo {
	ti := report(root, dist, -1, seq)
	for _, i := range path {
		ti.Path = append(ti.Path, pid(i))
	}
	return ti
}

func TestTreeTakesAnotherParentAtOnceWhenItsParentIsLost(t *testing.T) {
	r := treeRouter(t, 4)
	r.HandleTree(t0, nid(2), via(1, 1, 5, 1, 2))
	r.HandleTree(t0, nid(3), via(1, 2, 5, 1, 2, 3)) // a child of 2: its route dies with 2
	r.HandleTree(t0, nid(4), via(1, 2, 5, 1, 6, 4))
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(2) || dist != 2 {
		t.Fatalf("parent %s at %d, want 2 at 2", parent.Short(), dist)
	}
	out := r.RemovePeer(t0, nid(2))
	// No heartbeat: cut off from the tree, the node takes another parent at once. Peer 3 (the smaller id at the
	// same distance) still reports its route through the lost peer: stale.
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(4) || dist != 3 {
		t.Fatalf("after the parent was lost: parent %s at %d, want 4 at 3", parent.Short(), dist)
	}
	// The longer route goes to every topic peer at once, with the cut: the nodes below and around learn that
	// routes through the lost link are stale.
	want := []TreeCut{{Parent: pid(2), Child: pid(self), TTL: r.cutBeats() - 1}}
	for _, i := range []int{1, 3, 4} {
		c, _ := sendsTo(out, nid(i))
		if c == nil || len(c.Tree) != 1 || c.Tree[0].Dist != 3 || !slices.Equal(c.Tree[0].Cuts, want) {
			t.Fatalf("peer %d was not told the new place with the cut at once: %+v", i, c)
		}
	}
}

func TestTreeRefusesRoutesThroughAReportedCut(t *testing.T) {
	r := treeRouter(t, 3)
	// Peer 3 tells that 2 lost its parent, the root; 2's report, not updated yet, comes after: stale.
	cut := via(1, 2, 10, 1, 7, 3)
	cut.Cuts = []TreeCut{{Parent: pid(1), Child: pid(2), TTL: 3}}
	out := r.HandleTree(t0, nid(3), cut)
	r.HandleTree(t0, nid(2), via(1, 1, 10, 1, 2))
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(3) || dist != 3 {
		t.Fatalf("parent %s at %d, want 3 at 3: 2's route runs through the cut", parent.Short(), dist)
	}
	// The cut goes on to each peer once, with a heartbeat less.
	want := []TreeCut{{Parent: pid(1), Child: pid(2), TTL: 2}}
	if c, _ := sendsTo(out, nid(1)); c == nil || len(c.Tree) != 1 || !slices.Equal(c.Tree[0].Cuts, want) {
		t.Fatalf("peer 1 was not told the cut: %+v", c)
	}
	for beat := range 3 {
		out := r.Heartbeat(t0.Add(time.Duration(beat+1) * time.Second))
		for _, s := range out.Send {
			if s.Control != nil && len(s.Control.Tree) > 0 && len(s.Control.Tree[0].Cuts) > 0 {
				t.Fatalf("heartbeat %d: the cut was reported again to %s", beat+1, s.To.Short())
			}
		}
		r.HandleTree(t0, nid(2), via(1, 1, uint64(11+beat), 1, 2))
		echo := via(1, 2, uint64(11+beat), 1, 7, 3) // peer 3 reports it on too, with a heartbeat less each time
		echo.Cuts = []TreeCut{{Parent: pid(1), Child: pid(2), TTL: 2 - beat}}
		r.HandleTree(t0, nid(3), echo)
		if _, parent, _, _ := r.TreeLinks(topicA); beat < 2 && parent != nid(3) {
			t.Fatalf("heartbeat %d: parent %s, want 3 while the cut lasts", beat+1, parent.Short())
		}
	}
	// Three heartbeats on, the cut is forgotten (the echoes did not renew it): 2's route is taken again.
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(2) || dist != 2 {
		t.Fatalf("after the cut's time: parent %s at %d, want 2 at 2", parent.Short(), dist)
	}
}

func TestTreeGivesUpARootEveryRouteToWhichIsCut(t *testing.T) {
	r := treeRouter(t, 3)
	reports := func(seq uint64) {
		// The root failed: its children lost it and took each other as parent before hearing of the other's loss.
		a, b := via(1, 2, seq, 1, 3, 2), via(1, 2, seq, 1, 2, 3)
		a.Cuts = []TreeCut{{Parent: pid(1), Child: pid(2), TTL: 9}}
		b.Cuts = []TreeCut{{Parent: pid(1), Child: pid(3), TTL: 9}}
		r.HandleTree(t0, nid(2), a)
		r.HandleTree(t0, nid(3), b)
	}
	r.HandleTree(t0, nid(1), via(1, 0, 5, 1))
	r.HandleTree(t0, nid(2), via(1, 1, 5, 1, 2))
	r.HandleTree(t0, nid(3), via(1, 1, 5, 1, 3))
	r.RemovePeer(t0, nid(1))
	reports(5)
	// Below a cut, a parent keeps its route from before the cut until the news comes down to it: the node keeps
	// it for parentGraceBeats.
	if root, parent, _, _ := r.TreeLinks(topicA); root != nid(1) || parent != nid(3) {
		t.Fatalf("root %s parent %s, want 1 and 3 (whose route was sound when 2's report came) for now", root.Short(), parent.Short())
	}
	var out Output
	for beat := range parentGraceBeats {
		out = r.Heartbeat(t0.Add(time.Duration(beat+1) * time.Second))
		reports(5)
	}
	// Every route to the root heard of runs through a cut: the node gives the root up (its beacon would take
	// TreeStaleBeats to stop) and roots the tree itself until a better root is heard of.
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(self) || !parent.IsZero() || dist != 0 {
		t.Fatalf("root %s parent %s dist %d, want this node at 0", root.Short(), parent.Short(), dist)
	}
	if c, _ := sendsTo(out, nid(2)); c == nil || len(c.Tree) != 1 || c.Tree[0].Root != nid(self) || c.Tree[0].Dist != 0 {
		t.Fatalf("the new root was not reported at distance 0: %+v", c)
	}
	// A sound route to another root is taken: peer 4 roots its own tree and outranks this node.
	addPeers(t, r, topicA, 4, 4)
	r.HandleTree(t0, nid(4), via(4, 0, 5, 4))
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(4) || parent != nid(4) || dist != 1 {
		t.Fatalf("root %s parent %s dist %d, want 4, 4, 1", root.Short(), parent.Short(), dist)
	}
}

func TestTreeCutsAreBounded(t *testing.T) {
	r := treeRouter(t, 2)
	r.HandleTree(t0, nid(1), via(1, 0, 5, 1))
	many := via(1, 0, 6, 1)
	for i := range maxTreeCuts + 1 {
		many.Cuts = append(many.Cuts, TreeCut{Parent: uint32(i), Child: 7, TTL: 5})
	}
	r.HandleTree(t0, nid(1), many)
	ts := r.topics[topicA].tree
	if len(ts.cuts) != 0 || ts.seq != 5 {
		t.Fatalf("a report with %d cuts was taken (%d cuts kept, beacon %d)", len(many.Cuts), len(ts.cuts), ts.seq)
	}
	// Reports of up to maxTreeCuts each: the node keeps the first maxTreeCuts and takes no more until they expire.
	for k := range 3 {
		next := via(1, 0, uint64(7+k), 1)
		for i := range maxTreeCuts {
			next.Cuts = append(next.Cuts, TreeCut{Parent: uint32(k), Child: uint32(i), TTL: 5 - k})
		}
		r.HandleTree(t0, nid(1), next)
	}
	if len(ts.cuts) != maxTreeCuts || ts.cuts[0].parent != 0 || ts.cuts[maxTreeCuts-1].parent != 0 {
		t.Fatalf("%d cuts kept, from reports %d..%d; want %d, all from the first", len(ts.cuts), ts.cuts[0].parent,
			ts.cuts[len(ts.cuts)-1].parent, maxTreeCuts)
	}
	for i := 1; i <= 5; i++ {
		r.Heartbeat(t0.Add(time.Duration(i) * time.Second))
	}
	if len(ts.cuts) != 0 {
		t.Fatalf("%d cuts kept after their time", len(ts.cuts))
	}
}

func TestTreePassesACutOnAtTheNextHeartbeatThenKeepsTheLazyPeriod(t *testing.T) {
	r := treeRouter(t, 4)
	// Peer 1 is the root and this node's parent; peers 2, 3 and 4 are not tree links. Peer 3 tells of a cut
	// elsewhere in the tree, which leaves this node's place as it is: nothing goes out at once.
	r.HandleTree(t0, nid(1), report(1, 0, -1, 1))
	cut := via(1, 2, 1, 1, 6, 3)
	cut.Cuts = []TreeCut{{Parent: pid(9), Child: pid(8), TTL: 5}}
	if out := r.HandleTree(t0, nid(3), cut); len(out.Send) != 0 {
		t.Fatalf("a cut that moves nothing was reported at once: %+v", out.Send)
	}
	for beat := 1; beat <= int(r.lazyReportBeats())+1; beat++ {
		now := t0.Add(time.Duration(beat) * time.Second)
		r.HandleTree(now, nid(1), report(1, 0, -1, uint64(1+beat)))
		out := r.Heartbeat(now)
		for _, peer := range []int{2, 4} {
			c, _ := sendsTo(out, nid(peer))
			switch {
			case beat == 1 && (c == nil || len(c.Tree) != 1 || len(c.Tree[0].Cuts) != 1):
				t.Fatalf("heartbeat 1: peer %d was not passed the cut: %+v", peer, c)
			case beat > 1 && beat <= int(r.lazyReportBeats()) && c != nil:
				t.Fatalf("heartbeat %d: peer %d was reported to within the lazy period: %+v", beat, peer, c)
			case beat > int(r.lazyReportBeats()) && (c == nil || len(c.Tree) != 1 || len(c.Tree[0].Cuts) != 0):
				t.Fatalf("heartbeat %d: peer %d got no periodic report, or the cut again: %+v", beat, peer, c)
			}
		}
	}
}
