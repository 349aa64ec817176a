package actors_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func TestLookupFindsEveryNodeFromOneBootnode(t *testing.T) {
	const n = 20
	nw := testkit.NewNetwork(t, n)
	for i := 1; i < n; i++ {
		nw.Connect(i, 0)
	}
	for i := 1; i < n; i++ {
		if _, err := nw.Nodes[i].FindClosest(ctxTimeout(t, 10*time.Second), routing.KeyOf(nw.Nodes[i].ID())); err != nil {
			t.Fatalf("self-lookup of %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if i == j {
				continue
			}
			addr, err := nw.Nodes[i].Lookup(ctxTimeout(t, 10*time.Second), nw.Nodes[j].ID())
			if err != nil {
				t.Fatalf("node %d looking up %d: %v", i, j, err)
			}
			if addr != nw.Nodes[j].Addr() {
				t.Fatalf("node %d found %s for %d, want %s", i, addr, j, nw.Nodes[j].Addr())
			}
		}
	}
}

func TestSendResolvesUnknownAddressThroughTheDHT(t *testing.T) {
	nw := testkit.NewNetwork(t, 3)
	register(t, nw.Nodes[2], "echo/1", echo())
	nw.Connect(1, 0)
	nw.Connect(2, 0)
	// Node 1 never heard of node 2's address; node 0 learned it when 2 connected. Node 1's table must hold node 0
	// first, or its lookup has no peer to start from (the table learns of a connection after its handshake).
	testkit.WaitFor(t, 5*time.Second, func() bool {
		s, err := nw.Nodes[0].RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) == 2
	}, "bootnode knows both peers")
	testkit.WaitFor(t, 5*time.Second, func() bool {
		s, err := nw.Nodes[1].RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) >= 1
	}, "node 1 knows the bootnode")
	reply, err := nw.Nodes[1].Request(ctxTimeout(t, 10*time.Second), nw.Nodes[2].ID(), "echo/1", wrapperspb.String("dht"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "thd" {
		t.Fatalf("request to a node known only through the DHT: %v %v", reply, err)
	}
}

func TestLookupOfAbsentNodeFails(t *testing.T) {
	nw := testkit.NewNetwork(t, 3)
	nw.Connect(1, 0)
	nw.Connect(2, 0)
	ghost, _ := session.GenerateIdentity()
	_, err := nw.Nodes[1].Lookup(ctxTimeout(t, 10*time.Second), ghost.NodeID())
	if !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

// The peer store is named by DataDir, Bootstrap.StorePath or Routing.StorePath: with either path alone, the routing
// actor saved to one file and the bootstrapper loaded another (or nothing), and a restart lost its peers silently.
func TestRestartedNodeRejoinsFromItsPeerStore(t *testing.T) {
	for name, store := range map[string]func(cfg *actors.Config, dir string){
		"DataDir":             func(cfg *actors.Config, dir string) { cfg.DataDir = dir },
		"Bootstrap.StorePath": func(cfg *actors.Config, dir string) { cfg.Bootstrap.StorePath = filepath.Join(dir, "peers.pb") },
		"Routing.StorePath":   func(cfg *actors.Config, dir string) { cfg.Routing.StorePath = filepath.Join(dir, "peers.pb") },
	} {
		t.Run(name, func(t *testing.T) { testRejoinFromPeerStore(t, store) })
	}
}

func testRejoinFromPeerStore(t *testing.T, store func(cfg *actors.Config, dir string)) {
	dir := t.TempDir()
	id, _ := session.GenerateIdentity()
	nw := testkit.NewNetwork(t, 3, testkit.WithBootnode(), testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 100 * time.Millisecond
		if i == 2 {
			cfg.Identity = id
			store(cfg, dir)
		}
	}))
	joiner := nw.Nodes[2]
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s, err := joiner.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) == 2
	}, "the joiner's table holds both other nodes")
	if err := joiner.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "peers.pb")); err != nil || st.Size() == 0 {
		t.Fatalf("no peer store written at close: %v", err)
	}
	// Restart with the same identity and data directory and no bootnode at all.
	again := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Identity = id
		store(cfg, dir)
		cfg.Bootstrap.Interval = 100 * time.Millisecond
	})).Nodes[0]
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return again.Connected(nw.Nodes[0].ID()) || again.Connected(nw.Nodes[1].ID())
	}, "the restarted node reconnects from its peer store")
}

// TestJoinRetriesABootnodeThatAnsweredWithNobody: a bootnode that accepts the connection but answers the join's
// lookup with nobody (here it runs without discovery; in a large network, an overloaded bootnode's answers time out)
// leaves the joiner knowing nobody. The joiner must keep trying its bootnodes, not settle for an empty table.
func TestJoinRetriesABootnodeThatAnsweredWithNobody(t *testing.T) {
	bootID, _ := session.GenerateIdentity()
	addr := testkit.FreeAddr(t)
	mute := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Identity, cfg.ListenAddr, cfg.DisableDiscovery = bootID, addr, true
	}))
	boot := session.PeerAddr{ID: bootID.NodeID(), Addr: addr}
	joiner := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.Bootnodes = []session.PeerAddr{boot}
		cfg.Bootstrap.Interval = 100 * time.Millisecond
	})).Nodes[0]
	// The joiner reached the mute bootnode and got nothing from it.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return joiner.Stats().MessagesIn[routing.Protocol] > 0 // the bootnode's error reply to the FindNode
	}, "the joiner to ask the mute bootnode")
	if s, err := joiner.RoutingTable(ctxTimeout(t, time.Second)); err != nil || len(s.Entries) != 0 {
		t.Fatalf("table %v, %v: want empty after the mute bootnode", s.Entries, err)
	}
	mute.Close()

	// The bootnode comes back with discovery, at the same address, with a peer of its own.
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.Identity, cfg.ListenAddr = bootID, addr
		}
	}))
	nw.Connect(1, 0)
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s, err := joiner.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) == 2
	}, "the joiner to rejoin through the bootnode and learn both nodes")
}

// TestPeerAnsweringWithAnErrorIsNotEvicted: a peer that answers liveness checks with an error (here it does not
// serve discovery; a throttling or overloaded one answers so too) is up: the routing table keeps it. Only unanswered
// checks count as failures.
func TestPeerAnsweringWithAnErrorIsNotEvicted(t *testing.T) {
	bID, _ := session.GenerateIdentity()
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.Routing.RevalidateInterval = 20 * time.Millisecond
		} else {
			cfg.Identity, cfg.DisableDiscovery = bID, true
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	rec, err := routing.NewRecord(bID, 1, []string{b.Addr().Addr})
	if err != nil {
		t.Fatal(err)
	}
	a.AddRecords([]*messages.NodeRecord{rec})
	inTable := func() bool {
		s, err := a.RoutingTable(ctxTimeout(t, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Entries {
			if e.ID == b.ID() {
				return true
			}
		}
		return false
	}
	testkit.WaitFor(t, 5*time.Second, inTable, "b's record in a's table")
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s, err := a.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && s.Stats.Revalidations >= 5
	}, "a to check b's liveness 5 times")
	if !inTable() {
		t.Fatal("a evicted b, which answered every check (with an error)")
	}
}

// TestLivenessCheckThatDialsIsTheOnlyExchangeWithThePeer: a check of an entry the node is not connected to dials
// it; the new connection would start the exchange every connection gets (our record and neighbourhood), which is
// what the check asks for already, so only the check's exchange goes out.
func TestLivenessCheckThatDialsIsTheOnlyExchangeWithThePeer(t *testing.T) {
	bID, _ := session.GenerateIdentity()
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0 // no outbound dials but the checks'
		cfg.Bootstrap.Interval = time.Hour
		if i == 0 {
			cfg.Routing.RevalidateInterval = 50 * time.Millisecond
			cfg.Routing.RevalidateAnsweredInterval = 50 * time.Millisecond // b answers each check
		} else {
			cfg.Identity = bID
			cfg.Routing.RevalidateInterval = time.Hour
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	rec, err := routing.NewRecord(bID, 1, []string{b.Addr().Addr})
	if err != nil {
		t.Fatal(err)
	}
	a.AddRecords([]*messages.NodeRecord{rec})
	var s routing.Snapshot
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s, err = a.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && s.Stats.Revalidations >= 3
	}, "a to check b 3 times")
	if !a.Connected(b.ID()) {
		t.Fatal("a's checks did not connect it to b")
	}
	if s.Stats.Exchanges != s.Stats.Checks {
		t.Fatalf("a started %d exchanges for %d checks: the connection the first check made started one more",
			s.Stats.Exchanges, s.Stats.Checks)
	}
}

// TestRevalidationChecksNodesThatAnsweredLast: the periodic revalidation checks the entries that never answered the
// node before those that did, however stale: b answered a's exchange and is a's stalest entry, yet a checks an absent
// node learned later (until it evicts it) and not b, which is not due before RevalidateAnsweredInterval.
func TestRevalidationChecksNodesThatAnsweredLast(t *testing.T) {
	ids := oneBucketIdentities(t, 2)
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Identity = ids[i]
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval = time.Hour
		if i == 0 {
			cfg.Routing.RevalidateInterval = 20 * time.Millisecond
			cfg.Routing.RevalidateAnsweredInterval = time.Hour
			cfg.Routing.Table.FailureSpacing = 0 // the absent node's failed checks count at once
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	// a dials b: the exchange every outbound connection starts is b's one request, and its answer puts b in a's
	// table as answered.
	nw.Connect(0, 1)
	const served = 1
	testkit.WaitFor(t, 5*time.Second, func() bool {
		s, err := a.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(s.Entries) == 1 && s.Entries[0].Answered() && stats(t, b).RequestsServed == served
	}, "b to answer a's exchange")
	a.AddRecords([]*messages.NodeRecord{absentRecord(t, ids[2])})
	testkit.WaitFor(t, 10*time.Second, func() bool { return stats(t, a).Evictions >= 1 }, "a to evict the absent node")
	if n := stats(t, b).RequestsServed; n != served {
		t.Fatalf("a checked b, which had answered it, %d times before the node that never had", n-served)
	}
	s, err := a.RoutingTable(ctxTimeout(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Entries) != 1 || s.Entries[0].ID != b.ID() || !s.Entries[0].Answered() {
		t.Fatalf("a's table: %+v, want b alone, answered", s.Entries)
	}
}

// TestOnlyTheDialerOfAConnectionAsksForNodes checks that a connection costs one FindNode exchange: the dialer's.
// The node dialed learns the dialer's record from that request and asks nothing back, which would double the cost
// of every liveness check other nodes make of it.
func TestOnlyTheDialerOfAConnectionAsksForNodes(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
		cfg.Bootstrap.Interval = time.Hour
		cfg.Routing.RevalidateInterval = time.Hour
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(1, 0) // b dials a
	var sa, sb routing.Snapshot
	testkit.WaitFor(t, 10*time.Second, func() bool {
		var errA, errB error
		sa, errA = a.RoutingTable(ctxTimeout(t, time.Second))
		sb, errB = b.RoutingTable(ctxTimeout(t, time.Second))
		return errA == nil && errB == nil && len(sa.Entries) == 1 && len(sb.Entries) == 1 && sb.Stats.Exchanges == 1 &&
			sa.Stats.RequestsServed == 1
	}, "each node to know the other, and the dialer's exchange to be served")
	if sa.Entries[0].ID != b.ID() || sb.Entries[0].ID != a.ID() {
		t.Fatalf("tables: a knows %s, b knows %s", sa.Entries[0].ID.Short(), sb.Entries[0].ID.Short())
	}
	if sa.Stats.Exchanges != 0 || sb.Stats.RequestsServed != 0 {
		t.Fatalf("the node dialed started %d exchanges (b served %d): want none", sa.Stats.Exchanges, sb.Stats.RequestsServed)
	}
}

// Lookup of the node's own id keeps the rules of any other id (before Start ErrNotStarted, after Close ErrClosed,
// without discovery ErrDiscoveryDisabled: it returned the node's address, empty before Start), and a lookup under a
// context that has ended starts nothing (each one took a lookup slot and sent requests nobody waited for).
func TestLookupOfSelfAndUnderAnEndedContext(t *testing.T) {
	unstarted, err := actors.NewNode(actors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unstarted.Close() })
	if _, err := unstarted.Lookup(ctxTimeout(t, time.Second), unstarted.ID()); !errors.Is(err, actors.ErrNotStarted) {
		t.Errorf("Lookup(self) before Start: %v, want ErrNotStarted", err)
	}
	_ = unstarted.Close()
	if _, err := unstarted.Lookup(ctxTimeout(t, time.Second), unstarted.ID()); !errors.Is(err, actors.ErrClosed) {
		t.Errorf("Lookup(self) after Close: %v, want ErrClosed", err)
	}
	off := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, c *actors.Config) { c.DisableDiscovery = true })).Nodes[0]
	if _, err := off.Lookup(ctxTimeout(t, time.Second), off.ID()); !errors.Is(err, actors.ErrDiscoveryDisabled) {
		t.Errorf("Lookup(self) without discovery: %v, want ErrDiscoveryDisabled", err)
	}

	nw := testkit.NewNetwork(t, 2)
	nw.Connect(0, 1)
	n := nw.Nodes[0]
	if addr, err := n.Lookup(ctxTimeout(t, time.Second), n.ID()); err != nil || addr != n.Addr() {
		t.Errorf("Lookup(self): %v, %v; want %v", addr, err, n.Addr())
	}
	before, err := n.RoutingTable(ctxTimeout(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		if _, err := n.FindClosest(ended, routing.KeyOf(newIdentity(t).NodeID())); !errors.Is(err, context.Canceled) {
			t.Fatalf("FindClosest under a cancelled context: %v, want context.Canceled", err)
		}
		if _, err := n.Lookup(ended, newIdentity(t).NodeID()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Lookup under a cancelled context: %v, want context.Canceled", err)
		}
	}
	after, err := n.RoutingTable(ctxTimeout(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if after.Stats.Lookups != before.Stats.Lookups {
		t.Errorf("lookups under a cancelled context started %d lookups", after.Stats.Lookups-before.Stats.Lookups)
	}
}
