package actors

import (
	"context"
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
	pollUntil(t, ctx, func() bool {
		pc := a.peers.get(c.ID())
		return pc != nil && keptConn(pc)
	}, "a did not connect to c and keep it")
	if addr, ok := a.addrs.get(c.ID()); !ok || addr != c.Addr().Addr {
		t.Fatalf("a's address book has %q for c, want %q", addr, c.Addr().Addr)
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
