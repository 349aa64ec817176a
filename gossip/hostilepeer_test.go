package gossip

import (
	"slices"
	"testing"
	"time"
)

// What one topic peer can make the Router do: its tree reports choose the node's place a bounded number of times a
// heartbeat, a stored report keeps no more than its own path, and neither its silence nor its coming and going
// holds on to the node's connections or its topic discovery for good.

// flipReports returns n reports of peer 1's place under root 50, alternating between next to the root (dist 0:
// peer 1 is this node's parent) and far (dist 3: peer 2, at 1, is); the last one is next to the root.
func flipReports(n int, seq uint64) []TreeInfo {
	out := make([]TreeInfo, n)
	for i := range out {
		dist := 3
		if (n-1-i)%2 == 0 {
			dist = 0
		}
		out[i] = report(50, dist, -1, seq)
	}
	return out
}

// An RPC listing a topic's tree report many times counts for its last one only: the node chooses its place once,
// from the peer's place now. It used to choose it for each report, as many as 64 an RPC.
func TestOnlyTheLastTreeReportOfATopicInAnRPCCounts(t *testing.T) {
	r := treeRouter(t, 3)
	r.HandleTree(t0, nid(2), report(50, 1, -1, 1))
	moves := r.Stats().TreeMoves
	r.HandleControl(t0, nid(1), &Control{Tree: flipReports(4*maxTreeMovesPerBeat+1, 1)})
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(1) || dist != 1 {
		t.Fatalf("place after the RPC: parent %v at %d, want peer 1 at 1 (its last report)", parent.Short(), dist)
	}
	if got := r.Stats().TreeMoves - moves; got != 1 {
		t.Fatalf("the RPC moved the node %d times, want once", got)
	}
}

// A peer's tree reports on a topic choose the node's place at once maxTreeMovesPerBeat times a heartbeat; the node
// takes the later ones on its heartbeat. A peer changing its place in every RPC, 2000 a second at its message rate,
// made the node choose its place as often, its cost growing with the peers, their paths and the cuts known.
func TestTreeReportsPastAPeersAllowanceWaitForTheHeartbeat(t *testing.T) {
	r := treeRouter(t, 3)
	r.HandleTree(t0, nid(2), report(50, 1, -1, 1))
	moves := r.Stats().TreeMoves
	flips := flipReports(maxTreeMovesPerBeat+5, 1) // the allowance ends on a "far" report, the last is "next to"
	for _, ti := range flips {
		r.HandleTree(t0, nid(1), ti)
	}
	if got := r.Stats().TreeMoves - moves; got != maxTreeMovesPerBeat {
		t.Fatalf("%d reports moved the node %d times before the heartbeat, want %d", len(flips), got, maxTreeMovesPerBeat)
	}
	if _, parent, _, _ := r.TreeLinks(topicA); parent != nid(2) {
		t.Fatalf("parent %v before the heartbeat, want peer 2 (the last report within the allowance)", parent.Short())
	}
	r.Heartbeat(t0.Add(time.Second))
	if _, parent, dist, _ := r.TreeLinks(topicA); parent != nid(1) || dist != 1 {
		t.Fatalf("place after the heartbeat: parent %v at %d, want peer 1 at 1 (the latest report)", parent.Short(), dist)
	}
	// The heartbeat renews the allowance.
	r.HandleTree(t0.Add(time.Second), nid(1), report(50, 3, -1, 2))
	if _, parent, _, _ := r.TreeLinks(topicA); parent != nid(2) {
		t.Fatal("a report after the heartbeat did not move the node at once")
	}
}

// A stored tree report keeps a path of its own: the decoder puts all the paths of an RPC in one array, which a
// report with a short path kept whole (up to ~1 MiB, another report's path included).
func TestATreeViewKeepsOnlyItsOwnPath(t *testing.T) {
	r := treeRouter(t, 2)
	shared := make([]uint32, 1<<16)
	shared[0], shared[1] = pathID(nid(50)), pathID(nid(1))
	ti := report(50, 1, -1, 1)
	ti.Path = shared[:2]
	r.HandleControl(t0, nid(1), &Control{Tree: []TreeInfo{ti}})
	v, ok := r.topics[topicA].tree.views[nid(1)]
	if !ok || !slices.Equal(v.info.Path, shared[:2]) {
		t.Fatalf("view %+v stored %v", v.info, ok)
	}
	if &v.info.Path[0] == &shared[0] || cap(v.info.Path) > 16 {
		t.Fatalf("the view's path holds the RPC's array (cap %d)", cap(v.info.Path))
	}
}

// The report bookkeeping of the peers that left a topic goes with them, also while the node's place keeps
// changing (the tree heartbeat then returns early, and used to skip the clean-up).
func TestReportBookkeepingForgetsThePeersThatLeft(t *testing.T) {
	r := treeRouter(t, 3)
	next := 1000
	for beat := 1; beat <= 100; beat++ {
		now := t0.Add(time.Duration(beat) * time.Second)
		seq := r.beaconAt(now)
		for _, ti := range flipReports(maxPromptReports+3, seq) { // damped: the heartbeat reports the place
			r.HandleTree(now, nid(1), ti)
		}
		r.HandleTree(now, nid(2), report(50, 1, -1, seq))
		id := nid(next) // a peer comes, is reported to, and goes
		next++
		addPeers(t, r, topicA, next-1, next-1)
		r.Heartbeat(now.Add(500 * time.Millisecond))
		r.RemovePeer(now.Add(600*time.Millisecond), id)
	}
	ts := r.topics[topicA].tree
	if len(ts.reported) > 4 || len(ts.cutSent) > 4 {
		t.Fatalf("%d topic peers; %d entries in reported, %d in cutSent", len(r.topics[topicA].peers), len(ts.reported), len(ts.cutSent))
	}
}

// A peer that never says hello (a node topic discovery connected to that accepts and stays silent) is released
// after silentReleaseBeats heartbeats, as one whose hello lists no topic in common is; its connection would
// otherwise hold an outbound slot for good. A hello that comes later with a topic in common keeps it again.
func TestASilentPeerIsReleased(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	r.Join(t0, topicA)
	silent := nid(1)
	if err := r.AddPeer(silent); err != nil {
		t.Fatal(err)
	}
	released := -1
	for beat := 1; beat <= 10 && released < 0; beat++ {
		if slices.Contains(r.Heartbeat(t0.Add(time.Duration(beat)*time.Second)).Release, silent) {
			released = beat
		}
	}
	if released != silentReleaseBeats {
		t.Fatalf("the silent peer was released at heartbeat %d, want %d", released, silentReleaseBeats)
	}
	if err := r.PeerSubscribed(silent, topicA); err != nil {
		t.Fatal(err)
	}
	if out := r.PeerUpdated(silent); !slices.Contains(out.Keep, silent) {
		t.Fatal("its late hello, with a topic in common, did not keep it again")
	}
}

// A topic peer that leaves and joins the topic every few seconds postpones the node's topic discovery by
// maxUnquietWaits search intervals at most: it used to keep a node alone in the topic but for it from ever
// registering or searching.
func TestAPeerComingAndGoingPostponesTopicDiscoveryForABoundedTime(t *testing.T) {
	cfg := discoverConfig()
	r := newTestRouter(t, cfg)
	addPeers(t, r, "other", 1, 8)
	r.Join(t0, topicA)
	flapper := nid(9)
	if err := r.AddPeer(flapper); err != nil {
		t.Fatal(err)
	}
	first := time.Duration(-1)
	for s := 1; s <= 600 && first < 0; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if s%3 == 0 {
			r.PeerUnsubscribed(now, flapper, topicA)
			if err := r.PeerSubscribed(flapper, topicA); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := discoverAt(r, now); ok {
			first = time.Duration(s) * time.Second
		}
	}
	if limit := cfg.TopicSearchInterval * (maxUnquietWaits + 2); first < 0 || first > limit {
		t.Fatalf("first registration or search %v after the join, want one within %v", first, limit)
	}
}

// BenchmarkHostileTreeRPC measures an RPC of 64 tree reports of one topic, each changing the sender's place and
// carrying maxTreeCuts made-up cuts, from one of 32 topic peers of a settled tree: what a hostile peer makes the
// node do per RPC, at up to its message rate (RelayConfig.PeerMessageRate).
func BenchmarkHostileTreeRPC(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Tree, cfg.Self, cfg.TreeRanked = true, nid(self), true
	r := joined(b, cfg, 32)
	for i := 1; i < 32; i++ {
		ti := rankedReport(50, 6, 1+i%3, -1, uint64(r.beaconAt(t0)))
		ti.Path = []uint32{pathID(nid(50)), pathID(nid(60 + i)), pathID(nid(70 + i)), pathID(nid(i))}[:2+i%3]
		r.HandleTree(t0, nid(i), ti)
	}
	rpcs := make([]*Control, 2)
	for k := range rpcs {
		c := &Control{}
		for j := range 64 {
			ti := report(200+(j+k)%2, 1+j%2, -1, 1)
			ti.Path = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
			for x := range maxTreeCuts {
				ti.Cuts = append(ti.Cuts, TreeCut{Parent: uint32(1000 + x + k*1000), Child: uint32(x), TTL: 14})
			}
			c.Tree = append(c.Tree, ti)
		}
		rpcs[k] = c
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.HandleControl(t0, nid(32), rpcs[i%2])
	}
}
