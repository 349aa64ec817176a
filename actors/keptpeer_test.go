package actors_test

// A peer the application keeps (Connect with keep) stays wanted through what can happen to its connections: a
// refusal as a duplicate, a newcomer in its place refused for want of a slot, a dial that found no slot, a move to
// another address. And a Disconnect ends the wish for a dial still waiting for a slot.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// fastRedial makes a node redial its wanted peers within milliseconds, for ever, with discovery off.
func fastRedial(_ int, cfg *actors.Config) {
	cfg.DisableDiscovery = true
	cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 5*time.Millisecond, 20*time.Millisecond, 0
}

// A peer that refuses the node's connection as a duplicate may hold a connection the node no longer has (the
// node restarted, and the peer's side of the old one is not closed yet): the node redials it. It used to take a
// duplicate refusal for a sign that another connection was up, and never dialed the peer again.
func TestAPeerThatRefusesAConnectionAsADuplicateIsRedialed(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(fastRedial)).Nodes[0]
	addr, taken := scriptedPeer(t, newIdentity(t), func(n int32, sc *session.Conn) {
		if n == 1 {
			refuseWith(sc, messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION)
			return
		}
		hold(sc)
	})
	_ = a.Connect(ctxTimeout(t, 5*time.Second), addr, true) // it may fail: the refusal can come before it returns
	testkit.WaitFor(t, 10*time.Second, func() bool { return taken.Load() >= 2 && a.Connected(addr.ID) },
		"the node redials the peer that refused it as a duplicate")
}

// When a connection from a peer the node is connected to already wins the tie-break but finds no slot, the node
// refuses it and keeps the connection it had. It used to close the old one first, then refuse the newcomer:
// connected to the peer before, it was connected to it by neither.
func TestARefusedReplacementLeavesTheConnectionItWouldReplace(t *testing.T) {
	net3 := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i == 0 {
			// Two inbound slots, whose connections eviction could close (so the newcomer is handshaken): a
			// transient newcomer evicts nobody, though.
			cfg.MaxInboundPeers, cfg.InboundEvictionGrace = 2, 0
			cfg.RedialBase, cfg.RedialMax = time.Minute, time.Minute // a lost connection to x is not redialed within the test
		}
	}))
	s := net3.Nodes[0]
	// x's id is the smaller: at s, a connection x dials replaces the one s dialed (keepNew).
	x := newIdentity(t)
	for sid := s.ID(); bytes.Compare(x.NodeID().Bytes(), sid.Bytes()) >= 0; x = newIdentity(t) {
	}
	xAddr, _ := scriptedPeer(t, x, func(_ int32, sc *session.Conn) { hold(sc) })
	if err := s.Connect(ctxTimeout(t, 5*time.Second), xAddr, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range net3.Nodes[1:] { // s's two inbound slots
		if err := p.Connect(ctxTimeout(t, 5*time.Second), s.Addr(), true); err != nil {
			t.Fatal(err)
		}
	}
	events := watchEvents(t, s)

	raw, err := net.Dial("tcp", s.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := session.Handshake(ctx, raw, session.HandshakeConfig{Identity: x, NetworkID: "actormesh", Transient: true}, true, s.ID())
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	defer sc.Close()
	if reason := goodbye(t, sc); reason != messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS {
		t.Fatalf("the newcomer was told %v, want TOO_MANY_PEERS", reason)
	}
	if !s.Connected(x.NodeID()) || events.disconnects(x.NodeID()) != 0 {
		t.Fatalf("s lost its connection to x (connected %v, %d disconnects) for a newcomer it refused",
			s.Connected(x.NodeID()), events.disconnects(x.NodeID()))
	}
}

// A kept peer whose dial found no outbound slot within DialTimeout is dialed again with the redial backoff, as
// after any failed dial: once a slot frees, the node connects. It used to stay wanted without a dial for good.
func TestAKeptPeerThatFoundNoOutboundSlotIsDialedAgain(t *testing.T) {
	net3 := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		fastRedial(i, cfg)
		if i == 0 {
			cfg.MaxOutboundPeers, cfg.DialTimeout = 1, time.Second
		}
	}))
	a, b, c := net3.Nodes[0], net3.Nodes[1], net3.Nodes[2]
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctxTimeout(t, 5*time.Second), c.Addr(), true); !errors.Is(err, actors.ErrTooManyPeers) {
		t.Fatalf("Connect with every outbound slot taken: %v, want ErrTooManyPeers", err)
	}
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return a.Connected(c.ID()) }, "a connects to c once b's slot is free")
}

// Disconnect ends the wish for a peer whose dial waits for an outbound slot: the Connect fails with ErrPeerGone at
// once. The waiting dial used to go on and connect once a slot freed, undoing the Disconnect.
func TestDisconnectEndsAConnectWaitingForAnOutboundSlot(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	net3 := testkit.NewNetwork(t, 3, testkit.WithLogger(zerolog.New(logs)), testkit.WithLogLevel(zerolog.DebugLevel),
		testkit.WithConfig(func(i int, cfg *actors.Config) {
			fastRedial(i, cfg)
			if i == 0 {
				cfg.MaxOutboundPeers, cfg.DialTimeout = 1, time.Minute
			}
		}))
	a, b, c := net3.Nodes[0], net3.Nodes[1], net3.Nodes[2]
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Connect(ctxTimeout(t, time.Minute), c.Addr(), true) }()
	testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "dial waiting for an outbound slot") },
		"a's dial to c waits for a slot")
	if err := a.Disconnect(c.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, actors.ErrPeerGone) {
			t.Fatalf("Connect after Disconnect: %v, want ErrPeerGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect still waits for a slot after Disconnect")
	}
	if err := a.Disconnect(b.ID()); err != nil { // a slot frees: nothing may take it for c
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return !a.Connected(b.ID()) }, "b disconnected")
	if err := a.Connect(ctxTimeout(t, 5*time.Second), b.Addr(), true); err != nil { // the free slot is b's again
		t.Fatal(err)
	}
	if a.Connected(c.ID()) {
		t.Fatal("a connected to c, which it was told to disconnect")
	}
}

// A kept peer that moved is redialed at the address it was last connected at (Connect's newest), not the first.
func TestAKeptPeerIsRedialedAtItsNewestAddress(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(fastRedial)).Nodes[0]
	id := newIdentity(t)
	first := make(chan *session.Conn, 1)
	old, oldTaken := scriptedPeer(t, id, func(_ int32, sc *session.Conn) {
		hold(sc)
		first <- sc
	})
	moved, movedTaken := scriptedPeer(t, id, func(_ int32, sc *session.Conn) { hold(sc) })
	if err := a.Connect(ctxTimeout(t, 5*time.Second), old, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctxTimeout(t, 5*time.Second), moved, true); err != nil { // connected already: the address is news
		t.Fatal(err)
	}
	(<-first).Close() // the connection drops
	testkit.WaitFor(t, 10*time.Second, func() bool { return movedTaken.Load() == 1 && a.Connected(id.NodeID()) },
		"a redials the peer at its new address")
	if n := oldTaken.Load(); n != 1 {
		t.Fatalf("a redialed the old address too: %d connections there", n)
	}
}

// A connection the peer dials in while the node's own dial to it is in progress does not end that dial's
// bookkeeping: a Disconnect made during the dial still closes the dialed connection as it comes up and fails the
// Connect with ErrPeerGone. The inbound connection used to answer the Connect with success and wipe the
// Disconnect's mark (and the dial's place among the outbound slots) while the dial went on.
func TestADisconnectDuringADialOutlivesAnInboundConnectionFromThePeer(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	id := newIdentity(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		raw, err := ln.Accept()
		if err == nil {
			accepted <- raw
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	done := make(chan error, 1)
	go func() {
		done <- a.Connect(ctxTimeout(t, 30*time.Second), session.PeerAddr{ID: id.NodeID(), Addr: ln.Addr().String()}, true)
	}()
	var dialed net.Conn
	select {
	case dialed = <-accepted: // a's dial waits for the handshake's answer
	case <-time.After(10 * time.Second):
		t.Fatal("a did not dial")
	}
	defer dialed.Close()
	if err := a.Disconnect(id.NodeID()); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", a.Addr().Addr) // the peer dials in meanwhile
	if err != nil {
		t.Fatal(err)
	}
	in, err := session.Handshake(ctxTimeout(t, 5*time.Second), raw, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, true, a.ID())
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	defer in.Close()
	hold(in)
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Connected(id.NodeID()) }, "the peer's connection is up")
	select {
	case err := <-done:
		t.Fatalf("Connect returned %v as the peer's own connection came up, before its dial ended", err)
	default:
	}
	go func() { // the dialed side answers now
		if sc, err := session.Handshake(ctxTimeout(t, 5*time.Second), dialed, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, false, session.NodeID{}); err == nil {
			hold(sc)
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, actors.ErrPeerGone) {
			t.Fatalf("Connect after a Disconnect during its dial: %v, want ErrPeerGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect did not return once its dial ended")
	}
}

// A liveness check that finds no free outbound slot proves nothing against the peer: the dial waiting for a slot
// gives up before the check's own deadline, with ErrTooManyPeers (routing.ErrPeerBusy), and the live node stays in
// the table. The dial used to wait DialTimeout (5 s), beyond the check's RequestTimeout (2 s), and the check ended
// as a timeout, a failure: a node whose outbound slots were all kept evicted live nodes from its table.
func TestALivenessCheckWithoutAFreeSlotEvictsNobody(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.MaxOutboundPeers, cfg.MaxInboundPeers, cfg.Bootstrap.TargetOutbound = 1, 1, 0
			cfg.Routing.RevalidateInterval, cfg.Routing.RevalidateAnsweredInterval = 100*time.Millisecond, 100*time.Millisecond
			cfg.Routing.RequestTimeout = 500 * time.Millisecond // each check of c waits that long for a slot
		}
	}))
	a, c := nw.Nodes[0], nw.Nodes[1]
	// a's one outbound slot, kept, to a peer that speaks no discovery: c is the only entry of a's table.
	holder, _ := scriptedPeer(t, newIdentity(t), func(_ int32, sc *session.Conn) { hold(sc) })
	if err := a.Connect(ctxTimeout(t, 5*time.Second), holder, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctxTimeout(t, 5*time.Second), a.Addr(), false); err != nil { // c introduces itself
		t.Fatal(err)
	}
	inTable := func() (bool, routing.Stats) {
		s, err := a.RoutingTable(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(s.Entries, func(e routing.Entry) bool { return e.ID == c.ID() }), s.Stats
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { in, _ := inTable(); return in }, "a's table holds c")
	if err := c.Disconnect(a.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return !a.Connected(c.ID()) }, "c's connection closed")
	rawPeer(t, a) // a's one inbound slot, kept by its dialer: c cannot reach a, and a reaches c only by dialing it
	_, st := inTable()
	// Checks enough for c to fail twice (the table's MaxFailures) were each a failure.
	testkit.WaitFor(t, 30*time.Second, func() bool { _, now := inTable(); return now.Revalidations >= st.Revalidations+4 },
		"a's revalidation checks c again")
	if in, now := inTable(); !in || now.Evictions != st.Evictions {
		t.Fatalf("c (alive) in a's table: %v; evictions %d -> %d", in, st.Evictions, now.Evictions)
	}
}
