package gossip

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func discoverConfig() Config {
	cfg := DefaultConfig()
	cfg.TopicRegisterInterval, cfg.TopicSearchInterval = 10*time.Minute, 10*time.Second
	return cfg
}

// discoverAt runs the heartbeat at now and returns its Discover for topicA, if any.
func discoverAt(r *Router, now time.Time) (Discover, bool) {
	for _, d := range r.Heartbeat(now).Discover {
		if d.Topic == topicA {
			return d, true
		}
	}
	return Discover{}, false
}

// A node alone in its topic registers on it and searches for D peers from TopicSearchInterval after the join, the
// searches spaced by a wait that doubles up to 32 search intervals.
func TestHeartbeatAsksToRegisterAndSearchForATopicWithoutPeers(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, "other", 1, 8)
	r.Join(t0, topicA)
	for s := 1; s < 10; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("%d s after the join: %+v, want nothing before TopicSearchInterval", s, d)
		}
	}
	if d, ok := discoverAt(r, t0.Add(10*time.Second)); !ok || !d.Register || d.Want != r.cfg.D {
		t.Fatalf("TopicSearchInterval after the join: %+v %v, want a registration and a search for D = %d peers", d, ok, r.cfg.D)
	}
	searches := []time.Duration{10 * time.Second}
	for s := 11; s <= 3600; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok && d.Want > 0 {
			if d.Want != r.cfg.D {
				t.Fatalf("a search for %d peers, want D = %d", d.Want, r.cfg.D)
			}
			searches = append(searches, time.Duration(s)*time.Second)
		}
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		320 * time.Second, 640 * time.Second, 960 * time.Second}
	for i, w := range want {
		if i >= len(searches) || searches[i] != w {
			t.Fatalf("searches at %v, want them to start at %v", searches, want)
		}
	}
	for i := len(want); i < len(searches); i++ {
		if gap := searches[i] - searches[i-1]; gap != 32*r.cfg.TopicSearchInterval {
			t.Fatalf("searches at %v: a gap of %v, want at most 32 search intervals", searches, gap)
		}
	}
}

// Registrations come every TopicRegisterInterval on average (each wait drawn from [1/2, 3/2] of it) while the
// topic is sparse around the node, each with one more peer to connect to while it has fewer than Dhi topic peers
// (so that islands of members join up).
func TestRegistrationsAreRenewedWhileTheTopicIsSparse(t *testing.T) {
	cfg := discoverConfig()
	r := newTestRouter(t, cfg)
	addPeers(t, r, topicA, 1, 4)   // Dlo topic peers: no search
	addPeers(t, r, "other", 5, 12) // but only a third of the node's peers
	r.Join(t0, topicA)
	var regs []time.Time
	for s := 1; s <= 6*3600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if d, ok := discoverAt(r, now); ok {
			if d.Want != 1 || !d.Register {
				t.Fatalf("at %v: %+v, want a registration and one more peer (the node has Dlo topic peers, fewer than Dhi)", now.Sub(t0), d)
			}
			regs = append(regs, now)
		}
	}
	if len(regs) < 2 {
		t.Fatalf("%d registrations in 6 hours", len(regs))
	}
	var sum time.Duration
	for i := 1; i < len(regs); i++ {
		gap := regs[i].Sub(regs[i-1])
		if gap < cfg.TopicRegisterInterval/2 || gap > cfg.TopicRegisterInterval*3/2+time.Second {
			t.Fatalf("a registration %v after the one before, want within [1/2, 3/2] of %v", gap, cfg.TopicRegisterInterval)
		}
		sum += gap
	}
	if mean := sum / time.Duration(len(regs)-1); mean < cfg.TopicRegisterInterval*3/4 || mean > cfg.TopicRegisterInterval*5/4 {
		t.Fatalf("registrations every %v on average, want about %v", mean, cfg.TopicRegisterInterval)
	}
}

// A topic shared by most of the node's peers is found by connecting to anybody: no registration, no search.
func TestDenseTopicCostsNoDiscovery(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, topicA, 1, 8)
	addPeers(t, r, "other", 9, 12)
	r.Join(t0, topicA)
	for s := 1; s <= 3600; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("at %ds: %+v, want no discovery for a topic 8 of 12 peers share", s, d)
		}
	}
}

// Searches start over at TopicSearchInterval once the topic had Dlo peers; and with both intervals 0 (the
// Router's default) nothing is asked.
func TestSearchBackoffStartsOverAndDiscoveryCanBeOff(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	r.Join(t0, topicA)
	for s := 2; s <= 200; s++ {
		discoverAt(r, t0.Add(time.Duration(s)*time.Second)) // searches at 10, 20, 40, 80, 160 s: the next at 320 s
	}
	addPeers(t, r, topicA, 1, 4)
	if d, ok := discoverAt(r, t0.Add(201*time.Second)); ok && d.Want > 0 {
		t.Fatalf("with Dlo peers: %+v, want no search", d)
	}
	r.RemovePeer(t0.Add(202*time.Second), nid(1))
	for s := 202; s < 212; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("%d s after a peer left: %+v, want nothing while the peers changed within TopicSearchInterval", s-202, d)
		}
	}
	if d, ok := discoverAt(r, t0.Add(212*time.Second)); !ok || d.Want != r.cfg.D-3 {
		t.Fatalf("a peer short of Dlo again, its peers quiet: %+v %v, want a search for %d", d, ok, r.cfg.D-3)
	}
	if d, ok := discoverAt(r, t0.Add(222*time.Second)); !ok || d.Want == 0 {
		t.Fatalf("10 s later: %+v %v, want the next search after TopicSearchInterval (the waits started over)", d, ok)
	}

	off := newTestRouter(t, DefaultConfig())
	off.Join(t0, topicA)
	for s := 1; s <= 100; s++ {
		if d, ok := discoverAt(off, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("the Router's default config asked for %+v", d)
		}
	}
	bad := DefaultConfig()
	bad.TopicSearchInterval = -time.Second
	if err := bad.Validate(); err == nil {
		t.Fatal("a negative TopicSearchInterval passed Validate")
	}
}

// A node with Dhi topic peers in a topic that is still sparse around it registers and asks for no peer more.
func TestRegistrationWithDhiPeersAsksForNoMore(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, topicA, 1, r.cfg.Dhi)
	addPeers(t, r, "other", r.cfg.Dhi+1, 3*r.cfg.Dhi)
	r.Join(t0, topicA)
	d, ok := discoverAt(r, t0.Add(10*time.Second))
	if !ok || !d.Register || d.Want != 0 {
		t.Fatalf("%+v %v, want a registration only", d, ok)
	}
}

// While the topic's peers keep changing (subscriptions still coming in as the network forms), a node short of them
// asks nothing; once they have been quiet for TopicSearchInterval it registers and searches. Peers that come and
// go without joining the topic do not hold it back: in a sparse topic, a member's other connections keep changing
// while it has few topic peers.
func TestDiscoveryWaitsForTheTopicPeersToSettle(t *testing.T) {
	r := newTestRouter(t, discoverConfig()) // TopicSearchInterval 10 s
	r.Join(t0, topicA)
	for i := 1; i <= 30; i++ { // every 3 s for 90 s, a peer joins the topic and the one before leaves it: short
		now := t0.Add(time.Duration(3*i) * time.Second)
		r.Heartbeat(now)
		addPeers(t, r, topicA, i, i)
		if i > 1 {
			r.PeerUnsubscribed(now, nid(i-1), topicA)
		}
		if d, ok := discoverAt(r, now.Add(time.Second)); ok {
			t.Fatalf("%v after the join, topic peers still changing: %+v, want nothing", now.Add(time.Second).Sub(t0), d)
		}
	}
	last := t0.Add(90 * time.Second) // the topic's peers last changed then
	for s := 1; s < 10; s++ {
		now := last.Add(time.Duration(s) * time.Second)
		addPeers(t, r, "other", 100+s, 100+s) // connections of other topics: no change to wait for
		if d, ok := discoverAt(r, now); ok {
			t.Fatalf("%d s after the topic's peers last changed: %+v, want nothing before TopicSearchInterval", s, d)
		}
	}
	if d, ok := discoverAt(r, last.Add(10*time.Second)); !ok || !d.Register || d.Want != r.cfg.D-1 {
		t.Fatalf("the topic's peers quiet for TopicSearchInterval: %+v %v, want a registration and a search for D-1", d, ok)
	}
}

// A node still making its first connections (SetJoining) asks nothing, however long that takes and however short
// of topic peers it is; once it has them, and its peers are quiet, it registers and searches at once.
func TestDiscoveryWaitsWhileTheNodeJoins(t *testing.T) {
	r := newTestRouter(t, discoverConfig()) // TopicSearchInterval 10 s
	addPeers(t, r, "other", 1, 2)
	r.Join(t0, topicA)
	r.SetJoining(true)
	for s := 1; s <= 120; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("%d s after the join, the node joining: %+v, want nothing", s, d)
		}
	}
	r.SetJoining(false)
	if d, ok := discoverAt(r, t0.Add(121*time.Second)); !ok || !d.Register || d.Want != r.cfg.D {
		t.Fatalf("joined: %+v %v, want a registration and a search", d, ok)
	}
}

// A registration whose lookup failed (the node knew no peer yet, say) is retried TopicSearchInterval later, the
// wait doubling while it fails, not at the next renewal minutes later; one that succeeded starts the waits over.
// A failed search changes nothing: searches go on by themselves while the topic is short of peers.
func TestFailedRegistrationIsRetriedSoon(t *testing.T) {
	cfg := discoverConfig()
	cfg.TopicSearchInterval = 0 // registrations alone: a search would register nothing
	cfg.TopicRegisterInterval = 10 * time.Minute
	r := newTestRouter(t, cfg)
	addPeers(t, r, "other", 1, 8)
	r.Join(t0, topicA)
	registrations := func(from, to time.Duration) []time.Duration {
		var at []time.Duration
		for s := from; s <= to; s += time.Second {
			if d, ok := discoverAt(r, t0.Add(s)); ok && d.Register {
				at = append(at, s)
			}
		}
		return at
	}
	if at := registrations(time.Second, time.Second); len(at) != 1 {
		t.Fatalf("registrations at %v, want one at the first heartbeat (searches off: no wait after the join)", at)
	}
	failed := errors.New("no peers")
	r.TopicLookupDone(t0.Add(2*time.Second), topicA, true, failed)
	// The retry comes a heartbeat interval later (the base of the waits with searches off), then 2, then 4.
	if at := registrations(2*time.Second, 3*time.Second); !slices.Equal(at, []time.Duration{3 * time.Second}) {
		t.Fatalf("after a failure at 2 s, registrations at %v, want a retry at 3 s", at)
	}
	r.TopicLookupDone(t0.Add(3*time.Second), topicA, true, failed)
	if at := registrations(4*time.Second, 5*time.Second); !slices.Equal(at, []time.Duration{5 * time.Second}) {
		t.Fatalf("after a second failure at 3 s, registrations at %v, want the retry 2 s later", at)
	}
	r.TopicLookupDone(t0.Add(5*time.Second), topicA, false, failed) // a search's failure: no retry
	r.TopicLookupDone(t0.Add(5*time.Second), "b", true, failed)     // a topic not joined: nothing
	r.TopicLookupDone(t0.Add(6*time.Second), topicA, true, nil)
	if at := registrations(6*time.Second, 4*time.Minute); len(at) != 0 {
		t.Fatalf("after a success, registrations at %v, want the next renewal only (5-15 min after the last)", at)
	}
	r.TopicLookupDone(t0.Add(4*time.Minute), topicA, true, failed) // a renewal's failure: the waits start over
	if at := registrations(4*time.Minute+time.Second, 4*time.Minute+time.Second); len(at) != 1 {
		t.Fatalf("a renewal that failed after a success: registrations at %v, want a retry a second later", at)
	}
}

// The node releases the peers that share none of its topics any more (Output.Release), so that the shell stops
// keeping connections topic discovery made for a topic: when the node leaves the topic, and when the peer does.
// Releases wait for the next heartbeat, so that a peer that leaves and joins again within one (or an RPC that lists
// an unsubscription before a subscription) releases nothing, and a released peer that shares a joined topic again
// is kept again at once (Output.Keep).
func TestPeersSharingNoJoinedTopicAreReleased(t *testing.T) {
	r := newTestRouter(t, DefaultConfig())
	addPeers(t, r, topicA, 1, 3)                          // 1-3 in A
	if err := r.PeerSubscribed(nid(1), "b"); err != nil { // 1 in B too
		t.Fatal(err)
	}
	r.Join(t0, topicA)
	r.Join(t0, "b")
	beat := t0
	released := func() []session.NodeID {
		beat = beat.Add(time.Second)
		return sorted(r.Heartbeat(beat).Release)
	}
	sorted := func(ids []session.NodeID) []session.NodeID {
		return slices.SortedFunc(slices.Values(ids), func(x, y session.NodeID) int { return bytes.Compare(x[:], y[:]) })
	}
	ids := func(n ...int) []session.NodeID {
		var out []session.NodeID
		for _, i := range n {
			out = append(out, nid(i))
		}
		return out
	}
	for i := 1; i <= 3; i++ {
		r.PeerUpdated(nid(i)) // their hellos: each shares A
	}
	if got := released(); len(got) != 0 {
		t.Fatalf("peers in joined topics: released %v, want none", got)
	}
	if out := r.PeerUnsubscribed(t0, nid(1), topicA); len(out.Release) != 0 || len(released()) != 0 {
		t.Fatal("peer 1 left A but shares B: want it kept")
	}
	if out := r.PeerUnsubscribed(t0, nid(2), topicA); len(out.Release) != 0 {
		t.Fatalf("peer 2 left A: released %v at once, want it at the next heartbeat", out.Release)
	}
	if got := released(); !slices.Equal(got, ids(2)) {
		t.Fatalf("peer 2 left A, its one topic in common: released %v, want peer 2", got)
	}
	// Peer 3 leaves A and joins it again within a heartbeat (or in one RPC: unsubscriptions are applied first).
	r.PeerUnsubscribed(t0, nid(3), topicA)
	if err := r.PeerSubscribed(nid(3), topicA); err != nil {
		t.Fatal(err)
	}
	if out := r.PeerUpdated(nid(3)); len(out.Keep) != 0 {
		t.Fatalf("peer 3 was never released: kept %v again", out.Keep)
	}
	if got := released(); len(got) != 0 {
		t.Fatalf("peer 3 left A and joined it again within a heartbeat: released %v, want none", got)
	}
	// Peer 2, released, joins A again: kept again at once.
	if err := r.PeerSubscribed(nid(2), topicA); err != nil {
		t.Fatal(err)
	}
	if out := r.PeerUpdated(nid(2)); !slices.Equal(out.Keep, ids(2)) {
		t.Fatalf("peer 2 shares A again: kept %v, want peer 2", out.Keep)
	}
	if out := r.PeerUpdated(nid(2)); len(out.Keep) != 0 {
		t.Fatalf("peer 2 kept again twice: %v", out.Keep)
	}
	// The node leaves A: 2 and 3 share nothing, 1 shares B.
	r.Leave(t0, topicA)
	if got := released(); !slices.Equal(got, ids(2, 3)) {
		t.Fatalf("the node left A: released %v, want peers 2 and 3 (peer 1 shares B)", got)
	}
	if r.SharesJoinedTopic(nid(3)) || !r.SharesJoinedTopic(nid(1)) || r.SharesJoinedTopic(nid(9)) {
		t.Fatal("SharesJoinedTopic: want peer 1 (B) alone")
	}
	// The node joins A again: its released peers in A are kept again at once.
	if out := join(t, r, t0, topicA); !slices.Equal(sorted(out.Keep), ids(2, 3)) {
		t.Fatalf("the node joined A again: kept %v, want peers 2 and 3", out.Keep)
	}
	// Leaving and joining within a heartbeat releases nothing.
	r.Leave(t0, "b")
	r.Leave(t0, topicA)
	r.Join(t0, topicA)
	if got := released(); !slices.Equal(got, ids(1)) {
		t.Fatalf("the node left B for good and A for an instant: released %v, want peer 1 (in B alone now)", got)
	}
	// A peer that shares nothing from its hello on is released once.
	addPeers(t, r, "c", 7, 7)
	r.PeerUpdated(nid(7))
	r.PeerUpdated(nid(7))
	if got := released(); !slices.Equal(got, ids(7)) {
		t.Fatalf("a peer in no joined topic: released %v, want peer 7 once", got)
	}
	if got := released(); len(got) != 0 {
		t.Fatalf("released %v again, want each release once", got)
	}
}
