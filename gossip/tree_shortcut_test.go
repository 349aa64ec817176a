package gossip

import (
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// shortcutRouter is treeRouter with Config.TreeShortcutDist 3.
func shortcutRouter(t *testing.T, n int) *Router {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self, cfg.TreeShortcutDist = true, nid(self), 3
	return joined(t, cfg, n)
}

func TestTreeShortcutConnectsToTheParentsParentOnceThenTakesTheShorterRoute(t *testing.T) {
	r := shortcutRouter(t, 2)
	beat := DefaultConfig().HeartbeatInterval
	now := t0
	// Peer 2 is 2 hops from root 50 through 7, which it names to this node, 3 hops from the root through it.
	fromParent := report(50, 2, -1, 1)
	fromParent.Upstream = nid(7)
	fromParent.Size, fromParent.Deep = 100, 10 // the whole tree: a thin last layer
	r.HandleTree(now, nid(2), fromParent)
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(2) || dist != 3 {
		t.Fatalf("parent 2 %v, dist %d, want 3", parent == nid(2), dist)
	}
	// It asks once its place has stayed the same for shortcutSettleBeats heartbeats.
	var out Output
	for i := 1; i <= shortcutSettleBeats; i++ {
		now = now.Add(beat)
		fromParent.Seq++
		r.HandleTree(now, nid(2), fromParent)
		if out = r.Heartbeat(now); i < shortcutSettleBeats && len(out.Connect) != 0 {
			t.Fatalf("asked for a shortcut %d heartbeats after its place changed", i)
		}
	}
	if !slices.Equal(out.Connect, []session.NodeID{nid(7)}) || r.Stats().TreeShortcuts != 1 {
		t.Fatalf("asked to connect to %d peers (%d shortcuts), want 7 once", len(out.Connect), r.Stats().TreeShortcuts)
	}
	// Not again within TreeShortcutInterval, however many heartbeats come.
	for i := 0; i < 3; i++ {
		now = now.Add(beat)
		fromParent.Seq++
		r.HandleTree(now, nid(2), fromParent)
		if out := r.Heartbeat(now); len(out.Connect) != 0 {
			t.Fatalf("asked again %d heartbeats later", i+1)
		}
	}
	// Once connected, 7 reports itself a hop from the root: the route through it is shorter.
	addPeers(t, r, topicA, 7, 7)
	defer func() {
		// While the shortcut stays connected, no other is asked for, even on a long route again.
		for i := 0; i < int(2*DefaultConfig().TreeShortcutInterval/beat); i++ {
			now = now.Add(beat)
			fromParent.Seq++
			fromParent.Upstream = nid(8)
			r.HandleTree(now, nid(2), fromParent)
			r.HandleTree(now, nid(7), report(60, 1, -1, fromParent.Seq)) // 7 moved to another tree
			if out := r.Heartbeat(now); len(out.Connect) != 0 {
				t.Fatalf("asked for a second shortcut while the first is connected (%d heartbeats on)", i+1)
			}
		}
		if _, _, dist, _ := r.TreeLinks(topicA); dist != 3 {
			t.Fatalf("dist %d, want 3 again", dist)
		}
	}()
	r.HandleTree(now, nid(7), report(50, 1, -1, fromParent.Seq))
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(7) || dist != 2 {
		t.Fatalf("parent 7 %v, dist %d, want the shortcut at distance 2", parent == nid(7), dist)
	}
}

func TestTreeShortcutIsNotAskedForOnShortRoutesOrWhenOff(t *testing.T) {
	for _, tc := range []struct {
		name         string
		shortcutDist int
		parentDist   int
		deep         int // of 100 nodes
	}{{"route of 2 hops", 3, 1, 10}, {"off", 0, 2, 10}, {"thick last layer", 3, 2, 26}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Tree, cfg.Self, cfg.TreeShortcutDist = true, nid(self), tc.shortcutDist
			r := joined(t, cfg, 2)
			now := t0
			for i := uint64(1); i <= 2*shortcutSettleBeats; i++ {
				rep := report(50, tc.parentDist, -1, i)
				rep.Upstream = nid(7)
				rep.Size, rep.Deep = 100, tc.deep
				r.HandleTree(now, nid(2), rep)
				if out := r.Heartbeat(now); len(out.Connect) != 0 {
					t.Fatal("asked for a shortcut")
				}
				now = now.Add(cfg.HeartbeatInterval)
			}
		})
	}
}

func TestTreeTellsItsParentOnlyToChildrenWithLongRoutes(t *testing.T) {
	r := shortcutRouter(t, 3)
	// Peer 2 is this node's parent, 1 hop from root 50; peer 1 is a child (3 hops), peer 3 is neither.
	out := fullReportBeat(r, map[int]TreeInfo{2: report(50, 1, -1, 1), 1: report(50, 3, self, 1), 3: report(50, 2, 2, 1)})
	for peer, want := range map[int]session.NodeID{1: nid(2), 2: {}, 3: {}} {
		c, _ := sendsTo(out, nid(peer))
		if c == nil || len(c.Tree) != 1 {
			t.Fatalf("peer %d got no report", peer)
		}
		if c.Tree[0].Upstream != want {
			t.Fatalf("peer %d was told upstream %v, want %v", peer, c.Tree[0].Upstream.Short(), want.Short())
		}
	}
	// A child at distance 2 would gain nothing from a shortcut to the root: it is not told.
	r2 := shortcutRouter(t, 2)
	out = fullReportBeat(r2, map[int]TreeInfo{2: report(50, 0, -1, 1), 1: report(50, 2, self, 1)})
	if c, _ := sendsTo(out, nid(1)); c == nil || len(c.Tree) != 1 || !c.Tree[0].Upstream.IsZero() {
		t.Fatal("a child at distance 2 was told the upstream")
	}
}

// fullReportBeat gives r each peer's report, then runs heartbeats, each after the same reports with the root's
// next beacon (so that the root stays alive), up to the first that reports to every topic peer, and returns its
// output.
func fullReportBeat(r *Router, reports map[int]TreeInfo) Output {
	for i := 0; ; i++ {
		now := t0.Add(time.Duration(i) * DefaultConfig().HeartbeatInterval)
		for peer, info := range reports {
			info.Seq = uint64(1 + i)
			r.HandleTree(now, nid(peer), info)
		}
		if i == 0 {
			continue
		}
		if out := r.Heartbeat(now); r.beats%r.lazyReportBeats() == 0 {
			return out
		}
	}
}

func TestTreeCountsItsSubtreeUpAndTheWholeTreeDown(t *testing.T) {
	r := shortcutRouter(t, 3)
	// Peer 3 is the parent (2 hops from root 50, which counts 120 nodes, 12 of them deep); peers 1 and 2 are
	// children at distance 3 with subtrees of 3 (1 deep) and 1 (1 deep).
	fromParent := report(50, 1, -1, 1)
	fromParent.Size, fromParent.Deep = 120, 12
	a, b := report(50, 3, self, 1), report(50, 3, self, 1)
	a.Size, a.Deep, b.Size, b.Deep = 3, 1, 1, 1
	out := fullReportBeat(r, map[int]TreeInfo{3: fromParent, 1: a, 2: b})
	if c, _ := sendsTo(out, nid(3)); c == nil || len(c.Tree) != 1 || c.Tree[0].Size != 5 || c.Tree[0].Deep != 2 {
		t.Fatalf("report to the parent: %+v, want its subtree: 5 nodes, 2 deep", c)
	}
	for _, child := range []int{1, 2} {
		if c, _ := sendsTo(out, nid(child)); c == nil || len(c.Tree) != 1 || c.Tree[0].Size != 120 || c.Tree[0].Deep != 12 {
			t.Fatalf("report to child %d: %+v, want the whole tree: 120 nodes, 12 deep", child, c)
		}
	}
}
