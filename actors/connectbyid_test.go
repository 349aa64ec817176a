package actors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// TestConnectByIDLooksUpAnAddressTheBookLacks covers the lookup path of a gossip shortcut (gossipNetwork.Connect):
// a knows b, b knows c, a's address book does not; a finds c's address through the DHT and keeps the connection.
func TestConnectByIDLooksUpAnAddressTheBookLacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node {
		return startTestNode(t, ctx, func(cfg *Config) {
			cfg.Bootstrap.TargetOutbound = 0
			cfg.DiscoveryIdleTimeout = 300 * time.Millisecond // a lookup's connection to c closes soon
		})
	}
	a, b, c := start(), start(), start()
	if err := b.Connect(ctx, c.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	// The lookup starts from a's table (b) and asks b, whose table holds c.
	holds := func(n *Node, id session.NodeID) func() bool {
		return func() bool {
			snap, err := n.RoutingTable(ctx)
			if err != nil {
				return false
			}
			for _, e := range snap.Entries {
				if e.ID == id {
					return true
				}
			}
			return false
		}
	}
	pollUntil(t, ctx, holds(b, c.ID()), "b's routing table never held c")
	pollUntil(t, ctx, holds(a, b.ID()), "a's routing table never held b")
	pollUntil(t, ctx, func() bool { return !a.Connected(c.ID()) }, "a stayed connected to c")
	a.addrs.mu.Lock()
	delete(a.addrs.m, c.ID()) // whatever discovery taught a
	a.addrs.mu.Unlock()

	gossipNetwork{a}.Connect(c.ID())
	pollUntil(t, ctx, func() bool { return gossipNetwork{a}.IsGossipPeer(c.ID()) }, "a did not connect to c and keep it")
	if addr, ok := a.addrs.get(c.ID()); !ok || addr != c.Addr().Addr {
		t.Fatalf("a's address book has %q for c, want %q", addr, c.Addr().Addr)
	}
}

// TestIsGossipPeerAgreesWithGossipPeers checks the relay's one-peer question against its list: a transient
// connection is a gossip peer on neither end, and the connection kept afterwards is one on the end that keeps it.
func TestIsGossipPeerAgreesWithGossipPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func() *Node {
		return startTestNode(t, ctx, func(cfg *Config) { cfg.Bootstrap.TargetOutbound = 0 })
	}
	a, b := start(), start()
	agree := func(n *Node, peer session.NodeID) bool {
		listed := slices.Contains(gossipNetwork{n}.GossipPeers(), peer)
		if got := (gossipNetwork{n}).IsGossipPeer(peer); got != listed {
			t.Fatalf("IsGossipPeer = %v, GossipPeers lists it: %v", got, listed)
		}
		return listed
	}
	if err := a.Connect(ctx, b.Addr(), false); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, ctx, func() bool { return b.Connected(a.ID()) }, "b never saw a's connection")
	if agree(a, b.ID()) || agree(b, a.ID()) {
		t.Fatal("a transient connection is a gossip peer")
	}
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if !agree(a, b.ID()) {
		t.Fatal("the kept connection is not a gossip peer of the node keeping it")
	}
	if agree(a, session.NodeID{}) {
		t.Fatal("an unknown node is a gossip peer")
	}
}

func pollUntil(t *testing.T, ctx context.Context, cond func() bool, msg string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal(msg)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
