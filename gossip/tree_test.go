package gossip

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// self is the id of the router under test in the tree tests: larger than every peer's (nid orders by index).
const self = 100

// treeRouter returns a router with Config.Tree, joined to topicA with peers 1..n.
func treeRouter(t *testing.T, n int) *Router {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self = true, nid(self)
	return joined(t, cfg, n)
}

func report(root, dist, parent int, seq uint64) TreeInfo {
	ti := TreeInfo{Topic: topicA, Root: nid(root), Seq: seq, Dist: dist}
	if parent >= 0 {
		ti.Parent = nid(parent)
	}
	return ti
}

func TestTreeNeedsSelf(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tree = true
	if _, err := NewRouter(cfg, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Tree without Self: %v", err)
	}
}

func TestTreePicksSmallestRootNearestParentAndPushesOnTreeLinksOnly(t *testing.T) {
	r := treeRouter(t, 4)
	r.HandleTree(t0, nid(3), report(1, 2, 2, 5))
	r.HandleTree(t0, nid(2), report(1, 1, 1, 5))
	out := r.HandleTree(t0, nid(1), report(1, 0, -1, 5))
	root, parent, dist, _ := r.TreeLinks(topicA)
	if root != nid(1) || parent != nid(1) || dist != 1 {
		t.Fatalf("root %v parent %v dist %d, want root 1, parent 1, distance 1", root == nid(1), parent == nid(1), dist)
	}
	// The change of place is reported to every topic peer at once; only the parent is told it is the parent.
	for i := 1; i <= 4; i++ {
		c, _ := sendsTo(out, nid(i))
		if c == nil || len(c.Tree) != 1 || c.Tree[0].Root != nid(1) || c.Tree[0].Dist != 1 {
			t.Fatalf("peer %d was not told the new place: %+v", i, c)
		}
		if want := (i == 1); (c.Tree[0].Parent == nid(i)) != want || !want && !c.Tree[0].Parent.IsZero() {
			t.Fatalf("peer %d was told the parent is %v", i, c.Tree[0].Parent)
		}
	}
	r.HandleTree(t0, nid(4), report(1, 2, self, 5)) // 4 is a child
	out, err := r.Publish(t0, msg("m"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(receivers(out)); !slices.Equal(got, []session.NodeID{nid(1), nid(4)}) {
		t.Fatalf("published to %d peers, want the parent and the child only", len(got))
	}
	// A message from the parent goes on to the child only, and a duplicate prunes nothing.
	m := msg("from parent")
	out, st := r.HandleMessage(t0, nid(1), m)
	if st != Pending {
		t.Fatal(st)
	}
	out = r.Validated(t0, m.ID, Accept)
	if got := receivers(out); len(got) != 1 || got[0] != nid(4) {
		t.Fatalf("relayed to %d peers, want the child", len(got))
	}
	out, _ = r.HandleMessage(t0, nid(2), msg("from parent"))
	if c, _ := sendsTo(out, nid(2)); c != nil && len(c.Prune) > 0 {
		t.Fatal("a duplicate pruned a link in tree mode")
	}
}

func TestTreeNeverTakesAChildAsParent(t *testing.T) {
	r := treeRouter(t, 2)
	r.HandleTree(t0, nid(2), report(1, 1, self, 3)) // 2 reaches root 1 through this node
	root, parent, dist, _ := r.TreeLinks(topicA)
	if root != nid(self) || !parent.IsZero() || dist != 0 {
		t.Fatalf("took a route through itself: root %v, parent zero %v, dist %d", root, parent.IsZero(), dist)
	}
	r.HandleTree(t0, nid(2), report(1, 2, 1, 4))
	if root, parent, _, _ = r.TreeLinks(topicA); root != nid(1) || parent != nid(2) {
		t.Fatal("did not take the route once the peer stopped routing through this node")
	}
}

func TestTreeIgnoresReportsBeyondTheDistanceBound(t *testing.T) {
	r := treeRouter(t, 1)
	r.HandleTree(t0, nid(1), report(0, maxTreeDist, 5, 1))
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(self) {
		t.Fatal("a report at the distance bound was taken")
	}
}

func TestTreeGivesUpAStoppedRootAndTakesItBackWhenItBeacons(t *testing.T) {
	r := treeRouter(t, 2)
	cfg := DefaultConfig()
	now := t0
	beat := func() {
		now = now.Add(cfg.HeartbeatInterval)
		r.Heartbeat(now)
	}
	r.HandleTree(now, nid(1), report(1, 0, -1, 10))
	r.HandleTree(now, nid(2), report(1, 1, 1, 10))
	// Root 1 falls silent; peer 2 keeps reporting it with the same, stalled beacon.
	for range cfg.TreeStaleBeats + 2 {
		beat()
		r.HandleTree(now, nid(2), report(1, 1, 1, 10))
	}
	if root, _, _, _ := r.TreeLinks(topicA); root == nid(1) {
		t.Fatal("still rooted at a root whose beacon stopped")
	}
	r.HandleTree(now, nid(2), report(2, 0, -1, 1)) // 2 roots a tree of its own
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(2) || parent != nid(2) || dist != 1 {
		t.Fatalf("root %v, want 2 through 2 at distance 1 (got %d)", root == nid(2), dist)
	}
	r.HandleTree(now.Add(time.Millisecond), nid(1), report(1, 0, -1, 11)) // 1 is back with a newer beacon
	if root, parent, _, _ := r.TreeLinks(topicA); root != nid(1) || parent != nid(1) {
		t.Fatal("did not go back to the smaller root once it beaconed again")
	}
}

func TestTreeForgetsAPeerThatLeft(t *testing.T) {
	r := treeRouter(t, 2)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 1))
	r.HandleTree(t0, nid(2), report(1, 1, 1, 1))
	r.RemovePeer(nid(1))
	r.Heartbeat(t0.Add(time.Second))
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(1) || parent != nid(2) || dist != 2 {
		t.Fatalf("after the parent left: parent 2 %v, dist %d", parent == nid(2), dist)
	}
}

func TestTreeRankMovesOnlyPastAStepEdge(t *testing.T) {
	for _, c := range []struct{ prev, peers, want int }{
		{0, 0, 0}, {0, 4, 0}, {0, 5, 1}, {0, 21, 5},
		{5, 20, 5}, {5, 24, 5}, {5, 25, 6}, {5, 19, 5}, {5, 18, 4}, {5, 3, 0},
	} {
		if got := treeRank(c.prev, c.peers); got != c.want {
			t.Errorf("treeRank(%d, %d) = %d, want %d", c.prev, c.peers, got, c.want)
		}
	}
}

func TestTreeHangsFromTheBestConnectedNode(t *testing.T) {
	r := treeRouter(t, 3)
	ranked := func(root, rank, dist, parent int, seq uint64) TreeInfo {
		ti := report(root, dist, parent, seq)
		ti.RootRank = rank
		return ti
	}
	r.HandleTree(t0, nid(1), ranked(1, 2, 0, -1, 5))
	r.HandleTree(t0, nid(2), ranked(2, 3, 0, -1, 7)) // a larger id, but more topic peers
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(2) || parent != nid(2) || dist != 1 {
		t.Fatalf("root 2 %v through 2 %v at %d, want the higher rank", root == nid(2), parent == nid(2), dist)
	}
	// The root's rank is the one announced with its latest beacon: an older report of a higher rank does not count.
	r.HandleTree(t0, nid(3), ranked(2, 9, 1, 2, 6))
	r.HandleTree(t0, nid(1), ranked(1, 4, 0, -1, 6))
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) {
		t.Fatal("a root's stale rank outranked a newer, higher one")
	}
	// This node itself, once its own peers give it the best rank, roots the tree.
	cfg := DefaultConfig()
	cfg.Tree, cfg.TreeRanked, cfg.Self = true, true, nid(self)
	s := joined(t, cfg, 24)
	s.HandleTree(t0, nid(1), ranked(1, 4, 0, -1, 5))
	if root, _, _, _ := s.TreeLinks(topicA); root != nid(1) {
		t.Fatal("the better-ranked peer is not the root before the heartbeat")
	}
	out := s.Heartbeat(t0.Add(time.Second))
	if root, parent, dist, _ := s.TreeLinks(topicA); root != nid(self) || !parent.IsZero() || dist != 0 || s.TreeRank(topicA) != 6 {
		t.Fatalf("with 24 topic peers (rank %d) it did not root the tree", s.TreeRank(topicA))
	}
	if c, _ := sendsTo(out, nid(1)); c == nil || len(c.Tree) != 1 || c.Tree[0].RootRank != 6 || c.Tree[0].Root != nid(self) {
		t.Fatalf("the new root's rank was not reported: %+v", c)
	}
}

func TestTreeReportsRideOnOtherControlBetweenPeriodicReports(t *testing.T) {
	r := treeRouter(t, 3)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 1))
	reported := func(out Output) (to []int) {
		for i := 1; i <= 3; i++ {
			if c, _ := sendsTo(out, nid(i)); c != nil && len(c.Tree) > 0 {
				to = append(to, i)
			}
		}
		return to
	}
	now := t0
	var odd, even Output
	for range 2 {
		now = now.Add(time.Second)
		r.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix()))) // the root's beacon advances
		if out := r.Heartbeat(now); r.beats%2 == 0 {
			even = out
		} else {
			odd = out
		}
	}
	if got := reported(even); len(got) != 3 {
		t.Fatalf("the periodic report reached peers %v, want all 3", got)
	}
	if got := reported(odd); len(got) != 0 {
		t.Fatalf("an unchanged place was reported between periodic reports, with no other control, to %v", got)
	}
	// A message due for announcement: the peers that hear of it by IHAVE get the report with it.
	if _, err := r.Publish(now, msg("m")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	r.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix())))
	out := r.Heartbeat(now)
	if r.beats%2 == 0 {
		t.Fatal("test expects an odd heartbeat")
	}
	for i := 1; i <= 3; i++ {
		c, _ := sendsTo(out, nid(i))
		if c != nil && len(c.IHave) > 0 && len(c.Tree) != 1 {
			t.Fatalf("peer %d got an IHAVE without the report", i)
		}
		if (c == nil || len(c.IHave) == 0) && c != nil && len(c.Tree) > 0 {
			t.Fatalf("peer %d got a report of its own between periodic reports", i)
		}
	}
	if len(reported(out)) == 0 {
		t.Fatal("no IHAVE carried a report")
	}
}
