package actors_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// sparseNetwork starts n nodes over TCP that join the DHT through the bootnode (node 0) but keep no connection:
// a node has gossip peers only once topic discovery connected it to some.
func sparseNetwork(t *testing.T, n int, configure ...func(*actors.Config)) *testkit.Network {
	t.Helper()
	nw := testkit.NewNetwork(t, n, testkit.WithBootnode(), testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 50 * time.Millisecond
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Gossip.Router.TopicSearchInterval = 200 * time.Millisecond
		for _, f := range configure {
			f(cfg)
		}
	}))
	for _, node := range nw.Nodes[1:] {
		testkit.WaitFor(t, 10*time.Second, func() bool {
			rt, err := node.RoutingTable(ctxTimeout(t, time.Second))
			return err == nil && len(rt.Entries) > 0
		}, "every node to join the DHT")
	}
	return nw
}

// A topic three of ten nodes join, none of them connected to another: each registers on the topic in the DHT,
// finds the others there, connects to them, and their messages reach each other.
func TestSparseTopicSubscribersFindEachOtherInTheDHT(t *testing.T) {
	nw := sparseNetwork(t, 10)
	subscribers := []*actors.Node{nw.Nodes[3], nw.Nodes[6], nw.Nodes[9]}
	for _, s := range subscribers {
		if n := s.OutboundCount(); n != 0 {
			t.Fatalf("setup: subscriber %s keeps %d connections before discovery", s.ID().Short(), n)
		}
	}
	const topic = "sparse"
	var mu sync.Mutex
	got := make(map[session.NodeID][]string)
	ctx := ctxTimeout(t, 30*time.Second)
	for _, s := range subscribers {
		id := s.ID()
		if _, err := s.Subscribe(ctx, topic, func(d *gossip.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			got[id] = append(got[id], d.Payload.(*wrapperspb.StringValue).GetValue())
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subscribers {
		testkit.WaitFor(t, 20*time.Second, func() bool {
			info, err := s.Topic(ctx, topic)
			return err == nil && len(info.Peers) == len(subscribers)-1
		}, "subscriber %s to find the other two in the DHT", s.ID().Short())
	}
	for _, s := range subscribers {
		if _, err := s.Publish(ctx, topic, wrapperspb.String("from "+s.ID().Short())); err != nil {
			t.Fatalf("publish from %s: %v", s.ID().Short(), err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range subscribers {
			if len(got[s.ID()]) < len(subscribers) {
				return false
			}
		}
		return true
	}, "every subscriber to receive the three messages")
	mu.Lock()
	defer mu.Unlock()
	for _, s := range subscribers {
		msgs := slices.Sorted(slices.Values(got[s.ID()]))
		want := []string{}
		for _, p := range subscribers {
			want = append(want, "from "+p.ID().Short())
		}
		slices.Sort(want)
		if !slices.Equal(msgs, want) {
			t.Fatalf("subscriber %s received %v, want each message once: %v", s.ID().Short(), msgs, want)
		}
	}
}

// FindTopicPeers names the nodes registered on a topic to any node, itself not registered.
func TestFindTopicPeersNamesTheRegisteredNodes(t *testing.T) {
	nw := sparseNetwork(t, 6)
	ctx := ctxTimeout(t, 30*time.Second)
	const topic = "rare"
	subscribers := []*actors.Node{nw.Nodes[2], nw.Nodes[4]}
	for _, s := range subscribers {
		if _, err := s.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	asker := nw.Nodes[5]
	testkit.WaitFor(t, 20*time.Second, func() bool {
		found, err := asker.FindTopicPeers(ctx, topic)
		if err != nil {
			return false
		}
		var ids []session.NodeID
		for _, p := range found {
			ids = append(ids, p.ID)
			if p.Addr == "" {
				return false
			}
		}
		return len(ids) == 2 && slices.Contains(ids, subscribers[0].ID()) && slices.Contains(ids, subscribers[1].ID())
	}, "node 5 to find the topic's two subscribers")
	// The polling above spent the others' FindNode rate (20/s per peer): until their limiters let a request through
	// again, their "overloaded" answers are no answer, and the lookup fails with routing.ErrNoAnswer.
	var found []session.PeerAddr
	var err error
	testkit.WaitFor(t, 5*time.Second, func() bool {
		found, err = asker.FindTopicPeers(ctx, "no one's")
		return !errors.Is(err, routing.ErrNoAnswer)
	}, "an answer about a topic nobody joined")
	if err != nil || len(found) != 0 {
		t.Fatalf("a topic nobody joined: %v %v, want nothing", found, err)
	}
	if _, err := asker.FindTopicPeers(ctx, ""); !errors.Is(err, gossip.ErrEmptyTopic) {
		t.Fatalf("an empty topic: %v, want gossip.ErrEmptyTopic", err)
	}
	if _, err := asker.FindTopicPeers(ctx, string([]byte{0xff})); !errors.Is(err, gossip.ErrTopicNotUTF8) {
		t.Fatalf("a topic that is not UTF-8: %v, want gossip.ErrTopicNotUTF8", err)
	}
	other := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	if _, err := other.Nodes[0].FindTopicPeers(ctx, topic); !errors.Is(err, actors.ErrDiscoveryDisabled) {
		t.Fatalf("a node without discovery: %v, want ErrDiscoveryDisabled", err)
	}
}

// A node that joins more sparse topics at once than it runs topic lookups (4) registers on all of them: the
// requests over the bound wait for a lookup to end. They used to be dropped, and the node was not registered on
// those topics until the relay's next registration, minutes later.
func TestEverySparseTopicJoinedAtOnceIsRegistered(t *testing.T) {
	nw := sparseNetwork(t, 6)
	member, asker := nw.Nodes[3], nw.Nodes[5]
	ctx := ctxTimeout(t, 60*time.Second)
	var topics []string
	for i := range 7 {
		topics = append(topics, fmt.Sprintf("rare-%d", i))
	}
	for _, topic := range topics {
		if _, err := member.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range topics {
		testkit.WaitFor(t, 20*time.Second, func() bool {
			found, err := asker.FindTopicPeers(ctx, topic)
			return err == nil && len(found) == 1 && found[0].ID == member.ID()
		}, "the member to be registered on %s", topic)
	}
}

// keeps tells whether n keeps its connection to peer.
func keeps(n *actors.Node, peer session.NodeID) bool {
	return slices.ContainsFunc(n.Peers(), func(p actors.PeerInfo) bool { return p.ID == peer && p.Kept })
}

// A connection topic discovery made is kept while the topic needs it, then released: once one of its two members
// leaves the topic it is closed when idle, and a connection the remaining member makes later to the one that left
// (found by its registration, which outlives its subscription) is released as soon as its subscriptions show it.
// Before, they stayed kept until lost, and a node that went through sparse topics filled its outbound slots
// with them.
func TestTopicDiscoveryConnectionsAreReleasedOnceNoTopicIsShared(t *testing.T) {
	nw := sparseNetwork(t, 6)
	stays, leaves := nw.Nodes[2], nw.Nodes[4]
	ctx := ctxTimeout(t, 40*time.Second)
	const topic = "brief"
	if _, err := stays.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	sub, err := leaves.Subscribe(ctx, topic, func(*gossip.Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		info, err := stays.Topic(ctx, topic)
		return err == nil && slices.Contains(info.Peers, leaves.ID()) &&
			(keeps(stays, leaves.ID()) || keeps(leaves, stays.ID()))
	}, "the two members to find each other and keep their connection")
	events := watchEvents(t, stays)
	sub.Cancel()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return !keeps(stays, leaves.ID()) && !keeps(leaves, stays.ID()) && events.disconnects(leaves.ID()) >= 1
	}, "the connection to be released and closed once the member left")
	// The member that stays is still short of peers and searches again: it finds the registration of the one
	// that left, connects, learns it is in no common topic, releases the connection and closes it once idle. Two
	// searches on, every connection to it has closed (each would have stayed kept before).
	searches := routerStats(t, stays).TopicSearches
	testkit.WaitFor(t, 30*time.Second, func() bool {
		c := events.connects(leaves.ID())
		return routerStats(t, stays).TopicSearches >= searches+2 && c >= 1 &&
			events.disconnects(leaves.ID()) >= c+1 && !keeps(stays, leaves.ID())
	}, "the connections made again from the stale registration to be released too")
}

// twoMembers subscribes a and b to topic and waits until topic discovery connected them: keeper is the one that
// keeps the connection, other the other one.
func twoMembers(t *testing.T, ctx context.Context, a, b *actors.Node, topic string) (keeper, other *actors.Node, subs map[*actors.Node]*gossip.Subscription) {
	t.Helper()
	subs = make(map[*actors.Node]*gossip.Subscription)
	for _, n := range []*actors.Node{a, b} {
		s, err := n.Subscribe(ctx, topic, func(*gossip.Delivery) {})
		if err != nil {
			t.Fatal(err)
		}
		subs[n] = s
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		switch {
		case keeps(a, b.ID()):
			keeper, other = a, b
		case keeps(b, a.ID()):
			keeper, other = b, a
		}
		return keeper != nil
	}, "the two members to find each other and keep their connection")
	return keeper, other, subs
}

// keptSince returns when n's kept connection to peer was established (zero: none).
func keptSince(n *actors.Node, peer session.NodeID) time.Time {
	for _, p := range n.Peers() {
		if p.ID == peer && p.Kept {
			return p.ConnectedAt
		}
	}
	return time.Time{}
}

// routerStats returns n's gossip Router counters.
func routerStats(t *testing.T, n *actors.Node) gossip.Stats {
	t.Helper()
	st, err := n.GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return st.Router
}

// A member that leaves the topic and joins it again at once (a new handler, say), or whose peer does, keeps the
// connection topic discovery made: releases wait for a heartbeat, and a released peer that shares the topic again
// is kept again. Released at once, the connection closed and the topic had no peer until the next search.
func TestTopicDiscoveryConnectionOutlivesAResubscription(t *testing.T) {
	for _, who := range []string{"dialer", "peer"} {
		t.Run(who, func(t *testing.T) {
			nw := sparseNetwork(t, 6)
			ctx := ctxTimeout(t, 40*time.Second)
			const topic = "again"
			dialer, other, subs := twoMembers(t, ctx, nw.Nodes[2], nw.Nodes[4], topic)
			since := keptSince(dialer, other.ID())
			again := dialer
			if who == "peer" {
				again = other
			}
			subs[again].Cancel()
			if _, err := again.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
				t.Fatal(err)
			}
			beats := routerStats(t, dialer).Heartbeats
			testkit.WaitFor(t, 10*time.Second, func() bool {
				return routerStats(t, dialer).Heartbeats >= beats+3
			}, "three heartbeats of the dialer")
			if now := keptSince(dialer, other.ID()); !now.Equal(since) {
				t.Fatalf("after the %s's resubscription the kept connection is one of %v, want the one of %v", who, now, since)
			}
			info, err := dialer.Topic(ctx, topic)
			if err != nil || !slices.Contains(info.Peers, other.ID()) {
				t.Fatalf("the dialer's topic peers %v (%v), want the other member", info.Peers, err)
			}
		})
	}
}

// A registration that failed (the node knew nobody yet) is retried within seconds, not at the next renewal minutes
// later: a node that joins a topic before it joins the network is found on the topic soon after it joins.
func TestAFailedTopicRegistrationIsRetriedSoon(t *testing.T) {
	nw := sparseNetwork(t, 4)
	late := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Gossip.Router.TopicSearchInterval = 200 * time.Millisecond
	})).Nodes[0]
	ctx := ctxTimeout(t, 40*time.Second)
	const topic = "early"
	if _, err := late.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		st, err := late.GossipStats(ctx)
		return err == nil && st.Router.TopicRegistrations >= 1 && st.Router.TopicLookupsFailed >= 1
	}, "the registration of a node that knows nobody to fail")
	joinAndBeFound(ctx, t, nw, late, topic, "the late node's registration to be retried once it joined the network")
}

// joinAndBeFound makes late join the DHT of nw (a lookup through its node 0) and waits until nw's node 2 finds it
// registered on topic.
func joinAndBeFound(ctx context.Context, t *testing.T, nw *testkit.Network, late *actors.Node, topic, what string) {
	t.Helper()
	if _, err := late.FindClosestFrom(ctx, routing.KeyOf(late.ID()), []session.PeerAddr{nw.Nodes[0].Addr()}); err != nil {
		t.Fatal(err)
	}
	asker := nw.Nodes[2]
	testkit.WaitFor(t, 20*time.Second, func() bool {
		found, err := asker.FindTopicPeers(ctx, topic)
		return err == nil && slices.ContainsFunc(found, func(p session.PeerAddr) bool { return p.ID == late.ID() })
	}, "%s", what)
}

// A node still making its first connections (its bootstrapper dialing for them, with fewer than Dlo outbound ones)
// asks no topic lookup: its connections to come may bring the topic's peers. Here its only bootnode accepts the
// connection and never answers the handshake, so the first step of its bootstrapper hangs; once that step fails, the
// node has nobody left to dial, is no longer joining, and registers on its sparse topic, where the other nodes find
// it once it knows them. At N = 1000 the nodes of a topic they all share searched and registered by the thousand
// while they joined.
func TestTopicDiscoveryWaitsForTheNodesFirstConnections(t *testing.T) {
	nw := sparseNetwork(t, 4)
	silent, err := net.Listen("tcp", "127.0.0.1:0") // connections wait in its backlog, never answered
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	late := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.Bootnodes = []session.PeerAddr{{ID: session.NodeID{7}, Addr: silent.Addr().String()}}
		cfg.Bootstrap.TargetOutbound = 2
		cfg.Bootstrap.Interval = 50 * time.Millisecond
		cfg.HandshakeTimeout = 30 * time.Second // the step ends when the listener closes, not before
		cfg.Gossip.Router.TopicSearchInterval = 200 * time.Millisecond
	})).Nodes[0]
	ctx := ctxTimeout(t, 40*time.Second)
	const topic = "joining"
	if _, err := late.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	beats := routerStats(t, late).Heartbeats
	testkit.WaitFor(t, 10*time.Second, func() bool { return routerStats(t, late).Heartbeats >= beats+4 },
		"four heartbeats (twenty search intervals)")
	if st := routerStats(t, late); st.TopicRegistrations != 0 || st.TopicSearches != 0 {
		t.Fatalf("a node joining asked %d registrations and %d searches, want none", st.TopicRegistrations, st.TopicSearches)
	}
	silent.Close() // resets the waiting connection: the bootstrapper's step fails, with nobody else to dial
	testkit.WaitFor(t, 10*time.Second, func() bool { return routerStats(t, late).TopicRegistrations > 0 },
		"the node to register once it is not joining")
	joinAndBeFound(ctx, t, nw, late, topic, "the node's registration to reach the others once it knows them")
}

// A registration that no node answered (the node's table holds only nodes that are gone) failed, and is counted
// and retried as such: the lookup itself reports no error then.
func TestATopicRegistrationNoNodeAnsweredFailed(t *testing.T) {
	nw := sparseNetwork(t, 4)
	node := nw.Nodes[3]
	for _, other := range nw.Nodes[:3] {
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxTimeout(t, 30*time.Second)
	if rt, err := node.RoutingTable(ctx); err != nil || len(rt.Entries) == 0 {
		t.Fatalf("setup: routing table %v (%v), want the closed nodes in it", rt.Entries, err)
	}
	if _, err := node.Subscribe(ctx, "alone", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		st := routerStats(t, node)
		return st.TopicRegistrations >= 2 && st.TopicLookupsFailed >= 2
	}, "the registrations no node answered to fail and be retried")
}

// A released connection that is still open is kept again once the peer shares a topic again: here the member that
// kept it leaves the topic, its connection is released, and it joins the topic again before the connection closed.
func TestAReleasedTopicConnectionIsKeptAgain(t *testing.T) {
	nw := sparseNetwork(t, 6, func(cfg *actors.Config) {
		cfg.DiscoveryIdleTimeout = 5 * time.Second // a released connection outlives the test's steps
	})
	ctx := ctxTimeout(t, 40*time.Second)
	const topic = "back"
	keeper, other, subs := twoMembers(t, ctx, nw.Nodes[2], nw.Nodes[4], topic)
	since := keptSince(keeper, other.ID())
	subs[keeper].Cancel()
	testkit.WaitFor(t, 5*time.Second, func() bool {
		return !keeps(keeper, other.ID())
	}, "the keeper's connection to be released once it left the topic")
	if _, err := keeper.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 3*time.Second, func() bool {
		return keptSince(keeper, other.ID()).Equal(since)
	}, "the same connection to be kept again once the keeper joined the topic again")
}

// A connection its dialer opened as transient, that the other end kept for a topic and the dialer then came to
// keep (its bootstrapper, a Connect with keep), stays once the topic is left: the dialer tells the other end that
// it keeps it (a Ping with keeps), so the other end's release does not close it.
func TestAReleasedConnectionItsDialerKeepsStays(t *testing.T) {
	// P's transient connection must outlast A's search for the topic's peers: at the default 10 s it idled out
	// first on a loaded host, once, and A dialed P anew (an outbound connection, not the one under test).
	nw := sparseNetwork(t, 6, func(cfg *actors.Config) { cfg.TransientIdleTimeout = time.Minute })
	a, p := nw.Nodes[2], nw.Nodes[4]
	ctx := ctxTimeout(t, 60*time.Second)
	const topic = "wanted"
	sub, err := p.Subscribe(ctx, topic, func(*gossip.Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		found, err := nw.Nodes[1].FindTopicPeers(ctx, topic)
		return err == nil && slices.ContainsFunc(found, func(x session.PeerAddr) bool { return x.ID == p.ID() })
	}, "P to register on the topic")
	if err := p.Connect(ctx, a.Addr(), false); err != nil { // dialed by P, transient
		t.Fatal(err)
	}
	if _, err := a.Subscribe(ctx, topic, func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return slices.ContainsFunc(a.Peers(), func(i actors.PeerInfo) bool { return i.ID == p.ID() && i.Kept && !i.Outbound })
	}, "A to keep P's connection for the topic")
	if err := p.Connect(ctx, a.Addr(), true); err != nil { // now P keeps it too
		t.Fatal(err)
	}
	events := watchEvents(t, p)
	sub.Cancel()
	testkit.WaitFor(t, 5*time.Second, func() bool { return !keeps(a, p.ID()) }, "A to release the connection once P left")
	beats := routerStats(t, a).Heartbeats
	testkit.WaitFor(t, 10*time.Second, func() bool { return routerStats(t, a).Heartbeats >= beats+3 }, "three heartbeats of A")
	if d := events.disconnectsFrom(a.ID()); len(d) != 0 || !p.Connected(a.ID()) {
		t.Fatalf("A closed the connection P keeps: %v", d)
	}
}
