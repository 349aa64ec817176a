package gossip

import (
	"errors"
	"fmt"
	"math"
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

// rankedReport is report with the root's announced rank.
func rankedReport(root, rank, dist, parent int, seq uint64) TreeInfo {
	ti := report(root, dist, parent, seq)
	ti.RootRank = rank
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
	_, st := r.HandleMessage(t0, nid(1), m)
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

// TestTreeRestartedRootGoesOnWithNewerBeacons checks that a root's beacons follow the clock: its peers remember
// the last beacon of a root that left, and would take no older one from it when it comes back.
func TestTreeRestartedRootGoesOnWithNewerBeacons(t *testing.T) {
	lastSeq := func(r *Router, now time.Time) uint64 {
		var seq uint64
		for range r.lazyReportBeats() {
			now = now.Add(DefaultConfig().HeartbeatInterval)
			if c, _ := sendsTo(r.Heartbeat(now), nid(1)); c != nil && len(c.Tree) == 1 {
				seq = c.Tree[0].Seq
			}
		}
		if seq == 0 {
			t.Fatalf("no tree report in %d heartbeats", r.lazyReportBeats())
		}
		return seq
	}
	first := lastSeq(treeRouter(t, 1), t0)
	if again := lastSeq(treeRouter(t, 1), t0.Add(10*time.Second)); again <= first {
		t.Fatalf("after a restart the root beacons %d, not newer than %d before", again, first)
	}
}

// TestTreeNeverTakesAPeerWhoseRouteRunsThroughItself checks the route filter: a peer further down this node's own
// subtree (its route's filter holds this node's bits) is not taken as parent, even when it is the nearest.
func TestTreeNeverTakesAPeerWhoseRouteRunsThroughItself(t *testing.T) {
	r := treeRouter(t, 3)
	through := report(1, 2, 3, 7)
	through.Path = []uint32{pathID(nid(1)), pathID(nid(self)), pathID(nid(2))} // 1 → self → 2
	r.HandleTree(t0, nid(2), through)
	other := report(1, 3, 3, 7)
	other.Path = []uint32{pathID(nid(1)), pathID(nid(4)), pathID(nid(5)), pathID(nid(3))}
	out := r.HandleTree(t0, nid(3), other)
	root, parent, dist, _ := r.TreeLinks(topicA)
	if root != nid(1) || parent != nid(3) || dist != 4 {
		t.Fatalf("parent 3 %v, parent 2 %v, dist %d: want 3 at distance 4", parent == nid(3), parent == nid(2), dist)
	}
	c, _ := sendsTo(out, nid(2))
	if want := append(slices.Clone(other.Path), pathID(nid(self))); c == nil || len(c.Tree) != 1 ||
		!slices.Equal(c.Tree[0].Path, want) {
		t.Fatalf("reported path %+v, want the parent's with this node's bits", c)
	}
}

// TestTreeTakesARootsRankFromItsNewestBeacon checks that a report carrying an old beacon of a root, and the rank
// the root announced then, does not make that root win over one it no longer outranks.
func TestTreeTakesARootsRankFromItsNewestBeacon(t *testing.T) {
	r := treeRouter(t, 3)
	ranked := func(root, dist int, seq uint64, rank int) TreeInfo { return rankedReport(root, rank, dist, -1, seq) }
	r.HandleTree(t0, nid(1), ranked(5, 1, 10, 1))
	r.HandleTree(t0, nid(2), ranked(6, 1, 20, 2))
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(6) {
		t.Fatal("root 6 of rank 2 not taken over root 5 of rank 1")
	}
	r.HandleTree(t0, nid(1), ranked(6, 1, 20, 2))
	r.HandleTree(t0, nid(3), ranked(5, 3, 8, 3)) // an old beacon of 5, from when it announced rank 3
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(6) {
		t.Fatal("an old beacon's rank made root 5 win")
	}
	r.HandleTree(t0, nid(3), ranked(5, 1, 11, 3)) // a newer beacon of 5 with rank 3
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(5) {
		t.Fatal("root 5 announcing rank 3 with its newest beacon not taken")
	}
}

// TestTreeTellsALongerRouteToTheParentsAtOnceAndToTheOthersOnTheNextHeartbeat checks that a longer route is not
// reported to every peer at once, which would count a lost route to infinity at the speed of round trips, but the
// parents it concerns hear of it at once.
func TestTreeTellsALongerRouteToTheParentsAtOnceAndToTheOthersOnTheNextHeartbeat(t *testing.T) {
	r := treeRouter(t, 3)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 7))
	r.HandleTree(t0, nid(2), report(1, 2, 3, 7))
	r.HandleTree(t0, nid(3), report(1, 1, -1, 7))
	out := r.HandleTree(t0, nid(1), report(1, 3, 2, 8)) // the root went away behind peer 1: 3 is nearer now
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(1) || parent != nid(3) || dist != 2 {
		t.Fatalf("parent 3 %v, dist %d, want 3 at distance 2", parent == nid(3), dist)
	}
	for _, c := range []struct {
		peer int
		told bool
	}{{1, true}, {2, false}, {3, true}} {
		ctl, _ := sendsTo(out, nid(c.peer))
		if told := ctl != nil && len(ctl.Tree) == 1 && ctl.Tree[0].Dist == 2; told != c.told {
			t.Fatalf("peer %d told of the longer route at once: %v, want %v", c.peer, told, c.told)
		}
		if c.peer == 3 && ctl.Tree[0].Parent != nid(3) {
			t.Fatal("the new parent was not told it is the parent")
		}
	}
	out = r.Heartbeat(t0.Add(DefaultConfig().HeartbeatInterval))
	if ctl, _ := sendsTo(out, nid(2)); ctl == nil || len(ctl.Tree) != 1 || ctl.Tree[0].Dist != 2 {
		t.Fatalf("peer 2 not told of the longer route on the next heartbeat: %+v", ctl)
	}
}

func TestTreeForgetsAPeerThatLeft(t *testing.T) {
	r := treeRouter(t, 2)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 1))
	r.HandleTree(t0, nid(2), report(1, 1, 1, 1))
	r.RemovePeer(t0, nid(1))
	r.Heartbeat(t0.Add(time.Second))
	if root, parent, dist, _ := r.TreeLinks(topicA); root != nid(1) || parent != nid(2) || dist != 2 {
		t.Fatalf("after the parent left: parent 2 %v, dist %d", parent == nid(2), dist)
	}
}

// TestTreeLinksFollowEveryChange checks that the tree links (cached between changes) follow each change at once:
// a peer that reports this node as parent, then another parent, a child whose reports go stale, and a child that
// leaves the topic. Each step reads the links first, so a cache that missed the change would still hold them.
func TestTreeLinksFollowEveryChange(t *testing.T) {
	r := treeRouter(t, 4)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 1))
	links := func() []session.NodeID {
		_, _, _, l := r.TreeLinks(topicA)
		return sorted(l)
	}
	pushedTo := func(data string) []session.NodeID {
		out, err := r.Publish(t0, msg(data))
		if err != nil {
			t.Fatal(err)
		}
		return sorted(receivers(out))
	}
	want := func(step string, ids ...int) {
		t.Helper()
		var w []session.NodeID
		for _, i := range ids {
			w = append(w, nid(i))
		}
		w = sorted(w)
		if got := links(); !slices.Equal(got, w) {
			t.Fatalf("%s: links %v, want %v", step, got, w)
		}
		if got := pushedTo(step); !slices.Equal(got, w) {
			t.Fatalf("%s: published to %v, want %v", step, got, w)
		}
	}
	want("parent only", 1)
	r.HandleTree(t0, nid(4), report(1, 2, self, 1))
	want("4 is a child", 1, 4)
	r.HandleTree(t0, nid(4), report(1, 2, 2, 2))
	want("4 took another parent", 1)
	r.HandleTree(t0, nid(3), report(1, 2, self, 1))
	r.HandleTree(t0, nid(4), report(1, 2, self, 3))
	want("3 and 4 are children", 1, 3, 4)
	r.PeerUnsubscribed(t0, nid(3), topicA)
	want("3 left the topic", 1, 4)
	// 4 stops reporting while the root goes on: its last report goes stale.
	for i := 1; i <= int(r.viewBeats())+1; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		r.HandleTree(now, nid(1), report(1, 0, -1, uint64(1+i)))
		r.Heartbeat(now)
	}
	want("4's report went stale", 1)
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

// TestTreeRankDropsOnlyAfterRankDropBeats checks that a node that loses topic peers keeps announcing its rank for
// rankDropBeats heartbeats (its peers may reconnect), drops it after, and raises it at once.
func TestTreeRankDropsOnlyAfterRankDropBeats(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.TreeRanked, cfg.Self = true, true, nid(self)
	r := joined(t, cfg, 24)
	now := t0
	beat := func() {
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	beat()
	if got := r.TreeRank(topicA); got != 6 {
		t.Fatalf("rank %d with 24 topic peers, want 6", got)
	}
	for i := 13; i <= 24; i++ { // 12 peers left: rank 3
		r.RemovePeer(t0, nid(i))
	}
	for i := range rankDropBeats {
		beat()
		if got := r.TreeRank(topicA); got != 6 {
			t.Fatalf("heartbeat %d after the loss: rank %d, want 6 until %d heartbeats passed", i+1, got, rankDropBeats)
		}
	}
	// The peers come back before the drop: the count starts over.
	addPeers(t, r, topicA, 13, 24)
	beat()
	for i := 13; i <= 24; i++ {
		r.RemovePeer(t0, nid(i))
	}
	for range rankDropBeats {
		beat()
	}
	if got := r.TreeRank(topicA); got != 6 {
		t.Fatalf("rank %d: a loss the peers' return interrupted was counted on", got)
	}
	beat()
	if got := r.TreeRank(topicA); got != 3 {
		t.Fatalf("rank %d after %d heartbeats with 12 peers, want 3", got, rankDropBeats+1)
	}
	addPeers(t, r, topicA, 13, 24)
	beat()
	if got := r.TreeRank(topicA); got != 6 {
		t.Fatalf("rank %d one heartbeat after the peers came back, want 6 at once", got)
	}
}

func TestTreeHangsFromTheBestConnectedNode(t *testing.T) {
	r := treeRouter(t, 3)
	ranked := rankedReport
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

// TestTreeRootKeepsItsPlaceAgainstANodeOneStepAbove checks that a node of a root's tree whose rank rises one step
// above the root's stays in its tree (rootIncumbency), and takes the root over one step later.
func TestTreeRootKeepsItsPlaceAgainstANodeOneStepAbove(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.TreeRanked, cfg.Self = true, true, nid(self)
	r := joined(t, cfg, 16)
	now, seq := t0, uint64(5)
	beat := func() {
		seq++
		r.HandleTree(now, nid(1), rankedReport(1, 4, 0, -1, seq))
		now = now.Add(time.Second)
		r.Heartbeat(now)
	}
	beat()
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) || r.TreeRank(topicA) != 4 {
		t.Fatalf("rank %d with 16 topic peers: root 1 of the same rank and a smaller id not taken", r.TreeRank(topicA))
	}
	addPeers(t, r, topicA, 17, 21) // past the step edge (treeRank)
	beat()
	beat()
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) || r.TreeRank(topicA) != 5 {
		t.Fatalf("rank %d, one step above the root's 4: it took the root over (%v)", r.TreeRank(topicA), root != nid(1))
	}
	addPeers(t, r, topicA, 22, 25)
	beat()
	if root, parent, _, _ := r.TreeLinks(topicA); root != nid(self) || !parent.IsZero() || r.TreeRank(topicA) != 6 {
		t.Fatalf("rank %d, two steps above the root's 4: the root was not taken over", r.TreeRank(topicA))
	}
	// Now a root itself, it is compared with the other root as an equal: the higher rank, then the smaller id.
	r.HandleTree(now, nid(1), rankedReport(1, 6, 0, -1, seq+1))
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) {
		t.Fatal("a root of the same rank and a smaller id did not win")
	}
}

// TestTreePushesToPeersOfAnotherRoot checks that a message also goes to the topic peers whose report names another
// root (crossLinks), published or relayed, and only while they do.
func TestTreePushesToPeersOfAnotherRoot(t *testing.T) {
	r := treeRouter(t, 4)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 5))
	r.HandleTree(t0, nid(2), report(1, 1, 1, 5))
	r.HandleTree(t0, nid(3), report(3, 0, -1, 5)) // the root of another tree (a larger id: not taken)
	if root, _, _, _ := r.TreeLinks(topicA); root != nid(1) {
		t.Fatal("root 1 not taken")
	}
	out, _ := receive(t, r, t0, nid(1), msg("m1"), Accept)
	if got := receivers(out); !slices.Equal(got, []session.NodeID{nid(3)}) {
		t.Fatalf("relayed to %v, want peer 3 of the other tree only (no child)", got)
	}
	out, err := r.Publish(t0, msg("p1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(receivers(out)); !slices.Equal(got, []session.NodeID{nid(1), nid(3)}) {
		t.Fatalf("published to %v, want the parent and peer 3 of the other tree", got)
	}
	if st := r.Stats(); st.TreeCrossed != 2 {
		t.Fatalf("TreeCrossed %d, want 2", st.TreeCrossed)
	}
	r.HandleTree(t0, nid(3), report(1, 2, 2, 5)) // 3 joined root 1's tree
	if out, _ := receive(t, r, t0, nid(1), msg("m2"), Accept); len(receivers(out)) != 0 {
		t.Fatalf("relayed to %v once every peer is in root 1's tree, want none", receivers(out))
	}
}

func TestTreeReportsRideOnOtherControlBetweenPeriodicReports(t *testing.T) {
	r := treeRouter(t, 3) // peer 1 is the root and this node's parent, peers 2 and 3 are not tree links
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
	lazy := int(r.lazyReportBeats())
	if lazy < 4 {
		t.Fatalf("lazyReportBeats = %d with the default TreeStaleBeats, want at least 4", lazy)
	}
	for range 2 * lazy {
		now = now.Add(time.Second)
		r.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix()))) // the root's beacon advances
		out := r.Heartbeat(now)
		got := reported(out)
		switch {
		case r.beats%uint64(lazy) == 0:
			if len(got) != 3 {
				t.Fatalf("heartbeat %d: the periodic report reached peers %v, want all 3", r.beats, got)
			}
		case r.beats%2 == 0:
			if !slices.Equal(got, []int{1}) {
				t.Fatalf("heartbeat %d: the tree links' report reached peers %v, want only the parent", r.beats, got)
			}
		default:
			if len(got) != 0 {
				t.Fatalf("heartbeat %d: an unchanged place was reported between periodic reports, with no other control, to %v", r.beats, got)
			}
		}
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

// TestTreeReportsRideOnMessages checks that a report due at the next heartbeat goes with a message the node sends
// the peer anyway, that the heartbeat then skips that peer, and that a message does not carry one before it is due.
func TestTreeReportsRideOnMessages(t *testing.T) {
	r := treeRouter(t, 3) // peer 1 is the root and this node's parent, peer 2 its child, peer 3 no tree link
	now := t0
	beat := func() Output {
		now = now.Add(time.Second)
		r.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix())))
		r.HandleTree(now, nid(2), report(1, 2, self, uint64(now.Unix())))
		return r.Heartbeat(now)
	}
	treeTo := func(out Output, peer int) bool {
		c, _ := sendsTo(out, nid(peer))
		return c != nil && len(c.Tree) > 0
	}
	beat()
	for r.beats-r.topics[topicA].tree.reported[nid(1)] != 1 { // the parent's report falls due at the next heartbeat
		beat()
	}
	out, _ := receive(t, r, now, nid(2), msg("from the child"), Accept)
	if _, msgs := sendsTo(out, nid(1)); len(msgs) != 1 || !treeTo(out, 1) {
		t.Fatalf("the message to the parent did not carry the report due: %d messages, report %v", len(msgs), treeTo(out, 1))
	}
	if treeTo(out, 2) || treeTo(out, 3) {
		t.Fatal("a peer the message did not go to got a report with it")
	}
	out = beat()
	if treeTo(out, 1) {
		t.Fatal("the heartbeat reported to the parent again after the report rode on a message")
	}
	if !treeTo(out, 2) {
		t.Fatal("the child, which sent the message and got nothing back, missed its periodic report")
	}
	// Right after a report the next one is not due: a message goes without it.
	out, _ = receive(t, r, now, nid(2), msg("too early"), Accept)
	if _, msgs := sendsTo(out, nid(1)); len(msgs) != 1 || treeTo(out, 1) {
		t.Fatalf("a message right after the report carried another: %d messages, report %v", len(msgs), treeTo(out, 1))
	}
}

// TestTreeLazyReportsKeepViewsFresh checks that peers that are not tree links, reported to only every
// lazyReportBeats, never see this node's report go stale between two of them.
func TestTreeLazyReportsKeepViewsFresh(t *testing.T) {
	a, b := treeRouter(t, 3), treeRouter(t, 3)
	if a.lazyReportBeats() >= a.viewBeats() {
		t.Fatalf("lazyReportBeats %d leaves no heartbeat to spare within viewBeats %d", a.lazyReportBeats(), a.viewBeats())
	}
	// b takes a's reports (as peer 2's) while both beat in step: a's view must stay fresh at b throughout.
	now := t0
	for range 4 * a.lazyReportBeats() {
		now = now.Add(time.Second)
		a.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix())))
		b.HandleTree(now, nid(1), report(1, 0, -1, uint64(now.Unix())))
		if c, _ := sendsTo(a.Heartbeat(now), nid(2)); c != nil {
			for _, info := range c.Tree {
				b.HandleTree(now, nid(2), info)
			}
		}
		b.Heartbeat(now)
		if v, ok := b.topics[topicA].tree.views[nid(2)]; a.beats > a.lazyReportBeats() && (!ok || !b.fresh(v)) {
			t.Fatalf("heartbeat %d: the lazy peer's report went stale", a.beats)
		}
	}
}

func TestExtendPathKeepsTheNearestNodes(t *testing.T) {
	long := make([]uint32, maxTreePath+3)
	for i := range long {
		long[i] = uint32(i + 1)
	}
	got := extendPath(nil, long, 99)
	if len(got) != maxTreePath || got[0] != long[4] || got[maxTreePath-2] != long[len(long)-1] || got[maxTreePath-1] != 99 {
		t.Fatalf("extendPath kept %v", got)
	}
	if again := extendPath(got, long, 99); &again[0] != &got[0] {
		t.Fatal("an unchanged path was copied")
	}
}

func TestTreePublisherAlsoPushesToPublishFanoutOtherPeers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self, cfg.PublishFanout = true, nid(self), 3
	r := joined(t, cfg, 10)
	r.HandleTree(t0, nid(1), report(1, 0, -1, 5))
	r.HandleTree(t0, nid(4), report(1, 2, self, 5)) // 4 is a child; 1 is the parent
	for i := range 20 {
		out, err := r.Publish(t0, msg(fmt.Sprint("m", i)))
		if err != nil {
			t.Fatal(err)
		}
		got := receivers(out)
		if len(got) != 5 || !slices.Contains(got, nid(1)) || !slices.Contains(got, nid(4)) {
			t.Fatalf("published to %d peers, want the 2 tree links and 3 others", len(got))
		}
		if len(slices.Compact(sorted(got))) != len(got) {
			t.Fatal("a peer got the message twice")
		}
	}
	// A relayed message stays on the tree links.
	m := msg("from parent")
	out, _ := receive(t, r, t0, nid(1), m, Accept)
	if got := receivers(out); len(got) != 1 || got[0] != nid(4) {
		t.Fatalf("relayed to %d peers, want the child only", len(got))
	}
}

// BenchmarkHandleTreeSettled measures a tree report that changes nothing but the root's beacon, the bulk of the
// reports of a settled tree: 16 topic peers, one of them the parent, each reporting in turn.
func BenchmarkHandleTreeSettled(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self, cfg.TreeRanked, cfg.TreeShortcutDist = true, nid(self), true, 3
	r := joined(b, cfg, 16)
	reports := make([]TreeInfo, 16)
	for i := range reports {
		reports[i] = report(50, 1+i%3, -1, 1)
		reports[i].Path = []uint32{pathID(nid(50)), pathID(nid(60 + i))}
		reports[i].RootRank = 6
	}
	reports[0].Dist = 0
	reports[0].Path = []uint32{pathID(nid(50))}
	b.ReportAllocs()
	seq := uint64(1)
	for i := 0; b.Loop(); i++ {
		k := i % len(reports)
		if k == 0 {
			seq++
		}
		reports[k].Seq = seq
		r.HandleTree(t0, nid(k+1), reports[k])
	}
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(1) || dist != 1 {
		b.Fatalf("parent 1 %v, dist %d", parent == nid(1), dist)
	}
}

// TestTreeDampsAPlaceThatKeepsChanging checks that a node whose place changes again and again between two
// heartbeats reports at once only the first maxPromptReports changes, and the latest one on the next heartbeat.
func TestTreeDampsAPlaceThatKeepsChanging(t *testing.T) {
	r := treeRouter(t, 3)
	r.HandleTree(t0, nid(2), report(50, 1, -1, 1))
	reports := 0
	count := func(out Output) {
		for _, s := range out.Send {
			if s.Control != nil {
				reports += len(s.Control.Tree)
			}
		}
	}
	const flips = maxTreeMovesPerBeat // all of them move the node: one peer's allowance a heartbeat
	for i := range flips {
		dist := 0 // peer 1 next to the root: this node's parent, 1 hop away
		if i%2 == 1 {
			dist = 3 // peer 1 far: peer 2 is the parent, 2 hops away
		}
		count(r.HandleTree(t0, nid(1), report(50, dist, -1, 1)))
	}
	if reports == 0 || reports > maxPromptReports*3 {
		t.Fatalf("%d flips between heartbeats sent %d reports, want 1..%d", flips, reports, maxPromptReports*3)
	}
	_, parent, dist, _ := r.TreeLinks(topicA)
	if parent != nid(2) || dist != 2 {
		t.Fatalf("place after the flips: parent %v at %d, want peer 2 at 2", parent.Short(), dist)
	}
	// The first report (peer 2's) and every flip moved the node; all but maxPromptReports were damped.
	if st := r.Stats(); st.TreeMoves != flips+1 || st.TreeDamped != flips+1-maxPromptReports {
		t.Fatalf("stats count %d moves, %d damped; want %d and %d", st.TreeMoves, st.TreeDamped, flips+1, flips+1-maxPromptReports)
	}
	out := r.Heartbeat(t0.Add(time.Second))
	for i := 1; i <= 3; i++ {
		c, _ := sendsTo(out, nid(i))
		if c == nil || len(c.Tree) != 1 || c.Tree[0].Dist != 2 {
			t.Fatalf("peer %d was not told the latest place on the heartbeat: %+v", i, c)
		}
	}
	// The heartbeat renews the allowance: the next change is reported at once.
	reports = 0
	count(r.HandleTree(t0.Add(time.Second), nid(1), report(50, 0, -1, 2)))
	if reports == 0 {
		t.Fatal("a change after the heartbeat was not reported at once")
	}
}

// A report whose distance is far past maxTreeDist (a hostile peer's math.MaxInt) is ignored like one at the bound
// (maxTreeDist's doc: "longer ones are ignored"), not only one at the bound. Without the check in handleTree, nearestPeer's Dist+1 wraps to a
// negative distance, which beats every honest route: the hostile peer becomes the parent, at distance MinInt.
func TestTreeIgnoresAReportFarPastTheDistanceBound(t *testing.T) {
	r := treeRouter(t, 2)
	r.HandleTree(t0, nid(1), report(0, math.MaxInt, 5, 1))
	root, parent, dist, _ := r.TreeLinks(topicA)
	if root != nid(self) || !parent.IsZero() || dist != 0 {
		t.Fatalf("a report at distance MaxInt was taken: root self %v, parent 1 %v, dist %d", root == nid(self), parent == nid(1), dist)
	}
	// Against an honest route too: the honest peer 2 at distance 1 stays the parent.
	r.HandleTree(t0, nid(2), report(0, 1, 5, 1))
	r.HandleTree(t0, nid(1), report(0, math.MaxInt, 5, 2))
	if _, parent, dist, _ = r.TreeLinks(topicA); parent != nid(2) || dist != 2 {
		t.Fatalf("parent 1 (hostile) %v, dist %d; want the honest peer 2 at distance 2", parent == nid(1), dist)
	}
}

// A cut a peer reports is kept at most cutBeats heartbeats, whatever TTL the peer claims: a hostile TTL would
// otherwise keep a sound link cut (no route through it taken) and fill the cut table (maxTreeCuts) for good, so
// that the node learns no real cut again.
func TestTreeKeepsAReportedCutAtMostCutBeats(t *testing.T) {
	r := treeRouter(t, 2)
	rep := via(1, 0, 5, 1)
	rep.Cuts = []TreeCut{{Parent: 1, Child: 2, TTL: math.MaxInt32}}
	r.HandleTree(t0, nid(1), rep)
	ts := r.topics[topicA].tree
	if len(ts.cuts) != 1 {
		t.Fatalf("%d cuts kept, want the one reported", len(ts.cuts))
	}
	for i := 1; i <= r.cutBeats()+1; i++ {
		r.Heartbeat(t0.Add(time.Duration(i) * time.Second))
	}
	if len(ts.cuts) != 0 {
		t.Fatalf("a cut reported with TTL %d is still kept after cutBeats+1 = %d heartbeats", math.MaxInt32, r.cutBeats()+1)
	}
}
