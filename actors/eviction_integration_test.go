package actors_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// dialFrom dials n over TCP from the local address from (any address of 127.0.0.0/8 is this host's on Linux) and
// completes a handshake with a fresh identity, declaring the connection transient or not. It returns the
// connection and its identity, or the handshake's error.
func dialFrom(t *testing.T, n *actors.Node, from string, transient bool) (*session.Conn, session.NodeID, error) {
	t.Helper()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	raw, err := d.Dial("tcp", n.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg := session.HandshakeConfig{Identity: id, NetworkID: "actormesh", Transient: transient}
	sc, err := session.Handshake(ctx, raw, cfg, true, n.ID())
	if err != nil {
		_ = raw.Close()
		return nil, id.NodeID(), err
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc, id.NodeID(), nil
}

// goodbye reads sc until the node's Disconnect notice and returns its reason, or fails the test.
func goodbye(t *testing.T, sc *session.Conn) messages.DisconnectReason {
	t.Helper()
	_ = sc.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		b, err := sc.ReadMessage()
		if err != nil {
			t.Fatalf("no goodbye: %v", err)
		}
		env := &messages.Envelope{}
		if proto.Unmarshal(b, env) == nil && env.GetDisconnect() != nil {
			return env.GetDisconnect().GetReason()
		}
	}
}

// evictionNode starts a node with 4 inbound slots and neither the per-IP cap, the loopback exemption nor the
// eviction grace in the way.
func evictionNode(t *testing.T, change func(*actors.Config)) *actors.Node {
	return testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ExemptLoopbackThrottle = false
		cfg.InboundEvictionGrace = 0
		cfg.InboundPerIPBurst = 100
		cfg.MaxInboundPerIP = 100
		cfg.MaxInboundPeers = 4
		if change != nil {
			change(cfg)
		}
	})).Nodes[0]
}

// fillFromOneGroup takes all 4 inbound slots of n from one /16 (127.1.0.0/16), one connection after the other,
// and returns the connections and their identities, oldest first.
func fillFromOneGroup(t *testing.T, n *actors.Node) ([]*session.Conn, []session.NodeID) {
	t.Helper()
	var crowd []*session.Conn
	var ids []session.NodeID
	for i := range 4 {
		sc, id, err := dialFrom(t, n, fmt.Sprintf("127.1.0.%d", i+1), false)
		if err != nil {
			t.Fatalf("connection %d of the crowd: %v", i+1, err)
		}
		testkit.WaitFor(t, 5*time.Second, func() bool { return n.Connected(id) }, "the crowd's connection registered")
		crowd, ids = append(crowd, sc), append(ids, id)
	}
	return crowd, ids
}

// A node whose inbound slots are all taken lets a newcomer in by closing the youngest connection of the network
// group that holds the most: a crowd from one /16 that took every slot first no longer keeps out a peer from
// elsewhere. Before, the newcomer was refused for as long as the crowd stayed.
func TestNewcomerEvictsTheYoungestOfTheLargestGroup(t *testing.T) {
	n := evictionNode(t, nil)
	crowd, ids := fillFromOneGroup(t, n)
	_, newcomer, err := dialFrom(t, n, "127.2.0.1", false)
	if err != nil {
		t.Fatalf("newcomer from another group: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return n.Connected(newcomer) }, "the newcomer registered")
	if reason := goodbye(t, crowd[3]); reason != messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS {
		t.Fatalf("the crowd's youngest was told %v, want TOO_MANY_PEERS", reason)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return n.Stats().PeersInbound == 4 }, "4 inbound connections")
	if got := n.Stats().InboundEvicted; got != 1 {
		t.Fatalf("Stats.InboundEvicted = %d, want 1", got)
	}
	for i, id := range ids[:3] {
		if !n.Connected(id) {
			t.Errorf("crowd connection %d (of the older three) was closed too", i+1)
		}
	}
	if n.Connected(ids[3]) {
		t.Error("the crowd's youngest is still connected")
	}
}

// Eviction makes room only for a newcomer that means to stay: one that declared its connection transient (a
// lookup's) is refused as before, and so is every newcomer when eviction is off, every inbound connection is one
// the node keeps or every one is younger than InboundEvictionGrace.
func TestEvictionOnlyForNewcomersThatStay(t *testing.T) {
	cases := []struct {
		name            string
		change          func(*actors.Config)
		transient, keep bool
	}{
		{"transient newcomer", nil, true, false},
		{"eviction disabled", func(c *actors.Config) { c.DisableInboundEviction = true }, false, false},
		{"crowd kept", nil, false, true},
		{"crowd within the grace", func(c *actors.Config) { c.InboundEvictionGrace = time.Hour }, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := evictionNode(t, tc.change)
			_, crowd := fillFromOneGroup(t, n)
			for _, id := range crowd {
				if !tc.keep {
					break
				}
				// Connected already: Connect only marks the connection kept.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := n.Connect(ctx, session.PeerAddr{ID: id, Addr: "127.1.0.1:1"}, true)
				cancel()
				if err != nil {
					t.Fatalf("keep %s: %v", id.Short(), err)
				}
			}
			sc, newcomer, err := dialFrom(t, n, "127.2.0.1", tc.transient)
			if err == nil { // the handshake may end before the refusal: then the refusal is the goodbye
				if reason := goodbye(t, sc); reason != messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS {
					t.Fatalf("newcomer told %v, want TOO_MANY_PEERS", reason)
				}
			}
			if n.Connected(newcomer) {
				t.Fatal("the newcomer was let in")
			}
			for i, id := range crowd {
				if !n.Connected(id) {
					t.Errorf("crowd connection %d was closed", i+1)
				}
			}
			if got := n.Stats().InboundEvicted; got != 0 {
				t.Fatalf("Stats.InboundEvicted = %d, want 0", got)
			}
		})
	}
}

// A peer that relays gossip to the node first is kept when a newcomer needs its slot, though it is the youngest of
// the crowd: only a peer that beats it at delivering valid messages first displaces it. Its own publications would
// not do (anyone can publish): node 4 relays those of node 5, which the full node has no connection to.
func TestNewcomerDoesNotEvictARecentRelayer(t *testing.T) {
	nw := testkit.NewNetwork(t, 6, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.RedialBase, cfg.RedialMax = 10000*time.Hour, 10000*time.Hour // an evicted peer does not come back
		if i == 0 {
			cfg.ExemptLoopbackThrottle = false
			cfg.InboundPerIPBurst, cfg.MaxInboundPerIP, cfg.MaxInboundPeers = 100, 100, 4
			cfg.InboundEvictionGrace = 0
		}
	}))
	full := nw.Nodes[0]
	for i := 1; i <= 4; i++ { // one after the other: node 4 is the youngest
		nw.Connect(i, 0)
	}
	nw.Connect(5, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range []*actors.Node{full, nw.Nodes[4], nw.Nodes[5]} {
		if _, err := n.Subscribe(ctx, "blocks", func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Nodes[4].WaitTopicPeers(ctx, "blocks", 2); err != nil {
		t.Fatal(err)
	}
	if err := nw.Nodes[5].WaitTopicPeers(ctx, "blocks", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Nodes[5].Publish(ctx, "blocks", wrapperspb.String("block 1")); err != nil {
		t.Fatal(err)
	}
	relayer := nw.Nodes[4].ID()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		for _, p := range full.Peers() {
			if p.ID == relayer {
				return !p.LastRelayed.IsZero()
			}
		}
		return false
	}, "the full node to record that node 4 relayed")

	if _, _, err := dialFrom(t, full, "127.2.0.1", false); err != nil {
		t.Fatalf("newcomer: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return full.Stats().InboundEvicted == 1 }, "an eviction")
	if !full.Connected(relayer) {
		t.Fatal("the relayer was evicted")
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return !full.Connected(nw.Nodes[3].ID()) },
		"node 3, the youngest that did not relay, to be evicted")
}
