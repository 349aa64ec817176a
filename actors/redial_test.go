package actors_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// fullPeer listens on 127.0.0.1 as a peer that completes each handshake and at once says goodbye with
// TOO_MANY_PEERS, as a full node evicting the newcomer's connection again would. It returns the peer's address and
// how many connections it took.
func fullPeer(t *testing.T) (session.PeerAddr, *atomic.Int32) {
	t.Helper()
	return leavingPeer(t, messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS)
}

// leavingPeer is a peer that closes every connection with reason right after the handshake; it returns its address
// and a count of the connections it took.
func leavingPeer(t *testing.T, reason messages.DisconnectReason) (session.PeerAddr, *atomic.Int32) {
	t.Helper()
	return scriptedPeer(t, newIdentity(t), func(_ int32, sc *session.Conn) { refuseWith(sc, reason) })
}

// A connection to a wanted peer that the peer closes soon after it was made counts as a failed attempt: the
// backoff goes on growing, and the node gives up after RedialAttempts of them. Before, every connection made reset
// the backoff, so a node redialed a full peer that evicted it at once for ever, at RedialBase, and two nodes
// wanting one full node's last slot evicted each other in turn without end.
func TestShortLivedConnectionsDoNotResetTheRedialBackoff(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	const attempts = 3
	a := testkit.NewNetwork(t, 1, testkit.WithLogger(zerolog.New(logs)), testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 5*time.Millisecond, 20*time.Millisecond, attempts
	})).Nodes[0]
	addr, taken := fullPeer(t)
	_ = a.Connect(ctxTimeout(t, 5*time.Second), addr, true) // it may fail: the goodbye can come before it returns
	testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "giving up redialing peer") },
		"a gives up on the full peer")
	// The first connection and one per attempt; nothing dials after giving up.
	if got := taken.Load(); got != attempts+1 {
		t.Fatalf("the full peer took %d connections, want %d (the first and %d redials)", got, attempts+1, attempts)
	}
	if a.Connected(addr.ID) {
		t.Fatal("still connected to the full peer")
	}
}

// A peer the node chose itself (its bootstrapper's) that closes the connection as full, as shutting down or at its
// application's request is let go: the bootstrapper picks another. A full peer redialed evicted in turn the
// newcomer that had evicted this node (stop 45); a peer that shut down was redialed up to RedialAttempts times for
// nothing; one whose application dropped the node was connected again at once. That one is also held, as a peer the
// node's own application disconnected is: the node's own dials to it are refused for a while. The others are not.
func TestAPeerTheNodeChoseThatLeavesIsNotRedialed(t *testing.T) {
	for _, tc := range []struct {
		reason messages.DisconnectReason
		log    string
		held   bool
	}{
		{messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "peer is full: not redialing it", false},
		{messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN, "peer left: not redialing it", false},
		{messages.DisconnectReason_DISCONNECT_REASON_REQUESTED, "peer disconnected the node: not redialing it", true},
	} {
		t.Run(tc.reason.String(), func(t *testing.T) {
			a, logs := quickRedialNode(t, 3)
			addr, taken := leavingPeer(t, tc.reason)
			_ = a.ConnectAsBootstrapper(ctxTimeout(t, 5*time.Second), addr) // it may fail: the goodbye can come first
			testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), tc.log) },
				"a lets the peer go")
			noRedial(t, taken, "the peer")
			if a.Connected(addr.ID) {
				t.Fatal("still connected to the peer")
			}
			err := a.ConnectAsBootstrapper(ctxTimeout(t, 5*time.Second), addr)
			if tc.held {
				if err == nil || !strings.Contains(err.Error(), "does not connect to it again by itself") {
					t.Fatalf("the bootstrapper's dial to the peer that disconnected the node: %v, want the hold's refusal", err)
				}
				noRedial(t, taken, "the held peer")
				return
			}
			testkit.WaitFor(t, 10*time.Second, func() bool { return taken.Load() == 2 }, "the bootstrapper's dial reaches the peer again (no hold)")
		})
	}
}

// A peer the node chose itself whose application disconnects the node (Node.Disconnect, over real nodes) is left
// alone: not redialed, the bootstrapper's next dial to it refused, until the node's own application connects it.
func TestAChosenPeerWhoseApplicationDisconnectsIsLeftAlone(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 5*time.Millisecond, quickRedialMax, 0
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	events := watchEvents(t, a)
	ctx := ctxTimeout(t, 20*time.Second)
	if err := a.ConnectAsBootstrapper(ctx, b.Addr()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return b.Connected(a.ID()) }, "b sees a's connection")
	if err := b.Disconnect(a.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return events.sawDisconnect(b.ID(), messages.DisconnectReason_DISCONNECT_REASON_REQUESTED)
	}, "a hears b's goodbye")
	tick := time.NewTicker(quickRedialMax / 4)
	defer tick.Stop()
	for deadline := time.Now().Add(50 * quickRedialMax); time.Now().Before(deadline); <-tick.C {
		if a.Connected(b.ID()) || events.connects(b.ID()) != 1 {
			t.Fatalf("a connected to b again (%d connections): it redialed the peer that disconnected it", events.connects(b.ID()))
		}
	}
	if err := a.ConnectAsBootstrapper(ctx, b.Addr()); err == nil {
		t.Fatal("the bootstrapper's dial to the peer that disconnected the node succeeded")
	}
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatalf("the application's Connect to the peer: %v", err)
	}
}

// The application's peers (Connect with keep) are redialed whatever their goodbye, as go-ethereum redials its static
// peers: a restarting peer comes back, and one that disconnected the node is the application's to drop.
func TestAnApplicationPeerThatLeavesIsRedialed(t *testing.T) {
	for _, reason := range []messages.DisconnectReason{
		messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN,
		messages.DisconnectReason_DISCONNECT_REASON_REQUESTED,
		messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED,
	} {
		t.Run(reason.String(), func(t *testing.T) {
			a, _ := quickRedialNode(t, 0)
			addr, taken := leavingPeer(t, reason)
			_ = a.Connect(ctxTimeout(t, 5*time.Second), addr, true) // it may fail: the goodbye can come before it returns
			testkit.WaitFor(t, 10*time.Second, func() bool { return taken.Load() >= 3 }, "a redials the peer that left")
		})
	}
}

// A peer the node chose itself that closes the connection as NOT_NEEDED (its idle sweep's) is redialed: it did
// not refuse the node. The node keeps an inbound connection the peer dialed for a lookup (the bootstrapper chose a
// peer it was connected to already); the node's relay greets the peer, whose relay then keeps the connection
// (gossip.Relay.Upgraded), but this peer's relay is full (Router.MaxPeers, taken by c) and refuses the greeting,
// so the peer, which holds its end as transient, closes it once idle. The node's redial dials it with keep, a
// connection the peer keeps. A node that let go and held every peer whose sweep had closed such a connection found
// no topic peer in the topic discovery tests (stop 56).
func TestAKeptConnectionThePeerSweptIsRedialed(t *testing.T) {
	const idle = 300 * time.Millisecond
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 5*time.Millisecond, quickRedialMax, 0
		if i == 1 {
			cfg.DiscoveryIdleTimeout, cfg.TransientIdleTimeout = idle, idle
			cfg.Gossip.Router.MaxPeers = 1
		}
	}))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	events := watchEvents(t, a)
	ctx := ctxTimeout(t, 20*time.Second)
	if err := c.Connect(ctx, b.Addr(), true); err != nil { // c takes b's one gossip place
		t.Fatal(err)
	}
	if err := testkit.Poll(ctx, 10*time.Second, func() bool {
		st, err := b.GossipStats(ctx)
		return err == nil && st.Peers == 1
	}); err != nil {
		t.Fatal("b's relay never took c")
	}
	if err := b.Connect(ctx, a.Addr(), false); err != nil { // a transient connection, as a lookup's
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.Connected(b.ID()) }, "a sees b's connection")
	if err := a.ConnectAsBootstrapper(ctx, b.Addr()); err != nil { // a keeps b's connection
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return events.sawDisconnect(b.ID(), messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED)
	}, "b's sweep closes the connection a keeps")
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.Connected(b.ID()) && keptPeer(a, b.ID()) }, "a redials b")
	// b keeps the redialed connection: it outlives b's idle timeout several times over.
	tick := time.NewTicker(idle / 10)
	defer tick.Stop()
	for deadline := time.Now().Add(4 * idle); time.Now().Before(deadline); <-tick.C {
		if !a.Connected(b.ID()) {
			t.Fatalf("the redialed connection closed: %v", events.disconnectReasons(b.ID()))
		}
	}
	if n := events.disconnects(b.ID()); n != 1 {
		t.Fatalf("%d disconnects from b, want 1 (the swept connection): %v", n, events.disconnectReasons(b.ID()))
	}
}

// A candidate of the node's own (the bootstrapper's) whose dial fails before it was ever reached is let go: the
// bootstrapper keeps a backoff of its own for the candidates that failed, and picks another. The peer manager used
// to redial it up to RedialAttempts times behind the bootstrapper's back.
func TestAnUnreachableCandidateIsNotRedialed(t *testing.T) {
	a, logs := quickRedialNode(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var taken atomic.Int32
	done := make(chan struct{})
	go func() { // a dead candidate: every handshake fails at once
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			taken.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	if err := a.ConnectAsBootstrapper(ctxTimeout(t, 5*time.Second), session.PeerAddr{ID: newIdentity(t).NodeID(), Addr: ln.Addr().String()}); err == nil {
		t.Fatal("a dial to a dead candidate succeeded")
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "candidate unreachable: not redialing it") },
		"a lets the candidate go")
	noRedial(t, &taken, "the dead candidate")
}

// quickRedialMax is the RedialMax of quickRedialNode.
const quickRedialMax = 20 * time.Millisecond

// quickRedialNode starts a node with discovery off that redials its wanted peers within quickRedialMax, giving up
// after attempts (0: never), and logs at debug level into the returned buffer.
func quickRedialNode(t *testing.T, attempts int) (*actors.Node, *testkit.SyncBuffer) {
	logs := &testkit.SyncBuffer{}
	n := testkit.NewNetwork(t, 1, testkit.WithLogger(zerolog.New(logs)), testkit.WithLogLevel(zerolog.DebugLevel),
		testkit.WithConfig(func(_ int, cfg *actors.Config) {
			cfg.DisableDiscovery = true
			cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 5*time.Millisecond, quickRedialMax, attempts
		})).Nodes[0]
	return n, logs
}

// noRedial fails the test unless the peer whose connections taken counts took exactly one over twenty times
// quickRedialMax: redialed, it would take another within quickRedialMax.
func noRedial(t *testing.T, taken *atomic.Int32, peer string) {
	t.Helper()
	tick := time.NewTicker(quickRedialMax / 4)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * quickRedialMax); time.Now().Before(deadline); <-tick.C {
		if got := taken.Load(); got != 1 {
			t.Fatalf("%s took %d connections, want 1 (no redial)", peer, got)
		}
	}
}
