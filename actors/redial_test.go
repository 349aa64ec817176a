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

// A peer the node chose itself (its bootstrapper's) that closes the connection as full or as shutting down is let
// go: the bootstrapper picks another. A full peer redialed evicted in turn the newcomer that had evicted this node
// (stop 45); a peer that shut down was redialed up to RedialAttempts times for nothing.
func TestAPeerTheNodeChoseThatLeavesIsNotRedialed(t *testing.T) {
	for _, tc := range []struct {
		reason messages.DisconnectReason
		log    string
	}{
		{messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "peer is full: not redialing it"},
		{messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN, "peer left: not redialing it"},
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
		})
	}
}

// The application's peers (Connect with keep) are redialed when they shut down, as go-ethereum redials its static
// peers: a restarting peer comes back.
func TestAnApplicationPeerThatShutsDownIsRedialed(t *testing.T) {
	a, _ := quickRedialNode(t, 0)
	addr, taken := leavingPeer(t, messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN)
	_ = a.Connect(ctxTimeout(t, 5*time.Second), addr, true) // it may fail: the goodbye can come before it returns
	testkit.WaitFor(t, 10*time.Second, func() bool { return taken.Load() >= 3 }, "a redials the peer that shut down")
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
