package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// checkerConfig makes node checker of a test network check its table every tick, count every failed check
// (FailureSpacing 0: checks one after the other each count) and make no dial but its checks'; the others never
// check theirs.
func checkerConfig(checker int, tick time.Duration, ids []*session.Identity, more func(i int, cfg *actors.Config)) testkit.Option {
	return testkit.WithConfig(func(i int, cfg *actors.Config) {
		ids[i] = cfg.Identity
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.IntroduceDelay = 0
		cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = time.Hour, time.Hour
		if i == checker {
			cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = tick, tick
			cfg.Routing.Table.FailureSpacing = 0
		}
		if more != nil {
			more(i, cfg)
		}
	})
}

// A live node whose inbound slots are full answers a liveness check's dial with a goodbye (TOO_MANY_PEERS) once the
// handshake has told who dials: it is up, and the check counts as its answer for the failure count (the entry's
// failures are reset: routing.Table.MarkUp), not as its failure. The check used to fail as "peer disconnected",
// held against it: two such checks evicted a live node and kept it out for 30 minutes. Nor is the node marked as
// having answered: it learned nothing of the checker.
func TestALivenessCheckAGoodbyeRefusesIsNoFailure(t *testing.T) {
	const a, c = 0, 1
	ids := make([]*session.Identity, 2)
	nw := testkit.NewNetwork(t, 2, checkerConfig(a, 100*time.Millisecond, ids, func(i int, cfg *actors.Config) {
		if i == c { // three inbound slots, kept by raw peers of one group: a newcomer that keeps could evict one
			cfg.MaxInboundPeers, cfg.InboundEvictionGrace = 3, 0
		}
	}))
	node := nw.Nodes[a]
	for range 3 {
		rawPeer(t, nw.Nodes[c])
	}
	node.AddRecords([]*messages.NodeRecord{record(t, ids[c], nw.Nodes[c])})
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); _, ok := m[ids[c].NodeID()]; return ok },
		"a's table takes c")
	testkit.WaitFor(t, 20*time.Second, func() bool {
		m, st := tableOf(t, node)
		e, ok := m[ids[c].NodeID()]
		if !ok || st.Evictions > 0 || e.Failures > 0 {
			t.Fatalf("c (alive, its slots full) in a's table %v, Failures %d, Evictions %d after %d checks",
				ok, e.Failures, st.Evictions, st.Revalidations)
		}
		if e.Answered() {
			t.Fatal("c, which refused every check, marked as having answered")
		}
		return st.Revalidations >= 4
	}, "four checks of c")
	if n := nw.Nodes[c].Stats().HandshakeFailures; len(n) > 0 {
		t.Logf("c's handshake failures: %v", n)
	}
}

// A live node whose per-IP inbound cap (or throttle) refuses a liveness check's dial closes the connection before
// any handshake work, telling nothing: the check fails as unreachable. For a node that has answered the checker
// before, at that address, such a refusal is not held against it (routing.ErrRefusedBeforeHandshake); it used to
// count, and a node that a host's many nodes dialed past its per-IP cap was evicted while up. A node that never
// answered is held to it still: nothing authenticates the refusal, and a made-up record naming an address that
// accepts and closes would otherwise stay in the table for good.
func TestALivenessCheckRefusedBeforeTheHandshakeCountsOnlyForANodeThatNeverAnswered(t *testing.T) {
	const a, c = 0, 1
	ids := make([]*session.Identity, 2)
	nw := testkit.NewNetwork(t, 2, checkerConfig(a, 100*time.Millisecond, ids, func(i int, cfg *actors.Config) {
		if i == c { // one inbound connection from 127.0.0.1 at most
			cfg.ExemptLoopbackThrottle, cfg.MaxInboundPerIP = false, 1
		}
	}))
	node, peer := nw.Nodes[a], nw.Nodes[c]
	answeredThenRefusing(t, node, peer, ids[c])
	fake := newIdentity(t) // a made-up node at c's address: it never answered
	node.AddRecords([]*messages.NodeRecord{recordAt(t, fake, peer.Addr().Addr)})
	_, before := tableOf(t, node)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		m, st := tableOf(t, node)
		e, ok := m[ids[c].NodeID()]
		if !ok || e.Failures > 0 {
			t.Fatalf("c (alive, refusing a's IP) in a's table %v, Failures %d, after %d checks",
				ok, e.Failures, st.Revalidations-before.Revalidations)
		}
		_, fakeIn := m[fake.NodeID()]
		return !fakeIn && st.Revalidations >= before.Revalidations+6
	}, "the made-up node's eviction and six checks")
	if _, st := tableOf(t, node); st.Evictions != before.Evictions+1 {
		t.Fatalf("Evictions %d -> %d, want one (the made-up node)", before.Evictions, st.Evictions)
	}
}

// A node that answered the checker is spared its address's refusals before the handshake for
// Config.Routing.RefusalGrace after its answer only: past it, they count as failures, and a node that answered
// once and then closed every connection unanswered (no handshake's work, for it) is evicted as an unreachable one.
// Spared for good, it stayed in the table for good.
func TestALivenessCheckRefusedBeforeTheHandshakeCountsPastTheRefusalGrace(t *testing.T) {
	const a, c = 0, 1
	ids := make([]*session.Identity, 2)
	nw := testkit.NewNetwork(t, 2, checkerConfig(a, 100*time.Millisecond, ids, func(i int, cfg *actors.Config) {
		switch i {
		case a:
			cfg.Routing.RefusalGrace = time.Millisecond // c's answer is old by its first refusal
		case c: // one inbound connection from 127.0.0.1 at most
			cfg.ExemptLoopbackThrottle, cfg.MaxInboundPerIP = false, 1
		}
	}))
	node, peer := nw.Nodes[a], nw.Nodes[c]
	answeredThenRefusing(t, node, peer, ids[c])
	_, before := tableOf(t, node)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		m, st := tableOf(t, node)
		_, in := m[ids[c].NodeID()]
		return !in && st.Evictions == before.Evictions+1
	}, "c's eviction, its answer older than RefusalGrace")
}

// A liveness check of a node this node banned cannot be sent: the dial fails with ErrBanned, this node's own
// refusal (routing.ErrPeerBanned), which removes the node from the table, as no eviction (the peer's liveness is not
// in question), and keeps the copies of its record relayed again out. It first counted as the peer's failure, then
// (stop 61) was spared as busy: the banned node stayed in the table, handed to other nodes, for the whole ban.
func TestALivenessCheckOfABannedNodeRemovesIt(t *testing.T) {
	const a, c = 0, 1
	ids := make([]*session.Identity, 2)
	nw := testkit.NewNetwork(t, 2, checkerConfig(a, 100*time.Millisecond, ids, nil))
	node, peer := nw.Nodes[a], nw.Nodes[c]
	if err := node.Ban(peer.ID(), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	rec := record(t, ids[c], peer)
	node.AddRecords([]*messages.NodeRecord{rec}) // after the ban: c's record came back while banned
	testkit.WaitFor(t, 20*time.Second, func() bool {
		m, st := tableOf(t, node)
		_, in := m[ids[c].NodeID()]
		if st.Evictions > 0 {
			t.Fatalf("a check of c (banned by a) counted as an eviction: Evictions %d", st.Evictions)
		}
		return !in && st.Revalidations >= 1
	}, "a check of c to remove it from a's table")
	_, before := tableOf(t, node)
	node.AddRecords([]*messages.NodeRecord{rec}) // relayed again
	testkit.WaitFor(t, 5*time.Second, func() bool { _, st := tableOf(t, node); return st.GoneRecords > before.GoneRecords },
		"c's relayed record refused")
	if m, _ := tableOf(t, node); len(m) != 0 {
		t.Fatalf("a's table holds %d entries after c's record was relayed again, want 0", len(m))
	}
}

// A liveness check whose dial waited for a free outbound slot (this node's own limit) and got one late has only
// what is left of its RequestTimeout for the dial and the exchange; the time it waited is this node's, not the
// peer's, and counts as the check sent that much later (routing.LocalWaitError, checkStalled): a check that got its
// slot past a quarter of its time is not held against the peer. Such a check failed and counted, and a node whose
// outbound slots stayed busy evicted live nodes that would have answered in their full time.
func TestALivenessCheckThatWaitedForALocalSlotIsNotHeldAgainstThePeer(t *testing.T) {
	const (
		a, holder, c = 0, 1, 2
		timeout      = 2 * time.Second
		held         = 3 * timeout / 4 // the slot comes with less than a quarter of the check's time left
	)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	ids := make([]*session.Identity, 3)
	nw := testkit.NewNetwork(t, 3, checkerConfig(a, 100*time.Millisecond, ids, func(i int, cfg *actors.Config) {
		cfg.Transport = mn.NewTransport()
		switch i {
		case a:
			cfg.MaxOutboundPeers = 1
			cfg.Routing.RequestTimeout = timeout
			cfg.Routing.Table.MaxFailures = 1 // a failure counted evicts
		case holder:
			cfg.DisableDiscovery = true
		}
	}))
	node, peer := nw.Nodes[a], nw.Nodes[c]
	// c answers a check well within its time (a few round trips of 100 ms), not within what a late slot leaves.
	mn.SetLink(node.Addr().Addr, peer.Addr().Addr, testkit.LinkConfig{Latency: 100 * time.Millisecond})
	register(t, nw.Nodes[holder], "silent/1", actor.PropsFromFunc(func(actor.Context) {}))
	if err := node.Connect(ctxTimeout(t, 5*time.Second), nw.Nodes[holder].Addr(), false); err != nil {
		t.Fatal(err)
	}
	// a's one outbound slot: a transient connection with a request in flight, which no dial may take from it.
	holdCtx, release := context.WithTimeout(context.Background(), 30*time.Second)
	defer release()
	holding := make(chan error, 1)
	go func() {
		_, err := node.Request(holdCtx, nw.Nodes[holder].ID(), "silent/1", wrapperspb.String("hold"))
		holding <- err
	}()
	testkit.WaitFor(t, 5*time.Second, func() bool { return node.Stats().PeersOutbound == 1 }, "a's slot held")
	node.AddRecords([]*messages.NodeRecord{record(t, ids[c], peer)})
	testkit.WaitFor(t, 5*time.Second, func() bool { _, st := tableOf(t, node); return st.Checks >= 1 }, "a's check of c")
	// The request holding the slot ends held after the check began: the check's dial gets the slot then.
	stop := time.AfterFunc(held, release)
	defer stop.Stop()
	<-holding
	testkit.WaitFor(t, 20*time.Second, func() bool {
		m, st := tableOf(t, node)
		e, ok := m[ids[c].NodeID()]
		if !ok || st.Evictions > 0 {
			t.Fatalf("c (alive) in a's table %v, Evictions %d, after %d checks", ok, st.Evictions, st.Revalidations)
		}
		return e.Answered() && st.Revalidations >= 3
	}, "c to answer a later check")
}

// An introduction tick starts at most Routing.MaxIntroductions liveness checks at once; the tick's others start as
// those end, and every neighbour learned second-hand is introduced to in the end. A tick used to start its up to K
// checks together, K dials and handshakes in one instant, each with its 2 s to answer while the host was busiest.
func TestIntroductionsStartAtMostMaxIntroductionsChecksAtOnce(t *testing.T) {
	const (
		a, peers = 0, 8
		bound    = 2
	)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	ids := make([]*session.Identity, peers+1)
	nw := testkit.NewNetwork(t, peers+1, checkerConfig(-1, 0, ids, func(i int, cfg *actors.Config) {
		cfg.Transport = mn.NewTransport()
		if i == a {
			cfg.Routing.IntroduceDelay = 50 * time.Millisecond
			cfg.Routing.MaxIntroductions = bound
		}
	}))
	node := nw.Nodes[a]
	var recs []*messages.NodeRecord
	for i := 1; i <= peers; i++ {
		// Each check takes a few round trips of 100 ms: checks started together overlap.
		mn.SetLink(node.Addr().Addr, nw.Nodes[i].Addr().Addr, testkit.LinkConfig{Latency: 100 * time.Millisecond})
		recs = append(recs, record(t, ids[i], nw.Nodes[i]))
	}
	node.AddRecords(recs) // learned second-hand: a introduces itself to each, IntroduceDelay later
	most := 0
	testkit.WaitFor(t, 30*time.Second, func() bool {
		m, st := tableOf(t, node)
		if inFlight := int(st.Checks - st.Revalidations); inFlight > most {
			most = inFlight
		}
		if most > bound {
			t.Fatalf("%d introductions in progress at once, more than MaxIntroductions (%d)", most, bound)
		}
		answered := 0
		for _, e := range m {
			if e.Answered() {
				answered++
			}
		}
		return answered == peers && st.Introductions == peers
	}, "every peer introduced to and answered")
	if most == 0 {
		t.Fatal("no introduction seen in progress")
	}
}

// answeredThenRefusing has peer (whose MaxInboundPerIP is 1) answer node's check, closes their connection and
// takes peer's one inbound place for 127.0.0.1 with a raw connection: node's dials to peer are refused before the
// handshake from then on.
func answeredThenRefusing(t *testing.T, node, peer *actors.Node, id *session.Identity) {
	t.Helper()
	node.AddRecords([]*messages.NodeRecord{record(t, id, peer)})
	testkit.WaitFor(t, 5*time.Second, func() bool { m, _ := tableOf(t, node); e := m[id.NodeID()]; return e.Answered() },
		"c to answer a's check")
	if err := node.Disconnect(peer.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return !peer.Connected(node.ID()) && !node.Connected(peer.ID()) },
		"a's connection to c closed")
	rawPeer(t, peer) // c's one place for 127.0.0.1: a's dials are refused from now on
}
